"""The queue behind one watcher of a Watch RPC (ports, instances)."""
from __future__ import annotations

import queue

from agent.errors import Unavailable


class EventQueue:
    """A bounded queue of one watcher: a reader too slow to keep up never blocks the
    publisher; its stream ends with UNAVAILABLE WATCH_OVERFLOW instead. Close it."""

    OVERFLOW = "the watch fell too far behind; watch again and re-read"

    def __init__(self, hub, maxsize: int) -> None:
        self.hub = hub
        self._q: queue.Queue = queue.Queue(maxsize)
        self.overflowed = False
        self.closed = False

    def _put(self, ev) -> None:
        try:
            self._q.put_nowait(ev)
        except queue.Full:
            self.overflowed = True

    def next_event(self, timeout: float):
        """The next event, or None after `timeout` seconds. Raises Unavailable after an overflow."""
        if self.overflowed:
            raise Unavailable(self.OVERFLOW, reason="WATCH_OVERFLOW")
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True
        self.hub._drop(self)
