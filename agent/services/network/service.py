"""NetworkService: team networks, chassis settings, inventory for GC/Diff.

Port use cases live in ports.py (mixed in below); the model, names
and ACL policy in model.py; readiness and locking in
watch.py.

Backends: "ovn" (a logical switch per team in the cluster-wide NB; needs
`nb` and `ovs`) and "bridge" (a Linux bridge on this node, for nodes without
OVN). Every method takes `deadline` (time.monotonic() seconds, None =
unbounded) and never waits past it.
"""
from __future__ import annotations

import ipaddress
import logging
import threading

from agent.drivers.netlink import Netlink
from agent.drivers.ovsdb.nb import NETWORK_KEY, NetworkRows, OvnNb
from agent.drivers.ovsdb.vswitch import OvsDb
from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.metrics import Metrics
from agent.services.locks import KeyedLocks
from agent.services.network.model import (
    BACKEND_BRIDGE, BACKEND_OVN, DEFAULT_MTU_BRIDGE, DEFAULT_MTU_OVN, OWNER, Chassis, ChassisSpec, Network,
    NetworkSpec, OwnedObject, acl_rules, bridge_name, decode_allow, default_gateway, encode_allow, encode_mark,
    mac_from_hash, parse_mark, port_group_name, switch_name)
from agent.services.network.ports import PortsMixin
from agent.services.network.watch import NetworkGate, ReadinessHub

log = logging.getLogger(__name__)


