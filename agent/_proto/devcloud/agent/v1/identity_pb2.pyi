import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CapabilityKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAPABILITY_KIND_UNSPECIFIED: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_HOST_FACTS: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_KVM: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_NETWORK_OVN: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_NETWORK_BRIDGE: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_STORAGE_ZFS: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_STORAGE_ZVOL: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_COMPUTE_CGROUP_V2: _ClassVar[CapabilityKind]
    CAPABILITY_KIND_INSTANCES: _ClassVar[CapabilityKind]
CAPABILITY_KIND_UNSPECIFIED: CapabilityKind
CAPABILITY_KIND_HOST_FACTS: CapabilityKind
CAPABILITY_KIND_KVM: CapabilityKind
CAPABILITY_KIND_NETWORK_OVN: CapabilityKind
CAPABILITY_KIND_NETWORK_BRIDGE: CapabilityKind
CAPABILITY_KIND_STORAGE_ZFS: CapabilityKind
CAPABILITY_KIND_STORAGE_ZVOL: CapabilityKind
CAPABILITY_KIND_COMPUTE_CGROUP_V2: CapabilityKind
CAPABILITY_KIND_INSTANCES: CapabilityKind

class GetAgentInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAgentInfoResponse(_message.Message):
    __slots__ = ("name", "version", "node_name", "api_version", "started_at", "pid", "runtime_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    node_name: str
    api_version: str
    started_at: _timestamp_pb2.Timestamp
    pid: int
    runtime_version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., node_name: _Optional[str] = ..., api_version: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pid: _Optional[int] = ..., runtime_version: _Optional[str] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Capability(_message.Message):
    __slots__ = ("kind", "available", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: CapabilityKind
    available: bool
    reason: str
    def __init__(self, kind: _Optional[_Union[CapabilityKind, str]] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Facility(_message.Message):
    __slots__ = ("name", "available", "reason", "version", "features")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    reason: str
    version: str
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ..., version: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCapabilitiesResponse(_message.Message):
    __slots__ = ("capabilities", "extensions", "facilities")
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    FACILITIES_FIELD_NUMBER: _ClassVar[int]
    capabilities: _containers.RepeatedCompositeFieldContainer[Capability]
    extensions: _containers.RepeatedScalarFieldContainer[str]
    facilities: _containers.RepeatedCompositeFieldContainer[Facility]
    def __init__(self, capabilities: _Optional[_Iterable[_Union[Capability, _Mapping]]] = ..., extensions: _Optional[_Iterable[str]] = ..., facilities: _Optional[_Iterable[_Union[Facility, _Mapping]]] = ...) -> None: ...

class ProbeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProbeResponse(_message.Message):
    __slots__ = ("ready", "pending", "problems")
    READY_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    pending: _containers.RepeatedScalarFieldContainer[str]
    problems: _containers.RepeatedCompositeFieldContainer[StartupProblem]
    def __init__(self, ready: _Optional[bool] = ..., pending: _Optional[_Iterable[str]] = ..., problems: _Optional[_Iterable[_Union[StartupProblem, _Mapping]]] = ...) -> None: ...

class StartupProblem(_message.Message):
    __slots__ = ("step", "reason", "attempts")
    STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    step: str
    reason: str
    attempts: int
    def __init__(self, step: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...
