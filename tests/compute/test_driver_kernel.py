"""The driver against the real cgroup v2 hierarchy of this machine.

Everything happens below a throwaway directory unique to the session and the
test (tests/support/cgroup.py) and is verified by reading cgroupfs and /proc
directly, not through the driver's getters. Limits are tested for real where
their controller is in cgroup.controllers; elsewhere the driver must refuse
them with FAILED_PRECONDITION naming the controller.
"""
from __future__ import annotations

import os
import time

import pytest

from agent.drivers.cgroup import MARK_XATTR, PENDING_XATTR, SUPERVISOR, CgroupDriver, decode_mark
from agent.errors import FailedPrecondition, InvalidArgument, NotFound
from agent.metrics import Metrics
from agent.model.compute import CpuLimits, CpusetLimits, HugetlbLimit, IoLimits, Limits, MemoryLimits, PidsLimits
from tests.support.cgroup import cgroup_controllers_available, require_controller, write_cgroup_file

WAIT = 10.0


def deadline():
    return time.monotonic() + WAIT


def read(path, name=None):
    return open(os.path.join(path, name) if name else path).read()


def events(path):
    return dict((k, int(v)) for k, v in (l.split() for l in read(path, "cgroup.events").splitlines()))


def cgroup_of(pid):
    return read(f"/proc/{pid}/cgroup").splitlines()[-1].split("::", 1)[1] if os.path.exists(f"/proc/{pid}") else None


def on_cpu_ns(pid):
    """Time the process has run on a CPU, from /proc/<pid>/schedstat (independent of cgroups)."""
    return int(read(f"/proc/{pid}/schedstat").split()[0])


def usage_usec(path):
    return int(dict(l.split() for l in read(path, "cpu.stat").splitlines())["usage_usec"])


def wait_for(cond, what, timeout=WAIT):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def driver(cgroup_test_root):
    return CgroupDriver(Metrics(), root=cgroup_test_root)


def rel(mount, path):
    return "/" + os.path.relpath(path, mount)


def test_lifecycle_move_stats_freeze_thaw_kill_delete(driver, cgroup2_root, cgroup_children):
    driver.ensure("team-a", "", Limits())
    info, created = driver.ensure("team-a", "job-1", Limits())
    scope = info.path
    assert created and os.path.isdir(scope) and scope == driver.scope_path("team-a", "job-1")
    busy = cgroup_children.busy()
    reference = cgroup_children.busy()              # runs outside the scope: proves time passes

    assert driver.attach("team-a", "job-1", [busy.pid]) == (busy.pid,)
    assert cgroup_of(busy.pid) == rel(cgroup2_root, scope)
    assert read(scope, "cgroup.procs").split() == [str(busy.pid)]
    wait_for(lambda: usage_usec(scope) > 0, "cpu usage in the scope")
    stats = driver.stats("team-a", "job-1")
    assert stats.populated and stats.cpu["usage_usec"] > 0 and "cpu" in stats.pressure

    driver.freeze("team-a", "job-1", deadline())
    assert events(scope)["frozen"] == 1
    frozen_ns, frozen_usage, ref_ns = on_cpu_ns(busy.pid), usage_usec(scope), on_cpu_ns(reference.pid)
    # while the reference process gets 200 ms of CPU, the frozen one gets none
    wait_for(lambda: on_cpu_ns(reference.pid) - ref_ns > 200_000_000, "the reference process to run 200 ms")
    assert on_cpu_ns(busy.pid) == frozen_ns
    assert usage_usec(scope) == frozen_usage
    assert driver.stats("team-a", "job-1").frozen

    driver.thaw("team-a", "job-1", deadline())
    assert events(scope)["frozen"] == 0
    wait_for(lambda: on_cpu_ns(busy.pid) > frozen_ns, "the thawed process to run again")

    with pytest.raises(FailedPrecondition) as e:
        driver.delete("team-a", "job-1")
    assert e.value.reason == "SCOPE_POPULATED"
    assert busy.poll() is None and cgroup_of(busy.pid) == rel(cgroup2_root, scope)

    driver.kill("team-a", "job-1", deadline())
    assert busy.wait(timeout=WAIT) == -9
    assert events(scope)["populated"] == 0
    assert reference.poll() is None
    assert driver.delete("team-a", "job-1") is True
    assert not os.path.exists(scope)
    assert driver.delete("team-a", "job-1") is False
    assert driver.delete("team-a") is True and not os.path.exists(os.path.dirname(scope))
    assert driver.delete("team-a") is False


