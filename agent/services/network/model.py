"""The network plane's data model: specs in, observed state out, deterministic
names and ownership marks, and the ACL policy of a team network.

Everything here is pure (no I/O) so other planes can compute names before
creating anything: `port_names(prefix, network, port)` gives the logical
switch port name (== OVS iface-id) and the host/peer netdev names.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

from agent.model.marks import IFALIAS_PREFIX, OWNER  # noqa: F401 - OWNER re-exported for callers
from agent.services.network.model_cluster import ChassisHealth, Egress, EgressSpec

if TYPE_CHECKING:           # imported where used: reading this module never loads the OVSDB driver
    from agent.drivers.ovsdb.nb_types import AclRule

BACKEND_OVN = "ovn"
BACKEND_BRIDGE = "bridge"
KIND_VETH = "veth"
KIND_TAP = "tap"
DEFAULT_MTU_OVN = 1442          # geneve overhead on a 1500-byte underlay
DEFAULT_MTU_BRIDGE = 1500
IFNAMSIZ = 15


# -- specs (desired state) ---------------------------------------------------
@dataclass(frozen=True)
class AllowRule:
    """Extra traffic let into a team network's ports (on top of intra-team)."""

    source_cidr: str = ""          # e.g. "10.8.0.0/16" or "fd00::/64"
    source_network: str = ""       # another team network: its ports' addresses
    protocol: str = "any"          # any | tcp | udp | icmp
    port_min: int = 0              # tcp/udp destination port range (0 = all)
    port_max: int = 0


@dataclass(frozen=True)
class NetworkSpec:
    """A team network. Immutable once created: backend, subnet4, subnet6, gateway4,
    bridge, vlan. Mutable: mtu, dns_servers, allow."""

    name: str
    subnet4: str = ""              # required for the OVN backend
    subnet6: str = ""
    gateway4: str = ""             # reserved, never handed out; "" = first host address
    mtu: int = 0                   # 0 = backend default
    dns_servers: tuple[str, ...] = ()
    allow: tuple[AllowRule, ...] = ()
    backend: str = BACKEND_OVN
    bridge: str = ""               # bridge backend: bridge netdev ("" = derived from the name)
    vlan: int = 0                  # bridge backend: VLAN of the ports (0 = untagged)
    egress: EgressSpec | None = None   # OVN: a gateway to an uplink (mutable)


@dataclass(frozen=True)
class PortSpec:
    """One NIC of an instance. Immutable once created: kind, mac, ip4, ip6,
    instance, multiqueue. Mutable: mtu, peer placement (a peer left in place
    may later be moved into peer_netns)."""

    network: str
    name: str                      # unique within the network, e.g. "<instance>-eth0"
    instance: str = ""
    kind: str = KIND_VETH
    mac: str = ""                  # "" = derived from the IPv4 address
    ip4: str = ""                  # "" = allocated from the subnet
    ip6: str = ""
    mtu: int = 0                   # 0 = the network's MTU
    peer_netns: str = ""           # veth: put the instance end there (name under /run/netns or a path)
    peer_name: str = ""            # veth: name of the instance end inside peer_netns ("" = eth0)
    multiqueue: bool = False       # tap only
    peer_configure: bool = True    # veth in peer_netns: addresses + up there (False: only put there, for a
                                   # runtime to take: it may be gone later, which is no drift)


@dataclass(frozen=True)
class ChassisSpec:
    """Open_vSwitch settings that make this node an OVN chassis."""

    system_id: str = ""            # "" = node name
    ovn_remote: str = ""           # SB connection string (required)
    encap_type: str = "geneve"
    encap_ip: str = ""             # required
    bridge_datapath_type: str = ""  # "" leaves ovn-bridge-datapath-type unset
    bridge: str = ""               # "" = the configured integration bridge
    gateway: bool = False          # may host egress gateways (ovn-cms-options enable-chassis-as-gw)
    bridge_mappings: tuple[tuple[str, str], ...] = ()   # (physnet, provider bridge), sorted


