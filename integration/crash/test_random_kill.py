"""Crash safety under real faults: SIGKILL of the agent at random instants during
bursts of Prepare / Release / converge / bulk ReleaseInstances (a separate client
process), restart on the same state dir, census with independent tools
(integration/crash/harness.py says what each round checks).

Rounds: DEVCLOUD_KILL_ROUNDS (default 30). More: `python -m integration.crash --rounds 100`.
"""
from __future__ import annotations

import os

import pytest

from integration.crash.harness import KillNode, run_rounds, summary

ROUNDS = int(os.environ.get("DEVCLOUD_KILL_ROUNDS", "30"))


@pytest.mark.slow
def test_random_kill_rounds(zfs_pool, cgroup_session_dir, capsys):
    node = KillNode(zfs_pool.name, cgroup_session_dir)
    try:
        node.start()
        node.setup()
        results = run_rounds(node, ROUNDS)
        final = node.release_all()
        s = summary(results)
        with capsys.disabled():
            print(f"\n[random-kill] {s['rounds']} killed rounds, kill delays {s['kill_delay_min']:.3f}-"
                  f"{s['kill_delay_max']:.3f} s (median {s['kill_delay_median']:.3f}), restart -> ready min/median/max "
                  f"{s['restart_ready_min']:.2f}/{s['restart_ready_median']:.2f}/{s['restart_ready_max']:.2f} s, "
                  f"{s['problems']} problems, final release: {len(final)} problems")
        problems = [f"round {r.index}: {p}" for r in results for p in r.problems] + final
        assert problems == [], "\n".join(problems)
    finally:
        node.stop()
