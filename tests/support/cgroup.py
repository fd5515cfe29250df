"""Fixtures for the compute plane: throwaway cgroup v2 subtrees, child processes.

Every subtree is unique per session and per test (pid + random suffix) and is
removed at teardown, processes inside it killed first, even when the test
failed. Controllers the session enabled at the cgroup2 root are disabled again
if nobody else uses them (the kernel refuses with EBUSY otherwise, which is
fine). Nothing outside our own directories is touched.
"""
from __future__ import annotations

import itertools
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from agent.drivers import procfs

__all__ = ["cgroup2_root", "cgroup_session_dir", "cgroup_test_root", "cgroup_children", "compute_agent",
           "compute_stub", "require_controller", "remove_cgroup_tree", "cgroup_controllers_available",
           "write_cgroup_file", "compute_overrides"]

_counter = itertools.count()


def write_cgroup_file(path: str, payload: str) -> None:
    """Unbuffered write (test-side helper, independent of the agent's driver)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, payload.encode())
    finally:
        os.close(fd)


def cgroup_controllers_available(mount: str) -> set[str]:
    try:
        return set(open(os.path.join(mount, "cgroup.controllers")).read().split())
    except OSError:
        return set()


def require_controller(mount: str, name: str) -> None:
    """Skip unless `name` is a cgroup v2 controller here (its limits can be tested for real)."""
    if name not in cgroup_controllers_available(mount):
        pytest.skip(f"cgroup v2 controller {name!r} is not available here "
                    f"({os.path.join(mount, 'cgroup.controllers')} lists "
                    f"{' '.join(sorted(cgroup_controllers_available(mount))) or 'nothing'}); "
                    "its limits are exercised in the real-kernel node tier")


def _events(path: str) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (l.split() for l in open(os.path.join(path, "cgroup.events")))}
    except OSError:
        return {}


def remove_cgroup_tree(path: str, timeout: float = 10.0) -> None:
    """Kill every process below `path` and rmdir it bottom-up (test teardown)."""
    if not os.path.isdir(path):
        return
    end = time.monotonic() + timeout
    for dirpath, _, _ in os.walk(path, topdown=False):
        try:
            write_cgroup_file(os.path.join(dirpath, "cgroup.freeze"), "0")
        except OSError:
            pass
    if _events(path).get("populated"):
        try:
            write_cgroup_file(os.path.join(path, "cgroup.kill"), "1")
        except OSError:
            pass
        while _events(path).get("populated") and time.monotonic() < end:
            time.sleep(0.005)
    for dirpath, _, _ in os.walk(path, topdown=False):
        while True:
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.005)


@pytest.fixture(scope="session")
def cgroup2_root() -> str:
    """The cgroup2 mount point (skips the test when there is none)."""
    mount = procfs.cgroup2_mount()
    if not mount:
        pytest.skip("no cgroup2 hierarchy mounted")
    if not os.access(os.path.join(mount, "cgroup.procs"), os.W_OK):
        pytest.skip(f"{mount} is not writable (tests need root)")
    return mount


@pytest.fixture(scope="session")
def cgroup_session_dir(cgroup2_root):
    """<mount>/devcloud-test-<pid>-<random>: everything this session creates lives below it."""
    before = set(open(os.path.join(cgroup2_root, "cgroup.subtree_control")).read().split())
    path = os.path.join(cgroup2_root, f"devcloud-test-{os.getpid()}-{secrets.token_hex(3)}")
    os.mkdir(path)
    try:
        yield path
    finally:
        remove_cgroup_tree(path)
        after = set(open(os.path.join(cgroup2_root, "cgroup.subtree_control")).read().split())
        for c in sorted(after - before):
            try:           # EBUSY when another user needs it: then it stays, as it should
                write_cgroup_file(os.path.join(cgroup2_root, "cgroup.subtree_control"), f"-{c}")
            except OSError:
                pass


@pytest.fixture
def cgroup_test_root(cgroup_session_dir):
    """A fresh, not yet existing directory path below the session's dir (the driver creates it)."""
    path = os.path.join(cgroup_session_dir, f"t{next(_counter)}")
    try:
        yield path
    finally:
        remove_cgroup_tree(path)


class Children:
    """Child processes started by a test; stopped by PID at teardown."""

    BUSY = "import sys,time\nn=0\nwhile True:\n    n+=1\n"

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, code: str = "import time\nwhile True: time.sleep(1)\n", **kw) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", code], **kw)
        self.procs.append(p)
        return p

    def detached(self, code: str = "import time\nwhile True: time.sleep(1)\n"):
        """A process that is NOT a descendant of this one (double fork, reparented): what a
        workload looks like to an in-process agent, which refuses to move its own children.
        Returns a handle with pid/poll/wait/kill; stopped by PID at teardown."""
        from agent.drivers.embedded.processes import Adopted
        launcher = ("import subprocess,sys\n"
                    "p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], start_new_session=True, "
                    "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                    "print(p.pid)\n")
        out = subprocess.run([sys.executable, "-c", launcher, code], capture_output=True, text=True, check=True)
        handle = Adopted(int(out.stdout))
        self.procs.append(handle)
        return handle

    def busy(self) -> subprocess.Popen:
        """A process spinning on the CPU."""
        return self.start(self.BUSY)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def cgroup_children():
    c = Children()
    try:
        yield c
    finally:
        c.stop_all()


def compute_overrides(root: str) -> list[str]:
    """Config overrides that switch the compute plane on, rooted at `root`."""
    return ["compute.enabled=true", f"compute.cgroup_root={root}"]


@pytest.fixture(scope="module")
def compute_agent(cgroup_session_dir):
    """A real in-process agent (gRPC on a temp unix socket) with the compute plane
    rooted in a throwaway subtree; yields (agent, root)."""
    import shutil

    from tests.support.server import start_inprocess, temp_dir
    root = os.path.join(cgroup_session_dir, f"agent{next(_counter)}")
    tmp = temp_dir()
    agent = start_inprocess(tmp, compute_overrides(root))
    try:
        yield agent, root
    finally:
        agent.stop()
        remove_cgroup_tree(root)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def compute_stub(compute_agent):
    from agent._proto.devcloud.agent.v1 import compute_pb2_grpc
    return compute_pb2_grpc.ComputeServiceStub(compute_agent[0].channel)
