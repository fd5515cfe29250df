"""The OVN backend: a team network is a logical switch in the cluster-wide NB (DHCP
options, a port group, the team's ACLs), written in ONE transaction so several nodes
ensuring the same spec converge; a port is a logical switch port (its addresses
allocated by the NB transaction) + the host netdev (netdevs.py) bound to br-int with
iface-id = the port's name, ready when ovn-installed (OVS) and up (NB).

Ownership: every row carries OWNER_KEY=owner in external_ids; ports also the node
(NODE_KEY) they are bound to: a port of another node is never deleted here.
"""
from __future__ import annotations

import ipaddress
import logging
import time

from agent.drivers.contracts.ovsdb import IFACE_ID, OvnNbContract, OvsDbContract
from agent.drivers.ovsdb.nb_types import NetworkRows, PortRow
from agent.errors import FailedPrecondition, InvalidArgument, NotFound
from agent.metrics import Metrics
from agent.model.marks import (ADDR_KEY, ALLOW_KEY, DNS_KEY, EGRESS_KEY, GATEWAY4_KEY, INSTANCE_KEY, MTU_KEY, NETDEV_KEY,
                               NETWORK_KEY, NIC_KEY, NODE_KEY, OWNER_KEY, PG_KEY, PORT_KEY, SUBNET4_KEY, SUBNET6_KEY)
from agent.services.drift import Drift
from agent.services.network.addressing import check_addresses, interface_addresses, split_ips
from agent.services.network import egress
from agent.services.network.backend import Checkpoint, NamedPort, PortRelease
from agent.services.network.egress import Gateways, decode_egress, egress_rows, encode_egress
from agent.services.network.model import (BACKEND_OVN, DEFAULT_MTU_OVN, Network, NetworkSpec, OwnedObject, Port,
                                          PortNames, PortSpec, PortStatus, acl_rules, decode_allow, default_gateway,
                                          encode_allow, mac_from_hash, port_group_name, port_names, switch_name)
from agent.services.network.netdevs import Netdevs, network_drift
from agent.services.network.watch import ReadinessHub
from agent.services.revert import Reverter

log = logging.getLogger(__name__)
_UNDO_SECONDS = 5.0                  # how long an undo may take when the call's own deadline is spent


def _undo_deadline() -> float:
    return time.monotonic() + _UNDO_SECONDS


