"""ComputeService over a real in-process gRPC server, on real cgroup v2.

Results are checked by reading cgroupfs and /proc directly.
"""
from __future__ import annotations

import itertools
import os
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agent._proto.devcloud.agent.v1 import compute_pb2 as pb
from tests.support.cgroup import cgroup_controllers_available, require_controller, write_cgroup_file

_n = itertools.count()


def team():
    return f"team-{os.getpid()}-{next(_n)}"


def status(err: grpc.RpcError):
    """(code, reason, metadata, violated fields) of a rich status."""
    st = rpc_status.from_call(err)
    reason, meta, fields = "", {}, []
    for d in st.details if st else []:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            reason, meta = info.reason, dict(info.metadata)
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return err.code(), reason, meta, fields


def call_err(fn, req):
    with pytest.raises(grpc.RpcError) as e:
        fn(req, timeout=10)
    return status(e.value)


def events(path):
    return dict((k, int(v)) for k, v in (l.split() for l in open(os.path.join(path, "cgroup.events"))))


def test_ensure_three_times(compute_stub, compute_agent):
    _, root = compute_agent
    t = team()
    r = [compute_stub.EnsureSlice(pb.EnsureSliceRequest(team=t), timeout=10) for _ in range(3)]
    assert [x.changed for x in r] == [True, False, False]
    assert r[0].slice.path == os.path.join(root, f"{t}.slice") and os.path.isdir(r[0].slice.path)
    s = [compute_stub.EnsureScope(pb.EnsureScopeRequest(team=t, instance_id="vm-1"), timeout=10) for _ in range(3)]
    assert [x.changed for x in s] == [True, False, False]
    assert s[0].scope.path == os.path.join(root, f"{t}.slice", "vm-1.scope") and os.path.isdir(s[0].scope.path)
    assert s[0].scope.team == t and s[0].scope.instance_id == "vm-1"
    assert [d for d in os.listdir(r[0].slice.path) if d.endswith(".scope")] == ["vm-1.scope"]
    for _ in range(3):
        compute_stub.DeleteScope(pb.DeleteScopeRequest(team=t, instance_id="vm-1"), timeout=10)
    assert not os.path.exists(s[0].scope.path)
    assert compute_stub.DeleteSlice(pb.DeleteSliceRequest(team=t), timeout=10).deleted
    assert not compute_stub.DeleteSlice(pb.DeleteSliceRequest(team=t), timeout=10).deleted
    assert not os.path.exists(r[0].slice.path)


