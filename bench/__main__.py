"""python -m bench [--smoke] [--size key=value ...] [--out DIR]

Starts the real components and the agent, measures (see bench/README.md),
writes <out>/<timestamp>.json and .md (and latest.json/latest.md for a full
run into the default directory), prints the markdown table. Needs root.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
ISOLATED = "DEVCLOUD_BENCH_ISOLATED"


def _isolated_rerun(argv: list[str]) -> int:
    """Run the bench again in a private mount namespace with its own /run/zfs and /run/lock:
    zfs-fuse has one fixed socket per host, so this gives the run a zfs-fuse of its own (its
    FUSE mounts, netns mounts and locks invisible to the host). Other sessions' ZFS load does
    not disturb the numbers, and the bench's load cannot wedge their daemon."""
    env = {**os.environ, ISOLATED: "1"}
    return subprocess.call(["unshare", "--mount", "--propagation", "private", sys.executable, "-m", "bench",
                            *argv], env=env, cwd=REPO)


def _private_run_dirs() -> None:
    for d in ("/run/zfs", "/run/lock"):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "devcloud-bench", d], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI keeps the harness working; "
                                                         "numbers mean nothing)")
    ap.add_argument("--size", action="append", default=[], metavar="KEY=VALUE",
                    help="override a size, e.g. --size levels=10,200 --size samples=20 (see bench/sizes.py)")
    ap.add_argument("--out", type=Path, default=None, help=f"results directory (default {RESULTS})")
    ap.add_argument("--shared-zfs", action="store_true",
                    help="use the host's zfs-fuse daemon instead of a private one (see README)")
    ap.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE", dest="overrides",
                    help="extra agent config override (e.g. instances.workers=16)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (zfs, netns, cgroupfs)", file=sys.stderr)
        return 2
    if not args.shared_zfs:
        if not os.environ.get(ISOLATED):
            return _isolated_rerun(sys.argv[1:] if argv is None else argv)
        _private_run_dirs()
    from bench import report, scenario, sizes as sizes_mod
    from agent.drivers.zfs import detect_flavor
    sizes = sizes_mod.override(sizes_mod.smoke() if args.smoke else sizes_mod.full(), args.size)
    sizes, capped = sizes_mod.for_flavor(sizes, detect_flavor()[0])
    if capped:
        print(f"bench: {capped}", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # a kill still runs the cleanup below
    raw = scenario.execute(sizes, ["instances.enabled=true"], args.overrides)
    raw["notes"] = ([capped] if capped else []) + raw.get("notes", [])
    out = args.out or RESULTS
    jpath, mpath = report.write(raw, sizes.as_dict(), args.smoke, out,
                                latest=not args.smoke and args.out is None and not args.size)
    print(mpath.read_text())
    print(f"written: {jpath} and {mpath}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
