from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CpuLimits(_message.Message):
    __slots__ = ("quota_us", "period_us", "weight")
    QUOTA_US_FIELD_NUMBER: _ClassVar[int]
    PERIOD_US_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    quota_us: str
    period_us: int
    weight: int
    def __init__(self, quota_us: _Optional[str] = ..., period_us: _Optional[int] = ..., weight: _Optional[int] = ...) -> None: ...

class MemoryLimits(_message.Message):
    __slots__ = ("max", "high", "low", "swap_max")
    MAX_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    SWAP_MAX_FIELD_NUMBER: _ClassVar[int]
    max: str
    high: str
    low: str
    swap_max: str
    def __init__(self, max: _Optional[str] = ..., high: _Optional[str] = ..., low: _Optional[str] = ..., swap_max: _Optional[str] = ...) -> None: ...

class PidsLimits(_message.Message):
    __slots__ = ("max",)
    MAX_FIELD_NUMBER: _ClassVar[int]
    max: str
    def __init__(self, max: _Optional[str] = ...) -> None: ...

class IoDeviceLimits(_message.Message):
    __slots__ = ("device", "rbps", "wbps", "riops", "wiops", "weight")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    RBPS_FIELD_NUMBER: _ClassVar[int]
    WBPS_FIELD_NUMBER: _ClassVar[int]
    RIOPS_FIELD_NUMBER: _ClassVar[int]
    WIOPS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    device: str
    rbps: str
    wbps: str
    riops: str
    wiops: str
    weight: int
    def __init__(self, device: _Optional[str] = ..., rbps: _Optional[str] = ..., wbps: _Optional[str] = ..., riops: _Optional[str] = ..., wiops: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...

class IoLimits(_message.Message):
    __slots__ = ("weight", "devices")
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    weight: int
    devices: _containers.RepeatedCompositeFieldContainer[IoDeviceLimits]
    def __init__(self, weight: _Optional[int] = ..., devices: _Optional[_Iterable[_Union[IoDeviceLimits, _Mapping]]] = ...) -> None: ...

class CpusetLimits(_message.Message):
    __slots__ = ("cpus", "mems")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMS_FIELD_NUMBER: _ClassVar[int]
    cpus: str
    mems: str
    def __init__(self, cpus: _Optional[str] = ..., mems: _Optional[str] = ...) -> None: ...

class HugetlbLimit(_message.Message):
    __slots__ = ("page_size", "max")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    page_size: str
    max: str
    def __init__(self, page_size: _Optional[str] = ..., max: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("cpu", "memory", "pids", "io", "cpuset", "hugetlb")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    IO_FIELD_NUMBER: _ClassVar[int]
    CPUSET_FIELD_NUMBER: _ClassVar[int]
    HUGETLB_FIELD_NUMBER: _ClassVar[int]
    cpu: CpuLimits
    memory: MemoryLimits
    pids: PidsLimits
    io: IoLimits
    cpuset: CpusetLimits
    hugetlb: _containers.RepeatedCompositeFieldContainer[HugetlbLimit]
    def __init__(self, cpu: _Optional[_Union[CpuLimits, _Mapping]] = ..., memory: _Optional[_Union[MemoryLimits, _Mapping]] = ..., pids: _Optional[_Union[PidsLimits, _Mapping]] = ..., io: _Optional[_Union[IoLimits, _Mapping]] = ..., cpuset: _Optional[_Union[CpusetLimits, _Mapping]] = ..., hugetlb: _Optional[_Iterable[_Union[HugetlbLimit, _Mapping]]] = ...) -> None: ...

class Cgroup(_message.Message):
    __slots__ = ("team", "instance_id", "path", "controllers", "limits", "populated", "frozen", "pids", "children")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTROLLERS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    POPULATED_FIELD_NUMBER: _ClassVar[int]
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    path: str
    controllers: _containers.RepeatedScalarFieldContainer[str]
    limits: Limits
    populated: bool
    frozen: bool
    pids: _containers.RepeatedScalarFieldContainer[int]
    children: int
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ..., path: _Optional[str] = ..., controllers: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., populated: _Optional[bool] = ..., frozen: _Optional[bool] = ..., pids: _Optional[_Iterable[int]] = ..., children: _Optional[int] = ...) -> None: ...

class CpuStat(_message.Message):
    __slots__ = ("usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec")
    USAGE_USEC_FIELD_NUMBER: _ClassVar[int]
    USER_USEC_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_USEC_FIELD_NUMBER: _ClassVar[int]
    NR_PERIODS_FIELD_NUMBER: _ClassVar[int]
    NR_THROTTLED_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_USEC_FIELD_NUMBER: _ClassVar[int]
    usage_usec: int
    user_usec: int
    system_usec: int
    nr_periods: int
    nr_throttled: int
    throttled_usec: int
    def __init__(self, usage_usec: _Optional[int] = ..., user_usec: _Optional[int] = ..., system_usec: _Optional[int] = ..., nr_periods: _Optional[int] = ..., nr_throttled: _Optional[int] = ..., throttled_usec: _Optional[int] = ...) -> None: ...

class MemoryEvents(_message.Message):
    __slots__ = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    OOM_FIELD_NUMBER: _ClassVar[int]
    OOM_KILL_FIELD_NUMBER: _ClassVar[int]
    OOM_GROUP_KILL_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    max: int
    oom: int
    oom_kill: int
    oom_group_kill: int
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ..., max: _Optional[int] = ..., oom: _Optional[int] = ..., oom_kill: _Optional[int] = ..., oom_group_kill: _Optional[int] = ...) -> None: ...