def test_lifecycle_over_grpc(compute_stub, cgroup_children):
    t = team()
    compute_stub.EnsureSlice(pb.EnsureSliceRequest(team=t), timeout=10)
    scope = compute_stub.EnsureScope(pb.EnsureScopeRequest(team=t, instance_id="job"), timeout=10).scope.path
    p = cgroup_children.detached(cgroup_children.BUSY)      # not a child of the (in-process) agent
    r = compute_stub.AttachProcesses(pb.AttachProcessesRequest(team=t, instance_id="job", pids=[p.pid]), timeout=10)
    assert list(r.pids) == [p.pid]
    assert open(os.path.join(scope, "cgroup.procs")).read().split() == [str(p.pid)]
    got = compute_stub.GetScope(pb.GetScopeRequest(team=t, instance_id="job"), timeout=10).scope
    assert got.populated and list(got.pids) == [p.pid]

    end = time.monotonic() + 10
    while compute_stub.GetStats(pb.GetStatsRequest(team=t, instance_id="job"), timeout=10).stats.cpu.usage_usec == 0:
        assert time.monotonic() < end
        time.sleep(0.01)
    st = compute_stub.GetStats(pb.GetStatsRequest(team=t, instance_id="job"), timeout=10).stats
    assert st.populated and st.HasField("cpu_pressure")
    assert compute_stub.GetStats(pb.GetStatsRequest(team=t), timeout=10).stats.cpu.usage_usec >= st.cpu.usage_usec

    f = compute_stub.Freeze(pb.FreezeRequest(team=t, instance_id="job"), timeout=10)
    assert f.frozen and events(scope)["frozen"] == 1
    assert compute_stub.Freeze(pb.FreezeRequest(team=t, instance_id="job"), timeout=10).frozen
    assert compute_stub.GetScope(pb.GetScopeRequest(team=t, instance_id="job"), timeout=10).scope.frozen
    assert not compute_stub.Thaw(pb.ThawRequest(team=t, instance_id="job"), timeout=10).frozen
    assert events(scope)["frozen"] == 0

    code, reason, meta, _ = call_err(compute_stub.DeleteScope, pb.DeleteScopeRequest(team=t, instance_id="job"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and reason == "SCOPE_POPULATED"
    assert p.poll() is None

    k = compute_stub.Kill(pb.KillRequest(team=t, instance_id="job"), timeout=10)
    p.wait(timeout=10)
    assert not k.populated and p.poll() is not None and events(scope)["populated"] == 0
    assert compute_stub.DeleteScope(pb.DeleteScopeRequest(team=t, instance_id="job"), timeout=10).deleted
    assert not os.path.exists(scope)
    code, *_ = call_err(compute_stub.GetScope, pb.GetScopeRequest(team=t, instance_id="job"))
    assert code == grpc.StatusCode.NOT_FOUND


def test_delete_scope_with_kill(compute_stub, cgroup_children):
    t = team()
    compute_stub.EnsureSlice(pb.EnsureSliceRequest(team=t), timeout=10)
    scope = compute_stub.EnsureScope(pb.EnsureScopeRequest(team=t, instance_id="k"), timeout=10).scope.path
    p = cgroup_children.detached()
    compute_stub.AttachProcesses(pb.AttachProcessesRequest(team=t, instance_id="k", pids=[p.pid]), timeout=10)
    assert compute_stub.DeleteScope(pb.DeleteScopeRequest(team=t, instance_id="k", kill=True), timeout=10).deleted
    p.wait(timeout=10)
    assert p.poll() is not None and not os.path.exists(scope)
    code, reason, *_ = call_err(compute_stub.EnsureScope, pb.EnsureScopeRequest(team=t + "x", instance_id="k"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and reason == "SLICE_NOT_FOUND"


@pytest.mark.parametrize("req, field", [
    (pb.EnsureSliceRequest(team="../x"), "team"),
    (pb.EnsureSliceRequest(team="Bad"), "team"),
    (pb.EnsureSliceRequest(team="t\n"), "team"),
    (pb.EnsureScopeRequest(team="t", instance_id="a/b"), "instance_id"),
    (pb.EnsureScopeRequest(team="t", instance_id=".."), "instance_id"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(memory=pb.MemoryLimits(max="12Q"))), "limits.memory.max"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(cpu=pb.CpuLimits(quota_us="500"))), "limits.cpu.quota_us"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(cpu=pb.CpuLimits(quota_us="1e6"))), "limits.cpu.quota_us"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(cpu=pb.CpuLimits(weight=10001))), "limits.cpu.weight"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(pids=pb.PidsLimits(max="-1"))), "limits.pids.max"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(cpuset=pb.CpusetLimits(cpus="0-4095"))), "limits.cpuset.cpus"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(io=pb.IoLimits(devices=[pb.IoDeviceLimits(device="999:999")]))),
     "limits.io.devices[0].device"),
    (pb.EnsureSliceRequest(team="t", limits=pb.Limits(hugetlb=[pb.HugetlbLimit(page_size="3MB", max="max")])),
     "limits.hugetlb[0].page_size"),
    (pb.AttachProcessesRequest(team="t", instance_id="i", pids=[1]), "pids[0]"),
    (pb.AttachProcessesRequest(team="t", instance_id="i"), "pids"),
])
def test_invalid_requests_name_the_field(compute_stub, compute_agent, req, field):
    _, root = compute_agent
    before = sorted(os.listdir(root)) if os.path.isdir(root) else []
    method = {pb.EnsureSliceRequest: compute_stub.EnsureSlice, pb.EnsureScopeRequest: compute_stub.EnsureScope,
              pb.AttachProcessesRequest: compute_stub.AttachProcesses}[type(req)]
    code, reason, _, fields = call_err(method, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in fields, fields
    assert (sorted(os.listdir(root)) if os.path.isdir(root) else []) == before


@pytest.mark.parametrize("controller, limits", [
    ("cpu", pb.Limits(cpu=pb.CpuLimits(quota_us="50000"))),
    ("memory", pb.Limits(memory=pb.MemoryLimits(max="512M"))),
    ("pids", pb.Limits(pids=pb.PidsLimits(max="100"))),
    ("io", pb.Limits(io=pb.IoLimits(weight=100))),
    ("cpuset", pb.Limits(cpuset=pb.CpusetLimits(cpus="0"))),
])
def test_unavailable_controller_is_failed_precondition_naming_it(compute_stub, cgroup2_root, compute_agent,
                                                                 controller, limits):
    if controller in cgroup_controllers_available(cgroup2_root):
        pytest.skip(f"{controller} is available here")
    t = team()
    code, reason, meta, _ = call_err(compute_stub.EnsureSlice, pb.EnsureSliceRequest(team=t, limits=limits))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and reason == "CONTROLLER_UNAVAILABLE"
    assert meta["controllers"] == controller
    assert not os.path.exists(os.path.join(compute_agent[1], f"{t}.slice"))


def test_values_reported_are_the_kernels(compute_stub, cgroup2_root):
    require_controller(cgroup2_root, "hugetlb")
    t = team()
    compute_stub.EnsureSlice(pb.EnsureSliceRequest(team=t), timeout=10)
    lim = pb.Limits(hugetlb=[pb.HugetlbLimit(page_size="2MB", max="5M")])
    r = compute_stub.EnsureScope(pb.EnsureScopeRequest(team=t, instance_id="h", limits=lim), timeout=10)
    assert "hugetlb" in r.scope.controllers
    got = {h.page_size: h.max for h in r.scope.limits.hugetlb}
    assert got == {"2MB": str(4 << 20), "1GB": "max"}
    assert open(os.path.join(r.scope.path, "hugetlb.2MB.max")).read().strip() == str(4 << 20)
    # UpdateLimits leaves what it is not asked about
    u = compute_stub.UpdateLimits(pb.UpdateLimitsRequest(team=t, instance_id="h", limits=pb.Limits(
        hugetlb=[pb.HugetlbLimit(page_size="1GB", max="1G")])), timeout=10)
    assert u.changed and {h.page_size: h.max for h in u.cgroup.limits.hugetlb} == {"2MB": str(4 << 20),
                                                                                    "1GB": str(1 << 30)}
    # a change behind the agent's back is what GetScope reports
    write_cgroup_file(os.path.join(r.scope.path, "hugetlb.2MB.max"), str(2 << 20))
    g = compute_stub.GetScope(pb.GetScopeRequest(team=t, instance_id="h"), timeout=10).scope
    assert {h.page_size: h.max for h in g.limits.hugetlb}["2MB"] == str(2 << 20)
    stats = compute_stub.GetStats(pb.GetStatsRequest(team=t, instance_id="h"), timeout=10).stats
    assert {h.page_size for h in stats.hugetlb} == {"2MB", "1GB"}


def test_list_reports_only_marked_groups(compute_stub, compute_agent):
    _, root = compute_agent
    t = team()
    compute_stub.EnsureSlice(pb.EnsureSliceRequest(team=t), timeout=10)
    compute_stub.EnsureScope(pb.EnsureScopeRequest(team=t, instance_id="a"), timeout=10)
    foreign = os.path.join(root, f"{t}.slice", "foreign.scope")
    os.mkdir(foreign)
    try:
        scopes = compute_stub.ListScopes(pb.ListScopesRequest(team=t), timeout=10).scopes
        assert [(s.team, s.instance_id) for s in scopes] == [(t, "a")]
        assert t in [s.team for s in compute_stub.ListSlices(pb.ListSlicesRequest(), timeout=10).slices]
        code, reason, *_ = call_err(compute_stub.DeleteSlice, pb.DeleteSliceRequest(team=t, kill=True))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and reason == "NOT_OURS"
        assert os.path.isdir(foreign)
    finally:
        os.rmdir(foreign)
