"""A simulated multi-node OVN cloud for tests (port of shared/reference/multi-node).

    with Cluster(nodes=3, raft=True) as c:         # or c = Cluster(...); c.up(); ...; c.down()
        n1 = c.node(1)                              # nodes are numbered 1..N (system-id "node1", ...)
        n1.run(["ovs-appctl", "dpctl/dump-flows"])  # inside node1's netns, with node1's OVS/OVN env
        c.nbctl("show"); c.leader("nb"); c.kill_member("nb", 2); c.restart_member("nb", 2)

Layout (P = the run's prefix, unique per run, never "dc"/"devcloud"; D = one short mktemp dir):

    P-ul        linux bridges br-ul (underlay 192.168.50.0/24) and br-mg (management 192.168.60.0/24)
    P-c1..3     OVN central members: eth0 192.168.60.k; NB :6641, SB :6642 (raft :6643/:6644), northd
                (standalone: only P-c1). State in D/c<k>.
    P-n1..N     nodes: mgmt0 192.168.60.(10+i) (plain kernel veth, the control plane);
                eth1 = underlay veth, a port of OVS bridge br-phy (netdev) which holds the encap IP
                192.168.50.(10+i); br-int (netdev, fail-mode secure). ovsdb-server + ovs-vswitchd +
                ovn-controller, all state in D/n<i> (OVS_RUNDIR = OVS_DBDIR = OVS_LOGDIR = OVN_RUNDIR).
    P-v-<name>  instance namespaces made by add_instance_port (eth0 <-veth-> <name> on br-int).

Processes: every daemon is a child of this Python process (Popen, no --detach, own session),
started inside its netns with `nsenter --net=/run/netns/<ns> --` (network namespace only) and
stopped by its PID (SIGTERM to all at once, SIGKILL after 5 s). Namespaces are created by name,
listed, and only those are deleted. Nothing is looked up or killed by name.

nsenter vs `ip netns exec` (checked on OVS 3.1.0 / OVN 23.03.1): `ip netns exec` additionally
unshares a mount namespace and remounts /sys so that /sys/class/net shows the target netns; that
private mount namespace keeps a copy of every mount of the moment (pins ZFS datasets). None of
the daemons needs it: strace of ovs-vswitchd (netdev datapath, br-phy + eth1 + tap internal
ports) shows /sys reads only under /sys/devices/system/{node,cpu} (NUMA/CPU topology, the same in
every netns) and no /sys/class/net access; the tap devices of internal ports are created in the
netns the process is in; routes/neighbours come from netlink sockets, which follow the netns;
sysctl net.* under /proc/sys/net follows the netns of the writing process. Tunnels (tnl_push /
tnl_pop), ping and TCP across nodes work with nsenter only (test_cluster_harness.py). What does
NOT follow nsenter: reading /sys/class/net/<dev>/... (shows the host's devices). A client that
needs that view (none of ours does) must use `ip netns exec` or its own sysfs mount.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from integration.cluster.instances import InstancesMixin
from integration.cluster.procs import (CmdError, Daemon, NetnsSet, in_netns, ip_batch, run, sock_ready,
                                       stop_all, wait_until)

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
VS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BINARIES = ("ovsdb-tool", "ovsdb-server", "ovsdb-client", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl",
            "ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-sbctl", "ovn-appctl", "nsenter", "ip",
            "ethtool", "ping")
UL, MG = "192.168.50", "192.168.60"
DB = {"nb": ("OVN_Northbound", NB_SCHEMA, 6641, 6643), "sb": ("OVN_Southbound", SB_SCHEMA, 6642, 6644)}
GENEVE_OVERHEAD = 58                 # 14 inner eth + 20 ip + 8 udp + 8 geneve + 8 OVN option


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def ovs_env(d: Path) -> dict:
    env = dict(os.environ)
    for k in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR"):
        env[k] = str(d)
    return env


_live: set = set()                   # clusters up in this process: atexit brings them down
_counter = iter(range(1, 1 << 30))


@atexit.register
def _down_leftovers() -> None:
    for c in list(_live):
        c.down()


class Node:
    """One simulated hypervisor: its netns, OVS db, ovs-vswitchd, ovn-controller."""

    def __init__(self, cluster: "Cluster", i: int) -> None:
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

    def tunnel_ports(self) -> list[str]:
        return self.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve").split()


class Cluster(InstancesMixin):
    def __init__(self, nodes: int = 3, raft: bool = False, prefix: str | None = None,
                 underlay_mtu: int = 1500, election_timer_ms: int = 1000, chassis: bool = True,
                 start_controllers: bool = True, keep_dir: bool = False) -> None:
        """chassis=False: leave system-id/ovn-remote/encap external_ids unset (an agent's
        EnsureChassis sets them); bridges, br-phy and the encap IP are ready either way.
        keep_dir: leave the state dir (logs) after down()."""
        if not 1 <= nodes <= 200:
            raise ValueError("nodes must be 1..200")
        self.n, self.raft = nodes, raft
        self.prefix = prefix or f"cl{os.getpid() % 100000}{next(_counter)}"
        if self.prefix.startswith(("dc", "devcloud")) or not re.fullmatch(r"[a-z][a-z0-9]{0,11}", self.prefix):
            raise ValueError(f"prefix {self.prefix!r}: 1-12 of [a-z0-9], not starting with dc/devcloud")
        self.underlay_mtu, self.instance_mtu = underlay_mtu, underlay_mtu - GENEVE_OVERHEAD
        self.election_timer_ms, self.chassis, self.start_controllers = election_timer_ms, chassis, start_controllers
        self.keep_dir = keep_dir
        self.members = [1, 2, 3] if raft else [1]
        self.dir: Path | None = None
        self.netns = NetnsSet()
        self.nodes: list[Node] = []
        self.central: dict[tuple[str, int], Daemon] = {}     # (nb|sb|northd, member) -> daemon
        self.procs: list[subprocess.Popen] = []              # popen() children
        self.instances: dict = {}                            # name -> Instance (add_instance_port)
        self._lock = threading.Lock()
        self.timings: dict[str, float] = {}
        self.is_up = False

    # ------------------------------------------------------------------ addresses
    @property
    def ul_ns(self) -> str:
        return f"{self.prefix}-ul"

    def central_ns(self, k: int = 1) -> str:
        return f"{self.prefix}-c{k}"

    def _remotes(self, port: int) -> str:
        return ",".join(f"tcp:{MG}.{k}:{port}" for k in self.members)

    @property
    def nb_remotes(self) -> str:
        return self._remotes(6641)

    @property
    def sb_remotes(self) -> str:
        return self._remotes(6642)

    def node(self, i: int) -> Node:
        if not 1 <= i <= self.n:
            raise IndexError(f"nodes are numbered 1..{self.n}")
        return self.nodes[i - 1]

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Cluster":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> "Cluster":
        miss = missing_binaries()
        if miss:
            raise RuntimeError(f"missing binaries: {', '.join(miss)}")
        if any(os.path.exists(f"/run/netns/{self.prefix}-{s}") for s in ("ul", "c1", "n1")):
            raise RuntimeError(f"namespaces with prefix {self.prefix}- exist: not ours")
        self.dir = Path(tempfile.mkdtemp(prefix="cl", dir="/tmp"))
        _live.add(self)
        t0 = time.monotonic()
        try:
            self._step("netns + links", self._links)
            self._step("central", self._central_up)
            self.nodes = [Node(self, i) for i in range(1, self.n + 1)]
            with ThreadPoolExecutor(max_workers=min(self.n, 8)) as ex:
                list(ex.map(self._node_up, self.nodes))
            self.timings["nodes (parallel)"] = time.monotonic() - t0 - sum(self.timings.values())
            if self.chassis and self.start_controllers:
                self._step("chassis in SB", self._wait_chassis)
                if self.n > 1:
                    self._step("tunnel mesh + neighbour priming", self.prime_tunnels)
        except BaseException:
            self.down()
            raise
        self.timings["total up"] = time.monotonic() - t0
        self.is_up = True
        return self

    def _step(self, name: str, fn) -> None:
        t = time.monotonic()
        fn()
        self.timings[name] = time.monotonic() - t

    def down(self) -> dict:
        """Stop everything we started (by PID), delete our namespaces and the state dir.
        Idempotent; never raises for cleanup problems (returns them)."""
        report: dict = {"killed": [], "netns_failed": []}
        if self.dir is None:
            return report
        t0 = time.monotonic()
        with self._lock:
            procs = list(self.procs)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                report["killed"].append(p.pid)
        daemons = list(self.central.values()) + [d for n in self.nodes for d in n.daemons.values()]
        report["killed"] += stop_all(daemons)
        report["netns_failed"] = self.netns.cleanup()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        report["dir"] = str(self.dir)
        report["seconds"] = time.monotonic() - t0
        self.timings["down"] = report["seconds"]
        self.dir = None if not self.keep_dir else self.dir
        self.is_up = False
        _live.discard(self)
        return report

    def all_pids(self) -> list[int]:
        """PIDs of every process this cluster started (dead or alive)."""
        ds = list(self.central.values()) + [d for n in self.nodes for d in n.daemons.values()]
        return [d.pid for d in ds if d.pid] + [p.pid for p in self.procs]

    # ------------------------------------------------------------------ build
    def _links(self) -> None:
        P, ul = self.prefix, self.ul_ns
        names = [ul] + [self.central_ns(k) for k in self.members] + [f"{P}-n{i}" for i in range(1, self.n + 1)]
        for ns in names:
            self.netns.add(ns)
        host = [f"link add br-ul netns {ul} mtu {self.underlay_mtu} type bridge",
                f"link add br-mg netns {ul} type bridge"]
        for k in self.members:
            host.append(f"link add mg-c{k} netns {ul} type veth peer name eth0 netns {self.central_ns(k)}")
        for i in range(1, self.n + 1):
            m = self.underlay_mtu
            host.append(f"link add ul-n{i} netns {ul} mtu {m} type veth peer name eth1 netns {P}-n{i} mtu {m}")
            host.append(f"link add mg-n{i} netns {ul} type veth peer name mgmt0 netns {P}-n{i}")
        ip_batch(None, host)
        ip_batch(ul, ["link set br-ul up", "link set br-mg up"]
                 + [f"link set mg-c{k} master br-mg up" for k in self.members]
                 + [f"link set ul-n{i} master br-ul up" for i in range(1, self.n + 1)]
                 + [f"link set mg-n{i} master br-mg up" for i in range(1, self.n + 1)])
        for k in self.members:
            ip_batch(self.central_ns(k), [f"addr add {MG}.{k}/24 dev eth0", "link set eth0 up"])
        for i in range(1, self.n + 1):
            # OVS reads eth1 through AF_PACKET, the kernel still sees its frames: keep the kernel
            # off it (it would answer ARP for br-phy's IP with eth1's MAC and break the tunnel).
            ip_batch(f"{P}-n{i}", ["link set eth1 arp off", "link set eth1 up",
                                   f"addr add {MG}.{10 + i}/24 dev mgmt0", "link set mgmt0 up"])
            run(["sysctl", "-qw", "net.ipv6.conf.eth1.disable_ipv6=1"], netns=f"{P}-n{i}")

    def _member_daemon(self, db: str, k: int) -> Daemon:
        d = self.dir / f"c{k}"
        if db == "northd":
            argv = ["ovn-northd", "--no-chdir", "-vsyslog:off", "-vconsole:off", f"--pidfile={d}/northd.pid",
                    f"--log-file={d}/northd.log", f"--unixctl={d}/northd.ctl",
                    f"--ovnnb-db={self.nb_remotes}", f"--ovnsb-db={self.sb_remotes}"]
            ready = lambda: sock_ready(d / "northd.ctl")  # noqa: E731
        else:
            port = DB[db][2]
            argv = ["ovsdb-server", "--no-chdir", "-vsyslog:off", "-vconsole:off", f"--pidfile={d}/{db}.pid",
                    f"--log-file={d}/{db}.log", f"--unixctl={d}/{db}.ctl", f"--remote=punix:{d}/{db}.sock",
                    f"--remote=ptcp:{port}:{MG}.{k}", f"{d}/{db}.db"]
            ready = lambda: sock_ready(d / f"{db}.sock")  # noqa: E731
        return Daemon(f"c{k}-{db}", argv, self.central_ns(k), ovs_env(d), d / f"{db}.stderr", ready)

    def _central_up(self) -> None:
        for k in self.members:
            (self.dir / f"c{k}").mkdir()
        for db, (name, schema, _port, rport) in DB.items():
            c1 = self.dir / "c1" / f"{db}.db"
            if not self.raft:
                run(["ovsdb-tool", "create", str(c1), schema])
                continue
            run(["ovsdb-tool", f"--election-timer={self.election_timer_ms}", "create-cluster", str(c1), schema,
                 f"tcp:{MG}.1:{rport}"])
            for k in (2, 3):
                run(["ovsdb-tool", "join-cluster", str(self.dir / f"c{k}" / f"{db}.db"), name,
                     f"tcp:{MG}.{k}:{rport}", f"tcp:{MG}.1:{rport}"])
        for k in self.members:
            for db in ("nb", "sb"):
                self.central[(db, k)] = self._member_daemon(db, k).start()
        if self.raft:
            waits = [subprocess.Popen(["ovsdb-client", "wait", f"unix:{self.dir}/c{k}/{db}.sock", DB[db][0],
                                       "connected"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for k in self.members for db in ("nb", "sb")]
            for w in waits:
                try:
                    if w.wait(timeout=30) != 0:
                        raise RuntimeError(f"{w.args}: {w.stderr.read().decode()}")
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
                    raise RuntimeError(f"raft member did not join: {w.args} (logs in {self.dir})") from None
        for k in self.members:
            self.central[("northd", k)] = self._member_daemon("northd", k).start()

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
        ids = ["external_ids:ovn-bridge=br-int", "external_ids:ovn-bridge-datapath-type=netdev"]
        if self.chassis:
            ids += [f"external_ids:system-id={node.system_id}", f"external_ids:hostname={node.name}",
                    f"external_ids:ovn-remote={self.sb_remotes}", "external_ids:ovn-encap-type=geneve",
                    f"external_ids:ovn-encap-ip={node.encap_ip}"]
        node.vsctl("--no-wait", "init", "--", "set", "Open_vSwitch", ".", *ids)
        node.daemons["vswitchd"] = Daemon(
            f"{node.name}-vswitchd", ["ovs-vswitchd", *common, f"--pidfile={d}/ovs-vswitchd.pid",
                                      f"--log-file={d}/ovs-vswitchd.log", f"--unixctl={d}/vswitchd.ctl",
                                      node.ovs_remote],
            ns, env, d / "vswitchd.stderr", lambda: sock_ready(d / "vswitchd.ctl")).start()
        # br-phy holds the tunnel endpoint: userspace tunnels are routed (ovs/route) and
        # ARP-resolved (tnl/neigh) on an OVS bridge; hwaddr pins its MAC.
        node.vsctl("--", "--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int",
                   "datapath_type=netdev", "fail-mode=secure", "other_config:disable-in-band=true",
                   "--", "--may-exist", "add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
                   f"other_config:hwaddr={node.brphy_mac}", "--", "--may-exist", "add-port", "br-phy", "eth1")
        ip_batch(ns, [f"addr add {node.encap_ip}/24 dev br-phy", f"link set br-phy mtu {self.underlay_mtu} up"])
        if self.start_controllers:
            self.start_chassis(node.index)

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
        want = {n.system_id for n in self.nodes}
        wait_until(lambda: want <= set(self.sbctl("--bare", "--columns=name", "list", "Chassis").split()),
                   30, f"chassis {sorted(want)} in SB")

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
    def popen(self, argv, *, netns: str | None = None, env=None, **kw) -> subprocess.Popen:
        """A child process (in `netns` if given) that down() stops by PID if it still runs
        (SIGTERM, SIGKILL after 5 s). Returns once the process is in `netns`; its PID is the
        program's own (nsenter execs it)."""
        full = (in_netns(netns) if netns else []) + list(argv)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(full, env=env, **kw)
        with self._lock:
            self.procs.append(p)
        if netns:     # nsenter setns()es then execs argv in the same PID: return once it is inside
            want = os.stat(f"/run/netns/{netns}").st_ino
            wait_until(lambda: p.poll() is not None or os.stat(f"/proc/{p.pid}/ns/net").st_ino == want, 5,
                       f"pid {p.pid} to enter {netns}", interval=0.001)
        return p

    def nbctl(self, *args, timeout: float = 10) -> str:
        """ovn-nbctl against all NB members over TCP, run in central 1's netns. Raises CmdError."""
        return run(["ovn-nbctl", f"--db={self.nb_remotes}", f"--timeout={timeout:g}", *args],
                   netns=self.central_ns(1), timeout=timeout + 5).stdout

    def sbctl(self, *args, timeout: float = 10) -> str:
        return run(["ovn-sbctl", f"--db={self.sb_remotes}", f"--timeout={timeout:g}", *args],
                   netns=self.central_ns(1), timeout=timeout + 5).stdout

    def member(self, db: str, k: int) -> Daemon:
        """The daemon of central member k: db in nb|sb|northd."""
        return self.central[(db, k)]

    def cluster_status(self, db: str, k: int) -> dict:
        """Parsed `ovs-appctl -t <ctl> cluster/status` of member k: role, term, leader, servers."""
        out = run(["ovs-appctl", "-t", f"{self.dir}/c{k}/{db}.ctl", "cluster/status", DB[db][0]],
                  timeout=5).stdout
        st: dict = {"servers": [], "raw": out}
        in_servers = False
        for line in out.splitlines():
            if in_servers and line.startswith(" "):
                st["servers"].append(line.strip())
                continue
            in_servers = line.startswith("Servers:")
            key, _, val = line.partition(":")
            if key in ("Role", "Term", "Leader", "Status", "Cluster ID", "Server ID"):
                st[key.lower().replace(" ", "_")] = val.strip()
        return st

    def leader(self, db: str) -> int | None:
        """Which member (1..3) is the Raft leader of nb|sb now (None if none is)."""
        for k in self.members:
            if self.member(db, k).running():
                try:
                    if self.cluster_status(db, k).get("role") == "leader":
                        return k
                except CmdError:
                    pass
        return None

    def kill_member(self, db: str, k: int, sig: int = signal.SIGKILL) -> int:
        """Signal member k's nb|sb|northd by PID (default SIGKILL) and reap it; returns the PID."""
        dmn = self.member(db, k)
        pid = dmn.pid
        dmn.signal(sig)
        dmn.proc.wait(timeout=10)
        return pid

    def restart_member(self, db: str, k: int, timeout: float = 30) -> float:
        """Start member k's nb|sb|northd again; for nb/sb wait until it rejoined the cluster.
        Returns seconds from start to joined/ready."""
        if self.member(db, k).running():
            raise RuntimeError(f"c{k}-{db} is still running")
        dmn = self._member_daemon(db, k)
        self.central[(db, k)] = dmn
        t = time.monotonic()
        dmn.start()
        if db != "northd" and self.raft:
            run(["ovsdb-client", "wait", f"unix:{self.dir}/c{k}/{db}.sock", DB[db][0], "connected"],
                timeout=timeout)
        return time.monotonic() - t