class MemoryStat(_message.Message):
    __slots__ = ("current_bytes", "peak_bytes", "swap_current_bytes", "events")
    CURRENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    SWAP_CURRENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    current_bytes: int
    peak_bytes: int
    swap_current_bytes: int
    events: MemoryEvents
    def __init__(self, current_bytes: _Optional[int] = ..., peak_bytes: _Optional[int] = ..., swap_current_bytes: _Optional[int] = ..., events: _Optional[_Union[MemoryEvents, _Mapping]] = ...) -> None: ...

class PidsStat(_message.Message):
    __slots__ = ("current", "peak", "events_max")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    PEAK_FIELD_NUMBER: _ClassVar[int]
    EVENTS_MAX_FIELD_NUMBER: _ClassVar[int]
    current: int
    peak: int
    events_max: int
    def __init__(self, current: _Optional[int] = ..., peak: _Optional[int] = ..., events_max: _Optional[int] = ...) -> None: ...

class IoDeviceStat(_message.Message):
    __slots__ = ("device", "rbytes", "wbytes", "rios", "wios", "dbytes", "dios")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    RBYTES_FIELD_NUMBER: _ClassVar[int]
    WBYTES_FIELD_NUMBER: _ClassVar[int]
    RIOS_FIELD_NUMBER: _ClassVar[int]
    WIOS_FIELD_NUMBER: _ClassVar[int]
    DBYTES_FIELD_NUMBER: _ClassVar[int]
    DIOS_FIELD_NUMBER: _ClassVar[int]
    device: str
    rbytes: int
    wbytes: int
    rios: int
    wios: int
    dbytes: int
    dios: int
    def __init__(self, device: _Optional[str] = ..., rbytes: _Optional[int] = ..., wbytes: _Optional[int] = ..., rios: _Optional[int] = ..., wios: _Optional[int] = ..., dbytes: _Optional[int] = ..., dios: _Optional[int] = ...) -> None: ...

class PressureLine(_message.Message):
    __slots__ = ("avg10", "avg60", "avg300", "total_usec")
    AVG10_FIELD_NUMBER: _ClassVar[int]
    AVG60_FIELD_NUMBER: _ClassVar[int]
    AVG300_FIELD_NUMBER: _ClassVar[int]
    TOTAL_USEC_FIELD_NUMBER: _ClassVar[int]
    avg10: float
    avg60: float
    avg300: float
    total_usec: int
    def __init__(self, avg10: _Optional[float] = ..., avg60: _Optional[float] = ..., avg300: _Optional[float] = ..., total_usec: _Optional[int] = ...) -> None: ...

class Pressure(_message.Message):
    __slots__ = ("some", "full")
    SOME_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    some: PressureLine
    full: PressureLine
    def __init__(self, some: _Optional[_Union[PressureLine, _Mapping]] = ..., full: _Optional[_Union[PressureLine, _Mapping]] = ...) -> None: ...

