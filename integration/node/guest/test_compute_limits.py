"""Compute plane limits against a kernel with every cgroup v2 controller.

Runs INSIDE the real-kernel node guest (integration/node: Debian kernel,
systemd 252 as PID 1, cgroup v2 with cpu, memory, io, pids, cpuset), as
root. Self-contained: imports only the installed agent package and pytest.
Every limit kind goes through ComputeService (validation, controller
enabling, the limit files), and is then checked by reading the kernel files
directly and by its effect: a memory limit enforced by an OOM kill, cpu.max
throttling counted in cpu.stat, pids.max refusing a fork, cpuset pinning the
process, freeze/thaw measured by CPU time, kill emptying the scope. Each test
writes what it verified to $DEVCLOUD_NODE_RESULTS/compute-limits.jsonl.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from agent.drivers import procfs
from agent.drivers.cgroup import (CgroupDriver, CpuLimits, CpusetLimits, HugetlbLimit, IoDeviceLimits, IoLimits,
                                  Limits, MemoryLimits, PidsLimits)
from agent.metrics import Metrics
from agent.services.compute import ComputeService

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(os.environ.get("DEVCLOUD_NODE_GUEST") != "1",
                       reason="runs only inside the real-kernel node guest (integration/node)"),
]

MOUNT = procfs.cgroup2_mount() or "/sys/fs/cgroup"
WAIT = 300.0          # TCG: process start is ~40x slower than on the host; bound waits generously


# ------------------------------------------------------------------ helpers (independent of the agent)

def read(*parts) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read().strip()


def keyed(*parts) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in read(*parts).splitlines())}


def write(path: str, value) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def until(cond, what: str, timeout: float = WAIT):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def record(test: str, **facts) -> None:
    out = os.environ.get("DEVCLOUD_NODE_RESULTS")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "compute-limits.jsonl"), "a") as f:
            f.write(json.dumps({"test": test, "kernel": os.uname().release, **facts}) + "\n")


def remove_tree(path: str) -> None:
    """Thaw, kill and rmdir bottom-up (teardown)."""
    if not os.path.isdir(path):
        return
    for d, _, _ in os.walk(path, topdown=False):
        try:
            write(os.path.join(d, "cgroup.freeze"), 0)
        except OSError:
            pass
    try:
        write(os.path.join(path, "cgroup.kill"), 1)
    except OSError:
        pass
    until(lambda: keyed(path, "cgroup.events")["populated"] == 0, f"{path} emptied", 60)
    for d, _, _ in os.walk(path, topdown=False):
        for _ in range(1000):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


GATE = "import sys\nsys.stdin.buffer.read(1)\n"      # the child waits until it is in its scope


def gated(code: str) -> subprocess.Popen:
    """A python child that runs `code` only after the test writes one byte to its stdin."""
    return subprocess.Popen([sys.executable, "-c", GATE + code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_in_scope(svc: ComputeService, team: str, inst: str, code: str) -> subprocess.CompletedProcess:
    p = gated(code)
    try:
        svc.attach(team, inst, [p.pid])
        out, err = p.communicate(b"g", timeout=WAIT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(), err.decode())


def on_cpu_ns(pid: int) -> int:
    return int(read(f"/proc/{pid}/schedstat").split()[0])


def vda() -> str:
    return read("/sys/block/vda/dev")


@pytest.fixture
def svc():
    root = f"{MOUNT}/devcloud-guest-{uuid.uuid4().hex[:8]}"
    # the service as a library: this test process is no agent, its children are the workloads
    s = ComputeService(CgroupDriver(Metrics(), root=root), agent_pid=0)
    try:
        yield s
    finally:
        remove_tree(root)


@pytest.fixture
def team(svc):
    svc.ensure_slice("team-g", Limits())
    return "team-g"


@pytest.fixture
def children():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=60)


# ------------------------------------------------------------------ tests

def test_every_controller_is_available_to_the_agent(svc):
    need = {"cpu", "memory", "io", "pids", "cpuset"}
    assert need <= svc.driver.available_controllers()
    assert svc.probe().available


def test_every_limit_kind_written_read_back_and_idempotent(svc, team):
    dev = vda()
    limits = Limits(
        cpu=CpuLimits(quota_us=50000, period_us=100000, weight=300),
        memory=MemoryLimits(max=256 << 20, high=200 << 20, low=16 << 20, swap_max=0),
        pids=PidsLimits(max=64),
        io=IoLimits(weight=300, devices=(IoDeviceLimits(dev, rbps=10 << 20, wiops=1000),)),
        cpuset=CpusetLimits(cpus="0", mems="0"))
    r = svc.ensure_scope(team, "all", limits)
    path = r.cgroup.path
    files = {
        "cpu.max": "50000 100000", "cpu.weight": "300",
        "memory.max": str(256 << 20), "memory.high": str(200 << 20), "memory.low": str(16 << 20),
        "memory.swap.max": "0", "pids.max": "64",
        "io.max": f"{dev} rbps=10485760 wbps=max riops=max wiops=1000",
        "cpuset.cpus": "0", "cpuset.mems": "0", "cpuset.cpus.effective": "0",
    }
    for f, want in files.items():
        assert read(path, f) == want, f
    assert read(path, "io.weight").splitlines()[0] == "default 300"
    for cg in (MOUNT, svc.subtree, svc.slice_path(team)):
        assert {"cpu", "memory", "io", "pids", "cpuset"} <= set(read(cg, "cgroup.subtree_control").split()), cg
    # what the service reports is what the kernel says
    got = r.cgroup.limits
    assert (got.cpu.quota_us, got.cpu.period_us, got.cpu.weight) == (50000, 100000, 300)
    assert (got.memory.max, got.memory.high, got.memory.low, got.memory.swap_max) == (256 << 20, 200 << 20,
                                                                                      16 << 20, 0)
    assert got.pids.max == 64 and got.cpuset.cpus.strip() == "0"
    assert [(d.device, d.rbps, d.wiops) for d in got.io.devices] == [(dev, 10 << 20, 1000)]
    assert [svc.ensure_scope(team, "all", limits).changed for _ in range(3)] == [False, False, False]
    assert svc.diff(team, "all", limits) == []
    # an Ensure without limits puts every file back to the kernel default
    assert svc.ensure_scope(team, "all", Limits()).changed
    for f, want in {"cpu.max": "max 100000", "cpu.weight": "100", "memory.max": "max", "memory.high": "max",
                    "memory.low": "0", "memory.swap.max": "max", "pids.max": "max", "io.max": "",
                    "cpuset.cpus": ""}.items():
        assert read(path, f) == want, f
    record("every_limit_kind", verified=sorted(files) + ["io.weight(default)"])


def test_memory_is_rounded_to_pages_and_reported_as_the_kernel_says(svc, team):
    r = svc.ensure_scope(team, "round", Limits(memory=MemoryLimits(max=100_000_001)))
    page = os.sysconf("SC_PAGE_SIZE")
    assert read(r.cgroup.path, "memory.max") == str(100_000_001 // page * page)
    assert r.cgroup.limits.memory.max == 100_000_001 // page * page
    assert not svc.ensure_scope(team, "round", Limits(memory=MemoryLimits(max=100_000_001))).changed


def test_memory_max_is_enforced_by_an_oom_kill(svc, team):
    path = svc.ensure_scope(team, "oom", Limits(memory=MemoryLimits(max=64 << 20, swap_max=0))).cgroup.path
    # b"x" * n touches every page: 256 MiB are really charged to the scope
    r = run_in_scope(svc, team, "oom", "b = b'x' * (256 << 20)\nprint('survived')\n")
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stdout, r.stderr)
    events = keyed(path, "memory.events")
    assert events["oom_kill"] >= 1, events
    stats = svc.stats(team, "oom")
    assert stats.memory_events["oom_kill"] >= 1
    if stats.memory_peak is not None:          # memory.peak: Linux >= 5.19
        assert stats.memory_peak <= 64 << 20
    record("memory.max", oom_kill=events["oom_kill"], returncode=r.returncode)


def test_cpu_max_throttling_shows_in_cpu_stat(svc, team):
    path = svc.ensure_scope(team, "cpu", Limits(cpu=CpuLimits(quota_us=10000, period_us=100000))).cgroup.path
    # 0.5 s of CPU at 10% of one CPU spans several periods, each ending throttled
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    r = run_in_scope(svc, team, "cpu", burn)
    assert r.returncode == 0, r.stderr
    stat = keyed(path, "cpu.stat")
    assert stat["nr_throttled"] > 0 and stat["throttled_usec"] > 0, stat
    assert svc.stats(team, "cpu").cpu["nr_throttled"] == stat["nr_throttled"]
    record("cpu.max", nr_periods=stat["nr_periods"], nr_throttled=stat["nr_throttled"])


def test_cpu_weight_and_slice_limits_apply_to_the_team(svc):
    svc.ensure_slice("team-w", Limits(cpu=CpuLimits(weight=50), memory=MemoryLimits(max="max", high=1 << 30),
                                      pids=PidsLimits(max=1000)))
    s = svc.slice_path("team-w")
    assert (read(s, "cpu.weight"), read(s, "memory.high"), read(s, "pids.max")) == ("50", str(1 << 30), "1000")
    u = svc.update_limits("team-w", "", Limits(pids=PidsLimits(max=2000)))
    assert u.changed and read(s, "pids.max") == "2000" and read(s, "cpu.weight") == "50"


def test_pids_max_refuses_a_fork(svc, team):
    path = svc.ensure_scope(team, "pids", Limits(pids=PidsLimits(max=1))).cgroup.path
    code = "import os\ntry:\n    os.fork()\n    print('forked')\nexcept BlockingIOError:\n    print('EAGAIN')\n"
    r = run_in_scope(svc, team, "pids", code)
    assert (r.returncode, r.stdout.strip()) == (0, "EAGAIN"), (r.stdout, r.stderr)
    assert keyed(path, "pids.events")["max"] >= 1
    assert svc.stats(team, "pids").pids_events["max"] >= 1
    record("pids.max", events_max=keyed(path, "pids.events")["max"])


def test_cpuset_pins_the_process(svc, team):
    path = svc.ensure_scope(team, "pin", Limits(cpuset=CpusetLimits(cpus="0", mems="0"))).cgroup.path
    r = run_in_scope(svc, team, "pin", "print(open('/proc/self/status').read())")
    allowed = [l.split(":", 1)[1].strip() for l in r.stdout.splitlines() if l.startswith("Cpus_allowed_list")]
    assert allowed == ["0"], r.stdout
    assert read(path, "cpuset.cpus.effective") == "0"
    record("cpuset.cpus", cpus_allowed_list=allowed[0])


def test_io_max_and_per_device_weight(svc, team):
    dev = vda()
    r = svc.ensure_scope(team, "io", Limits(io=IoLimits(devices=(IoDeviceLimits(dev, rbps=1 << 20, wbps=2 << 20,
                                                                                riops=100, wiops=200),))))
    assert read(r.cgroup.path, "io.max") == f"{dev} rbps=1048576 wbps=2097152 riops=100 wiops=200"
    u = svc.update_limits(team, "io", Limits(io=IoLimits(devices=(IoDeviceLimits(dev, riops="max"),))))
    assert read(r.cgroup.path, "io.max") == f"{dev} rbps=1048576 wbps=2097152 riops=max wiops=200"
    assert u.changed
    qos = os.path.join(MOUNT, "io.cost.qos")
    if not os.path.exists(qos):
        pytest.skip("no io.cost.qos (blk-iocost): per-device io.weight not testable in this kernel")
    write(qos, f"{dev} enable=1")             # per-device io.weight needs iocost on the device
    try:
        svc.update_limits(team, "io", Limits(io=IoLimits(devices=(IoDeviceLimits(dev, weight=77),))))
        assert f"{dev} 77" in read(r.cgroup.path, "io.weight").splitlines()
        record("io.max+io.weight", device=dev)
    finally:
        write(qos, f"{dev} enable=0")


def test_hugetlb_limit(svc, team):
    if "hugetlb" not in svc.driver.available_controllers():
        pytest.skip("hugetlb controller not available in the guest")
    r = svc.ensure_scope(team, "huge", Limits(hugetlb=(HugetlbLimit("2MB", 5 << 20),)))
    assert read(r.cgroup.path, "hugetlb.2MB.max") == str(4 << 20)      # whole huge pages
    record("hugetlb.2MB.max", value=4 << 20)


def test_freeze_thaw_kill_measured(svc, team, children):
    path = svc.ensure_scope(team, "fz", Limits()).cgroup.path
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    ref = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    children += [busy, ref]
    svc.attach(team, "fz", [busy.pid])
    svc.freeze(team, "fz", time.monotonic() + WAIT)
    assert keyed(path, "cgroup.events")["frozen"] == 1
    frozen_ns, usage, r0 = on_cpu_ns(busy.pid), keyed(path, "cpu.stat")["usage_usec"], on_cpu_ns(ref.pid)
    until(lambda: on_cpu_ns(ref.pid) - r0 > 200_000_000, "the reference process to run 200 ms")
    assert on_cpu_ns(busy.pid) == frozen_ns and keyed(path, "cpu.stat")["usage_usec"] == usage
    svc.thaw(team, "fz", time.monotonic() + WAIT)
    until(lambda: on_cpu_ns(busy.pid) > frozen_ns, "the thawed process to run again")
    svc.kill(team, "fz", time.monotonic() + WAIT)
    assert busy.wait(timeout=WAIT) == -signal.SIGKILL
    assert keyed(path, "cgroup.events")["populated"] == 0 and ref.poll() is None
    assert svc.delete_scope(team, "fz") and not os.path.exists(path)
    record("freeze/thaw/kill", ok=True)


def _systemd_run(unit: str, *props: str) -> str:
    subprocess.run(["systemd-run", "--unit", unit, "--quiet", *(f"--property={p}" for p in props),
                    "sleep", "3600"], check=True, timeout=WAIT)
    return subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", unit], check=True,
                          capture_output=True, text=True, timeout=WAIT).stdout.strip()


def test_delegated_subtree_under_systemd():
    """Delegated mode (a root configured inside a Delegate=yes unit's cgroup): the
    unit's processes move into a leaf first; nothing is written above the unit."""
    unit = f"devcloud-deleg-{uuid.uuid4().hex[:8]}.service"
    cg = _systemd_run(unit, "Delegate=yes")
    try:
        d = CgroupDriver(Metrics(), root=MOUNT + cg, own=cg)
        assert d.delegated and d.root == MOUNT + cg, (d.root, cg)
        svc = ComputeService(d, agent_pid=0)
        info = svc.ensure_slice("team-d", Limits(pids=PidsLimits(max=50), memory=MemoryLimits(max=1 << 30)))
        assert read(info.cgroup.path, "pids.max") == "50"
        assert read(MOUNT + cg, "cgroup.procs") == ""
        assert read(MOUNT + cg, "supervisor", "cgroup.procs") != ""
        assert {"pids", "memory"} <= set(read(MOUNT + cg, "cgroup.subtree_control").split())
        assert subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True).stdout.strip() == "active"
        record("delegated-subtree", cgroup=cg)
    finally:
        subprocess.run(["systemctl", "stop", unit], timeout=WAIT)


