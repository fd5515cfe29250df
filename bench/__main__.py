"""python -m bench [--smoke] [--size key=value ...] [--out DIR]

Starts the real components and the agent, measures (see bench/README.md),
writes <out>/<timestamp>.json and .md (and latest.json/latest.md for a full
run into the default directory), prints the markdown table. Needs root.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI keeps the harness working; "
                                                         "numbers mean nothing)")
    ap.add_argument("--size", action="append", default=[], metavar="KEY=VALUE",
                    help="override a size, e.g. --size levels=10,200 --size samples=20 (see bench/sizes.py)")
    ap.add_argument("--out", type=Path, default=None, help=f"results directory (default {RESULTS})")
    ap.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE", dest="overrides",
                    help="extra agent config override (e.g. instances.workers=16)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (zfs, netns, cgroupfs)", file=sys.stderr)
        return 2
    from bench import report, scenario, sizes as sizes_mod
    sizes = sizes_mod.override(sizes_mod.smoke() if args.smoke else sizes_mod.full(), args.size)
    raw = scenario.execute(sizes, ["instances.enabled=true"], args.overrides)
    out = args.out or RESULTS
    jpath, mpath = report.write(raw, sizes.as_dict(), args.smoke, out,
                                latest=not args.smoke and args.out is None and not args.size)
    print(mpath.read_text())
    print(f"written: {jpath} and {mpath}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
