"""devcloudctl network ... | port ... | chassis ...: team networks, NICs,
the node's OVN chassis settings and health, and the cluster view
(`devcloudctl chassis`: every chassis of the cluster, ports per node)."""
from __future__ import annotations

from typing import cast

from agent._proto.devcloud.agent.v1 import network_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc as pb_grpc
from agent.cli import output

_BACKENDS = {"ovn": pb.NETWORK_BACKEND_OVN, "bridge": pb.NETWORK_BACKEND_BRIDGE}
_PROTOS = {"any": pb.PROTOCOL_ANY, "tcp": pb.PROTOCOL_TCP, "udp": pb.PROTOCOL_UDP, "icmp": pb.PROTOCOL_ICMP}
_KINDS = {"veth": pb.NIC_KIND_VETH, "tap": pb.NIC_KIND_TAP}


def _stub(ctx):
    return pb_grpc.NetworkServiceStub(ctx.channel)


def _allow(text: str) -> pb.AllowRule:
    """'10.0.0.0/8[,tcp[,22[-25]]]' or 'net:<team>[,proto[,ports]]'."""
    parts = text.split(",")
    rule = pb.AllowRule()
    if parts[0].startswith("net:"):
        rule.source_network = parts[0][4:]
    elif parts[0] not in ("", "any"):
        rule.source_cidr = parts[0]
    if len(parts) > 1:
        # proto3 enums are open: an unknown name goes out as number 99 and the agent rejects it
        rule.protocol = _PROTOS.get(parts[1], cast(pb.Protocol, 99))
    if len(parts) > 2:
        lo, _, hi = parts[2].partition("-")
        rule.port_min, rule.port_max = int(lo or 0), int(hi or 0)
    return rule


def _status(s: pb.PortStatus) -> str:
    if s.ready:
        return "ready"
    return "missing " + ",".join(pb.PortCondition.Name(m).removeprefix("PORT_CONDITION_").lower() for m in s.missing)


def _egress_text(n) -> str | None:
    if not n.HasField("egress"):
        return None
    e = n.egress
    gws = ",".join(f"{g.chassis}:{g.priority}" for g in e.gateways) or "no gateway chassis"
    return f"{e.spec.external_ip4} via {e.spec.uplink} [{gws}] active={e.active_chassis or '-'}"


def _print_networks(ctx, nets) -> None:
    output.table(["name", "backend", "subnet4", "subnet6", "mtu", "ports", "switch/bridge", "egress"],
                 [[n.name, pb.NetworkBackend.Name(n.backend).removeprefix("NETWORK_BACKEND_").lower(), n.subnet4,
                   n.subnet6 or None, n.mtu, len(n.ports), n.logical_switch or n.bridge, _egress_text(n)]
                  for n in nets])


def _print_ports(ctx, ports) -> None:
    output.table(["network", "name", "instance", "kind", "mac", "ip4", "netdev", "node", "status"],
                 [[p.network, p.name, p.instance or None, pb.NicKind.Name(p.kind).removeprefix("NIC_KIND_").lower(),
                   p.mac, p.ip4, p.host_netdev, p.node, _status(p.status)] for p in ports])


