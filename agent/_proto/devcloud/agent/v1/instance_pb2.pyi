from agent._proto.devcloud.agent.v1 import compute_pb2 as _compute_pb2
from agent._proto.devcloud.agent.v1 import network_pb2 as _network_pb2
from agent._proto.devcloud.agent.v1 import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_KIND_UNSPECIFIED: _ClassVar[InstanceKind]
    INSTANCE_KIND_CONTAINER: _ClassVar[InstanceKind]
    INSTANCE_KIND_VM: _ClassVar[InstanceKind]

class InstanceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_STATE_UNSPECIFIED: _ClassVar[InstanceState]
    INSTANCE_STATE_PREPARING: _ClassVar[InstanceState]
    INSTANCE_STATE_PREPARED: _ClassVar[InstanceState]
    INSTANCE_STATE_RELEASING: _ClassVar[InstanceState]
    INSTANCE_STATE_RELEASED: _ClassVar[InstanceState]
    INSTANCE_STATE_FAILED: _ClassVar[InstanceState]

class InstancePart(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_PART_UNSPECIFIED: _ClassVar[InstancePart]
    INSTANCE_PART_STORAGE: _ClassVar[InstancePart]
    INSTANCE_PART_NETWORK: _ClassVar[InstancePart]
    INSTANCE_PART_COMPUTE: _ClassVar[InstancePart]

class PeerPlacement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PEER_PLACEMENT_UNSPECIFIED: _ClassVar[PeerPlacement]
    PEER_PLACEMENT_AGENT_NETNS: _ClassVar[PeerPlacement]
    PEER_PLACEMENT_HOST_NETNS: _ClassVar[PeerPlacement]
    PEER_PLACEMENT_NETNS: _ClassVar[PeerPlacement]
INSTANCE_KIND_UNSPECIFIED: InstanceKind
INSTANCE_KIND_CONTAINER: InstanceKind
INSTANCE_KIND_VM: InstanceKind
INSTANCE_STATE_UNSPECIFIED: InstanceState
INSTANCE_STATE_PREPARING: InstanceState
INSTANCE_STATE_PREPARED: InstanceState
INSTANCE_STATE_RELEASING: InstanceState
INSTANCE_STATE_RELEASED: InstanceState
INSTANCE_STATE_FAILED: InstanceState
INSTANCE_PART_UNSPECIFIED: InstancePart
INSTANCE_PART_STORAGE: InstancePart
INSTANCE_PART_NETWORK: InstancePart
INSTANCE_PART_COMPUTE: InstancePart
PEER_PLACEMENT_UNSPECIFIED: PeerPlacement
PEER_PLACEMENT_AGENT_NETNS: PeerPlacement
PEER_PLACEMENT_HOST_NETNS: PeerPlacement
PEER_PLACEMENT_NETNS: PeerPlacement

class RootVolumeSpec(_message.Message):
    __slots__ = ("image_id", "size_bytes", "refquota_bytes", "quota_bytes", "reservation_bytes")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFQUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_BYTES_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    size_bytes: int
    refquota_bytes: int
    quota_bytes: int
    reservation_bytes: int
    def __init__(self, image_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., refquota_bytes: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., reservation_bytes: _Optional[int] = ...) -> None: ...

class NicSpec(_message.Message):
    __slots__ = ("name", "network", "mac", "ip4", "ip6", "mtu", "peer_netns", "peer_name", "queues", "peer_placement")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IP4_FIELD_NUMBER: _ClassVar[int]
    IP6_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    PEER_NETNS_FIELD_NUMBER: _ClassVar[int]
    PEER_NAME_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    PEER_PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    network: str
    mac: str
    ip4: str
    ip6: str
    mtu: int
    peer_netns: str
    peer_name: str
    queues: int
    peer_placement: PeerPlacement
    def __init__(self, name: _Optional[str] = ..., network: _Optional[str] = ..., mac: _Optional[str] = ..., ip4: _Optional[str] = ..., ip6: _Optional[str] = ..., mtu: _Optional[int] = ..., peer_netns: _Optional[str] = ..., peer_name: _Optional[str] = ..., queues: _Optional[int] = ..., peer_placement: _Optional[_Union[PeerPlacement, str]] = ...) -> None: ...

class InstanceSpec(_message.Message):
    __slots__ = ("id", "team", "kind", "root", "nics", "limits", "labels", "kubernetes_node", "idmap")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_NODE_FIELD_NUMBER: _ClassVar[int]
    IDMAP_FIELD_NUMBER: _ClassVar[int]
    id: str
    team: str
    kind: InstanceKind
    root: RootVolumeSpec
    nics: _containers.RepeatedCompositeFieldContainer[NicSpec]
    limits: _compute_pb2.Limits
    labels: _containers.ScalarMap[str, str]
    kubernetes_node: bool
    idmap: _storage_pb2.IdMap
    def __init__(self, id: _Optional[str] = ..., team: _Optional[str] = ..., kind: _Optional[_Union[InstanceKind, str]] = ..., root: _Optional[_Union[RootVolumeSpec, _Mapping]] = ..., nics: _Optional[_Iterable[_Union[NicSpec, _Mapping]]] = ..., limits: _Optional[_Union[_compute_pb2.Limits, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., kubernetes_node: _Optional[bool] = ..., idmap: _Optional[_Union[_storage_pb2.IdMap, _Mapping]] = ...) -> None: ...

class NicNames(_message.Message):
    __slots__ = ("nic", "network", "port", "lsp", "host_netdev", "peer_netdev")
    NIC_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    LSP_FIELD_NUMBER: _ClassVar[int]
    HOST_NETDEV_FIELD_NUMBER: _ClassVar[int]
    PEER_NETDEV_FIELD_NUMBER: _ClassVar[int]
    nic: str
    network: str
    port: str
    lsp: str
    host_netdev: str
    peer_netdev: str
    def __init__(self, nic: _Optional[str] = ..., network: _Optional[str] = ..., port: _Optional[str] = ..., lsp: _Optional[str] = ..., host_netdev: _Optional[str] = ..., peer_netdev: _Optional[str] = ...) -> None: ...

class InstanceNames(_message.Message):
    __slots__ = ("dataset", "scope", "nics")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    scope: str
    nics: _containers.RepeatedCompositeFieldContainer[NicNames]
    def __init__(self, dataset: _Optional[str] = ..., scope: _Optional[str] = ..., nics: _Optional[_Iterable[_Union[NicNames, _Mapping]]] = ...) -> None: ...

class Nic(_message.Message):
    __slots__ = ("name", "port")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    port: _network_pb2.Port
    def __init__(self, name: _Optional[str] = ..., port: _Optional[_Union[_network_pb2.Port, _Mapping]] = ...) -> None: ...

class PartStatus(_message.Message):
    __slots__ = ("part", "object", "present", "ready", "detail")
    PART_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    part: InstancePart
    object: str
    present: bool
    ready: bool
    detail: str
    def __init__(self, part: _Optional[_Union[InstancePart, str]] = ..., object: _Optional[str] = ..., present: _Optional[bool] = ..., ready: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("id", "team", "kind", "state", "spec", "names", "volume", "nics", "scope", "parts", "ready", "message", "generation", "created_unix", "updated_unix", "runtime")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    team: str
    kind: InstanceKind
    state: InstanceState
    spec: InstanceSpec
    names: InstanceNames
    volume: _storage_pb2.Volume
    nics: _containers.RepeatedCompositeFieldContainer[Nic]
    scope: _compute_pb2.Cgroup
    parts: _containers.RepeatedCompositeFieldContainer[PartStatus]
    ready: bool
    message: str
    generation: int
    created_unix: float
    updated_unix: float
    runtime: Runtime
    def __init__(self, id: _Optional[str] = ..., team: _Optional[str] = ..., kind: _Optional[_Union[InstanceKind, str]] = ..., state: _Optional[_Union[InstanceState, str]] = ..., spec: _Optional[_Union[InstanceSpec, _Mapping]] = ..., names: _Optional[_Union[InstanceNames, _Mapping]] = ..., volume: _Optional[_Union[_storage_pb2.Volume, _Mapping]] = ..., nics: _Optional[_Iterable[_Union[Nic, _Mapping]]] = ..., scope: _Optional[_Union[_compute_pb2.Cgroup, _Mapping]] = ..., parts: _Optional[_Iterable[_Union[PartStatus, _Mapping]]] = ..., ready: _Optional[bool] = ..., message: _Optional[str] = ..., generation: _Optional[int] = ..., created_unix: _Optional[float] = ..., updated_unix: _Optional[float] = ..., runtime: _Optional[_Union[Runtime, _Mapping]] = ...) -> None: ...

class RuntimeNic(_message.Message):
    __slots__ = ("name", "kind", "netdev", "netns", "host_netns", "placement", "mac", "mtu", "ip4", "gateway4", "ip6", "dns_servers", "dhcp", "configured", "queues", "host_netdev")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NETDEV_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    HOST_NETNS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    IP4_FIELD_NUMBER: _ClassVar[int]
    GATEWAY4_FIELD_NUMBER: _ClassVar[int]
    IP6_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    DHCP_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    HOST_NETDEV_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: _network_pb2.NicKind
    netdev: str
    netns: str
    host_netns: bool
    placement: PeerPlacement
    mac: str
    mtu: int
    ip4: str
    gateway4: str
    ip6: str
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    dhcp: bool
    configured: bool
    queues: int
    host_netdev: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[_network_pb2.NicKind, str]] = ..., netdev: _Optional[str] = ..., netns: _Optional[str] = ..., host_netns: _Optional[bool] = ..., placement: _Optional[_Union[PeerPlacement, str]] = ..., mac: _Optional[str] = ..., mtu: _Optional[int] = ..., ip4: _Optional[str] = ..., gateway4: _Optional[str] = ..., ip6: _Optional[str] = ..., dns_servers: _Optional[_Iterable[str]] = ..., dhcp: _Optional[bool] = ..., configured: _Optional[bool] = ..., queues: _Optional[int] = ..., host_netdev: _Optional[str] = ...) -> None: ...

class RuntimeStorage(_message.Message):
    __slots__ = ("rootfs", "disk", "disk_is_file", "disk_format", "idmap_mode", "image_metadata_dir")
    ROOTFS_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    DISK_IS_FILE_FIELD_NUMBER: _ClassVar[int]
    DISK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    IDMAP_MODE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_METADATA_DIR_FIELD_NUMBER: _ClassVar[int]
    rootfs: str
    disk: str
    disk_is_file: bool
    disk_format: str
    idmap_mode: _storage_pb2.IdmapMode
    image_metadata_dir: str
    def __init__(self, rootfs: _Optional[str] = ..., disk: _Optional[str] = ..., disk_is_file: _Optional[bool] = ..., disk_format: _Optional[str] = ..., idmap_mode: _Optional[_Union[_storage_pb2.IdmapMode, str]] = ..., image_metadata_dir: _Optional[str] = ...) -> None: ...

class RuntimeCompute(_message.Message):
    __slots__ = ("cgroup", "cgroup_path", "payload_cgroup", "monitor_cgroup")
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    CGROUP_PATH_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_CGROUP_FIELD_NUMBER: _ClassVar[int]
    MONITOR_CGROUP_FIELD_NUMBER: _ClassVar[int]
    cgroup: str
    cgroup_path: str
    payload_cgroup: str
    monitor_cgroup: str
    def __init__(self, cgroup: _Optional[str] = ..., cgroup_path: _Optional[str] = ..., payload_cgroup: _Optional[str] = ..., monitor_cgroup: _Optional[str] = ...) -> None: ...

class Runtime(_message.Message):
    __slots__ = ("nics", "storage", "compute", "idmap")
    NICS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    IDMAP_FIELD_NUMBER: _ClassVar[int]
    nics: _containers.RepeatedCompositeFieldContainer[RuntimeNic]
    storage: RuntimeStorage
    compute: RuntimeCompute
    idmap: _storage_pb2.IdMap
    def __init__(self, nics: _Optional[_Iterable[_Union[RuntimeNic, _Mapping]]] = ..., storage: _Optional[_Union[RuntimeStorage, _Mapping]] = ..., compute: _Optional[_Union[RuntimeCompute, _Mapping]] = ..., idmap: _Optional[_Union[_storage_pb2.IdMap, _Mapping]] = ...) -> None: ...

class PrepareInstanceRequest(_message.Message):
    __slots__ = ("spec", "wait", "wait_ready", "ready_timeout_ms")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_READY_FIELD_NUMBER: _ClassVar[int]
    READY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    spec: InstanceSpec
    wait: bool
    wait_ready: bool
    ready_timeout_ms: int
    def __init__(self, spec: _Optional[_Union[InstanceSpec, _Mapping]] = ..., wait: _Optional[bool] = ..., wait_ready: _Optional[bool] = ..., ready_timeout_ms: _Optional[int] = ...) -> None: ...

class PrepareInstanceResponse(_message.Message):
    __slots__ = ("instance", "changed")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    changed: bool
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class ReleaseInstanceRequest(_message.Message):
    __slots__ = ("id", "wait")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait: bool
    def __init__(self, id: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class ReleaseInstanceResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class ReleaseInstancesRequest(_message.Message):
    __slots__ = ("ids", "team")
    IDS_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    team: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., team: _Optional[str] = ...) -> None: ...

class ReleaseResult(_message.Message):
    __slots__ = ("id", "released", "code", "reason", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    released: bool
    code: str
    reason: str
    message: str
    def __init__(self, id: _Optional[str] = ..., released: _Optional[bool] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ReleaseInstancesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReleaseResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ReleaseResult, _Mapping]]] = ...) -> None: ...

class GetInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("team", "state")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    team: str
    state: InstanceState
    def __init__(self, team: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class WatchInstancesRequest(_message.Message):
    __slots__ = ("team", "id", "skip_snapshot")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SKIP_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    team: str
    id: str
    skip_snapshot: bool
    def __init__(self, team: _Optional[str] = ..., id: _Optional[str] = ..., skip_snapshot: _Optional[bool] = ...) -> None: ...

class WatchInstancesResponse(_message.Message):
    __slots__ = ("id", "team", "state", "snapshot", "nic", "nic_ready", "ovn_installed", "up", "message", "ready", "drifts")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    NIC_READY_FIELD_NUMBER: _ClassVar[int]
    OVN_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    DRIFTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    team: str
    state: InstanceState
    snapshot: bool
    nic: str
    nic_ready: bool
    ovn_installed: bool
    up: bool
    message: str
    ready: bool
    drifts: _containers.RepeatedCompositeFieldContainer[Drift]
    def __init__(self, id: _Optional[str] = ..., team: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ..., snapshot: _Optional[bool] = ..., nic: _Optional[str] = ..., nic_ready: _Optional[bool] = ..., ovn_installed: _Optional[bool] = ..., up: _Optional[bool] = ..., message: _Optional[str] = ..., ready: _Optional[bool] = ..., drifts: _Optional[_Iterable[_Union[Drift, _Mapping]]] = ...) -> None: ...

class Drift(_message.Message):
    __slots__ = ("part", "object", "reason", "detail", "desired", "observed", "repairable")
    PART_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    REPAIRABLE_FIELD_NUMBER: _ClassVar[int]
    part: str
    object: str
    reason: str
    detail: str
    desired: str
    observed: str
    repairable: bool
    def __init__(self, part: _Optional[str] = ..., object: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., desired: _Optional[str] = ..., observed: _Optional[str] = ..., repairable: _Optional[bool] = ...) -> None: ...

class InstanceDiff(_message.Message):
    __slots__ = ("id", "team", "drifts", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    DRIFTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    team: str
    drifts: _containers.RepeatedCompositeFieldContainer[Drift]
    error: str
    def __init__(self, id: _Optional[str] = ..., team: _Optional[str] = ..., drifts: _Optional[_Iterable[_Union[Drift, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[InstanceDiff]
    def __init__(self, instances: _Optional[_Iterable[_Union[InstanceDiff, _Mapping]]] = ...) -> None: ...

class RepairRequest(_message.Message):
    __slots__ = ("id", "wait")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    wait: bool
    def __init__(self, id: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class InstanceRepair(_message.Message):
    __slots__ = ("id", "team", "planned", "repaired", "remaining", "error", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    team: str
    planned: _containers.RepeatedCompositeFieldContainer[Drift]
    repaired: _containers.RepeatedScalarFieldContainer[str]
    remaining: _containers.RepeatedCompositeFieldContainer[Drift]
    error: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., team: _Optional[str] = ..., planned: _Optional[_Iterable[_Union[Drift, _Mapping]]] = ..., repaired: _Optional[_Iterable[str]] = ..., remaining: _Optional[_Iterable[_Union[Drift, _Mapping]]] = ..., error: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RepairResponse(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[InstanceRepair]
    def __init__(self, instances: _Optional[_Iterable[_Union[InstanceRepair, _Mapping]]] = ...) -> None: ...

class GarbageCollectRequest(_message.Message):
    __slots__ = ("dry_run", "keep")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    keep: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dry_run: _Optional[bool] = ..., keep: _Optional[_Iterable[str]] = ...) -> None: ...

class OrphanObject(_message.Message):
    __slots__ = ("part", "kind", "name", "instance", "team", "port", "removed", "error")
    PART_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    part: InstancePart
    kind: str
    name: str
    instance: str
    team: str
    port: str
    removed: bool
    error: str
    def __init__(self, part: _Optional[_Union[InstancePart, str]] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., instance: _Optional[str] = ..., team: _Optional[str] = ..., port: _Optional[str] = ..., removed: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class GarbageCollectResponse(_message.Message):
    __slots__ = ("objects",)
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[OrphanObject]
    def __init__(self, objects: _Optional[_Iterable[_Union[OrphanObject, _Mapping]]] = ...) -> None: ...
