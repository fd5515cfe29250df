"""cgroup v2 with the five controllers the compute plane uses, limits enforced."""
import os
import pathlib
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "memory", "io", "pids", "cpuset")


def write(path, value):
    # os.write, not buffered open(): the kernel's EINVAL/EBUSY must surface here
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def read(path):
    return pathlib.Path(path).read_text().strip()


def keyed(path):
    """Parse a flat-keyed file (cpu.stat, memory.events, cgroup.events)."""
    return {k: int(v) for k, v in (line.split() for line in read(path).splitlines())}


@pytest.fixture
def leaf(unique, poll):
    """A team-like parent with all five controllers delegated and one leaf under it."""
    want = " ".join(f"+{c}" for c in CONTROLLERS)
    write(ROOT / "cgroup.subtree_control", want)   # additive; systemd keeps what it enabled
    parent = ROOT / f"devcloud-test-{unique}"
    parent.mkdir()
    leaf = parent / "leaf"
    try:
        write(parent / "cgroup.subtree_control", want)
        leaf.mkdir()
        yield leaf
    finally:
        if leaf.exists():
            write(leaf / "cgroup.kill", 1)
            poll(lambda: not read(leaf / "cgroup.procs"), timeout=60, what="leaf emptied")
            leaf.rmdir()
        parent.rmdir()


def run_in(cgroup, argv, **kw):
    """Start argv already inside cgroup (moved between fork and exec)."""
    procs = str(cgroup / "cgroup.procs")
    return subprocess.run(argv, preexec_fn=lambda: write(procs, os.getpid()), capture_output=True,
                          text=True, timeout=300, **kw)


def test_cgroup2_is_the_only_hierarchy():
    mounts = [line.split() for line in read("/proc/self/mounts").splitlines()]
    assert ["cgroup2"] == [m[2] for m in mounts if m[1] == "/sys/fs/cgroup"]
    assert not [m for m in mounts if m[2] == "cgroup"], "a cgroup v1 hierarchy is mounted"


def test_all_controllers_available():
    assert set(CONTROLLERS) <= set(read(ROOT / "cgroup.controllers").split())


def test_limits_set_and_read_back(leaf):
    assert set(CONTROLLERS) <= set(read(leaf / "cgroup.controllers").split())
    vda = read("/sys/block/vda/dev")
    write(leaf / "cpu.max", "50000 100000")
    write(leaf / "cpu.weight", 50)
    write(leaf / "memory.max", 256 << 20)
    write(leaf / "memory.high", 200 << 20)
    write(leaf / "pids.max", 64)
    write(leaf / "cpuset.cpus", 0)
    write(leaf / "io.max", f"{vda} rbps=10485760 wiops=1000")
    assert read(leaf / "cpu.max") == "50000 100000"
    assert read(leaf / "cpu.weight") == "50"
    assert read(leaf / "memory.max") == str(256 << 20)
    assert read(leaf / "memory.high") == str(200 << 20)
    assert read(leaf / "pids.max") == "64"
    assert read(leaf / "cpuset.cpus.effective") == "0"
    assert read(leaf / "io.max") == f"{vda} rbps=10485760 wbps=max riops=max wiops=1000"


def test_memory_max_is_enforced_by_oom_kill(leaf):
    write(leaf / "memory.max", 128 << 20)
    write(leaf / "memory.swap.max", 0)
    # b"x" * n writes every page, so the 400 MiB are really charged
    r = run_in(leaf, [sys.executable, "-c", "b = b'x' * (400 << 20); print('survived')"])
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stdout, r.stderr)
    assert keyed(leaf / "memory.events")["oom_kill"] >= 1


def test_pids_max_refuses_fork(leaf):
    write(leaf / "pids.max", 1)
    code = "import os\ntry:\n    os.fork()\nexcept BlockingIOError:\n    print('EAGAIN')\n"
    r = run_in(leaf, [sys.executable, "-c", code])
    assert (r.returncode, r.stdout.strip()) == (0, "EAGAIN"), r.stderr
    assert keyed(leaf / "pids.events")["max"] >= 1


def test_cpu_max_throttles(leaf):
    write(leaf / "cpu.max", "10000 100000")   # 10% of one CPU
    # burn 0.5 s of CPU: at 10% that spans several periods, each ending throttled
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    r = run_in(leaf, [sys.executable, "-c", burn])
    assert r.returncode == 0, r.stderr
    stat = keyed(leaf / "cpu.stat")
    assert stat["nr_throttled"] >= 1 and stat["throttled_usec"] > 0, stat


def test_freeze_thaw_kill(leaf, poll):
    p = subprocess.Popen(["sleep", "600"], preexec_fn=lambda: write(leaf / "cgroup.procs", os.getpid()))
    try:
        poll(lambda: str(p.pid) in read(leaf / "cgroup.procs").split(), what="sleep in leaf")
        write(leaf / "cgroup.freeze", 1)
        poll(lambda: keyed(leaf / "cgroup.events")["frozen"] == 1, what="frozen")
        write(leaf / "cgroup.freeze", 0)
        poll(lambda: keyed(leaf / "cgroup.events")["frozen"] == 0, what="thawed")
        write(leaf / "cgroup.kill", 1)
        assert p.wait(timeout=60) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