def test_ensure_three_times_is_one_cgroup(driver):
    results = [driver.ensure("t", "", Limits())[1] for _ in range(3)]
    ino = os.stat(driver.slice_path("t")).st_ino
    results += [driver.ensure("t", "s", Limits())[1] for _ in range(3)]
    assert results == [True, False, False, True, False, False]
    assert os.stat(driver.slice_path("t")).st_ino == ino
    assert [e for e in os.listdir(driver.slice_path("t")) if os.path.isdir(os.path.join(driver.slice_path("t"), e))] == ["s.scope"]
    for _ in range(3):
        driver.delete("t", "s")
    assert not os.path.exists(driver.scope_path("t", "s"))


def test_delete_with_kill_removes_processes_and_nested_cgroups(driver, cgroup_children):
    driver.ensure("t", "", Limits())
    scope = driver.ensure("t", "c", Limits())[0].path
    p = cgroup_children.start()
    driver.attach("t", "c", [p.pid])
    # the workload made its own cgroups inside its scope (a container's systemd would)
    os.mkdir(os.path.join(scope, "inner"))
    os.mkdir(os.path.join(scope, "inner", "deeper"))
    q = cgroup_children.start()
    # cgroup v2 keeps processes in leaves; move q into the nested leaf before p's scope gets children
    write_cgroup_file(os.path.join(scope, "inner", "deeper", "cgroup.procs"), str(q.pid))
    assert driver.delete("t", "c", kill=True, deadline=deadline()) is True
    assert p.wait(timeout=WAIT) == -9 and q.wait(timeout=WAIT) == -9
    assert not os.path.exists(scope)


def test_slice_kill_deletes_every_scope(driver, cgroup_children):
    driver.ensure("t", "", Limits())
    procs = []
    for i in range(3):
        driver.ensure("t", f"s{i}", Limits())
        p = cgroup_children.start()
        driver.attach("t", f"s{i}", [p.pid])
        procs.append(p)
    with pytest.raises(FailedPrecondition):
        driver.delete("t")
    assert all(p.poll() is None for p in procs)
    assert driver.delete("t", kill=True, deadline=deadline()) is True
    assert [p.wait(timeout=WAIT) for p in procs] == [-9, -9, -9]
    assert not os.path.exists(driver.slice_path("t"))


def test_bulk_delete(driver, cgroup_children):
    driver.ensure("t", "", Limits())
    refs, procs = [], []
    for i in range(20):
        driver.ensure("t", f"b{i}", Limits())
        p = cgroup_children.start()
        driver.attach("t", f"b{i}", [p.pid])
        refs.append(("t", f"b{i}"))
        procs.append(p)
    refs.append(("t", "absent"))
    out = driver.delete_many(refs, kill=True, deadline=deadline())
    assert [r[2] for r in out] == [True] * 20 + [False]
    assert all(r[3] is None for r in out)
    assert all(p.wait(timeout=WAIT) == -9 for p in procs)
    assert [e for e in os.listdir(driver.slice_path("t")) if e.endswith(".scope")] == []


