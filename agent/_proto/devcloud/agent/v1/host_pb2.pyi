from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PreflightProfile(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREFLIGHT_PROFILE_UNSPECIFIED: _ClassVar[PreflightProfile]
    PREFLIGHT_PROFILE_ALL: _ClassVar[PreflightProfile]
    PREFLIGHT_PROFILE_KUBERNETES_IN_LXD: _ClassVar[PreflightProfile]
    PREFLIGHT_PROFILE_VM_HOST: _ClassVar[PreflightProfile]

class CheckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_STATUS_UNSPECIFIED: _ClassVar[CheckStatus]
    CHECK_STATUS_OK: _ClassVar[CheckStatus]
    CHECK_STATUS_MISSING: _ClassVar[CheckStatus]
    CHECK_STATUS_UNKNOWN: _ClassVar[CheckStatus]
PREFLIGHT_PROFILE_UNSPECIFIED: PreflightProfile
PREFLIGHT_PROFILE_ALL: PreflightProfile
PREFLIGHT_PROFILE_KUBERNETES_IN_LXD: PreflightProfile
PREFLIGHT_PROFILE_VM_HOST: PreflightProfile
CHECK_STATUS_UNSPECIFIED: CheckStatus
CHECK_STATUS_OK: CheckStatus
CHECK_STATUS_MISSING: CheckStatus
CHECK_STATUS_UNKNOWN: CheckStatus

class GetHostFactsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHostFactsResponse(_message.Message):
    __slots__ = ("kvm", "cgroup", "node")
    KVM_FIELD_NUMBER: _ClassVar[int]
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    kvm: KvmFacts
    cgroup: CgroupFacts
    node: NodeInventory
    def __init__(self, kvm: _Optional[_Union[KvmFacts, _Mapping]] = ..., cgroup: _Optional[_Union[CgroupFacts, _Mapping]] = ..., node: _Optional[_Union[NodeInventory, _Mapping]] = ...) -> None: ...

class KvmFacts(_message.Message):
    __slots__ = ("device_present", "device_openable", "api_version", "recommended_vcpus", "max_vcpus", "create_vm_works", "device_error", "cpu_virt_flag", "nested", "vhost_net", "vhost_vsock", "net_tun", "hugepages", "iommu_groups", "usable")
    DEVICE_PRESENT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_OPENABLE_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_VCPUS_FIELD_NUMBER: _ClassVar[int]
    MAX_VCPUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_VM_WORKS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ERROR_FIELD_NUMBER: _ClassVar[int]
    CPU_VIRT_FLAG_FIELD_NUMBER: _ClassVar[int]
    NESTED_FIELD_NUMBER: _ClassVar[int]
    VHOST_NET_FIELD_NUMBER: _ClassVar[int]
    VHOST_VSOCK_FIELD_NUMBER: _ClassVar[int]
    NET_TUN_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGES_FIELD_NUMBER: _ClassVar[int]
    IOMMU_GROUPS_FIELD_NUMBER: _ClassVar[int]
    USABLE_FIELD_NUMBER: _ClassVar[int]
    device_present: bool
    device_openable: bool
    api_version: int
    recommended_vcpus: int
    max_vcpus: int
    create_vm_works: bool
    device_error: str
    cpu_virt_flag: str
    nested: str
    vhost_net: bool
    vhost_vsock: bool
    net_tun: bool
    hugepages: Hugepages
    iommu_groups: int
    usable: bool
    def __init__(self, device_present: _Optional[bool] = ..., device_openable: _Optional[bool] = ..., api_version: _Optional[int] = ..., recommended_vcpus: _Optional[int] = ..., max_vcpus: _Optional[int] = ..., create_vm_works: _Optional[bool] = ..., device_error: _Optional[str] = ..., cpu_virt_flag: _Optional[str] = ..., nested: _Optional[str] = ..., vhost_net: _Optional[bool] = ..., vhost_vsock: _Optional[bool] = ..., net_tun: _Optional[bool] = ..., hugepages: _Optional[_Union[Hugepages, _Mapping]] = ..., iommu_groups: _Optional[int] = ..., usable: _Optional[bool] = ...) -> None: ...

class Hugepages(_message.Message):
    __slots__ = ("page_size_bytes", "total", "free")
    PAGE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    page_size_bytes: int
    total: int
    free: int
    def __init__(self, page_size_bytes: _Optional[int] = ..., total: _Optional[int] = ..., free: _Optional[int] = ...) -> None: ...

class CgroupFacts(_message.Message):
    __slots__ = ("mode", "v2_mount", "controllers_available", "controllers_delegated", "agent_subtree", "v1_controllers")
    MODE_FIELD_NUMBER: _ClassVar[int]
    V2_MOUNT_FIELD_NUMBER: _ClassVar[int]
    CONTROLLERS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CONTROLLERS_DELEGATED_FIELD_NUMBER: _ClassVar[int]
    AGENT_SUBTREE_FIELD_NUMBER: _ClassVar[int]
    V1_CONTROLLERS_FIELD_NUMBER: _ClassVar[int]
    mode: str
    v2_mount: str
    controllers_available: _containers.RepeatedScalarFieldContainer[str]
    controllers_delegated: _containers.RepeatedScalarFieldContainer[str]
    agent_subtree: str
    v1_controllers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mode: _Optional[str] = ..., v2_mount: _Optional[str] = ..., controllers_available: _Optional[_Iterable[str]] = ..., controllers_delegated: _Optional[_Iterable[str]] = ..., agent_subtree: _Optional[str] = ..., v1_controllers: _Optional[_Iterable[str]] = ...) -> None: ...

class NodeInventory(_message.Message):
    __slots__ = ("hostname", "cpus", "cpu_model", "memory_bytes", "memory_available_bytes", "kernel_release", "os", "architecture", "uptime_seconds")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    cpus: int
    cpu_model: str
    memory_bytes: int
    memory_available_bytes: int
    kernel_release: str
    os: str
    architecture: str
    uptime_seconds: float
    def __init__(self, hostname: _Optional[str] = ..., cpus: _Optional[int] = ..., cpu_model: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., memory_available_bytes: _Optional[int] = ..., kernel_release: _Optional[str] = ..., os: _Optional[str] = ..., architecture: _Optional[str] = ..., uptime_seconds: _Optional[float] = ...) -> None: ...

class PreflightRequest(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: PreflightProfile
    def __init__(self, profile: _Optional[_Union[PreflightProfile, str]] = ...) -> None: ...

class PreflightCheck(_message.Message):
    __slots__ = ("id", "category", "status", "reason", "remedy")
    ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REMEDY_FIELD_NUMBER: _ClassVar[int]
    id: str
    category: str
    status: CheckStatus
    reason: str
    remedy: str
    def __init__(self, id: _Optional[str] = ..., category: _Optional[str] = ..., status: _Optional[_Union[CheckStatus, str]] = ..., reason: _Optional[str] = ..., remedy: _Optional[str] = ...) -> None: ...

class PreflightResponse(_message.Message):
    __slots__ = ("profile", "checks", "passed")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    profile: PreflightProfile
    checks: _containers.RepeatedCompositeFieldContainer[PreflightCheck]
    passed: bool
    def __init__(self, profile: _Optional[_Union[PreflightProfile, str]] = ..., checks: _Optional[_Iterable[_Union[PreflightCheck, _Mapping]]] = ..., passed: _Optional[bool] = ...) -> None: ...