def test_workloads_outside_the_agent_unit_survive_its_stop(tmp_path):
    """The default root (<mount>/devcloud.slice) is outside the agent's unit: a
    workload the unit started and moved into a scope survives `systemctl stop`
    (KillMode=mixed, as in systemd/devcloud-agent.service)."""
    svc = ComputeService(CgroupDriver(Metrics()), agent_pid=0)
    assert svc.subtree == MOUNT + "/devcloud.slice"
    svc.ensure_slice("team-s", Limits())
    info = svc.ensure_scope("team-s", "w", Limits())
    pidfile = tmp_path / "workload.pid"
    unit = f"devcloud-agentlike-{uuid.uuid4().hex[:8]}.service"
    script = (f"sleep 3600 & echo $! > {info.cgroup.path}/cgroup.procs; echo $! > {pidfile}; sleep 3600")
    subprocess.run(["systemd-run", "--unit", unit, "--quiet", "--property=KillMode=mixed", "sh", "-c", script],
                   check=True, timeout=WAIT)
    pid = None
    try:
        until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the unit to start its workload")
        pid = int(pidfile.read_text())
        subprocess.run(["systemctl", "stop", unit], check=True, timeout=WAIT)
        os.kill(pid, 0)   # raises ProcessLookupError if the stop killed it
        record("workload-survives-unit-stop", alive=True)
    finally:
        subprocess.run(["systemctl", "stop", unit], timeout=WAIT)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        svc.delete_slice("team-s", kill=True)
