"""A simulated uplink (provider network) for egress tests, wired as an operator would:
a Linux bridge br-up in the underlay namespace; an "uplink host" namespace on it
(the next hop and the address instances try to reach); on each gateway node an
OVS provider bridge br-ex (netdev) whose port up0 is a veth into br-up.

    <prefix>-x   eth0 172.31.0.1/24  (the uplink host: next hop, answers pings, sees SNATed sources)
       |
    [br-up] (in <prefix>-ul)
       |  up-n<i>  <-veth->  up0, a port of br-ex on gateway node i
    node i: ovn-bridge-mappings=uplink:br-ex (the agent's EnsureChassis sets it)

The kernel is kept off up0 like off eth1 (ARP off, no IPv6): OVS reads it through
AF_PACKET and the kernel must not answer for anyone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from integration.cluster.procs import ip_batch, run

UPLINK_NET = "172.31.0"


@dataclass
class Uplink:
    host_netns: str                      # the uplink host
    gateway_ip: str                      # its address: the next hop of every egress router
    prefixlen: int
    physnet: str                         # the name gateway chassis map to the provider bridge
    bridge: str                          # provider bridge on each gateway node
    nodes: list[int] = field(default_factory=list)

    def external_ip(self, k: int) -> str:
        """The k-th router address on the uplink ("172.31.0.<10+k>/24")."""
        return f"{UPLINK_NET}.{10 + k}/{self.prefixlen}"


class UplinkMixin:
    """add_uplink for Cluster (uses netns, prefix, node())."""

    def add_uplink(self, nodes: list[int], physnet: str = "uplink", bridge: str = "br-ex") -> Uplink:
        """Wire an uplink to gateway nodes `nodes` (see the module doc). Returns the Uplink."""
        P, ul = self.prefix, self.ul_ns
        host = self.netns.add(f"{P}-x")
        lines = [f"link add br-up netns {ul} type bridge",
                 f"link add up-x netns {ul} type veth peer name eth0 netns {host}"]
        lines += [f"link add up-n{i} netns {ul} type veth peer name up0 netns {P}-n{i}" for i in nodes]
        ip_batch(None, lines)
        ip_batch(ul, ["link set br-up up", "link set up-x master br-up up"]
                 + [f"link set up-n{i} master br-up up" for i in nodes])
        ip_batch(host, [f"addr add {UPLINK_NET}.1/24 dev eth0", "link set eth0 up"])
        for i in nodes:
            n = self.node(i)
            ip_batch(n.netns, ["link set up0 arp off", "link set up0 up"])
            run(["sysctl", "-qw", "net.ipv6.conf.up0.disable_ipv6=1"], netns=n.netns)
            n.vsctl("--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev",
                    "--", "--may-exist", "add-port", bridge, "up0")
        self.uplink = Uplink(host, f"{UPLINK_NET}.1", 24, physnet, bridge, list(nodes))
        return self.uplink
