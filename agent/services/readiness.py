"""Startup readiness: where every startup step stands (pending, running, failed with
a reason, waiting for another, done). Probe, health and GetCapabilities read it;
the composition's StartupRunner writes it."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable


@dataclass
class StepState:
    state: str = "pending"            # pending | running | failed | waiting | done
    reason: str = ""
    attempts: int = 0
    seconds: float = 0.0              # duration of the successful attempt


class Readiness:
    """Where every startup step stands; ready when all are done. Thread-safe."""

    def __init__(self, steps: list[str]) -> None:
        self._lock = threading.Condition()
        self._steps = {s: StepState() for s in steps}
        self._on_ready: list[Callable[[], None]] = []

    def _set(self, step: str, **kw: object) -> None:
        fire = []
        with self._lock:
            st = self._steps.setdefault(step, StepState())
            was_ready = self._ready()
            for k, v in kw.items():
                setattr(st, k, v)
            if self._ready() and not was_ready:
                fire = list(self._on_ready)
            self._lock.notify_all()
        for fn in fire:
            fn()

    def running(self, step: str) -> None:
        with self._lock:
            attempts = self._steps[step].attempts + 1 if step in self._steps else 1
        self._set(step, state="running", attempts=attempts)

    def done(self, step: str, seconds: float = 0.0) -> None:
        self._set(step, state="done", reason="", seconds=seconds)

    def failed(self, step: str, reason: str) -> None:
        self._set(step, state="failed", reason=reason)

    def waiting(self, step: str, reason: str) -> None:
        self._set(step, state="waiting", reason=reason)

    def on_ready(self, fn: Callable[[], None]) -> None:
        """Call fn() (once) when the last step is done; at once if already ready."""
        with self._lock:
            ready = self._ready()
            if not ready:
                self._on_ready.append(fn)
        if ready:
            fn()

    def _ready(self) -> bool:
        return all(s.state == "done" for s in self._steps.values())

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready()

    def pending(self) -> list[str]:
        with self._lock:
            return [n for n, s in self._steps.items() if s.state != "done"]

    def problems(self) -> list[tuple[str, str, int]]:
        """(step, why it is not done, attempts) of every failing or waiting step."""
        with self._lock:
            return [(n, s.reason, s.attempts) for n, s in self._steps.items()
                    if s.state in ("failed", "waiting")]

    def state(self, step: str) -> StepState:
        with self._lock:
            return StepState(**vars(self._steps.get(step, StepState())))

    def wait(self, timeout: float | None = None) -> bool:
        with self._lock:
            return self._lock.wait_for(self._ready, timeout)
