"""Startup steps: planes concurrently, a plane's own steps in order, barriers after every
earlier step SUCCEEDED; a failing step is retried with backoff and the agent is not ready
(Readiness says which step and why) until it succeeds."""
from __future__ import annotations

import threading

from agent.composition.startup import StartupRunner, Step
from agent.services.readiness import Readiness


def _runner(steps, **kw) -> tuple[StartupRunner, Readiness]:
    readiness = Readiness([s.name for s in steps])
    return StartupRunner(steps, readiness, first_delay=0.01, max_delay=0.05, **kw), readiness


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
    runner, readiness = _runner(steps)
    runner.run()
    assert readiness.wait(10)
    assert "a1:concurrent" in log
    assert log.index("a1:concurrent") < log.index("a2")                   # a plane's steps in order
    assert log.index("barrier") > max(log.index("a2"), log.index("b1"))   # after every earlier step
    assert log[-1] == "c1" and readiness.ready and readiness.problems() == []


def test_a_failing_step_is_retried_and_blocks_readiness_with_its_reason():
    fail_left = {"n": 3}
    calls: list[str] = []
    release = threading.Event()

    def flaky():
        calls.append("flaky")
        if fail_left["n"]:
            fail_left["n"] -= 1
            if fail_left["n"] == 0:
                release.wait(10)              # hold the last failure until the test looked
            raise RuntimeError("dataset is busy: pid 42 (sleep) has its working directory there")

    failures = []
    steps = [Step("storage", flaky, plane="storage"), Step("net", lambda: calls.append("net"), plane="net"),
             Step("instances", lambda: calls.append("instances"), barrier=True)]
    runner, readiness = _runner(steps, on_failure=lambda s, e, n: failures.append((s.name, n)))
    runner.run()                                   # returns after every step had its chance
    assert not readiness.ready
    assert "storage" in readiness.pending() and "instances" in readiness.pending()
    problems = dict((s, why) for s, why, _ in readiness.problems())
    assert "dataset is busy" in problems["storage"]
    assert problems["instances"] == "waiting for storage"
    assert "instances" not in calls                # a barrier never runs before its planes succeeded
    release.set()
    assert readiness.wait(10)
    assert calls.count("flaky") == 4 and calls[-1] == "instances"
    assert failures == [("storage", 1), ("storage", 2), ("storage", 3)]
    assert readiness.state("storage").attempts == 4
    runner.stop()


def test_stop_ends_the_retries():
    steps = [Step("never", lambda: (_ for _ in ()).throw(RuntimeError("no")), plane="x")]
    runner, readiness = _runner(steps)
    runner.run()
    runner.stop()
    n = readiness.state("never").attempts
    threading.Event().wait(0.2)
    assert readiness.state("never").attempts <= n + 1 and not readiness.ready
