"""The embedded local OVN stack: NB + SB ovsdb-server, ovn-northd, the local
Open_vSwitch ovsdb-server, ovs-vswitchd (userspace datapath) and
ovn-controller, all under one directory.

One implementation for the agent's embedded default ([network].ovn_nb empty),
the test fixtures (tests/support/ovn.py) and bench. Daemons run as children
of the calling process (no --detach), are started in dependency order,
stopped in reverse order, by PID only. ovs-vswitchd and ovn-controller run
inside their own network namespace: this host has no openvswitch kernel
module, so br-int uses datapath_type=netdev, and the netdevs bound to it
must live in that namespace (the network plane's "host netns").

A stale daemon of a previous run (agent crashed) is found through its
pidfile in our directory and stopped by that PID before starting anew.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute, netns as pr_netns

from agent.drivers.base import Availability
from agent.drivers.embedded.processes import Adopted, alive, cmdline, in_netns, ns_inode, stop_pid
from agent.errors import FailedPrecondition, Unavailable
from agent.model.marks import OWNER, OWNER_KEY

log = logging.getLogger(__name__)

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
_BINARIES = ("ovsdb-tool", "ovsdb-server", "ovn-northd", "ovs-vswitchd", "ovn-controller",
             "ovs-vsctl", "ovn-sbctl", "ip")
_SUN_PATH_MAX = 107                      # sockaddr_un.sun_path incl. NUL is 108 bytes


def _which(name: str) -> str | None:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin", *os.environ.get("PATH", "").split(":")):
        p = os.path.join(d, name)
        if d and os.access(p, os.X_OK):
            return p
    return None


def probe() -> Availability:
    """Whether the OVN/OVS binaries and schemas needed by the stack are installed."""
    missing = [b for b in _BINARIES if not _which(b)]
    missing += [s for s in (NB_SCHEMA, SB_SCHEMA, VSWITCH_SCHEMA) if not os.path.exists(s)]
    if missing:
        return Availability.missing("missing " + ", ".join(missing)
                                    + ": install the Debian packages ovn-central, ovn-host, openvswitch-switch")
    try:
        out = subprocess.run(["ovn-northd", "--version"], capture_output=True, text=True, timeout=5).stdout
        version = out.split()[2] if len(out.split()) > 2 else ""
    except (OSError, subprocess.SubprocessError):
        version = ""
    return Availability.ok(version, ["userspace-datapath"])


@dataclass
class _Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | Adopted | None = None
    restarts: list[float] = field(default_factory=list)   # monotonic times of supervisor restarts
    failed: str = ""                                       # set when the supervisor gave up


class OvnStack:
    """A local OVN + OVS stack under `directory`.

    start() is idempotent for a running stack; stop() is safe to call twice.
    Not thread-safe except for the supervisor thread it runs itself.
    """

    ORDER = ("nb", "sb", "northd", "ovsdb", "vswitchd", "controller")

    def __init__(self, directory: str | Path, *, system_id: str, netns: str,
                 encap_ip: str = "127.0.0.1", datapath_type: str = "netdev",
                 bridge: str = "br-int", fresh: bool = False) -> None:
        self.dir = Path(directory).resolve()
        self.system_id = system_id
        self.netns = netns
        self.encap_ip = encap_ip
        self.datapath_type = datapath_type
        self.bridge = bridge
        self.fresh = fresh
        self._children: dict[str, _Child] = {}
        self._created_netns = False
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.Lock()
        longest = self.dir / "controller.ctl"
        if len(str(longest).encode()) > _SUN_PATH_MAX - 4:
            raise FailedPrecondition(f"OVN stack directory {self.dir} is too long for unix sockets "
                                     f"(limit ~{_SUN_PATH_MAX - 20} bytes): choose a shorter [node].state_dir",
                                     reason="PATH_TOO_LONG")

    # -- addresses -------------------------------------------------------
    @property
    def nb_remote(self) -> str:
        """OVSDB remote of the Northbound database ("unix:<dir>/nb.sock"), running or not. Pure."""
        return f"unix:{self.dir / 'nb.sock'}"

    @property
    def sb_remote(self) -> str:
        """OVSDB remote of the Southbound database ("unix:<dir>/sb.sock"), running or not. Pure."""
        return f"unix:{self.dir / 'sb.sock'}"

    @property
    def ovs_remote(self) -> str:
        """OVSDB remote of the local Open_vSwitch database ("unix:<dir>/db.sock"), running or not. Pure."""
        return f"unix:{self.dir / 'db.sock'}"

    def pid(self, name: str) -> int | None:
        """PID of daemon `name` (one of ORDER) while it runs; None when it was never started,
        was stopped or has exited, or the name is unknown. Read-only; never raises."""
        child = self._children.get(name)
        return child.proc.pid if child and child.proc and child.proc.poll() is None else None

    def pids(self) -> set[int]:
        """PIDs of the daemons running now (started or adopted by us); empty when none runs.
        Read-only; never raises."""
        return {pid for pid in (self.pid(n) for n in self.ORDER) if pid}

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 20.0) -> None:
        """Create the databases (when absent), start every daemon, configure the
        chassis and br-int, and wait until ovn-controller registered the chassis.

        Idempotent: daemons already running are kept; a live daemon of a previous
        run (our pidfile, command line and namespaces) is adopted, a stale one is
        stopped by its PID and started anew; existing databases are kept (converted
        when their schema changed) unless `fresh`. Raises FailedPrecondition
        FACILITY_UNAVAILABLE when binaries or schemas are missing, Unavailable
        OVN_STACK_START_FAILED (a daemon or tool failed) or OVN_STACK_TIMEOUT
        (not up within `timeout`); on any failure everything started is stopped.
        """
        avail = probe()
        if not avail.available:
            raise FailedPrecondition(f"embedded OVN stack: {avail.reason}", reason="FACILITY_UNAVAILABLE")
        deadline = time.monotonic() + timeout
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare_dbs()
            self._ensure_netns()
            for name in self.ORDER:
                self._start_child(name, deadline)
                if name == "ovsdb":
                    self._init_open_vswitch(deadline)
                if name == "vswitchd":
                    self._ensure_bridge(deadline)
            self._wait_chassis(deadline)
        except BaseException:
            self.stop(remove_netns=self._created_netns)
            raise

    def stop(self, timeout: float = 5.0, *, remove_netns: bool = False) -> None:
        """Stop the supervisor and every daemon in reverse start order (SIGTERM,
        then SIGKILL after `timeout`), by PID. With remove_netns, also delete the
        namespace this stack created (which deletes every netdev in it); without,
        the namespace is deleted only when it holds nothing but lo and ovs-vswitchd's own
        netdevs, so a built data plane, and any netdev that is not ours, always survives.

        Idempotent: daemons already stopped are skipped, a second call does nothing more.
        Never raises for one daemon that will not stop (logged, the others are stopped);
        a namespace that cannot be removed is logged and kept."""
        self._stop.set()
        if self._supervisor and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout)
        for name in reversed(self.ORDER):
            try:
                self.stop_component(name, timeout)
            except Exception:   # one daemon that will not die must not leave the others running
                log.exception("stopping %s of the OVN stack failed; stopping the rest", name)
        if not remove_netns and self.netns in pr_netns.listnetns():
            others = self._netdevs_not_of_ovs()
            if others:
                log.info("keeping netns %s: it holds %s (the data plane, or not ours)", self.netns,
                         ", ".join(others[:10]) + ("..." if len(others) > 10 else ""))
            remove_netns = others == []
            self._created_netns = self._created_netns or remove_netns
        if remove_netns and self._created_netns:
            try:
                pr_netns.remove(self.netns)
            except OSError as exc:
                log.warning("removing netns %s: %s", self.netns, exc)
            self._created_netns = False

    def _netdevs_not_of_ovs(self) -> list[str] | None:
        """Netdevs in our namespace other than lo and those ovs-vswitchd makes itself (None when
        it cannot be read). Anything else (our instances' ports, or a netdev that is not ours)
        keeps the namespace: removing it would delete them."""
        try:
            with IPRoute(netns=self.netns, flags=0) as ipr:
                names = [l.get("ifname") for l in ipr.link("dump")]
        except OSError:
            return None
        return sorted(n for n in names if n not in ("lo", "ovs-netdev", self.bridge))

    def stop_component(self, name: str, timeout: float = 5.0) -> None:
        """Stop one daemon by its PID: SIGTERM, SIGKILL after `timeout` (used for fault tests and
        by stop()). Idempotent: not started or already stopped -> nothing to do; an exited one
        is only forgotten. Raises subprocess.TimeoutExpired if it survives SIGKILL for `timeout`."""
        child = self._children.get(name)
        if not child or not child.proc:
            return
        proc = child.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        child.proc = None

    def start_component(self, name: str, timeout: float = 10.0) -> None:
        """(Re)start one daemon that is not running (adopting a live one of a previous run) and
        wait for its socket. Idempotent: a running daemon is left alone. Raises Unavailable
        OVN_STACK_START_FAILED (it exited) or OVN_STACK_TIMEOUT (no socket within `timeout`);
        KeyError for an unknown name."""
        self._start_child(name, time.monotonic() + timeout)

    def status(self) -> dict[str, str]:
        """Each daemon of ORDER: "running", "stopped" (never started or stopped), "exited <rc>"
        or "failed: <why>" (the supervisor gave up). Read-only; never raises."""
        out = {}
        for name in self.ORDER:
            child = self._children.get(name)
            if child is None or child.proc is None:
                out[name] = f"failed: {child.failed}" if child and child.failed else "stopped"
            elif child.proc.poll() is None:
                out[name] = "running"
            else:
                out[name] = f"exited {child.proc.returncode}"
        return out

    def health(self) -> Availability:
        """Available when every daemon runs; else missing, naming the ones that do not and where
        their logs are. Read-only; never raises."""
        bad = {k: v for k, v in self.status().items() if v != "running"}
        if bad:
            return Availability.missing("embedded OVN stack: " + ", ".join(f"{k} {v}" for k, v in bad.items())
                                        + f" (logs in {self.dir})")
        return Availability.ok()

    # -- supervision -----------------------------------------------------
    def supervise(self, interval: float = 1.0, max_restarts: int = 5, window: float = 60.0) -> None:
        """Start a thread that restarts a daemon that died (at most `max_restarts`
        per `window` seconds, then marks it failed and logs why).

        Idempotent: a second call while the thread runs does nothing. Never raises;
        restart failures are logged and retried at the next interval."""
        if self._supervisor:
            return
        self._stop.clear()
        self._supervisor = threading.Thread(target=self._supervise, args=(interval, max_restarts, window),
                                            name="ovn-stack-supervisor", daemon=True)
        self._supervisor.start()

    def _supervise(self, interval: float, max_restarts: int, window: float) -> None:
        while not self._stop.wait(interval):
            for name in self.ORDER:
                child = self._children.get(name)
                if not child or child.failed or not child.proc or child.proc.poll() is None:
                    continue
                rc = child.proc.returncode
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < window] + [now]
                if len(child.restarts) > max_restarts:
                    child.failed = f"exited {rc}, restarted {max_restarts} times in {window:.0f}s"
                    child.proc = None
                    log.error("embedded OVN stack: %s %s; giving up (see %s/%s.log)", name, child.failed,
                              self.dir, name)
                    continue
                log.warning("embedded OVN stack: %s exited with %s; restarting", name, rc)
                try:
                    with self._lock:
                        if not self._stop.is_set():
                            self._start_child(name, time.monotonic() + 10)
                except Exception as exc:  # keep supervising the others
                    log.error("embedded OVN stack: restarting %s failed: %s", name, exc)

    # -- internals -------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        d = str(self.dir)
        for key in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR"):
            env[key] = d
        return env

    def _tool(self, argv: list[str], deadline: float) -> str:
        try:
            res = subprocess.run(argv, env=self._env(), capture_output=True, text=True,
                                 timeout=max(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise Unavailable(f"embedded OVN stack: {argv[0]} timed out", reason="OVN_STACK_TIMEOUT") from None
        if res.returncode != 0:
            raise Unavailable(f"embedded OVN stack: {' '.join(argv[:3])} failed: {res.stderr.strip()}",
                              reason="OVN_STACK_START_FAILED")
        return res.stdout

    def _prepare_dbs(self) -> None:
        for db, schema in (("nb", NB_SCHEMA), ("sb", SB_SCHEMA), ("conf", VSWITCH_SCHEMA)):
            path = self.dir / f"{db}.db"
            if self.fresh and path.exists():
                path.unlink()
            if not path.exists():
                self._tool(["ovsdb-tool", "create", str(path), schema], time.monotonic() + 10)
            elif self._tool(["ovsdb-tool", "needs-conversion", str(path), schema],
                            time.monotonic() + 10).strip() == "yes":
                self._tool(["ovsdb-tool", "convert", str(path), schema], time.monotonic() + 30)

    def _ensure_netns(self) -> None:
        if self.netns in pr_netns.listnetns():
            return
        pr_netns.create(self.netns)
        self._created_netns = True
        with IPRoute(netns=self.netns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    def _argv(self, name: str) -> list[str]:
        d = self.dir
        common = ["--no-chdir", f"--pidfile={d / name}.pid", f"--log-file={d / name}.log",
                  f"--unixctl={d / name}.ctl"]
        in_ns = in_netns(self.netns)          # the network namespace only: no private mount table
        return {
            "nb": ["ovsdb-server", *common, f"--remote=punix:{d / 'nb.sock'}", str(d / "nb.db")],
            "sb": ["ovsdb-server", *common, f"--remote=punix:{d / 'sb.sock'}", str(d / "sb.db")],
            "northd": ["ovn-northd", *common, f"--ovnnb-db={self.nb_remote}", f"--ovnsb-db={self.sb_remote}"],
            "ovsdb": ["ovsdb-server", *common, f"--remote=punix:{d / 'db.sock'}", str(d / "conf.db")],
            "vswitchd": [*in_ns, "ovs-vswitchd", *common, self.ovs_remote],
            # ovn-controller has no --unixctl: its control socket lands in OVN_RUNDIR
            "controller": [*in_ns, "ovn-controller", *common[:3], self.ovs_remote],
        }[name]

    def _previous(self, name: str) -> int | None:
        """PID of a daemon of a previous run still holding our pidfile (alive, our command line)."""
        try:
            pid = int((self.dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        if not alive(pid) or str(self.dir) not in cmdline(pid):
            return None                              # gone, a zombie, or the PID was reused
        return pid

    def _adoptable(self, name: str, pid: int) -> bool:
        """It shares our mount table (an older agent's `ip netns exec` did not) and sits in
        the network namespace it must be in."""
        if ns_inode(pid, "mnt") != ns_inode("self", "mnt"):
            return False
        want = self._netns_inode() if name in ("vswitchd", "controller") else ns_inode("self", "net")
        return want is not None and ns_inode(pid, "net") == want

    def _netns_inode(self) -> int | None:
        try:
            return os.stat(os.path.join("/run/netns", self.netns)).st_ino
        except OSError:
            return None

    def _start_child(self, name: str, deadline: float) -> None:
        child = self._children.get(name)
        if child and child.proc and child.proc.poll() is None:
            return
        argv = self._argv(name)
        child = child or _Child(name, argv)
        child.failed = ""
        pid = self._previous(name)
        proc: subprocess.Popen | Adopted
        if pid is not None and self._adoptable(name, pid):
            log.info("embedded OVN stack: adopting %s (pid %d) of a previous run", name, pid)
            proc = child.proc = Adopted(pid)
        else:
            if pid is not None:
                log.warning("embedded OVN stack: stopping stale %s (pid %d) of a previous run", name, pid)
                stop_pid(pid)
            errlog = open(self.dir / f"{name}.stderr", "ab")
            try:
                proc = child.proc = subprocess.Popen(argv, env=self._env(), stdin=subprocess.DEVNULL,
                                                     stdout=subprocess.DEVNULL, stderr=errlog, start_new_session=True)
            finally:
                errlog.close()
        self._children[name] = child
        sock = {"nb": "nb.sock", "sb": "sb.sock", "ovsdb": "db.sock", "controller": "controller.pid"}.get(
            name, f"{name}.ctl")
        self._wait_socket(name, proc, self.dir / sock, deadline)

    def _wait_socket(self, name: str, proc: subprocess.Popen | Adopted, path: Path, deadline: float) -> None:
        while True:
            if proc.poll() is not None:
                err = (self.dir / f"{name}.stderr").read_text(errors="replace")[-500:]
                raise Unavailable(f"embedded OVN stack: {name} exited with {proc.returncode}: "
                                  f"{err.strip()} (see {self.dir}/{name}.log)", reason="OVN_STACK_START_FAILED")
            try:
                if path.suffix == ".pid":           # no socket to probe: the pidfile names the child
                    if path.read_text().strip() == str(proc.pid):
                        return
                else:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        s.connect(str(path))
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"embedded OVN stack: {name} did not open {path} in time",
                                  reason="OVN_STACK_TIMEOUT")
            time.sleep(0.01)

    def _init_open_vswitch(self, deadline: float) -> None:
        db = f"--db={self.ovs_remote}"
        self._tool(["ovs-vsctl", db, "--no-wait", "init"], deadline)
        self._tool(["ovs-vsctl", db, "--no-wait", "set", "Open_vSwitch", ".",
                    f"external_ids:system-id={self.system_id}",
                    f"external_ids:ovn-remote={self.sb_remote}",
                    "external_ids:ovn-encap-type=geneve",
                    f"external_ids:ovn-encap-ip={self.encap_ip}",
                    f"external_ids:ovn-bridge-datapath-type={self.datapath_type}",
                    f"external_ids:ovn-bridge={self.bridge}",
                    f"external_ids:{OWNER_KEY}={OWNER}"], deadline)

    def _ensure_bridge(self, deadline: float) -> None:
        self._tool(["ovs-vsctl", f"--db={self.ovs_remote}", "--timeout=10", "--may-exist", "add-br", self.bridge,
                    "--", "set", "Bridge", self.bridge, f"datapath_type={self.datapath_type}",
                    "fail-mode=secure", "other_config:disable-in-band=true",
                    f"external_ids:{OWNER_KEY}={OWNER}"], deadline)

    def _wait_chassis(self, deadline: float) -> None:
        argv = ["ovn-sbctl", f"--db={self.sb_remote}", "--bare", "--columns=name", "find", "Chassis",
                f"name={self.system_id}"]
        while True:
            if self._tool(argv, deadline).strip() == self.system_id:
                return
            if time.monotonic() > deadline:
                raise Unavailable("embedded OVN stack: ovn-controller did not register its chassis in time "
                                  f"(see {self.dir}/controller.log)", reason="OVN_STACK_TIMEOUT")
            time.sleep(0.02)
