"""Simulated hypervisor nodes: one network namespace each with its own ovsdb-server,
ovs-vswitchd (userspace datapath) and ovn-controller, all state in the node's directory.
"""
from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from integration.cluster.procs import Daemon, ip_batch, ovs_env, run, sock_ready, wait_until

VS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
UL, MG = "192.168.50", "192.168.60"          # underlay (tunnel) net, management net


class Node:
    """One simulated hypervisor: its netns, OVS db, ovs-vswitchd, ovn-controller."""

    def __init__(self, cluster, i: int) -> None:
        self.cluster, self.index = cluster, i
        self.name = self.system_id = f"node{i}"
        self.netns = f"{cluster.prefix}-n{i}"
        self.state_dir = cluster.dir / f"n{i}"
        self.mgmt_ip, self.encap_ip = f"{MG}.{10 + i}", f"{UL}.{10 + i}"
        self.brphy_mac = f"02:00:00:00:50:{i:02x}"
        self.ovs_remote = f"unix:{self.state_dir}/db.sock"
        self.env = ovs_env(self.state_dir)
        self.daemons: dict[str, Daemon] = {}

    def __repr__(self) -> str:
        return f"<Node {self.name} netns={self.netns}>"

    def run(self, argv, *, check=True, timeout=30, env=None, input=None) -> subprocess.CompletedProcess:
        """argv inside this node's netns, with its OVS_RUNDIR/OVN_RUNDIR... env (plus `env`)."""
        return run(argv, netns=self.netns, env={**self.env, **(env or {})}, check=check, timeout=timeout,
                   input=input)

    def popen(self, argv, *, env=None, **kw) -> subprocess.Popen:
        """A long-running process inside this node's netns (e.g. an agent); stopped by PID at down()
        if still running. Its env is the node's OVS env plus `env`."""
        return self.cluster.popen(argv, netns=self.netns, env={**self.env, **(env or {})}, **kw)

    def vsctl(self, *args, timeout=10) -> str:
        return run(["ovs-vsctl", f"--db={self.ovs_remote}", f"--timeout={timeout}", *args],
                   env=self.env, timeout=timeout + 5).stdout

    def appctl(self, *args, target="vswitchd") -> str:
        """ovs-appctl to this node's ovs-vswitchd ("vswitchd"), ovsdb-server ("ovsdb") or
        ovn-controller ("controller")."""
        return run(["ovs-appctl", "-t", self.ctl(target), *args], env=self.env).stdout

    def ctl(self, target: str) -> str:
        if target == "controller":
            return str(self.state_dir / f"ovn-controller.{self.daemons['controller'].pid}.ctl")
        return str(self.state_dir / f"{target}.ctl")

    def chassis_external_ids(self) -> dict[str, str]:
        """What makes this node an OVN chassis (Open_vSwitch external_ids), as the harness sets it
        with chassis=True and as an agent's EnsureChassis is expected to."""
        return {"system-id": self.system_id, "hostname": self.name, "ovn-remote": self.cluster.sb_remotes,
                "ovn-encap-type": "geneve", "ovn-encap-ip": self.encap_ip, "ovn-bridge": "br-int",
                "ovn-bridge-datapath-type": "netdev"}

    def agent_overrides(self) -> list[str]:
        """`--set` values for a devcloud-agent running in this node's netns against the cluster
        (state dir, socket etc. are the caller's; agents.py has the whole node agent)."""
        return ["network.enabled=true", "network.embedded_ovn=false", f"network.ovn_nb={self.cluster.nb_remotes}",
                f"network.ovn_sb={self.cluster.sb_remotes}", f"network.ovs_db={self.ovs_remote}",
                f"network.host_netns={self.netns}",
                "network.datapath_type=netdev"]      # no kernel datapath here: br-int must stay netdev

    def tunnel_ports(self) -> list[str]:
        return self.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve").split()



