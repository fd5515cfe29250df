"""NetworkService servicer: validate every field -> convert -> call
NetworkService -> convert the observed state back. No business logic."""
from __future__ import annotations

import ipaddress
import re
import time

from agent import validation as v
from agent._proto.devcloud.agent.v1 import network_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc as pb_grpc
from agent.errors import ErrorReport, InvalidArgument
from agent.services.network.service import NetworkService
from agent.services.network.model import (
    BACKEND_BRIDGE, BACKEND_OVN, KIND_TAP, KIND_VETH, AllowRule, Chassis, ChassisSpec, Network, NetworkSpec, Port,
    PortSpec, PortStatus)
from agent.services.network.model_cluster import ClusterChassis, Egress, EgressSpec

_BACKENDS = {pb.NETWORK_BACKEND_UNSPECIFIED: BACKEND_OVN, pb.NETWORK_BACKEND_OVN: BACKEND_OVN,
             pb.NETWORK_BACKEND_BRIDGE: BACKEND_BRIDGE}
_BACKENDS_PB = {BACKEND_OVN: pb.NETWORK_BACKEND_OVN, BACKEND_BRIDGE: pb.NETWORK_BACKEND_BRIDGE}
_KINDS = {pb.NIC_KIND_UNSPECIFIED: KIND_VETH, pb.NIC_KIND_VETH: KIND_VETH, pb.NIC_KIND_TAP: KIND_TAP}
_KINDS_PB = {KIND_VETH: pb.NIC_KIND_VETH, KIND_TAP: pb.NIC_KIND_TAP}
_PROTOS = {pb.PROTOCOL_UNSPECIFIED: "any", pb.PROTOCOL_ANY: "any", pb.PROTOCOL_TCP: "tcp",
           pb.PROTOCOL_UDP: "udp", pb.PROTOCOL_ICMP: "icmp"}
_PROTOS_PB = {"any": pb.PROTOCOL_ANY, "tcp": pb.PROTOCOL_TCP, "udp": pb.PROTOCOL_UDP, "icmp": pb.PROTOCOL_ICMP}
_CONDITIONS_PB = {"ovn-installed": pb.PORT_CONDITION_OVN_INSTALLED, "up": pb.PORT_CONDITION_UP,
                  "netdev": pb.PORT_CONDITION_NETDEV, "ovs-port": pb.PORT_CONDITION_OVS_PORT}
MAX_ALLOW_RULES = 64
MAX_DNS = 8
MAX_BULK = 10000
MAX_READY_TIMEOUT_MS = 600_000


REPLY_MARGIN = 0.25                  # at most this much (10% of a short call) is kept to send the reply


def deadline_of(context) -> float | None:
    """The call deadline as a time.monotonic() value, less a slice kept to send the reply (so a
    backend that does not answer yields our UNAVAILABLE, not the client's DEADLINE_EXCEEDED);
    None: the client set none."""
    left = context.time_remaining()
    if left is None or left > 10 ** 8:
        return None
    return time.monotonic() + left - min(REPLY_MARGIN, 0.1 * max(0.0, left))


# -- validation ------------------------------------------------------------------
def _net_name(field: str, value: str) -> str:
    return v.name(field, value, max_len=48)          # leaves room in LSP/ACL names and the 255-byte ifalias