def test_foreign_cgroups_next_to_ours_are_untouched(driver, cgroup_test_root, cgroup_children, cgroup2_root):
    driver.ensure("t", "", Limits())
    driver.ensure("t", "mine", Limits())
    neighbour = os.path.join(os.path.dirname(cgroup_test_root), os.path.basename(cgroup_test_root) + "-neighbour")
    foreign_in_root = os.path.join(cgroup_test_root, "foreign.slice")
    foreign_in_slice = os.path.join(driver.slice_path("t"), "intruder.scope")
    for p in (neighbour, foreign_in_root, foreign_in_slice):
        os.mkdir(p)
    try:
        victim = cgroup_children.start()
        write_cgroup_file(os.path.join(foreign_in_slice, "cgroup.procs"), str(victim.pid))
        with pytest.raises(FailedPrecondition) as e:
            driver.delete("t", kill=True, deadline=deadline())
        assert e.value.reason == "NOT_OURS"
        for op in (lambda: driver.ensure("foreign", "", Limits()), lambda: driver.delete("foreign", kill=True),
                   lambda: driver.kill("t", "intruder", deadline()), lambda: driver.freeze("t", "intruder", deadline()),
                   lambda: driver.delete("t", "intruder", kill=True), lambda: driver.attach("t", "intruder", [victim.pid])):
            with pytest.raises(FailedPrecondition):
                op()
        assert [i.mark.instance for i in driver.list("t")] == ["mine"]
        assert [i.mark.team for i in driver.list(kind="slice")] == ["t"]
        assert driver.delete("t", "mine") is True
        assert victim.poll() is None and cgroup_of(victim.pid) == rel(cgroup2_root, foreign_in_slice)
        assert events(foreign_in_slice)["frozen"] == 0
        assert all(os.path.isdir(p) for p in (neighbour, foreign_in_root, foreign_in_slice))
        assert MARK_XATTR not in os.listxattr(foreign_in_slice)
    finally:
        from tests.support.cgroup import remove_cgroup_tree
        remove_cgroup_tree(neighbour)


@pytest.mark.parametrize("team, instance", [("..", ""), ("../..", ""), ("t", "../../x"), ("t/..", "x"), ("t", "a/b")])
def test_escaping_names_create_nothing(driver, cgroup_test_root, team, instance):
    driver.ensure("t", "", Limits())
    parent = os.path.dirname(cgroup_test_root)
    before = sorted(os.listdir(parent)), sorted(os.listdir(cgroup_test_root))
    with pytest.raises(InvalidArgument):
        driver.ensure(team, instance, Limits())
    assert (sorted(os.listdir(parent)), sorted(os.listdir(cgroup_test_root))) == before


# ---------------------------------------------------------------- limits, per controller

LIMIT_CASES = {
    "cpu": (Limits(cpu=CpuLimits(quota_us=50000, period_us=100000, weight=250)),
            {"cpu.max": "50000 100000", "cpu.weight": "250"}),
    "memory": (Limits(memory=MemoryLimits(max=256 << 20, high=200 << 20, low=16 << 20)),
               {"memory.max": str(256 << 20), "memory.high": str(200 << 20), "memory.low": str(16 << 20)}),
    "pids": (Limits(pids=PidsLimits(max=42)), {"pids.max": "42"}),
    "cpuset": (Limits(cpuset=CpusetLimits(cpus="0", mems="0")), {"cpuset.cpus": "0", "cpuset.mems": "0"}),
    "io": (Limits(io=IoLimits(weight=200)), {}),
}


@pytest.mark.parametrize("controller", sorted(LIMIT_CASES))
def test_limit_refused_where_its_controller_is_absent(driver, cgroup2_root, controller):
    if controller in cgroup_controllers_available(cgroup2_root):
        pytest.skip(f"{controller} is available here; test_limit_written_where_its_controller_is_present covers it")
    driver.ensure("t", "", Limits())
    limits, _ = LIMIT_CASES[controller]
    with pytest.raises(FailedPrecondition) as e:
        driver.ensure("t", "x", limits)
    assert controller in e.value.message and e.value.metadata["controllers"] == controller
    assert not os.path.exists(driver.scope_path("t", "x"))
    with pytest.raises(FailedPrecondition):
        driver.ensure("u", "", limits)
    assert not os.path.exists(driver.slice_path("u"))


@pytest.mark.parametrize("controller", sorted(LIMIT_CASES))
def test_limit_written_where_its_controller_is_present(driver, cgroup2_root, controller):
    require_controller(cgroup2_root, controller)
    driver.ensure("t", "", Limits())
    limits, files = LIMIT_CASES[controller]
    info, _ = driver.ensure("t", "x", limits)
    for f, want in files.items():
        assert read(info.path, f).strip() == want, f
    assert driver.ensure("t", "x", limits)[1] is False


