"""Ownership in the compute plane applies to every verb: a team slice's Kill/Freeze never
reaches a child cgroup that is not ours, and AttachProcesses never moves a task of the agent,
a process it started, or a daemon it runs into a workload scope (a later Kill would kill it)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from agent.drivers.cgroup import CgroupDriver
from agent.errors import FailedPrecondition
from agent.metrics import Metrics
from agent.model.compute import Limits
from agent.services.compute import ComputeService
from tests.support.cgroup import write_cgroup_file


@pytest.fixture
def daemons():
    return set()


@pytest.fixture
def svc(cgroup_test_root, daemons):
    return ComputeService(CgroupDriver(Metrics(), root=cgroup_test_root), own_processes=lambda: set(daemons))


def _foreign_child(svc, cgroup_children):
    """A cgroup without our mark in the team slice, with a live process in it."""
    svc.ensure_slice("t", Limits())
    svc.ensure_scope("t", "ours", Limits())
    path = os.path.join(svc.slice_path("t"), "foreign.scope")
    os.mkdir(path)
    p = cgroup_children.detached()
    write_cgroup_file(os.path.join(path, "cgroup.procs"), str(p.pid))
    return path, p


@pytest.mark.parametrize("verb", ["kill", "freeze"])
def test_slice_kill_and_freeze_refuse_foreign_children(svc, cgroup_children, verb):
    path, p = _foreign_child(svc, cgroup_children)
    with pytest.raises(FailedPrecondition) as e:
        getattr(svc, verb)("t")
    assert e.value.reason == "NOT_OURS" and "foreign.scope" in e.value.message
    assert p.poll() is None, "the foreign process must live"
    assert open(os.path.join(path, "cgroup.freeze")).read().strip() == "0"
    assert open(os.path.join(svc.slice_path("t"), "cgroup.freeze")).read().strip() == "0"
    getattr(svc, verb)("t", "ours")                  # our own scope: fine
    p.kill()
    p.wait(10)
    os.rmdir(path)


def test_attach_refuses_every_thread_of_the_agent(svc):
    svc.ensure_slice("t", Limits())
    svc.ensure_scope("t", "s", Limits())
    tid, ready, done = [], threading.Event(), threading.Event()

    def worker():
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(10)
    t = threading.Thread(target=worker)
    t.start()
    ready.wait(10)
    try:
        for task in (os.getpid(), tid[0]):
            with pytest.raises(FailedPrecondition) as e:
                svc.attach("t", "s", [task])
            assert e.value.reason == "NOT_OURS", task
        assert open(os.path.join(svc.scope_path("t", "s"), "cgroup.procs")).read().split() == []
    finally:
        done.set()
        t.join()


def test_attach_refuses_processes_the_agent_started(svc, cgroup_children, daemons):
    svc.ensure_slice("t", Limits())
    svc.ensure_scope("t", "s", Limits())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])      # our descendant
    daemon = cgroup_children.detached()                                                    # a daemon we run
    daemons.add(daemon.pid)
    try:
        for pid in (child.pid, daemon.pid):
            with pytest.raises(FailedPrecondition) as e:
                svc.attach("t", "s", [pid])
            assert e.value.reason == "NOT_OURS" and str(pid) in e.value.message
        workload = cgroup_children.detached()
        assert svc.attach("t", "s", [workload.pid]) == (workload.pid,)
    finally:
        child.kill()
        child.wait()
