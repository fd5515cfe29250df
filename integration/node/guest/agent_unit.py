"""The agent as the systemd service it ships, inside the node guest.

AgentUnit writes /etc/devcloud-agent/agent.toml (storage on a real OpenZFS
pool, network on the guest's own OVS kernel datapath + the distribution's OVN
services, compute on the default root), adds a drop-in that only shortens
WatchdogSec, and drives `systemctl start/stop/restart devcloud-agent`. The
unit file itself is the tree's systemd/devcloud-agent.service, installed by
guest-run.sh. OvnServices starts ovn-central's and ovn-host's units with
systemctl. The helpers at the bottom read the system with independent tools
(zfs, ovs-vsctl, ovs-dpctl, ovn-nbctl, ip -j, cgroupfs, journalctl).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import grpc

UNIT = "devcloud-agent.service"
CONF = pathlib.Path("/etc/devcloud-agent/agent.toml")
DROPIN = pathlib.Path("/etc/systemd/system/devcloud-agent.service.d/50-node-tier.conf")
SOCKET = "/run/devcloud-agent/agent.sock"
METRICS = "127.0.0.1:9464"
NB_REMOTE, SB_REMOTE = "unix:/var/run/ovn/ovnnb_db.sock", "unix:/var/run/ovn/ovnsb_db.sock"
OVS_REMOTE = "unix:/var/run/openvswitch/db.sock"
WATCHDOG_SEC = 10        # drop-in: two periods pass in a test in ~25 s (the unit ships 30 s)
RPC = 180.0              # RPC deadline: TCG makes everything ~40x slower than a real node
CMD = 300


def run(*argv, check=True, timeout=CMD, **kw) -> subprocess.CompletedProcess:
    """Run argv (never a shell string); on failure the error shows stdout/stderr."""
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} -> rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def until(cond, what: str, timeout: float = 240.0, interval: float = 0.2):
    """Poll cond() until truthy (returns its value); fail naming `what` after timeout."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def record(results_dir, name: str, **facts) -> None:
    """Append one JSON line to results/<name>.jsonl (printed by the host test)."""
    with open(results_dir / f"{name}.jsonl", "a") as f:
        f.write(json.dumps(facts, default=str) + "\n")


