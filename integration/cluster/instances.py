"""Instance ports for harness self-tests: a netns per instance, a veth whose node end is a port
of the node's br-int bound to an OVN logical switch port (iface-id). The agent will later do
this itself; these helpers only prove the simulated cloud carries packets.
"""
from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field

from integration.cluster.procs import ip_batch, run


@dataclass
class PingResult:
    sent: int
    received: int
    rtt_min: float | None = None      # ms
    rtt_avg: float | None = None
    rtt_max: float | None = None
    output: str = ""

    @property
    def ok(self) -> bool:             # every probe answered
        return self.sent > 0 and self.received == self.sent

    @property
    def none(self) -> bool:           # no probe answered
        return self.received == 0


def parse_ping(out: str) -> PingResult:
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
    r = PingResult(int(m.group(1)) if m else 0, int(m.group(2)) if m else 0, output=out)
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", out)
    if m:
        r.rtt_min, r.rtt_avg, r.rtt_max = (float(x) for x in m.groups())
    return r


@dataclass
class Instance:
    name: str                 # LSP name = iface-id = node-side veth name
    node: object              # harness Node
    team: str                 # logical switch
    netns: str
    mac: str
    ip: str                   # without prefix length
    cidr: str                 # ip/len
    mtu: int
    installed_seconds: float | None = None     # add-port -> external_ids:ovn-installed=true
    extra: dict = field(default_factory=dict)

    def run(self, argv, *, check=True, timeout=30) -> subprocess.CompletedProcess:
        return run(argv, netns=self.netns, check=check, timeout=timeout)

    def ping(self, dst: str, count: int = 3, interval: float = 0.2, wait: float = 1, size: int | None = None,
             df: bool = False) -> PingResult:
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", f"{interval:g}", "-W", f"{wait:g}"]
        argv += ["-s", str(size)] if size is not None else []
        argv += ["-M", "do"] if df else []
        r = self.run(argv + [dst], check=False, timeout=count * (interval + wait) + 10)
        return parse_ping(r.stdout + r.stderr)


class InstancesMixin:
    """add_instance_port / remove_instance_port for Cluster (uses nbctl, node(), netns, prefix)."""

    def add_instance_port(self, node: int, team: str, name: str, mac: str, ip: str, *, gateway: str | None = None,
                          lsp: bool = True, wait: bool = True, timeout: float = 20) -> Instance:
        """Instance `name` on node `node` in logical switch `team`: the LSP (addresses and port
        security = mac ip; skipped with lsp=False), netns <prefix>-v-<name> with eth0 (mac, ip,
        MTU = underlay - 58, tx checksum offload off), the veth's other end `name` on the node's
        br-int with external_ids:iface-id=name. With wait, waits for ovn-installed and records the
        time from add-port to it in .installed_seconds."""
        if len(name) > 15 or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"instance name {name!r} must be a valid interface name (<= 15 chars)")
        n = self.node(node)
        addr, _, plen = ip.partition("/")
        cidr = f"{addr}/{plen or 24}"
        inst = Instance(name, n, team, f"{self.prefix}-v-{name}", mac, addr, cidr, self.instance_mtu)
        if lsp:
            self.nbctl("--may-exist", "lsp-add", team, name, "--", "lsp-set-addresses", name, f"{mac} {addr}",
                       "--", "lsp-set-port-security", name, f"{mac} {addr}")
        self.netns.add(inst.netns)
        m = self.instance_mtu
        ip_batch(None, [f"link add eth0 netns {inst.netns} mtu {m} type veth peer name {name} netns {n.netns} mtu {m}"])
        ip_batch(inst.netns, [f"link set eth0 address {mac}", f"addr add {cidr} dev eth0", "link set eth0 up"]
                 + ([f"route add default via {gateway}"] if gateway else []))
        # The userspace datapath forwards frames as they come: with TX checksum offload the
        # instance's TCP/UDP leave with a partial checksum and die at the far end.
        run(["ethtool", "-K", "eth0", "tx", "off"], netns=inst.netns)
        ip_batch(n.netns, [f"link set {name} up"])
        t = time.monotonic()
        n.vsctl("add-port", "br-int", name, "--", "set", "Interface", name, f"external_ids:iface-id={name}")
        if wait:
            n.vsctl("wait-until", "Interface", name, "external_ids:ovn-installed=true", timeout=int(timeout))
            inst.installed_seconds = time.monotonic() - t
        self.instances[name] = inst
        return inst

    def wait_ports_up(self, *names: str, timeout: float = 30) -> float:
        """Wait until NB says up=true for each LSP (its binding is committed in the SB), then until
        every chassis has caught up (--wait=hv sync): after this, every node knows where the ports
        are. Returns the seconds it took."""
        t = time.monotonic()
        for name in names:
            self.nbctl("wait-until", "Logical_Switch_Port", name, "up=true", timeout=timeout)
        self.nbctl("--wait=hv", "sync", timeout=timeout)
        return time.monotonic() - t

    def remove_instance_port(self, name: str, lsp: bool = True) -> None:
        inst = self.instances.pop(name)
        inst.node.vsctl("--if-exists", "del-port", "br-int", name)
        if lsp:
            self.nbctl("--if-exists", "lsp-del", name)
        self.netns.remove(inst.netns)
