"""Clone latency in the node guest, same run, same pool, same image snapshot:
EnsureVolume(ROOT) through devcloud-agent.service with the lzc backend
(libzfs_core), then the agent restarted with backend=cli (forks zfs), each
interleaved call by call with bare `zfs clone` from this test (plain, and with
the same properties the agent sets). Numbers go to
results/agent-clone-latency.json (printed by the host test); nothing is
asserted about them (TCG timings are noisy), only that every clone is real."""
from __future__ import annotations

import json
import os
import statistics
import time

import pytest

from agent._proto.devcloud.agent.v1 import storage_pb2 as spb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc

import agent_unit as au

pytestmark = pytest.mark.skipif(os.environ.get("DEVCLOUD_NODE_GUEST") != "1", reason="runs inside the node guest")
N = 12
MiB = 1 << 20


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"n": len(xs), "mean_s": round(statistics.fmean(xs), 4), "median_s": round(statistics.median(xs), 4),
            "p95_s": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 4), "min_s": round(xs[0], 4)}


def _phase(agent, backend: str, image_id: str, snap: str, bare_parent: str, u: str) -> dict[str, list[float]]:
    stub = agent.stub(storage_pb2_grpc)
    pool = stub.GetPool(spb.GetPoolRequest(), timeout=au.RPC).pool
    assert pool.backend == backend, f"agent runs backend {pool.backend!r}, wanted {backend!r}"
    team = f"lat{backend}{u}"
    t = {f"agent_{backend}": [], f"bare_{backend}_phase": [], f"bare_props_{backend}_phase": []}
    vols = []
    m0 = au.metric_sums(PREFIXES)
    for i in range(N):
        spec = spb.VolumeSpec(team=team, name=f"v{i}", kind=spb.VOLUME_KIND_ROOT, image_id=image_id,
                              instance=f"i{i}", refquota_bytes=256 * MiB)
        t[f"agent_{backend}"].append(_timed(lambda: vols.append(
            stub.EnsureVolume(spb.EnsureVolumeRequest(spec=spec), timeout=au.RPC).volume)))
        t[f"bare_{backend}_phase"].append(_timed(lambda: au.run("zfs", "clone", snap, f"{bare_parent}/{backend}p{i}")))
        t[f"bare_props_{backend}_phase"].append(_timed(lambda: au.run(
            "zfs", "clone", "-o", f"refquota={256 * MiB}", "-o", "devcloud:owner=bare-test", snap,
            f"{bare_parent}/{backend}q{i}")))
    breakdown = _per_clone(m0, au.metric_sums(PREFIXES))
    for v in vols:   # real clones, mounted, with the quota: checked with zfs itself
        p = au.zget(v.dataset, "origin", "mounted", "refquota")
        assert p == {"origin": snap, "mounted": "yes", "refquota": str(256 * MiB)}, (v.dataset, p)
    r = stub.DeleteVolumes(spb.DeleteVolumesRequest(team=team, all=True), timeout=au.RPC)
    assert all(x.deleted for x in r.results) and len(r.results) == N
    return t, breakdown


PREFIXES = ("devcloud_agent_zfs_operation_duration_seconds", "devcloud_agent_rpc_duration_seconds")


def _per_clone(before: dict, after: dict) -> dict:
    """Inside the agent, per EnsureVolume: server-side RPC time and each ZFS operation
    (count, ms) from its own Prometheus histograms, diffed around the phase."""
    out = {}
    for (name, labels), value in after.items():
        if not name.endswith("_sum"):
            continue
        lab = dict(labels)
        if "rpc" in name and not lab.get("method", "").endswith("/EnsureVolume"):
            continue
        count = after.get((name[:-4] + "_count", labels), 0) - before.get((name[:-4] + "_count", labels), 0)
        if count:
            key = "rpc EnsureVolume (server side)" if "rpc" in name else f"zfs {lab['op']} ({lab['backend']})"
            out[key] = {"calls_per_clone": round(count / N, 2),
                        "ms_per_clone": round((value - before.get((name, labels), 0)) * 1e3 / N, 1)}
    return out


def test_clone_latency_agent_lzc_vs_agent_cli_vs_bare(agent, storage_world, session_id, results_dir):
    snap, image_id = storage_world.image.base_snapshot, storage_world.image_id
    bare_parent = f"{agent.pool}/bare{session_id}"      # outside the agent's parent dataset
    au.run("zfs", "create", bare_parent)
    try:
        times, inside_lzc = _phase(agent, "lzc", image_id, snap, bare_parent, session_id)
        restart_s = agent.restart_with("cli")
        cli_times, inside_cli = _phase(agent, "cli", image_id, snap, bare_parent, session_id)
        times.update(cli_times)
    finally:
        au.run("zfs", "destroy", "-r", bare_parent, check=False)
    bare = times["bare_lzc_phase"] + times["bare_cli_phase"]
    bare_props = times["bare_props_lzc_phase"] + times["bare_props_cli_phase"]
    mean = {k: statistics.fmean(v) for k, v in times.items()}
    report = {
        "what": "per-clone wall time in the node guest (TCG): agent = EnsureVolume(ROOT, refquota) over gRPC "
                "(clone + properties + mount + observed reply); bare = one `zfs clone` fork (mounts), "
                "bare_props = `zfs clone -o refquota -o devcloud:owner`; interleaved call by call",
        "clones_per_variant": N,
        **{k: _stats(v) for k, v in times.items()},
        "bare_all": _stats(bare), "bare_props_all": _stats(bare_props),
        "agent_cli_over_agent_lzc": round(mean["agent_cli"] / mean["agent_lzc"], 2),
        "agent_lzc_over_bare": round(mean["agent_lzc"] / mean["bare_lzc_phase"], 2),
        "agent_cli_over_bare": round(mean["agent_cli"] / mean["bare_cli_phase"], 2),
        "agent_lzc_over_bare_props": round(mean["agent_lzc"] / mean["bare_props_lzc_phase"], 2),
        "agent_cli_over_bare_props": round(mean["agent_cli"] / mean["bare_props_cli_phase"], 2),
        "inside_agent_lzc": inside_lzc,
        "inside_agent_cli": inside_cli,
        "restart_with_cli_s": round(restart_s, 2),
        "cpus": os.cpu_count(),
    }
    (results_dir / "agent-clone-latency.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
