"""OVN central for the cluster harness: NB + SB ovsdb-server and ovn-northd in namespaces
<prefix>-c<k> on the management net, standalone (member 1) or 3-member Raft clusters.
"""
from __future__ import annotations

import signal
import subprocess
import time

from integration.cluster.procs import CmdError, Daemon, ovs_env, run, sock_ready

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
MG = "192.168.60"
DB = {"nb": ("OVN_Northbound", NB_SCHEMA, 6641, 6643), "sb": ("OVN_Southbound", SB_SCHEMA, 6642, 6644)}


class CentralMixin:
    """Central members, their tools and Raft operations for Cluster."""

    def _remotes(self, port: int) -> str:
        return ",".join(f"tcp:{MG}.{k}:{port}" for k in self.members)

    @property
    def nb_remotes(self) -> str:
        return self._remotes(6641)

    @property
    def sb_remotes(self) -> str:
        return self._remotes(6642)


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

    def nbctl(self, *args, timeout: float = 10, retry: float = 0) -> str:
        """ovn-nbctl against all NB members over TCP, run in central 1's netns. Raises CmdError.
        retry: for that many seconds, call again when it fails fast with "database connection
        failed" (during a Raft election every member refuses: callers must retry)."""
        return self._ctl("ovn-nbctl", self.nb_remotes, args, timeout, retry)

    def sbctl(self, *args, timeout: float = 10, retry: float = 0) -> str:
        return self._ctl("ovn-sbctl", self.sb_remotes, args, timeout, retry)

    def _ctl(self, tool: str, remotes: str, args, timeout: float, retry: float) -> str:
        deadline = time.monotonic() + retry
        while True:
            try:
                return run([tool, f"--db={remotes}", f"--timeout={timeout:g}", *args], netns=self.central_ns(1),
                           timeout=timeout + 5).stdout
            except CmdError as exc:
                if "database connection failed" not in exc.stderr or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

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