def network_spec(s: pb.NetworkSpec) -> NetworkSpec:
    """Validate and convert a NetworkSpec (INVALID_ARGUMENT names the field)."""
    _net_name("spec.name", s.name)
    v.enum("spec.backend", s.backend, _BACKENDS)
    backend = _BACKENDS[s.backend]
    subnet4 = subnet6 = None
    if s.subnet4 or backend == BACKEND_OVN:
        subnet4 = v.cidr("spec.subnet4", s.subnet4, version=4)
        if subnet4.prefixlen > 30:
            raise InvalidArgument.for_field("spec.subnet4", "must be /30 or larger (room for a gateway and ports)")
    if s.subnet6:
        subnet6 = v.cidr("spec.subnet6", s.subnet6, version=6)
        if subnet6.prefixlen > 120:
            raise InvalidArgument.for_field("spec.subnet6", "must be /120 or larger")
    if s.gateway4:
        if subnet4 is None:
            raise InvalidArgument.for_field("spec.gateway4", "needs spec.subnet4")
        v.ip_in("spec.gateway4", s.gateway4, subnet4)
    v.int_range("spec.mtu", s.mtu, 1280 if subnet6 else 576, 9000)
    if len(s.dns_servers) > MAX_DNS:
        raise InvalidArgument.for_field("spec.dns_servers", f"at most {MAX_DNS} servers")
    for i, d in enumerate(s.dns_servers):
        v.ip_address(f"spec.dns_servers[{i}]", d)
    if len(s.allow) > MAX_ALLOW_RULES:
        raise InvalidArgument.for_field("spec.allow", f"at most {MAX_ALLOW_RULES} rules")
    rules = tuple(_allow_rule(f"spec.allow[{i}]", r) for i, r in enumerate(s.allow))
    if backend == BACKEND_OVN:
        for field, value in (("spec.bridge", s.bridge), ("spec.vlan", s.vlan)):
            if value:
                raise InvalidArgument.for_field(field, "only applies to the BRIDGE backend")
    else:
        if s.bridge:
            v.netdev("spec.bridge", s.bridge)
        v.int_range("spec.vlan", s.vlan, 1, 4094)
        if rules:
            raise InvalidArgument.for_field("spec.allow", "allow rules need the OVN backend")
        if s.HasField("egress"):
            raise InvalidArgument.for_field("spec.egress", "egress needs the OVN backend")
    egress = _egress(s, subnet4) if s.HasField("egress") else None
    return NetworkSpec(name=s.name, subnet4=str(subnet4) if subnet4 else "", subnet6=str(subnet6) if subnet6 else "",
                       gateway4=s.gateway4, mtu=s.mtu, dns_servers=tuple(s.dns_servers), allow=rules,
                       backend=backend, bridge=s.bridge, vlan=s.vlan, egress=egress)


def _egress(s: pb.NetworkSpec, subnet4) -> EgressSpec:
    e = s.egress
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", e.uplink):
        raise InvalidArgument.for_field("spec.egress.uplink", "a physical network name (1-64 of letters, digits, "
                                                              "'_.-') that gateway chassis map to a bridge")
    try:
        ext = ipaddress.ip_interface(e.external_ip4)
    except ValueError:
        raise InvalidArgument.for_field("spec.egress.external_ip4", f"{e.external_ip4!r} is not an IPv4 address "
                                                                    "with its prefix length, e.g. 203.0.113.10/24")
    if ext.version != 4 or "/" not in e.external_ip4 or ext.ip == ext.network.network_address \
            or ext.network.prefixlen > 30:
        raise InvalidArgument.for_field("spec.egress.external_ip4", "an IPv4 host address with the uplink's prefix "
                                                                    "length (/30 or larger), e.g. 203.0.113.10/24")
    if subnet4 is not None and ext.network.overlaps(subnet4):
        raise InvalidArgument.for_field("spec.egress.external_ip4", f"the uplink {ext.network} overlaps the team "
                                                                    f"subnet {subnet4}")
    v.ip_in("spec.egress.uplink_gateway4", e.uplink_gateway4, ext.network)
    if ipaddress.ip_address(e.uplink_gateway4) == ext.ip:
        raise InvalidArgument.for_field("spec.egress.uplink_gateway4", "is the router's own address")
    return EgressSpec(uplink=e.uplink, external_ip4=str(ext), uplink_gateway4=e.uplink_gateway4)


def _allow_rule(field: str, r: pb.AllowRule) -> AllowRule:
    if r.source_cidr and r.source_network:
        raise InvalidArgument.for_field(field, "set source_cidr or source_network, not both")
    if r.source_cidr:
        v.cidr(f"{field}.source_cidr", r.source_cidr)
    if r.source_network:
        _net_name(f"{field}.source_network", r.source_network)
    v.enum(f"{field}.protocol", r.protocol, _PROTOS)
    proto = _PROTOS[r.protocol]
    v.int_range(f"{field}.port_min", r.port_min, 1, 65535)
    v.int_range(f"{field}.port_max", r.port_max, 1, 65535)
    if (r.port_min or r.port_max) and proto not in ("tcp", "udp"):
        raise InvalidArgument.for_field(f"{field}.port_min", "ports need protocol TCP or UDP")
    if r.port_max and r.port_max < r.port_min:
        raise InvalidArgument.for_field(f"{field}.port_max", "must be >= port_min")
    if r.port_max and not r.port_min:
        raise InvalidArgument.for_field(f"{field}.port_min", "is required with port_max")
    return AllowRule(source_cidr=str(ipaddress.ip_network(r.source_cidr)) if r.source_cidr else "",
                     source_network=r.source_network, protocol=proto, port_min=r.port_min, port_max=r.port_max)


