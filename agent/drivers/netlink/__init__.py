"""Netlink (pyroute2 0.9): veth pairs, taps, Linux bridges, MTU, ifalias
marks, IPv6 off, moves between namespaces, bulk deletion. No `ip` subprocess.

One long-lived rtnetlink socket per namespace we work in (the "host netns":
where ovs-vswitchd sees netdevs; by default the agent's own), guarded by a
lock (pyroute2's sync IPRoute is not thread-safe). Sockets for other
namespaces are opened by a helper thread that setns()es (no fork) and are
closed after the step.

Netdev names are validated by the caller (validation.netdev). The driver
does not decide ownership; it reports the ifalias so the service can.
Errors: kernel errno -> the agent's hierarchy via from_oserror (EEXIST ->
AlreadyExists ALREADY_EXISTS, ENOENT -> NotFound NOT_FOUND, ENODEV ->
FailedPrecondition NO_DEVICE, EPERM -> FailedPrecondition PERMISSION, EINVAL
-> InvalidArgument KERNEL_EINVAL...); a namespace that does not exist ->
NotFound NETNS_NOT_FOUND.
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


class Netlink:
    """rtnetlink operations in the plane's host namespace (and instance namespaces)."""

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
    def _open(self, target: str | None) -> IPRoute:
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
        """Close sockets and the helper thread. Idempotent for the host socket; the namespace
        helper is closed on every call (after close() the object is not used again). Never raises."""
        if self._host is not None:
            self._host.close()
            self._host = None
        self._ns.close()

    def probe(self) -> Availability:
        """rtnetlink usable in the host namespace; features list veth, bridge, tap (/dev/net/tun)
        and bridge-vlan support. Read-only apart from the one-time VLAN probe bridge (created and
        deleted at once); never raises: a missing namespace or a refused socket -> missing."""
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
        """The host-namespace netdev named `name`, or None when it (or the host namespace) is absent.
        Read-only. Other kernel errors come back translated (e.g. FailedPrecondition PERMISSION)."""
        return _none_if_absent(lambda: self._op("get", f"link {name}",
                                                lambda ipr: link_of(ipr.link("get", ifname=name)[0])))

    def link_by_index(self, index: int) -> Link | None:
        """The host-namespace netdev with ifindex `index`, or None when absent (also when the
        kernel refuses the read: any FailedPrecondition). Read-only."""
        try:
            return self._op("get", f"link #{index}", lambda ipr: link_of(ipr.link("get", index=index)[0]))
        except (NotFound, FailedPrecondition):
            return None

    def links(self) -> list[Link]:
        """Every netdev of the host namespace (a full dump: startup/GC only). Read-only. Raises
        NotFound NETNS_NOT_FOUND (no host namespace) and translated kernel errors."""
        return self._op("dump", "link dump", lambda ipr: [link_of(m) for m in ipr.link("dump")])

    def peer_link(self, target: str, name: str) -> Link | None:
        """A netdev inside namespace `target` (e.g. the instance's end of a veth); None when the
        netdev or the namespace is absent. Read-only; other kernel errors come back translated."""
        def get() -> Link:
            with self.in_netns(target) as ipr:
                return link_of(ipr.link("get", ifname=name)[0])
        return _none_if_absent(get)

    def addresses(self, target: str, name: str) -> list[str]:
        """Addresses ("ip/prefixlen", sorted) of a netdev inside namespace `target`; [] when the
        netdev is absent. Read-only. Raises NotFound NETNS_NOT_FOUND, translated kernel errors."""
        with self.in_netns(target) as ipr:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                return []
            return sorted(f"{a.get('address')}/{a['prefixlen']}" for a in ipr.addr("dump", index=idx[0]))

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
        """Create a veth pair, host end `name` (down, in the host namespace), the
        other end `peer` with `peer_mac`, directly inside `peer_netns` when given
        (else next to the host end); both ends are born in BIRTH_GROUP.

        Not idempotent: a name already taken -> AlreadyExists ALREADY_EXISTS (nothing
        is created). Raises NotFound NETNS_NOT_FOUND when peer_netns is missing (or the
        host namespace), translated kernel errors (e.g. InvalidArgument KERNEL_EINVAL
        for a bad MAC or MTU)."""
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
        """Create a persistent tap in the host namespace (via /dev/net/tun ioctl, run
        inside that namespace), with BIRTH_GROUP, `alias` and `mtu` set BEFORE it is made
        persistent: until then it lives only as long as our file descriptor, so a crash
        cannot leave an unmarked tap behind.

        Not idempotent: a netdev of that name already exists -> AlreadyExists
        ALREADY_EXISTS (it is not touched). No usable /dev/net/tun -> the translated
        OSError (NotFound NOT_FOUND, FailedPrecondition PERMISSION / NO_DEVICE);
        NotFound NETNS_NOT_FOUND; a failed configure step removes the tap again."""
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
        """Create a Linux bridge in the host namespace, born in BIRTH_GROUP.

        Not idempotent: the name taken -> AlreadyExists ALREADY_EXISTS. Raises
        FailedPrecondition NO_BRIDGE_VLAN when VLAN filtering is asked and the kernel
        lacks it, NotFound NETNS_NOT_FOUND, translated kernel errors."""
        kw: dict = {"group": BIRTH_GROUP, **({"mtu": mtu} if mtu else {})}
        if vlan_filtering:
            if not self.bridge_vlan_supported():
                raise FailedPrecondition("this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)",
                                         reason="NO_BRIDGE_VLAN")
            kw["br_vlan_filtering"] = 1
        self._op("bridge_add", f"bridge {name}", lambda ipr: ipr.link("add", ifname=name, kind="bridge", **kw))

    def bridge_vlan_supported(self) -> bool:
        """Whether bridges can filter VLANs here (probed once with a throwaway bridge that is
        deleted again, then cached). Never raises: any failure of the probe -> False."""
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
        """Set attributes of a host-namespace netdev in one request (only those given; mtu=0 and
        mac="" count as not given). Idempotent: values already set are set again, harmlessly;
        nothing given -> no request. An absent netdev -> FailedPrecondition NO_DEVICE (ENODEV)
        or NotFound; other kernel errors translated (InvalidArgument KERNEL_EINVAL...)."""
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
        """Move a host-namespace netdev into namespace `target`, renamed to
        `new_name` when given, in one request.

        Not idempotent: once moved, the netdev is no longer in the host namespace ->
        NotFound NOT_FOUND. Raises NotFound NETNS_NOT_FOUND (no such namespace),
        AlreadyExists ALREADY_EXISTS (the name is taken there), translated kernel errors."""
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
        """IPv6 off on a host-namespace netdev: disable_ipv6=1 (no link-local, no
        ND from the host side). Idempotent. A kernel without IPv6 -> nothing to do.
        Raises NotFound NOT_FOUND when the netdev is gone, other translated OSErrors
        (e.g. FailedPrecondition PERMISSION)."""
        try:
            with self._metrics.time(self._metrics.netlink_op, op="sysctl"):
                self._ns.write_sysctl(self.host_netns, f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "1")
        except FileNotFoundError:
            if os.path.exists("/proc/sys/net/ipv6"):
                raise NotFound(f"netdev {name} does not exist", reason="NOT_FOUND") from None
        except OSError as exc:
            raise from_oserror(exc, f"disable IPv6 on {name}") from None

    def ipv6_disabled(self, name: str) -> bool:
        """True when disable_ipv6 is 1 on a host-namespace netdev; False when 0, when the
        netdev is absent or the kernel has no IPv6. Read-only; never raises an OSError."""
        try:
            return self._ns.read_sysctl(self.host_netns, f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6") == "1"
        except OSError:
            return False

    def bridge_port_vlan(self, port: int, vid: int) -> None:
        """Make `vid` the untagged PVID of bridge port ifindex `port` (and drop VLAN 1, absent
        already is fine). Idempotent. An absent port or a bridge without VLAN filtering -> the
        translated kernel error (FailedPrecondition NO_DEVICE / NOT_SUPPORTED, InvalidArgument)."""
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
        """Inside namespace `target`: set `name` up with `addresses` ("ip/prefix";
        existing ones kept), `mtu` when given, and lo up. fresh=True (just created
        by us) skips reading the current state.

        Idempotent: all already so -> returns False, no write; an address already
        there is fine. Raises NotFound NOT_FOUND (no such netdev there), NotFound
        NETNS_NOT_FOUND, translated kernel errors (InvalidArgument KERNEL_EINVAL...)."""
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
        """Delete one host-namespace netdev (a veth takes its peer along). The caller decides
        ownership first. Idempotent: absent -> False, no error; True when deleted. Raises
        translated kernel errors (FailedPrecondition PERMISSION...), NotFound NETNS_NOT_FOUND
        is reported as absent."""
        try:
            self._op("del", f"link {name}", lambda ipr: ipr.link("del", ifname=name))
            return True
        except (NotFound, FailedPrecondition) as exc:
            if isinstance(exc, NotFound) or exc.metadata.get("errno") == "ENODEV":
                return False
            raise

    def delete_many(self, indexes: list[int]) -> int:
        """Delete many host-namespace netdevs at once: move them into a fresh link
        group, then delete the group in one request (one RTNL/RCU round instead of
        ~17 ms per veth). The caller has checked they are ours. Returns how many were
        deleted.

        Idempotent: netdevs already gone are skipped (not counted); [] -> 0. Raises
        translated kernel errors; after a crash in between, the temporary group is
        still in the agent's range, so the netdevs stay recognisably ours."""
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
