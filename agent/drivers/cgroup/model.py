"""Plain data of the cgroup driver: limits, observed cgroups, stats.

No protobuf here. `None` in a limit field means "not requested": in an
Ensure it becomes the kernel default, in an Update it leaves the kernel file
alone. MAX ("max") is the kernel's word for "unlimited" and is accepted
wherever the kernel accepts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

MAX = "max"
Bound = Union[int, Literal["max"]]      # bytes / count / µs, or "max"

SLICE = "slice"
SCOPE = "scope"

# Controllers this driver can set limits for (cgroup.controllers words).
LIMIT_CONTROLLERS = ("cpu", "memory", "pids", "io", "cpuset", "hugetlb")


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
