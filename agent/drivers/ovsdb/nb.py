"""OVN Northbound rows of team networks and their ports.

The driver makes rows look like a desired description (the network service
computes the description: names, marks, ACL policy); every write is ONE
transaction. The contract (returns, idempotency, errors) is
agent/drivers/contracts/ovsdb.py's OvnNbContract. Concurrent creators on
other nodes conflict on the Port_Group name (a unique index): the loser
re-reads and finds the winner's rows.
"""
from __future__ import annotations

import ipaddress
import time

from agent.drivers.contracts.ovsdb import OvnNbContract
from agent.drivers.ovsdb.client import _retry, owned_by
from agent.drivers.ovsdb.database import Database
from agent.drivers.ovsdb.nb_commands import (
    REQUESTED_CHASSIS, _AddressBook, _DeleteNetwork, _DeletePorts, _EnsureNetwork, _EnsurePort)
from agent.drivers.ovsdb.nb_router import _GatewayMembership, observed_egress
from agent.drivers.ovsdb.nb_types import (  # noqa: F401 - re-exported for callers
    ACL_KEY, KIND_KEY, NETWORK_KEY, NODE_KEY, OWNER_KEY, PG_KEY, TABLES, AclRule, EgressObserved, EgressRows,
    NetworkRows, PortRow, _addresses, mac_from_ip4)
from agent.errors import Aborted, FailedPrecondition
from agent.metrics import Metrics
from agent.model.marks import KIND_NETWORK, KIND_PORT, KIND_ROUTER_LSP


class OvnNb(Database, OvnNbContract):
    """OvnNbContract over the OVN_Northbound replica: its methods keep the contract documented
    there; their docstrings here say how."""

    def __init__(self, remote: str, *, metrics: Metrics, owner: str, timeout: float = 5.0,
                 probe_interval_ms: int = 5000) -> None:
        self._book = _AddressBook()            # parsed LSP addresses, kept current from row events
        super().__init__(remote, "OVN_Northbound", TABLES, label="nb", metrics=metrics, owner=owner,
                         timeout=timeout, probe_interval_ms=probe_interval_ms, on_event=self._book.on_event)

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
        """One _EnsureNetwork command, through _transact() (re-read and retry on a unique-index conflict)."""
        return self._transact(lambda: _EnsureNetwork(desired, self.owner), deadline)

    def delete_network(self, switch: str, port_group: str, network: str, deadline: float | None = None,
                       only_node: str | None = None) -> list[str]:
        """One _DeleteNetwork command (its gateway rows too; other nodes' ports refused unless
        only_node is None), through _transact()."""
        return self._transact(lambda: _DeleteNetwork(switch, port_group, network, self.owner, only_node), deadline)

    def ensure_ports(self, desired: list[PortRow], deadline: float | None = None) -> list[tuple[bool, str, list[str]]]:
        """One _EnsurePort command per port in one transaction; addresses come from the _AddressBook.
        Through _transact_all(): a re-sent write whose first reply was lost re-runs on fresh rows."""
        return self._transact_all(lambda: [_EnsurePort(d, self.owner, self._book) for d in desired], deadline)

    def delete_ports(self, names: list[str], deadline: float | None = None) -> list[str]:
        """One _DeletePorts command, through _transact()."""
        return self._transact(lambda: _DeletePorts(names, self.owner), deadline)

    # -- cached reads ------------------------------------------------------
    def network(self, switch: str, deadline: float | None = None) -> NetworkRows | None:
        """The switch by its name index, its port group by name, DHCP rows by a scan."""
        ls = self._our_switch(switch, deadline)
        if ls is None:
            return None
        pg_name = ls.external_ids.get(PG_KEY, "")
        return self._network_rows(ls, self.db.lookup("Port_Group", "name", pg_name) if pg_name else None)

    def foreign_ports(self, switch: str, deadline: float | None = None) -> list[str]:
        """The switch by its name index; its ports' marks."""
        ls = self._our_switch(switch, deadline)
        return [] if ls is None else sorted(p.name for p in ls.ports if not owned_by(p, self.owner))

    def switch_marks(self, switch: str, deadline: float | None = None) -> dict[str, str] | None:
        """The switch by its name index."""
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
            ports=sorted(p.name for p in ls.ports if p.external_ids.get(KIND_KEY) != KIND_ROUTER_LSP))

    def networks(self, deadline: float | None = None) -> list[NetworkRows]:
        """A scan of Logical_Switch."""
        out = []
        for ls in self.db.rows("Logical_Switch", deadline):
            if owned_by(ls, self.owner) and ls.external_ids.get(KIND_KEY) == KIND_NETWORK:
                pg_name = ls.external_ids.get(PG_KEY, "")
                out.append(self._network_rows(ls, self.db.lookup("Port_Group", "name", pg_name) if pg_name else None))
        return sorted(out, key=lambda n: n.switch)

    def egress(self, router: str, deadline: float | None = None) -> EgressObserved | None:
        """The router and its HA chassis group by their name indexes."""
        idl = self.db.require_connected(deadline)
        return _retry(lambda: observed_egress(idl, router, self.owner))

    def gateway_membership(self, chassis: str, gateway: bool, deadline: float | None = None) -> list[str]:
        """One _GatewayMembership command, through _transact()."""
        return self._transact(lambda: _GatewayMembership(chassis, gateway, self.owner), deadline)

    def port(self, name: str, deadline: float | None = None) -> PortRow | None:
        """The LSP by its name index."""
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
        """A scan of Logical_Switch_Port."""
        out = []
        for lsp in self.db.rows("Logical_Switch_Port", deadline):
            ext = lsp.external_ids
            if ext.get(OWNER_KEY) != self.owner or ext.get(KIND_KEY) != KIND_PORT:
                continue
            if node is not None and ext.get(NODE_KEY) != node:
                continue
            if network is not None and ext.get(NETWORK_KEY) != network:
                continue
            out.append(self._port_row(lsp))
        return sorted(out, key=lambda p: p.name)

    def port_marks(self, *, network: str, node: str, deadline: float | None = None) -> list[dict[str, str]]:
        """A scan of Logical_Switch_Port."""
        out = []
        for lsp in self.db.rows("Logical_Switch_Port", deadline):
            ext = lsp.external_ids
            if ext.get(OWNER_KEY) == self.owner and ext.get(NETWORK_KEY) == network and ext.get(NODE_KEY) == node:
                out.append(dict(ext))
        return out

    def port_up(self, name: str) -> bool | None:
        """The LSP by its name index, only when connected."""
        lsp = self.db.lookup("Logical_Switch_Port", "name", name, None) if self.db.connected else None
        if lsp is None:
            return None
        return bool(lsp.up and lsp.up[0])