class HugetlbUsage(_message.Message):
    __slots__ = ("page_size", "current_bytes")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    page_size: str
    current_bytes: int
    def __init__(self, page_size: _Optional[str] = ..., current_bytes: _Optional[int] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("cpu", "memory", "pids", "io", "cpu_pressure", "memory_pressure", "io_pressure", "irq_pressure", "hugetlb", "populated", "frozen", "nr_descendants")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    IO_FIELD_NUMBER: _ClassVar[int]
    CPU_PRESSURE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PRESSURE_FIELD_NUMBER: _ClassVar[int]
    IO_PRESSURE_FIELD_NUMBER: _ClassVar[int]
    IRQ_PRESSURE_FIELD_NUMBER: _ClassVar[int]
    HUGETLB_FIELD_NUMBER: _ClassVar[int]
    POPULATED_FIELD_NUMBER: _ClassVar[int]
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    NR_DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    cpu: CpuStat
    memory: MemoryStat
    pids: PidsStat
    io: _containers.RepeatedCompositeFieldContainer[IoDeviceStat]
    cpu_pressure: Pressure
    memory_pressure: Pressure
    io_pressure: Pressure
    irq_pressure: Pressure
    hugetlb: _containers.RepeatedCompositeFieldContainer[HugetlbUsage]
    populated: bool
    frozen: bool
    nr_descendants: int
    def __init__(self, cpu: _Optional[_Union[CpuStat, _Mapping]] = ..., memory: _Optional[_Union[MemoryStat, _Mapping]] = ..., pids: _Optional[_Union[PidsStat, _Mapping]] = ..., io: _Optional[_Iterable[_Union[IoDeviceStat, _Mapping]]] = ..., cpu_pressure: _Optional[_Union[Pressure, _Mapping]] = ..., memory_pressure: _Optional[_Union[Pressure, _Mapping]] = ..., io_pressure: _Optional[_Union[Pressure, _Mapping]] = ..., irq_pressure: _Optional[_Union[Pressure, _Mapping]] = ..., hugetlb: _Optional[_Iterable[_Union[HugetlbUsage, _Mapping]]] = ..., populated: _Optional[bool] = ..., frozen: _Optional[bool] = ..., nr_descendants: _Optional[int] = ...) -> None: ...

class EnsureSliceRequest(_message.Message):
    __slots__ = ("team", "limits")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    team: str
    limits: Limits
    def __init__(self, team: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class EnsureSliceResponse(_message.Message):
    __slots__ = ("slice", "changed")
    SLICE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    slice: Cgroup
    changed: bool
    def __init__(self, slice: _Optional[_Union[Cgroup, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class EnsureScopeRequest(_message.Message):
    __slots__ = ("team", "instance_id", "limits")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    limits: Limits
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class EnsureScopeResponse(_message.Message):
    __slots__ = ("scope", "changed")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    scope: Cgroup
    changed: bool
    def __init__(self, scope: _Optional[_Union[Cgroup, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class UpdateLimitsRequest(_message.Message):
    __slots__ = ("team", "instance_id", "limits")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    limits: Limits
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class UpdateLimitsResponse(_message.Message):
    __slots__ = ("cgroup", "changed")
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    cgroup: Cgroup
    changed: bool
    def __init__(self, cgroup: _Optional[_Union[Cgroup, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class AttachProcessesRequest(_message.Message):
    __slots__ = ("team", "instance_id", "pids")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    pids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ..., pids: _Optional[_Iterable[int]] = ...) -> None: ...

class AttachProcessesResponse(_message.Message):
    __slots__ = ("pids",)
    PIDS_FIELD_NUMBER: _ClassVar[int]
    pids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, pids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("team", "instance_id")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: Stats
    def __init__(self, stats: _Optional[_Union[Stats, _Mapping]] = ...) -> None: ...

class FreezeRequest(_message.Message):
    __slots__ = ("team", "instance_id")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class FreezeResponse(_message.Message):
    __slots__ = ("frozen", "waited_seconds")
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    frozen: bool
    waited_seconds: float
    def __init__(self, frozen: _Optional[bool] = ..., waited_seconds: _Optional[float] = ...) -> None: ...

class ThawRequest(_message.Message):
    __slots__ = ("team", "instance_id")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class ThawResponse(_message.Message):
    __slots__ = ("frozen", "waited_seconds")
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    frozen: bool
    waited_seconds: float
    def __init__(self, frozen: _Optional[bool] = ..., waited_seconds: _Optional[float] = ...) -> None: ...

class KillRequest(_message.Message):
    __slots__ = ("team", "instance_id")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class KillResponse(_message.Message):
    __slots__ = ("populated", "waited_seconds")
    POPULATED_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    populated: bool
    waited_seconds: float
    def __init__(self, populated: _Optional[bool] = ..., waited_seconds: _Optional[float] = ...) -> None: ...

class DeleteScopeRequest(_message.Message):
    __slots__ = ("team", "instance_id", "kill")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    kill: bool
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ..., kill: _Optional[bool] = ...) -> None: ...

class DeleteScopeResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class DeleteSliceRequest(_message.Message):
    __slots__ = ("team", "kill")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    team: str
    kill: bool
    def __init__(self, team: _Optional[str] = ..., kill: _Optional[bool] = ...) -> None: ...

class DeleteSliceResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class GetSliceRequest(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: str
    def __init__(self, team: _Optional[str] = ...) -> None: ...

class GetSliceResponse(_message.Message):
    __slots__ = ("slice",)
    SLICE_FIELD_NUMBER: _ClassVar[int]
    slice: Cgroup
    def __init__(self, slice: _Optional[_Union[Cgroup, _Mapping]] = ...) -> None: ...

class GetScopeRequest(_message.Message):
    __slots__ = ("team", "instance_id")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance_id: str
    def __init__(self, team: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class GetScopeResponse(_message.Message):
    __slots__ = ("scope",)
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    scope: Cgroup
    def __init__(self, scope: _Optional[_Union[Cgroup, _Mapping]] = ...) -> None: ...

class ListSlicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSlicesResponse(_message.Message):
    __slots__ = ("slices",)
    SLICES_FIELD_NUMBER: _ClassVar[int]
    slices: _containers.RepeatedCompositeFieldContainer[Cgroup]
    def __init__(self, slices: _Optional[_Iterable[_Union[Cgroup, _Mapping]]] = ...) -> None: ...

class ListScopesRequest(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: str
    def __init__(self, team: _Optional[str] = ...) -> None: ...

class ListScopesResponse(_message.Message):
    __slots__ = ("scopes",)
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    scopes: _containers.RepeatedCompositeFieldContainer[Cgroup]
    def __init__(self, scopes: _Optional[_Iterable[_Union[Cgroup, _Mapping]]] = ...) -> None: ...
