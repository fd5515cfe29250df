"""Netlink (pyroute2 0.9): veth pairs, taps, Linux bridges, MTU, ifalias
marks, IPv6 off, moves between namespaces, bulk deletion. No `ip` subprocess.

One long-lived rtnetlink socket per namespace we work in (the "host netns":
where ovs-vswitchd sees netdevs; by default the agent's own), guarded by a
lock (pyroute2's sync IPRoute is not thread-safe). Sockets for other
namespaces are opened by a helper thread that setns()es (no fork) and are
closed after the step.

The contract (what each call returns, absent/exists, errors) is
agent/drivers/contracts/netlink.py; kernel errnos come back through
from_oserror.
"""
from __future__ import annotations

import os
import random
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.drivers.base import Availability
from agent.drivers.contracts.netlink import NetlinkContract
from agent.drivers.netlink.link import BIRTH_GROUP, GROUP_MASK, Link, link_of
from agent.drivers.netlink.monitor import LinkEvent, LinkMonitor, raw_route_socket
from agent.drivers.netlink.nsexec import NsExec, is_host_netns, netns_path, own_netns_path
from agent.drivers.netlink.sock import Sock
from agent.errors import AgentError, FailedPrecondition, NotFound, from_oserror
from agent.metrics import Metrics

__all__ = ["BIRTH_GROUP", "GROUP_MASK", "Link", "LinkEvent", "LinkMonitor", "Netlink"]

_IFA_F_NODAD = 0x02


def _err(exc: NetlinkError, what: str) -> AgentError:
    return from_oserror(OSError(exc.code, os.strerror(exc.code)), what)


