"""OVN Northbound rows of team networks and their ports.

The driver makes rows look like a desired description (the network service
computes the description: names, marks, ACL policy); every write is ONE
transaction. Rows are recognised as ours by external_ids OWNER_KEY; a
row with our name but without our mark is never modified.

Idempotency: ensure_* on rows already matching -> changed=False. NB is
shared by all nodes' agents: two agents ensuring the same network converge
(the Port_Group name is a unique index, so concurrent creators conflict and
the loser re-reads and finds the winner's rows).
"""
from __future__ import annotations

import ipaddress
import time

from agent.drivers.base import Availability
from agent.drivers.ovsdb.client import OvsdbClient, _retry, owned_by
from agent.drivers.ovsdb.nb_commands import (
    REQUESTED_CHASSIS, _AddressBook, _DeleteNetwork, _DeletePorts, _EnsureNetwork, _EnsurePort)
from agent.drivers.ovsdb.nb_router import _GatewayMembership, observed_egress
from agent.drivers.ovsdb.nb_types import (  # noqa: F401 - re-exported for callers
    ACL_KEY, KIND_KEY, NETWORK_KEY, NODE_KEY, OWNER_KEY, PG_KEY, TABLES, AclRule, EgressObserved, EgressRows,
    NetworkRows, PortRow, _addresses, mac_from_ip4)
from agent.errors import Aborted, FailedPrecondition
from agent.metrics import Metrics


