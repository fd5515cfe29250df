"""Per-key locks and gates: the same key never runs twice at once.

CSI's rule (LESSONS.md #7): a second operation on a key already in flight
gets ABORTED, unless the caller asked to wait; waiting is bounded by the
call deadline.
"""
from __future__ import annotations

import enum
import threading
import time
from contextlib import contextmanager
from typing import Callable, Hashable, Iterator

from agent.errors import Aborted, DeadlineExceeded


def _timed_out(kind: str, key: Hashable) -> DeadlineExceeded:
    return DeadlineExceeded(f"timed out waiting for the in-flight operation on {kind} {key}",
                            reason="LOCK_WAIT_TIMEOUT", metadata={"key": str(key)})


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
                if not lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
                    raise _timed_out(self._kind, key)
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
        """True while someone holds `key` (a snapshot: it may change at once)."""
        with self._guard:
            entry = self._locks.get(key)
            return bool(entry and entry[0].locked())


def remaining(deadline: float | None) -> float | None:
    """Seconds left until a time.monotonic() deadline (None = unbounded)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _end(timeout: float | None, deadline: float | None) -> float | None:
    """The earlier of `timeout` (seconds from now) and `deadline` (monotonic); None = unbounded."""
    ends = [e for e in (None if timeout is None else time.monotonic() + timeout, deadline) if e is not None]
    return min(ends) if ends else None


class WhenBusy(enum.Enum):
    """What a caller of a SharedExclusive gate does when the key is not free for it."""

    WAIT = "wait"      # wait, bounded by its timeout/deadline, then DeadlineExceeded LOCK_WAIT_TIMEOUT
    ABORT = "abort"    # Aborted at once; only an exclusive caller that meets nothing but shared
    #                    holders waits for them (bounded), then Aborted


class SharedExclusive:
    """Per-key gate: any number of shared holders, or one exclusive holder. A waiting
    exclusive holder goes first (new shared holders are held back), so a stream of
    shared holders cannot starve it.

    The policy (`when_busy`, per gate, or per call) decides what a caller that finds
    the key taken does:
    - WAIT (the storage team gate: creations share a team, a whole-team destroy
      excludes them): shared and exclusive callers wait up to their timeout/deadline,
      then DeadlineExceeded LOCK_WAIT_TIMEOUT, like KeyedLocks.
    - ABORT (the network gate: port operations share a network, deleting it is
      exclusive): a shared caller meeting an exclusive one (holding or waiting) gets
      Aborted "<kind> <key> is being changed or deleted"; an exclusive caller meeting
      another exclusive one gets Aborted "another operation on <kind> <key> is in
      flight"; an exclusive caller waits for the shared holders in flight to leave, up
      to its deadline, then Aborted "<shared_work> on <kind> <key> still in flight".
      Aborted carries metadata {kind: key}.
    """

    def __init__(self, kind: str, *, when_busy: WhenBusy = WhenBusy.WAIT, shared_work: str = "operations") -> None:
        self._kind = kind                              # e.g. "team", "network": used in error messages
        self._when_busy = when_busy
        self._shared_work = shared_work                # what the shared holders do, for error messages
        self._cv = threading.Condition()
        self._shared: dict[Hashable, int] = {}
        self._exclusive: set[Hashable] = set()
        self._waiting: dict[Hashable, int] = {}        # exclusive waiters per key

    def _aborted(self, message: str, key: Hashable) -> Aborted:
        return Aborted(f"{message}; retry later", metadata={self._kind: str(key)})

    def _wait(self, ready: Callable[[], bool], key: Hashable, end: float | None, on_timeout: Exception) -> None:
        if not self._cv.wait_for(ready, timeout=remaining(end)):
            raise on_timeout

    @contextmanager
    def shared(self, key: Hashable, *, timeout: float | None = None, deadline: float | None = None,
               when_busy: WhenBusy | None = None) -> Iterator[None]:
        """Hold `key` shared for the block (see the class doc for a busy key)."""
        with self._cv:
            def free() -> bool:
                return key not in self._exclusive and not self._waiting.get(key)
            if not free():
                if (when_busy or self._when_busy) is WhenBusy.ABORT:
                    raise self._aborted(f"{self._kind} {key} is being changed or deleted", key)
                self._wait(free, key, _end(timeout, deadline), _timed_out(self._kind, key))
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
    def exclusive(self, key: Hashable, *, timeout: float | None = None, deadline: float | None = None,
                  when_busy: WhenBusy | None = None) -> Iterator[None]:
        """Hold `key` exclusively for the block (see the class doc for a busy key)."""
        abort = (when_busy or self._when_busy) is WhenBusy.ABORT
        with self._cv:
            if abort and (key in self._exclusive or self._waiting.get(key)):
                raise self._aborted(f"another operation on {self._kind} {key} is in flight", key)
            self._waiting[key] = self._waiting.get(key, 0) + 1
            try:
                self._wait(lambda: key not in self._exclusive and not self._shared.get(key), key,
                           _end(timeout, deadline),
                           self._aborted(f"{self._shared_work} on {self._kind} {key} still in flight", key)
                           if abort else _timed_out(self._kind, key))
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
