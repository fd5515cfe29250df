"""The bridge backend: a team network is a Linux bridge on this node (for nodes without
OVN), marked in its ifalias ("devcloud owner=... kind=bridge net=... vlan=... s4=...
s6=..."); a port is its host netdev enslaved to the bridge (on the network's VLAN,
if any), ready as soon as it exists. Nothing is shared with other nodes."""
from __future__ import annotations

from agent.drivers.contracts.netlink import NetlinkContract
from agent.errors import AlreadyExists, FailedPrecondition, NotFound
from agent.services.drift import Drift
from agent.services.network.addressing import check_addresses, interface_addresses
from agent.services.network.backend import Checkpoint, NamedPort, NothingToRelease, PortRelease
from agent.services.network.model import (BACKEND_BRIDGE, DEFAULT_MTU_BRIDGE, Network, NetworkSpec, OwnedObject,
                                          Port, PortNames, PortSpec, PortStatus, bridge_name, encode_mark,
                                          mac_from_hash, mark_is, parse_mark)
from agent.services.network.netdevs import Netdevs
from agent.services.revert import Reverter


class BridgeBackend:
    """NetworkBackend over Linux bridges of this node (see backend.NetworkBackend)."""

    kind = BACKEND_BRIDGE

    def __init__(self, nl: NetlinkContract, netdevs: Netdevs, *, owner: str, prefix: str, node: str) -> None:
        self.nl = nl
        self.netdevs = netdevs
        self.owner = owner
        self.prefix = prefix
        self.node = node
        self._bridges: dict[str, Network] = {}     # bridge-backend networks of this node, by name
        self._scanned = False

    # -- networks ---------------------------------------------------------------
    def _mark(self, spec: NetworkSpec) -> str:
        return encode_mark({"owner": self.owner, "kind": "bridge", "net": spec.name, "vlan": str(spec.vlan),
                            "s4": spec.subnet4, "s6": spec.subnet6})

    def ensure_network(self, spec: NetworkSpec, deadline: float | None) -> Network:
        """Create the marked bridge (born in our link group, IPv6 off, up) or converge its
        mtu/up. A bridge of ours left unmarked by a crash is marked. Raises AlreadyExists
        IMMUTABLE_FIELD (bridge name, vlan, subnets differ), FailedPrecondition NOT_OURS (the
        netdev is not our bridge for this network)."""
        name = spec.bridge or bridge_name(self.prefix, spec.name)
        mtu = spec.mtu or DEFAULT_MTU_BRIDGE
        existing = self.find_network(spec.name, deadline)
        if existing is not None and existing.bridge != name:
            raise AlreadyExists(f"network {spec.name} exists on bridge {existing.bridge}", reason="IMMUTABLE_FIELD",
                                metadata={"field": "bridge"})
        link = self.nl.link(name)
        changed = False
        if link is None:
            self.nl.create_bridge(name, mtu=mtu, vlan_filtering=bool(spec.vlan))
            try:
                self.nl.disable_ipv6(name)
                self.nl.configure(name, alias=self._mark(spec), up=True)
            except BaseException:
                self.nl.delete(name)
                raise
            changed = True
        else:
            if link.kind == "bridge" and not link.alias and link.born_ours:
                # an earlier call crashed between creating the bridge and marking it
                self.nl.configure(name, alias=self._mark(spec))
                link = self.nl.link(name) or link
            mark = parse_mark(link.alias)
            if link.kind != "bridge" or not mark_is(mark, owner=self.owner, net=spec.name):
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
        net.ports = self._ports_of(name)
        return net

    def _ports_of(self, bridge: str) -> list[str]:
        link = self.nl.link(bridge)
        if link is None:
            return []
        out = []
        for l in self.nl.links():
            mark = parse_mark(l.alias) if l.master == link.index else None
            if mark_is(mark, kind="port"):
                out.append(mark.get("port", ""))
        return sorted(out)

    def _scan(self, links: list | None = None) -> None:
        """Find our bridges in a link dump (startup and cache misses); `links`: a fresh dump."""
        found = {}
        for l in self.nl.links() if links is None else links:
            mark = parse_mark(l.alias)
            if l.kind == "bridge" and mark_is(mark, owner=self.owner, kind="bridge"):
                net = mark.get("net", "")
                found[net] = Network(name=net, backend=BACKEND_BRIDGE, subnet4=mark.get("s4", ""),
                                     subnet6=mark.get("s6", ""), mtu=l.mtu, bridge=l.name,
                                     vlan=int(mark.get("vlan", "0") or 0))
        self._bridges = found
        self._scanned = True

    def find_network(self, name: str, deadline: float | None = None) -> Network | None:
        """The bridge network `name` of this node from the cache (one link dump the first
        time), None when absent or its bridge is gone."""
        net = self._bridges.get(name)
        if net is None and not self._scanned:
            self._scan()
            net = self._bridges.get(name)
        if net is not None and self.nl.link(net.bridge) is None:
            self._bridges.pop(name, None)
            return None
        return net

    def get_network(self, name: str, deadline: float | None) -> Network | None:
        """As find_network (the port list is the one of its last ensure)."""
        return self.find_network(name, deadline)

    def list_networks(self, deadline: float | None) -> list[Network]:
        """This node's bridge networks (a link dump)."""
        self._scan()
        return list(self._bridges.values())

    def delete_network(self, name: str, deadline: float | None, force: bool = False) -> bool:
        """Delete the bridge and our ports on it (a bridge is this node's only: `force` changes
        nothing). Absent -> False. Raises FailedPrecondition
        NOT_OURS, deleting nothing, when the bridge or a netdev enslaved to it is not ours."""
        net = self.find_network(name, deadline)
        if net is None:
            return False
        link = self.nl.link(net.bridge)
        if link is None:
            self._bridges.pop(net.name, None)
            return False
        if not mark_is(parse_mark(link.alias), owner=self.owner, net=net.name):
            raise FailedPrecondition(f"bridge {net.bridge} is not ours; not deleting it", reason="NOT_OURS")
        ours, foreign = [], []
        for l in self.nl.links():
            if l.master != link.index:
                continue
            if mark_is(parse_mark(l.alias), owner=self.owner, net=net.name) or not l.alias and l.born_ours:
                ours.append(l.index)
            else:
                foreign.append(l.name)
        if foreign:
            raise FailedPrecondition(f"bridge {net.bridge} of network {net.name} has ports that are not ours: "
                                     f"{', '.join(sorted(foreign))}; detach them first, the agent does not "
                                     "touch them", reason="NOT_OURS", metadata={"netdevs": ",".join(sorted(foreign))})
        self.netdevs.delete(ours)
        self.nl.delete(net.bridge)
        self._bridges.pop(net.name, None)
        return True

    # -- ports --------------------------------------------------------------------
    def ensure_port(self, spec: PortSpec, net: Network, names: PortNames, revert: Reverter,
                    deadline: float | None, checkpoint: Checkpoint) -> Port:
        """The port's netdev enslaved to the bridge (MAC derived from the port id when not
        given). Raises NotFound NETWORK_INCOMPLETE when the bridge is gone, else like
        Netdevs.ensure."""
        check_addresses(spec, net)
        mtu = spec.mtu or net.mtu or DEFAULT_MTU_BRIDGE
        mac = spec.mac or mac_from_hash(spec.network, spec.name)
        bridge = self.nl.link(net.bridge)
        if bridge is None:
            raise NotFound(f"bridge {net.bridge} of network {net.name} is gone; EnsureNetwork again",
                           reason="NETWORK_INCOMPLETE")
        changed = self.netdevs.ensure(spec, names, mtu, mac, interface_addresses(net, spec.ip4, spec.ip6), revert,
                                      master=bridge.index, vlan=net.vlan)
        checkpoint("netdev-created")
        port = self.netdevs.port_of(spec, names, mac=mac, ip4=spec.ip4, ip6=spec.ip6, mtu=mtu, changed=changed)
        port.bridge = net.bridge
        return port

    def readiness(self, names: PortNames, until: float | None) -> PortStatus:
        """A bridge port is ready once it exists."""
        return PortStatus(ready=True)

    def get_port(self, network: str, name: str, names: PortNames, deadline: float | None) -> Port | None:
        """The port as its marked netdev shows it, or None."""
        return self.netdevs.port(network, name, names)

    def list_ports(self, network: str, all_nodes: bool, deadline: float | None) -> list[Port]:
        """The marked port netdevs of this node's known bridge networks (a link dump when
        there is any)."""
        if not self._bridges:
            return []
        out = []
        for link in self.nl.links():
            mark = parse_mark(link.alias)
            if mark_is(mark, owner=self.owner, kind="port") and mark.get("net") in self._bridges \
                    and (not network or mark.get("net") == network):
                out.append(Port(network=mark["net"], name=mark.get("port", ""), instance=mark.get("inst", ""),
                                kind=mark.get("nic", ""), node=self.node, mtu=link.mtu, host_netdev=link.name,
                                bridge=self._bridges[mark["net"]].bridge, status=PortStatus(ready=link.up)))
        return out

    def release_ports(self, ports: list[NamedPort], deadline: float | None) -> PortRelease:
        """Nothing beyond the netdevs."""
        return NothingToRelease()

    def port_drift(self, spec: PortSpec, names: PortNames, net: Network | None,
                   deadline: float | None) -> list[Drift]:
        """Nothing beyond the netdev."""
        return []

    # -- node upkeep --------------------------------------------------------------
    def reconcile(self, links: list, deadline: float | None) -> dict[str, int]:
        """Learn this node's bridge networks from the dump."""
        self._scan(links)
        return {"bridges": len(self._bridges)}

    def stale_ports(self, deadline: float | None) -> list[tuple[str, str]]:
        """None: a bridge port goes with its bridge."""
        return []

    def inventory(self, deadline: float | None) -> list[OwnedObject]:
        """None beyond netdevs (the bridges are netdevs too)."""
        return []