class NodesMixin:
    """Node bring-up and chassis control for Cluster."""

    def _node_up(self, node: Node) -> None:
        d, ns, env = node.state_dir, node.netns, node.env
        d.mkdir()
        run(["ovsdb-tool", "create", f"{d}/conf.db", VS_SCHEMA])
        common = ["--no-chdir", "-vsyslog:off", "-vconsole:off"]
        node.daemons["ovsdb"] = Daemon(
            f"{node.name}-ovsdb", ["ovsdb-server", *common, f"--pidfile={d}/ovsdb-server.pid",
                                   f"--log-file={d}/ovsdb-server.log", f"--unixctl={d}/ovsdb.ctl",
                                   f"--remote=punix:{d}/db.sock", f"{d}/conf.db"],
            ns, env, d / "ovsdb.stderr", lambda: sock_ready(d / "db.sock")).start()
        node.vsctl("--no-wait", "init")
        if self.chassis:
            self.configure_chassis(node.index, wait=False)
        node.daemons["vswitchd"] = self._vswitchd(node).start()
        # br-phy holds the tunnel endpoint: userspace tunnels are routed (ovs/route) and
        # ARP-resolved (tnl/neigh) on an OVS bridge; hwaddr pins its MAC.
        node.vsctl("--", "--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int",
                   "datapath_type=netdev", "fail-mode=secure", "other_config:disable-in-band=true",
                   "--", "--may-exist", "add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
                   f"other_config:hwaddr={node.brphy_mac}", "--", "--may-exist", "add-port", "br-phy", "eth1")
        ip_batch(ns, [f"addr add {node.encap_ip}/24 dev br-phy", f"link set br-phy mtu {self.underlay_mtu} up"])
        if self.start_controllers:
            self.start_chassis(node.index)

    def _vswitchd(self, node: Node) -> Daemon:
        d = node.state_dir
        return Daemon(f"{node.name}-vswitchd", ["ovs-vswitchd", "--no-chdir", "-vsyslog:off", "-vconsole:off",
                                                f"--pidfile={d}/ovs-vswitchd.pid", f"--log-file={d}/ovs-vswitchd.log",
                                                f"--unixctl={d}/vswitchd.ctl", node.ovs_remote],
                      node.netns, node.env, d / "vswitchd.stderr", lambda: sock_ready(d / "vswitchd.ctl"))

    def crash_datapath(self, i: int) -> None:
        """Node i loses its chassis as a crash would: SIGKILL its ovn-controller and ovs-vswitchd by
        PID (the node's ovsdb-server and agent keep running). Its tunnels and BFD go silent."""
        node = self.node(i)
        for name in ("controller", "vswitchd"):
            dmn = node.daemons.get(name)
            if dmn is not None and dmn.running():
                dmn.kill()
        (node.state_dir / "vswitchd.ctl").unlink(missing_ok=True)

    def restart_datapath(self, i: int) -> float:
        """Start node i's ovs-vswitchd and ovn-controller again (after crash_datapath); returns
        seconds until both control sockets answer."""
        node = self.node(i)
        t = time.monotonic()
        node.daemons["vswitchd"] = self._vswitchd(node).start()
        self.start_chassis(i)
        return time.monotonic() - t

    def wait_chassis(self, timeout: float = 30) -> None:
        """Until every node's chassis is in the SB (e.g. after agents' EnsureChassis)."""
        want = {n.system_id for n in self.nodes}
        wait_until(lambda: want <= set(self.sbctl("--bare", "--columns=name", "list", "Chassis").split()),
                   timeout, f"chassis {sorted(want)} in SB")

    def configure_chassis(self, i: int, wait: bool = True) -> None:
        """Set node i's chassis external_ids (what Cluster(chassis=False) leaves to an agent)."""
        node = self.node(i)
        node.vsctl(*(["--no-wait"] if not wait else []), "set", "Open_vSwitch", ".",
                   *(f"external_ids:{k}={v}" for k, v in node.chassis_external_ids().items()))

    def _controller(self, node: Node) -> Daemon:
        d = node.state_dir
        return Daemon(f"{node.name}-controller",
                      ["ovn-controller", "--no-chdir", "-vsyslog:off", "-vconsole:off",
                       f"--pidfile={d}/ovn-controller.pid", f"--log-file={d}/ovn-controller.log", node.ovs_remote],
                      node.netns, node.env, d / "controller.stderr",
                      lambda: sock_ready(d / f"ovn-controller.{node.daemons['controller'].pid}.ctl"))

    def start_chassis(self, i: int) -> float:
        """Start node i's ovn-controller (a new PID); returns seconds until its control socket is up."""
        node = self.node(i)
        old = node.daemons.get("controller")
        if old and old.running():
            raise RuntimeError(f"{node.name}: ovn-controller already running (pid {old.pid})")
        dmn = self._controller(node)
        node.daemons["controller"] = dmn
        dmn.start()
        return dmn.start_seconds

    def stop_chassis(self, i: int, sig: int = signal.SIGTERM, timeout: float = 10) -> float:
        """Stop node i's ovn-controller by PID (SIGTERM: no cleanup, the Chassis row stays);
        returns seconds until it exited."""
        dmn = self.node(i).daemons["controller"]
        t = time.monotonic()
        dmn.signal(sig)
        try:
            dmn.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            dmn.kill()
        return time.monotonic() - t

    def _wait_chassis(self) -> None:
        self.wait_chassis(30)

    def prime_tunnels(self, timeout: float = 30) -> None:
        """Wait for the full mesh of geneve ports, then make every node's OVS learn every other
        node's br-phy MAC (tnl/neigh), or the first overlay packet towards each chassis is dropped
        while OVS ARPs itself. OVS snoops only ARP *replies* (and gratuitous ARPs) on br-phy, and a
        kernel that was just asked by a peer answers from its neighbour table without ARPing: so
        node by node, flush its kernel's br-phy neighbours, then ping every other encap IP."""
        wait_until(lambda: all(len(n.tunnel_ports()) >= self.n - 1 for n in self.nodes), timeout,
                   "a geneve port to every other chassis on every node")
        with ThreadPoolExecutor(max_workers=8) as ex:
            for _ in range(3):
                todo = [n for n in self.nodes if self._neigh_missing(n)]
                if not todo:
                    return
                for n in todo:
                    n.run(["ip", "neigh", "flush", "dev", "br-phy"])
                    peers = [m.encap_ip for m in self.nodes if m is not n]
                    list(ex.map(lambda ip: n.run(["ping", "-c1", "-W1", ip], check=False), peers))
        missing = {n.name: self._neigh_missing(n) for n in self.nodes}
        raise RuntimeError(f"tunnel neighbours not learned: {missing}")

    def _neigh_missing(self, n: Node) -> list[str]:
        known = n.appctl("tnl/neigh/show")
        return [m.encap_ip for m in self.nodes if m is not n and f"{m.encap_ip} " not in known]

    # ------------------------------------------------------------------ central tools and raft
