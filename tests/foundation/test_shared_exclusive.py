"""The team gate (agent/services/locks.SharedExclusive): creations share a team, a
whole-team destroy excludes them, and a waiting destroy is not starved by new creations."""
from __future__ import annotations

import threading
import time

import pytest

from agent.errors import DeadlineExceeded
from agent.services.locks import SharedExclusive


def test_shared_holders_overlap_and_exclusive_waits_for_them():
    gate, log = SharedExclusive("team"), []
    with gate.shared("t"), gate.shared("t"):           # two creations at once
        with pytest.raises(DeadlineExceeded) as exc:
            with gate.exclusive("t", timeout=0.05):
                pass
        assert exc.value.reason == "LOCK_WAIT_TIMEOUT" and "team t" in exc.value.message
        with gate.exclusive("other", timeout=0.05):    # other keys are independent
            log.append("other")
    with gate.exclusive("t", timeout=1):
        log.append("t")
    assert log == ["other", "t"]


def test_exclusive_holds_new_shared_back_until_it_is_done():
    gate, order = SharedExclusive("team"), []
    entered = threading.Event()

    def destroyer():
        with gate.exclusive("t", timeout=5):
            entered.set()
            time.sleep(0.2)
            order.append("destroy")

    t = threading.Thread(target=destroyer)
    t.start()
    entered.wait(5)
    with gate.shared("t", timeout=5):
        order.append("create")
    t.join()
    assert order == ["destroy", "create"]


def test_a_waiting_exclusive_goes_before_later_shared_holders():
    gate, order = SharedExclusive("team"), []
    first = gate.shared("t")
    first.__enter__()                                   # a creation in flight
    waiting = threading.Thread(target=lambda: _exclusive(gate, order))
    waiting.start()
    deadline = time.monotonic() + 5
    while not gate._waiting.get("t") and time.monotonic() < deadline:
        time.sleep(0.005)
    late = threading.Thread(target=lambda: _shared(gate, order))
    late.start()
    time.sleep(0.1)
    assert order == []                                  # the late creation waits behind the destroy
    first.__exit__(None, None, None)
    waiting.join(5)
    late.join(5)
    assert order == ["destroy", "create"]


def _exclusive(gate, order):
    with gate.exclusive("t", timeout=5):
        order.append("destroy")


def _shared(gate, order):
    with gate.shared("t", timeout=5):
        order.append("create")
