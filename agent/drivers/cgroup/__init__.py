"""cgroup v2 driver package: see driver.py for the layout and ownership rules."""
from .driver import CgroupDriver
from .hierarchy import SUPERVISOR, resolve_root
from .marks import MARK_XATTR, OWNER, PENDING_XATTR, decode_mark, encode_mark
from .limits import HostFacts, validate
from .model import (MAX, SCOPE, SLICE, CgroupInfo, CpuLimits, CpusetLimits, HugetlbLimit, IoDeviceLimits,
                    IoLimits, LimitDrift, Limits, Mark, MemoryLimits, PidsLimits, Pressure, PressureStat, Stats)

__all__ = [
    "CgroupDriver", "MARK_XATTR", "OWNER", "PENDING_XATTR", "SUPERVISOR", "decode_mark", "encode_mark", "resolve_root",
    "HostFacts", "validate", "MAX", "SCOPE", "SLICE", "CgroupInfo", "CpuLimits", "CpusetLimits",
    "HugetlbLimit", "IoDeviceLimits", "IoLimits", "LimitDrift", "Limits", "Mark", "MemoryLimits",
    "PidsLimits", "Pressure", "PressureStat", "Stats",
]
