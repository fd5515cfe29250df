"""The queue behind one watcher of a Watch RPC (ports, instances)."""
from __future__ import annotations

import queue
from typing import Generic, Protocol, Self, TypeVar

from agent.errors import Unavailable

E = TypeVar("E")                                   # the event type
Q_contra = TypeVar("Q_contra", contravariant=True)


class Hub(Protocol[Q_contra]):
    """Whoever hands events to the queue; told when a watcher leaves."""

    def _drop(self, sub: Q_contra) -> None: ...


class EventQueue(Generic[E]):
    """A bounded queue of one watcher: a reader too slow to keep up never blocks the
    publisher; its stream ends with UNAVAILABLE WATCH_OVERFLOW instead. Close it."""

    OVERFLOW = "the watch fell too far behind; watch again and re-read"

    def __init__(self, hub: Hub[Self], maxsize: int) -> None:
        self.hub: Hub[Self] = hub
        self._q: queue.Queue[E] = queue.Queue(maxsize)
        self.overflowed = False
        self.closed = False

    def _put(self, ev: E) -> None:
        try:
            self._q.put_nowait(ev)
        except queue.Full:
            self.overflowed = True

    def next_event(self, timeout: float) -> E | None:
        """The next event, or None after `timeout` seconds. Raises Unavailable after an overflow."""
        if self.overflowed:
            raise Unavailable(self.OVERFLOW, reason="WATCH_OVERFLOW")
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self: Self) -> None:
        self.closed = True
        self.hub._drop(self)
