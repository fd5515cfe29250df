"""cgroup v2 driver package: see driver.py for the layout and ownership rules.

The value types it takes and returns live in agent/model/compute.py; they are
re-exported here for callers that still import them from the driver."""
from agent.model.compute import (MAX, SCOPE, SLICE, CgroupInfo, CpuLimits, CpusetLimits, HostFacts, HugetlbLimit,
                                 IoDeviceLimits, IoLimits, LimitDrift, Limits, Mark, MemoryLimits, PidsLimits,
                                 Pressure, PressureStat, Stats)

from .driver import CgroupDriver
from .hierarchy import SUPERVISOR, resolve_root
from .marks import MARK_XATTR, OWNER, PENDING_XATTR, decode_mark, encode_mark

__all__ = [
    "CgroupDriver", "MARK_XATTR", "OWNER", "PENDING_XATTR", "SUPERVISOR", "decode_mark", "encode_mark", "resolve_root",
    "HostFacts", "MAX", "SCOPE", "SLICE", "CgroupInfo", "CpuLimits", "CpusetLimits",
    "HugetlbLimit", "IoDeviceLimits", "IoLimits", "LimitDrift", "Limits", "Mark", "MemoryLimits",
    "PidsLimits", "Pressure", "PressureStat", "Stats",
]