def port_spec(s: pb.PortSpec) -> PortSpec:
    """Validate and convert a PortSpec (syntax; the subnet check is the service's)."""
    report = ErrorReport()
    for field, fn in (("spec.network", lambda: _net_name("spec.network", s.network)),
                      ("spec.name", lambda: v.name("spec.name", s.name)),
                      ("spec.instance", lambda: v.optional_name("spec.instance", s.instance)),
                      ("spec.kind", lambda: v.enum("spec.kind", s.kind, _KINDS)),
                      ("spec.mac", lambda: s.mac and v.mac("spec.mac", s.mac)),
                      ("spec.ip4", lambda: s.ip4 and v.ip_address("spec.ip4", s.ip4, version=4)),
                      ("spec.ip6", lambda: s.ip6 and v.ip_address("spec.ip6", s.ip6, version=6)),
                      ("spec.mtu", lambda: v.int_range("spec.mtu", s.mtu, 576, 9000)),
                      ("spec.peer_netns", lambda: s.peer_netns and v.netns_ref("spec.peer_netns", s.peer_netns)),
                      ("spec.peer_name", lambda: s.peer_name and v.netdev("spec.peer_name", s.peer_name))):
        try:
            fn()
        except InvalidArgument as exc:
            for viol in exc.violations:
                report.add(viol.field, viol.description)
    report.raise_if_any()
    kind = _KINDS[s.kind]
    if kind == KIND_TAP and (s.peer_netns or s.peer_name):
        raise InvalidArgument.for_field("spec.peer_netns", "a tap has no peer; only veth ports take peer_netns")
    if kind == KIND_VETH and s.multiqueue:
        raise InvalidArgument.for_field("spec.multiqueue", "only taps can be multiqueue")
    if s.peer_name and not s.peer_netns:
        raise InvalidArgument.for_field("spec.peer_name", "needs spec.peer_netns")
    return PortSpec(network=s.network, name=s.name, instance=s.instance, kind=kind, mac=v.mac("spec.mac", s.mac)
                    if s.mac else "", ip4=s.ip4, ip6=str(ipaddress.ip_address(s.ip6)) if s.ip6 else "", mtu=s.mtu,
                    peer_netns=s.peer_netns, peer_name=s.peer_name, multiqueue=s.multiqueue)


def chassis_spec(s: pb.ChassisSpec) -> ChassisSpec:
    """Validate and convert a ChassisSpec (INVALID_ARGUMENT names the field); an empty
    ovn_remote is the service's to default ([network].ovn_sb) or refuse."""
    if s.system_id:
        v.ovn_safe("spec.system_id", s.system_id)
    for i, remote in enumerate(s.ovn_remote.split(",") if s.ovn_remote else []):
        kind, _, rest = remote.partition(":")
        if kind not in ("tcp", "ssl", "unix") or not rest or any(c in rest for c in " \"'\n\0"):
            raise InvalidArgument.for_field("spec.ovn_remote", f"{remote!r} is not tcp:IP:PORT, ssl:IP:PORT or "
                                                               "unix:PATH")
    if len(s.bridge_mappings) > 16:
        raise InvalidArgument.for_field("spec.bridge_mappings", "at most 16 physical networks")
    for net, bridge in s.bridge_mappings.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", net):
            raise InvalidArgument.for_field(f"spec.bridge_mappings[{net!r}]", "a physical network name is 1-64 "
                                                                              "of letters, digits, '_.-'")
        v.netdev(f"spec.bridge_mappings[{net!r}]", bridge)
    if s.gateway and not s.bridge_mappings:
        raise InvalidArgument.for_field("spec.bridge_mappings", "a gateway chassis needs at least one mapping "
                                                                "(physical network -> provider bridge)")
    if s.encap_type and s.encap_type not in ("geneve", "vxlan", "stt"):
        raise InvalidArgument.for_field("spec.encap_type", "expected geneve, vxlan or stt")
    if not s.encap_ip:
        raise InvalidArgument.for_field("spec.encap_ip", "is required")
    v.ip_address("spec.encap_ip", s.encap_ip)
    if s.bridge_datapath_type and s.bridge_datapath_type not in ("system", "netdev"):
        raise InvalidArgument.for_field("spec.bridge_datapath_type", "expected system or netdev")
    if s.bridge:
        v.netdev("spec.bridge", s.bridge)
    return ChassisSpec(system_id=s.system_id, ovn_remote=s.ovn_remote, encap_type=s.encap_type or "geneve",
                       encap_ip=s.encap_ip, bridge_datapath_type=s.bridge_datapath_type, bridge=s.bridge,
                       gateway=s.gateway, bridge_mappings=tuple(sorted(s.bridge_mappings.items())))


