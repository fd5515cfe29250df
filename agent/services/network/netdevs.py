"""The host netdevs of ports, common to both backends: a veth pair (containers) or a
tap (VMs), enslaved to the network's Linux bridge (bridge backend) or bound to br-int
(OVN backend, see backend_ovn.py).

Every netdev is born in the agent's link group (the creating request sets it) and gets
its ifalias mark right after ("devcloud owner=... kind=port net=... port=..."). A crash
between the two leaves an unmarked netdev of that group: under a port's name it is
adopted by the next ensure of that port and removed by deletes; elsewhere the startup
reconcile and GC sweep it (sweep_unmarked), except while this process is creating it.
A netdev without our mark or our group is never touched, whatever its name.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from agent.drivers.contracts.netlink import NetlinkContract
from agent.drivers.netlink.link import Link
from agent.errors import AlreadyExists, FailedPrecondition
from agent.metrics import Metrics
from agent.services.drift import Drift
from agent.services.network.model import (KIND_TAP, KIND_VETH, OwnedObject, Port, PortNames, PortSpec, PortStatus,
                                          encode_mark, mark_is, parse_mark)
from agent.services.revert import Reverter

log = logging.getLogger(__name__)


class Netdevs:
    """Creates, adopts, finds and describes the host netdevs of ports on this node."""

    def __init__(self, nl: NetlinkContract, *, owner: str, prefix: str, node: str, metrics: Metrics) -> None:
        self.nl = nl
        self.owner = owner
        self.prefix = prefix                       # every port/bridge netdev name starts with it
        self.node = node
        self.metrics = metrics
        # netdevs between their creating request and their mark: never swept as leftovers
        self._unmarked_lock = threading.Lock()
        self._being_marked: set[str] = set()

    def mark(self, spec: PortSpec, role: str = "port") -> str:
        """The ifalias of a port's netdev (role "port") or of a veth's instance end ("peer")."""
        return encode_mark({"owner": self.owner, "kind": role, "net": spec.network, "port": spec.name,
                            "inst": spec.instance, "nic": spec.kind})

    def port_of(self, spec: PortSpec, names: PortNames, *, mac: str, ip4: str, ip6: str, mtu: int,
                changed: bool) -> Port:
        """The Port an ensure returns, before the backend adds its own fields."""
        in_ns = spec.kind == KIND_VETH and bool(spec.peer_netns)
        return Port(network=spec.network, name=spec.name, instance=spec.instance, kind=spec.kind, node=self.node,
                    mac=mac, ip4=ip4, ip6=ip6, mtu=mtu, host_netdev=names.host,
                    peer_netdev=(spec.peer_name or "eth0") if in_ns else (names.peer if spec.kind == KIND_VETH else ""),
                    peer_netns=spec.peer_netns if in_ns else "", multiqueue=spec.multiqueue, changed=changed)

    # -- ensure ----------------------------------------------------------------
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

    def ensure(self, spec: PortSpec, names: PortNames, mtu: int, mac: str, addrs: list[str], revert: Reverter,
               master: int | None = None, vlan: int = 0) -> bool:
        """Create the port's host netdev (and the veth's instance end) or converge it (mtu,
        up, master, IPv6 off, the peer's place). Returns changed. A netdev created here
        registers its delete with `revert`.

        Idempotent. An unmarked netdev of our group under the host name is adopted (an
        interrupted creation). Raises FailedPrecondition NOT_OURS (the name is taken by a
        netdev that is not ours for this port), PEER_ELSEWHERE (the veth's instance end is
        gone elsewhere), AlreadyExists IMMUTABLE_FIELD (kind, multiqueue or instance differ;
        or the instance end's name is taken)."""
        peer = (spec.peer_name or "eth0") if spec.peer_netns else names.peer
        # a veth is created first and looked at only if its name is taken (saves a get per new port);
        # a tap must be looked up first: TUNSETIFF on an existing tap attaches instead of failing
        link = self.nl.link(names.host) if spec.kind == KIND_TAP else None
        created = False
        if link is None:
            with self._being_created(names.host, names.peer):
                try:
                    if spec.kind == KIND_TAP:
                        self.nl.create_tap(names.host, mtu=mtu, multiqueue=spec.multiqueue, alias=self.mark(spec))
                    else:
                        self.nl.create_veth(names.host, peer, mtu=mtu, peer_mac=mac, peer_netns=spec.peer_netns)
                    created = True
                except AlreadyExists:
                    link = self.nl.link(names.host)
                    if link is None:             # it is the instance end's name that is taken
                        raise
                if created:
                    revert.add(lambda: self.nl.delete(names.host))
                    self.nl.disable_ipv6(names.host)            # before it is up: no link-local, no ND
                    self.nl.configure(names.host, alias=self.mark(spec), up=True, master=master)
                    if spec.kind == KIND_VETH and not spec.peer_netns:    # left in place for LXD to take by name
                        self.nl.configure(names.peer, alias=self.mark(spec, "peer"))
        if created:
            if spec.kind == KIND_VETH and spec.peer_netns and spec.peer_configure:
                self.nl.configure_peer(spec.peer_netns, peer, addresses=addrs, fresh=True)
            if vlan:
                created_link = self.nl.link(names.host)
                assert created_link is not None, f"{names.host} vanished while it was being created"
                self.nl.bridge_port_vlan(created_link.index, vlan)
            return True
        assert link is not None                  # not created: the name was taken by this netdev
        if not link.alias and link.born_ours:
            # a crash of an earlier call landed between the creating request (birth group) and
            # the mark: the netdev is ours for this port (the name is the port's): finish it
            log.info("netdev %s: adopting an unmarked netdev of ours (interrupted creation)", names.host)
            self.nl.configure(names.host, alias=self.mark(spec))
            if spec.kind == KIND_VETH and not spec.peer_netns and self.nl.link(names.peer) is not None:
                self.nl.configure(names.peer, alias=self.mark(spec, "peer"))
            link = self.nl.link(names.host) or link
        mark = parse_mark(link.alias)
        if not mark_is(mark, owner=self.owner, net=spec.network, port=spec.name):
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

    def _place_peer(self, spec: PortSpec, names: PortNames, link: Link, peer: str, mtu: int, addrs: list[str]) -> bool:
        """Make sure the veth's other end sits in spec.peer_netns as `peer` (not peer_configure:
        moved there while it is still next to the host end; gone = taken by a runtime, fine)."""
        there = self.nl.peer_link(spec.peer_netns, peer)
        changed = False
        if not spec.peer_configure:
            here = self.nl.link(names.peer)
            if (there is None or there.peer_index != link.index) and here is not None \
                    and here.peer_index == link.index:
                self.nl.move(names.peer, spec.peer_netns, peer)
                changed = True
            return changed
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

    # -- delete ------------------------------------------------------------------
    def owned(self, names: list[str], *, network: str | None = None,
              ports: set[tuple[str, str]] | None = None) -> tuple[list[int], list[str]]:
        """(indexes, names) of the netdevs among `names` that are ours: marked as a port (of
        `network`, or one of `ports`, when given), or born in our group and never marked (an
        interrupted creation under this very name). Absent ones are skipped; others are left
        alone with a warning. Read-only."""
        doomed, deleted = [], []
        for name in names:
            link = self.nl.link(name)
            if link is None:
                continue
            mark = parse_mark(link.alias)
            ok = mark_is(mark, owner=self.owner, kind="port") \
                and (network is None or mark.get("net") == network) \
                and (ports is None or (mark.get("net", ""), mark.get("port", "")) in ports)
            ok = ok or (not link.alias and link.born_ours)
            if not ok:
                log.warning("netdev %s has our name but not our mark (%r): left alone", name, link.alias)
                continue
            doomed.append(link.index)
            deleted.append(name)
        return doomed, deleted

    def marked_for(self, network: str) -> set[str]:
        """Names of this agent's netdevs (our prefix) whose mark names `network` (a link dump: not
        a hot path). Another agent sharing the namespace has another prefix: never listed."""
        return {l.name for l in self.nl.links()
                if l.name.startswith(self.prefix) and (parse_mark(l.alias) or {}).get("net") == network}

    def delete(self, indexes: list[int]) -> None:
        """Delete netdevs by index in bulk (one link-group delete). Absent ones are no error."""
        self.nl.delete_many(indexes)

    def sweep_unmarked(self, *, dry_run: bool = False, links: list | None = None) -> list[str]:
        """Netdevs with our prefix, born in our link group, never marked: a crash landed between
        creating one and marking it, outside any instance intent (the instance reconcile
        removes those by name). Removed unless dry_run; returns their names. A netdev this
        process is creating right now is left alone. `links`: a fresh dump, if the caller has one."""
        found = [l for l in (self.nl.links() if links is None else links)
                 if l.name.startswith(self.prefix) and not l.alias and l.born_ours]
        with self._unmarked_lock:
            doomed = [l for l in found if l.name not in self._being_marked]
            if not dry_run and doomed:
                self.nl.delete_many([l.index for l in doomed])
                self.metrics.orphans_total.labels(plane="network", kind="unmarked-netdev").inc(len(doomed))
        return sorted(l.name for l in doomed)

    # -- reads --------------------------------------------------------------------
    def port(self, network: str, name: str, names: PortNames) -> Port | None:
        """The port as its host netdev shows it (by its mark), or None when there is none."""
        link = self.nl.link(names.host)
        mark = parse_mark(link.alias) if link else None
        if link is None or not mark_is(mark, net=network, port=name):
            return None
        return Port(network=network, name=name, instance=mark.get("inst", ""), kind=mark.get("nic", ""),
                    node=self.node, mtu=link.mtu, host_netdev=link.name, multiqueue=link.multiqueue,
                    status=PortStatus(ready=link.up))

    def drift(self, spec: PortSpec, names: PortNames) -> list[Drift]:
        """What differs between `spec` and the port's netdevs: VETH_MISSING / TAP_MISSING,
        NETDEV_NOT_OURS, NETDEV_DOWN, MTU_DRIFT, IPV6_ENABLED, PEER_MISSING. Read-only."""
        host = names.host
        link = self.nl.link(host)
        if link is None:
            return [network_drift(host, "TAP_MISSING" if spec.kind == KIND_TAP else "VETH_MISSING", "netdev: missing")]
        out = []
        if not mark_is(parse_mark(link.alias), port=spec.name, net=spec.network):
            out.append(network_drift(host, "NETDEV_NOT_OURS", f"netdev: {host} is not ours", fix=False))
        if not link.up:
            out.append(network_drift(host, "NETDEV_DOWN", "netdev: down", "up", "down"))
        if spec.mtu and link.mtu != spec.mtu:
            out.append(network_drift(host, "MTU_DRIFT", f"netdev: mtu {link.mtu}, want {spec.mtu}", str(spec.mtu),
                                     str(link.mtu)))
        if not self.nl.ipv6_disabled(host):
            out.append(network_drift(host, "IPV6_ENABLED", "netdev: IPv6 enabled on the host side"))
        if spec.kind == KIND_VETH and spec.peer_netns and spec.peer_configure:
            peer_name = spec.peer_name or "eth0"
            peer = self.nl.peer_link(spec.peer_netns, peer_name)
            if peer is None or peer.peer_index != link.index:
                out.append(network_drift(peer_name, "PEER_MISSING", f"peer: not in netns {spec.peer_netns}",
                                         spec.peer_netns))
        return out

    def inventory(self) -> list[OwnedObject]:
        """Every netdev of ours on this node (a link dump: GC/Diff, not a hot path)."""
        out = []
        for l in self.nl.links():
            m = parse_mark(l.alias)
            if mark_is(m, owner=self.owner):
                kind = {"bridge": "bridge", "peer": "veth-peer"}.get(m.get("kind", ""), "netdev")
                out.append(OwnedObject(kind, l.name, m.get("net", ""), m.get("port", ""), m.get("inst", ""), self.node))
        return out


def network_drift(obj: str, reason: str, detail: str, desired: str = "", observed: str = "",
                  fix: bool = True) -> Drift:
    """One Drift item of the network plane."""
    return Drift("network", obj, reason, detail, desired, observed, fix)
