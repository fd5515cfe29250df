"""Port use cases of NetworkService: a NIC of an instance = logical switch
port (OVN) + host netdev (veth pair or tap) + binding to br-int (OVN) or
enslaving to the network's Linux bridge (bridge backend).

Order of creation: NB row (address allocation) -> netdev -> OVS binding, so
an OVS port never exists without its netdev; each step registers an undo
that runs if a later step fails (nothing half-created). Deletion runs the
other way, in bulk: one OVS transaction, one link-group delete, one NB
transaction.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

from agent.drivers.ovsdb.nb import NETWORK_KEY, PortRow
from agent.drivers.ovsdb.nb_types import ADDR_KEY
from agent import validation
from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.services.network.model import (
    BACKEND_BRIDGE, BACKEND_OVN, DEFAULT_MTU_BRIDGE, DEFAULT_MTU_OVN, KIND_TAP, KIND_VETH, Network, Port,
    PortEvent, PortNames, PortSpec, PortStatus, encode_mark, mac_from_hash, parse_mark, port_names, switch_name)
from agent.services.drift import Drift
from agent.services.network.watch import Subscription

log = logging.getLogger(__name__)
_READY_MARGIN = 0.5                  # at most this much of the call deadline is kept to send the reply

# Step boundaries inside ensure_port / delete_ports, announced through the optional
# `checkpoint(step)` callback (the instance plane's crash tests stop the process there).
PORT_ENSURE_STEPS = ("lsp-created", "netdev-created", "ovs-bound")
PORT_DELETE_STEPS = ("ovs-unbound", "netdevs-deleted", "lsps-deleted")
Checkpoint = Callable[[str], None]


def _nothing(step: str) -> None:
    return None


def _with_prefix(ip: str, subnet: str) -> str:
    return f"{ip}/{ipaddress.ip_network(subnet).prefixlen}" if ip and subnet else ""


def _split_ips(ips: list[str]) -> tuple[str, str]:
    v4 = next((a for a in ips if ipaddress.ip_address(a).version == 4), "")
    v6 = next((a for a in ips if ipaddress.ip_address(a).version == 6), "")
    return v4, v6


class PortsMixin:
    """Port operations; mixed into NetworkService (uses its drivers and locks)."""

    def port_names(self, network: str, port: str) -> PortNames:
        """Deterministic names of a port's objects, computable before creation."""
        return port_names(self.prefix, network, port)

    def _undo_deadline(self) -> float:
        return time.monotonic() + 5.0

    def _port_network(self, name: str, deadline: float | None) -> Network:
        bridge = self._bridge_network(name)
        if bridge is not None:
            return bridge
        if self.ovn_enabled:
            marks = self.nb.switch_marks(switch_name(name), deadline)   # hot path: no port list
            if marks is not None:
                return self._network_from_marks(name, marks)
        raise NotFound(f"network {name} does not exist on this node", reason="NETWORK_NOT_FOUND",
                       metadata={"network": name})

    # -- ensure --------------------------------------------------------------
    def ensure_port(self, spec: PortSpec, deadline: float | None = None, *, wait_ready: bool = False,
                    ready_timeout: float | None = None, checkpoint: Checkpoint | None = None) -> Port:
        """Create or reconcile one NIC. Idempotent (changed=False the second time).
        With wait_ready, waits (bounded by the deadline and ready_timeout, default
        the service's) for ovn-installed and NB up; on timeout the returned
        status lists what is missing.

        Raises NotFound (network missing), AlreadyExists (immutable field
        differs, address or MAC in use), ResourceExhausted (subnet full),
        FailedPrecondition (an object with our name or the same iface-id is
        not ours, netns missing), Aborted (same port or its network busy),
        Unavailable (OVSDB down). `checkpoint` is called at PORT_ENSURE_STEPS."""
        names = self.port_names(spec.network, spec.name)
        checkpoint = checkpoint or _nothing
        with self._gate.shared(spec.network), self._port_locks.hold((spec.network, spec.name)):
            net = self._port_network(spec.network, deadline)
            undo: list[Callable[[], object]] = []
            try:
                if net.backend == BACKEND_OVN:
                    port = self._ensure_ovn_port(spec, net, names, undo, deadline, checkpoint)
                else:
                    port = self._ensure_bridge_port(spec, net, names, undo, checkpoint)
            except BaseException:
                for step in reversed(undo):
                    try:
                        step()
                    except Exception as exc:  # keep undoing; report the original error
                        log.warning("undo of port %s/%s failed: %s", spec.network, spec.name, exc)
                raise
        if net.backend == BACKEND_OVN:
            if wait_ready:
                end = time.monotonic() + (ready_timeout or self.ready_timeout)
                if deadline is not None:     # keep a slice of the deadline to send the reply
                    end = min(end, deadline - min(_READY_MARGIN, 0.1 * (deadline - time.monotonic())))
                port.status = self.hub.wait(names.lsp, names.host, end)
                self.metrics.port_ready_wait.observe(port.status.waited_seconds)
            else:
                port.status = self.hub.status(names.lsp, names.host)
        return port

    def wait_port_ready(self, network: str, name: str, deadline: float | None = None,
                        ready_timeout: float | None = None) -> PortStatus:
        """Wait (bounded by the deadline and ready_timeout, default the service's) until the
        port is ovn-installed and up; the status names what is still missing. Bridge
        ports are ready at once. Raises Unavailable when OVSDB is down at the end."""
        if not self.ovn_enabled or self._bridges.get(network) is not None:
            return PortStatus(ready=True)
        names = self.port_names(network, name)
        end = time.monotonic() + (ready_timeout or self.ready_timeout)
        if deadline is not None:
            end = min(end, deadline - min(_READY_MARGIN, 0.1 * max(0.0, deadline - time.monotonic())))
        status = self.hub.wait(names.lsp, names.host, end)
        self.metrics.port_ready_wait.observe(status.waited_seconds)
        return status

    @staticmethod
    def _check_addresses(spec: PortSpec, net: Network) -> None:
        """Given addresses must sit inside the network's subnets, not on the gateway."""
        if spec.ip4:
            if not net.subnet4:
                raise InvalidArgument.for_field("spec.ip4", f"network {net.name} has no IPv4 subnet")
            validation.ip_in("spec.ip4", spec.ip4, ipaddress.ip_network(net.subnet4))
            if spec.ip4 == net.gateway4:
                raise InvalidArgument.for_field("spec.ip4", f"{spec.ip4} is the gateway of {net.name}")
        if spec.ip6:
            if not net.subnet6:
                raise InvalidArgument.for_field("spec.ip6", f"network {net.name} has no IPv6 subnet")
            validation.ip_in("spec.ip6", spec.ip6, ipaddress.ip_network(net.subnet6))

    def _ensure_ovn_port(self, spec: PortSpec, net: Network, names: PortNames, undo: list,
                         deadline: float | None, checkpoint: Checkpoint) -> Port:
        self._check_addresses(spec, net)
        mtu = spec.mtu or net.mtu or DEFAULT_MTU_OVN
        existed = self.nb.port(names.lsp, deadline) is not None
        marks = {"devcloud-owner": self.owner, NETWORK_KEY: spec.network, "devcloud-port": spec.name,
                 "devcloud-node": self.node, "devcloud-instance": spec.instance, "devcloud-nic": spec.kind,
                 "devcloud-netdev": names.host}
        reserved = tuple(filter(None, (net.gateway4, str(ipaddress.ip_network(net.subnet6).network_address + 1)
                                       if net.subnet6 else "")))
        row = PortRow(name=names.lsp, switch=net.switch, port_group=net.port_group, marks=marks,
                      immutable=("devcloud-node", "devcloud-instance", "devcloud-nic"), mac=spec.mac,
                      ip4=spec.ip4, ip6=spec.ip6, subnet4=net.subnet4, subnet6=net.subnet6, reserved=reserved)
        changed, mac, ips = self.nb.ensure_ports([row], deadline)[0]
        if not existed:
            undo.append(lambda: self.nb.delete_ports([names.lsp], self._undo_deadline()))
        checkpoint("lsp-created")
        ip4, ip6 = _split_ips(ips)
        addrs = [a for a in (_with_prefix(ip4, net.subnet4), _with_prefix(ip6, net.subnet6)) if a]
        changed |= self._ensure_netdev(spec, names, mtu, mac, addrs, undo)
        checkpoint("netdev-created")
        bound_before = self.ovs.interface_cached(names.host) is not None
        ext = {"iface-id": names.lsp, "attached-mac": mac, NETWORK_KEY: spec.network, "devcloud-port": spec.name,
               "devcloud-instance": spec.instance, "devcloud-node": self.node}
        bound, removed = self.ovs.bind(self.integration_bridge, names.host, ext, deadline=deadline)
        if removed:
            log.info("port %s/%s: removed stale OVS interfaces %s claiming %s", spec.network, spec.name,
                     removed, names.lsp)
        if not bound_before:
            undo.append(lambda: self.ovs.unbind([names.host], self._undo_deadline()))
        checkpoint("ovs-bound")
        return self._port(spec, names, net, mac, ip4, ip6, mtu, changed or bound)

    def _ensure_bridge_port(self, spec: PortSpec, net: Network, names: PortNames, undo: list,
                            checkpoint: Checkpoint) -> Port:
        self._check_addresses(spec, net)
        mtu = spec.mtu or net.mtu or DEFAULT_MTU_BRIDGE
        mac = spec.mac or mac_from_hash(spec.network, spec.name)
        bridge = self.nl.link(net.bridge)
        if bridge is None:
            raise NotFound(f"bridge {net.bridge} of network {net.name} is gone; EnsureNetwork again",
                           reason="NETWORK_INCOMPLETE")
        addrs = [a for a in (_with_prefix(spec.ip4, net.subnet4), _with_prefix(spec.ip6, net.subnet6)) if a]
        changed = self._ensure_netdev(spec, names, mtu, mac, addrs, undo, master=bridge.index, vlan=net.vlan)
        checkpoint("netdev-created")
        port = self._port(spec, names, net, mac, spec.ip4, spec.ip6, mtu, changed)
        port.bridge = net.bridge
        port.status = PortStatus(ready=True)
        return port

    def _port(self, spec: PortSpec, names: PortNames, net: Network, mac: str, ip4: str, ip6: str, mtu: int,
              changed: bool) -> Port:
        in_ns = spec.kind == KIND_VETH and bool(spec.peer_netns)
        return Port(network=spec.network, name=spec.name, instance=spec.instance, kind=spec.kind, node=self.node,
                    mac=mac, ip4=ip4, ip6=ip6, mtu=mtu, iface_id=names.lsp if net.backend == BACKEND_OVN else "",
                    host_netdev=names.host,
                    peer_netdev=(spec.peer_name or "eth0") if in_ns else (names.peer if spec.kind == KIND_VETH else ""),
                    peer_netns=spec.peer_netns if in_ns else "", multiqueue=spec.multiqueue,
                    changed=changed)

    def _mark(self, spec: PortSpec, role: str = "port") -> str:
        return encode_mark({"owner": self.owner, "kind": role, "net": spec.network, "port": spec.name,
                            "inst": spec.instance, "nic": spec.kind})

    @contextmanager
    def _being_created(self, *names: str) -> Iterator[None]:
        """Between a netdev's creating request and its mark: the leftover sweep leaves it alone."""
        with self._unmarked_lock:
            self._being_marked.update(names)
        try:
            yield
        finally:
            with self._unmarked_lock:
                self._being_marked.difference_update(names)

    def _ensure_netdev(self, spec: PortSpec, names: PortNames, mtu: int, mac: str, addrs: list[str],
                       undo: list, master: int | None = None, vlan: int = 0) -> bool:
        """The host netdev (and the veth's instance end); returns changed."""
        peer = (spec.peer_name or "eth0") if spec.peer_netns else names.peer
        # a veth is created first and looked at only if its name is taken (saves a get per new port);
        # a tap must be looked up first: TUNSETIFF on an existing tap attaches instead of failing
        link = self.nl.link(names.host) if spec.kind == KIND_TAP else None
        created = False
        if link is None:
            with self._being_created(names.host, names.peer):
                try:
                    if spec.kind == KIND_TAP:
                        self.nl.create_tap(names.host, mtu=mtu, multiqueue=spec.multiqueue, alias=self._mark(spec))
                    else:
                        self.nl.create_veth(names.host, peer, mtu=mtu, peer_mac=mac, peer_netns=spec.peer_netns)
                    created = True
                except AlreadyExists:
                    link = self.nl.link(names.host)
                    if link is None:             # it is the instance end's name that is taken
                        raise
                if created:
                    undo.append(lambda: self.nl.delete(names.host))
                    self.nl.disable_ipv6(names.host)            # before it is up: no link-local, no ND
                    self.nl.configure(names.host, alias=self._mark(spec), up=True, master=master)
                    if spec.kind == KIND_VETH and not spec.peer_netns:    # left in place for LXD to take by name
                        self.nl.configure(names.peer, alias=self._mark(spec, "peer"))
        if created:
            if spec.kind == KIND_VETH and spec.peer_netns:
                self.nl.configure_peer(spec.peer_netns, peer, addresses=addrs, fresh=True)
            if vlan:
                self.nl.bridge_port_vlan(self.nl.link(names.host).index, vlan)
            return True
        if not link.alias and link.born_ours:
            # a crash of an earlier call landed between the creating request (birth group) and
            # the mark: the netdev is ours for this port (the name is the port's): finish it
            log.info("netdev %s: adopting an unmarked netdev of ours (interrupted creation)", names.host)
            self.nl.configure(names.host, alias=self._mark(spec))
            if spec.kind == KIND_VETH and not spec.peer_netns and self.nl.link(names.peer) is not None:
                self.nl.configure(names.peer, alias=self._mark(spec, "peer"))
            link = self.nl.link(names.host) or link
        mark = parse_mark(link.alias)
        if not mark or mark.get("owner") != self.owner or mark.get("net") != spec.network \
                or mark.get("port") != spec.name:
            raise FailedPrecondition(f"netdev {names.host} exists and is not ours for port {spec.network}/"
                                     f"{spec.name} (ifalias {link.alias!r}); not touching it", reason="NOT_OURS",
                                     metadata={"netdev": names.host})
        want_kind = "tun" if spec.kind == KIND_TAP else "veth"
        if link.kind != want_kind or (spec.kind == KIND_TAP and link.multiqueue != spec.multiqueue) \
                or mark.get("inst", "") != spec.instance:
            raise AlreadyExists(f"port {spec.network}/{spec.name} exists as {link.kind} (multiqueue="
                                f"{link.multiqueue}, instance {mark.get('inst', '')!r}); delete it first to change "
                                "kind, multiqueue or instance", reason="IMMUTABLE_FIELD")
        changed = False
        if link.mtu != mtu or not link.up or (master is not None and link.master != master):
            self.nl.configure(names.host, mtu=mtu, up=True, master=master)
            changed = True
        if not self.nl.ipv6_disabled(names.host):
            self.nl.disable_ipv6(names.host)
            changed = True
        if spec.kind == KIND_VETH and spec.peer_netns:
            changed |= self._place_peer(spec, names, link, peer, mtu, addrs)
        return changed

    def _place_peer(self, spec: PortSpec, names: PortNames, link, peer: str, mtu: int, addrs: list[str]) -> bool:
        """Make sure the veth's other end sits in spec.peer_netns as `peer`."""
        there = self.nl.peer_link(spec.peer_netns, peer)
        changed = False
        if there is None or there.peer_index != link.index:
            here = self.nl.link(names.peer)
            if here is None or here.peer_index != link.index:
                raise FailedPrecondition(
                    f"the instance end of {names.host} is neither {peer} in netns {spec.peer_netns} nor "
                    f"{names.peer} next to it (taken elsewhere?); delete the port to recreate it",
                    reason="PEER_ELSEWHERE", metadata={"netdev": names.host})
            self.nl.move(names.peer, spec.peer_netns, peer)
            changed = True
        return self.nl.configure_peer(spec.peer_netns, peer, addresses=addrs, mtu=mtu) or changed

    # -- delete ----------------------------------------------------------------
    def delete_port(self, network: str, name: str, deadline: float | None = None) -> bool:
        """Delete one NIC (OVS binding, netdev, logical port). Absent -> OK, False.
        Raises FailedPrecondition (the logical port is bound to another node),
        Aborted, Unavailable."""
        return self.delete_ports([(network, name)], deadline) > 0

    def delete_ports(self, ports: list[tuple[str, str]], deadline: float | None = None, *,
                     checkpoint: Checkpoint | None = None) -> int:
        """Delete many NICs of this node in bulk: one OVS transaction, one
        link-group delete, one NB transaction. Absent ones are skipped; objects
        that carry no mark of ours are never touched. Returns how many ports had
        something deleted. Raises like delete_port (nothing deleted then).
        `checkpoint` is called at PORT_DELETE_STEPS."""
        ports = sorted(set(ports))
        checkpoint = checkpoint or _nothing
        with ExitStack() as stack:
            for network in sorted({n for n, _ in ports}):
                stack.enter_context(self._gate.shared(network))
            for key in ports:
                stack.enter_context(self._port_locks.hold(key))
            named = [(n, p, self.port_names(n, p)) for n, p in ports]
            lsps, ifaces = [], []
            if self.ovn_enabled:
                for network, port, names in named:
                    row = self.nb.port(names.lsp, deadline)
                    if row is not None:
                        node = row.marks.get("devcloud-node", "")
                        if node != self.node:
                            raise FailedPrecondition(f"port {network}/{port} is bound to node {node!r}, not "
                                                     f"{self.node!r}; delete it there", reason="OTHER_NODE",
                                                     metadata={"node": node})
                        lsps.append(names.lsp)
                    iface = self.ovs.interface(names.host, deadline)
                    if iface is not None and iface.ours:
                        ifaces.append(names.host)
            # look at the netdevs while the host is quiet, before OVS starts removing ports
            indexes, deleted = self._owned_netdevs([names.host for _, _, names in named],
                                                   ports={(n, p) for n, p, _ in named})
            if ifaces:
                self.ovs.unbind(ifaces, deadline)
            checkpoint("ovs-unbound")
            self.nl.delete_many(indexes)
            checkpoint("netdevs-deleted")
            if lsps:
                self.nb.delete_ports(lsps, deadline)
            checkpoint("lsps-deleted")
            return sum(1 for _, _, names in named
                       if names.lsp in lsps or names.host in ifaces or names.host in deleted)

    def _owned_netdevs(self, names: list[str], *, network: str | None = None,
                       ports: set[tuple[str, str]] | None = None) -> tuple[list[int], list[str]]:
        """(indexes, names) of the host netdevs among `names` that carry our mark
        (for `network`, or one of `ports`); others are left alone with a warning."""
        doomed, deleted = [], []
        for name in names:
            link = self.nl.link(name)
            if link is None:
                continue
            mark = parse_mark(link.alias)
            ok = bool(mark and mark.get("owner") == self.owner and mark.get("kind") == "port")
            if ok and network is not None:
                ok = mark.get("net") == network
            if ok and ports is not None:
                ok = (mark.get("net"), mark.get("port")) in ports
            # born ours, never marked: an interrupted creation under this very name
            ok = ok or (not link.alias and link.born_ours)
            if not ok:
                log.warning("netdev %s has our name but not our mark (%r): left alone", name, link.alias)
                continue
            doomed.append(link.index)
            deleted.append(name)
        return doomed, deleted

    # -- reads -------------------------------------------------------------------
    def get_port(self, network: str, name: str, deadline: float | None = None) -> Port:
        """Observed state of one NIC: NB row (any node), and on this node the
        netdev and readiness. Raises NotFound, Unavailable."""
        names = self.port_names(network, name)
        if self.ovn_enabled:
            row = self.nb.port(names.lsp, deadline)
            if row is not None:
                port = self._port_from_row(row, names)
                if port.node == self.node:
                    link = self.nl.link(names.host)
                    port.mtu = link.mtu if link else 0
                    port.host_netdev = names.host if link else ""
                    port.status = self.hub.status(names.lsp, names.host)
                    if link is None:
                        port.status.missing = (*port.status.missing, "netdev")
                        port.status.ready = False
                return port
        link = self.nl.link(names.host)
        mark = parse_mark(link.alias) if link else None
        if link is None or not mark or mark.get("net") != network or mark.get("port") != name:
            raise NotFound(f"port {network}/{name} does not exist", reason="PORT_NOT_FOUND",
                           metadata={"network": network, "port": name})
        return Port(network=network, name=name, instance=mark.get("inst", ""), kind=mark.get("nic", ""),
                    node=self.node, mtu=link.mtu, host_netdev=link.name, multiqueue=link.multiqueue,
                    status=PortStatus(ready=link.up))

    def _port_from_row(self, row: PortRow, names: PortNames) -> Port:
        m = row.marks
        return Port(network=m.get(NETWORK_KEY, ""), name=m.get("devcloud-port", ""),
                    instance=m.get("devcloud-instance", ""), kind=m.get("devcloud-nic", ""),
                    node=m.get("devcloud-node", ""), mac=row.mac, ip4=row.ip4, ip6=row.ip6,
                    iface_id=row.name, host_netdev=m.get("devcloud-netdev", names.host),
                    status=PortStatus(up=row.up, missing=() if row.up else ("up",), ready=False))

    def list_ports(self, network: str = "", *, all_nodes: bool = False,
                   deadline: float | None = None) -> list[Port]:
        """Ports of this node (or of every node), optionally of one network, from
        the caches (no netdev lookups: mtu is 0 here; GetPort has it)."""
        out = []
        if self.ovn_enabled:
            for row in self.nb.ports(node=None if all_nodes else self.node, network=network or None,
                                     deadline=deadline):
                names = self.port_names(row.marks.get(NETWORK_KEY, ""), row.marks.get("devcloud-port", ""))
                port = self._port_from_row(row, names)
                if port.node == self.node:
                    port.status = self.hub.status(names.lsp, names.host)
                out.append(port)
        if any(n.backend == BACKEND_BRIDGE for n in self._bridges.values()):
            for link in self.nl.links():
                mark = parse_mark(link.alias)
                if mark and mark.get("owner") == self.owner and mark.get("kind") == "port" \
                        and mark.get("net") in self._bridges and (not network or mark.get("net") == network):
                    out.append(Port(network=mark["net"], name=mark.get("port", ""), instance=mark.get("inst", ""),
                                    kind=mark.get("nic", ""), node=self.node, mtu=link.mtu, host_netdev=link.name,
                                    bridge=self._bridges[mark["net"]].bridge, status=PortStatus(ready=link.up)))
        return sorted(out, key=lambda p: (p.network, p.name))

    def watch_ports(self, network: str = "") -> tuple[list[PortEvent], Subscription]:
        """Current readiness of this node's ports (of one network or all) and a
        subscription delivering every later change. Close the subscription."""
        self._require_ovn()
        sub = self.hub.subscribe(network)
        snapshot = []
        for port in self.list_ports(network):
            ev = PortEvent(port.network, port.name, port.status)
            sub.prime(ev)
            snapshot.append(ev)
        return snapshot, sub

    def diff_port(self, spec: PortSpec, deadline: float | None = None) -> list[str]:
        """What differs between `spec` and the live objects of this node ([] = in
        sync). Repair = ensure_port(spec). Raises Unavailable."""
        return [d.detail for d in self.port_drift(spec, deadline)]

    def port_drift(self, spec: PortSpec, deadline: float | None = None) -> list[Drift]:
        """Like diff_port, as Drift items with reason codes: LSP_MISSING, LSP_OTHER_NODE,
        LSP_ADDRESS_CHANGED, PORT_SECURITY_OFF, OVS_PORT_MISSING, IFACE_ID_MISMATCH,
        VETH_MISSING / TAP_MISSING, NETDEV_NOT_OURS, NETDEV_DOWN, MTU_DRIFT,
        IPV6_ENABLED, PEER_MISSING. Read-only: caches and name lookups, no dumps."""
        names = self.port_names(spec.network, spec.name)
        drift: list[Drift] = []

        def add(obj: str, reason: str, detail: str, desired: str = "", observed: str = "", fix: bool = True):
            drift.append(Drift("network", obj, reason, detail, desired, observed, fix))

        net_ovn = self.ovn_enabled and self.nb.switch_marks(switch_name(spec.network), deadline) is not None
        if net_ovn:
            row = self.nb.port(names.lsp, deadline)
            if row is None:
                add(names.lsp, "LSP_MISSING", "logical-port: missing")
            else:
                node = row.marks.get("devcloud-node")
                if node != self.node:
                    add(names.lsp, "LSP_OTHER_NODE", f"logical-port: bound to node {node!r}", self.node, node or "",
                        False)
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
            iface = self.ovs.interface(names.host, deadline)
            if iface is None:
                add(names.host, "OVS_PORT_MISSING", "ovs-interface: missing")
            elif iface.iface_id != names.lsp:
                add(names.host, "IFACE_ID_MISMATCH", f"ovs-interface: iface-id is {iface.iface_id!r}, want "
                                                     f"{names.lsp!r}", names.lsp, iface.iface_id)
        link = self.nl.link(names.host)
        if link is None:
            add(names.host, "TAP_MISSING" if spec.kind == KIND_TAP else "VETH_MISSING", "netdev: missing")
        else:
            mark = parse_mark(link.alias)
            if not mark or mark.get("port") != spec.name or mark.get("net") != spec.network:
                add(names.host, "NETDEV_NOT_OURS", f"netdev: {names.host} is not ours", fix=False)
            if not link.up:
                add(names.host, "NETDEV_DOWN", "netdev: down", "up", "down")
            if spec.mtu and link.mtu != spec.mtu:
                add(names.host, "MTU_DRIFT", f"netdev: mtu {link.mtu}, want {spec.mtu}", str(spec.mtu), str(link.mtu))
            if not self.nl.ipv6_disabled(names.host):
                add(names.host, "IPV6_ENABLED", "netdev: IPv6 enabled on the host side")
            if spec.kind == KIND_VETH and spec.peer_netns:
                peer = self.nl.peer_link(spec.peer_netns, spec.peer_name or "eth0")
                if peer is None or peer.peer_index != link.index:
                    add(spec.peer_name or "eth0", "PEER_MISSING", f"peer: not in netns {spec.peer_netns}",
                        spec.peer_netns)
        return drift
