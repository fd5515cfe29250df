"""zfs-fuse and file-backed pools: the embedded ZFS of hosts without the kernel module.

One implementation for the agent's embedded default ([storage].pool empty),
the test fixtures (tests/support/zfs.py) and bench.

zfs-fuse is one daemon per host (fixed socket /var/run/zfs/zfs_socket).
Whoever needs it calls `ensure_running()`: a daemon that answers is reused
without being owned; otherwise one is started (`setsid zfs-fuse --no-daemon
--no-kstat-mount`, its PID recorded in `<state_dir>/zfs-fuse.pid`, since
zfs-fuse writes no pidfile with --no-daemon).

zfs-fuse is part of the data plane, like a kernel module: instance roots are
its FUSE mounts, so the agent LEAVES RUNNING the zfs-fuse it started when it
stops. A later agent start finds it running (reused) or, after a reboot or a
crash, starts a new one, imports the pool from its file and mounts it.

Sharing between processes (several test sessions, an agent and a test):
every user holds a shared flock on USERS_LOCK for as long as it needs the
daemon (`Lease`); `stop_if_unused()` stops a daemon only if the caller
started it AND nobody else holds a lease. Start/stop decisions are
serialized by START_LOCK. Processes are stopped by PID only.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from agent.drivers.base import Availability
from agent.drivers.zfs.cli import ZfsCommand, find_binary
from agent.errors import AgentError, FailedPrecondition, NotFound, Unavailable
from agent.metrics import Metrics

log = logging.getLogger(__name__)

SOCKET = "/var/run/zfs/zfs_socket"
LOCK_DIR = "/run/lock"
START_LOCK = f"{LOCK_DIR}/devcloud-zfs-fuse.start.lock"
USERS_LOCK = f"{LOCK_DIR}/devcloud-zfs-fuse.users.lock"
PIDFILE_NAME = "zfs-fuse.pid"


def probe() -> Availability:
    """Whether zfs-fuse and the zfs/zpool commands are installed and /dev/fuse exists."""
    missing = [b for b in ("zfs-fuse", "zfs", "zpool") if not find_binary(b)]
    if missing:
        return Availability.missing(f"missing {', '.join(missing)}: apt install zfs-fuse")
    if not os.path.exists("/dev/fuse"):
        return Availability.missing("/dev/fuse is missing: zfs-fuse needs the fuse kernel module")
    return Availability.ok("0.7", ["no-zvol", "pool-version-23"])


@contextmanager
def _flock(path: str, mode: int = fcntl.LOCK_EX) -> Iterator[int]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        os.close(fd)


def answers(cmd: ZfsCommand, timeout: float = 5.0) -> bool:
    """True when a ZFS control channel answers (`zpool list`)."""
    try:
        cmd.run("zpool", ["list", "-H", "-o", "name"], what="zfs-fuse liveness", op="probe", timeout=timeout)
        return True
    except AgentError:
        return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"      # a zombie is not alive


def _is_zfs_fuse(pid: int) -> bool:
    try:
        return b"zfs-fuse" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass
class Daemon:
    """A zfs-fuse daemon as seen by one user."""

    pid: int                      # 0 when reused and its PID is unknown
    owned: bool                   # started by this process (only then may it stop it)
    proc: subprocess.Popen | None = None


class Lease:
    """A shared flock held while the caller needs zfs-fuse; release() drops it."""

    def __init__(self) -> None:
        os.makedirs(LOCK_DIR, exist_ok=True)
        self._fd = os.open(USERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        """Drop the shared lock (the last user to release may then stop an owned daemon).
        Idempotent: a second call does nothing. Never raises."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def ensure_running(state_dir: str | os.PathLike, metrics: Metrics | None = None, *,
                   timeout: float = 20.0) -> tuple[Daemon, Lease]:
    """Reuse the running zfs-fuse or start one; return it with a Lease held.

    Idempotent. Raises FailedPrecondition if zfs-fuse is not installed,
    Unavailable if it does not answer within `timeout` seconds.
    """
    avail = probe()
    if not avail.available:
        raise FailedPrecondition(f"zfs-fuse cannot run here: {avail.reason}", reason="FACILITY_UNAVAILABLE",
                                 metadata={"facility": "zfs-fuse"})
    cmd = ZfsCommand(metrics or Metrics())
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    with _flock(START_LOCK):
        lease = Lease()
        if os.path.exists(SOCKET) and answers(cmd):
            return Daemon(pid=_recorded_pid(state), owned=False), lease
        log_path = state / "zfs-fuse.log"
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen([find_binary("zfs-fuse"), "--no-daemon", "--no-kstat-mount"],
                                    stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    start_new_session=True, close_fds=True)
        (state / PIDFILE_NAME).write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                lease.release()
                raise Unavailable(f"zfs-fuse exited with status {proc.returncode} at start; see {log_path}",
                                  reason="ZFS_FUSE_START_FAILED")
            if os.path.exists(SOCKET) and answers(cmd, timeout=2):
                log.info("started zfs-fuse pid %d", proc.pid)
                return Daemon(pid=proc.pid, owned=True, proc=proc), lease
            time.sleep(0.05)
        _terminate(proc.pid, proc)
        lease.release()
        raise Unavailable(f"zfs-fuse did not answer within {timeout:.0f}s; see {log_path}",
                          reason="ZFS_FUSE_START_TIMEOUT")