class Netlink(NetlinkContract):
    """NetlinkContract over pyroute2: its methods keep the contract documented there; their
    docstrings here say how."""

    def __init__(self, metrics: Metrics, host_netns: str = "") -> None:
        """host_netns: namespace (name under /run/netns or a path) where host-side
        netdevs live and OVS sees them; "" = the agent's own."""
        self._metrics = metrics
        self.host_netns = host_netns
        self._ns = NsExec()
        self._host: Sock | None = None
        self._open_lock = threading.Lock()
        self._bridge_vlan: bool | None = None

    # -- plumbing ----------------------------------------------------------
    def _open(self, target: str) -> IPRoute:
        if self._ns.is_home(target):
            return IPRoute(groups=0)
        if not os.path.exists(netns_path(target)):
            raise NotFound(f"network namespace {target} does not exist", reason="NETNS_NOT_FOUND",
                           metadata={"netns": target})
        return IPRoute(fileno=self._ns.netlink_socket(target).detach(), groups=0)

    def _host_sock(self) -> Sock:
        if self._host is None:
            with self._open_lock:
                if self._host is None:
                    self._host = Sock(lambda: self._open(self.host_netns))
        return self._host

    def _op(self, op: str, what: str, fn: Callable[[IPRoute], object]):
        """Run fn(ipr) on the host namespace's socket thread; errno -> AgentError."""
        sock = self._host_sock()
        with self._metrics.time(self._metrics.netlink_op, op=op):
            try:
                return sock.call(fn)
            except NetlinkError as exc:
                raise _err(exc, what) from None

    @contextmanager
    def in_netns(self, target: str) -> Iterator[IPRoute]:
        """A short-lived socket inside another namespace (an instance's), closed on exit; kernel
        errors inside the block come back translated. Raises NotFound NETNS_NOT_FOUND when the
        namespace does not exist."""
        ipr = self._open(target)
        try:
            yield ipr
        except NetlinkError as exc:
            raise _err(exc, f"in netns {target}") from None
        finally:
            ipr.close()

    def close(self) -> None:
        """Closes the host socket and the namespace helper thread (the helper on every call)."""
        if self._host is not None:
            self._host.close()
            self._host = None
        self._ns.close()

    def probe(self) -> Availability:
        """Reads link #1 on the host socket; features from /dev/net/tun and bridge_vlan_supported()."""
        try:
            self._op("probe", "probe", lambda ipr: ipr.link("get", index=1))
        except AgentError as exc:
            return Availability.missing(f"rtnetlink in netns {self.host_netns or '(agent)'}: {exc.message}")
        except Exception as exc:
            return Availability.missing(f"rtnetlink unusable: {exc}")
        feats = ["veth", "bridge"]
        if os.path.exists("/dev/net/tun"):
            feats.append("tap")
        if self.bridge_vlan_supported():
            feats.append("bridge-vlan")
        return Availability.ok(os.uname().release, feats)

    # -- reads -------------------------------------------------------------
    def link(self, name: str) -> Link | None:
        """RTM_GETLINK by name on the host socket."""
        return _none_if_absent(lambda: self._op("get", f"link {name}",
                                                lambda ipr: link_of(ipr.link("get", ifname=name)[0])))

    def link_by_index(self, index: int) -> Link | None:
        """RTM_GETLINK by ifindex on the host socket."""
        try:
            return self._op("get", f"link #{index}", lambda ipr: link_of(ipr.link("get", index=index)[0]))
        except (NotFound, FailedPrecondition):
            return None

    def links(self) -> list[Link]:
        """RTM_GETLINK dump on the host socket."""
        return self._op("dump", "link dump", lambda ipr: [link_of(m) for m in ipr.link("dump")])

    def peer_link(self, target: str, name: str) -> Link | None:
        """RTM_GETLINK by name on a short-lived socket opened inside `target`."""
        def get() -> Link:
            with self.in_netns(target) as ipr:
                return link_of(ipr.link("get", ifname=name)[0])
        return _none_if_absent(get)

    def addresses(self, target: str, name: str) -> list[str]:
        """RTM_GETADDR dump for the netdev on a short-lived socket opened inside `target`."""
        with self.in_netns(target) as ipr:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                return []
            return sorted(f"{a.get('address')}/{a['prefixlen']}" for a in ipr.addr("dump", index=idx[0]))

    def link_with_address(self, ip: str) -> Link | None:
        """One address dump, then the link by index."""
        def find(ipr) -> Link | None:
            for a in ipr.addr("dump"):
                if ip in (a.get("local"), a.get("address")):
                    return link_of(ipr.link("get", index=a["index"])[0])
            return None
        return self._op("addr_dump", f"address {ip}", find)

    # -- namespaces as paths a runtime can enter (nsexec.py) ------------------------
    def own_netns(self) -> str:
        """The agent process's network namespace as a path (nsexec.own_netns_path). Never raises."""
        return own_netns_path()

    def host_end_netns(self) -> str:
        """Where host-side netdevs live (host_netns), as a path; the agent's own when unset."""
        if not self.host_netns or self._ns.is_home(self.host_netns):
            return own_netns_path()
        return netns_path(self.host_netns)

    @staticmethod
    def is_init_netns(path: str) -> bool:
        """True when `path` is the host's network namespace (nsexec.is_host_netns). Never raises."""
        return is_host_netns(path)

    def link_monitor(self) -> LinkMonitor:
        """Link notifications of the host namespace: a new socket there (the caller closes the
        monitor). Raises NotFound NETNS_NOT_FOUND, translated OSErrors."""
        if not self._ns.is_home(self.host_netns) and not os.path.exists(netns_path(self.host_netns)):
            raise NotFound(f"network namespace {self.host_netns} does not exist", reason="NETNS_NOT_FOUND",
                           metadata={"netns": self.host_netns})
        try:
            return LinkMonitor(self._ns.run(self.host_netns, raw_route_socket))
        except OSError as exc:
            raise from_oserror(exc, "link monitor socket") from None

    # -- creation ----------------------------------------------------------
    def create_veth(self, name: str, peer: str, *, mtu: int, peer_mac: str = "",
                    peer_netns: str = "") -> None:
        """One RTM_NEWLINK (kind veth) whose peer spec carries the target namespace's fd."""
        spec = {"ifname": peer, "group": BIRTH_GROUP}
        if mtu:
            spec["mtu"] = mtu
        if peer_mac:
            spec["address"] = peer_mac
        fd = None
        if peer_netns:
            if not os.path.exists(netns_path(peer_netns)):
                raise NotFound(f"network namespace {peer_netns} does not exist", reason="NETNS_NOT_FOUND",
                               metadata={"netns": peer_netns})
            fd = os.open(netns_path(peer_netns), os.O_RDONLY | os.O_CLOEXEC)
            spec["net_ns_fd"] = fd
        try:
            kw = {"mtu": mtu} if mtu else {}
            self._op("veth_add", f"veth {name}", lambda ipr: ipr.link("add", ifname=name, kind="veth", peer=spec,
                                                                      group=BIRTH_GROUP, **kw))
        finally:
            if fd is not None:
                os.close(fd)

    def create_tap(self, name: str, *, mtu: int, multiqueue: bool = False, alias: str = "") -> None:
        """TUNSETIFF on /dev/net/tun inside the host namespace (NsExec), configure() while only our fd holds
        it, then TUNSETPERSIST."""
        if self.link(name) is not None:
            raise from_oserror(OSError(17, os.strerror(17)), f"tap {name}")
        kw: dict = {"group": BIRTH_GROUP, **({"ifalias": alias} if alias else {}), **({"mtu": mtu} if mtu else {})}

        def configure() -> None:
            self._op("set", f"tap {name}", lambda ipr: ipr.link("set", ifname=name, **kw))
        try:
            with self._metrics.time(self._metrics.netlink_op, op="tap_add"):
                self._ns.create_tap(self.host_netns, name, multiqueue=multiqueue, configure=configure)
        except OSError as exc:
            raise from_oserror(exc, f"tap {name} (/dev/net/tun)") from None

    def create_bridge(self, name: str, *, mtu: int = 0, vlan_filtering: bool = False) -> None:
        """One RTM_NEWLINK (kind bridge, br_vlan_filtering when asked)."""
        kw: dict = {"group": BIRTH_GROUP, **({"mtu": mtu} if mtu else {})}
        if vlan_filtering:
            if not self.bridge_vlan_supported():
                raise FailedPrecondition("this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)",
                                         reason="NO_BRIDGE_VLAN")
            kw["br_vlan_filtering"] = 1
        self._op("bridge_add", f"bridge {name}", lambda ipr: ipr.link("add", ifname=name, kind="bridge", **kw))

    def bridge_vlan_supported(self) -> bool:
        """Creates and deletes a throwaway bridge with br_vlan_filtering=1 once; cached."""
        if self._bridge_vlan is None:
            probe_name = f"dcvlp{os.getpid() % 100000}"
            try:
                def probe(ipr) -> None:
                    ipr.link("add", ifname=probe_name, kind="bridge", br_vlan_filtering=1)
                    ipr.link("del", ifname=probe_name)
                self._op("probe", "bridge vlan probe", probe)
                self._bridge_vlan = True
            except AgentError:
                self._bridge_vlan = False
        return self._bridge_vlan

    # -- changes -----------------------------------------------------------
    def configure(self, name: str, *, alias: str | None = None, mtu: int | None = None, up: bool | None = None,
                  master: int | None = None, group: int | None = None, mac: str | None = None) -> None:
        """One RTM_NEWLINK set request with the given attributes."""
        kw: dict = {}
        if alias is not None:
            kw["ifalias"] = alias
        if mtu:
            kw["mtu"] = mtu
        if up is not None:
            kw["state"] = "up" if up else "down"
        if master is not None:
            kw["master"] = master
        if group is not None:
            kw["group"] = group
        if mac:
            kw["address"] = mac
        if kw:
            self._op("set", f"link {name}", lambda ipr: ipr.link("set", ifname=name, **kw))

    def move(self, name: str, target: str, new_name: str = "") -> None:
        """One RTM_NEWLINK set with IFLA_NET_NS_FD (and IFLA_IFNAME when renamed)."""
        if not os.path.exists(netns_path(target)):
            raise NotFound(f"network namespace {target} does not exist", reason="NETNS_NOT_FOUND",
                           metadata={"netns": target})
        fd = os.open(netns_path(target), os.O_RDONLY | os.O_CLOEXEC)
        try:
            kw = {"ifname": new_name} if new_name and new_name != name else {}

            def move(ipr) -> None:
                idx = ipr.link_lookup(ifname=name)
                if not idx:
                    raise NotFound(f"netdev {name} does not exist", reason="NOT_FOUND")
                ipr.link("set", index=idx[0], net_ns_fd=fd, **kw)
            self._op("move", f"move {name} to netns {target}", move)
        finally:
            os.close(fd)

    def disable_ipv6(self, name: str) -> None:
        """Writes /proc/sys/net/ipv6/conf/<name>/disable_ipv6 inside the host namespace (NsExec)."""
        try:
            with self._metrics.time(self._metrics.netlink_op, op="sysctl"):
                self._ns.write_sysctl(self.host_netns, f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "1")
        except FileNotFoundError:
            if os.path.exists("/proc/sys/net/ipv6"):
                raise NotFound(f"netdev {name} does not exist", reason="NOT_FOUND") from None
        except OSError as exc:
            raise from_oserror(exc, f"disable IPv6 on {name}") from None

    def ipv6_disabled(self, name: str) -> bool:
        """Reads /proc/sys/net/ipv6/conf/<name>/disable_ipv6 inside the host namespace (NsExec)."""
        try:
            return self._ns.read_sysctl(self.host_netns, f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6") == "1"
        except OSError:
            return False

    def bridge_port_vlan(self, port: int, vid: int) -> None:
        """RTM_SETLINK bridge VLAN filter add (pvid untagged), then del of VLAN 1."""
        def vlan(ipr) -> None:
            ipr.vlan_filter("add", index=port, vlan_info={"vid": vid, "flags": ["pvid", "untagged"]})
            if vid != 1:
                try:
                    ipr.vlan_filter("del", index=port, vlan_info={"vid": 1})
                except NetlinkError:
                    pass
        self._op("vlan", f"vlan {vid} on #{port}", vlan)

    def configure_peer(self, target: str, name: str, *, addresses: list[str], mtu: int = 0,
                       fresh: bool = False) -> bool:
        """On a short-lived socket inside `target`: reads addresses and state unless fresh, then adds what is
        missing (IPv6 without DAD) and sets the link and lo up."""
        with self._metrics.time(self._metrics.netlink_op, op="peer_config"), self.in_netns(target) as ipr:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                raise NotFound(f"{name} does not exist in netns {target}", reason="NOT_FOUND")
            if fresh:
                have, changed = set(), True
            else:
                have = {f"{a.get('address')}/{a['prefixlen']}" for a in ipr.addr("dump", index=idx[0])}
                link = link_of(ipr.link("get", index=idx[0])[0])
                changed = not link.up or bool(mtu and link.mtu != mtu)
            for addr in addresses:
                if addr not in have:
                    changed = True
                    ip, _, plen = addr.partition("/")
                    # IPv6: no duplicate address detection (OVN hands out unique addresses; DAD
                    # would hold the address tentative for a second or more)
                    kw = {"flags": _IFA_F_NODAD} if ":" in ip else {}
                    try:
                        ipr.addr("add", index=idx[0], address=ip, prefixlen=int(plen), **kw)
                    except NetlinkError as exc:
                        if exc.code != 17:
                            raise
            if changed:
                kw = {"mtu": mtu} if mtu else {}
                ipr.link("set", index=idx[0], state="up", **kw)
                lo = ipr.link_lookup(ifname="lo")
                if lo:
                    ipr.link("set", index=lo[0], state="up")
            return changed

    # -- deletion ----------------------------------------------------------
    def delete(self, name: str) -> bool:
        """RTM_DELLINK by name on the host socket."""
        try:
            self._op("del", f"link {name}", lambda ipr: ipr.link("del", ifname=name))
            return True
        except (NotFound, FailedPrecondition) as exc:
            if isinstance(exc, NotFound) or exc.metadata.get("errno") == "ENODEV":
                return False
            raise

    def delete_many(self, indexes: list[int]) -> int:
        """Moves the netdevs into a fresh link group (BIRTH_GROUP + random) and deletes the group in one
        RTM_DELLINK; one netdev goes by delete()."""
        if not indexes:
            return 0
        if len(indexes) == 1:
            link = self.link_by_index(indexes[0])
            return int(bool(link and self.delete(link.name)))
        group = BIRTH_GROUP + random.randrange(1, 0xFFFF)        # still recognisably ours after a crash
        def regroup(ipr) -> int:
            moved = 0
            for idx in indexes:
                try:
                    ipr.link("set", index=idx, group=group)
                    moved += 1
                except NetlinkError as exc:
                    if exc.code not in (19, 2):      # vanished meanwhile: fine
                        raise
            return moved
        moved = self._op("set_group", "group move", regroup)
        if moved:
            self._op("del_group", f"group {group}", lambda ipr: ipr.link("del", group=group))
        return moved


def _none_if_absent(read: Callable[[], Link]) -> Link | None:
    """read(), or None when the netdev does not exist (NotFound, or ENODEV from the kernel)."""
    try:
        return read()
    except NotFound:
        return None
    except FailedPrecondition as exc:
        if exc.metadata.get("errno") == "ENODEV":
            return None
        raise
