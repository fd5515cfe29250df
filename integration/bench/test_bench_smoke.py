"""The bench harness with tiny sizes (`python -m bench --smoke`): keeps it working in CI.

Benchmarks are not tests: nothing here looks at a time. It checks that every phase ran
against the real components without a failed call, that the report has every row and
target the published table has, and that the run left nothing behind on the host.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.drivers import procfs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

ROWS = {"prepare_prepared@2", "prepare_ready@2", "release@2", "prepare_prepared@4", "prepare_ready@4",
        "release@4", "release_bulk", "release_one_by_one", "throughput@1", "throughput@2", "read@list",
        "read@info", "read@probe", "read@get", "rss_idle", "rss_top", "ready_empty", "ready_top"}


def _host_state() -> dict:
    mount = procfs.cgroup2_mount()
    return {
        "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        "cgroups": sorted(d for d in os.listdir(mount) if d.startswith("devcloud-bench")),
        "tmp": sorted(p.name for p in Path("/tmp").glob("devcloud-bench-*")),
        "disks": sorted(p.name for p in Path("/var/tmp").glob("devcloud-bench-*")),
    }


def test_bench_smoke_run_reports_every_row_and_leaves_nothing(tmp_path):
    before = _host_state()
    run = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, f"bench failed (rc {run.returncode}):\n{run.stderr[-4000:]}"
    [jpath] = tmp_path.glob("*-smoke.json")
    [mpath] = tmp_path.glob("*-smoke.md")
    report = json.loads(jpath.read_text())
    assert report["schema"] == "devcloud-bench/1" and report["smoke"] is True
    assert report["raw"]["errors"] == [], report["raw"]["errors"]
    rows = {r["id"]: r for r in report["results"]["rows"]}
    assert ROWS <= set(rows), f"missing rows: {sorted(ROWS - set(rows))}"
    for rid in ("prepare_prepared@2", "prepare_ready@4", "release@2"):
        assert rows[rid]["agent"]["n"] > 0 and rows[rid]["baseline"]["n"] > 0, rows[rid]
        assert rows[rid]["floor"]["n"] > 0, rows[rid]
    assert rows["release_bulk"]["agent"] is not None and rows["release_bulk"]["baseline"] is not None
    targets = report["results"]["targets"]
    assert len(targets) == 7 and all(t["value"] is not None for t in targets), targets
    # the restarted agent adopted every instance, and the cleanup's bulk releases removed them all
    fp = report["raw"]["footprint"]
    assert fp["count_after_restart"] == report["raw"]["fill"][-1]["to"], fp
    assert {"storage", "network.reconcile", "instances: reconcile"} <= set(fp["startup_steps_top"]), fp
    assert sum(c["released"] or 0 for c in report["raw"]["cleanup"]) == fp["count_after_restart"]
    md = mpath.read_text()
    assert "| prepare -> prepared @ 3 existing |" in md and "Targets" in md
    assert _host_state() == before


def test_levels_are_capped_on_zfs_fuse_only():
    from bench import sizes
    capped, note = sizes.for_flavor(sizes.full(), "zfs-fuse")
    assert capped.levels == (10, 500, sizes.ZFS_FUSE_MAX_LEVEL) and "EIO" in note
    assert sizes.for_flavor(sizes.full(), "openzfs") == (sizes.full(), "")
    assert sizes.for_flavor(sizes.smoke(), "zfs-fuse") == (sizes.smoke(), "")
