"""Node inventory: CPUs, memory, kernel, OS. Read-only, never raises."""
from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

from agent.drivers import procfs


@dataclass
class NodeInventory:
    hostname: str
    cpus: int
    cpu_model: str
    memory_bytes: int
    memory_available_bytes: int
    kernel_release: str
    os: str
    architecture: str
    uptime_seconds: float


def online_cpus(sys_root: str = "/sys") -> list[int]:
    """Online CPU numbers from /sys/devices/system/cpu/online ('0-3,6')."""
    text = procfs.read_text(Path(sys_root) / "devices/system/cpu/online")
    return parse_cpu_list(text) if text else list(range(os.cpu_count() or 1))


def parse_cpu_list(text: str) -> list[int]:
    """Parse a kernel cpu list like '0-3,5,7-8'. Raises ValueError on bad syntax."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        a, b = int(lo), int(hi) if sep else int(lo)
        if a < 0 or b < a:
            raise ValueError(f"bad cpu range {part!r}")
        cpus.update(range(a, b + 1))
    return sorted(cpus)


def read_inventory(proc_root: str = "/proc", sys_root: str = "/sys") -> NodeInventory:
    """The node's hostname, CPUs, memory, kernel, OS and uptime, read now. Read-only; unreadable
    files count as empty/zero. Raises ValueError on a malformed online CPU list."""
    mem = procfs.meminfo(f"{proc_root}/meminfo")
    model = ""
    for line in procfs.read_text(f"{proc_root}/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    os_name = ""
    for line in procfs.read_text("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.partition("=")[2].strip().strip('"')
    uptime = procfs.read_text(f"{proc_root}/uptime", "0").split()[0]
    return NodeInventory(
        hostname=socket.gethostname(),
        cpus=len(online_cpus(sys_root)),
        cpu_model=model,
        memory_bytes=mem.get("MemTotal", 0),
        memory_available_bytes=mem.get("MemAvailable", 0),
        kernel_release=platform.release(),
        os=os_name,
        architecture=platform.machine(),
        uptime_seconds=float(uptime),
    )