def _recorded_pid(state: Path) -> int:
    try:
        pid = int((state / PIDFILE_NAME).read_text().strip())
    except (OSError, ValueError):
        return 0
    return pid if _alive(pid) and _is_zfs_fuse(pid) else 0


def stop_if_unused(daemon: Daemon, lease: Lease, *, timeout: float = 30.0) -> bool:
    """Release `lease`; stop the daemon by PID if we started it and nobody else holds a
    lease. Returns True if it was stopped. Export or destroy your pools first."""
    with _flock(START_LOCK):
        lease.release()
        if not daemon.owned or not daemon.pid:
            return False
        fd = os.open(USERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("zfs-fuse pid %d is still used by another process; leaving it running", daemon.pid)
                return False
            _terminate(daemon.pid, daemon.proc, timeout=timeout)
            return True
        finally:
            os.close(fd)


def stop_recorded(state_dir: str | os.PathLike, *, timeout: float = 30.0) -> bool:
    """Stop the zfs-fuse whose PID an agent recorded in `state_dir` (tests and operators use
    this after stopping an agent that started one), unless another process holds a lease.
    Export or destroy its pools first. Returns True if a process was stopped."""
    pid = _recorded_pid(Path(state_dir))
    if not pid:
        return False
    with _flock(START_LOCK):
        fd = os.open(USERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("zfs-fuse pid %d is still used by another process; leaving it running", pid)
                return False
            _terminate(pid, None, timeout=timeout)
            (Path(state_dir) / PIDFILE_NAME).unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)


def _terminate(pid: int, proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """SIGTERM, wait (zfs-fuse unmounts and syncs, ~2-5 s), SIGKILL after `timeout`."""
    if not _is_zfs_fuse(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return
        if proc is None and not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc is not None:
        proc.wait(timeout=5)


# -- file-backed pools ------------------------------------------------------------


@dataclass(frozen=True)
class FilePool:
    name: str
    path: Path                    # the sparse file (the only vdev)
    mountpoint: str
    action: str                   # "present" | "imported" | "created"


def ensure_file_pool(cmd: ZfsCommand, name: str, path: str | os.PathLike, *, size: int,
                     mountpoint: str, cachefile: bool = True) -> FilePool:
    """The pool `name` on the sparse file `path`: reuse it if imported, import it if the
    file exists, else create the file (sparse, `size` bytes) and the pool.

    Idempotent. cachefile=False keeps the pool out of zpool.cache (test pools:
    a daemon restart will not try to import a pool whose file is gone).
    Raises AlreadyExists if `name` is imported from another vdev,
    ResourceExhausted/Internal from zpool create.
    """
    path = Path(path)
    existing = cmd.pool(name, parsable=False)
    if existing is not None:
        return FilePool(name, path, mountpoint, "present")
    if path.exists():
        try:
            opts = [] if cachefile else ["-o", "cachefile=none"]
            cmd.run("zpool", ["import", *opts, "-d", str(path.parent), name], what=f"import pool {name}",
                    op="pool_import", timeout=120)
            return FilePool(name, path, mountpoint, "imported")
        except NotFound:
            raise FailedPrecondition(f"pool file {path} exists but holds no importable pool {name}; move it "
                                     "away to start afresh", reason="POOL_FILE_UNUSABLE") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        f.truncate(size)
    args = ["create"]
    if not cachefile:
        args += ["-o", "cachefile=none"]
    args += ["-m", mountpoint, name, str(path)]
    try:
        cmd.run("zpool", args, what=f"create pool {name} on {path}", op="pool_create", timeout=120)
    except AgentError:
        path.unlink(missing_ok=True)
        raise
    return FilePool(name, path, mountpoint, "created")


def destroy_file_pool(cmd: ZfsCommand, name: str, path: str | os.PathLike | None = None) -> None:
    """Destroy pool `name` (it must be a pool we created) and remove its file. Idempotent."""
    deadline = time.monotonic() + 120
    while True:
        try:
            cmd.run("zpool", ["destroy", "-f", name], what=f"destroy pool {name}", op="pool_destroy",
                    timeout=120)
            break
        except NotFound:
            break
        except AgentError as exc:
            # zfs-fuse releases datasets asynchronously after unmounts: "pool is busy" for a moment
            if "busy" not in exc.message or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if path is not None:
        Path(path).unlink(missing_ok=True)
