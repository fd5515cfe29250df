from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NetworkBackend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_BACKEND_UNSPECIFIED: _ClassVar[NetworkBackend]
    NETWORK_BACKEND_OVN: _ClassVar[NetworkBackend]
    NETWORK_BACKEND_BRIDGE: _ClassVar[NetworkBackend]

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_UNSPECIFIED: _ClassVar[Protocol]
    PROTOCOL_ANY: _ClassVar[Protocol]
    PROTOCOL_TCP: _ClassVar[Protocol]
    PROTOCOL_UDP: _ClassVar[Protocol]
    PROTOCOL_ICMP: _ClassVar[Protocol]

class NicKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NIC_KIND_UNSPECIFIED: _ClassVar[NicKind]
    NIC_KIND_VETH: _ClassVar[NicKind]
    NIC_KIND_TAP: _ClassVar[NicKind]

class PortCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORT_CONDITION_UNSPECIFIED: _ClassVar[PortCondition]
    PORT_CONDITION_OVN_INSTALLED: _ClassVar[PortCondition]
    PORT_CONDITION_UP: _ClassVar[PortCondition]
    PORT_CONDITION_NETDEV: _ClassVar[PortCondition]
    PORT_CONDITION_OVS_PORT: _ClassVar[PortCondition]
NETWORK_BACKEND_UNSPECIFIED: NetworkBackend
NETWORK_BACKEND_OVN: NetworkBackend
NETWORK_BACKEND_BRIDGE: NetworkBackend
PROTOCOL_UNSPECIFIED: Protocol
PROTOCOL_ANY: Protocol
PROTOCOL_TCP: Protocol
PROTOCOL_UDP: Protocol
PROTOCOL_ICMP: Protocol
NIC_KIND_UNSPECIFIED: NicKind
NIC_KIND_VETH: NicKind
NIC_KIND_TAP: NicKind
PORT_CONDITION_UNSPECIFIED: PortCondition
PORT_CONDITION_OVN_INSTALLED: PortCondition
PORT_CONDITION_UP: PortCondition
PORT_CONDITION_NETDEV: PortCondition
PORT_CONDITION_OVS_PORT: PortCondition

class AllowRule(_message.Message):
    __slots__ = ("source_cidr", "source_network", "protocol", "port_min", "port_max")
    SOURCE_CIDR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NETWORK_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_MIN_FIELD_NUMBER: _ClassVar[int]
    PORT_MAX_FIELD_NUMBER: _ClassVar[int]
    source_cidr: str
    source_network: str
    protocol: Protocol
    port_min: int
    port_max: int
    def __init__(self, source_cidr: _Optional[str] = ..., source_network: _Optional[str] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., port_min: _Optional[int] = ..., port_max: _Optional[int] = ...) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("name", "subnet4", "subnet6", "gateway4", "mtu", "dns_servers", "allow", "backend", "bridge", "vlan", "egress")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBNET4_FIELD_NUMBER: _ClassVar[int]
    SUBNET6_FIELD_NUMBER: _ClassVar[int]
    GATEWAY4_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    subnet4: str
    subnet6: str
    gateway4: str
    mtu: int
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    allow: _containers.RepeatedCompositeFieldContainer[AllowRule]
    backend: NetworkBackend
    bridge: str
    vlan: int
    egress: EgressSpec
    def __init__(self, name: _Optional[str] = ..., subnet4: _Optional[str] = ..., subnet6: _Optional[str] = ..., gateway4: _Optional[str] = ..., mtu: _Optional[int] = ..., dns_servers: _Optional[_Iterable[str]] = ..., allow: _Optional[_Iterable[_Union[AllowRule, _Mapping]]] = ..., backend: _Optional[_Union[NetworkBackend, str]] = ..., bridge: _Optional[str] = ..., vlan: _Optional[int] = ..., egress: _Optional[_Union[EgressSpec, _Mapping]] = ...) -> None: ...

class EgressSpec(_message.Message):
    __slots__ = ("uplink", "external_ip4", "uplink_gateway4")
    UPLINK_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_IP4_FIELD_NUMBER: _ClassVar[int]
    UPLINK_GATEWAY4_FIELD_NUMBER: _ClassVar[int]
    uplink: str
    external_ip4: str
    uplink_gateway4: str
    def __init__(self, uplink: _Optional[str] = ..., external_ip4: _Optional[str] = ..., uplink_gateway4: _Optional[str] = ...) -> None: ...

