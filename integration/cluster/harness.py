"""A simulated multi-node OVN cloud for tests (a port of shared/reference/multi-node).

    with Cluster(nodes=3, raft=True) as c:           # or c = Cluster(...).up(); ...; c.down()
        n1 = c.node(1)                                # nodes are numbered 1..N, system-id "node1"...
        n1.run(["ovs-appctl", "dpctl/dump-flows"])    # in node1's netns, with node1's OVS/OVN env
        c.nbctl("show"); c.leader("nb"); c.kill_member("nb", 2); c.restart_member("nb", 2)

API (README.md has the numbers): Cluster(nodes=3, raft=False, prefix=None, underlay_mtu=1500,
election_timer_ms=1000, chassis=True, start_controllers=True, keep_dir=False); .up() / .down()
(idempotent, returns a report) / context manager; .node(i) -> Node with .netns .state_dir
.ovs_remote .encap_ip .mgmt_ip .system_id .env .run() .popen() .vsctl() .appctl(target=vswitchd|
ovsdb|controller) .chassis_external_ids() .agent_overrides() .tunnel_ports() .daemons;
.nb_remotes / .sb_remotes; .nbctl() / .sbctl() (in central 1's netns, retry= seconds during an
election); .cluster_status(db, k) / .leader(db) / .member(db, k) / .kill_member(db, k, sig) /
.restart_member(db, k); .stop_chassis(i) / .start_chassis(i) / .configure_chassis(i) /
.wait_chassis() / .prime_tunnels() / .crash_datapath(i) / .restart_datapath(i); .add_uplink(nodes)
(uplink.py); .popen(argv, netns=...); .add_instance_port(node, team, name, mac, ip,
gateway=None, lsp=True) -> Instance (.ping(), .run()) / .wait_ports_up(*names) /
.remove_instance_port(name); .all_pids(); .timings. A devcloud-agent per node: agents.py.

Layout (P = the run's prefix "cl<pid>n<k>", never "dc..."/"devcloud..."; D = one short mktemp dir
/tmp/clXXXXXXXX, because unix socket paths are limited to 107 bytes):

    P-ul        linux bridges br-ul (underlay 192.168.50.0/24) and br-mg (management 192.168.60.0/24)
    P-c1..3     OVN central members: eth0 192.168.60.k; NB :6641, SB :6642 (raft :6643/:6644), northd
                (standalone: only P-c1). State in D/c<k>.
    P-n1..N     nodes: mgmt0 192.168.60.(10+i) (plain kernel veth, the control plane);
                eth1 = underlay veth, a port of OVS bridge br-phy (netdev) which holds the encap IP
                192.168.50.(10+i); br-int (netdev, fail-mode secure). ovsdb-server + ovs-vswitchd +
                ovn-controller, all state in D/n<i> (OVS_RUNDIR = OVS_DBDIR = OVS_LOGDIR = OVN_RUNDIR).
    P-v-<name>  instance namespaces made by add_instance_port (eth0 <-veth-> <name> on br-int).

The addresses exist only inside these namespaces: every TCP client of the central runs in one of
them (Node.run, Cluster.nbctl), never in the host namespace. Unix sockets (D/n<i>/db.sock, the
.ctl sockets) are reachable from anywhere.

Processes: every daemon is a child of this Python process (Popen, no --detach, own session),
started inside its netns with `nsenter --net=/run/netns/<ns> --` (network namespace only) and
stopped by its PID (SIGTERM to all at once, SIGKILL after 5 s). nsenter setns()es and execs, so
the Popen PID is the daemon's PID. Namespaces are created by name, remembered, and only those are
deleted. Nothing is looked up or killed by name. An atexit hook brings down clusters still up.

nsenter vs `ip netns exec` (checked with strace on OVS 3.1.0 / OVN 23.03.1, whole life cycle:
start, bridges, tunnels, instance ports, ping, TCP): `ip netns exec` also unshares a mount
namespace and remounts /sys so that /sys/class/net shows the target netns; that private mount
namespace keeps a copy of every mount of the moment (pins ZFS datasets). None of the daemons
needs it. ovs-vswitchd reads under /sys only /sys/devices/system/{cpu,node} (CPU/NUMA topology,
the same everywhere), /proc/self/status, /proc/sys/kernel/cap_last_cap and
/proc/sys/net/core/netdev_max_backlog (ENOENT outside the initial netns, with either launcher:
/proc/sys/net follows the reader's netns, not the mount namespace); it creates the tap devices of
internal ports (br-int, br-phy) through /dev/net/tun in the netns it runs in, and learns routes and
neighbours over netlink, which follows the netns. ovn-controller and ovsdb-server touch no
/sys/class/net either. Nothing calls setns/unshare/mount. Tunnels (tnl_push/tnl_pop), ping, MTU
and TCP across nodes work with nsenter only (test_cluster_harness.py). What does NOT follow
nsenter: /sys/class/net/<dev>/... (shows the host's devices). A client that needs that view (none
of ours) must use `ip netns exec` or mount its own sysfs.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from integration.cluster.central import MG, CentralMixin
from integration.cluster.instances import InstancesMixin
from integration.cluster.node import Node, NodesMixin
from integration.cluster.procs import Daemon, NetnsSet, in_netns, ip_batch, run, stop_all, wait_until
from integration.cluster.uplink import UplinkMixin

BINARIES = ("ovsdb-tool", "ovsdb-server", "ovsdb-client", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl",
            "ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-sbctl", "ovn-appctl", "nsenter", "ip",
            "ethtool", "ping")
GENEVE_OVERHEAD = 58                 # 14 inner eth + 20 ip + 8 udp + 8 geneve + 8 OVN option


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


_live: set = set()                   # clusters up in this process: atexit brings them down
_counter = iter(range(1, 1 << 30))


@atexit.register
def _down_leftovers() -> None:
    for c in list(_live):
        c.down()


class Cluster(CentralMixin, NodesMixin, InstancesMixin, UplinkMixin):
    """N simulated nodes + an OVN central (standalone or Raft). See the module docstring."""

    def __init__(self, nodes: int = 3, raft: bool = False, prefix: str | None = None,
                 underlay_mtu: int = 1500, election_timer_ms: int = 1000, chassis: bool = True,
                 start_controllers: bool = True, keep_dir: bool = False) -> None:
        """chassis=False: leave system-id/ovn-remote/encap external_ids unset (an agent's
        EnsureChassis sets them); bridges, br-phy and the encap IP are ready either way.
        keep_dir: leave the state dir (logs) after down()."""
        if not 1 <= nodes <= 200:
            raise ValueError("nodes must be 1..200")
        self.n, self.raft = nodes, raft
        self.prefix = prefix or f"cl{os.getpid()}n{next(_counter)}"
        if self.prefix.startswith(("dc", "devcloud")) or not re.fullmatch(r"[a-z][a-z0-9]{0,15}", self.prefix):
            raise ValueError(f"prefix {self.prefix!r}: 1-16 of [a-z0-9], not starting with dc/devcloud")
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
        self.uplink = None                                   # add_uplink()
        self._lock = threading.Lock()
        self.timings: dict[str, float] = {}
        self.is_up = False

    # ------------------------------------------------------------------ addresses
    @property
    def ul_ns(self) -> str:
        return f"{self.prefix}-ul"

    def central_ns(self, k: int = 1) -> str:
        return f"{self.prefix}-c{k}"

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