class AgentUnit:
    """devcloud-agent.service with a test config; every change is undone by restore()."""

    def __init__(self, pool: str, node: str) -> None:
        self.pool, self.node = pool, node
        self.backend = "lzc"
        self._channel: grpc.Channel | None = None
        self._saved_conf = CONF.read_bytes() if CONF.exists() else None

    # -- configuration ---------------------------------------------------------
    def write_config(self, backend: str = "lzc") -> None:
        self.backend = backend
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(f"""# written by integration/node/guest (node tier)
[node]
name = "{self.node}"

[log]
level = "info"

[storage]
pool = "{self.pool}"
backend = "{backend}"

[network]
ovn_nb = "{NB_REMOTE}"
ovs_db = "{OVS_REMOTE}"
datapath_type = "system"
embedded_ovn = false
ready_timeout = 180.0

[compute]
cgroup_root = ""
""")

    def install_dropin(self) -> None:
        """Only WatchdogSec changes: every hardening line of the unit stays as shipped."""
        DROPIN.parent.mkdir(parents=True, exist_ok=True)
        DROPIN.write_text(f"[Service]\nWatchdogSec={WATCHDOG_SEC}s\n")
        run("systemctl", "daemon-reload")

    def restore(self) -> None:
        """Stop the unit, drop the drop-in and the test config (the example config back)."""
        self.stop(check=False)
        if DROPIN.exists():
            DROPIN.unlink()
            DROPIN.parent.rmdir()
        if self._saved_conf is not None:
            CONF.write_bytes(self._saved_conf)
        run("systemctl", "daemon-reload")
        run("systemctl", "reset-failed", UNIT, check=False)

    # -- lifecycle ---------------------------------------------------------------
    def show(self, *props: str) -> dict[str, str]:
        out = run("systemctl", "show", UNIT, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def start(self) -> float:
        """`systemctl start` (returns once READY=1 arrived, Type=notify); seconds taken."""
        self.close_channel()
        t = time.monotonic()
        r = run("systemctl", "start", UNIT, check=False)
        took = time.monotonic() - t
        if r.returncode != 0:
            raise AssertionError(f"systemctl start {UNIT} failed: {r.stderr}\n{self.status_and_journal()}")
        return took

    def stop(self, check: bool = True) -> float:
        self.close_channel()
        t = time.monotonic()
        r = run("systemctl", "stop", UNIT, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"systemctl stop {UNIT} failed: {r.stderr}\n{self.status_and_journal()}")
        return time.monotonic() - t

    def restart_with(self, backend: str) -> float:
        self.stop()
        self.write_config(backend)
        return self.start()

    def main_pid(self) -> int:
        return int(self.show("MainPID")["MainPID"])

    def status_and_journal(self, lines: int = 60) -> str:
        status = run("systemctl", "status", "--no-pager", "-l", UNIT, check=False).stdout
        journal = run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat", "-n", str(lines), check=False).stdout
        return f"--- systemctl status\n{status}\n--- journal (last {lines})\n{journal}"

    # -- gRPC ----------------------------------------------------------------------
    def channel(self) -> grpc.Channel:
        """One channel per agent process (a new one after every start)."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix:{SOCKET}")
            grpc.channel_ready_future(self._channel).result(timeout=60)
        return self._channel

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def stub(self, module):
        """A stub of the one service in a *_pb2_grpc module."""
        (name,) = [n for n in dir(module) if n.endswith("ServiceStub")]
        return getattr(module, name)(self.channel())

    # -- journal ---------------------------------------------------------------------
    def journal(self, *matches: str) -> list[dict]:
        """This unit's journal entries (json), optionally filtered by FIELD=value matches."""
        run("journalctl", "--sync", check=False)
        out = run("journalctl", "-u", UNIT, "-o", "json", "--no-pager", *matches).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


OVN_UNITS = ("ovn-ovsdb-server-nb.service", "ovn-ovsdb-server-sb.service", "ovn-northd.service",
             "ovn-controller.service")


class OvnServices:
    """ovn-central's NB/SB/northd and ovn-host's ovn-controller, started with systemctl.

    The meta units ovn-central/ovn-host are oneshots that only *want* these, so
    `systemctl start ovn-central` returns before the databases listen: the
    real units are started by name and their sockets awaited."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.new_dbs = [p for p in (pathlib.Path("/var/lib/ovn/ovnnb_db.db"), pathlib.Path("/var/lib/ovn/ovnsb_db.db"))
                        if not p.exists()]

    def start(self) -> float:
        t = time.monotonic()
        self.started = [u for u in OVN_UNITS if run("systemctl", "is-active", u, check=False).stdout.strip() != "active"]
        if self.started:
            run("systemctl", "start", *self.started)
        for remote, tool in ((NB_REMOTE, "ovn-nbctl"), (SB_REMOTE, "ovn-sbctl")):
            until(lambda: run(tool, f"--db={remote}", "--timeout=20", "show", check=False, timeout=60).returncode == 0,
                  f"{tool} to answer on {remote}")
        return time.monotonic() - t

    def stop(self) -> None:
        if self.started:
            run("systemctl", "stop", *reversed(self.started), check=False)
        for db in self.new_dbs:
            db.unlink(missing_ok=True)


# -- independent tools -------------------------------------------------------------------

def zget(dataset: str, *props: str) -> dict[str, str]:
    """`zfs get -Hp` of one dataset: {property: value}."""
    out = run("zfs", "get", "-Hp", "-o", "property,value", ",".join(props), dataset).stdout
    return dict(line.split("\t", 1) for line in out.splitlines())


def zexists(dataset: str) -> bool:
    return run("zfs", "list", "-H", "-o", "name", dataset, check=False).returncode == 0


def mounts() -> dict[str, str]:
    """mountpoint -> fstype from /proc/self/mountinfo."""
    out = {}
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        out[left.split()[4].replace("\\040", " ")] = right.split()[0]
    return out


def ovsdb_rows(tool: str, remote: str, table: str, *conds: str) -> list[dict]:
    """Rows of an OVSDB table via ovs-vsctl/ovn-nbctl/ovn-sbctl --format=json, as dicts."""
    out = run(tool, f"--db={remote}", "--timeout=30", "--format=json", "find" if conds else "list", table, *conds).stdout
    doc = json.loads(out)
    return [{h: _atom(v) for h, v in zip(doc["headings"], row)} for row in doc["data"]]


def _atom(v):
    if isinstance(v, list) and len(v) == 2 and v[0] in ("uuid", "named-uuid"):
        return v[1]
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return {k: _atom(x) for k, x in v[1]}
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return [_atom(x) for x in v[1]]
    return v


def vsctl_rows(table: str, *conds: str) -> list[dict]:
    return ovsdb_rows("ovs-vsctl", OVS_REMOTE, table, *conds)


def nb_rows(table: str, *conds: str) -> list[dict]:
    return ovsdb_rows("ovn-nbctl", NB_REMOTE, table, *conds)


def sb_rows(table: str, *conds: str) -> list[dict]:
    return ovsdb_rows("ovn-sbctl", SB_REMOTE, table, *conds)


def link(name: str, netns: str | None = None) -> dict | None:
    """`ip -d -j link show` of one netdev (None when absent)."""
    argv = ["ip", "-d", "-j"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    r = run(*argv, check=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 and r.stdout.strip() else None


def addrs4(name: str, netns: str) -> list[str]:
    doc = json.loads(run("ip", "-j", "-n", netns, "addr", "show", "dev", name).stdout)
    return [a["local"] for a in doc[0].get("addr_info", []) if a.get("family") == "inet"]


def dp_ports() -> set[str]:
    """Ports of the kernel datapath system@ovs-system (`ovs-dpctl show`)."""
    out = run("ovs-dpctl", "show", "system@ovs-system").stdout
    ports = set()
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("port ") and ":" in line:
            ports.add(line.split(":", 1)[1].split()[0])
    return ports


def ping(netns: str, ip: str, count: int = 1, wait: int = 2) -> bool:
    return run("ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", str(count), "-W", str(wait), ip,
               check=False, timeout=60).returncode == 0


def ping_eventually(netns: str, ip: str, attempts: int) -> bool:
    """True once a ping gets through (flows may still be installing under TCG)."""
    return any(ping(netns, ip) for _ in range(attempts))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def cgroup_of(pid: int) -> str:
    """The process's cgroup v2 path, absolute under /sys/fs/cgroup (from /proc, not the agent)."""
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return "/sys/fs/cgroup" + line[3:]
    raise AssertionError(f"no cgroup v2 line in /proc/{pid}/cgroup")


def metric_sums(prefixes: tuple[str, ...]) -> dict[tuple, float]:
    """_sum and _count samples of the agent's histograms named with `prefixes`, keyed by
    (sample name, sorted labels): diff two snapshots for per-operation totals."""
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=60) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.name.startswith(prefixes):
            for s in fam.samples:
                if s.name.endswith(("_sum", "_count")):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
