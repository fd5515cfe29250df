"""The netlink driver's contract: netdevs in the plane's host namespace (and instance namespaces)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agent.drivers.base import Availability

if TYPE_CHECKING:           # the netlink package imports this module: Link for annotations only
    from agent.drivers.netlink.link import Link
    from agent.drivers.netlink.monitor import LinkMonitor


class NetlinkContract(Protocol):
    """rtnetlink operations: veth pairs, taps, Linux bridges, MTU, ifalias marks, IPv6 off,
    moves between namespaces, bulk deletion.

    The "host namespace" is where host-side netdevs live and OVS sees them. Netdev names are
    validated by the caller (validation.netdev); ownership is the caller's decision: the
    driver reports the ifalias and link group (Link) and creates every netdev in BIRTH_GROUP.
    Kernel errors come back as agent.errors via from_oserror: EEXIST -> AlreadyExists
    ALREADY_EXISTS, ENOENT -> NotFound NOT_FOUND, ENODEV -> FailedPrecondition NO_DEVICE,
    EPERM -> FailedPrecondition PERMISSION, EINVAL -> InvalidArgument KERNEL_EINVAL...; a
    namespace that does not exist -> NotFound NETNS_NOT_FOUND."""

    def probe(self) -> Availability:
        """rtnetlink usable in the host namespace; features list veth, bridge, tap (/dev/net/tun)
        and bridge-vlan support. Read-only apart from the one-time VLAN probe bridge (created and
        deleted at once); never raises: a missing namespace or a refused socket -> missing."""

    def own_netns(self) -> str:
        """The agent process's network namespace as a path a runtime can enter (/proc/1/ns/net
        when it is the host's). Never raises."""

    def host_end_netns(self) -> str:
        """Where host-side netdevs live, as a path a runtime can enter. Never raises."""

    def is_init_netns(self, path: str) -> bool:
        """True when `path` is the host's network namespace. Never raises."""

    def link_monitor(self) -> LinkMonitor:
        """Link notifications of the host namespace (a new socket there; the caller closes the
        monitor). Raises NotFound NETNS_NOT_FOUND, translated OSErrors."""

    def close(self) -> None:
        """Close sockets and helpers. Idempotent for the host socket (after close() the object
        is not used again). Never raises."""

    # -- reads -------------------------------------------------------------
    def link(self, name: str) -> Link | None:
        """The host-namespace netdev named `name`, or None when it (or the host namespace) is absent.
        Read-only. Other kernel errors come back translated (e.g. FailedPrecondition PERMISSION)."""

    def link_by_index(self, index: int) -> Link | None:
        """The host-namespace netdev with ifindex `index`, or None when absent (also when the
        kernel refuses the read: any FailedPrecondition). Read-only."""

    def links(self) -> list[Link]:
        """Every netdev of the host namespace (a full dump: startup/GC only). Read-only. Raises
        NotFound NETNS_NOT_FOUND (no host namespace) and translated kernel errors."""

    def peer_link(self, target: str, name: str) -> Link | None:
        """A netdev inside namespace `target` (e.g. the instance's end of a veth); None when the
        netdev or the namespace is absent. Read-only; other kernel errors come back translated."""

    def addresses(self, target: str, name: str) -> list[str]:
        """Addresses ("ip/prefixlen", sorted) of a netdev inside namespace `target`; [] when the
        netdev is absent. Read-only. Raises NotFound NETNS_NOT_FOUND, translated kernel errors."""

    def link_with_address(self, ip: str) -> Link | None:
        """The host-namespace netdev holding address `ip` (e.g. the tunnel endpoint), None when
        no netdev has it. Read-only (one address dump). Raises translated kernel errors."""

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

    def create_tap(self, name: str, *, mtu: int, multiqueue: bool = False, alias: str = "") -> None:
        """Create a persistent tap in the host namespace with BIRTH_GROUP, `alias` and `mtu` set
        BEFORE it is made persistent: until then it lives only as long as the creating file
        descriptor, so a crash cannot leave an unmarked tap behind.

        Not idempotent: a netdev of that name already exists -> AlreadyExists
        ALREADY_EXISTS (it is not touched). No usable /dev/net/tun -> the translated
        OSError (NotFound NOT_FOUND, FailedPrecondition PERMISSION / NO_DEVICE);
        NotFound NETNS_NOT_FOUND; a failed configure step removes the tap again."""

    def create_bridge(self, name: str, *, mtu: int = 0, vlan_filtering: bool = False) -> None:
        """Create a Linux bridge in the host namespace, born in BIRTH_GROUP.

        Not idempotent: the name taken -> AlreadyExists ALREADY_EXISTS. Raises
        FailedPrecondition NO_BRIDGE_VLAN when VLAN filtering is asked and the kernel
        lacks it, NotFound NETNS_NOT_FOUND, translated kernel errors."""

    def bridge_vlan_supported(self) -> bool:
        """Whether bridges can filter VLANs here (measured once, then cached). Never raises: a
        failed measurement -> False."""

    # -- changes -----------------------------------------------------------
    def configure(self, name: str, *, alias: str | None = None, mtu: int | None = None, up: bool | None = None,
                  master: int | None = None, group: int | None = None, mac: str | None = None) -> None:
        """Set attributes of a host-namespace netdev in one request (only those given; mtu=0 and
        mac="" count as not given). Idempotent: values already set are set again, harmlessly;
        nothing given -> no request. An absent netdev -> FailedPrecondition NO_DEVICE (ENODEV)
        or NotFound; other kernel errors translated (InvalidArgument KERNEL_EINVAL...)."""

    def move(self, name: str, target: str, new_name: str = "") -> None:
        """Move a host-namespace netdev into namespace `target`, renamed to
        `new_name` when given, in one request.

        Not idempotent: once moved, the netdev is no longer in the host namespace ->
        NotFound NOT_FOUND. Raises NotFound NETNS_NOT_FOUND (no such namespace),
        AlreadyExists ALREADY_EXISTS (the name is taken there), translated kernel errors."""

    def disable_ipv6(self, name: str) -> None:
        """IPv6 off on a host-namespace netdev: disable_ipv6=1 (no link-local, no
        ND from the host side). Idempotent. A kernel without IPv6 -> nothing to do.
        Raises NotFound NOT_FOUND when the netdev is gone, other translated OSErrors
        (e.g. FailedPrecondition PERMISSION)."""

    def ipv6_disabled(self, name: str) -> bool:
        """True when disable_ipv6 is 1 on a host-namespace netdev; False when 0, when the
        netdev is absent or the kernel has no IPv6. Read-only; never raises an OSError."""

    def bridge_port_vlan(self, port: int, vid: int) -> None:
        """Make `vid` the untagged PVID of bridge port ifindex `port` (and drop VLAN 1, absent
        already is fine). Idempotent. An absent port or a bridge without VLAN filtering -> the
        translated kernel error (FailedPrecondition NO_DEVICE / NOT_SUPPORTED, InvalidArgument)."""

    def configure_peer(self, target: str, name: str, *, addresses: list[str], mtu: int = 0,
                       fresh: bool = False) -> bool:
        """Inside namespace `target`: set `name` up with `addresses` ("ip/prefix";
        existing ones kept), `mtu` when given, and lo up. fresh=True (just created
        by us) skips reading the current state.

        Idempotent: all already so -> returns False, no write; an address already
        there is fine. Raises NotFound NOT_FOUND (no such netdev there), NotFound
        NETNS_NOT_FOUND, translated kernel errors (InvalidArgument KERNEL_EINVAL...)."""

    # -- deletion ----------------------------------------------------------
    def delete(self, name: str) -> bool:
        """Delete one host-namespace netdev (a veth takes its peer along). The caller decides
        ownership first. Idempotent: absent -> False, no error; True when deleted. Raises
        translated kernel errors (FailedPrecondition PERMISSION...), NotFound NETNS_NOT_FOUND
        is reported as absent."""

    def delete_many(self, indexes: list[int]) -> int:
        """Delete many host-namespace netdevs (by ifindex) at once, in one kernel round instead
        of ~17 ms per veth. The caller has checked they are ours. Returns how many were deleted.

        Idempotent: netdevs already gone are skipped (not counted); [] -> 0. Raises
        translated kernel errors; a crash in the middle leaves the netdevs recognisably
        ours (still in the agent's link group range)."""
