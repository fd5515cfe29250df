"""The random-kill harness: one agent on real components, bursts of instance
operations from a separate client process, SIGKILL of the agent at a random
instant inside the burst, restart on the same state dir, then a census with
independent tools only (integration/crash/census.py).

Per round it checks: every instance whole or absent (0 partial), every whole
instance recorded and every record whole and prepared, every acknowledged
prepare/converge present (converge: with its refquota), every acknowledged
release absent, no object with one of our names but without our mark, a
GarbageCollect dry run that finds nothing, and the foreign objects placed next
to ours (an unmarked dataset in a team directory, an unmarked veth with our
prefix, an unmarked logical port in a team switch, an unmarked cgroup with a
live process in a team slice) intact.

The agent runs with the embedded OVN stack (as the README's run command does)
on a pool of the caller's, so a restart also re-finds the stack's daemons.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from agent._proto.devcloud.agent.v1 import compute_pb2, compute_pb2_grpc, identity_pb2, identity_pb2_grpc
from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc as ipb_grpc
from agent._proto.devcloud.agent.v1 import network_pb2, network_pb2_grpc, storage_pb2, storage_pb2_grpc
from integration.crash import census
from tests.support.server import REPO, AgentProcess
from tests.support.zfs import make_tarball, upload

IMAGE = "kimg"
TEAMS = {"ka": "10.71.0.0/24", "kb": "10.72.0.0/24", "kc": "10.73.0.0/24", "kd": "10.74.0.0/24"}
STEADY = ("ka", "kb")                 # prepared, released one by one, converged
BULK = ("kc", "kd")                   # filled in one round, released in bulk in the next
REFQUOTAS = (48 << 20, 64 << 20, 80 << 20)
POPULATION = 24                       # steady instances kept around (more: more releases per round)


@dataclass
class RoundResult:
    index: int
    kill_delay: float | None           # seconds after the burst started (None: no kill)
    burst_seconds: float | None        # when the client finished before the kill
    restart_ready: float               # Popen -> READY=1 (sd_notify)
    restart_probe: float               # Popen -> Probe ready=true
    acked: int
    problems: list[str] = field(default_factory=list)


class KillNode:
    """One agent (embedded OVN, the caller's pool, a cgroup subtree) that can be SIGKILLed and
    restarted on the same state dir. Stop() removes everything it made."""

    def __init__(self, pool: str, cgroup_dir: str, *, seed: int | None = None) -> None:
        tag = secrets.token_hex(2)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"dck{tag}", dir="/tmp"))    # short: unix socket paths
        self.pool = pool
        self.parent = f"{pool}/k{tag}"
        self.cgroup_root = os.path.join(cgroup_dir, f"k{tag}")
        self.netns = f"dck{tag}"
        self.prefix = f"k{tag[:2]}"
        self.node = f"kill-{tag}"
        self.rng = random.Random(seed)
        self.agent: AgentProcess | None = None
        self.foreign: dict[str, str] = {}
        self.foreign_pid: int | None = None
        self.steady: set[str] = set()        # steady instances believed present
        self.serial = 0

    # -- the agent ------------------------------------------------------------------------
    def overrides(self) -> list[str]:
        return ["storage.enabled=true", f"storage.pool={self.pool}", f"storage.parent={self.parent}",
                "network.enabled=true", "network.ovn_nb=", "network.embedded_ovn=true",
                f"network.embedded_netns={self.netns}", f"network.netdev_prefix={self.prefix}",
                "network.ready_timeout=20", "compute.enabled=true", f"compute.cgroup_root={self.cgroup_root}",
                f"node.name={self.node}", "instances.enabled=true"]

    def where(self) -> census.Where:
        ovn = self.tmp / "state" / "ovn"
        return census.Where(parent=self.parent, netns=self.netns, prefix=self.prefix, nb=f"unix:{ovn / 'nb.sock'}",
                            ovs=f"unix:{ovn / 'db.sock'}", cgroup_root=self.cgroup_root, node=self.node)

    def start(self) -> tuple[float, float]:
        """Start (or restart) the agent; returns (seconds to READY=1, seconds to Probe ready)."""
        t0 = time.monotonic()
        self.agent = AgentProcess(self.tmp, self.overrides()).start(timeout=180)
        ready = time.monotonic() - t0
        with self.channel() as ch:
            stub = identity_pb2_grpc.IdentityServiceStub(ch)
            end = time.monotonic() + 300
            while not stub.Probe(identity_pb2.ProbeRequest(), timeout=10).ready:
                if time.monotonic() > end:
                    raise AssertionError(f"Probe not ready 300 s after READY:\n{self.agent.log_tail(60)}")
                time.sleep(0.05)
        return ready, time.monotonic() - t0

    def kill(self) -> None:
        self.agent.proc.send_signal(signal.SIGKILL)
        self.agent.proc.wait(30)
        self.agent.stop()                 # closes the notify socket; the process is gone

    def channel(self) -> grpc.Channel:
        return self.agent.channel()

    # -- team setup (like a controller) ----------------------------------------------------------
    def setup(self) -> None:
        with self.channel() as ch:
            data, sha = make_tarball()
            _, result = upload(storage_pb2_grpc.StorageServiceStub(ch), IMAGE, data, sha, size=len(data))
            assert result is not None
            net, comp = network_pb2_grpc.NetworkServiceStub(ch), compute_pb2_grpc.ComputeServiceStub(ch)
            for team, subnet in TEAMS.items():
                net.EnsureNetwork(network_pb2.EnsureNetworkRequest(
                    spec=network_pb2.NetworkSpec(name=team, subnet4=subnet)), timeout=30)
                comp.EnsureSlice(compute_pb2.EnsureSliceRequest(team=team), timeout=30)
            # a first instance so the team's volume directory exists for the foreign dataset
            stub = ipb_grpc.InstanceServiceStub(ch)
            first = self._new_id("ka")
            stub.PrepareInstance(ipb.PrepareInstanceRequest(spec=self._spec(first, "ka", REFQUOTAS[0])), timeout=60)
            self.steady.add(first)
        self.place_foreign()

    def _new_id(self, team: str) -> str:
        self.serial += 1
        return f"{team}{self.serial:04d}"

    @staticmethod
    def _spec(iid: str, team: str, refquota: int) -> ipb.InstanceSpec:
        return ipb.InstanceSpec(id=iid, team=team, kind=ipb.INSTANCE_KIND_CONTAINER,
                                root=ipb.RootVolumeSpec(image_id=IMAGE, refquota_bytes=refquota),
                                nics=[ipb.NicSpec(name="eth0", network=team)])

    # -- foreign objects: our names or places, never our mark -------------------------------------
    def place_foreign(self) -> None:
        w, tag = self.where(), secrets.token_hex(2)
        self.foreign = {"dataset": f"{self.parent}/instances/ka/foreign{tag}",
                        "netdev": f"{self.prefix}f{tag}",
                        "lsp": f"dc.ka.foreign{tag}",
                        "cgroup": os.path.join(self.cgroup_root, "ka.slice", f"foreign{tag}.scope")}
        _run(["zfs", "create", self.foreign["dataset"]])
        _run(["ip", "-n", self.netns, "link", "add", self.foreign["netdev"], "type", "veth", "peer", "name",
              f"fp{tag}"])
        _run(["ovn-nbctl", f"--db={w.nb}", "lsp-add", "dc-ka", self.foreign["lsp"]])
        os.mkdir(self.foreign["cgroup"])
        proc = subprocess.Popen(["sleep", "100000"], start_new_session=True)
        with open(os.path.join(self.foreign["cgroup"], "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        self.foreign_pid = proc.pid

    def foreign_touched(self) -> list[str]:
        w, bad = self.where(), []
        if subprocess.run(["zfs", "get", "-H", "name", self.foreign["dataset"]], capture_output=True).returncode:
            bad.append(f"foreign dataset {self.foreign['dataset']} is gone")
        if subprocess.run(["ip", "-n", self.netns, "link", "show", self.foreign["netdev"]],
                          capture_output=True).returncode:
            bad.append(f"foreign netdev {self.foreign['netdev']} is gone")
        if subprocess.run(["ovn-nbctl", f"--db={w.nb}", "get", "Logical_Switch_Port", self.foreign["lsp"], "name"],
                          capture_output=True).returncode:
            bad.append(f"foreign logical port {self.foreign['lsp']} is gone")
        try:
            procs = open(os.path.join(self.foreign["cgroup"], "cgroup.procs")).read().split()
        except OSError:
            procs = []
        if str(self.foreign_pid) not in procs:
            bad.append(f"foreign cgroup {self.foreign['cgroup']} or its process {self.foreign_pid} is gone")
        return bad

    def remove_foreign(self) -> None:
        w = self.where()
        if self.foreign_pid:
            try:
                os.kill(self.foreign_pid, signal.SIGKILL)
                os.waitpid(self.foreign_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.foreign_pid = None
        subprocess.run(["zfs", "destroy", self.foreign.get("dataset", "-")], capture_output=True)
        subprocess.run(["ip", "-n", self.netns, "link", "del", self.foreign.get("netdev", "-")], capture_output=True)
        subprocess.run(["ovn-nbctl", f"--db={w.nb}", "--if-exists", "lsp-del", self.foreign.get("lsp", "-")],
                       capture_output=True)
        if self.foreign.get("cgroup"):
            _rmdir_when_empty(self.foreign["cgroup"])
        self.foreign = {}

    # -- one burst ----------------------------------------------------------------------------
    def plan(self, index: int) -> list[dict]:
        """8 prepares (5 steady, 3 into this round's bulk team), releases of steady instances,
        a converge of one, and the bulk release of the other bulk team (filled last round)."""
        fill, drain = BULK[index % 2], BULK[(index + 1) % 2]
        ops = []
        for _ in range(5):
            team = self.rng.choice(STEADY)
            ops.append({"op": "prepare", "id": self._new_id(team), "team": team,
                        "refquota": self.rng.choice(REFQUOTAS)})
        ops += [{"op": "prepare", "id": self._new_id(fill), "team": fill, "refquota": REFQUOTAS[0]}
                for _ in range(3)]
        present = sorted(self.steady)
        self.rng.shuffle(present)
        n_release = 2 if len(present) < POPULATION else 5
        for iid in present[:n_release]:
            ops.append({"op": "release", "id": iid})
        if len(present) > n_release:
            iid = present[n_release]
            ops.append({"op": "converge", "id": iid, "team": iid[:2],
                        "refquota": self.rng.choice(REFQUOTAS) + (1 << 20)})
        ops.append({"op": "release_team", "team": drain})
        self.rng.shuffle(ops)
        return ops

    def burst(self, ops: list[dict], kill_delay: float | None) -> tuple[list[dict], float | None]:
        """Run the client; SIGKILL the agent `kill_delay` s after its first call (None: after it
        finished). Returns (acknowledged answers, the burst's duration if it finished first)."""
        d = Path(tempfile.mkdtemp(dir=self.tmp))
        (d / "plan.json").write_text(json.dumps({"image": IMAGE, "ops": ops}))
        out = d / "results.jsonl"
        client = subprocess.Popen([sys.executable, "-m", "integration.crash.burst", self.agent.socket,
                                   str(d / "plan.json"), str(out)], cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
        try:
            start = _wait_line(out, "start", client)
            finished = None
            if kill_delay is None:
                client.wait(120)
            else:
                time.sleep(max(0.0, start + kill_delay - time.monotonic()))
            lines = _lines(out)
            end = next((l["end"] for l in lines if "end" in l), None)
            if end is not None:
                finished = end - start
            self.kill()
            client.wait(120)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        lines = _lines(out)
        shutil.rmtree(d, ignore_errors=True)
        return [l for l in lines if "op" in l], finished

    # -- verification ----------------------------------------------------------------------------
    def verify(self, acked: list[dict]) -> list[str]:
        problems: list[str] = []
        c = census.take(self.where(), set(self.foreign.values()))
        for iid, missing in sorted(c.partial().items()):
            problems.append(f"instance {iid} is partial: missing {', '.join(missing)}")
        problems += [f"unmarked object with our name: {u}" for u in c.unmarked]
        with self.channel() as ch:
            stub = ipb_grpc.InstanceServiceStub(ch)
            recs = {i.id: i for i in stub.ListInstances(ipb.ListInstancesRequest(), timeout=30).instances}
            gc = stub.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True), timeout=60).objects
        whole = c.ids()
        for iid, rec in sorted(recs.items()):
            if rec.state != ipb.INSTANCE_STATE_PREPARED:
                problems.append(f"instance {iid} recorded as {ipb.InstanceState.Name(rec.state)}: {rec.message}")
            if iid not in whole:
                problems.append(f"instance {iid} is recorded but not whole")
        problems += [f"instance {i} is whole but not recorded (leaked)" for i in sorted(whole - set(recs))]
        problems += [f"GC dry run found {o.kind} {o.name} (instance {o.instance_id!r})" for o in gc]
        for a in acked:
            if not a.get("ok"):
                continue
            if a["op"] == "prepare" and a["id"] not in whole:
                problems.append(f"acknowledged prepare of {a['id']} is not whole")
            if a["op"] == "converge":
                if a["id"] not in whole:
                    problems.append(f"acknowledged converge of {a['id']} is not whole")
                elif c.parts[a["id"]]["dataset"]["refquota"] != str(a["refquota"]):
                    problems.append(f"acknowledged converge of {a['id']}: refquota "
                                    f"{c.parts[a['id']]['dataset']['refquota']}, want {a['refquota']}")
            if a["op"] == "release" and a["id"] in c.parts:
                problems.append(f"acknowledged release of {a['id']} left {sorted(c.parts[a['id']])}")
            if a["op"] == "release_team":
                for r in a["results"]:
                    if r["released"] and r["id"] in c.parts:
                        problems.append(f"acknowledged bulk release of {r['id']} left {sorted(c.parts[r['id']])}")
        problems += self.foreign_touched()
        self.steady = {i for i in whole if i[:2] in STEADY}
        return problems

    def round(self, index: int, kill_delay: float | None, restart_kill: float | None = None) -> RoundResult:
        """One burst killed at `kill_delay`; with restart_kill, the restarted agent is killed
        again that many seconds into its startup (inside its reconcile) before the real restart."""
        ops = self.plan(index)
        acked, finished = self.burst(ops, kill_delay)
        if restart_kill is not None:
            self.agent = AgentProcess(self.tmp, self.overrides()).start(wait_ready=False)
            time.sleep(restart_kill)
            self.kill()
        ready, probe = self.start()
        problems = self.verify(acked)
        return RoundResult(index, kill_delay, finished, ready, probe, len(acked), problems)

    # -- the end ------------------------------------------------------------------------------
    def release_all(self) -> list[str]:
        """Release every instance (bulk per team), then census: nothing of ours may remain."""
        problems = []
        with self.channel() as ch:
            stub = ipb_grpc.InstanceServiceStub(ch)
            for team in TEAMS:
                for r in stub.ReleaseInstances(ipb.ReleaseInstancesRequest(team=team), timeout=120).results:
                    if not r.released:
                        problems.append(f"final release of {r.id}: {r.code} {r.message}")
        c = census.take(self.where(), set(self.foreign.values()))
        problems += [f"left after the final release: instance {i} {sorted(p)}" for i, p in c.parts.items()]
        problems += [f"left after the final release: {u}" for u in c.unmarked]
        return problems

    def stop(self) -> None:
        """Tear everything down: team objects through the agent, then the agent, then by hand."""
        try:
            if self.agent is None or self.agent.proc.poll() is not None:
                self.start()
            self.remove_foreign()
            with self.channel() as ch:
                net, comp = network_pb2_grpc.NetworkServiceStub(ch), compute_pb2_grpc.ComputeServiceStub(ch)
                stor = storage_pb2_grpc.StorageServiceStub(ch)
                for team in TEAMS:
                    ipb_grpc.InstanceServiceStub(ch).ReleaseInstances(ipb.ReleaseInstancesRequest(team=team),
                                                                     timeout=120)
                    net.DeleteNetwork(network_pb2.DeleteNetworkRequest(name=team), timeout=60)
                    comp.DeleteSlice(compute_pb2.DeleteSliceRequest(team=team, kill=True), timeout=60)
                stor.DeleteImage(storage_pb2.DeleteImageRequest(image_id=IMAGE), timeout=60)
        finally:
            if self.agent is not None:
                self.agent.stop()
            self.remove_foreign()
            _stop_stack_leftovers(self.tmp / "state" / "ovn")
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            from tests.support.zfs import zfs_destroy_tree
            from tests.support.cgroup import remove_cgroup_tree
            zfs_destroy_tree(self.parent)
            remove_cgroup_tree(self.cgroup_root)
            shutil.rmtree(self.tmp, ignore_errors=True)


def run_rounds(node: KillNode, rounds: int, log=print) -> list[RoundResult]:
    """Round 0 runs unkilled to measure the burst; every later round kills at a delay drawn
    uniformly from [0.02 s, 1.2 x that burst] (so kills land all through it, some after);
    every 4th round kills the restarted agent once more inside its startup."""
    results = [node.round(0, None)]
    span = max(0.3, (results[0].burst_seconds or 1.0) * 1.2)
    log(f"round 0: burst {results[0].burst_seconds:.2f}s, kill delays drawn from [0.02, {span:.2f}] s")
    restart_span = max(0.2, results[0].restart_probe)
    for i in range(1, rounds + 1):
        # every 4th round also kills the restarted agent inside its startup (its reconcile)
        again = node.rng.uniform(0.05, restart_span) if i % 4 == 0 else None
        r = node.round(i, node.rng.uniform(0.02, span), again)
        results.append(r)
        log(f"round {i}: kill at {r.kill_delay:.3f}s" + (f", again {again:.3f}s into the restart" if again else "") +
            f", {r.acked} acked, restart READY {r.restart_ready:.2f}s, "
            f"Probe ready {r.restart_probe:.2f}s, {len(r.problems)} problems" +
            "".join(f"\n    {p}" for p in r.problems))
    return results


def summary(results: list[RoundResult]) -> dict:
    killed = [r for r in results if r.kill_delay is not None]
    ready = [r.restart_probe for r in results]
    delays = [r.kill_delay for r in killed]
    return {"rounds": len(killed), "kill_delay_min": min(delays, default=0), "kill_delay_max": max(delays, default=0),
            "kill_delay_median": statistics.median(delays) if delays else 0,
            "restart_ready_min": min(ready), "restart_ready_median": statistics.median(ready),
            "restart_ready_max": max(ready), "problems": sum(len(r.problems) for r in results)}


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"{' '.join(argv)}: {r.stderr.strip()}")


def _lines(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def _wait_line(path: Path, key: str, proc: subprocess.Popen, timeout: float = 60.0) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for l in _lines(path):
            if key in l:
                return l[key]
        if proc.poll() is not None:
            raise AssertionError(f"burst client exited {proc.returncode} before {key!r}")
        time.sleep(0.005)
    raise AssertionError(f"burst client wrote no {key!r} line in {timeout}s")


def _rmdir_when_empty(path: str, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.01)


def _stop_stack_leftovers(ovn_dir: Path) -> None:
    """Daemons of the agent's embedded stack still alive (the agent was killed last): by the
    PID in their pidfile, only when that PID's command line names our directory."""
    for pidfile in ovn_dir.glob("*.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            if str(ovn_dir) not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                continue
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            continue
