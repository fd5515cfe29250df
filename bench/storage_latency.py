#!/usr/bin/env python3
"""Clone and delete latency: through the agent (gRPC, a real agent process)
vs the bare `zfs` command, in the same run, on the same pool.

usage: .venv/bin/python bench/storage_latency.py [--n 50] [--pool NAME]

Without --pool it starts (or reuses) zfs-fuse and makes a throwaway pool on a
sparse file, destroyed at the end. Operations alternate agent/bare so drift
(txg syncs, the other engineers' load) hits both alike. Prints p50/p95 per
operation and the agent/bare ratio. Numbers only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent._proto.devcloud.agent.v1 import storage_pb2 as pb  # noqa: E402
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc as pb_grpc  # noqa: E402
from agent.drivers import zfs as zfsdrv  # noqa: E402
from agent.drivers.embedded import zfs_fuse  # noqa: E402
from agent.drivers.zfs.cli import ZfsCommand  # noqa: E402
from agent.metrics import Metrics  # noqa: E402
from bench.stats import text_row  # noqa: E402
from tests.support.server import AgentProcess  # noqa: E402
from tests.support.zfs import make_tarball, upload  # noqa: E402

ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def zfs(*args: str) -> None:
    subprocess.run(["zfs", *args], check=True, capture_output=True, env=ENV)


def bare_delete(name: str) -> None:
    """What an operator types on zfs-fuse: `zfs umount` then `zfs destroy` (a mounted dataset
    is "busy" otherwise), retrying busy like the agent does."""
    subprocess.run(["zfs", "umount", name], capture_output=True, env=ENV)
    for _ in range(200):
        if subprocess.run(["zfs", "destroy", name], capture_output=True, env=ENV).returncode == 0:
            return
        time.sleep(0.02)
    raise RuntimeError(f"cannot destroy {name}")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="clones per method (default 50)")
    ap.add_argument("--pool", help="use this imported pool instead of a throwaway one")
    args = ap.parse_args()
    flavor, reason = zfsdrv.detect_flavor()
    if not flavor:
        raise SystemExit(reason)
    tmp = Path(tempfile.mkdtemp(prefix="devcloud-bench-"))
    daemon = lease = None
    cmd = ZfsCommand(Metrics())
    pool = args.pool
    if not pool:
        if flavor == "zfs-fuse":
            daemon, lease = zfs_fuse.ensure_running(tmp / "zfsstate")
        pool = f"dcbench{os.getpid()}"
        zfs_fuse.ensure_file_pool(cmd, pool, tmp / f"{pool}.img", size=4 << 30, mountpoint=str(tmp / "mnt"),
                                  cachefile=False)
    parent = f"{pool}/bench{secrets.token_hex(3)}"
    agent = AgentProcess(tmp / "agent", ["storage.enabled=true", f"storage.pool={pool}",
                                         f"storage.parent={parent}", "storage.busy_timeout=30"]).start()
    try:
        with agent.channel() as ch:
            stub = pb_grpc.StorageServiceStub(ch)
            data, sha = make_tarball()
            upload(stub, "img", data, sha)
            backend = stub.GetPool(pb.GetPoolRequest(), timeout=10).pool
            base = f"{parent}/images/img@base"
            zfs("create", f"{parent}/bare")
            zfs("create", f"{parent}/barem")          # clones with marks: kept out of the bulk comparison
            n = args.n
            t = {k: [] for k in ("agent_clone", "bare_clone", "bare_clone_marks", "agent_delete", "bare_delete",
                                 "agent_clone_b", "bare_clone_b")}
            marks = ["-o", "devcloud:owner=devcloud-agent", "-o", "devcloud:type=volume", "-o", "devcloud:kind=root",
                     "-o", "devcloud:team=t", "-o", "devcloud:name=x", "-o", "devcloud:image=img"]

            def ensure(team, name):
                return lambda: stub.EnsureVolume(pb.EnsureVolumeRequest(spec=pb.VolumeSpec(
                    team=team, name=name, kind=pb.VOLUME_KIND_ROOT, image_id="img",
                    refquota_bytes=1 << 30)), timeout=60)
            for i in range(n):
                t["agent_clone"].append(timed(ensure("t", f"v{i}")))
                t["bare_clone"].append(timed(lambda: zfs("clone", "-o", "refquota=1G", base,
                                                         f"{parent}/bare/v{i}")))
                t["bare_clone_marks"].append(timed(lambda: zfs("clone", "-o", "refquota=1G", *marks, base,
                                                               f"{parent}/barem/m{i}")))
            for i in range(n):
                t["agent_delete"].append(timed(lambda: stub.DeleteVolume(
                    pb.DeleteVolumeRequest(team="t", name=f"v{i}"), timeout=60)))
                t["bare_delete"].append(timed(lambda: bare_delete(f"{parent}/bare/v{i}")))
            # bulk: a team of n released at once vs `zfs destroy -r` of n bare clones
            for i in range(n):
                t["agent_clone_b"].append(timed(ensure("bulk", f"v{i}")))
                t["bare_clone_b"].append(timed(lambda: zfs("clone", base, f"{parent}/bare/b{i}")))
            bulk_agent = timed(lambda: stub.DeleteVolumes(pb.DeleteVolumesRequest(team="bulk", all=True),
                                                          timeout=300))
            def bare_bulk():
                for _ in range(500):   # `zfs destroy -r` unmounts, then trips on zfs-fuse's busy: retry
                    if subprocess.run(["zfs", "destroy", "-r", f"{parent}/bare"], capture_output=True,
                                      env=ENV).returncode == 0:
                        return
                    time.sleep(0.02)
            bulk_bare = timed(bare_bulk)
        print(f"\nstorage latency, ms (backend {backend.backend}, {backend.flavor}, pool {pool}, n={n})")
        print(f"{'operation':<34} {'n':>4} {'p50':>9} {'p95':>9} {'mean':>9} {'ratio':>7}")
        print(text_row("clone: agent EnsureVolume (gRPC)", t["agent_clone"], t["bare_clone"]))
        print(text_row("clone: bare `zfs clone`", t["bare_clone"], None))
        print(text_row("clone: bare `zfs clone` + our 6 marks", t["bare_clone_marks"], t["bare_clone"]))
        print(text_row("delete: agent DeleteVolume (gRPC)", t["agent_delete"], t["bare_delete"]))
        print(text_row("delete: bare `zfs umount`+`destroy`", t["bare_delete"], None))
        print(f"{'bulk delete of ' + str(n) + ': agent DeleteVolumes':<34} {1:>4} {bulk_agent * 1e3:>9.1f}"
              f" {'':>9} {'':>9} {bulk_agent / bulk_bare:6.2f}x")
        print(f"{'bulk delete of ' + str(n) + ': `zfs destroy -r`':<34} {1:>4} {bulk_bare * 1e3:>9.1f}")
        print("(bare delete retries \"busy\" every 20 ms as zfs-fuse needs; the agent does the same with backoff)")
    finally:
        agent.stop()
        subprocess.run(["zfs", "destroy", "-r", parent], capture_output=True, env=ENV)
        if not args.pool:
            zfs_fuse.destroy_file_pool(cmd, pool, tmp / f"{pool}.img")
            if daemon is not None:
                zfs_fuse.stop_if_unused(daemon, lease)
    return 0


if __name__ == "__main__":
    sys.exit(main())