class OvnBackend:
    """NetworkBackend over OVN NB + the local Open_vSwitch (see backend.NetworkBackend)."""

    kind = BACKEND_OVN

    def __init__(self, nb: OvnNbContract, ovs: OvsDbContract, hub: ReadinessHub, netdevs: Netdevs, *, owner: str,
                 node: str, integration_bridge: str, metrics: Metrics, gateways: Gateways | None = None) -> None:
        self.nb, self.ovs, self.hub = nb, ovs, hub
        self.netdevs = netdevs
        self.gateways = gateways or Gateways(None)    # the gateway chassis of egress networks (SB)
        self.owner, self.node = owner, node           # the owner mark of our rows; the node our ports are bound to
        self.integration_bridge = integration_bridge
        self.metrics = metrics

    # -- networks ---------------------------------------------------------------
    def ensure_network(self, spec: NetworkSpec, deadline: float | None) -> Network:
        """Switch + DHCP options + port group + ACLs in ONE NB transaction. Raises
        InvalidArgument (no subnet4), AlreadyExists (immutable mark differs),
        FailedPrecondition (same-named rows not ours), Unavailable (NB down)."""
        if not spec.subnet4:
            raise InvalidArgument.for_field("spec.subnet4", "is required for the OVN backend")
        changed = self.nb.ensure_network(self._network_rows(spec, deadline), deadline)
        net = self.get_network(spec.name, deadline)
        if net is None:
            raise NotFound(f"network {spec.name} does not exist", reason="NETWORK_NOT_FOUND",
                           metadata={"network": spec.name})
        net.changed = changed
        return net

    def _network_rows(self, spec: NetworkSpec, deadline: float | None) -> NetworkRows:
        gw = spec.gateway4 or default_gateway(spec.subnet4)
        mtu = spec.mtu or DEFAULT_MTU_OVN
        # router: the network's gateway, so DHCP clients get a default route (issue 14)
        opts = {"lease_time": "3600", "server_id": gw, "server_mac": mac_from_hash(spec.name, "dhcp"),
                "mtu": str(mtu), "router": gw}
        if spec.dns_servers:
            opts["dns_server"] = "{" + ",".join(spec.dns_servers) + "}"
        return NetworkRows(
            switch=switch_name(spec.name), port_group=port_group_name(spec.name),
            marks={OWNER_KEY: self.owner, NETWORK_KEY: spec.name},
            immutable={SUBNET4_KEY: spec.subnet4, SUBNET6_KEY: spec.subnet6, GATEWAY4_KEY: gw},
            mutable={MTU_KEY: str(mtu), DNS_KEY: ",".join(spec.dns_servers), ALLOW_KEY: encode_allow(spec.allow),
                     EGRESS_KEY: encode_egress(spec.egress)},
            dhcp4_cidr=spec.subnet4, dhcp4_options=opts, acls=acl_rules(spec),
            egress=egress_rows(spec, gw, mtu, self.gateways, deadline))

    @staticmethod
    def _network_from_marks(name: str, m: dict[str, str]) -> Network:
        return Network(name=name, backend=BACKEND_OVN, subnet4=m.get(SUBNET4_KEY, ""),
                       subnet6=m.get(SUBNET6_KEY, ""), gateway4=m.get(GATEWAY4_KEY, ""),
                       mtu=int(m.get(MTU_KEY, "0") or 0),
                       dns_servers=tuple(filter(None, m.get(DNS_KEY, "").split(","))),
                       allow=decode_allow(m.get(ALLOW_KEY, "")), switch=switch_name(name),
                       port_group=m.get(PG_KEY, ""))

    def _with_egress(self, net: Network, marks: dict[str, str], deadline: float | None) -> Network:
        net.egress = egress.observed(net.name, decode_egress(marks.get(EGRESS_KEY, "")), self.nb, self.gateways,
                                     deadline)
        return net

    def _network_from_rows(self, name: str, rows: NetworkRows, deadline: float | None = None) -> Network:
        net = self._network_from_marks(name, rows.marks)
        net.ports = sorted(p.split(".", 2)[2] if p.count(".") >= 2 else p for p in rows.ports)
        net.acl_count = len(rows.acls)
        return self._with_egress(net, rows.marks, deadline)

    def find_network(self, name: str, deadline: float | None) -> Network | None:
        """From the switch's marks in the IDL cache (no port list)."""
        marks = self.nb.switch_marks(switch_name(name), deadline)
        return None if marks is None else self._network_from_marks(name, marks)

    def get_network(self, name: str, deadline: float | None) -> Network | None:
        """The switch's rows: marks, ports (all nodes), ACL count. None when absent."""
        rows = self.nb.network(switch_name(name), deadline)
        return None if rows is None else self._network_from_rows(name, rows, deadline)

    def list_networks(self, deadline: float | None) -> list[Network]:
        """Every switch of ours (cluster-wide)."""
        return [self._network_from_rows(rows.marks.get(NETWORK_KEY, ""), rows, deadline)
                for rows in self.nb.networks(deadline)]

    def delete_network(self, name: str, deadline: float | None, force: bool = False) -> bool:
        """The NB rows (with the gateway's) in one transaction (which re-checks the switch's
        ports on the server and refuses, deleting nothing, when one is not ours or, unless
        force, belongs to another node), then this node's OVS ports and netdevs (bulk: one
        OVS transaction, one link-group delete). A retry after a crash in between finds this
        node's leftovers by their marks. Absent -> False. Raises FailedPrecondition NOT_OURS
        (naming the foreign logical ports), PORTS_ON_OTHER_NODES (naming the nodes),
        Unavailable."""
        rows = self.nb.network(switch_name(name), deadline)
        foreign = self.nb.foreign_ports(switch_name(name), deadline)
        if foreign:                                # checked before anything is deleted
            raise FailedPrecondition(
                f"network {name} has logical ports that are not ours: {', '.join(foreign[:10])}"
                f"{' ...' if len(foreign) > 10 else ''}; delete them first (the agent never touches them)",
                reason="NOT_OURS", metadata={"network": name, "ports": ",".join(foreign[:50])})
        local = [i.name for i in self._local_interfaces(deadline, network=name)]
        netdevs = set(local) | {m.get(NETDEV_KEY, "") for m in
                                self.nb.port_marks(network=name, node=self.node, deadline=deadline)}
        if rows is not None:
            # first, and atomic: the transaction re-checks the switch's ports on the server
            self.nb.delete_network(switch_name(name), port_group_name(name), name, deadline,
                                   only_node=None if force else self.node)
        else:                                      # a retry: the NB rows went before a crash
            netdevs |= self.netdevs.marked_for(name)
        indexes, deleted = self.netdevs.owned(sorted(n for n in netdevs if n), network=name)
        self.ovs.unbind(local, deadline)           # OVS ports first: never one without its netdev
        self.netdevs.delete(indexes)
        return rows is not None or bool(local) or bool(deleted)

    def _local_interfaces(self, deadline: float | None, network: str | None = None) -> list:
        """Our OVS interfaces of this node (of one network): an OVS database two agents share
        (tests, a node agent next to an old one) holds the other's too; unmarked node = ours."""
        return [i for i in self.ovs.interfaces(deadline) if i.external_ids.get(NODE_KEY, self.node) == self.node
                and (network is None or i.external_ids.get(NETWORK_KEY) == network)]

    # -- ports --------------------------------------------------------------------
    def ensure_port(self, spec: PortSpec, net: Network, names: PortNames, revert: Reverter,
                    deadline: float | None, checkpoint: Checkpoint) -> Port:
        """Logical port (addresses allocated or checked by NB) -> netdev -> OVS binding, each
        undone by `revert` if a later step fails. OVS interfaces of ours claiming the same
        iface-id are removed. Raises AlreadyExists (immutable mark, address or MAC in use),
        ResourceExhausted (subnet full), FailedPrecondition (rows not ours), Unavailable,
        and what Netdevs.ensure raises."""
        check_addresses(spec, net)
        mtu = spec.mtu or net.mtu or DEFAULT_MTU_OVN
        existed = self.nb.port(names.lsp, deadline) is not None
        marks = {OWNER_KEY: self.owner, NETWORK_KEY: spec.network, PORT_KEY: spec.name, NODE_KEY: self.node,
                 INSTANCE_KEY: spec.instance, NIC_KEY: spec.kind, NETDEV_KEY: names.host}
        reserved = tuple(filter(None, (net.gateway4, str(ipaddress.ip_network(net.subnet6).network_address + 1)
                                       if net.subnet6 else "")))
        # requested-chassis: only this node's chassis may bind the port, even if another node's OVS
        # claimed the same iface-id (unset system-id: no chassis yet, the port cannot bind anywhere)
        row = PortRow(name=names.lsp, switch=net.switch, port_group=net.port_group, marks=marks,
                      immutable=(NODE_KEY, INSTANCE_KEY, NIC_KEY), mac=spec.mac,
                      ip4=spec.ip4, ip6=spec.ip6, subnet4=net.subnet4, subnet6=net.subnet6, reserved=reserved,
                      chassis=self.ovs.system_id(deadline))
        changed, mac, ips = self.nb.ensure_ports([row], deadline)[0]
        if not existed:
            revert.add(lambda: self.nb.delete_ports([names.lsp], _undo_deadline()))
        checkpoint("lsp-created")
        ip4, ip6 = split_ips(ips)
        if self.ovs.interface_cached(names.host) is not None and self.netdevs.nl.link(names.host) is None:
            # the netdev vanished under its OVS port (e.g. a runtime's failed start destroyed the veth):
            # ovs-vswitchd keeps the dead one open and would never use a new netdev of that name
            log.info("port %s/%s: netdev %s is gone under its OVS port; rebinding", spec.network, spec.name,
                     names.host)
            self.ovs.unbind([names.host], deadline, wait_vswitchd=True)   # before a new netdev takes the name
            changed = True
        changed |= self.netdevs.ensure(spec, names, mtu, mac, interface_addresses(net, ip4, ip6), revert)
        checkpoint("netdev-created")
        bound_before = self.ovs.interface_cached(names.host) is not None
        ext = {IFACE_ID: names.lsp, "attached-mac": mac, NETWORK_KEY: spec.network, PORT_KEY: spec.name,
               INSTANCE_KEY: spec.instance, NODE_KEY: self.node}
        bound, removed = self.ovs.bind(self.integration_bridge, names.host, ext, deadline=deadline)
        if removed:
            log.info("port %s/%s: removed stale OVS interfaces %s claiming %s", spec.network, spec.name,
                     removed, names.lsp)
        if not bound_before:
            revert.add(lambda: self.ovs.unbind([names.host], _undo_deadline()))
        checkpoint("ovs-bound")
        port = self.netdevs.port_of(spec, names, mac=mac, ip4=ip4, ip6=ip6, mtu=mtu, changed=changed or bound)
        port.iface_id = names.lsp
        return port

    def readiness(self, names: PortNames, until: float | None) -> PortStatus:
        """ovn-installed + up from the IDL caches; with `until`, waits for them (the wait is
        measured in port_ready_wait). Raises Unavailable when a connection is down at the end."""
        if until is None:
            return self.hub.status(names.lsp, names.host)
        status = self.hub.wait(names.lsp, names.host, until)
        self.metrics.port_ready_wait.observe(status.waited_seconds)
        return status

    def _port_from_row(self, row: PortRow, names: PortNames) -> Port:
        m = row.marks
        return Port(network=m.get(NETWORK_KEY, ""), name=m.get(PORT_KEY, ""), instance=m.get(INSTANCE_KEY, ""),
                    kind=m.get(NIC_KEY, ""), node=m.get(NODE_KEY, ""), mac=row.mac, ip4=row.ip4, ip6=row.ip6,
                    iface_id=row.name, host_netdev=m.get(NETDEV_KEY, names.host),
                    status=PortStatus(up=row.up, missing=() if row.up else ("up",), ready=False))

    def get_port(self, network: str, name: str, names: PortNames, deadline: float | None) -> Port | None:
        """The NB row (any node) and, for this node, the netdev and readiness; without a row,
        the port as a marked netdev of ours shows it (None when there is none either)."""
        row = self.nb.port(names.lsp, deadline)
        if row is None:
            return self.netdevs.port(network, name, names)
        port = self._port_from_row(row, names)
        if port.node == self.node:
            link = self.netdevs.nl.link(names.host)
            port.mtu = link.mtu if link else 0
            port.host_netdev = names.host if link else ""
            port.status = self.hub.status(names.lsp, names.host)
            if link is None:
                port.status.missing = (*port.status.missing, "netdev")
                port.status.ready = False
        return port

    def list_ports(self, network: str, all_nodes: bool, deadline: float | None) -> list[Port]:
        """NB rows of ours (this node's or all), readiness for this node's."""
        out = []
        for row in self.nb.ports(node=None if all_nodes else self.node, network=network or None, deadline=deadline):
            names = port_names(self.netdevs.prefix, row.marks.get(NETWORK_KEY, ""), row.marks.get(PORT_KEY, ""))
            port = self._port_from_row(row, names)
            if port.node == self.node:
                port.status = self.hub.status(names.lsp, names.host)
            out.append(port)
        return out

    def release_ports(self, ports: list[NamedPort], deadline: float | None) -> PortRelease:
        """The logical ports of this node and our OVS interfaces among `ports`. Raises
        FailedPrecondition OTHER_NODE when a logical port is bound to another node."""
        lsps, ifaces = [], []
        for network, port, names in ports:
            row = self.nb.port(names.lsp, deadline)
            if row is not None:
                node = row.marks.get(NODE_KEY, "")
                if node != self.node:
                    raise FailedPrecondition(f"port {network}/{port} is bound to node {node!r}, not "
                                             f"{self.node!r}; delete it there", reason="OTHER_NODE",
                                             metadata={"node": node})
                lsps.append(names.lsp)
            iface = self.ovs.interface(names.host, deadline)
            if iface is not None and iface.ours:
                ifaces.append(names.host)
        return _OvnRelease(self.nb, self.ovs, lsps, ifaces)

    def port_drift(self, spec: PortSpec, names: PortNames, net: Network | None,
                   deadline: float | None) -> list[Drift]:
        """LSP_MISSING, LSP_OTHER_NODE, LSP_ADDRESS_CHANGED, PORT_SECURITY_OFF, REQUESTED_CHASSIS_DRIFT,
        OVS_PORT_MISSING, IFACE_ID_MISMATCH ([] when the network has no switch)."""
        if net is None:
            return []
        drift: list[Drift] = []

        def add(obj: str, reason: str, detail: str, desired: str = "", observed: str = "", *,
                fix: bool = True) -> None:
            drift.append(network_drift(obj, reason, detail, desired, observed, fix))

        row = self.nb.port(names.lsp, deadline)
        if row is None:
            add(names.lsp, "LSP_MISSING", "logical-port: missing")
        else:
            node = row.marks.get(NODE_KEY)
            if node != self.node:
                add(names.lsp, "LSP_OTHER_NODE", f"logical-port: bound to node {node!r}", self.node, node or "",
                    fix=False)
            recorded = row.marks.get(ADDR_KEY, "").split()      # the addresses it was created with
            rec_ips = {ipaddress.ip_address(a).version: a for a in recorded[1:]}
            for want, have, what in ((spec.mac or (recorded[0] if recorded else ""), row.mac, "mac"),
                                     (spec.ip4 or rec_ips.get(4, ""), row.ip4, "ip4"),
                                     (spec.ip6 or rec_ips.get(6, ""), row.ip6, "ip6")):
                if want and want != have:
                    add(names.lsp, "LSP_ADDRESS_CHANGED", f"logical-port: {what} is {have!r}, want {want!r}",
                        want, have)
            if not row.port_security:
                add(names.lsp, "PORT_SECURITY_OFF", "logical-port: port security off")
            chassis = self.ovs.system_id(deadline)
            if node == self.node and chassis and row.chassis != chassis:
                add(names.lsp, "REQUESTED_CHASSIS_DRIFT", f"logical-port: requested-chassis is {row.chassis!r}, "
                                                          f"want {chassis!r}", chassis, row.chassis)
        iface = self.ovs.interface(names.host, deadline)
        if iface is None:
            add(names.host, "OVS_PORT_MISSING", "ovs-interface: missing")
        elif iface.iface_id != names.lsp:
            add(names.host, "IFACE_ID_MISMATCH", f"ovs-interface: iface-id is {iface.iface_id!r}, want "
                                                 f"{names.lsp!r}", names.lsp, iface.iface_id)
        return drift

    # -- node upkeep --------------------------------------------------------------
    def reconcile(self, links: list, deadline: float | None) -> dict[str, int]:
        """Remove OVS ports of ours whose netdev no longer exists (never leave an OVS port
        without its netdev)."""
        names = {l.name for l in links}
        stale = [i.name for i in self._local_interfaces(deadline) if i.name not in names]
        removed = len(self.ovs.unbind(stale, deadline))
        if removed:
            self.metrics.orphans_total.labels(plane="network", kind="ovs-interface").inc(removed)
        return {"stale_ovs_ports_removed": removed}

    def stale_ports(self, deadline: float | None) -> list[tuple[str, str]]:
        """This node's OVS ports whose switch no longer exists in NB (deleted from another node)."""
        out, known = set(), {}
        for i in self.ovs.interfaces(deadline):
            net, port = i.external_ids.get(NETWORK_KEY, ""), i.external_ids.get(PORT_KEY, "")
            if net and port:
                if net not in known:
                    known[net] = self.nb.switch_marks(switch_name(net), deadline) is not None
                if not known[net]:
                    out.add((net, port))
        return sorted(out)

    def inventory(self, deadline: float | None) -> list[OwnedObject]:
        """This node's OVS interfaces and logical ports, and every switch of ours."""
        out = []
        for i in self.ovs.interfaces(deadline):
            e = i.external_ids
            out.append(OwnedObject("ovs-interface", i.name, e.get(NETWORK_KEY, ""), e.get(PORT_KEY, ""),
                                   e.get(INSTANCE_KEY, ""), e.get(NODE_KEY, self.node)))
        for p in self.nb.ports(node=self.node, deadline=deadline):
            e = p.marks
            out.append(OwnedObject("logical-port", p.name, e.get(NETWORK_KEY, ""), e.get(PORT_KEY, ""),
                                   e.get(INSTANCE_KEY, ""), e.get(NODE_KEY, "")))
        for rows in self.nb.networks(deadline):
            out.append(OwnedObject("logical-switch", rows.switch, rows.marks.get(NETWORK_KEY, "")))
        return out


class _OvnRelease:
    """This node's OVS interfaces (unbound before the netdevs go) and logical ports
    (deleted after them) of some ports."""

    def __init__(self, nb: OvnNbContract, ovs: OvsDbContract, lsps: list[str], ifaces: list[str]) -> None:
        self.nb, self.ovs, self.lsps, self.ifaces = nb, ovs, lsps, ifaces

    def detach(self, deadline: float | None) -> None:
        """Unbind our OVS interfaces of the ports (one transaction)."""
        if self.ifaces:
            self.ovs.unbind(self.ifaces, deadline)

    def remove(self, deadline: float | None) -> None:
        """Delete this node's logical ports (one NB transaction)."""
        if self.lsps:
            self.nb.delete_ports(self.lsps, deadline)

    def covers(self, names: PortNames) -> bool:
        """True when the port had a logical port or an OVS interface here."""
        return names.lsp in self.lsps or names.host in self.ifaces
