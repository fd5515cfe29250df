"""The OVSDB drivers' contracts: OVN Northbound (team networks, logical ports, egress
gateways), OVN Southbound (read-only: the cluster's chassis and bindings) and the local
Open_vSwitch database (chassis settings, port bindings).

Both read from a local replica of the tables (no round trip) and write in ONE transaction per
call. A row is ours when its external_ids carry OWNER_KEY = our owner; a row with our name but
without our mark is never modified (FailedPrecondition NOT_OURS). Every method that reads or
writes can raise Unavailable OVSDB_UNAVAILABLE: the database down, slow or reconnecting past the
deadline (retryable). `deadline` is a time.monotonic() value; None = the driver's own timeout.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agent.drivers.base import Availability
from agent.drivers.ovsdb.client import Listener
from agent.drivers.ovsdb.nb_types import EgressObserved, NetworkRows, PortRow

if TYPE_CHECKING:           # vswitch.py / sb.py import this module: their value types for annotations only
    from agent.drivers.ovsdb.sb import ChassisRow
    from agent.drivers.ovsdb.vswitch import ChassisInfo, InterfaceInfo, TunnelInfo

IFACE_ID = "iface-id"       # OVN's Interface external_ids key naming the logical port it binds to


class OvsdbConnectionContract(Protocol):
    """One persistent, lazily connected database connection; reconnects on its own."""

    def probe(self) -> Availability:
        """Connected to the database (tries to connect once, briefly), with its schema version.
        Never raises: unreachable or reconnecting -> missing with the reason."""

    def close(self) -> None:
        """Close the connection. Idempotent; never raises."""

    @property
    def connected(self) -> bool:
        """True while the session is up and the replica is in sync. Never waits, never raises."""

    @property
    def remote(self) -> str:
        """The configured remote(s): one, or every cluster member comma-separated. Pure."""

    @property
    def server(self) -> str:
        """The remote (cluster member) the session uses now ("" before connecting). Never raises."""

    def add_listener(self, fn: Listener) -> None:
        """Call fn(event, table, row) on the connection's thread for every row change (event
        create | update | delete; the row is the replica's, read-only), and fn("resync", "", ...)
        after a reconnect re-downloaded the tables; fn must be quick, its exceptions are logged,
        never raised. Not idempotent: fn added twice is called twice."""

    def remove_listener(self, fn: Listener) -> None:
        """Stop calling fn. Idempotent: a listener that is not registered is no error."""


class OvnNbContract(OvsdbConnectionContract, Protocol):
    """OVN Northbound: the rows of team networks (switch, DHCP options, port group, ACLs) and
    their logical switch ports. NB is shared by every node's agent: two agents ensuring the
    same network converge (the loser of a unique-index conflict re-reads and finds the winner's
    rows)."""

    # -- writes ------------------------------------------------------------
    def ensure_network(self, desired: NetworkRows, deadline: float | None = None) -> bool:
        """Make the switch, DHCP options, port group, ACLs and the egress gateway rows (router,
        its ports, SNAT, default route, uplink switch with its localnet port, HA chassis group;
        removed when desired.egress is None) match `desired` in one transaction. Returns changed.
        Gateway chassis are only added to an existing group (below the others), never removed.

        Idempotent: rows already matching -> False, nothing written. Absent rows
        are created; existing ones of ours are updated (mutable marks, DHCP
        options, ACLs replaced by key). A concurrent creator on another node:
        re-read and converge (bounded retries, then Aborted OVSDB_CONFLICT).
        Raises FailedPrecondition NOT_OURS (a same-named switch or port group is
        not ours), AlreadyExists IMMUTABLE_FIELD (an immutable mark differs),
        Unavailable OVSDB_UNAVAILABLE."""

    def delete_network(self, switch: str, port_group: str, network: str, deadline: float | None = None,
                       only_node: str | None = None) -> list[str]:
        """Delete the switch (with all its ports), port group, ACLs, DHCP rows and the
        network's gateway rows in one transaction. Returns the deleted port names.

        Idempotent: absent -> no-op, []. Raises FailedPrecondition NOT_OURS when
        the same-named switch or port group is not ours, or the switch has ports
        that are not ours; PORTS_ON_OTHER_NODES (naming them, with counts) when
        only_node is given and a port of ours belongs to another node (the server
        re-checks the port list at commit: nothing is deleted then), Unavailable
        OVSDB_UNAVAILABLE."""

    def ensure_ports(self, desired: list[PortRow], deadline: float | None = None) -> list[tuple[bool, str, list[str]]]:
        """Create or reconcile logical switch ports in ONE transaction; addresses not
        given are allocated from the subnet, never twice (the switch's port list
        is verified, so concurrent writers retry). Returns (changed, mac, ips)
        per port, in order.

        Idempotent: a port of ours already matching -> changed=False with its
        addresses; drift in its addresses, port security, marks, DHCP, port group or
        requested-chassis (PortRow.chassis: the only chassis that may bind it, set in
        the creating transaction) is put back. A write whose reply was lost (a cluster
        member died) and that is sent again re-runs on the refreshed rows: it finds its
        port. All or none: one failing port aborts the transaction. Raises
        NotFound NETWORK_NOT_FOUND (no switch of ours) / NETWORK_INCOMPLETE (port
        group missing), AlreadyExists ADDRESS_IN_USE / MAC_IN_USE / IMMUTABLE_FIELD
        / PORT_ON_OTHER_SWITCH, ResourceExhausted SUBNET_EXHAUSTED,
        FailedPrecondition NOT_OURS (same name, not ours) / NO_MAC, Unavailable
        OVSDB_UNAVAILABLE, Aborted OVSDB_CONFLICT."""

    def delete_ports(self, names: list[str], deadline: float | None = None) -> list[str]:
        """Delete our logical switch ports in one transaction; absent names are
        skipped (idempotent). Returns deleted names. Raises FailedPrecondition
        NOT_OURS when one is not ours (nothing is deleted then), Unavailable
        OVSDB_UNAVAILABLE."""

    def gateway_membership(self, chassis: str, gateway: bool, deadline: float | None = None) -> list[str]:
        """Add chassis `chassis` to every HA chassis group of ours (below the lowest priority
        there) or remove it from all of them, in one transaction. Returns the names of the
        groups changed. Idempotent ([] when nothing to do). Raises Unavailable."""

    # -- cached reads ------------------------------------------------------
    def network(self, switch: str, deadline: float | None = None) -> NetworkRows | None:
        """Observed rows of one network from the cache; None when the switch is absent.
        Read-only. Raises FailedPrecondition NOT_OURS when the switch is not ours,
        Unavailable OVSDB_UNAVAILABLE."""

    def foreign_ports(self, switch: str, deadline: float | None = None) -> list[str]:
        """Names of the switch's logical ports without our mark ([] when the switch is absent).
        Read-only. Raises FailedPrecondition NOT_OURS when the switch is not ours, Unavailable."""

    def switch_marks(self, switch: str, deadline: float | None = None) -> dict[str, str] | None:
        """external_ids of one of our switches (cheap: no port or ACL reads), None when absent.
        Read-only. Raises FailedPrecondition NOT_OURS when the switch is not ours, Unavailable."""

    def networks(self, deadline: float | None = None) -> list[NetworkRows]:
        """Every switch of ours (kind network), by name (cache scan; for List and GC); [] when
        none. Rows that are not ours are skipped. Read-only. Raises Unavailable."""

    def egress(self, router: str, deadline: float | None = None) -> EgressObserved | None:
        """The gateway rows of ours named `router` (its HA chassis, highest priority first) from
        the cache; None when absent. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""

    def port(self, name: str, deadline: float | None = None) -> PortRow | None:
        """Observed LSP from the cache (None when absent, or not ours: never an error). Read-only.
        Raises Unavailable OVSDB_UNAVAILABLE."""

    def ports(self, *, node: str | None = None, network: str | None = None,
              deadline: float | None = None) -> list[PortRow]:
        """Our LSPs, optionally only those of one node and/or network, by name (cache scan); []
        when none. Rows that are not ours are skipped. Read-only. Raises Unavailable."""

    def port_marks(self, *, network: str, node: str, deadline: float | None = None) -> list[dict[str, str]]:
        """external_ids of our LSPs of one network bound to one node (one read per row); [] when
        none. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""

    def port_up(self, name: str) -> bool | None:
        """NB up of an LSP from the cache without waiting (None when absent or not connected:
        never waits, never raises). Ownership is not checked (a read of one column)."""


class OvsDbContract(OvsdbConnectionContract, Protocol):
    """The local Open_vSwitch database: chassis settings, the integration bridge and the OVS
    ports binding our netdevs to OVN logical ports (external_ids iface-id). Before binding a
    port, any OTHER interface of ours claiming the same iface-id is removed in the same
    transaction; an interface that is not ours and claims it is never touched."""

    def ensure_chassis(self, settings: dict[str, str], bridge: str, datapath_type: str = "",
                       deadline: float | None = None, *, remove: dict[str, str] | None = None,
                       provider_bridges: tuple[str, ...] = ()) -> bool:
        """Set Open_vSwitch external_ids `settings`, delete the keys of `remove` that hold the
        given value (only on a root of ours), and create `bridge` (secure fail mode) and each
        provider bridge (standalone) when absent (our mark, `datapath_type`), in one
        transaction. Returns changed.

        Idempotent: all set and the bridges there -> False, nothing written. Raises
        FailedPrecondition NOT_OURS when a key already holds another value set by
        someone else, or the bridge is not ours and has another datapath type;
        OVS_NOT_INITIALISED (no Open_vSwitch row); Unavailable OVSDB_UNAVAILABLE."""

    def chassis(self, bridge: str, deadline: float | None = None) -> ChassisInfo:
        """Observed chassis settings from the cache (bridge_exists False when the bridge is absent).
        Read-only. Raises FailedPrecondition OVS_NOT_INITIALISED, Unavailable OVSDB_UNAVAILABLE."""

    def system_id(self, deadline: float | None = None) -> str:
        """This node's OVN chassis name (external_ids:system-id) from the cache; "" when unset
        or the database is not initialised. Read-only. Raises Unavailable."""

    def tunnels(self, deadline: float | None = None) -> list[TunnelInfo]:
        """Every tunnel interface (geneve/vxlan/stt) with its remote IP and BFD state, by name
        (cache scan); [] when none. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""

    def bridge_ports(self, bridge: str, deadline: float | None = None) -> list[str] | None:
        """Names of the ports of `bridge` other than its own internal port, sorted; None when
        the bridge is absent. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""

    def bind(self, bridge: str, name: str, external_ids: dict[str, str], *, iface_type: str = "",
             deadline: float | None = None) -> tuple[bool, list[str]]:
        """Attach netdev `name` to `bridge` with `external_ids` (must hold IFACE_ID; our
        owner mark is added), removing other interfaces of ours claiming the same
        iface-id, in one transaction. Returns (changed, removed names).

        Idempotent: a port of ours already so -> (False, []); our stale keys are
        removed, ovn-controller's keys (ovn-installed) are kept. Raises
        FailedPrecondition IFACE_ID_CLAIMED (another owner's interface claims the
        iface-id), NOT_OURS (the port exists and is not ours), WRONG_BRIDGE,
        NO_INTEGRATION_BRIDGE (the bridge is missing); Unavailable OVSDB_UNAVAILABLE."""

    def unbind(self, names: list[str], deadline: float | None = None, *, wait_vswitchd: bool = False) -> list[str]:
        """Remove our OVS ports named `names` in one transaction; returns the removed names.
        Idempotent: absent ones are skipped; [] -> [] without a round trip. With
        wait_vswitchd, then waits (bounded: the deadline, at most 5 s; never an error) until
        ovs-vswitchd applied it (cur_cfg, as `ovs-vsctl --wait=vswitchd`): it closes the removed
        netdevs, restoring their flags BY NAME, so a netdev made again under that name after it
        would be set down. Raises FailedPrecondition NOT_OURS when one is not ours (nothing
        removed), Unavailable."""

    def interface(self, name: str, deadline: float | None = None) -> InterfaceInfo | None:
        """An interface from the cache, ours or not (`ours` says); None when absent. Read-only.
        Raises Unavailable OVSDB_UNAVAILABLE."""

    def interface_cached(self, name: str) -> InterfaceInfo | None:
        """Like interface() but never waits: None when absent or disconnected. Read-only."""

    def interface_names(self, key: str, value: str, deadline: float | None = None) -> list[str]:
        """Names of our interfaces whose external_ids[key] == value, sorted (one read per row); []
        when none. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""

    def interfaces(self, deadline: float | None = None) -> list[InterfaceInfo]:
        """Every interface of ours, by name (cache scan, for reconcile and GC); [] when none.
        Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""

    def require_bridge(self, bridge: str, deadline: float | None = None) -> None:
        """Return when `bridge` exists (ours or not); else raise NotFound NO_INTEGRATION_BRIDGE.
        Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""


class OvnSbContract(OvsdbConnectionContract, Protocol):
    """OVN Southbound, read-only (ovn-controller and ovn-northd own it): the chassis of the
    cluster and where logical ports are bound."""

    def chassis_list(self, deadline: float | None = None) -> list[ChassisRow]:
        """Every chassis (name = system-id, hostname, tunnel endpoints, gateway mark, bridge
        mappings, NB generation caught up with), by name; [] when none. Read-only. Raises
        Unavailable."""

    def chassis(self, name: str, deadline: float | None = None) -> ChassisRow | None:
        """The chassis named `name`, None when absent. Read-only. Raises Unavailable."""

    def bound_chassis(self, logical_port: str, deadline: float | None = None) -> str | None:
        """The chassis a logical port is bound to ("" = not bound), None when the SB has no
        binding for it (yet). Read-only. Raises Unavailable."""

    def bindings_per_chassis(self, deadline: float | None = None) -> dict[str, int]:
        """How many logical ports each chassis has bound (all owners, all types). Read-only.
        Raises Unavailable."""