class NetworkService(PortsMixin):
    """Use cases of the network plane (plain dataclasses in and out)."""

    def __init__(self, *, netlink: Netlink, nb: OvnNb | None, ovs: OvsDb | None, metrics: Metrics,
                 node: str, netdev_prefix: str = "dc", integration_bridge: str = "br-int",
                 owner: str = OWNER, ready_timeout: float = 30.0) -> None:
        self.nl, self.nb, self.ovs = netlink, nb, ovs
        self.metrics = metrics
        self.node = node
        self.prefix = netdev_prefix
        self.integration_bridge = integration_bridge
        self.owner = owner
        self.ready_timeout = ready_timeout          # bound of a readiness wait when the call has no deadline
        self._net_locks = KeyedLocks("network")
        self._port_locks = KeyedLocks("port")
        self._gate = NetworkGate()
        # netdevs between their creating request and their mark: never swept as leftovers
        self._unmarked_lock = threading.Lock()
        self._being_marked: set[str] = set()
        self._bridges: dict[str, Network] = {}     # bridge-backend networks of this node, by name
        self._bridges_scanned = False
        self.hub = ReadinessHub(nb, ovs, owner) if nb is not None and ovs is not None else None

    def close(self) -> None:
        if self.hub is not None:
            self.hub.close()

    @property
    def ovn_enabled(self) -> bool:
        return self.nb is not None and self.ovs is not None

    def _require_ovn(self) -> None:
        if not self.ovn_enabled:
            raise FailedPrecondition("OVN is not configured on this node (set [network].ovn_nb or enable the "
                                     "embedded stack); only the bridge backend is available", reason="NO_OVN")

    # -- team networks -----------------------------------------------------
    def ensure_network(self, spec: NetworkSpec, deadline: float | None = None) -> Network:
        """Create or reconcile a team network. Idempotent: same spec again ->
        changed=False. OVN: switch + DHCP options + port group + ACLs in ONE NB
        transaction, converging when several nodes ensure the same spec.

        Raises InvalidArgument (spec inconsistent), AlreadyExists (immutable
        field differs), FailedPrecondition (same-named object not ours, backend
        missing), Aborted (same network in flight), Unavailable (NB down)."""
        with self._net_locks.hold(spec.name):
            if spec.backend == BACKEND_BRIDGE:
                return self._ensure_bridge_network(spec)
            self._require_ovn()
            if not spec.subnet4:
                raise InvalidArgument.for_field("spec.subnet4", "is required for the OVN backend")
            rows = self._network_rows(spec)
            changed = self.nb.ensure_network(rows, deadline)
            net = self.get_network(spec.name, deadline)
            net.changed = changed
            return net

    def _network_rows(self, spec: NetworkSpec) -> NetworkRows:
        gw = spec.gateway4 or default_gateway(spec.subnet4)
        mtu = spec.mtu or DEFAULT_MTU_OVN
        opts = {"lease_time": "3600", "server_id": gw, "server_mac": mac_from_hash(spec.name, "dhcp"),
                "mtu": str(mtu)}
        if spec.dns_servers:
            opts["dns_server"] = "{" + ",".join(spec.dns_servers) + "}"
        return NetworkRows(
            switch=switch_name(spec.name), port_group=port_group_name(spec.name),
            marks={"devcloud-owner": self.owner, NETWORK_KEY: spec.name},
            immutable={"devcloud-subnet4": spec.subnet4, "devcloud-subnet6": spec.subnet6,
                       "devcloud-gateway4": gw},
            mutable={"devcloud-mtu": str(mtu), "devcloud-dns": ",".join(spec.dns_servers),
                     "devcloud-allow": encode_allow(spec.allow)},
            dhcp4_cidr=spec.subnet4, dhcp4_options=opts, acls=acl_rules(spec))

    def delete_network(self, name: str, deadline: float | None = None) -> bool:
        """Delete a team network with all its ports: the NB rows in one transaction
        (which refuses, deleting nothing, when a port of the switch is not ours),
        then this node's OVS ports and netdevs (bulk: one OVS transaction, one
        link-group delete). Other nodes' netdevs are left to their agents (their
        ports vanish from NB). Absent -> OK, returns False. A retry after a crash
        in between finds this node's leftovers by their marks.

        Raises FailedPrecondition NOT_OURS (a same-named object, or a logical port
        or bridge port in the network, is not ours: nothing is deleted), Aborted
        (operation in flight), Unavailable."""
        with self._net_locks.hold(name), self._gate.exclusive(name, deadline):
            bridge = self._bridge_network(name)
            if bridge is not None:
                return self._delete_bridge_network(bridge)
            if not self.ovn_enabled:
                return False
            rows = self.nb.network(switch_name(name), deadline)
            foreign = self.nb.foreign_ports(switch_name(name), deadline)
            if foreign:                                # checked before anything is deleted
                raise FailedPrecondition(
                    f"network {name} has logical ports that are not ours: {', '.join(foreign[:10])}"
                    f"{' ...' if len(foreign) > 10 else ''}; delete them first (the agent never touches them)",
                    reason="NOT_OURS", metadata={"network": name, "ports": ",".join(foreign[:50])})
            local = self.ovs.interface_names(NETWORK_KEY, name, deadline)
            netdevs = set(local) | {m.get("devcloud-netdev", "") for m in
                                    self.nb.port_marks(network=name, node=self.node, deadline=deadline)}
            if rows is not None:
                # first, and atomic: the transaction re-checks the switch's ports on the server
                self.nb.delete_network(switch_name(name), port_group_name(name), name, deadline)
            else:                                      # a retry: the NB rows went before a crash
                netdevs |= {l.name for l in self.nl.links() if (parse_mark(l.alias) or {}).get("net") == name}
            indexes, deleted = self._owned_netdevs(sorted(n for n in netdevs if n), network=name)
            self.ovs.unbind(local, deadline)           # OVS ports first: never one without its netdev
            self.nl.delete_many(indexes)
            return rows is not None or bool(local) or bool(deleted)

    def get_network(self, name: str, deadline: float | None = None) -> Network:
        """Observed state of a team network. Raises NotFound, Unavailable."""
        if self.ovn_enabled:
            rows = self.nb.network(switch_name(name), deadline)
            if rows is not None:
                return self._network_from_rows(name, rows)
        bridge = self._bridge_network(name)
        if bridge is not None:
            return bridge
        raise NotFound(f"network {name} does not exist", reason="NETWORK_NOT_FOUND", metadata={"network": name})

    def _network_from_rows(self, name: str, rows: NetworkRows) -> Network:
        net = self._network_from_marks(name, rows.marks)
        net.ports = sorted(p.split(".", 2)[2] if p.count(".") >= 2 else p for p in rows.ports)
        net.acl_count = len(rows.acls)
        return net

    @staticmethod
    def _network_from_marks(name: str, m: dict[str, str]) -> Network:
        return Network(name=name, backend=BACKEND_OVN, subnet4=m.get("devcloud-subnet4", ""),
                       subnet6=m.get("devcloud-subnet6", ""), gateway4=m.get("devcloud-gateway4", ""),
                       mtu=int(m.get("devcloud-mtu", "0") or 0),
                       dns_servers=tuple(filter(None, m.get("devcloud-dns", "").split(","))),
                       allow=decode_allow(m.get("devcloud-allow", "")), switch=switch_name(name),
                       port_group=m.get("devcloud-port-group", ""))

    def list_networks(self, deadline: float | None = None) -> list[Network]:
        """Every team network of ours: OVN ones (cluster-wide) and this node's bridge ones."""
        out = []
        if self.ovn_enabled:
            for rows in self.nb.networks(deadline):
                out.append(self._network_from_rows(rows.marks.get(NETWORK_KEY, ""), rows))
        self._scan_bridges()
        out.extend(self._bridges.values())
        return sorted(out, key=lambda n: n.name)

    # -- bridge backend ------------------------------------------------------
    def _bridge_mark(self, spec: NetworkSpec) -> str:
        return encode_mark({"owner": self.owner, "kind": "bridge", "net": spec.name, "vlan": str(spec.vlan),
                            "s4": spec.subnet4, "s6": spec.subnet6})

    def _ensure_bridge_network(self, spec: NetworkSpec) -> Network:
        name = spec.bridge or bridge_name(self.prefix, spec.name)
        mtu = spec.mtu or DEFAULT_MTU_BRIDGE
        existing = self._bridge_network(spec.name)
        if existing is not None and existing.bridge != name:
            raise AlreadyExists(f"network {spec.name} exists on bridge {existing.bridge}", reason="IMMUTABLE_FIELD",
                                metadata={"field": "bridge"})
        link = self.nl.link(name)
        changed = False
        if link is None:
            self.nl.create_bridge(name, mtu=mtu, vlan_filtering=bool(spec.vlan))
            try:
                self.nl.disable_ipv6(name)
                self.nl.configure(name, alias=self._bridge_mark(spec), up=True)
            except BaseException:
                self.nl.delete(name)
                raise
            changed = True
        else:
            if link.kind == "bridge" and not link.alias and link.born_ours:
                # an earlier call crashed between creating the bridge and marking it
                self.nl.configure(name, alias=self._bridge_mark(spec))
                link = self.nl.link(name) or link
            mark = parse_mark(link.alias)
            if link.kind != "bridge" or not mark or mark.get("owner") != self.owner or mark.get("net") != spec.name:
                raise FailedPrecondition(f"netdev {name} exists and is not our bridge for network {spec.name}",
                                         reason="NOT_OURS", metadata={"netdev": name})
            for key, want in (("vlan", str(spec.vlan)), ("s4", spec.subnet4), ("s6", spec.subnet6)):
                if mark.get(key, "") != want:
                    raise AlreadyExists(f"bridge network {spec.name} exists with {key}={mark.get(key, '')!r}",
                                        reason="IMMUTABLE_FIELD", metadata={"field": key})
            if link.mtu != mtu or not link.up:
                self.nl.configure(name, mtu=mtu, up=True)
                changed = True
        net = Network(name=spec.name, backend=BACKEND_BRIDGE, subnet4=spec.subnet4, subnet6=spec.subnet6,
                      mtu=mtu, bridge=name, vlan=spec.vlan, changed=changed)
        self._bridges[spec.name] = net
        net.ports = self._bridge_ports(name)
        return net

    def _bridge_ports(self, bridge: str) -> list[str]:
        link = self.nl.link(bridge)
        if link is None:
            return []
        out = []
        for l in self.nl.links():
            mark = parse_mark(l.alias) if l.master == link.index else None
            if mark and mark.get("kind") == "port":
                out.append(mark.get("port", ""))
        return sorted(out)

    def _scan_bridges(self, links: list | None = None) -> None:
        """Find our bridges in a link dump (startup and cache misses); `links`: a fresh dump."""
        found = {}
        for l in self.nl.links() if links is None else links:
            mark = parse_mark(l.alias)
            if l.kind == "bridge" and mark and mark.get("owner") == self.owner and mark.get("kind") == "bridge":
                net = mark.get("net", "")
                found[net] = Network(name=net, backend=BACKEND_BRIDGE, subnet4=mark.get("s4", ""),
                                     subnet6=mark.get("s6", ""), mtu=l.mtu, bridge=l.name,
                                     vlan=int(mark.get("vlan", "0") or 0))
        self._bridges = found
        self._bridges_scanned = True

    def _bridge_network(self, name: str) -> Network | None:
        net = self._bridges.get(name)
        if net is None and not self._bridges_scanned:
            self._scan_bridges()
            net = self._bridges.get(name)
        if net is not None and self.nl.link(net.bridge) is None:
            self._bridges.pop(name, None)
            return None
        return net

    def _delete_bridge_network(self, net: Network) -> bool:
        link = self.nl.link(net.bridge)
        if link is None:
            self._bridges.pop(net.name, None)
            return False
        mark = parse_mark(link.alias)
        if not mark or mark.get("owner") != self.owner or mark.get("net") != net.name:
            raise FailedPrecondition(f"bridge {net.bridge} is not ours; not deleting it", reason="NOT_OURS")
        ours, foreign = [], []
        for l in self.nl.links():
            if l.master != link.index:
                continue
            m = parse_mark(l.alias)
            if m and m.get("owner") == self.owner and m.get("net") == net.name or not l.alias and l.born_ours:
                ours.append(l.index)
            else:
                foreign.append(l.name)
        if foreign:
            raise FailedPrecondition(f"bridge {net.bridge} of network {net.name} has ports that are not ours: "
                                     f"{', '.join(sorted(foreign))}; detach them first, the agent does not "
                                     "touch them", reason="NOT_OURS", metadata={"netdevs": ",".join(sorted(foreign))})
        self.nl.delete_many(ours)
        self.nl.delete(net.bridge)
        self._bridges.pop(net.name, None)
        return True

    # -- chassis ---------------------------------------------------------------
    def ensure_chassis(self, spec: ChassisSpec, deadline: float | None = None) -> Chassis:
        """Set the Open_vSwitch external_ids a chassis needs and create the
        integration bridge when absent. Idempotent. Raises InvalidArgument
        (remote/encap ip missing), FailedPrecondition (values set by someone
        else differ), Unavailable."""
        if self.ovs is None:
            raise FailedPrecondition("no local Open_vSwitch database configured", reason="NO_OVS")
        if not spec.ovn_remote:
            raise InvalidArgument.for_field("spec.ovn_remote", "is required")
        if not spec.encap_ip:
            raise InvalidArgument.for_field("spec.encap_ip", "is required")
        settings = {"system-id": spec.system_id or self.node, "ovn-remote": spec.ovn_remote,
                    "ovn-encap-type": spec.encap_type or "geneve", "ovn-encap-ip": spec.encap_ip}
        bridge = spec.bridge or self.integration_bridge
        if bridge != "br-int":
            settings["ovn-bridge"] = bridge
        if spec.bridge_datapath_type:
            settings["ovn-bridge-datapath-type"] = spec.bridge_datapath_type
        changed = self.ovs.ensure_chassis(settings, bridge, spec.bridge_datapath_type, deadline)
        chassis = self.get_chassis(bridge, deadline)
        chassis.changed = changed
        return chassis

    def get_chassis(self, bridge: str = "", deadline: float | None = None) -> Chassis:
        """Observed chassis settings (Open_vSwitch external_ids, bridge)."""
        if self.ovs is None:
            raise FailedPrecondition("no local Open_vSwitch database configured", reason="NO_OVS")
        info = self.ovs.chassis(bridge or self.integration_bridge, deadline)
        e = info.external_ids
        return Chassis(system_id=e.get("system-id", ""), ovn_remote=e.get("ovn-remote", ""),
                       encap_type=e.get("ovn-encap-type", ""), encap_ip=e.get("ovn-encap-ip", ""),
                       bridge_datapath_type=info.bridge_datapath_type, bridge=info.bridge,
                       bridge_exists=info.bridge_exists, ovs_version=info.ovs_version)

    # -- startup, GC, drift ----------------------------------------------------
    def reconcile(self, deadline: float | None = None) -> dict[str, int]:
        """Startup pass: learn this node's bridge networks and remove OVS ports of
        ours whose netdev no longer exists (never leave an OVS port without its
        netdev). Returns counts. Raises Unavailable."""
        links = self.nl.links()             # one dump (pyroute2 parses ~1,600 netdevs slowly on a full node)
        self._scan_bridges(links)
        unmarked = self.sweep_unmarked(links=links)
        removed = 0
        if self.ovn_enabled:
            names = {l.name for l in links}
            stale = [i.name for i in self.ovs.interfaces(deadline) if i.name not in names]
            removed = len(self.ovs.unbind(stale, deadline))
            if removed:
                self.metrics.orphans_total.labels(plane="network", kind="ovs-interface").inc(removed)
        return {"bridges": len(self._bridges), "stale_ovs_ports_removed": removed,
                "unmarked_netdevs_removed": len(unmarked)}

    def sweep_unmarked(self, *, dry_run: bool = False, links: list | None = None) -> list[str]:
        """Netdevs with our prefix, born in our link group, never marked: a crash landed between
        creating one and marking it, outside any instance intent (the instance reconcile
        removes those by name). Removed unless dry_run; returns their names. A netdev this
        process is creating right now is left alone."""
        found = [l for l in (self.nl.links() if links is None else links)
                 if l.name.startswith(self.prefix) and not l.alias and l.born_ours]
        with self._unmarked_lock:
            doomed = [l for l in found if l.name not in self._being_marked]
            if not dry_run and doomed:
                self.nl.delete_many([l.index for l in doomed])
                self.metrics.orphans_total.labels(plane="network", kind="unmarked-netdev").inc(len(doomed))
        return sorted(l.name for l in doomed)

    def stale_ports(self, deadline: float | None = None) -> list[tuple[str, str]]:
        """(network, port) of this node's OVN ports whose team network no longer
        exists in NB (deleted from another node). Not deleted here: pass them to
        delete_ports (the caller decides; an NB that was wiped would list all)."""
        if not self.ovn_enabled:
            return []
        out, known = set(), {}
        for i in self.ovs.interfaces(deadline):
            net, port = i.external_ids.get(NETWORK_KEY, ""), i.external_ids.get("devcloud-port", "")
            if net and port:
                if net not in known:
                    known[net] = self.nb.switch_marks(switch_name(net), deadline) is not None
                if not known[net]:
                    out.add((net, port))
        return sorted(out)

    def inventory(self, deadline: float | None = None) -> list[OwnedObject]:
        """Every object of ours: this node's netdevs (link dump), OVS interfaces,
        and NB logical ports bound to this node, plus our logical switches.
        For GarbageCollect/Diff in the instance plane (full scans: not a hot path)."""
        out = []
        for l in self.nl.links():
            m = parse_mark(l.alias)
            if m and m.get("owner") == self.owner:
                kind = {"bridge": "bridge", "peer": "veth-peer"}.get(m.get("kind", ""), "netdev")
                out.append(OwnedObject(kind, l.name,
                                       m.get("net", ""), m.get("port", ""), m.get("inst", ""), self.node))
        if self.ovn_enabled:
            for i in self.ovs.interfaces(deadline):
                e = i.external_ids
                out.append(OwnedObject("ovs-interface", i.name, e.get(NETWORK_KEY, ""), e.get("devcloud-port", ""),
                                       e.get("devcloud-instance", ""), e.get("devcloud-node", self.node)))
            for p in self.nb.ports(node=self.node, deadline=deadline):
                e = p.marks
                out.append(OwnedObject("logical-port", p.name, e.get(NETWORK_KEY, ""), e.get("devcloud-port", ""),
                                       e.get("devcloud-instance", ""), e.get("devcloud-node", "")))
            for rows in self.nb.networks(deadline):
                out.append(OwnedObject("logical-switch", rows.switch, rows.marks.get(NETWORK_KEY, "")))
        return out

    def probe_all(self) -> dict[str, object]:
        """Availability of every facility the plane uses (never raises)."""
        out = {"netlink": self.nl.probe()}
        if self.nb is not None:
            out["ovn-nb"] = self.nb.probe()
        if self.ovs is not None:
            out["ovsdb"] = self.ovs.probe()
        return out


def ip_with_prefix(ip: str, subnet: str) -> str:
    """"10.0.0.5" + "10.0.0.0/24" -> "10.0.0.5/24"."""
    return f"{ip}/{ipaddress.ip_network(subnet).prefixlen}" if ip and subnet else ""

