"""The network plane's model of a multi-node cloud: egress gateways of team networks
(spec, observed state, the names of their OVN objects) and the chassis health and
cluster view. Pure, like model.py (whose Network and Chassis refer to Egress and
ChassisHealth)."""
from __future__ import annotations

from dataclasses import dataclass, field


# -- egress ------------------------------------------------------------------------
@dataclass(frozen=True)
class EgressSpec:
    """A team network's way out: a per-team logical router with SNAT of the team subnet to
    external_ip4 on the uplink (a physical network the gateway chassis map to a provider
    bridge), default route via uplink_gateway4."""

    uplink: str                    # physnet name (ovn-bridge-mappings key)
    external_ip4: str              # "203.0.113.10/24"
    uplink_gateway4: str


@dataclass(frozen=True)
class GatewayChassis:
    """A chassis that may host a network's uplink port (higher priority wins while up)."""

    chassis: str
    priority: int


@dataclass
class Egress:
    """A team network's gateway as observed."""

    spec: EgressSpec
    router: str
    gateways: list[GatewayChassis] = field(default_factory=list)   # highest priority first
    active_chassis: str = ""        # where the uplink port is bound now ("" = nowhere yet)


@dataclass(frozen=True)
class EgressNames:
    """Names of a team network's gateway objects. Network names have no '.', so these never
    collide with switches ("dc-<net>") or ports ("dc.<net>.<port>"); logical switch and
    router port names share one namespace in the Southbound, hence dcr./dcs."""

    router: str                     # Logical_Router, and its HA_Chassis_Group
    lan_port: str                   # LRP on the team subnet (gateway4)
    wan_port: str                   # LRP on the uplink (external_ip4): the gateway port
    uplink_switch: str              # the team's uplink logical switch (localnet)
    lan_lsp: str                    # its peer on the team switch
    wan_lsp: str                    # its peer on the uplink switch
    localnet_lsp: str               # the localnet port of the uplink switch

    @property
    def chassis_redirect(self) -> str:
        """The SB port binding northd makes for the gateway port (bound on the active chassis)."""
        return f"cr-{self.wan_port}"


def egress_names(network: str) -> EgressNames:
    """Deterministic names of a network's gateway objects. Pure."""
    return EgressNames(router=f"dcr.{network}", lan_port=f"dcr.{network}.lan", wan_port=f"dcr.{network}.wan",
                       uplink_switch=f"dcx.{network}", lan_lsp=f"dcs.{network}.lan", wan_lsp=f"dcs.{network}.wan",
                       localnet_lsp=f"dcs.{network}.ln")


# -- chassis health, cluster view ------------------------------------------------
@dataclass(frozen=True)
class ChassisCheck:
    """One health condition of this node's chassis."""

    name: str                       # ovs | sb-chassis | system-id | tunnels | mtu | gateway | nb
    ok: bool
    detail: str


@dataclass
class ChassisHealth:
    """This node's chassis health: every check, healthy when all hold."""

    checks: list[ChassisCheck]

    @property
    def healthy(self) -> bool:
        """True when every check holds. Pure."""
        return all(c.ok for c in self.checks)


@dataclass
class ClusterChassis:
    """One chassis of the cluster (SB) as this node sees it."""

    name: str
    hostname: str
    encaps: list[tuple[str, str]]   # (type, ip)
    gateway: bool
    bridge_mappings: dict[str, str]
    local: bool
    tunnel: bool                    # this node has a tunnel port to it
    bfd: str                        # BFD state of that tunnel ("" = off)
    bound_ports: int                # logical ports bound to it (any owner)
    ports: int                      # our logical ports requesting it
    nodes: list[str]                # agent nodes owning those
    nb_cfg: int
