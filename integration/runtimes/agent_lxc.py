"""LXC containers and QEMU VMs started from what the agent prints
(`devcloudctl instance lxc-config` / `qemu-args`), used verbatim: the config text
is written as is, every lxc-* command runs behind the printed wrap
(`nsenter --net=<netns> --`), QEMU runs the printed argv and is put into the
printed payload cgroup before it execs. Processes we start are stopped by PID.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from integration.runtimes.common import (ENV, CommandFailed, need, parse_markers, run, stop_pid, wait_for)
from integration.runtimes.lxc import cgroup2_mount

REPO = Path(__file__).resolve().parents[2]


def ctl(socket: str, *args: str, timeout: float = 60) -> dict | str:
    """devcloudctl against the agent on `socket` (JSON decoded when --json is among args)."""
    argv = [sys.executable, "-m", "agent.cli.ctl", "--socket", socket, *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    if p.returncode != 0:
        raise CommandFailed(argv, p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout) if "--json" in args else p.stdout


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class AgentContainer:
    """One container from `devcloudctl --json instance lxc-config` output."""

    def __init__(self, cfg: dict, workdir: Path) -> None:
        self.name, self.text, self.wrap = cfg["name"], cfg["config"], list(cfg["wrap"])
        self.workdir = workdir
        self.lxcpath = workdir / "lxcpath"
        self.conf = workdir / f"{self.name}.conf"
        self.pidfile = workdir / f"{self.name}.monitor.pid"
        self.lxcpath.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)                      # an unprivileged root traverses it
        self.monitor_pid = self.init_pid = 0
        self.conf.write_text(self.text)              # verbatim

    def _lxc(self, tool: str, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return run([*self.wrap, need(tool, "lxc"), "-n", self.name, "-P", str(self.lxcpath), *args],
                   timeout=timeout, check=check)

    def log(self) -> str:
        for line in self.text.splitlines():
            if line.startswith("lxc.log.file"):
                try:
                    return Path(line.split("=", 1)[1].strip()).read_text(errors="replace")
                except OSError:
                    return ""
        return ""

    def start(self, timeout: float = 30) -> float:
        """lxc-start -d (behind the wrap); seconds until it returned RUNNING. RuntimeError with
        LXC's log when it fails (after waiting for the failed monitor to exit, by PID)."""
        t0 = time.monotonic()
        p = run([*self.wrap, "lxc-start", "-n", self.name, "-P", str(self.lxcpath), "-f", str(self.conf), "-d",
                 "-p", str(self.pidfile)], timeout=timeout, check=False)
        took = time.monotonic() - t0
        if self.pidfile.exists():
            try:
                self.monitor_pid = int(self.pidfile.read_text().strip() or 0)
            except ValueError:
                self.monitor_pid = 0
        if p.returncode != 0:
            if self.monitor_pid:
                try:
                    wait_for(lambda: not _alive(self.monitor_pid), 15, 0.01, "failed lxc monitor to exit")
                except TimeoutError:
                    stop_pid(self.monitor_pid, timeout=5)
            self.monitor_pid = 0
            self._wait_monitor_cgroup_gone()
            raise RuntimeError(f"lxc-start {self.name} exited {p.returncode}: {p.stderr.strip()[-800:]}\n"
                               + "\n".join(l for l in self.log().splitlines() if " ERROR " in l))
        self.init_pid = int(self._lxc("lxc-info", "-pH").stdout.strip() or 0)
        return took

    def _wait_monitor_cgroup_gone(self, timeout: float = 15) -> None:
        """A failed start's monitor removes its cgroup (`lxc.cgroup.dir.monitor`) last; a start
        before that fails (EEXIST, then ERANGE). The pidfile may not name it (it can fail before
        writing it), so wait on the cgroup itself; say what is left in it if it stays."""
        rel = next((l.split("=", 1)[1].strip() for l in self.text.splitlines()
                    if l.split("=", 1)[0].strip() == "lxc.cgroup.dir.monitor"), "")
        if not rel:
            return
        path = os.path.join(cgroup2_mount() or "/sys/fs/cgroup", rel)
        try:
            wait_for(lambda: not os.path.isdir(path), timeout, 0.01, f"LXC to remove {path}")
        except TimeoutError:
            procs = Path(path, "cgroup.procs").read_text().split() if os.path.isdir(path) else []
            raise RuntimeError(f"a failed lxc-start left {path} behind for {timeout}s (processes in it: {procs})")

    def attach(self, argv: list[str], *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return run([*self.wrap, need("lxc-attach", "lxc"), "-n", self.name, "-P", str(self.lxcpath), "--", *argv],
                   timeout=timeout, check=check)

    def sh(self, script: str, *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return self.attach(["/bin/sh", "-c", script], timeout=timeout, check=check)

    def dhcp(self, iface: str = "eth0", tries: int = 15) -> tuple[dict | None, float, str]:
        """busybox udhcpc inside (the rootfs hook prints DEVCLOUD-LEASE): (lease, seconds, output)."""
        t0 = time.monotonic()
        p = self.attach(["udhcpc", "-i", iface, "-n", "-q", "-f", "-t", str(tries), "-T", "1", "-s",
                         "/usr/share/udhcpc/default.script"], timeout=tries + 30, check=False)
        out = p.stdout + p.stderr
        leases = parse_markers(out, "DEVCLOUD-LEASE")
        return (leases[-1] if leases else None), time.monotonic() - t0, out

    def v2_cgroup(self) -> str:
        for line in Path(f"/proc/{self.init_pid}/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].lstrip("/")
        return ""

    def stop(self, timeout: int = 10) -> None:
        """lxc-stop, then make sure the processes we own are gone (by PID)."""
        if self.monitor_pid:
            try:
                self._lxc("lxc-stop", "-t", str(timeout), timeout=timeout + 20, check=False)
            except subprocess.TimeoutExpired:
                pass
        if self.init_pid:
            stop_pid(self.init_pid, timeout=5)
        if self.monitor_pid:
            try:
                wait_for(lambda: not _alive(self.monitor_pid), 10, 0.02, "lxc monitor exit")
            except TimeoutError:
                stop_pid(self.monitor_pid, timeout=5)
        self.monitor_pid = self.init_pid = 0


class AgentVm:
    """QEMU from `devcloudctl --json instance qemu-args` output: argv verbatim, the process put
    into the printed payload cgroup (created here) before it execs."""

    def __init__(self, cmd: dict, serial: Path) -> None:
        self.argv, self.cgroup, self.serial_path = list(cmd["argv"]), cmd["payload_cgroup"], serial
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0
        self.seen: dict[str, float] = {}

    def start(self) -> "AgentVm":
        os.makedirs(self.cgroup, exist_ok=True)
        procs = os.path.join(self.cgroup, "cgroup.procs")

        def enter_cgroup() -> None:                  # runs in the child: nsenter and QEMU inherit it
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        self.serial_path.write_bytes(b"")
        self._err = open(self.serial_path.with_suffix(".stderr"), "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._err, stderr=subprocess.STDOUT,
                                     env=ENV, preexec_fn=enter_cgroup)
        return self

    def serial(self) -> str:
        try:
            return self.serial_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr(self) -> str:
        try:
            return self.serial_path.with_suffix(".stderr").read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(self, tag: str, timeout: float) -> dict | None:
        """The fields of the first `tag` marker line (host seconds since start kept in `seen`),
        None when QEMU exits or the time is up."""
        end = time.monotonic() + timeout
        while True:
            found = parse_markers(self.serial(), tag)
            if found:
                self.seen.setdefault(tag, time.monotonic() - self.t0)
                return found[-1]
            if self.proc.poll() is not None or time.monotonic() > end:
                return None
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc, timeout=5)
            self._err.close()
            self.proc = None
