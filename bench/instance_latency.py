#!/usr/bin/env python3
"""PrepareInstance latency (to prepared, to ready) vs the bare ZFS clone, and
bulk release of a team vs releasing the same number one by one with the CLI.

usage: .venv/bin/python bench/instance_latency.py [--n 30] [--bulk 200]

Starts everything it needs (zfs-fuse or the OpenZFS module with a throwaway
pool on a sparse file, an OVN stack, a cgroup subtree, the agent as a
process) and removes it at the end. Prepare kinds and the bare `zfs clone`
alternate so drift hits all alike. Numbers only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb  # noqa: E402
from agent.drivers import procfs  # noqa: E402
from agent.drivers import zfs as zfsdrv  # noqa: E402
from agent.drivers.embedded import zfs_fuse  # noqa: E402
from agent.drivers.zfs.cli import ZfsCommand  # noqa: E402
from agent.metrics import Metrics  # noqa: E402
from bench.stats import text_row  # noqa: E402
from tests.support.cgroup import remove_cgroup_tree  # noqa: E402
from tests.support.instances import AgentRun, Env, nic, spec, stub  # noqa: E402
from tests.support.ovn import Tools, start_stack, stop_stack  # noqa: E402
from tests.support.server import REPO  # noqa: E402
from tests.support.zfs import SessionPool  # noqa: E402

ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="prepares per kind (default 30)")
    ap.add_argument("--bulk", type=int, default=200, help="instances released in bulk / one by one (default 200)")
    args = ap.parse_args()
    flavor, reason = zfsdrv.detect_flavor()
    if not flavor:
        raise SystemExit(reason)
    tmp = Path(tempfile.mkdtemp(prefix="devcloud-ibench-", dir="/var/tmp"))
    daemon = lease = None
    if flavor == "zfs-fuse":
        daemon, lease = zfs_fuse.ensure_running(tmp / "zfsstate")
    cmd = ZfsCommand(Metrics())
    pool_name = f"dcib{os.getpid()}"
    zfs_fuse.ensure_file_pool(cmd, pool_name, tmp / f"{pool_name}.img", size=8 << 30, mountpoint=str(tmp / "mnt"),
                              cachefile=False)
    stack = start_stack("ib")
    cg = os.path.join(procfs.cgroup2_mount(), f"devcloud-ibench-{os.getpid()}")
    os.mkdir(cg)
    env = Env.make(SessionPool(pool_name, str(tmp / "mnt"), tmp / f"{pool_name}.img", flavor), stack, Tools(stack),
                   cg, tag="b")
    agent = AgentRun(env).start()
    ch = agent.channel()
    try:
        team, bulk_team, cli_team = (f"{x}{secrets.token_hex(2)}" for x in ("bt", "bb", "bc"))
        env.setup(ch, {team: "10.60.0.0/22", bulk_team: "10.61.0.0/22", cli_team: "10.62.0.0/22"})
        s = stub(ch)
        base = f"{env.parent}/images/img@base"
        subprocess.run(["zfs", "create", f"{env.parent}/bare"], check=True, env=ENV)
        t = {"bare": [], "prepared": [], "ready": [], "again": []}
        for i in range(args.n):
            t["bare"].append(timed(lambda: subprocess.run(
                ["zfs", "clone", "-o", f"refquota={64 << 20}", base, f"{env.parent}/bare/c{i}"], check=True, env=ENV)))
            t["prepared"].append(timed(lambda: s.PrepareInstance(ipb.PrepareInstanceRequest(
                spec=spec(f"p{i}", team, [nic("eth0", team)])), timeout=60)))
            t["ready"].append(timed(lambda: s.PrepareInstance(ipb.PrepareInstanceRequest(
                spec=spec(f"r{i}", team, [nic("eth0", team)]), wait_ready=True), timeout=60)))
        for i in range(args.n):
            t["again"].append(timed(lambda: s.PrepareInstance(ipb.PrepareInstanceRequest(
                spec=spec(f"p{i}", team, [nic("eth0", team)])), timeout=60)))
        print(f"\nPrepareInstance latency, ms ({flavor}, 1 NIC, agent process over gRPC, n={args.n})")
        print(f"{'operation':<44} {'n':>4} {'p50':>9} {'p95':>9} {'mean':>9} {'ratio':>7}")
        print(text_row("bare `zfs clone` (CLI)", t["bare"], None, width=44))
        print(text_row("PrepareInstance -> prepared", t["prepared"], t["bare"], width=44))
        print(text_row("PrepareInstance wait_ready -> ready", t["ready"], t["bare"], width=44))
        print(text_row("PrepareInstance same spec again", t["again"], t["bare"], width=44))

        # bulk release of a team vs the same number released one by one with devcloudctl
        for tm in (bulk_team, cli_team):
            for i in range(args.bulk):
                s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(f"{tm}-{i}", tm, [nic("eth0", tm)])),
                                  timeout=60)
        bulk = timed(lambda: s.ReleaseInstances(ipb.ReleaseInstancesRequest(team=bulk_team), timeout=600))
        ctl = [sys.executable, "-m", "agent.cli.ctl", "--socket", agent.proc.socket, "instance", "release"]
        one = timed(lambda: [subprocess.run(ctl + [f"{cli_team}-{i}"], check=True, cwd=REPO, capture_output=True,
                                            env={**os.environ, "PYTHONPATH": str(REPO)}) for i in range(args.bulk)])
        left = s.ListInstances(ipb.ListInstancesRequest(), timeout=60).instances
        print(f"\nrelease of {args.bulk} instances (1 NIC each)")
        print(f"  ReleaseInstances(team) in bulk:       {bulk:8.2f} s")
        print(f"  devcloudctl instance release, 1 by 1: {one:8.2f} s   ({one / bulk:.1f}x the bulk time)")
        print(f"  instances left in those teams: {sum(1 for i in left if i.team in (bulk_team, cli_team))}")
        s.ReleaseInstances(ipb.ReleaseInstancesRequest(team=team), timeout=600)
    finally:
        env.delete_networks(ch)
        ch.close()
        agent.stop()
        env.cleanup()
        remove_cgroup_tree(cg)
        stop_stack(stack)
        zfs_fuse.destroy_file_pool(cmd, pool_name, tmp / f"{pool_name}.img")
        if daemon is not None:
            zfs_fuse.stop_if_unused(daemon, lease)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
