"""Egress gateways of team networks: which chassis may host a network's uplink
port, and the NB rows a network's EgressSpec becomes (nb_router.py writes them
in the network's own transaction).

Gateway chassis are the SB chassis marked for it (ovn-cms-options
enable-chassis-as-gw, set by EnsureChassis(gateway=true) on that node). A new
network's HA chassis group gets them all, ranked from a rotation that depends
on the network name (so teams spread over the gateways); a gateway that
appears later is added below the others (by EnsureChassis on that node, or the
next EnsureNetwork anywhere). OVN moves the uplink port to the next chassis by
priority when the active one goes down (BFD between the chassis).
"""
from __future__ import annotations

import hashlib
import ipaddress
import time

from agent.drivers.ovsdb.nb_router import PRIORITY_STEP, PRIORITY_TOP
from agent.drivers.ovsdb.nb_types import EgressRows
from agent.drivers.contracts.ovsdb import OvnNbContract, OvnSbContract
from agent.errors import AgentError, FailedPrecondition
from agent.services.network.model import NetworkSpec, mac_from_hash
from agent.services.network.model_cluster import Egress, EgressSpec, GatewayChassis, egress_names


ACTIVE_WAIT = 0.5                    # a network read waits at most this for an SB that is reconnecting


class Gateways:
    """The gateway chassis of the cluster, from the OVN Southbound."""

    def __init__(self, sb: OvnSbContract | None) -> None:
        self.sb = sb

    def _sb(self) -> OvnSbContract:
        if self.sb is None:
            raise FailedPrecondition("egress needs the OVN Southbound to find the gateway chassis: set "
                                     "[network].ovn_sb", reason="NO_SB")
        return self.sb

    def names(self, deadline: float | None) -> list[str]:
        """Names of the chassis marked as gateways, sorted. Raises FailedPrecondition NO_SB, Unavailable."""
        return [c.name for c in self._sb().chassis_list(deadline) if c.gateway]

    def ranked(self, network: str, deadline: float | None) -> list[tuple[str, int]]:
        """(chassis, priority) for a new group of `network`: a rotation of the sorted gateways
        chosen by the network name, highest priority first. Raises like names()."""
        names = self.names(deadline)
        if not names:
            return []
        k = int.from_bytes(hashlib.sha256(network.encode()).digest()[:4], "big") % len(names)
        order = names[k:] + names[:k]
        return [(n, max(1, PRIORITY_TOP - i * PRIORITY_STEP)) for i, n in enumerate(order)]

    def active(self, network: str, deadline: float | None) -> str:
        """The chassis hosting the network's uplink port now ("" = none, no SB, or the SB
        unreachable: a network read never fails for it). Read-only; never raises."""
        if self.sb is None:
            return ""
        soon = time.monotonic() + ACTIVE_WAIT
        try:
            return self.sb.bound_chassis(egress_names(network).chassis_redirect,
                                         soon if deadline is None else min(deadline, soon)) or ""
        except AgentError:
            return ""


def encode_egress(e: EgressSpec | None) -> str:
    """The switch mark of an egress spec ("" = none). Pure."""
    return "" if e is None else f"{e.uplink},{e.external_ip4},{e.uplink_gateway4}"


def decode_egress(text: str) -> EgressSpec | None:
    """The egress spec of a switch mark (None = none). Pure."""
    parts = text.split(",")
    if len(parts) != 3 or not all(parts):
        return None
    return EgressSpec(uplink=parts[0], external_ip4=parts[1], uplink_gateway4=parts[2])


def egress_rows(spec: NetworkSpec, gateway4: str, mtu: int, gateways: Gateways,
                deadline: float | None) -> EgressRows | None:
    """The NB rows of spec.egress (None when the spec has none). Raises FailedPrecondition
    NO_SB (egress without a Southbound), Unavailable."""
    e = spec.egress
    if e is None:
        return None
    names = egress_names(spec.name)
    team = ipaddress.ip_network(spec.subnet4)
    ranked = gateways.ranked(spec.name, deadline)
    return EgressRows(
        router=names.router, lan_port=names.lan_port, lan_mac=mac_from_hash(spec.name, "router-lan"),
        lan_networks=[f"{gateway4}/{team.prefixlen}"], wan_port=names.wan_port,
        wan_mac=mac_from_hash(spec.name, "router-wan"), wan_networks=[str(ipaddress.ip_interface(e.external_ip4))],
        uplink_switch=names.uplink_switch, uplink=e.uplink, lan_lsp=names.lan_lsp, wan_lsp=names.wan_lsp,
        localnet_lsp=names.localnet_lsp, snat_logical_ip=str(team),
        snat_external_ip=str(ipaddress.ip_interface(e.external_ip4).ip), default_nexthop=e.uplink_gateway4,
        gateway_mtu=mtu, gateways=ranked, chassis_names=[n for n, _ in ranked])


def observed(network: str, spec: EgressSpec | None, nb: OvnNbContract, gateways: Gateways,
             deadline: float | None) -> Egress | None:
    """A network's gateway as observed (None when it has none): the router and its HA chassis
    from NB, the active chassis from SB."""
    if spec is None:
        return None
    names = egress_names(network)
    rows = nb.egress(names.router, deadline)
    gws = [GatewayChassis(c, p) for c, p in rows.gateways] if rows is not None else []
    return Egress(spec=spec, router=names.router if rows is not None else "", gateways=gws,
                  active_chassis=gateways.active(network, deadline))