def _net_ensure(ctx, args):
    spec = pb.NetworkSpec(name=args.name, subnet4=args.subnet4 or "", subnet6=args.subnet6 or "",
                          gateway4=args.gateway4 or "", mtu=args.mtu, dns_servers=args.dns or [],
                          allow=[_allow(a) for a in args.allow or []], backend=_BACKENDS[args.backend],
                          bridge=args.bridge or "", vlan=args.vlan)
    if args.egress:
        uplink, _, rest = args.egress.partition(",")
        ext, _, gw = rest.partition(",")
        spec.egress.CopyFrom(pb.EgressSpec(uplink=uplink, external_ip4=ext, uplink_gateway4=gw))
    r = _stub(ctx).EnsureNetwork(pb.EnsureNetworkRequest(spec=spec), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
    else:
        _print_networks(ctx, [r.network])
        print("changed" if r.changed else "unchanged")


def _net_delete(ctx, args):
    r = _stub(ctx).DeleteNetwork(pb.DeleteNetworkRequest(name=args.name, force=args.force), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print("deleted" if r.deleted else "absent")


def _net_get(ctx, args):
    r = _stub(ctx).GetNetwork(pb.GetNetworkRequest(name=args.name), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_networks(ctx, [r.network])


def _net_list(ctx, args):
    r = _stub(ctx).ListNetworks(pb.ListNetworksRequest(), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_networks(ctx, r.networks)


def _port_ensure(ctx, args):
    spec = pb.PortSpec(network=args.network, name=args.name, instance=args.instance or "", kind=_KINDS[args.kind],
                       mac=args.mac or "", ip4=args.ip4 or "", ip6=args.ip6 or "", mtu=args.mtu,
                       peer_netns=args.netns or "", peer_name=args.peer_name or "", multiqueue=args.multiqueue)
    r = _stub(ctx).EnsurePort(pb.EnsurePortRequest(spec=spec, wait_ready=args.wait), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
    else:
        _print_ports(ctx, [r.port])
        print("changed" if r.changed else "unchanged")
    return 0 if r.port.status.ready or not args.wait else 4


def _port_delete(ctx, args):
    r = _stub(ctx).DeletePort(pb.DeletePortRequest(network=args.network, name=args.name), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print("deleted" if r.deleted else "absent")


def _port_get(ctx, args):
    r = _stub(ctx).GetPort(pb.GetPortRequest(network=args.network, name=args.name), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_ports(ctx, [r.port])


def _port_list(ctx, args):
    r = _stub(ctx).ListPorts(pb.ListPortsRequest(network=args.network or "", all_nodes=args.all_nodes),
                             timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_ports(ctx, r.ports)


def _port_watch(ctx, args):
    import grpc
    try:
        for ev in _stub(ctx).WatchPorts(pb.WatchPortsRequest(network=args.network or ""), timeout=args.duration):
            if ctx.json:
                output.print_json(ev)
            elif ev.snapshot_done:
                print("-- watching --", flush=True)
            else:
                print(f"{ev.network}/{ev.name}: {'deleted' if ev.deleted else _status(ev.status)}", flush=True)
    except grpc.RpcError as err:
        if not (args.duration and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED):
            raise


def _print_health(h) -> None:
    output.table(["check", "ok", "detail"], [[k.name, output.yes(k.ok), k.detail] for k in h.checks])
    print("healthy" if h.healthy else "UNHEALTHY")


def _chassis_get(ctx, args):
    r = _stub(ctx).GetChassis(pb.GetChassisRequest(), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
        return 0
    c = r.chassis
    maps = ",".join(f"{k}:{v}" for k, v in sorted(c.bridge_mappings.items()))
    output.kv([("system-id", c.system_id), ("hostname", c.hostname), ("ovn-remote", c.ovn_remote),
               ("encap", f"{c.encap_type} {c.encap_ip}"),
               ("bridge", f"{c.bridge} ({'present' if c.bridge_exists else 'missing'}, "
                          f"datapath {c.bridge_datapath_type or 'system'})"),
               ("gateway", f"{output.yes(c.gateway)}{' (' + maps + ')' if maps else ''}")])
    print()
    _print_health(c.health)


def _chassis_health(ctx, args):
    r = _stub(ctx).GetChassis(pb.GetChassisRequest(), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r.chassis.health)
    else:
        _print_health(r.chassis.health)
    return 0 if r.chassis.health.healthy else 3


def _chassis_list(ctx, args):
    r = _stub(ctx).ListChassis(pb.ListChassisRequest(), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
        return
    output.table(["chassis", "hostname", "encap", "gateway", "local", "tunnel", "bfd", "bound", "ours", "nodes"],
                 [[c.name, c.hostname, ",".join(f"{e.type}:{e.ip}" for e in c.encaps),
                   output.yes(c.gateway) + (" " + ",".join(f"{k}:{v}" for k, v in sorted(c.bridge_mappings.items()))
                                            if c.bridge_mappings else ""),
                   output.yes(c.local), "-" if c.local else output.yes(c.tunnel), c.bfd or None, c.bound_ports,
                   c.ports, ",".join(c.nodes) or None] for c in r.chassis])
    if r.ports_per_node:
        print()
        output.table(["node", "ports"], sorted(r.ports_per_node.items()))


def _chassis_ensure(ctx, args):
    maps = {}
    for m in args.bridge_mapping or []:
        net, _, bridge = m.partition(":")
        maps[net] = bridge
    spec = pb.ChassisSpec(system_id=args.system_id or "", ovn_remote=args.ovn_remote or "",
                          encap_type=args.encap_type, encap_ip=args.encap_ip,
                          bridge_datapath_type=args.datapath_type or "", gateway=args.gateway, bridge_mappings=maps)
    r = _stub(ctx).EnsureChassis(pb.EnsureChassisRequest(spec=spec), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
    else:
        print("changed" if r.changed else "unchanged")
        _print_health(r.chassis.health)


def register(sub) -> None:
    net = sub.add_parser("network", help="team networks (OVN logical switches or Linux bridges)")
    ns = net.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    p = ns.add_parser("ensure", help="create or reconcile a team network")
    p.add_argument("name")
    p.add_argument("--subnet4")
    p.add_argument("--subnet6")
    p.add_argument("--gateway4")
    p.add_argument("--mtu", type=int, default=0)
    p.add_argument("--dns", action="append", help="DNS server (repeatable)")
    p.add_argument("--allow", action="append", metavar="SRC[,PROTO[,PORTS]]",
                   help="extra allow rule: CIDR or net:<team>, proto any|tcp|udp|icmp, ports N or N-M")
    p.add_argument("--backend", choices=sorted(_BACKENDS), default="ovn")
    p.add_argument("--bridge")
    p.add_argument("--vlan", type=int, default=0)
    p.add_argument("--egress", metavar="UPLINK,EXTERNAL_IP/LEN,GATEWAY",
                   help="OVN: a router with SNAT to the uplink, e.g. uplink,203.0.113.10/24,203.0.113.1")
    p.set_defaults(func=_net_ensure)
    p = ns.add_parser("delete", help="delete a network with all its ports")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="even when other nodes still have ports in it")
    p.set_defaults(func=_net_delete)
    p = ns.add_parser("get", help="show one network")
    p.add_argument("name")
    p.set_defaults(func=_net_get)
    ns.add_parser("list", help="list networks").set_defaults(func=_net_list)

    port = sub.add_parser("port", help="instance NICs (veth/tap bound to OVN or a bridge)")
    ps = port.add_subparsers(dest="port_command", metavar="COMMAND", required=True)
    p = ps.add_parser("ensure", help="create or reconcile a NIC")
    p.add_argument("network")
    p.add_argument("name")
    p.add_argument("--instance")
    p.add_argument("--kind", choices=sorted(_KINDS), default="veth")
    p.add_argument("--mac")
    p.add_argument("--ip4")
    p.add_argument("--ip6")
    p.add_argument("--mtu", type=int, default=0)
    p.add_argument("--netns", help="put the instance end into this network namespace")
    p.add_argument("--peer-name", help="name of the instance end inside --netns (default eth0)")
    p.add_argument("--multiqueue", action="store_true")
    p.add_argument("--wait", action="store_true", help="wait for ovn-installed and up (exit 4 if not reached)")
    p.set_defaults(func=_port_ensure)
    for verb, fn, text in (("delete", _port_delete, "delete a NIC"), ("get", _port_get, "show one NIC")):
        p = ps.add_parser(verb, help=text)
        p.add_argument("network")
        p.add_argument("name")
        p.set_defaults(func=fn)
    p = ps.add_parser("list", help="list this node's NICs")
    p.add_argument("--network")
    p.add_argument("--all-nodes", action="store_true")
    p.set_defaults(func=_port_list)
    p = ps.add_parser("watch", help="stream readiness changes")
    p.add_argument("--network")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=_port_watch)

    ch = sub.add_parser("chassis", help="the cluster's OVN chassis (default: list them), this node's settings "
                                        "and health")
    ch.set_defaults(func=_chassis_list)
    cs = ch.add_subparsers(dest="chassis_command", metavar="COMMAND")
    cs.add_parser("list", help="every chassis of the cluster, tunnels from here, ports per node "
                               "(the default)").set_defaults(func=_chassis_list)
    cs.add_parser("get", help="this node's chassis settings and health").set_defaults(
        func=_chassis_get)
    cs.add_parser("health", help="this node's chassis health checks (exit 3 when unhealthy)").set_defaults(
        func=_chassis_health)
    p = cs.add_parser("ensure", help="set system-id, ovn-remote, encap, br-int (and a gateway's bridge mappings)")
    p.add_argument("--system-id")
    p.add_argument("--ovn-remote", help="SB remotes, comma-separated (default: the agent's [network].ovn_sb)")
    p.add_argument("--encap-type", default="geneve")
    p.add_argument("--encap-ip", required=True)
    p.add_argument("--datapath-type", choices=["system", "netdev"])
    p.add_argument("--gateway", action="store_true", help="this node may host egress gateways")
    p.add_argument("--bridge-mapping", action="append", metavar="PHYSNET:BRIDGE",
                   help="provider bridge of a physical network (repeatable)")
    p.set_defaults(func=_chassis_ensure)
