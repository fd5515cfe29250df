"""Kernel feature evidence for preflight checks: modules, sysctls, netfilter.

Every answer is (state, evidence) with state "ok" | "missing" | "unknown":
a kernel without loadable modules or without /lib/modules cannot say
whether a parameterless module is built in, and we say so rather than guess.
Read-only, except `sysctl_writable`, which opens for write without writing.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from agent.drivers import procfs
from agent.drivers.contracts.host import KernelContract

# Evidence that a module's functionality is present even when /sys/module
# has no entry (built-in modules without parameters have none).
_MODULE_EVIDENCE: dict[str, list[str]] = {
    "ip_vs": ["/proc/net/ip_vs"],
    "ip_tables": ["/proc/net/ip_tables_names"],
    "ip6_tables": ["/proc/net/ip6_tables_names"],
    "br_netfilter": ["/proc/sys/net/bridge/bridge-nf-call-iptables"],
    "nf_nat": ["/proc/sys/net/netfilter/nf_conntrack_helper", "/sys/module/nf_nat"],
    "overlay": [],  # checked through /proc/filesystems below
}


class KernelDriver(KernelContract):
    """KernelContract over /proc, /sys, /lib/modules and iptables (under `root`, for tests); the
    contract's docstrings are in agent/drivers/contracts/host.py."""

    def __init__(self, root: str = "/") -> None:
        self._root = Path(root)
        self._release = platform.release()

    def _p(self, path: str) -> Path:
        return self._root / path.lstrip("/")

    def module(self, name: str) -> tuple[str, str]:
        """/sys/module/<name>, known evidence files, /proc/filesystems (overlay), then modules.builtin and
        modules.dep of the running kernel."""
        if self._p(f"/sys/module/{name}").exists():
            return "ok", f"/sys/module/{name} exists (loaded or built in)"
        if name == "overlay" and self.filesystem("overlay"):
            return "ok", "overlay is listed in /proc/filesystems"
        for ev in _MODULE_EVIDENCE.get(name, []):
            if self._p(ev).exists():
                return "ok", f"{ev} exists"
        moddir = self._p(f"/lib/modules/{self._release}")
        builtin = procfs.read_text(moddir / "modules.builtin")
        if builtin:
            if any(line.rsplit("/", 1)[-1].split(".")[0].replace("-", "_") == name
                   for line in builtin.splitlines()):
                return "ok", f"built into kernel {self._release}"
            dep = procfs.read_text(moddir / "modules.dep")
            if any(line.split(":")[0].rsplit("/", 1)[-1].split(".")[0].replace("-", "_") == name
                   for line in dep.splitlines()):
                return "missing", f"available for kernel {self._release} but not loaded"
            return "missing", f"not built for kernel {self._release}"
        if not self._p("/proc/modules").exists():
            return "unknown", (f"kernel {self._release} has no loadable modules and no "
                               f"/lib/modules/{self._release}; cannot tell whether {name} is built in")
        return "unknown", f"not loaded, and /lib/modules/{self._release} is not readable"

    def filesystem(self, fstype: str) -> bool:
        """Reads /proc/filesystems."""
        text = procfs.read_text(self._p("/proc/filesystems"))
        return any(line.split()[-1] == fstype for line in text.splitlines() if line.split())

    def sysctl(self, name: str) -> str | None:
        """Reads /proc/sys/<name with dots as slashes>."""
        path = self._p("/proc/sys/" + name.replace(".", "/"))
        if not path.exists():
            return None
        return procfs.read_text(path)

    def writable(self, path: str) -> tuple[str, str]:
        """open(O_WRONLY) and close, without writing."""
        p = self._p(path)
        if not p.exists():
            return "missing", f"{path} does not exist"
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            return "missing", f"{path} is not writable: {exc.strerror}"
        os.close(fd)
        return "ok", f"{path} is writable"

    def path_state(self, path: str, *, readable_dir: bool = False) -> tuple[str, str]:
        """exists(), and listdir() with readable_dir."""
        p = self._p(path)
        if not p.exists():
            return "missing", f"{path} does not exist"
        if readable_dir:
            try:
                entries = os.listdir(p)
            except OSError as exc:
                return "missing", f"{path} is not readable: {exc.strerror}"
            return "ok", f"{path} is readable ({len(entries)} entries)"
        return "ok", f"{path} exists"

    def forward_policy(self) -> tuple[str, str]:
        """Runs `iptables -w 5 -S FORWARD` (argv, 10 s timeout)."""
        exe = shutil.which("iptables")
        if not exe:
            return "unknown", "iptables is not installed, the FORWARD policy cannot be read"
        try:
            out = subprocess.run([exe, "-w", "5", "-S", "FORWARD"], capture_output=True, text=True,
                                 timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return "unknown", f"iptables -S FORWARD failed: {exc}"
        if out.returncode != 0:
            return "unknown", f"iptables -S FORWARD failed: {out.stderr.strip() or out.returncode}"
        for line in out.stdout.splitlines():
            parts = line.split()
            if parts[:2] == ["-P", "FORWARD"] and len(parts) > 2:
                return ("missing" if parts[2] == "DROP" else "ok"), f"FORWARD policy is {parts[2]}"
        return "unknown", "iptables printed no FORWARD policy"
