"""OVN Northbound row descriptions shared by the NB commands and the facade:
the replicated tables, desired/observed row dataclasses. The ownership keys
are agent/model/marks.py's, re-exported here for the callers that import them
from the driver."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from agent.drivers.ovsdb.client import Table
from agent.model.marks import ACL_KEY, ADDR_KEY, KIND_KEY, NETWORK_KEY, NODE_KEY, OWNER_KEY, PG_KEY

__all__ = ["ACL_KEY", "ADDR_KEY", "KIND_KEY", "NETWORK_KEY", "NODE_KEY", "OWNER_KEY", "PG_KEY", "TABLES", "AclRule",
           "EgressObserved", "EgressRows", "NetworkRows", "PortRow", "mac_from_ip4"]

TABLES = {
    "Logical_Switch": Table(None, ("name",)),
    "Logical_Switch_Port": Table(None, ("name",)),
    "Port_Group": Table(None, ("name",)),
    "ACL": Table(),
    "DHCP_Options": Table(None, ("cidr",)),
    # egress gateways (nb_router.py)
    "Logical_Router": Table(("name", "ports", "static_routes", "nat", "options", "external_ids"), ("name",)),
    "Logical_Router_Port": Table(("name", "mac", "networks", "ha_chassis_group", "options", "external_ids"), ("name",)),
    "Logical_Router_Static_Route": Table(("ip_prefix", "nexthop", "external_ids")),
    "NAT": Table(("type", "external_ip", "logical_ip", "external_ids")),
    "HA_Chassis_Group": Table(("name", "ha_chassis", "external_ids"), ("name",)),
    "HA_Chassis": Table(("chassis_name", "priority", "external_ids")),
}


@dataclass(frozen=True)
class AclRule:
    """One ACL row; `key` (external_ids ACL_KEY) identifies it across updates."""

    key: str
    direction: str          # from-lport | to-lport
    priority: int
    match: str
    action: str             # allow-related | allow | drop | reject


@dataclass
class NetworkRows:
    """Desired (or observed) NB rows of one team network."""

    switch: str                                 # Logical_Switch.name
    port_group: str                             # Port_Group.name (an identifier: no '-')
    marks: dict[str, str]                       # external_ids on every row (owner, network, ...)
    immutable: dict[str, str]                   # external_ids that may never change (subnets)
    mutable: dict[str, str] = field(default_factory=dict)  # external_ids that may be updated (mtu)
    dhcp4_cidr: str = ""                        # "" = no DHCPv4 options row
    dhcp4_options: dict[str, str] = field(default_factory=dict)
    acls: list[AclRule] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)   # observed only: LSP names on the switch
    egress: "EgressRows | None" = None               # desired: the gateway (None = none: removed if there)


@dataclass
class EgressRows:
    """Desired NB rows of a team network's gateway (see nb_router.py)."""

    router: str                                 # Logical_Router and HA_Chassis_Group name
    lan_port: str                               # LRP on the team subnet
    lan_mac: str
    lan_networks: list[str]                     # ["10.0.0.1/24"]
    wan_port: str                               # LRP on the uplink: the gateway port
    wan_mac: str
    wan_networks: list[str]                     # ["203.0.113.10/24"]
    uplink_switch: str                          # logical switch with the localnet port
    uplink: str                                 # its network_name (physnet)
    lan_lsp: str                                # router-type LSP on the team switch
    wan_lsp: str                                # router-type LSP on the uplink switch
    localnet_lsp: str
    snat_logical_ip: str                        # the team subnet
    snat_external_ip: str                       # external_ip4 without its prefix length
    default_nexthop: str
    gateway_mtu: int                            # larger packets towards the team get ICMP "too big"
    gateways: list[tuple[str, int]] = field(default_factory=list)   # (chassis, priority) for a new group
    chassis_names: list[str] = field(default_factory=list)          # gateway chassis to add when missing


@dataclass
class EgressObserved:
    """Observed gateway rows of a team network."""

    router: str
    gateways: list[tuple[str, int]]             # (chassis, priority), highest first


@dataclass
class PortRow:
    """Desired (or observed) NB logical switch port."""

    name: str                                   # LSP name == OVS iface-id
    switch: str
    port_group: str
    marks: dict[str, str]
    immutable: tuple[str, ...] = ()             # keys of `marks` that may never change
    mac: str = ""                               # "" = derive from the IPv4 address
    ip4: str = ""                               # "" = allocate from subnet4
    ip6: str = ""                               # "" = allocate from subnet6 (when set)
    subnet4: str = ""
    subnet6: str = ""
    reserved: tuple[str, ...] = ()              # addresses never handed out (gateways)
    port_security: bool = True
    up: bool = False                            # observed: NB up
    dhcp4: bool = True
    chassis: str = ""                           # options:requested-chassis (the only chassis that may bind it)


def _one(row_list):
    return row_list[0] if row_list else None


def _addresses(row) -> tuple[str, list[str]]:
    """(mac, [ips]) from the first entry of LSP.addresses ("" when none)."""
    # rows inserted earlier in the same transaction lack unset columns
    for entry in list(getattr(row, "addresses", [])) + list(getattr(row, "dynamic_addresses", None) or []):
        parts = entry.split()
        if parts and parts[0] not in ("unknown", "router", "dynamic"):
            return parts[0], parts[1:]
    return "", []


def mac_from_ip4(ip: str) -> str:
    """0a:58:<4 bytes of the IPv4 address>: locally administered, unique per address."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)