# -- conversion back -------------------------------------------------------------------
def network_pb(n: Network) -> pb.Network:
    return pb.Network(
        name=n.name, backend=_BACKENDS_PB[n.backend], subnet4=n.subnet4, subnet6=n.subnet6, gateway4=n.gateway4,
        mtu=n.mtu, dns_servers=list(n.dns_servers),
        allow=[pb.AllowRule(source_cidr=r.source_cidr, source_network=r.source_network,
                            protocol=_PROTOS_PB.get(r.protocol, pb.PROTOCOL_ANY), port_min=r.port_min,
                            port_max=r.port_max) for r in n.allow],
        logical_switch=n.switch, port_group=n.port_group, bridge=n.bridge, vlan=n.vlan, ports=n.ports,
        acl_count=n.acl_count, egress=_egress_pb(n.egress) if n.egress is not None else None)


def _egress_pb(e: Egress) -> pb.Egress:
    return pb.Egress(spec=pb.EgressSpec(uplink=e.spec.uplink, external_ip4=e.spec.external_ip4,
                                        uplink_gateway4=e.spec.uplink_gateway4),
                     router=e.router, active_chassis=e.active_chassis,
                     gateways=[pb.GatewayChassis(chassis=g.chassis, priority=g.priority) for g in e.gateways])


def status_pb(s: PortStatus) -> pb.PortStatus:
    return pb.PortStatus(ovn_installed=s.ovn_installed, up=s.up, ready=s.ready, waited_seconds=s.waited_seconds,
                         missing=[_CONDITIONS_PB[m] for m in s.missing if m in _CONDITIONS_PB])


def port_pb(p: Port) -> pb.Port:
    return pb.Port(network=p.network, name=p.name, instance=p.instance,
                   kind=_KINDS_PB.get(p.kind, pb.NIC_KIND_UNSPECIFIED), node=p.node, mac=p.mac, ip4=p.ip4, ip6=p.ip6,
                   mtu=p.mtu, iface_id=p.iface_id, host_netdev=p.host_netdev, peer_netdev=p.peer_netdev,
                   peer_netns=p.peer_netns, multiqueue=p.multiqueue, bridge=p.bridge, status=status_pb(p.status))


def chassis_pb(c: Chassis) -> pb.Chassis:
    health = None
    if c.health is not None:
        health = pb.ChassisHealth(healthy=c.health.healthy, checks=[
            pb.ChassisCheck(name=k.name, ok=k.ok, detail=k.detail) for k in c.health.checks])
    return pb.Chassis(system_id=c.system_id, ovn_remote=c.ovn_remote, encap_type=c.encap_type, encap_ip=c.encap_ip,
                      bridge_datapath_type=c.bridge_datapath_type, bridge=c.bridge, bridge_exists=c.bridge_exists,
                      ovs_version=c.ovs_version, hostname=c.hostname, gateway=c.gateway,
                      bridge_mappings=c.bridge_mappings, health=health)


