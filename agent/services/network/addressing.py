"""Addresses of a port inside its network: the checks of given ones and the
"ip/prefixlen" forms a netdev is configured with. Pure, no I/O."""
from __future__ import annotations

import ipaddress

from agent import validation
from agent.errors import InvalidArgument
from agent.services.network.model import Network, PortSpec


def check_addresses(spec: PortSpec, net: Network) -> None:
    """Given addresses must sit inside the network's subnets, not on the gateway.
    Raises InvalidArgument on spec.ip4 / spec.ip6."""
    if spec.ip4:
        if not net.subnet4:
            raise InvalidArgument.for_field("spec.ip4", f"network {net.name} has no IPv4 subnet")
        validation.ip_in("spec.ip4", spec.ip4, ipaddress.ip_network(net.subnet4))
        if spec.ip4 == net.gateway4:
            raise InvalidArgument.for_field("spec.ip4", f"{spec.ip4} is the gateway of {net.name}")
    if spec.ip6:
        if not net.subnet6:
            raise InvalidArgument.for_field("spec.ip6", f"network {net.name} has no IPv6 subnet")
        validation.ip_in("spec.ip6", spec.ip6, ipaddress.ip_network(net.subnet6))


def ip_with_prefix(ip: str, subnet: str) -> str:
    """"10.0.0.5" + "10.0.0.0/24" -> "10.0.0.5/24" ("" when either is empty)."""
    return f"{ip}/{ipaddress.ip_network(subnet).prefixlen}" if ip and subnet else ""


def interface_addresses(net: Network, ip4: str, ip6: str) -> list[str]:
    """The "ip/prefixlen" addresses of a port's instance end (the empty ones left out)."""
    return [a for a in (ip_with_prefix(ip4, net.subnet4), ip_with_prefix(ip6, net.subnet6)) if a]


def split_ips(ips: list[str]) -> tuple[str, str]:
    """The first IPv4 and the first IPv6 address of `ips` ("" when there is none)."""
    v4 = next((a for a in ips if ipaddress.ip_address(a).version == 4), "")
    v6 = next((a for a in ips if ipaddress.ip_address(a).version == 6), "")
    return v4, v6
