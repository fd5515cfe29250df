"""Startup steps: planes concurrently, a plane's own steps in order, barriers after everything."""
from __future__ import annotations

import threading

from agent.composition import Step, run_steps


def test_planes_run_concurrently_in_order_and_barrier_waits():
    log: list[str] = []
    lock = threading.Lock()
    b_started = threading.Event()

    def rec(name):
        with lock:
            log.append(name)

    def a1():
        # only returns early if plane b runs at the same time (sequential steps would time out)
        rec("a1:" + ("concurrent" if b_started.wait(10) else "sequential"))

    def b1():
        b_started.set()
        rec("b1")

    steps = [Step("a1", a1, plane="a"), Step("a2", lambda: rec("a2"), plane="a"), Step("b1", b1, plane="b"),
             Step("barrier", lambda: rec("barrier"), barrier=True), Step("c1", lambda: rec("c1"), plane="c")]
    ran: list[str] = []
    run_steps(steps, lambda s: (s.run(), ran.append(s.name)))
    assert "a1:concurrent" in log
    assert log.index("a1:concurrent") < log.index("a2")                   # a plane's steps in order
    assert log.index("barrier") > max(log.index("a2"), log.index("b1"))   # after every earlier step
    assert log[-1] == "c1" and sorted(ran) == sorted(s.name for s in steps)