# -- observed state ------------------------------------------------------------
@dataclass
class Network:
    """A team network as observed (either backend)."""

    name: str
    backend: str
    subnet4: str = ""
    subnet6: str = ""
    gateway4: str = ""
    mtu: int = 0
    dns_servers: tuple[str, ...] = ()
    allow: tuple[AllowRule, ...] = ()
    switch: str = ""                # OVN logical switch
    port_group: str = ""
    bridge: str = ""
    vlan: int = 0
    ports: list[str] = field(default_factory=list)     # port names (all nodes)
    acl_count: int = 0
    changed: bool = False
    egress: Egress | None = None


@dataclass
class PortStatus:
    """Readiness of a port (a bridge port is ready once it exists)."""

    ovn_installed: bool = False     # OVS Interface external_ids:ovn-installed=true
    up: bool = False                # NB Logical_Switch_Port.up
    missing: tuple[str, ...] = ()   # conditions not met ("ovn-installed", "up", "netdev", "ovs-port")
    ready: bool = False
    waited_seconds: float = 0.0


@dataclass
class Port:
    """One NIC as observed."""

    network: str
    name: str
    instance: str = ""
    kind: str = ""
    node: str = ""
    mac: str = ""
    ip4: str = ""
    ip6: str = ""
    mtu: int = 0
    iface_id: str = ""             # logical switch port name
    host_netdev: str = ""
    peer_netdev: str = ""
    peer_netns: str = ""
    multiqueue: bool = False
    bridge: str = ""
    status: PortStatus = field(default_factory=PortStatus)
    changed: bool = False


@dataclass
class Chassis:
    """This node's OVN chassis settings as observed."""

    system_id: str
    ovn_remote: str
    encap_type: str
    encap_ip: str
    bridge_datapath_type: str
    bridge: str
    bridge_exists: bool
    ovs_version: str
    changed: bool = False
    hostname: str = ""
    gateway: bool = False
    bridge_mappings: dict[str, str] = field(default_factory=dict)
    health: ChassisHealth | None = None


@dataclass(frozen=True)
class OwnedObject:
    """One object of ours found on this node or in NB (for GC / Diff)."""

    kind: str                       # logical-switch | logical-port | ovs-interface | netdev | veth-peer | bridge
    name: str
    network: str
    port: str = ""
    instance: str = ""
    node: str = ""


@dataclass(frozen=True)
class PortEvent:
    """A readiness change of a port (WatchPorts)."""

    network: str
    name: str
    status: PortStatus
    deleted: bool = False


