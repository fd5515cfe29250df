"""python -m integration.crash [--rounds N] [--seed S]: the random-kill harness outside pytest,
with its own zfs-fuse pool (or OpenZFS where /dev/zfs exists) and cgroup subtree."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from agent.drivers import zfs as zfsdrv
from agent.drivers.embedded import zfs_fuse
from agent.drivers.zfs.cli import ZfsCommand
from agent.drivers import procfs
from agent.metrics import Metrics
from integration.crash.harness import KillNode, run_rounds, summary
from tests.support.cgroup import remove_cgroup_tree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30, help="killed rounds (default 30)")
    ap.add_argument("--seed", type=int, default=None, help="random seed of the plans and kill delays")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args()
    flavor, reason = zfsdrv.detect_flavor()
    if not flavor:
        print(f"no ZFS here: {reason}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="dckz", dir="/var/tmp"))
    daemon = lease = None
    if flavor == "zfs-fuse":
        daemon, lease = zfs_fuse.ensure_running(base / "state")
    cmd, name = ZfsCommand(Metrics()), f"dck{secrets.token_hex(3)}"
    pool = zfs_fuse.ensure_file_pool(cmd, name, base / f"{name}.img", size=4 << 30, mountpoint=str(base / "mnt"),
                                     cachefile=False)
    cg = os.path.join(procfs.cgroup2_mount(), f"devcloud-kill-{os.getpid()}")
    os.mkdir(cg)
    node = KillNode(name, cg, seed=args.seed)
    try:
        node.start()
        node.setup()
        results = run_rounds(node, args.rounds, log=lambda m: print(m, file=sys.stderr))
        final = node.release_all()
        s = {**summary(results), "final_release_problems": final}
        print(json.dumps(s, indent=2) if args.json else s)
        return 0 if not s["problems"] and not final else 1
    finally:
        node.stop()
        remove_cgroup_tree(cg)
        zfs_fuse.destroy_file_pool(cmd, name, pool.path)
        shutil.rmtree(base, ignore_errors=True)
        if daemon is not None:
            zfs_fuse.stop_if_unused(daemon, lease)


if __name__ == "__main__":
    sys.exit(main())
