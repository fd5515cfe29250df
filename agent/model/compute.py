"""Compute plane value types: cgroup limits, observed cgroups, usage counters.

Plain data shared by the api (proto conversion), the compute service
(validation, drift) and the cgroup driver (kernel files). No protobuf, no I/O.

`None` in a limit field means "not requested": in an Ensure it becomes the
kernel default, in an Update it leaves the kernel file alone. MAX ("max") is
the kernel's word for "unlimited" and is accepted wherever the kernel accepts
it. The range constants are the kernel's own bounds for each file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Union

MAX: Literal["max"] = "max"
Bound = Union[int, Literal["max"]]      # bytes / count / µs, or "max"

SLICE = "slice"
SCOPE = "scope"

# Controllers the cgroup driver can set limits for (cgroup.controllers words).
LIMIT_CONTROLLERS = ("cpu", "memory", "pids", "io", "cpuset", "hugetlb")

# Kernel bounds and defaults of the limit files.
CPU_QUOTA_MIN_US = 1000                  # kernel: quota >= 1 ms
CPU_QUOTA_MAX_US = (1 << 44) - 1         # kernel: max_cfs_runtime (MAX_BW µs)
CPU_PERIOD_MIN_US = 1000                 # kernel: 1 ms .. 1 s
CPU_PERIOD_MAX_US = 1_000_000
CPU_PERIOD_DEFAULT_US = 100_000
WEIGHT_MIN, WEIGHT_MAX, WEIGHT_DEFAULT = 1, 10_000, 100
PIDS_MAX_LIMIT = 4_194_304               # kernel: PID_MAX_LIMIT
MEMORY_MAX_BYTES = 1 << 60               # beyond this the kernel would silently clamp to "max"
IO_BOUND_MAX = (1 << 64) - 2             # io.max rbps/wbps/riops/wiops (U64_MAX means "max")
IO_KEYS = ("rbps", "wbps", "riops", "wiops")   # the io.max keys, as IoDeviceLimits names them
CPULIST_MAX_ID = 65535                   # beyond any CPU or memory node number
_CPULIST_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass(frozen=True)
class CpuLimits:
    quota_us: Bound | None = None      # cpu.max first field: runtime per period, or "max"
    period_us: int | None = None       # cpu.max second field (kernel default 100000)
    weight: int | None = None          # cpu.weight 1..10000 (kernel default 100)


@dataclass(frozen=True)
class MemoryLimits:
    max: Bound | None = None           # memory.max (hard limit: OOM kill above it)
    high: Bound | None = None          # memory.high (throttle + reclaim above it)
    low: Bound | None = None           # memory.low (best-effort protection)
    swap_max: Bound | None = None      # memory.swap.max


@dataclass(frozen=True)
class PidsLimits:
    max: Bound | None = None           # pids.max


@dataclass(frozen=True)
class IoDeviceLimits:
    device: str                        # "MAJ:MIN" of a whole block device
    rbps: Bound | None = None          # io.max read bytes/s
    wbps: Bound | None = None          # io.max write bytes/s
    riops: Bound | None = None         # io.max read IO/s
    wiops: Bound | None = None         # io.max write IO/s
    weight: int | None = None          # io.weight per-device override 1..10000


@dataclass(frozen=True)
class IoLimits:
    weight: int | None = None          # io.weight "default" line 1..10000
    devices: tuple[IoDeviceLimits, ...] = ()


@dataclass(frozen=True)
class CpusetLimits:
    cpus: str | None = None            # cpuset.cpus list ("0-3,5"); "" = inherit the parent's
    mems: str | None = None            # cpuset.mems list; "" = inherit


@dataclass(frozen=True)
class HugetlbLimit:
    page_size: str                     # as the kernel names it in files: "2MB", "1GB", "64KB"
    max: Bound = MAX                   # hugetlb.<size>.max in bytes, or "max"


@dataclass(frozen=True)
class Limits:
    cpu: CpuLimits | None = None
    memory: MemoryLimits | None = None
    pids: PidsLimits | None = None
    io: IoLimits | None = None
    cpuset: CpusetLimits | None = None
    hugetlb: tuple[HugetlbLimit, ...] = ()


@dataclass(frozen=True)
class Mark:
    """Our ownership mark, stored as one xattr on every cgroup we create."""

    kind: str                          # SLICE | SCOPE
    team: str
    instance: str = ""                 # scopes only


@dataclass(frozen=True)
class CgroupInfo:
    """A slice or scope as the kernel reports it."""

    path: str                          # absolute cgroupfs path
    mark: Mark
    controllers: tuple[str, ...]       # controllers enabled on it (its cgroup.controllers)
    limits: Limits                     # read back from the kernel files
    populated: bool
    frozen: bool
    pids: tuple[int, ...] = ()         # cgroup.procs (scopes only)
    children: int = 0                  # child cgroups (scopes of a slice; nested cgroups of a scope)


@dataclass(frozen=True)
class Pressure:
    """One line of a *.pressure file ("some" or "full")."""

    avg10: float = 0.0
    avg60: float = 0.0
    avg300: float = 0.0
    total_us: int = 0


@dataclass(frozen=True)
class PressureStat:
    some: Pressure = field(default_factory=Pressure)
    full: Pressure | None = None       # cpu "full" is absent on older kernels


@dataclass(frozen=True)
class Stats:
    """Usage counters of a cgroup; fields are None where the file is absent."""

    cpu: dict[str, int]                            # cpu.stat (usage_usec, nr_throttled, ...)
    memory_current: int | None = None
    memory_peak: int | None = None
    memory_swap_current: int | None = None
    memory_events: dict[str, int] = field(default_factory=dict)   # memory.events
    pids_current: int | None = None
    pids_peak: int | None = None
    pids_events: dict[str, int] = field(default_factory=dict)     # pids.events
    io: dict[str, dict[str, int]] = field(default_factory=dict)   # io.stat per "MAJ:MIN"
    hugetlb_current: dict[str, int] = field(default_factory=dict)  # page size -> bytes
    pressure: dict[str, PressureStat] = field(default_factory=dict)  # cpu|memory|io|irq
    populated: bool = False
    frozen: bool = False
    nr_descendants: int = 0


@dataclass(frozen=True)
class LimitDrift:
    """One kernel file whose content differs from the desired limits."""

    file: str                          # e.g. "memory.max"
    desired: str                       # what Ensure would write
    observed: str                      # what the kernel file says ("" if the file is absent)


@dataclass(frozen=True)
class HostFacts:
    """What limits are checked against on this node (the cgroup driver reads them)."""

    online_cpus: frozenset[int]
    online_mems: frozenset[int]
    hugepage_sizes: tuple[str, ...]                   # "2MB", "1GB"
    block_device: Callable[[str], str]                # "MAJ:MIN" -> "disk" | "partition" | "missing"


# ---------------------------------------------------------------- cpulist notation (cpuset.cpus/mems)

def parse_cpulist(text: str) -> frozenset[int]:
    """'0-3,5' -> {0,1,2,3,5}; '' -> empty. Raises ValueError on bad syntax."""
    t = text.strip()
    if not t:
        return frozenset()
    if len(t) > 4096 or not _CPULIST_RE.match(t):
        raise ValueError(f"{text!r} is not a list like 0-3,5")
    out: set[int] = set()
    for part in t.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if a > b:
            raise ValueError(f"range {part!r} is reversed")
        if b > CPULIST_MAX_ID:
            raise ValueError(f"{b} is beyond any CPU or node number")
        out.update(range(a, b + 1))
    return frozenset(out)


def format_cpulist(ids: Iterable[int]) -> str:
    """{0,1,2,3,5} -> '0-3,5' (the kernel's own notation)."""
    s = sorted(ids)
    parts, i = [], 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        parts.append(str(s[i]) if i == j else f"{s[i]}-{s[j]}")
        i = j + 1
    return ",".join(parts)