class OvnNb:
    """OVN Northbound: team network rows and logical switch ports.

    Every method that reads or writes can raise Unavailable OVSDB_UNAVAILABLE
    (NB down, slow or reconnecting past the deadline; retryable)."""

    def __init__(self, remote: str, *, metrics: Metrics, owner: str, timeout: float = 5.0,
                 probe_interval_ms: int = 5000) -> None:
        self.owner = owner
        self.db = OvsdbClient(remote, "OVN_Northbound", TABLES, metrics=metrics, label="nb",
                              timeout=timeout, probe_interval_ms=probe_interval_ms)
        self._book = _AddressBook()
        self.db.add_listener(self._book.on_event)

    def probe(self) -> Availability:
        """Connected to NB (tries to connect once, briefly). Never raises: unreachable -> missing."""
        return self.db.probe()

    def close(self) -> None:
        """Close the NB connection. Idempotent; never raises."""
        self.db.close()

    # -- writes ------------------------------------------------------------
    def _transact(self, make, deadline: float | None):
        """One transaction; on a unique-index conflict with a concurrent writer
        (another node creating the same network) re-read and retry, bounded."""
        return self._transact_all(lambda: [make()], deadline)[0]

    def _transact_all(self, make, deadline: float | None) -> list:
        """The commands make() returns in one transaction, retried like _transact. Also covers a
        write that committed although its reply was lost (a cluster member died) and was then
        sent again: the re-sent insert conflicts on a unique name; the re-run finds the row."""
        for attempt in range(3):
            try:
                return self.db.transact(make(), deadline)
            except Aborted:
                if attempt == 2 or (deadline is not None and time.monotonic() >= deadline):
                    raise
                self.db.wait_for(lambda: False, time.monotonic() + 0.05)
        raise AssertionError("unreachable")  # pragma: no cover

    def ensure_network(self, desired: NetworkRows, deadline: float | None = None) -> bool:
        """Make the switch, DHCP options, port group and ACLs match `desired` in one
        transaction. Returns changed.

        Idempotent: rows already matching -> False, nothing written. Absent rows
        are created; existing ones of ours are updated (mutable marks, DHCP
        options, ACLs replaced by key). A concurrent creator on another node:
        re-read and converge (bounded retries, then Aborted OVSDB_CONFLICT).
        Raises FailedPrecondition NOT_OURS (a same-named switch or port group is
        not ours), AlreadyExists IMMUTABLE_FIELD (an immutable mark differs),
        Unavailable OVSDB_UNAVAILABLE."""
        return self._transact(lambda: _EnsureNetwork(desired, self.owner), deadline)

    def delete_network(self, switch: str, port_group: str, network: str, deadline: float | None = None,
                       only_node: str | None = None) -> list[str]:
        """Delete the switch (with all its ports), port group, ACLs, DHCP rows and the network's
        gateway rows in one transaction. Returns the deleted port names.

        Idempotent: absent -> no-op, []. Raises FailedPrecondition NOT_OURS when
        the same-named switch or port group is not ours, or the switch has ports
        that are not ours; PORTS_ON_OTHER_NODES when only_node is given and a port
        of ours belongs to another node (naming them); the server re-checks the
        port list at commit: nothing is deleted then. Unavailable OVSDB_UNAVAILABLE."""
        return self._transact(lambda: _DeleteNetwork(switch, port_group, network, self.owner, only_node), deadline)

    def ensure_ports(self, desired: list[PortRow], deadline: float | None = None) -> list[tuple[bool, str, list[str]]]:
        """Create or reconcile logical switch ports in ONE transaction; addresses not
        given are allocated from the subnet, never twice (the switch's port list
        is verified, so concurrent writers retry). Returns (changed, mac, ips)
        per port, in order.

        Idempotent: a port of ours already matching -> changed=False with its
        addresses; drift in its addresses, port security, marks, DHCP or port group
        is put back. All or none: one failing port aborts the transaction. Raises
        NotFound NETWORK_NOT_FOUND (no switch of ours) / NETWORK_INCOMPLETE (port
        group missing), AlreadyExists ADDRESS_IN_USE / MAC_IN_USE / IMMUTABLE_FIELD
        / PORT_ON_OTHER_SWITCH, ResourceExhausted SUBNET_EXHAUSTED,
        FailedPrecondition NOT_OURS (same name, not ours) / NO_MAC, Unavailable
        OVSDB_UNAVAILABLE, Aborted OVSDB_CONFLICT."""
        return self._transact_all(lambda: [_EnsurePort(d, self.owner, self._book) for d in desired], deadline)

    def delete_ports(self, names: list[str], deadline: float | None = None) -> list[str]:
        """Delete our logical switch ports in one transaction; absent names are
        skipped (idempotent). Returns deleted names. Raises FailedPrecondition
        NOT_OURS when one is not ours (nothing is deleted then), Unavailable
        OVSDB_UNAVAILABLE."""
        return self._transact(lambda: _DeletePorts(names, self.owner), deadline)

    # -- cached reads ------------------------------------------------------
    def network(self, switch: str, deadline: float | None = None) -> NetworkRows | None:
        """Observed rows of one network from the cache; None when the switch is absent.
        Read-only. Raises FailedPrecondition NOT_OURS when the switch is not ours,
        Unavailable OVSDB_UNAVAILABLE."""
        ls = self._our_switch(switch, deadline)
        if ls is None:
            return None
        pg_name = ls.external_ids.get(PG_KEY, "")
        return self._network_rows(ls, self.db.lookup("Port_Group", "name", pg_name) if pg_name else None)

    def foreign_ports(self, switch: str, deadline: float | None = None) -> list[str]:
        """Names of the switch's logical ports without our mark ([] when the switch is absent).
        Read-only. Raises FailedPrecondition NOT_OURS when the switch is not ours, Unavailable."""
        ls = self._our_switch(switch, deadline)
        return [] if ls is None else sorted(p.name for p in ls.ports if not owned_by(p, self.owner))

    def switch_marks(self, switch: str, deadline: float | None = None) -> dict[str, str] | None:
        """external_ids of one of our switches (cheap: no port or ACL reads), None when absent.
        Read-only. Raises FailedPrecondition NOT_OURS when the switch is not ours, Unavailable."""
        ls = self._our_switch(switch, deadline)
        return None if ls is None else dict(ls.external_ids)

    def _our_switch(self, switch: str, deadline: float | None):
        """The cached switch row, None when absent; FailedPrecondition NOT_OURS when not ours."""
        ls = self.db.lookup("Logical_Switch", "name", switch, deadline)
        if ls is not None and not owned_by(ls, self.owner):
            raise FailedPrecondition(f"logical switch {switch} is not ours", reason="NOT_OURS")
        return ls

    def _network_rows(self, ls, pg) -> NetworkRows:
        ext = dict(ls.external_ids)
        dhcp = [r for r in self.db.rows("DHCP_Options") if owned_by(r, self.owner)
                and r.external_ids.get(NETWORK_KEY) == ext.get(NETWORK_KEY)]
        acls = [AclRule(a.external_ids.get(ACL_KEY, ""), a.direction, a.priority, a.match, a.action)
                for a in (pg.acls if pg is not None else [])]
        return NetworkRows(
            switch=ls.name, port_group=pg.name if pg is not None else "",
            marks={k: v for k, v in ext.items()}, immutable={}, mutable={},
            dhcp4_cidr=dhcp[0].cidr if dhcp else "", dhcp4_options=dict(dhcp[0].options) if dhcp else {},
            acls=sorted(acls, key=lambda a: a.key),
            ports=sorted(p.name for p in ls.ports if p.external_ids.get(KIND_KEY) != "router-lsp"))

    def networks(self, deadline: float | None = None) -> list[NetworkRows]:
        """Every switch of ours (kind network), by name (cache scan; for List and GC); [] when
        none. Rows that are not ours are skipped. Read-only. Raises Unavailable."""
        out = []
        for ls in self.db.rows("Logical_Switch", deadline):
            if owned_by(ls, self.owner) and ls.external_ids.get(KIND_KEY) == "network":
                pg_name = ls.external_ids.get(PG_KEY, "")
                out.append(self._network_rows(ls, self.db.lookup("Port_Group", "name", pg_name) if pg_name else None))
        return sorted(out, key=lambda n: n.switch)

    def egress(self, router: str, deadline: float | None = None) -> EgressObserved | None:
        """The gateway rows of ours named `router` (its HA chassis, highest priority first) from
        the cache; None when absent. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""
        idl = self.db.require_connected(deadline)
        return _retry(lambda: observed_egress(idl, router, self.owner))

    def gateway_membership(self, chassis: str, gateway: bool, deadline: float | None = None) -> list[str]:
        """Add chassis `chassis` to every gateway chassis group of ours (lowest priority) or
        remove it from all of them, in one transaction. Returns the groups changed.
        Idempotent ([] when nothing to do). Raises Unavailable OVSDB_UNAVAILABLE."""
        return self._transact(lambda: _GatewayMembership(chassis, gateway, self.owner), deadline)

    def port(self, name: str, deadline: float | None = None) -> PortRow | None:
        """Observed LSP from the cache (None when absent, or not ours: never an error). Read-only.
        Raises Unavailable OVSDB_UNAVAILABLE."""
        lsp = self.db.lookup("Logical_Switch_Port", "name", name, deadline)
        if lsp is None or not owned_by(lsp, self.owner):
            return None
        return self._port_row(lsp)

    def _port_row(self, lsp, switch: str = "") -> PortRow:
        mac, addrs = _addresses(lsp)
        ip4 = next((a for a in addrs if ipaddress.ip_address(a).version == 4), "")
        ip6 = next((a for a in addrs if ipaddress.ip_address(a).version == 6), "")
        return PortRow(name=lsp.name, switch=switch, port_group="", marks=dict(lsp.external_ids),
                       mac=mac, ip4=ip4, ip6=ip6, port_security=bool(lsp.port_security),
                       up=bool(lsp.up and lsp.up[0]), dhcp4=bool(lsp.dhcpv4_options),
                       chassis=lsp.options.get(REQUESTED_CHASSIS, ""))

    def ports(self, *, node: str | None = None, network: str | None = None,
              deadline: float | None = None) -> list[PortRow]:
        """Our LSPs, optionally only those of one node and/or network, by name (cache scan); []
        when none. Rows that are not ours are skipped. Read-only. Raises Unavailable."""
        out = []
        for lsp in self.db.rows("Logical_Switch_Port", deadline):
            ext = lsp.external_ids
            if ext.get(OWNER_KEY) != self.owner or ext.get(KIND_KEY) != "port":
                continue
            if node is not None and ext.get(NODE_KEY) != node:
                continue
            if network is not None and ext.get(NETWORK_KEY) != network:
                continue
            out.append(self._port_row(lsp))
        return sorted(out, key=lambda p: p.name)

    def port_marks(self, *, network: str, node: str, deadline: float | None = None) -> list[dict[str, str]]:
        """external_ids of our LSPs of one network bound to one node (one read per row); [] when
        none. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""
        out = []
        for lsp in self.db.rows("Logical_Switch_Port", deadline):
            ext = lsp.external_ids
            if ext.get(OWNER_KEY) == self.owner and ext.get(NETWORK_KEY) == network and ext.get(NODE_KEY) == node:
                out.append(dict(ext))
        return out

    def port_up(self, name: str) -> bool | None:
        """NB up of an LSP from the cache without waiting (None when absent or not connected:
        never waits, never raises). Ownership is not checked (a read of one column)."""
        lsp = self.db.lookup("Logical_Switch_Port", "name", name, None) if self.db.connected else None
        if lsp is None:
            return None
        return bool(lsp.up and lsp.up[0])
