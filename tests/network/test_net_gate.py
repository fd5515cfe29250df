"""The network gate (locks.SharedExclusive with the ABORT policy): port operations share a
network, deleting it is exclusive; a port operation meeting a deletion is ABORTED at once,
a deletion waits for the port operations in flight (bounded by its deadline)."""
from __future__ import annotations

import threading
import time

import pytest

from agent.errors import Aborted
from agent.services.locks import SharedExclusive, WhenBusy


def _gate() -> SharedExclusive:
    return SharedExclusive("network", when_busy=WhenBusy.ABORT, shared_work="port operations")


def test_port_operation_during_deletion_is_aborted_at_once():
    gate = _gate()
    with gate.exclusive("n1", deadline=time.monotonic() + 1):
        start = time.monotonic()
        with pytest.raises(Aborted) as e:
            with gate.shared("n1"):
                pass
        assert time.monotonic() - start < 0.5
        assert e.value.message == "network n1 is being changed or deleted; retry later"
        assert e.value.metadata == {"network": "n1"} and e.value.reason == "OPERATION_IN_FLIGHT"
        with pytest.raises(Aborted) as e:
            with gate.exclusive("n1", deadline=time.monotonic() + 1):
                pass
        assert e.value.message == "another operation on network n1 is in flight; retry later"
        with gate.shared("n2"):                          # other networks are independent
            pass


def test_deletion_waits_for_port_operations_then_aborts_at_its_deadline():
    gate = _gate()
    with gate.shared("n1"):
        with pytest.raises(Aborted) as e:
            with gate.exclusive("n1", deadline=time.monotonic() + 0.1):
                pass
        assert e.value.message == "port operations on network n1 still in flight; retry later"
    with gate.shared("n1"), gate.shared("n1"):
        pass                                             # the failed deletion left nothing behind

    held, order = _gate(), []
    entered = threading.Event()

    def port_op():
        with held.shared("n1"):
            entered.set()
            time.sleep(0.2)
            order.append("port")

    t = threading.Thread(target=port_op)
    t.start()
    entered.wait(5)
    with held.exclusive("n1", deadline=None):
        order.append("delete")
    t.join()
    assert order == ["port", "delete"]


def test_a_waiting_deletion_refuses_new_port_operations():
    gate, ready = _gate(), threading.Event()
    first = gate.shared("n1")
    first.__enter__()
    waiter = threading.Thread(target=lambda: _delete(gate, ready))
    waiter.start()
    deadline = time.monotonic() + 5
    while not gate._waiting.get("n1") and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(Aborted):
        with gate.shared("n1"):
            pass
    first.__exit__(None, None, None)
    waiter.join(5)
    assert ready.is_set()


def _delete(gate, done):
    with gate.exclusive("n1", deadline=time.monotonic() + 5):
        done.set()
