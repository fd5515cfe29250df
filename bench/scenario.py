"""One bench run, phase by phase, on one set of components.

  setup      components, agent (READY time and idle RSS), image, team networks + slices
  level L    (for each L in sizes.levels) fill the node up to L instances with
             several clients, then sample: agent prepare -> prepared, release,
             prepare -> ready, release; the LXD-style CLI instance and its release;
             each step alone (floor). Samples alternate so drift hits all alike.
  first L    also: read-only RPCs vs the bare echo, throughput with 1/4/16
             clients, agent release one by one, bulk release of a team, the LXD-style
             teardown of as many instances one by one
  top L      also: RSS, agent restart -> READY time with that many to reconcile
  cleanup    bulk release of every team (timed), components removed

Returns a dict of raw measurements (seconds); report.py turns it into the table.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

from agent._proto.devcloud.agent.v1 import compute_pb2, compute_pb2_grpc
from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc
from agent._proto.devcloud.agent.v1 import network_pb2, network_pb2_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc
from bench import env as envmod
from bench import profile, scrape
from bench.baseline import Floor, LxdBaseline
from bench.clients import ClientPool, Template, split
from bench.sizes import Sizes
from tests.support.zfs import make_tarball, upload

log = logging.getLogger("bench")
MARKS = {"devcloud:owner": "devcloud-agent", "devcloud:type": "volume", "devcloud:kind": "root",
         "devcloud:team": "lat", "devcloud:name": "x", "devcloud:instance": "x", "devcloud:image": envmod.IMAGE}


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _hugetlb() -> list[tuple[str, str]]:
    """A hugetlb limit to write per scope when the controller exists (the only v2 controller
    with limit files on our dev machines; on a full cgroup v2 host pick any)."""
    mount = envmod.procfs.cgroup2_mount()
    try:
        ctl = open(os.path.join(mount, "cgroup.controllers")).read().split()
    except OSError:
        return []
    if "hugetlb" in ctl and os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        return [("2MB", "0")]
    return []


class Run:
    def __init__(self, sizes: Sizes) -> None:
        self.s = sizes
        self.raw: dict = {"levels": {}, "throughput": [], "fill": [], "cleanup": [], "errors": [],
                          "footprint": {}, "read": {}}
        self.c: envmod.Components | None = None
        self.pool: ClientPool | None = None
        self.echo: subprocess.Popen | None = None
        self.teams: dict[str, str] = {}
        self.fill_next = 0
        self.subnet_next = 20
        self.seq = 0
        self.nics = int(os.environ.get("BENCH_NICS", "1"))      # experiments only: NICs per instance

    # -- plumbing -------------------------------------------------------------------------
    def _ch(self) -> grpc.Channel:
        return envmod.channel(self.c.agent)

    def _errors(self, results: list[tuple], what: str) -> int:
        bad = [r for r in results if r[4] != "OK"]
        for r in bad[:5]:
            self.raw["errors"].append({"phase": what, "op": r[0], "key": r[1], "code": r[4],
                                       "message": r[5].get("message", "")})
        if bad:
            say(f"{what}: {len(bad)} of {len(results)} calls failed, e.g. {bad[0][4]} {bad[0][5]}")
        return len(bad)

    def _team(self, team: str) -> None:
        """What a controller does before instances of a team: network + slice."""
        if team in self.teams:
            return
        subnet = f"10.{self.subnet_next}.0.0/16"
        self.subnet_next += 1
        with self._ch() as ch:
            network_pb2_grpc.NetworkServiceStub(ch).EnsureNetwork(network_pb2.EnsureNetworkRequest(
                spec=network_pb2.NetworkSpec(name=team, subnet4=subnet)), timeout=60)
            compute_pb2_grpc.ComputeServiceStub(ch).EnsureSlice(compute_pb2.EnsureSliceRequest(team=team),
                                                                  timeout=60)
        self.teams[team] = subnet

    def count(self) -> int:
        with self._ch() as ch:
            return len(instance_pb2_grpc.InstanceServiceStub(ch).ListInstances(ipb.ListInstancesRequest(),
                                                                              timeout=120).instances)

    def rss(self) -> dict:
        return envmod.rss_bytes(self.c.agent.proc.pid)

    def _id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq}"

    # -- phases -----------------------------------------------------------------------------
    def setup(self, instance_overrides: list[str], extra: list[str]) -> None:
        say("starting components (zfs-fuse pool, OVN stack, cgroup subtree)")
        self.metrics_port = scrape.free_port()
        self.c = envmod.start(self.s.pool_bytes, instance_overrides,
                              [f"metrics.listen=127.0.0.1:{self.metrics_port}", *extra])
        agent, ready = envmod.start_agent(self.c)
        self.raw["footprint"]["ready_seconds_empty"] = ready
        say(f"agent READY in {ready:.2f}s (pid {agent.proc.pid})")
        with self._ch() as ch:
            data, sha = make_tarball()
            upload(storage_pb2_grpc.StorageServiceStub(ch), envmod.IMAGE, data, sha, size=len(data))
        self.hugetlb = _hugetlb()
        for t in ("lat", "ro"):
            self._team(t)
        echo_sock = str(self.c.tmp / "echo.sock")
        self.echo = subprocess.Popen([sys.executable, "-m", "bench.echo", echo_sock, "64"],
                                     stdout=subprocess.PIPE, cwd=str(envmod_repo()), start_new_session=True)
        self.echo.stdout.readline()
        n = max(max(self.s.clients), self.s.fill_clients)
        say(f"starting {n} client processes")
        self.pool = ClientPool(n, self.c.agent.socket, echo_sock,
                               Template(envmod.IMAGE, hugetlb=tuple(self.hugetlb), nics=self.nics))
        for _ in range(20):
            self.pool.one(("probe",))
        self.raw["footprint"]["rss_idle"] = self.rss()
        self.lxd = LxdBaseline(self.c)
        self.lxd.setup(self.hugetlb)
        self._enable_hugetlb()
        self.floor = Floor(self.c)

    def _enable_hugetlb(self) -> None:
        if not self.hugetlb:
            return
        for d in (self.c.cgroup_dir, self.c.lxd_cgroup):
            try:
                envmod.write_cgroup_file(os.path.join(d, "cgroup.subtree_control"), "+hugetlb")
            except OSError as exc:
                say(f"cannot enable hugetlb in {d}: {exc}; the baseline writes no limit")
                self.lxd.hugetlb = []

    def fill_to(self, level: int) -> None:
        have = self.count()
        need = level - have
        if need <= 0:
            return
        ops = []
        for _ in range(need):
            team = f"fill{self.fill_next // self.s.team_size}"
            self._team(team)
            ops.append(("prepare", f"f{self.fill_next}", team, team, False))
            self.fill_next += 1
        n = min(self.s.fill_clients, len(ops))
        say(f"filling the node from {have} to {level} instances with {n} clients")
        results, wall = self.pool.run(split(ops, n))
        errors = self._errors(results, f"fill to {level}")
        self.raw["fill"].append({"from": have, "to": level, "clients": n, "seconds": wall,
                                 "rate": len(ops) / wall if wall else None, "errors": errors,
                                 "latency": [r[3] for r in results if r[4] == "OK"]})
        say(f"  {len(ops)} prepares in {wall:.1f}s ({len(ops) / wall:.1f}/s), {errors} errors")

    def sample_level(self, level: int) -> None:
        s = self.s
        existing = self.count()
        say(f"level {level}: {existing} instances on the node; sampling")
        lv = {"existing": existing, "agent_prepared": [], "agent_ready": [], "agent_release": [],
              "not_ready": 0, "lxd_prepared": [], "lxd_ready": [], "lxd_release": [], "lxd_steps": {},
              "lxd_release_steps": {}, "floor": {}, "floor_release": {}, "errors": 0}
        results = []
        before = scrape.snapshot(self.metrics_port)
        for r in range(max(s.samples, s.baseline_samples, s.floor_samples)):
            if r < s.samples:
                a = self.pool.one(("prepare", self._id(f"l{level}p"), "lat", "lat", False))
                b = self.pool.one(("release", a[1]))
                c = self.pool.one(("prepare", self._id(f"l{level}r"), "lat", "lat", True))
                d = self.pool.one(("release", c[1]))
                results += [a, b, c, d]
                if a[4] == "OK":
                    lv["agent_prepared"].append(a[3])
                if c[4] == "OK":
                    lv["agent_ready"].append(c[3])
                    lv["not_ready"] += not c[5].get("ready")
                lv["agent_release"] += [x[3] for x in (b, d) if x[4] == "OK"]
            if r < s.baseline_samples:
                i = self.seq = self.seq + 1
                p = self.lxd.prepare(i)
                q = self.lxd.release(i)
                lv["lxd_prepared"].append(p["prepared"])
                lv["lxd_ready"].append(p["ready"])
                lv["lxd_release"].append(q["released"])
                for k, v in p["steps"].items():
                    lv["lxd_steps"].setdefault(k, []).append(v)
                for k, v in q["steps"].items():
                    lv["lxd_release_steps"].setdefault(k, []).append(v)
            if r < s.floor_samples:
                i = self.seq = self.seq + 1
                for k, v in self.floor.prepare_steps(i, MARKS).items():
                    lv["floor"].setdefault(k, []).append(v)
                for k, v in self.floor.release_steps(i).items():
                    if not k.startswith("_"):
                        lv["floor_release"].setdefault(k, []).append(v)
        lv["agent_metrics"] = scrape.delta(before, scrape.snapshot(self.metrics_port))
        lv["errors"] = self._errors(results, f"level {level} samples")
        self.raw["levels"][str(level)] = lv

    def profile_level(self, level: int) -> None:
        """prepare + release pairs (not timed) under py-spy: where the agent's time goes."""
        if not self.s.profile_samples:
            return
        if not profile.py_spy():
            self.raw.setdefault("notes", []).append("no profile: py-spy is not installed (pip install py-spy)")
            return
        out = self.c.tmp / f"profile-{level}.txt"
        rec = profile.Recording(self.c.agent.proc.pid, out)
        time.sleep(0.5)                       # py-spy attaches before the first call
        for _ in range(self.s.profile_samples):
            a = self.pool.one(("prepare", self._id(f"f{level}p"), "lat", "lat", False))
            self.pool.one(("release", a[1]))
        err = rec.stop()
        if err:          # e.g. no ptrace here: the numbers stand without it, the report says so
            say(f"no profile at level {level}: {err}")
            self.raw.setdefault("notes", []).append(f"no profile at level {level}: py-spy: {err}")
            return
        summary = profile.summarize(out)
        self.raw.setdefault("profiles", {})[str(level)] = summary
        say(f"profile at level {level}: {summary['samples']} samples; top step "
            f"{summary['by_step'][0] if summary['by_step'] else '-'}")

    def read_only(self) -> None:
        """Round trips of read-only RPCs vs the bare echo, interleaved, one client."""
        s = self.s
        iid = "ro-1"
        res = self.pool.one(("prepare", iid, "ro", "ro", True))
        self._errors([res], "read-only setup")
        kinds = [("echo",), ("info",), ("probe",), ("list", "ro"), ("get", iid)]
        for k in kinds:                                    # warm every path once
            self.pool.one(k)
        ops = []
        for i in range(s.read_samples):
            ops += kinds if i % 2 == 0 else kinds[::-1]
        results, _ = self.pool.run([ops])
        self._errors(results, "read-only")
        out: dict[str, list[float]] = {}
        for r in results:
            if r[4] == "OK":
                out.setdefault(r[0], []).append(r[3])
        self.raw["read"] = out
        say("read-only round trips measured")

    def throughput(self) -> None:
        s = self.s
        for n_clients, n_ops in zip(s.clients, s.throughput_ops):
            team = f"thr{n_clients}"
            self._team(team)
            ops = [("prepare", f"t{n_clients}-{i}", team, team, False) for i in range(n_ops)]
            results, wall = self.pool.run(split(ops, n_clients))
            errors = self._errors(results, f"throughput {n_clients} clients")
            ok = [r for r in results if r[4] == "OK"]
            self.raw["throughput"].append({"clients": n_clients, "ops": n_ops, "ok": len(ok), "seconds": wall,
                                           "rate": len(ok) / wall if wall else None, "errors": errors,
                                           "latency": [r[3] for r in ok]})
            say(f"throughput: {n_clients} clients, {n_ops} prepares in {wall:.2f}s ({len(ok) / wall:.1f}/s)")
            if n_clients == s.clients[0]:
                # the agent's release one by one (one client, sequential), for comparison with bulk
                rel, wall_r = self.pool.run([[("release", r[1]) for r in ok]])
                self._errors(rel, "release one by one")
                self.raw["release_one_by_one"] = {"n": len(rel), "seconds": wall_r,
                                                  "latency": [r[3] for r in rel if r[4] == "OK"]}
            else:
                r = self.pool.one(("release_team", team))
                self._errors([r], f"bulk release {team}")
                entry = {"team": team, "n": len(ok), "seconds": r[3], "released": r[5].get("released"),
                         "failed": r[5].get("failed", [])}
                if n_clients == s.clients[-1]:
                    self.raw["bulk_release"] = entry
                else:
                    self.raw.setdefault("bulk_release_other", []).append(entry)
                say(f"bulk release of {len(ok)} ({team}): {r[3] * 1e3:.0f} ms")

    def lxd_bulk(self) -> None:
        """The LXD way for a whole team: create `bulk` instances one by one, then tear them
        down one by one (what a controller does today for a team's environments)."""
        n = self.s.bulk
        base = self.seq + 1
        self.seq += n
        t0 = time.monotonic()
        for i in range(base, base + n):
            self.lxd.prepare(i, wait_ready=False)
        created = time.monotonic() - t0
        t0 = time.monotonic()
        per = [self.lxd.release(i)["released"] for i in range(base, base + n)]
        released = time.monotonic() - t0
        self.raw["lxd_bulk"] = {"n": n, "create_seconds": created, "release_seconds": released, "latency": per}
        say(f"LXD-style: {n} created in {created:.1f}s, released one by one in {released:.1f}s")

    def footprint_top(self, level: int) -> None:
        fp = self.raw["footprint"]
        fp["top_level"] = level
        fp["rss_top"] = self.rss()
        if not self.s.restart:
            return
        say(f"restarting the agent with {level} instances to reconcile")
        t0 = time.monotonic()
        self.c.agent.stop()
        fp["stop_seconds"] = time.monotonic() - t0
        agent, ready = envmod.start_agent(self.c)
        fp["ready_seconds_top"] = ready
        fp["startup_steps_top"] = scrape.gauges(self.metrics_port, "startup_step_seconds")
        for _ in range(20):
            self.pool.one(("probe",))
        fp["rss_top_after_restart"] = self.rss()
        fp["count_after_restart"] = self.count()
        say(f"  READY in {ready:.2f}s; RSS {fp['rss_top_after_restart']['VmRSS'] / 2**20:.0f} MiB")

    def cleanup_instances(self) -> None:
        """Bulk release every team (timed: the first fill team is 'a team of 200 at the top level')."""
        for team in [t for t in self.teams if t.startswith("fill")] + ["ro", "lat"]:
            r = self.pool.one(("release_team", team))
            self._errors([r], f"cleanup {team}")
            self.raw["cleanup"].append({"team": team, "seconds": r[3], "released": r[5].get("released", 0)})
        say(f"released every team: {sum(x['released'] or 0 for x in self.raw['cleanup'])} instances")

    def close(self) -> None:
        for fn in (lambda: self.pool and self.pool.close(),
                   lambda: self.floor.close() if hasattr(self, "floor") else None,
                   lambda: self.lxd.release_all() if hasattr(self, "lxd") else None,
                   self._stop_echo,
                   lambda: self.c.agent and self.c.agent.stop(),
                   lambda: self.c and self.c.close()):
            try:
                fn()
            except Exception as exc:      # keep cleaning up
                say(f"cleanup step failed: {exc!r}")

    def _stop_echo(self) -> None:
        if self.echo and self.echo.poll() is None:
            self.echo.terminate()
            self.echo.wait(10)


def envmod_repo() -> Path:
    return Path(__file__).resolve().parents[1]


def execute(sizes: Sizes, instance_overrides: list[str], extra: list[str] = ()) -> dict:
    run = Run(sizes)
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        run.setup(instance_overrides, list(extra))
        for idx, level in enumerate(sizes.levels):
            run.fill_to(level)
            if idx == 0:
                run.read_only()
            run.sample_level(level)
            if idx in (0, len(sizes.levels) - 1):
                run.profile_level(level)
            if idx == 0:
                run.throughput()
                run.lxd_bulk()
            if idx == len(sizes.levels) - 1:
                run.footprint_top(level)
        run.cleanup_instances()
    finally:
        run.close()
    run.raw["wall_seconds"] = time.monotonic() - started
    run.raw["load_before"] = load_before
    run.raw["load_after"] = os.getloadavg()
    run.raw["zfs_flavor"] = run.c.zfs_flavor if run.c else ""
    return run.raw
