"""The bench harness with tiny sizes (`python -m bench --smoke`): keeps it working in CI.

Benchmarks are not tests: nothing here looks at a time. It checks that every phase ran
against the real components without a failed call, that the report has every row and
target the published table has, and that the run left nothing behind on the host.
"""
from __future__ import annotations

import json
import os
import re
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
    # py-spy saw the instance threads at the first and the top level, and the report says where time went
    notes = [n for n in report["raw"]["notes"] if n.startswith("no profile")]
    if notes:            # py-spy cannot attach on this machine: the report must say so
        assert "no profile at level" in mpath.read_text(), notes
        print("bench smoke: no profile:", notes)
    profiles = report["raw"].get("profiles", {})
    assert set(profiles) | {n.split()[4].rstrip(":") for n in notes} == {"2", "4"}, (profiles, notes)
    for prof in profiles.values():
        assert prof["samples"] > 0 and prof["by_step"], prof
        assert all(re.search(r" \(agent/[\w/]+\.py(:\d+)?\)$", step) for step, _ in prof["by_step"]), prof
    md = mpath.read_text()
    assert "Where the agent's prepare + release time goes at level 4" in md
    assert "| prepare -> prepared @ 3 existing |" in md and "Targets" in md
    assert _host_state() == before


def test_levels_are_capped_on_zfs_fuse_only():
    from bench import sizes
    capped, note = sizes.for_flavor(sizes.full(), "zfs-fuse")
    assert capped.levels == (10, 500, sizes.ZFS_FUSE_MAX_LEVEL) and "EIO" in note
    assert sizes.for_flavor(sizes.full(), "openzfs") == (sizes.full(), "")
    assert sizes.for_flavor(sizes.smoke(), "zfs-fuse") == (sizes.smoke(), "")


def test_profile_summary_counts_busy_instance_threads_only(tmp_path):
    from bench import profile
    base = "/r/agent/services/instances/service.py"
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join([
        # busy: a prepare waiting for `zfs clone`
        f"_bootstrap (/py/lib/python3.11/threading.py);prepare ({base});clone (/r/agent/drivers/zfs/cli_backend.py);"
        "run (/r/agent/drivers/zfs/cli.py);communicate (/py/lib/python3.11/subprocess.py) 30",
        # busy: the NB transaction
        f"_bootstrap (/py/lib/python3.11/threading.py);prepare ({base});commit (/r/agent/drivers/ovsdb/nb.py);"
        "wait (/py/lib/python3.11/threading.py) 10",
        # idle: the watch pump waiting for port events; a pool worker waiting for a job
        "_bootstrap (/py/lib/python3.11/threading.py);_pump_ports (/r/agent/services/instances/watch.py);"
        "get (/py/lib/python3.11/queue.py) 500",
        "_bootstrap (/py/lib/python3.11/threading.py);_worker (/py/lib/python3.11/concurrent/futures/thread.py);"
        "get (/py/lib/python3.11/queue.py) 700",
        # another service entirely
        "_bootstrap (/py/lib/python3.11/threading.py);serve (/r/agent/server.py);poll (/r/grpc.py) 900",
    ]) + "\n")
    s = profile.summarize(raw)
    assert s["samples"] == 40
    assert s["by_step"] == [["clone > run (agent/drivers/zfs/cli.py)", 0.75],
                            ["prepare > commit (agent/drivers/ovsdb/nb.py)", 0.25]], s["by_step"]
    assert s["by_leaf"] == [["run > communicate (subprocess.py)", 0.75], ["commit > wait (threading.py)", 0.25]]
