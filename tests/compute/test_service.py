"""ComputeService on the real cgroup v2 hierarchy: locks, validation against
this node, GC enumeration, drift and repair, bulk delete, disabled plane."""
from __future__ import annotations

import os
import time

import pytest

from agent.drivers.cgroup import CgroupDriver
from agent.drivers.cgroup import fs as cgfs
from agent.errors import Aborted, DeadlineExceeded, FailedPrecondition, InvalidArgument
from agent.metrics import Metrics
from agent.model.compute import CpusetLimits, HugetlbLimit, IoDeviceLimits, IoLimits, Limits
from agent.services.compute import ComputeService
from tests.support.cgroup import require_controller, write_cgroup_file


@pytest.fixture
def svc(cgroup_test_root):
    return ComputeService(CgroupDriver(Metrics(), root=cgroup_test_root))


def test_second_operation_on_the_same_group_is_aborted(svc):
    svc.ensure_slice("t", Limits())
    with svc._locks.hold(("t", "i")):
        with pytest.raises(Aborted):
            svc.ensure_scope("t", "i", Limits())
        with pytest.raises(Aborted):
            svc.delete_scope("t", "i")
        svc.ensure_scope("t", "j", Limits())          # another group is not blocked
    assert svc.ensure_scope("t", "i", Limits()).changed


def test_limits_checked_against_this_node(svc):
    svc.ensure_slice("t", Limits())
    online = open("/sys/devices/system/cpu/online").read().strip()
    last = max(int(x.split("-")[-1]) for x in online.split(","))
    with pytest.raises(InvalidArgument) as e:
        svc.ensure_scope("t", "i", Limits(cpuset=CpusetLimits(cpus=f"0-{last + 1}"),
                                          io=IoLimits(devices=(IoDeviceLimits("259:9999", rbps=1),)),
                                          hugetlb=(HugetlbLimit("3MB", 0),)))
    assert sorted(v.field for v in e.value.violations) == ["limits.cpuset.cpus", "limits.hugetlb[0].page_size",
                                                           "limits.io.devices[0].device"]
    assert not os.path.exists(svc.scope_path("t", "i"))


def test_paths_are_known_before_creation(svc, cgroup_test_root):
    assert svc.scope_path("t", "i") == f"{cgroup_test_root}/t.slice/i.scope"
    assert not os.path.exists(svc.scope_path("t", "i"))
    svc.ensure_slice("t", Limits())
    assert svc.ensure_scope("t", "i", Limits()).cgroup.path == svc.scope_path("t", "i")


def test_owned_lists_every_marked_group(svc, cgroup_test_root):
    svc.ensure_slice("a", Limits())
    svc.ensure_slice("b", Limits())
    svc.ensure_scope("a", "x", Limits())
    svc.ensure_scope("b", "y", Limits())
    os.mkdir(os.path.join(cgroup_test_root, "a.slice", "stray.scope"))
    got = sorted((o.kind, o.team, o.instance_id) for o in svc.owned())
    assert got == [("scope", "a", "x"), ("scope", "b", "y"), ("slice", "a", ""), ("slice", "b", "")]


def test_drift_found_and_repaired(svc, cgroup2_root):
    require_controller(cgroup2_root, "hugetlb")
    svc.ensure_slice("t", Limits())
    want = Limits(hugetlb=(HugetlbLimit("2MB", 4 << 20),))
    path = svc.ensure_scope("t", "d", want).cgroup.path
    assert svc.diff("t", "d", want) == []
    write_cgroup_file(os.path.join(path, "hugetlb.2MB.max"), "max")      # someone changed it
    drift = svc.diff("t", "d", want)
    assert [(d.file, d.desired, d.observed) for d in drift] == [("hugetlb.2MB.max", str(4 << 20), "max")]
    assert svc.ensure_scope("t", "d", want).changed
    assert open(os.path.join(path, "hugetlb.2MB.max")).read().strip() == str(4 << 20)
    assert svc.diff("t", "d", want) == []


def test_bulk_delete_reports_per_item(svc, cgroup_children):
    svc.ensure_slice("t", Limits())
    for i in range(5):
        svc.ensure_scope("t", f"s{i}", Limits())
    p = cgroup_children.detached()                  # not our descendant: the service refuses those
    svc.attach("t", "s0", [p.pid])
    with svc._locks.hold(("t", "s4")):
        out = svc.delete_scopes([("t", f"s{i}") for i in range(5)] + [("t", "gone"), ("t", "../x")])
    assert [(o.instance_id, o.deleted) for o in out] == [("s0", False), ("s1", True), ("s2", True), ("s3", True),
                                                        ("s4", False), ("gone", False), ("../x", False)]
    assert isinstance(out[0].error, FailedPrecondition) and out[0].error.reason == "SCOPE_POPULATED"
    assert isinstance(out[4].error, Aborted)
    assert out[5].error is None
    assert isinstance(out[6].error, InvalidArgument)
    assert p.poll() is None
    out = svc.delete_scopes([("t", "s0"), ("t", "s4")], kill=True)
    p.wait(timeout=10)
    assert [o.deleted for o in out] == [True, True] and p.poll() is not None
    assert [e for e in os.listdir(svc.slice_path("t")) if e.endswith(".scope")] == []


def test_disabled_plane():
    svc = ComputeService(None)
    assert not svc.probe().available
    with pytest.raises(FailedPrecondition) as e:
        svc.ensure_slice("t", Limits())
    assert e.value.reason == "PLANE_DISABLED"
    assert svc.reconcile() == 0


def test_wait_is_bounded_by_the_deadline(tmp_path):
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as e:
        cgfs.wait_events(str(tmp_path), "frozen", 1, time.monotonic() + 0.1, "freeze")
    assert "frozen=0" in e.value.message and time.monotonic() - start < 5