def test_hugetlb_limit_round_trips_through_the_kernel(driver, cgroup2_root, cgroup_test_root):
    require_controller(cgroup2_root, "hugetlb")
    driver.ensure("t", "", Limits())
    info, _ = driver.ensure("t", "h", Limits(hugetlb=(HugetlbLimit("2MB", 4 << 20),)))
    assert read(info.path, "hugetlb.2MB.max").strip() == str(4 << 20)
    for cg in (cgroup2_root, os.path.dirname(cgroup_test_root), cgroup_test_root, driver.slice_path("t")):
        assert "hugetlb" in read(cg, "cgroup.subtree_control").split(), cg
    assert "hugetlb" not in read(info.path, "cgroup.subtree_control").split()
    # the kernel rounds down to whole huge pages: what we report is what it says,
    # and asking for 5 MB where it keeps 4 MB is no change
    info, changed = driver.ensure("t", "h", Limits(hugetlb=(HugetlbLimit("2MB", 5 << 20),)))
    assert not changed and read(info.path, "hugetlb.2MB.max").strip() == str(4 << 20)
    info, changed = driver.ensure("t", "h", Limits(hugetlb=(HugetlbLimit("2MB", 7 << 20),)))
    assert changed and read(info.path, "hugetlb.2MB.max").strip() == str(6 << 20)
    assert dict((h.page_size, h.max) for h in info.limits.hugetlb)["2MB"] == 6 << 20
    info, changed = driver.update("t", "h", Limits(hugetlb=(HugetlbLimit("1GB", 1 << 30),)))
    assert changed and read(info.path, "hugetlb.1GB.max").strip() == str(1 << 30)
    assert read(info.path, "hugetlb.2MB.max").strip() == str(6 << 20)
    info, changed = driver.ensure("t", "h", Limits())
    assert changed and read(info.path, "hugetlb.2MB.max").strip() == "max"
    assert read(info.path, "hugetlb.1GB.max").strip() == "max"
    assert driver.stats("t", "h").hugetlb_current == {"2MB": 0, "1GB": 0}


def test_failure_after_mkdir_leaves_nothing_behind(driver, cgroup2_root):
    require_controller(cgroup2_root, "hugetlb")
    driver.ensure("t", "", Limits())
    # a page size this kernel has no file for: discovered only once the cgroup exists
    with pytest.raises(FailedPrecondition) as e:
        driver.ensure("t", "r", Limits(hugetlb=(HugetlbLimit("64KB", 0),)))
    assert e.value.reason == "LIMIT_FILE_MISSING"
    assert not os.path.exists(driver.scope_path("t", "r"))
    assert not [x for x in os.listxattr(driver.slice_path("t")) if x.startswith(PENDING_XATTR)]


def test_delegated_subtree_moves_own_processes_into_a_leaf(cgroup2_root, cgroup_test_root, cgroup_children):
    require_controller(cgroup2_root, "hugetlb")
    session = os.path.dirname(cgroup_test_root)
    # play systemd: create the service's cgroup, delegate hugetlb to it, start "the agent" in it
    for cg in (cgroup2_root, session):
        write_cgroup_file(os.path.join(cg, "cgroup.subtree_control"), "+hugetlb")
    os.mkdir(cgroup_test_root)
    os.setxattr(cgroup_test_root, "trusted.delegate", b"1")       # what systemd sets for Delegate=yes
    agent_proc = cgroup_children.start()
    write_cgroup_file(os.path.join(cgroup_test_root, "cgroup.procs"), str(agent_proc.pid))
    above = read(session, "cgroup.subtree_control")

    # The automatic root never picks the agent's own unit cgroup (a stop would kill workloads) ...
    assert CgroupDriver(Metrics(), own=rel(cgroup2_root, cgroup_test_root)).root == \
        os.path.join(cgroup2_root, "devcloud.slice")
    # ... delegated mode is an explicit choice of a root inside it.
    d = CgroupDriver(Metrics(), root=cgroup_test_root, own=rel(cgroup2_root, cgroup_test_root))
    assert d.delegated and d.root == cgroup_test_root and d.anchor == cgroup_test_root
    info, _ = d.ensure("t", "", Limits(hugetlb=(HugetlbLimit("2MB", 2 << 20),)))
    assert cgroup_of(agent_proc.pid) == rel(cgroup2_root, os.path.join(cgroup_test_root, SUPERVISOR))
    assert read(cgroup_test_root, "cgroup.procs") == ""
    assert "hugetlb" in read(cgroup_test_root, "cgroup.subtree_control").split()
    assert read(info.path, "hugetlb.2MB.max").strip() == str(2 << 20)
    assert read(session, "cgroup.subtree_control") == above          # never wrote above its own cgroup
    assert MARK_XATTR not in os.listxattr(os.path.join(cgroup_test_root, SUPERVISOR))
    assert [i.mark.team for i in d.list(kind="slice")] == ["t"]


