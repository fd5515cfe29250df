"""Per-key locks: the same key never runs twice at once.

CSI's rule (LESSONS.md #7): a second operation on a key already in flight
gets ABORTED, unless the caller asked to wait; waiting is bounded by the
call deadline.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Hashable, Iterator

from agent.errors import Aborted, DeadlineExceeded


class KeyedLocks:
    """A lock per key, created on first use and dropped when nobody holds or waits on it."""

    def __init__(self, kind: str) -> None:
        self._kind = kind                      # e.g. "volume", "instance": used in error messages
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list] = {}  # key -> [lock, users]

    @contextmanager
    def hold(self, key: Hashable, *, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
        """Hold `key` for the block.

        wait=False: raise Aborted at once when the key is held.
        wait=True: wait up to `timeout` seconds (None = forever), then raise DeadlineExceeded.
        """
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        lock: threading.Lock = entry[0]
        try:
            if wait:
                acquired = lock.acquire(timeout=-1 if timeout is None else max(timeout, 0))
                if not acquired:
                    raise DeadlineExceeded(f"timed out waiting for the in-flight operation on {self._kind} {key}",
                                           reason="LOCK_WAIT_TIMEOUT", metadata={"key": str(key)})
            elif not lock.acquire(blocking=False):
                raise Aborted(f"another operation on {self._kind} {key} is in flight; retry later",
                              metadata={"key": str(key), "kind": self._kind})
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def held(self, key: Hashable) -> bool:
        with self._guard:
            entry = self._locks.get(key)
            return bool(entry and entry[0].locked())


def remaining(deadline: float | None) -> float | None:
    """Seconds left until a time.monotonic() deadline (None = unbounded)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class SharedExclusive:
    """Per-key gate: any number of shared holders, or one exclusive holder. A waiting
    exclusive holder goes first (new shared holders wait), so a stream of shared
    holders cannot starve it. Timeouts raise DeadlineExceeded like KeyedLocks."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._cv = threading.Condition()
        self._shared: dict[Hashable, int] = {}
        self._exclusive: set[Hashable] = set()
        self._waiting: dict[Hashable, int] = {}        # exclusive waiters per key

    def _wait(self, ready, key: Hashable, timeout: float | None) -> None:
        if not self._cv.wait_for(ready, timeout=timeout):
            raise DeadlineExceeded(f"timed out waiting for the in-flight operation on {self._kind} {key}",
                                   reason="LOCK_WAIT_TIMEOUT", metadata={"key": str(key)})

    @contextmanager
    def shared(self, key: Hashable, *, timeout: float | None = None) -> Iterator[None]:
        with self._cv:
            self._wait(lambda: key not in self._exclusive and not self._waiting.get(key), key, timeout)
            self._shared[key] = self._shared.get(key, 0) + 1
        try:
            yield
        finally:
            with self._cv:
                self._shared[key] -= 1
                if not self._shared[key]:
                    del self._shared[key]
                    self._cv.notify_all()

    @contextmanager
    def exclusive(self, key: Hashable, *, timeout: float | None = None) -> Iterator[None]:
        with self._cv:
            self._waiting[key] = self._waiting.get(key, 0) + 1
            try:
                self._wait(lambda: key not in self._exclusive and not self._shared.get(key), key, timeout)
            finally:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]
                    self._cv.notify_all()       # shared waiters held back by this waiter may go
            self._exclusive.add(key)
        try:
            yield
        finally:
            with self._cv:
                self._exclusive.discard(key)
                self._cv.notify_all()
