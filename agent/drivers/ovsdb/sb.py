"""OVN Southbound, read-only: the chassis of the cluster (name, hostname, tunnel
endpoints, gateway marks) and where logical ports are bound.

The agent never writes the SB (ovn-controller and ovn-northd own it); it reads
it to report chassis health, to find the nodes marked as gateways, to detect
a duplicate system-id and to show the cluster view. A replica of a few columns
of four tables, like OvnNb's, over the same client (clustered SB: any member).
The contract is agent/drivers/contracts/ovsdb.py's OvnSbContract.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import Any

from agent.drivers.contracts.ovsdb import OvnSbContract
from agent.drivers.ovsdb.client import Table
from agent.drivers.ovsdb.database import Database
from agent.metrics import Metrics

TABLES = {
    "Chassis": Table(("name", "hostname", "encaps", "other_config", "external_ids"), ("name",)),
    "Encap": Table(("type", "ip", "chassis_name")),
    "Chassis_Private": Table(("name", "nb_cfg", "nb_cfg_timestamp"), ("name",)),
    "Port_Binding": Table(("logical_port", "type", "chassis", "up"), ("logical_port",)),
}
GATEWAY_OPTION = "enable-chassis-as-gw"      # in other_config:ovn-cms-options (published by ovn-controller)


@dataclass
class ChassisRow:
    """One SB chassis as the replica sees it."""

    name: str                                  # system-id
    hostname: str
    encaps: list[tuple[str, str]]              # (type, ip), sorted
    gateway: bool                              # ovn-cms-options holds enable-chassis-as-gw
    bridge_mappings: dict[str, str]            # physnet -> provider bridge
    nb_cfg: int = 0                            # Chassis_Private: the NB generation it has caught up with
    other_config: dict[str, str] = field(default_factory=dict)


def parse_mappings(text: str) -> dict[str, str]:
    """"physnet1:br-ex,physnet2:br-x" -> {physnet: bridge}; malformed items are skipped. Pure."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        net, sep, bridge = item.partition(":")
        if sep and net and bridge:
            out[net] = bridge
    return out


def cms_options(text: str) -> list[str]:
    """ovn-cms-options "a,b=c" -> ["a", "b=c"]. Pure."""
    return [t.strip() for t in text.split(",") if t.strip()]


class OvnSb(Database, OvnSbContract):
    """OvnSbContract over the OVN_Southbound replica (read-only: no owner, no row of ours)."""

    def __init__(self, remote: str, *, metrics: Metrics, timeout: float = 5.0, probe_interval_ms: int = 5000) -> None:
        super().__init__(remote, "OVN_Southbound", TABLES, label="sb", metrics=metrics, owner="",
                         timeout=timeout, probe_interval_ms=probe_interval_ms, on_event=_ignore)

    def _row(self, ch: Any, private: dict[str, int]) -> ChassisRow:
        other = dict(ch.other_config)
        return ChassisRow(name=ch.name, hostname=ch.hostname,
                          encaps=sorted((e.type, e.ip) for e in ch.encaps),
                          gateway=GATEWAY_OPTION in cms_options(other.get("ovn-cms-options", "")),
                          bridge_mappings=parse_mappings(other.get("ovn-bridge-mappings", "")),
                          nb_cfg=private.get(ch.name, 0), other_config=other)

    def chassis_list(self, deadline: float | None = None) -> list[ChassisRow]:
        """Scans of Chassis_Private and Chassis."""
        private = {p.name: p.nb_cfg for p in self.db.rows("Chassis_Private", deadline)}
        return sorted((self._row(c, private) for c in self.db.rows("Chassis", deadline)), key=lambda c: c.name)

    def chassis(self, name: str, deadline: float | None = None) -> ChassisRow | None:
        """Chassis and Chassis_Private by their name indexes."""
        ch = self.db.lookup("Chassis", "name", name, deadline)
        if ch is None:
            return None
        priv = self.db.lookup("Chassis_Private", "name", name, deadline)
        return self._row(ch, {name: priv.nb_cfg} if priv is not None else {})

    def bound_chassis(self, logical_port: str, deadline: float | None = None) -> str | None:
        """Port_Binding by its logical_port index."""
        pb = self.db.lookup("Port_Binding", "logical_port", logical_port, deadline)
        if pb is None:
            return None
        return pb.chassis[0].name if pb.chassis else ""

    def bindings_per_chassis(self, deadline: float | None = None) -> dict[str, int]:
        """A scan of Port_Binding."""
        out: dict[str, int] = {}
        for pb in self.db.rows("Port_Binding", deadline):
            if pb.chassis:
                name = pb.chassis[0].name
                out[name] = out.get(name, 0) + 1
        return out


def _ignore(event: str, table: str, row: Any) -> None:
    """The SB driver keeps no cache of its own beyond the replica."""
