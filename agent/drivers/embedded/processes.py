"""Daemons the agent runs itself (the embedded OVN stack): started as children,
or adopted from a previous run of the agent, always stopped by PID.

Why adoption: the stack's daemons run in their own session, so they outlive a
crash (SIGKILL) of the agent. Killing and restarting them on the next start
would cost the data plane (the userspace datapath lives in ovs-vswitchd) and
seconds of the restart; a daemon that is alive, runs our command line and
sits in the namespaces we expect is taken over instead.

Why `nsenter --net`: a process started with `ip netns exec` (or `unshare -m`)
gets a private mount namespace holding a copy of every mount of that moment;
without shared propagation (no systemd as PID 1) those copies never go away
and ZFS says "dataset is busy" for every dataset mounted before. Entering
only the network namespace leaves the mount table shared with the host.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

NETNS_DIR = "/run/netns"


def in_netns(netns: str) -> list[str]:
    """argv prefix that runs a command in network namespace `netns` and nothing else."""
    return ["nsenter", f"--net={os.path.join(NETNS_DIR, netns)}", "--"]


def state(pid: int) -> str:
    """The process state letter from /proc/<pid>/stat ("" when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[0]


def alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not reaped) is not alive."""
    return state(pid) not in ("", "Z", "X")


def ns_inode(pid: int | str, kind: str) -> int | None:
    """Inode of /proc/<pid>/ns/<kind> (identifies the namespace), None if unreadable."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def cmdline(pid: int) -> str:
    """The command line of `pid`, arguments joined by spaces ("" when there is no such process)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Adopted:
    """A daemon of a previous run that we took over: the subset of Popen the stack uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the process runs; -1 once it is gone or a zombie (not our child: its exit
        status is unknown). Idempotent; never raises."""
        if self.returncode is None and not alive(self.pid):
            self.returncode = -1              # not our child: its exit status is unknown
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send `sig` by PID; a process that is already gone is fine (no error). Raises
        PermissionError when the PID now belongs to a process we may not signal."""
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL by PID; gone already is fine. Raises as send_signal()."""
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the process is gone (polling /proc; not our child, so no waitpid); returns -1.
        Idempotent: returns at once once gone. Raises subprocess.TimeoutExpired after `timeout`."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.01)
        return self.returncode if self.returncode is not None else -1


def stop_pid(pid: int, timeout: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone or a zombie."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.01)
        if not alive(pid):
            return
