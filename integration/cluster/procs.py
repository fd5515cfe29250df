"""Processes and network namespaces for the cluster harness.

Every daemon is a direct child (subprocess.Popen, no --detach, its own
session), remembered with its PID and stopped by that PID only. Every network
namespace is created by name and remembered, and only those are deleted.
Nothing here looks processes or namespaces up by name pattern.

Commands enter a namespace with `nsenter --net=/run/netns/<ns> --`: only the
network namespace changes. `nsenter` execs the program (no fork), so the PID
of the Popen is the daemon's PID. See harness.py for what was checked.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = "/run/netns"


class CmdError(RuntimeError):
    """A command failed; the message carries its stderr."""

    def __init__(self, argv: list[str], rc: int, stdout: str, stderr: str) -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, rc, stdout, stderr
        super().__init__(f"{' '.join(argv)} -> rc {rc}: {stderr.strip()[-800:]}")


def in_netns(netns: str) -> list[str]:
    """argv prefix: run a command in network namespace `netns` (and no other namespace)."""
    return ["nsenter", f"--net={NETNS_DIR}/{netns}", "--"]


def run(argv: list[str], *, netns: str | None = None, env: dict | None = None, check: bool = True,
        timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
    """Run argv (in `netns` if given), capture text output; raise CmdError on failure when check."""
    full = (in_netns(netns) if netns else []) + list(argv)
    try:
        r = subprocess.run(full, env=env, capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CmdError(full, -1, "", f"timed out after {timeout}s") from exc
    if check and r.returncode != 0:
        raise CmdError(full, r.returncode, r.stdout, r.stderr)
    return r


def ovs_env(d: str | Path) -> dict:
    """os.environ with every OVS/OVN run/db/log dir set to `d` (sockets, pidfiles, logs stay there)."""
    env = dict(os.environ)
    for k in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR"):
        env[k] = str(d)
    return env


def wait_until(pred, timeout: float, what: str, interval: float = 0.02):
    """Poll pred() until it returns something truthy; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except (CmdError, OSError):
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sock_ready(path: str | Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))
        return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Running (not a zombie, not gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains `text` (used to PROVE nothing of ours is left; never to kill)."""
    me = os.getpid()
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != me and text in cmdline(int(p)) and alive(int(p)):
            out.append(int(p))
    return out


@dataclass
class Daemon:
    """One child process: its argv, log of stderr, and the Popen that holds its PID."""
    name: str
    argv: list[str]
    netns: str | None
    env: dict
    stderr_path: Path
    ready: object = None            # callable -> bool, polled after start
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    start_seconds: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20.0) -> "Daemon":
        full = (in_netns(self.netns) if self.netns else []) + self.argv
        with open(self.stderr_path, "ab") as err:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(full, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, start_new_session=True)
        self.started_at = t0
        if self.ready is not None:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                tail = self.stderr_path.read_text(errors="replace")[-600:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting: {tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} (pid {self.pid}) not ready after {timeout}s")
            time.sleep(0.005)
        self.start_seconds = time.monotonic() - self.started_at

    def signal(self, sig: int) -> None:
        if self.running():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL by PID and reap."""
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()


def stop_all(daemons: list, grace: float = 5.0) -> list[str]:
    """SIGTERM every running daemon (all at once), SIGKILL what is left after `grace`, reap all.
    Returns the names that needed SIGKILL."""
    live = [d for d in daemons if d.running()]
    for d in live:
        d.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(d.proc.poll() is None for d in live) and time.monotonic() < deadline:
        time.sleep(0.01)
    killed = []
    for d in live:
        if d.proc.poll() is None:
            killed.append(d.name)
            d.kill()
    return killed


def ip_batch(netns: str | None, lines: list[str]) -> None:
    """Several `ip` commands in one process (in netns if given); stops at the first error."""
    run(["ip", *(["-n", netns] if netns else []), "-batch", "-"], input="\n".join(lines) + "\n")


@dataclass
class NetnsSet:
    """Network namespaces this run created, deleted in reverse order on cleanup."""
    created: list[str] = field(default_factory=list)

    def add(self, name: str) -> str:
        if os.path.exists(f"{NETNS_DIR}/{name}"):
            raise RuntimeError(f"netns {name} already exists: not ours, refusing to reuse it")
        run(["ip", "netns", "add", name])
        self.created.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def remove(self, name: str) -> None:
        if name in self.created:
            run(["ip", "netns", "del", name], check=False)
            self.created.remove(name)

    def cleanup(self) -> list[str]:
        failed = []
        for name in reversed(list(self.created)):
            r = run(["ip", "netns", "del", name], check=False)
            if r.returncode != 0 and os.path.exists(f"{NETNS_DIR}/{name}"):
                failed.append(f"{name}: {r.stderr.strip()}")
            self.created.remove(name)
        return failed