def test_controller_not_delegated_is_named(cgroup2_root, cgroup_test_root):
    os.mkdir(cgroup_test_root)
    d = CgroupDriver(Metrics(), own=rel(cgroup2_root, cgroup_test_root))
    with pytest.raises(FailedPrecondition) as e:
        d.ensure("t", "", Limits(pids=PidsLimits(max=5)))
    assert "pids" in e.value.message


def test_crash_between_mkdir_and_mark_is_recovered(driver):
    driver.ensure("t", "", Limits())
    s = driver.slice_path("t")
    os.setxattr(s, PENDING_XATTR + "z.scope", b"1")
    os.mkdir(os.path.join(s, "z.scope"))
    info, _ = driver.ensure("t", "z", Limits())
    assert decode_mark(os.getxattr(info.path, MARK_XATTR)).instance == "z"
    assert PENDING_XATTR + "z.scope" not in os.listxattr(s)


def test_thaw_of_a_scope_in_a_frozen_slice_is_refused(driver, cgroup_children):
    driver.ensure("t", "", Limits())
    driver.ensure("t", "f", Limits())
    p = cgroup_children.start()
    driver.attach("t", "f", [p.pid])
    driver.freeze("t", "", deadline())
    assert events(driver.scope_path("t", "f"))["frozen"] == 1    # frozen through its slice
    with pytest.raises(FailedPrecondition) as e:
        driver.thaw("t", "f", deadline())
    assert e.value.reason == "PARENT_FROZEN"
    driver.thaw("t", "", deadline())
    assert events(driver.scope_path("t", "f"))["frozen"] == 0


def test_attach_errors(driver, cgroup_children):
    driver.ensure("t", "", Limits())
    driver.ensure("t", "a", Limits())
    with pytest.raises(InvalidArgument):
        driver.attach("t", "a", [1])
    with pytest.raises(InvalidArgument):
        driver.attach("t", "a", [os.getpid()])
    gone = cgroup_children.start("pass")
    gone.wait()
    with pytest.raises(NotFound):
        driver.attach("t", "a", [gone.pid])
    with pytest.raises(NotFound):
        driver.attach("t", "missing", [gone.pid])
    with pytest.raises(InvalidArgument):
        driver.attach("t", "", [gone.pid])


def test_get_and_list_report_the_kernel(driver, cgroup_children):
    driver.ensure("t", "", Limits())
    driver.ensure("t", "g", Limits())
    p = cgroup_children.start()
    driver.attach("t", "g", [p.pid])
    info = driver.get("t", "g")
    assert info.pids == (p.pid,) and info.populated and not info.frozen
    write_cgroup_file(os.path.join(info.path, "cgroup.freeze"), "1")     # changed behind the agent's back
    wait_for(lambda: events(info.path)["frozen"] == 1, "frozen")
    assert driver.get("t", "g").frozen
    assert driver.get("t", "").children == 1
    with pytest.raises(NotFound):
        driver.get("t", "nope")
