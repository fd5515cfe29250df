"""Startup steps and their runner: every step is retried with backoff until it
succeeds, and the agent is ready only when all of them did.

Order: steps of different planes run concurrently (a node with many
instances spends its start in each plane's reconcile), a plane's own steps in
order; a barrier step (a plane composing others) runs once every earlier
step SUCCEEDED. `StartupRunner.run()` returns as soon as every step had its
first chance (done, failing and being retried, or waiting for an earlier
one), so the process can tell its supervisor it is up; what is unfinished,
and why, is in Readiness (Probe, GetCapabilities, metrics).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from agent.services.readiness import Readiness

log = logging.getLogger("devcloud.agent.startup")

FIRST_DELAY = 0.2             # seconds before the first retry of a failed step
MAX_DELAY = 10.0              # backoff cap between retries


@dataclass
class Step:
    """A named startup step. run() raises when the step could not finish (it is retried).

    plane: steps of one plane run in order, planes concurrently; barrier: runs after every
    earlier step succeeded; gates: capability kinds that are unavailable while it is unfinished."""

    name: str
    run: Callable[[], object]           # its return value is ignored
    plane: str = ""
    barrier: bool = False
    gates: tuple[str, ...] = ()


@dataclass
class StartupRunner:
    """Runs the steps as Step describes, retrying each until it succeeds."""

    steps: list[Step]
    readiness: Readiness
    on_failure: Callable[[Step, BaseException, int], None] = lambda step, exc, attempt: None
    on_success: Callable[[Step, float], None] = lambda step, seconds: None
    first_delay: float = FIRST_DELAY
    max_delay: float = MAX_DELAY
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def run(self) -> None:
        """Start everything; return once every step had its first chance (see module doc)."""
        earlier: list[Step] = []
        batch: list[Step] = []
        for step in self.steps:
            if step.barrier:
                self._run_batch(batch)
                self._run_barrier(step, list(earlier))
                batch = []
            else:
                batch.append(step)
            earlier.append(step)
        self._run_batch(batch)

    def stop(self) -> None:
        """Stop retrying (at shutdown); a step attempt in progress finishes on its own."""
        self._stop.set()

    # -- internals ------------------------------------------------------------------
    def _attempt(self, step: Step) -> bool:
        self.readiness.running(step.name)
        attempt = self.readiness.state(step.name).attempts
        started = time.monotonic()
        try:
            step.run()
        except Exception as exc:       # a step never crashes the daemon: it is retried
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.readiness.failed(step.name, reason)
            self.on_failure(step, exc, attempt)
            return False
        took = time.monotonic() - started
        self.readiness.done(step.name, took)
        self.on_success(step, took)
        return True

    def _until_done(self, step: Step, first: threading.Event | None,
                    settled: threading.Event | None = None) -> bool:
        """Attempt, then retry with backoff until it succeeds or stop(). `first` is set after
        the first attempt; `settled` when the first attempt failed (the caller may go on)."""
        delay = self.first_delay
        ok = self._attempt(step)
        if first is not None:
            first.set()
        if not ok and settled is not None:
            settled.set()
        while not ok and not self._stop.wait(delay):
            delay = min(delay * 2, self.max_delay)
            ok = self._attempt(step)
        return ok

    def _run_batch(self, batch: list[Step]) -> None:
        """Each plane's steps in order in its own thread; returns once every plane finished
        or has a step failing (retried in that thread, its later steps after it)."""
        groups: dict[str, list[Step]] = {}
        for step in batch:
            groups.setdefault(step.plane or step.name, []).append(step)
        settled = []
        for key, group in groups.items():
            ev = threading.Event()
            settled.append(ev)

            def plane(group: list[Step] = group, ev: threading.Event = ev) -> None:
                for step in group:
                    if not self._until_done(step, None, settled=ev):
                        return                         # stopped while still failing
                ev.set()
            t = threading.Thread(target=plane, name=f"startup-{key}", daemon=True)
            self._threads.append(t)
            t.start()
        for ev in settled:
            ev.wait()

    def _run_barrier(self, step: Step, earlier: list[Step]) -> None:
        """Run `step` once every earlier step is done: now if they are, else in the background
        (Readiness says what it waits for)."""
        missing = [s.name for s in earlier if self.readiness.state(s.name).state != "done"]
        if not missing:
            first = threading.Event()
            t = threading.Thread(target=self._until_done, args=(step, first), name=f"startup-{step.name}",
                                 daemon=True)
            self._threads.append(t)
            t.start()
            first.wait()
            return
        self.readiness.waiting(step.name, "waiting for " + ", ".join(missing))

        def later() -> None:
            while not self._stop.is_set():
                left = [s.name for s in earlier if self.readiness.state(s.name).state != "done"]
                if not left:
                    self._until_done(step, None)
                    return
                self.readiness.waiting(step.name, "waiting for " + ", ".join(left))
                self._stop.wait(0.2)
        t = threading.Thread(target=later, name=f"startup-{step.name}", daemon=True)
        self._threads.append(t)
        t.start()
