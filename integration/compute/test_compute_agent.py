"""The agent as a real process, driven over gRPC (and devcloudctl) like a
controller, checked by reading cgroupfs and /proc directly.

Also: the data plane survives the agent (stop and SIGKILL leave slices,
scopes and their processes alone; a restarted agent reports them), and the
startup reconcile sweeps intent records left by a crash.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import compute_pb2 as pb
from agent._proto.devcloud.agent.v1 import compute_pb2_grpc as pb_grpc
from agent._proto.devcloud.agent.v1 import identity_pb2, identity_pb2_grpc
from agent.drivers.cgroup import MARK_XATTR, PENDING_XATTR
from tests.support.cgroup import cgroup_controllers_available, compute_overrides, remove_cgroup_tree
from tests.support.server import REPO, AgentProcess, temp_dir


@pytest.fixture
def agent(cgroup_session_dir):
    root = os.path.join(cgroup_session_dir, f"proc-{time.monotonic_ns()}")
    tmp = temp_dir()
    a = AgentProcess(tmp, overrides=compute_overrides(root)).start()
    a.root = root
    try:
        yield a
    finally:
        a.stop()
        remove_cgroup_tree(root)
        shutil.rmtree(tmp, ignore_errors=True)


def stub(a):
    return pb_grpc.ComputeServiceStub(a.channel())


def cgroup_of(pid):
    return open(f"/proc/{pid}/cgroup").read().splitlines()[-1].split("::", 1)[1]


def events(path):
    return dict((k, int(v)) for k, v in (l.split() for l in open(os.path.join(path, "cgroup.events"))))


def on_cpu_ns(pid):
    return int(open(f"/proc/{pid}/schedstat").read().split()[0])


def until(cond, what, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


def ctl(a, *args):
    r = subprocess.run([sys.executable, "-m", "agent.cli.ctl", "--socket", a.socket, *args], cwd=REPO,
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    return r.returncode, r.stdout, r.stderr


def test_capability_and_facility_reported(agent, cgroup2_root):
    with agent.channel() as ch:
        caps = identity_pb2_grpc.IdentityServiceStub(ch).GetCapabilities(identity_pb2.GetCapabilitiesRequest(),
                                                                          timeout=10)
    cap = next(c for c in caps.capabilities if c.kind == identity_pb2.CAPABILITY_KIND_COMPUTE_CGROUP_V2)
    assert cap.available
    fac = next(f for f in caps.facilities if f.name == "cgroup")
    assert set(fac.features) == cgroup_controllers_available(cgroup2_root)


def test_controller_workflow(agent, cgroup2_root, cgroup_children):
    s = stub(agent)
    slice_ = s.EnsureSlice(pb.EnsureSliceRequest(team="team-a"), timeout=10).slice
    assert slice_.path == os.path.join(agent.root, "team-a.slice") and os.path.isdir(slice_.path)
    assert os.getxattr(slice_.path, MARK_XATTR) == b"owner=devcloud-agent kind=slice team=team-a"
    scope = s.EnsureScope(pb.EnsureScopeRequest(team="team-a", instance_id="node-1"), timeout=10).scope
    assert os.path.isdir(scope.path)
    busy, ref = cgroup_children.busy(), cgroup_children.busy()
    s.AttachProcesses(pb.AttachProcessesRequest(team="team-a", instance_id="node-1", pids=[busy.pid]), timeout=10)
    assert cgroup_of(busy.pid) == "/" + os.path.relpath(scope.path, cgroup2_root)

    s.Freeze(pb.FreezeRequest(team="team-a"), timeout=10)           # the whole team
    assert events(slice_.path)["frozen"] == 1 and events(scope.path)["frozen"] == 1
    frozen, r0 = on_cpu_ns(busy.pid), on_cpu_ns(ref.pid)
    until(lambda: on_cpu_ns(ref.pid) - r0 > 200_000_000, "the reference process to run 200 ms")
    assert on_cpu_ns(busy.pid) == frozen
    with pytest.raises(grpc.RpcError) as e:
        s.Thaw(pb.ThawRequest(team="team-a", instance_id="node-1"), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    s.Thaw(pb.ThawRequest(team="team-a"), timeout=10)
    until(lambda: on_cpu_ns(busy.pid) > frozen, "the thawed process to run")

    with pytest.raises(grpc.RpcError) as e:
        s.DeleteSlice(pb.DeleteSliceRequest(team="team-a"), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert s.DeleteSlice(pb.DeleteSliceRequest(team="team-a", kill=True), timeout=10).deleted
    assert busy.wait(timeout=10) == -9 and ref.poll() is None
    assert not os.path.exists(slice_.path)


def test_limits_and_refusals(agent, cgroup2_root):
    s = stub(agent)
    s.EnsureSlice(pb.EnsureSliceRequest(team="t"), timeout=10)
    avail = cgroup_controllers_available(cgroup2_root)
    for ctrl, lim in (("memory", pb.Limits(memory=pb.MemoryLimits(max="256M"))),
                      ("cpu", pb.Limits(cpu=pb.CpuLimits(quota_us="20000"))),
                      ("pids", pb.Limits(pids=pb.PidsLimits(max="16")))):
        if ctrl in avail:
            continue
        with pytest.raises(grpc.RpcError) as e:
            s.EnsureScope(pb.EnsureScopeRequest(team="t", instance_id=f"x-{ctrl}", limits=lim), timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and ctrl in e.value.details()
        assert not os.path.exists(os.path.join(agent.root, "t.slice", f"x-{ctrl}.scope"))
    if "hugetlb" in avail:
        r = s.EnsureScope(pb.EnsureScopeRequest(team="t", instance_id="h", limits=pb.Limits(
            hugetlb=[pb.HugetlbLimit(page_size="2MB", max="8M")])), timeout=10)
        assert open(os.path.join(r.scope.path, "hugetlb.2MB.max")).read().strip() == str(8 << 20)


def test_data_plane_survives_agent_stop_and_crash(cgroup_session_dir, cgroup_children, cgroup2_root):
    root = os.path.join(cgroup_session_dir, f"survive-{time.monotonic_ns()}")
    tmp = temp_dir()
    try:
        a = AgentProcess(tmp, overrides=compute_overrides(root)).start()
        s = stub(a)
        s.EnsureSlice(pb.EnsureSliceRequest(team="t"), timeout=10)
        path = s.EnsureScope(pb.EnsureScopeRequest(team="t", instance_id="keep"), timeout=10).scope.path
        p = cgroup_children.start()
        s.AttachProcesses(pb.AttachProcessesRequest(team="t", instance_id="keep", pids=[p.pid]), timeout=10)
        assert a.stop() == 0
        assert p.poll() is None and os.path.isdir(path) and cgroup_of(p.pid).endswith("/t.slice/keep.scope")
        # a crash leaves an intent record behind (mkdir never happened)
        os.setxattr(os.path.join(root, "t.slice"), PENDING_XATTR + "ghost.scope", b"1")
        a = AgentProcess(tmp, overrides=compute_overrides(root)).start()
        s = stub(a)
        got = s.GetScope(pb.GetScopeRequest(team="t", instance_id="keep"), timeout=10).scope
        assert list(got.pids) == [p.pid] and got.populated
        assert not any(x.startswith(PENDING_XATTR) for x in os.listxattr(os.path.join(root, "t.slice")))
        a.kill()
        assert p.poll() is None and os.path.isdir(path)
    finally:
        try:
            a.stop()
        except Exception:
            pass
        remove_cgroup_tree(root)
        shutil.rmtree(tmp, ignore_errors=True)


def test_devcloudctl_compute(agent, cgroup_children, cgroup2_root):
    rc, out, err = ctl(agent, "compute", "ensure", "ops")
    assert rc == 0, err
    assert "changed" in out and os.path.isdir(os.path.join(agent.root, "ops.slice"))
    rc, out, err = ctl(agent, "--json", "compute", "ensure", "ops", "ci-1")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["changed"] is True and doc["scope"]["path"] == os.path.join(agent.root, "ops.slice", "ci-1.scope")
    p = cgroup_children.start()
    rc, out, err = ctl(agent, "compute", "attach", "ops", "ci-1", str(p.pid))
    assert rc == 0 and out.split() == [str(p.pid)], err
    rc, out, _ = ctl(agent, "compute", "list", "--team", "ops")
    assert rc == 0 and "ci-1" in out and "yes" in out
    rc, out, _ = ctl(agent, "compute", "stats", "ops", "ci-1")
    assert rc == 0 and "usage=" in out and "pressure cpu" in out
    rc, out, _ = ctl(agent, "compute", "freeze", "ops", "ci-1")
    assert rc == 0 and events(os.path.join(agent.root, "ops.slice", "ci-1.scope"))["frozen"] == 1
    rc, out, _ = ctl(agent, "compute", "thaw", "ops", "ci-1")
    assert rc == 0 and events(os.path.join(agent.root, "ops.slice", "ci-1.scope"))["frozen"] == 0
    rc, out, err = ctl(agent, "compute", "delete", "ops", "ci-1")
    assert rc == 1 and "SCOPE_POPULATED" in err
    rc, out, err = ctl(agent, "compute", "ensure", "ops", "x", "--memory-max", "1Q")
    assert rc == 1 and "field limits.memory.max" in err
    if "memory" not in cgroup_controllers_available(cgroup2_root):
        rc, out, err = ctl(agent, "compute", "ensure", "ops", "x", "--memory-max", "1G")
        assert rc == 1 and "FAILED_PRECONDITION" in err and "memory" in err
    rc, out, _ = ctl(agent, "compute", "delete", "ops", "ci-1", "--kill")
    assert rc == 0 and out.strip() == "deleted" and p.wait(timeout=10) == -9
    rc, out, _ = ctl(agent, "compute", "delete", "ops", "ci-1")
    assert rc == 0 and "absent" in out