# -- names -------------------------------------------------------------------
def _hash(text: str, n: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode().lower().rstrip("=")[:n]


@dataclass(frozen=True)
class PortNames:
    """The deterministic names of a port's objects."""

    lsp: str                        # logical switch port == OVS iface-id
    host: str                       # host-side netdev (veth end or tap)
    peer: str                       # veth instance end while it stays in the host netns


def port_names(prefix: str, network: str, port: str) -> PortNames:
    """Deterministic names of a port's objects (computable before creation).
    Netdev names are `prefix` + a hash of (network, port), at most 15 bytes."""
    base = prefix + _hash(f"{network}/{port}", IFNAMSIZ - len(prefix) - 1)
    return PortNames(lsp=f"dc.{network}.{port}", host=base, peer=base + "p")


def switch_name(network: str) -> str:
    """The OVN logical switch of a team network."""
    return f"dc-{network}"


def port_group_name(network: str) -> str:
    """Port group names are identifiers in ACL matches: no '-' allowed."""
    return "dc_" + network.replace("-", "_")


def bridge_name(prefix: str, network: str) -> str:
    """The default Linux bridge of a bridge-backend network: prefix + "b" + a hash, <= 15 bytes."""
    return prefix + "b" + _hash(network, IFNAMSIZ - len(prefix) - 1)


def default_gateway(subnet4: str) -> str:
    """The first host address of the subnet."""
    net = ipaddress.ip_network(subnet4)
    return str(net.network_address + 1)


def mac_from_hash(network: str, port: str) -> str:
    """A locally administered unicast MAC derived from the port id (bridge backend)."""
    b = hashlib.sha256(f"{network}/{port}".encode()).digest()
    return ":".join(f"{x:02x}" for x in (0x0a, 0x5c, *b[:4]))


# -- ifalias marks -------------------------------------------------------------
MARK_PREFIX = IFALIAS_PREFIX


def encode_mark(fields: dict[str, str]) -> str:
    """ifalias text: 'devcloud owner=... kind=... net=... port=... inst=...' (<=255 bytes)."""
    return " ".join([MARK_PREFIX, *(f"{k}={v}" for k, v in fields.items() if v != "")])


def parse_mark(alias: str) -> dict[str, str] | None:
    """The fields of our mark, or None when `alias` is not a devcloud mark."""
    parts = alias.split()
    if not parts or parts[0] != MARK_PREFIX:
        return None
    out = {}
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        if sep:
            out[k] = v
    return out


def mark_is(mark: dict[str, str] | None, **fields: str) -> TypeGuard[dict[str, str]]:
    """True when `mark` (from parse_mark) has every given field with the given value,
    e.g. mark_is(mark, owner=OWNER, net="team-a")."""
    return mark is not None and all(mark.get(k) == v for k, v in fields.items())


# -- ACL policy ---------------------------------------------------------------
def acl_rules(spec: NetworkSpec) -> list[AclRule]:
    """The ACLs of a team network's port group: egress allowed (stateful), ingress
    from the same team allowed, explicit extra rules allowed, everything else
    into the team's ports dropped (so other teams are denied by default)."""
    from agent.drivers.ovsdb.nb_types import AclRule
    pg = port_group_name(spec.name)
    rules = [
        AclRule("egress", "from-lport", 1001, f"inport == @{pg} && ip", "allow-related"),
        AclRule("intra4", "to-lport", 1001, f"outport == @{pg} && ip4 && ip4.src == ${pg}_ip4", "allow-related"),
        AclRule("deny", "to-lport", 900, f"outport == @{pg} && ip", "drop"),
    ]
    if spec.subnet6:
        rules.append(AclRule("intra6", "to-lport", 1001,
                             f"outport == @{pg} && ip6 && ip6.src == ${pg}_ip6", "allow-related"))
        rules.append(AclRule("nd", "to-lport", 1001, f"outport == @{pg} && (nd || nd_ra || nd_rs)", "allow"))
    for i, rule in enumerate(spec.allow):
        rules.append(AclRule(f"allow-{i}", "to-lport", 1002, f"outport == @{pg} && {allow_match(rule)}",
                             "allow-related"))
    return rules


def allow_match(rule: AllowRule) -> str:
    """The match expression of one extra allow rule (inputs validated at the edge)."""
    parts = []
    if rule.source_cidr:
        v = ipaddress.ip_network(rule.source_cidr).version
        parts.append(f"ip{v}.src == {rule.source_cidr}")
    elif rule.source_network:
        parts.append(f"ip4.src == ${port_group_name(rule.source_network)}_ip4")
    else:
        parts.append("ip")
    if rule.protocol in ("tcp", "udp"):
        parts.append(rule.protocol)
        if rule.port_min and rule.port_max and rule.port_max != rule.port_min:
            parts.append(f"{rule.protocol}.dst >= {rule.port_min} && {rule.protocol}.dst <= {rule.port_max}")
        elif rule.port_min:
            parts.append(f"{rule.protocol}.dst == {rule.port_min}")
    elif rule.protocol == "icmp":
        parts.append("(icmp4 || icmp6)")
    return " && ".join(parts)


def encode_allow(rules: tuple[AllowRule, ...]) -> str:
    """Allow rules as one external_ids value (so Get can report them back)."""
    return ";".join(f"{r.source_cidr},{r.source_network},{r.protocol},{r.port_min},{r.port_max}" for r in rules)


def decode_allow(text: str) -> tuple[AllowRule, ...]:
    """The allow rules of an encode_allow() value."""
    out = []
    for item in filter(None, text.split(";")):
        cidr, net, proto, pmin, pmax = (item.split(",") + ["", "", "any", "0", "0"])[:5]
        out.append(AllowRule(cidr, net, proto or "any", int(pmin or 0), int(pmax or 0)))
    return tuple(out)