def cluster_chassis_pb(c: ClusterChassis) -> pb.ClusterChassis:
    return pb.ClusterChassis(name=c.name, hostname=c.hostname, encaps=[pb.Encap(type=t, ip=ip) for t, ip in c.encaps],
                             gateway=c.gateway, bridge_mappings=c.bridge_mappings, local=c.local, tunnel=c.tunnel,
                             bfd=c.bfd, bound_ports=c.bound_ports, ports=c.ports, nodes=c.nodes, nb_cfg=c.nb_cfg)


class NetworkServicer(pb_grpc.NetworkServiceServicer):
    def __init__(self, service: NetworkService) -> None:
        self._svc = service

    def EnsureNetwork(self, request, context):
        net = self._svc.ensure_network(network_spec(request.spec), deadline_of(context))
        return pb.EnsureNetworkResponse(network=network_pb(net), changed=net.changed)

    def DeleteNetwork(self, request, context):
        _net_name("name", request.name)
        return pb.DeleteNetworkResponse(deleted=self._svc.delete_network(request.name, deadline_of(context),
                                                                         force=request.force))

    def GetNetwork(self, request, context):
        _net_name("name", request.name)
        return pb.GetNetworkResponse(network=network_pb(self._svc.get_network(request.name, deadline_of(context))))

    def ListNetworks(self, request, context):
        return pb.ListNetworksResponse(networks=[network_pb(n) for n in self._svc.list_networks(deadline_of(context))])

    def EnsurePort(self, request, context):
        spec = port_spec(request.spec)
        v.int_range("ready_timeout_ms", request.ready_timeout_ms, 1, MAX_READY_TIMEOUT_MS)
        port = self._svc.ensure_port(spec, deadline_of(context), wait_ready=request.wait_ready,
                                     ready_timeout=request.ready_timeout_ms / 1000 or None)
        return pb.EnsurePortResponse(port=port_pb(port), changed=port.changed)

    def DeletePort(self, request, context):
        _net_name("network", request.network)
        v.name("name", request.name)
        return pb.DeletePortResponse(deleted=self._svc.delete_port(request.network, request.name,
                                                                   deadline_of(context)))

    def DeletePorts(self, request, context):
        if len(request.ports) > MAX_BULK:
            raise InvalidArgument.for_field("ports", f"at most {MAX_BULK} ports per call")
        refs = []
        for i, ref in enumerate(request.ports):
            _net_name(f"ports[{i}].network", ref.network)
            v.name(f"ports[{i}].name", ref.name)
            refs.append((ref.network, ref.name))
        return pb.DeletePortsResponse(deleted=self._svc.delete_ports(refs, deadline_of(context)))

    def GetPort(self, request, context):
        _net_name("network", request.network)
        v.name("name", request.name)
        return pb.GetPortResponse(port=port_pb(self._svc.get_port(request.network, request.name,
                                                                  deadline_of(context))))

    def ListPorts(self, request, context):
        if request.network:
            _net_name("network", request.network)
        ports = self._svc.list_ports(request.network, all_nodes=request.all_nodes, deadline=deadline_of(context))
        return pb.ListPortsResponse(ports=[port_pb(p) for p in ports])

    def WatchPorts(self, request, context):
        if request.network:
            _net_name("network", request.network)
        snapshot, sub = self._svc.watch_ports(request.network)
        try:
            for ev in snapshot:
                yield pb.WatchPortsResponse(network=ev.network, name=ev.name, status=status_pb(ev.status))
            yield pb.WatchPortsResponse(snapshot_done=True)
            while context.is_active():
                change = sub.next_event(0.25)
                if change is not None:
                    yield pb.WatchPortsResponse(network=change.network, name=change.name,
                                                status=status_pb(change.status), deleted=change.deleted)
        finally:
            sub.close()

    def EnsureChassis(self, request, context):
        chassis = self._svc.ensure_chassis(chassis_spec(request.spec), deadline_of(context))
        return pb.EnsureChassisResponse(chassis=chassis_pb(chassis), changed=chassis.changed)

    def GetChassis(self, request, context):
        return pb.GetChassisResponse(chassis=chassis_pb(self._svc.get_chassis("", deadline_of(context))))

    def ListChassis(self, request, context):
        chassis, per_node = self._svc.list_chassis(deadline_of(context))
        return pb.ListChassisResponse(chassis=[cluster_chassis_pb(c) for c in chassis], ports_per_node=per_node)
