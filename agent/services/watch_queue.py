"""The queue behind one watcher of a Watch RPC (ports, instances)."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, Protocol, Self, TypeVar

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


S = TypeVar("S", bound=EventQueue)               # the subscription type


class Subscribers(Generic[S]):
    """The subscriptions of one hub and the pump thread feeding them: the pump starts with the
    first subscription and ends once the last one left (it asks keep_running() between reads)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._subs: list[S] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, sub: S, pump: Callable[[threading.Event], None] | None = None) -> None:
        """Add `sub`; start `pump(ready)` on a thread when none runs, and wait (bounded) until it
        set `ready` (listening), so nothing falls between subscribing and the first event."""
        ready = None
        with self._lock:
            self._subs.append(sub)
            self._stop.clear()
            if pump is not None and self._thread is None:
                ready = threading.Event()
                self._thread = threading.Thread(target=pump, args=(ready,), name=self.name, daemon=True)
                self._thread.start()
        if ready is not None:
            ready.wait(5)

    def drop(self, sub: S) -> None:
        """Remove `sub`; the pump is asked to end when it was the last. Idempotent."""
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            if not self._subs:
                self._stop.set()

    def keep_running(self) -> bool:
        """For the pump, between reads: False once nobody subscribes (the pump must return)."""
        if not self._stop.is_set():
            return True
        with self._lock:
            if not self._subs:
                self._thread = None
                return False
            self._stop.clear()                       # someone subscribed again meanwhile
            return True

    def ended(self) -> None:
        """The pump stopped by itself (an error): the next subscription starts a new one."""
        with self._lock:
            self._thread = None

    def all(self) -> list[S]:
        with self._lock:
            return list(self._subs)

    def close(self) -> None:
        """Ask the pump to end and close every subscription. Idempotent."""
        self._stop.set()
        for s in self.all():
            s.close()
