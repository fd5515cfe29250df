"""The driver pointed at a plain directory tree: file formatting, top-down
controller enabling, ownership marks and intents, name safety.

A plain tree has no kernel behind it (no populated/frozen events, no value
checks): what runs here is what the driver writes and where. The real kernel
is exercised in test_driver_kernel.py.
"""
from __future__ import annotations

import os

import pytest

from agent.drivers.cgroup import MARK_XATTR, PENDING_XATTR, CgroupDriver, decode_mark
from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.metrics import Metrics
from agent.model.compute import (CpuLimits, CpusetLimits, HugetlbLimit, IoDeviceLimits, IoLimits, Limits, MemoryLimits,
                                 PidsLimits)


def make(tmp_path, controllers="cpu memory pids io cpuset hugetlb"):
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text(controllers + "\n")
    return CgroupDriver(Metrics(), mount=str(mount), own="/", plain=True), mount


def read(p):
    return open(p).read()


def test_files_written_for_every_limit_kind(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("team-a", "", Limits(cpu=CpuLimits(weight=50)))
    limits = Limits(cpu=CpuLimits(quota_us=25000, period_us=50000, weight=300),
                    memory=MemoryLimits(max="max", high=256 << 20, low=32 << 20, swap_max=0),
                    pids=PidsLimits(max=64),
                    io=IoLimits(devices=(IoDeviceLimits("8:0", rbps=1 << 20, wbps=2 << 20),)),
                    cpuset=CpusetLimits(cpus="0", mems="0"),
                    hugetlb=(HugetlbLimit("2MB", 2 << 20),))
    info, changed = d.ensure("team-a", "vm-1", limits)
    scope = mount / "devcloud.slice" / "team-a.slice" / "vm-1.scope"
    assert changed and info.path == str(scope)
    assert read(scope / "cpu.max") == "25000 50000"
    assert read(scope / "cpu.weight") == "300"
    assert not (scope / "memory.max").exists()          # "max" is the default: nothing to write
    assert read(scope / "memory.high") == str(256 << 20)
    assert read(scope / "memory.low") == str(32 << 20)
    assert read(scope / "memory.swap.max") == "0"
    assert read(scope / "pids.max") == "64"
    assert read(scope / "io.max") == "8:0 rbps=1048576 wbps=2097152 riops=max wiops=max"
    assert read(scope / "cpuset.cpus") == "0" and read(scope / "cpuset.mems") == "0"
    assert read(scope / "hugetlb.2MB.max") == str(2 << 20)
    assert read(mount / "devcloud.slice" / "team-a.slice" / "cpu.weight") == "50"


def test_controllers_enabled_top_down_only_as_far_as_needed(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("team-a", "", Limits(pids=PidsLimits(max=100)))
    assert read(mount / "cgroup.subtree_control").split() == ["+pids"]
    assert not (mount / "devcloud.slice" / "cgroup.subtree_control").exists() or \
        "pids" in read(mount / "devcloud.slice" / "cgroup.subtree_control")
    d.ensure("team-a", "i1", Limits(memory=MemoryLimits(max=1 << 30)))
    for cg in (mount, mount / "devcloud.slice", mount / "devcloud.slice" / "team-a.slice"):
        assert "+memory" in read(cg / "cgroup.subtree_control").split(), cg
    assert "+cpu" not in read(mount / "cgroup.subtree_control").split()
    # a scope is a leaf: nothing is enabled below it
    assert not (mount / "devcloud.slice" / "team-a.slice" / "i1.scope" / "cgroup.subtree_control").exists()


def test_ensure_three_times_writes_once(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("t", "", Limits())
    limits = Limits(cpu=CpuLimits(quota_us=10000), memory=MemoryLimits(max=1 << 20))
    results = [d.ensure("t", "i", limits)[1] for _ in range(3)]
    assert results == [True, False, False]
    f = mount / "devcloud.slice" / "t.slice" / "i.scope" / "cpu.max"
    before = os.stat(f).st_mtime_ns
    assert d.ensure("t", "i", limits)[1] is False
    assert os.stat(f).st_mtime_ns == before
    # a different value is an update of a mutable property, not a conflict
    assert d.ensure("t", "i", Limits(cpu=CpuLimits(quota_us=20000)))[1] is True
    assert read(f) == "20000 100000"
    assert read(f.parent / "memory.max") == "max"       # not requested any more: back to the default


def test_update_touches_only_requested_files(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("t", "", Limits())
    d.ensure("t", "i", Limits(pids=PidsLimits(max=10), memory=MemoryLimits(max=1 << 20)))
    info, changed = d.update("t", "i", Limits(pids=PidsLimits(max=20)))
    assert changed and info.limits.pids.max == 20 and info.limits.memory.max == 1 << 20
    assert d.update("t", "i", Limits(pids=PidsLimits(max=20)))[1] is False
    with pytest.raises(NotFound):
        d.update("t", "nope", Limits())


def test_unavailable_controller_refused_before_anything_is_created(tmp_path):
    d, mount = make(tmp_path, controllers="cpu pids")
    d.ensure("t", "", Limits(cpu=CpuLimits(weight=10)))
    with pytest.raises(FailedPrecondition) as e:
        d.ensure("t", "i", Limits(cpu=CpuLimits(weight=10), memory=MemoryLimits(max=1 << 20),
                                  io=IoLimits(weight=5)))
    assert "memory" in e.value.message and "io" in e.value.message
    assert e.value.reason == "CONTROLLER_UNAVAILABLE" and e.value.metadata["controllers"] == "io,memory"
    assert not (mount / "devcloud.slice" / "t.slice" / "i.scope").exists()
    with pytest.raises(FailedPrecondition):
        d.ensure("t2", "", Limits(memory=MemoryLimits(max=1 << 20)))
    assert not (mount / "devcloud.slice" / "t2.slice").exists()


@pytest.mark.parametrize("team, instance", [
    ("..", ""), ("../x", ""), ("a/b", ""), ("", ""), ("x\0y", ""), (".", ""), ("A", ""),
    ("t", ".."), ("t", "../../etc"), ("t", "a/b"), ("t", "i\n"), ("t", "x" * 64),
])
def test_names_that_could_escape_the_subtree_are_refused(tmp_path, team, instance):
    d, mount = make(tmp_path)
    d.ensure("t", "", Limits())
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidArgument):
        d.ensure(team, instance, Limits())
    for op in (lambda: d.delete(team, instance, kill=True), lambda: d.get(team, instance)):
        with pytest.raises(InvalidArgument):
            op()
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_foreign_directories_are_never_adopted_changed_or_removed(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("t", "", Limits())
    root = mount / "devcloud.slice"
    foreign_slice = root / "other.slice"              # at a path we would compute for team "other"
    foreign_slice.mkdir()
    (foreign_slice / "pids.max").write_text("7")
    foreign_scope = root / "t.slice" / "x.scope"      # inside our slice
    foreign_scope.mkdir()
    neighbour = mount / "someone-else"               # next to our subtree
    neighbour.mkdir()

    with pytest.raises(FailedPrecondition) as e:
        d.ensure("other", "", Limits(pids=PidsLimits(max=1)))
    assert e.value.reason == "NOT_OURS"
    assert read(foreign_slice / "pids.max") == "7"
    for op in (lambda: d.ensure("t", "x", Limits()), lambda: d.delete("t", "x", kill=True),
               lambda: d.get("t", "x"), lambda: d.delete("other", kill=True), lambda: d.delete("t", kill=True)):
        with pytest.raises(FailedPrecondition):
            op()
    assert [i.mark.team for i in d.list(kind="slice")] == ["t"]
    assert d.list("t") == []
    assert foreign_slice.is_dir() and foreign_scope.is_dir() and neighbour.is_dir()


def test_instance_names_are_unique_across_teams(tmp_path):
    d, _ = make(tmp_path)
    d.ensure("a", "", Limits())
    d.ensure("b", "", Limits())
    d.ensure("a", "vm", Limits())
    with pytest.raises(AlreadyExists):
        d.ensure("b", "vm", Limits())


def test_scope_needs_its_team_slice(tmp_path):
    d, mount = make(tmp_path)
    with pytest.raises(FailedPrecondition) as e:
        d.ensure("t", "i", Limits())
    assert e.value.reason == "SLICE_NOT_FOUND"


def test_unmarked_directory_left_by_a_crash_after_the_recorded_intent_is_adopted(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("t", "", Limits())
    slice_ = mount / "devcloud.slice" / "t.slice"
    # the agent died between mkdir and marking: the intent is on the parent
    os.setxattr(slice_, PENDING_XATTR + "i.scope", b"1")
    (slice_ / "i.scope").mkdir()
    info, _ = d.ensure("t", "i", Limits(pids=PidsLimits(max=3)))
    assert decode_mark(os.getxattr(slice_ / "i.scope", MARK_XATTR)).instance == "i"
    assert PENDING_XATTR + "i.scope" not in os.listxattr(slice_)
    # an intent whose directory never appeared is swept
    os.setxattr(slice_, PENDING_XATTR + "j.scope", b"1")
    assert d.sweep_pending() == 1
    assert not any(x.startswith(PENDING_XATTR) for x in os.listxattr(slice_))


def test_marks_carry_kind_team_and_instance(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("t", "", Limits())
    d.ensure("t", "i", Limits())
    assert os.getxattr(mount / "devcloud.slice" / "t.slice", MARK_XATTR) == b"owner=devcloud-agent kind=slice team=t"
    assert os.getxattr(mount / "devcloud.slice" / "t.slice" / "i.scope", MARK_XATTR) == \
        b"owner=devcloud-agent kind=scope team=t instance=i"
    assert [(p, m.instance) for p, m in d.owned()] == [(str(mount / "devcloud.slice" / "t.slice" / "i.scope"), "i")]


def test_delete_slice_only_when_empty_unless_kill(tmp_path):
    d, mount = make(tmp_path)
    d.ensure("t", "", Limits())
    d.ensure("t", "i", Limits())
    with pytest.raises(FailedPrecondition) as e:
        d.delete("t")
    assert e.value.reason == "SLICE_NOT_EMPTY"
    assert d.delete("t", kill=True) is True
    assert not (mount / "devcloud.slice" / "t.slice").exists()
    assert d.delete("t") is False


def test_probe_without_cgroup2(tmp_path):
    d = CgroupDriver(Metrics(), mount="", own="")
    a = d.probe()
    assert not a.available and "cgroup v2" in a.reason
    with pytest.raises(FailedPrecondition) as e:
        d.ensure("t", "", Limits())
    assert e.value.reason == "FACILITY_UNAVAILABLE"


def test_root_outside_the_mount_is_refused(tmp_path):
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text("")
    d = CgroupDriver(Metrics(), mount=str(mount), own="/", root=str(tmp_path / "elsewhere"), plain=True)
    assert not d.probe().available