class GatewayChassis(_message.Message):
    __slots__ = ("chassis", "priority")
    CHASSIS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    chassis: str
    priority: int
    def __init__(self, chassis: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class Egress(_message.Message):
    __slots__ = ("spec", "router", "gateways", "active_chassis")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    GATEWAYS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CHASSIS_FIELD_NUMBER: _ClassVar[int]
    spec: EgressSpec
    router: str
    gateways: _containers.RepeatedCompositeFieldContainer[GatewayChassis]
    active_chassis: str
    def __init__(self, spec: _Optional[_Union[EgressSpec, _Mapping]] = ..., router: _Optional[str] = ..., gateways: _Optional[_Iterable[_Union[GatewayChassis, _Mapping]]] = ..., active_chassis: _Optional[str] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("name", "backend", "subnet4", "subnet6", "gateway4", "mtu", "dns_servers", "allow", "logical_switch", "port_group", "bridge", "vlan", "ports", "acl_count", "egress")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SUBNET4_FIELD_NUMBER: _ClassVar[int]
    SUBNET6_FIELD_NUMBER: _ClassVar[int]
    GATEWAY4_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    DNS_SERVERS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_SWITCH_FIELD_NUMBER: _ClassVar[int]
    PORT_GROUP_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ACL_COUNT_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: NetworkBackend
    subnet4: str
    subnet6: str
    gateway4: str
    mtu: int
    dns_servers: _containers.RepeatedScalarFieldContainer[str]
    allow: _containers.RepeatedCompositeFieldContainer[AllowRule]
    logical_switch: str
    port_group: str
    bridge: str
    vlan: int
    ports: _containers.RepeatedScalarFieldContainer[str]
    acl_count: int
    egress: Egress
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[_Union[NetworkBackend, str]] = ..., subnet4: _Optional[str] = ..., subnet6: _Optional[str] = ..., gateway4: _Optional[str] = ..., mtu: _Optional[int] = ..., dns_servers: _Optional[_Iterable[str]] = ..., allow: _Optional[_Iterable[_Union[AllowRule, _Mapping]]] = ..., logical_switch: _Optional[str] = ..., port_group: _Optional[str] = ..., bridge: _Optional[str] = ..., vlan: _Optional[int] = ..., ports: _Optional[_Iterable[str]] = ..., acl_count: _Optional[int] = ..., egress: _Optional[_Union[Egress, _Mapping]] = ...) -> None: ...

class EnsureNetworkRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: NetworkSpec
    def __init__(self, spec: _Optional[_Union[NetworkSpec, _Mapping]] = ...) -> None: ...

class EnsureNetworkResponse(_message.Message):
    __slots__ = ("network", "changed")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    network: Network
    changed: bool
    def __init__(self, network: _Optional[_Union[Network, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class DeleteNetworkRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteNetworkResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: Network
    def __init__(self, network: _Optional[_Union[Network, _Mapping]] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ...) -> None: ...

class PortSpec(_message.Message):
    __slots__ = ("network", "name", "instance", "kind", "mac", "ip4", "ip6", "mtu", "peer_netns", "peer_name", "multiqueue")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IP4_FIELD_NUMBER: _ClassVar[int]
    IP6_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    PEER_NETNS_FIELD_NUMBER: _ClassVar[int]
    PEER_NAME_FIELD_NUMBER: _ClassVar[int]
    MULTIQUEUE_FIELD_NUMBER: _ClassVar[int]
    network: str
    name: str
    instance: str
    kind: NicKind
    mac: str
    ip4: str
    ip6: str
    mtu: int
    peer_netns: str
    peer_name: str
    multiqueue: bool
    def __init__(self, network: _Optional[str] = ..., name: _Optional[str] = ..., instance: _Optional[str] = ..., kind: _Optional[_Union[NicKind, str]] = ..., mac: _Optional[str] = ..., ip4: _Optional[str] = ..., ip6: _Optional[str] = ..., mtu: _Optional[int] = ..., peer_netns: _Optional[str] = ..., peer_name: _Optional[str] = ..., multiqueue: _Optional[bool] = ...) -> None: ...

class PortStatus(_message.Message):
    __slots__ = ("ovn_installed", "up", "missing", "ready", "waited_seconds")
    OVN_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ovn_installed: bool
    up: bool
    missing: _containers.RepeatedScalarFieldContainer[PortCondition]
    ready: bool
    waited_seconds: float
    def __init__(self, ovn_installed: _Optional[bool] = ..., up: _Optional[bool] = ..., missing: _Optional[_Iterable[_Union[PortCondition, str]]] = ..., ready: _Optional[bool] = ..., waited_seconds: _Optional[float] = ...) -> None: ...

class Port(_message.Message):
    __slots__ = ("network", "name", "instance", "kind", "node", "mac", "ip4", "ip6", "mtu", "iface_id", "host_netdev", "peer_netdev", "peer_netns", "multiqueue", "bridge", "status")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IP4_FIELD_NUMBER: _ClassVar[int]
    IP6_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    IFACE_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_NETDEV_FIELD_NUMBER: _ClassVar[int]
    PEER_NETDEV_FIELD_NUMBER: _ClassVar[int]
    PEER_NETNS_FIELD_NUMBER: _ClassVar[int]
    MULTIQUEUE_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    network: str
    name: str
    instance: str
    kind: NicKind
    node: str
    mac: str
    ip4: str
    ip6: str
    mtu: int
    iface_id: str
    host_netdev: str
    peer_netdev: str
    peer_netns: str
    multiqueue: bool
    bridge: str
    status: PortStatus
    def __init__(self, network: _Optional[str] = ..., name: _Optional[str] = ..., instance: _Optional[str] = ..., kind: _Optional[_Union[NicKind, str]] = ..., node: _Optional[str] = ..., mac: _Optional[str] = ..., ip4: _Optional[str] = ..., ip6: _Optional[str] = ..., mtu: _Optional[int] = ..., iface_id: _Optional[str] = ..., host_netdev: _Optional[str] = ..., peer_netdev: _Optional[str] = ..., peer_netns: _Optional[str] = ..., multiqueue: _Optional[bool] = ..., bridge: _Optional[str] = ..., status: _Optional[_Union[PortStatus, _Mapping]] = ...) -> None: ...

class EnsurePortRequest(_message.Message):
    __slots__ = ("spec", "wait_ready", "ready_timeout_ms")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    WAIT_READY_FIELD_NUMBER: _ClassVar[int]
    READY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    spec: PortSpec
    wait_ready: bool
    ready_timeout_ms: int
    def __init__(self, spec: _Optional[_Union[PortSpec, _Mapping]] = ..., wait_ready: _Optional[bool] = ..., ready_timeout_ms: _Optional[int] = ...) -> None: ...

class EnsurePortResponse(_message.Message):
    __slots__ = ("port", "changed")
    PORT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    port: Port
    changed: bool
    def __init__(self, port: _Optional[_Union[Port, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class PortRef(_message.Message):
    __slots__ = ("network", "name")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    network: str
    name: str
    def __init__(self, network: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeletePortRequest(_message.Message):
    __slots__ = ("network", "name")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    network: str
    name: str
    def __init__(self, network: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeletePortResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class DeletePortsRequest(_message.Message):
    __slots__ = ("ports",)
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedCompositeFieldContainer[PortRef]
    def __init__(self, ports: _Optional[_Iterable[_Union[PortRef, _Mapping]]] = ...) -> None: ...

class DeletePortsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetPortRequest(_message.Message):
    __slots__ = ("network", "name")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    network: str
    name: str
    def __init__(self, network: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetPortResponse(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: Port
    def __init__(self, port: _Optional[_Union[Port, _Mapping]] = ...) -> None: ...

class ListPortsRequest(_message.Message):
    __slots__ = ("network", "all_nodes")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    ALL_NODES_FIELD_NUMBER: _ClassVar[int]
    network: str
    all_nodes: bool
    def __init__(self, network: _Optional[str] = ..., all_nodes: _Optional[bool] = ...) -> None: ...

class ListPortsResponse(_message.Message):
    __slots__ = ("ports",)
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedCompositeFieldContainer[Port]
    def __init__(self, ports: _Optional[_Iterable[_Union[Port, _Mapping]]] = ...) -> None: ...

class WatchPortsRequest(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: str
    def __init__(self, network: _Optional[str] = ...) -> None: ...

class WatchPortsResponse(_message.Message):
    __slots__ = ("network", "name", "status", "deleted", "snapshot_done")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_DONE_FIELD_NUMBER: _ClassVar[int]
    network: str
    name: str
    status: PortStatus
    deleted: bool
    snapshot_done: bool
    def __init__(self, network: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[PortStatus, _Mapping]] = ..., deleted: _Optional[bool] = ..., snapshot_done: _Optional[bool] = ...) -> None: ...

class ChassisSpec(_message.Message):
    __slots__ = ("system_id", "ovn_remote", "encap_type", "encap_ip", "bridge_datapath_type", "bridge", "gateway", "bridge_mappings")
    class BridgeMappingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    OVN_REMOTE_FIELD_NUMBER: _ClassVar[int]
    ENCAP_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENCAP_IP_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_DATAPATH_TYPE_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    system_id: str
    ovn_remote: str
    encap_type: str
    encap_ip: str
    bridge_datapath_type: str
    bridge: str
    gateway: bool
    bridge_mappings: _containers.ScalarMap[str, str]
    def __init__(self, system_id: _Optional[str] = ..., ovn_remote: _Optional[str] = ..., encap_type: _Optional[str] = ..., encap_ip: _Optional[str] = ..., bridge_datapath_type: _Optional[str] = ..., bridge: _Optional[str] = ..., gateway: _Optional[bool] = ..., bridge_mappings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ChassisCheck(_message.Message):
    __slots__ = ("name", "ok", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    ok: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., ok: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class ChassisHealth(_message.Message):
    __slots__ = ("healthy", "checks")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    checks: _containers.RepeatedCompositeFieldContainer[ChassisCheck]
    def __init__(self, healthy: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[ChassisCheck, _Mapping]]] = ...) -> None: ...

class Encap(_message.Message):
    __slots__ = ("type", "ip")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    type: str
    ip: str
    def __init__(self, type: _Optional[str] = ..., ip: _Optional[str] = ...) -> None: ...

class ClusterChassis(_message.Message):
    __slots__ = ("name", "hostname", "encaps", "gateway", "bridge_mappings", "local", "tunnel", "bfd", "bound_ports", "ports", "nodes", "nb_cfg")
    class BridgeMappingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ENCAPS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_FIELD_NUMBER: _ClassVar[int]
    BFD_FIELD_NUMBER: _ClassVar[int]
    BOUND_PORTS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    NB_CFG_FIELD_NUMBER: _ClassVar[int]
    name: str
    hostname: str
    encaps: _containers.RepeatedCompositeFieldContainer[Encap]
    gateway: bool
    bridge_mappings: _containers.ScalarMap[str, str]
    local: bool
    tunnel: bool
    bfd: str
    bound_ports: int
    ports: int
    nodes: _containers.RepeatedScalarFieldContainer[str]
    nb_cfg: int
    def __init__(self, name: _Optional[str] = ..., hostname: _Optional[str] = ..., encaps: _Optional[_Iterable[_Union[Encap, _Mapping]]] = ..., gateway: _Optional[bool] = ..., bridge_mappings: _Optional[_Mapping[str, str]] = ..., local: _Optional[bool] = ..., tunnel: _Optional[bool] = ..., bfd: _Optional[str] = ..., bound_ports: _Optional[int] = ..., ports: _Optional[int] = ..., nodes: _Optional[_Iterable[str]] = ..., nb_cfg: _Optional[int] = ...) -> None: ...

class Chassis(_message.Message):
    __slots__ = ("system_id", "ovn_remote", "encap_type", "encap_ip", "bridge_datapath_type", "bridge", "bridge_exists", "ovs_version", "hostname", "gateway", "bridge_mappings", "health")
    class BridgeMappingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    OVN_REMOTE_FIELD_NUMBER: _ClassVar[int]
    ENCAP_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENCAP_IP_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_DATAPATH_TYPE_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_EXISTS_FIELD_NUMBER: _ClassVar[int]
    OVS_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    system_id: str
    ovn_remote: str
    encap_type: str
    encap_ip: str
    bridge_datapath_type: str
    bridge: str
    bridge_exists: bool
    ovs_version: str
    hostname: str
    gateway: bool
    bridge_mappings: _containers.ScalarMap[str, str]
    health: ChassisHealth
    def __init__(self, system_id: _Optional[str] = ..., ovn_remote: _Optional[str] = ..., encap_type: _Optional[str] = ..., encap_ip: _Optional[str] = ..., bridge_datapath_type: _Optional[str] = ..., bridge: _Optional[str] = ..., bridge_exists: _Optional[bool] = ..., ovs_version: _Optional[str] = ..., hostname: _Optional[str] = ..., gateway: _Optional[bool] = ..., bridge_mappings: _Optional[_Mapping[str, str]] = ..., health: _Optional[_Union[ChassisHealth, _Mapping]] = ...) -> None: ...

class EnsureChassisRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: ChassisSpec
    def __init__(self, spec: _Optional[_Union[ChassisSpec, _Mapping]] = ...) -> None: ...

class EnsureChassisResponse(_message.Message):
    __slots__ = ("chassis", "changed")
    CHASSIS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    chassis: Chassis
    changed: bool
    def __init__(self, chassis: _Optional[_Union[Chassis, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class GetChassisRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetChassisResponse(_message.Message):
    __slots__ = ("chassis",)
    CHASSIS_FIELD_NUMBER: _ClassVar[int]
    chassis: Chassis
    def __init__(self, chassis: _Optional[_Union[Chassis, _Mapping]] = ...) -> None: ...

class ListChassisRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListChassisResponse(_message.Message):
    __slots__ = ("chassis", "ports_per_node")
    class PortsPerNodeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CHASSIS_FIELD_NUMBER: _ClassVar[int]
    PORTS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    chassis: _containers.RepeatedCompositeFieldContainer[ClusterChassis]
    ports_per_node: _containers.ScalarMap[str, int]
    def __init__(self, chassis: _Optional[_Iterable[_Union[ClusterChassis, _Mapping]]] = ..., ports_per_node: _Optional[_Mapping[str, int]] = ...) -> None: ...
