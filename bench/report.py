"""Turn a run's raw measurements into rows, targets, a JSON file and a markdown table."""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

from bench.stats import ratio, summary

SCHEMA = "devcloud-bench/1"
MiB = 1 << 20


def machine() -> dict:
    def first(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return ""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    mem = next((int(l.split()[1]) * 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    osname = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release")
                   if l.startswith("PRETTY_NAME=")), "")
    repo = Path(__file__).resolve().parents[1]
    commit = first(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = bool(first(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"]))
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "memory_bytes": mem, "os": osname, "kernel": platform.release(), "python": platform.python_version(),
            "ovs": first(["ovs-vsctl", "--version"]), "ovn": first(["ovn-nbctl", "--version"]),
            "commit": commit + ("-dirty" if dirty else "")}


def _p50(xs):
    return summary(xs)["p50"] if xs else None


def build(raw: dict, sizes: dict, smoke: bool) -> dict:
    """rows (the one table), steps (per-step detail), targets."""
    levels = raw["levels"]
    keys = list(levels)
    first, top = (levels[keys[0]], levels[keys[-1]]) if keys else ({}, {})
    rows: list[dict] = []

    def lat_row(rid, label, agent, base, floor, floor_label, note=""):
        a, b, f = summary(agent), summary(base) if base is not None else None, summary(floor) if floor else None
        rows.append({"id": rid, "label": label, "kind": "latency", "agent": a, "baseline": b, "floor": f,
                     "floor_label": floor_label, "baseline_over_agent": ratio(b and b["p50"], a["p50"]),
                     "agent_over_floor": ratio(a["p50"], f and f["p50"]), "note": note})

    clone = "zfs clone"
    for key, lv in levels.items():
        tag = f" @ {lv['existing']} existing"
        lat_row(f"prepare_prepared@{key}", "prepare -> prepared" + tag, lv["agent_prepared"], lv["lxd_prepared"],
                lv["floor"].get(clone), "zfs clone alone")
        lat_row(f"prepare_ready@{key}", "prepare -> ready (port up)" + tag, lv["agent_ready"], lv["lxd_ready"],
                lv["floor"].get(clone), "zfs clone alone",
                f"{lv['not_ready']} replies not ready" if lv["not_ready"] else "")
        lat_row(f"release@{key}", "release one" + tag, lv["agent_release"], lv["lxd_release"],
                lv["floor_release"].get("zfs umount + destroy"), "zfs umount + destroy alone")
    bulk, lxd_bulk, one = raw.get("bulk_release"), raw.get("lxd_bulk"), raw.get("release_one_by_one")
    if bulk:
        b = lxd_bulk["release_seconds"] * 1e3 if lxd_bulk else None
        rows.append({"id": "release_bulk", "label": f"release a team of {bulk['n']} (ReleaseInstances, bulk)",
                     "kind": "total_ms", "agent": round(bulk["seconds"] * 1e3, 1), "baseline": b and round(b, 1),
                     "floor": None, "floor_label": "", "baseline_over_agent": ratio(b, bulk["seconds"] * 1e3),
                     "agent_over_floor": None,
                     "note": f"baseline: {lxd_bulk['n']} LXD-style teardowns one by one" if lxd_bulk else ""})
    if one and one["n"]:
        per = one["seconds"] / one["n"]
        b = lxd_bulk["release_seconds"] / lxd_bulk["n"] if lxd_bulk and lxd_bulk["n"] else None
        rows.append({"id": "release_one_by_one", "label": f"release one by one ({one['n']} ReleaseInstance), "
                     "per instance", "kind": "total_ms", "agent": round(per * 1e3, 1),
                     "baseline": b and round(b * 1e3, 1), "floor": None, "floor_label": "",
                     "baseline_over_agent": ratio(b, per), "agent_over_floor": None, "note": ""})
    for t in raw.get("throughput", []):
        lxd_rate = (lxd_bulk["n"] / lxd_bulk["create_seconds"]) if lxd_bulk and lxd_bulk["create_seconds"] else None
        rows.append({"id": f"throughput@{t['clients']}", "label": f"throughput, {t['clients']} client"
                     f"{'s' if t['clients'] > 1 else ''} ({t['ops']} prepares)", "kind": "rate",
                     "agent": t["rate"] and round(t["rate"], 2), "baseline": lxd_rate and round(lxd_rate, 2),
                     "floor": None, "floor_label": "", "baseline_over_agent": ratio(t["rate"], lxd_rate),
                     "agent_over_floor": None, "latency": summary(t["latency"]),
                     "note": "baseline: LXD-style CLI, serial; ratio = agent/baseline"})
    read = raw.get("read") or {}
    labels = {"list": "ListInstances (1 team, 1 instance)", "info": "GetAgentInfo", "probe": "Probe",
              "get": "GetInstance (observes every part)"}
    for k in ("list", "info", "probe", "get"):
        if read.get(k):
            a, f = summary(read[k]), summary(read.get("echo", []))
            rows.append({"id": f"read@{k}", "label": f"read-only RPC: {labels[k]}", "kind": "latency", "agent": a,
                         "baseline": None, "floor": f, "floor_label": "bare gRPC echo",
                         "baseline_over_agent": None, "agent_over_floor": ratio(a["p50"], f["p50"]),
                         "note": f"+{a['p50'] - f['p50']:.3f} ms over the echo" if f["p50"] is not None else ""})
    fp = raw.get("footprint", {})
    for rid, label, key in (("rss_idle", "agent RSS, idle (0 instances)", "rss_idle"),
                            ("rss_top", f"agent RSS with {fp.get('top_level')} instances", "rss_top"),
                            ("rss_top_restart", f"agent RSS after restart with {fp.get('top_level')}",
                             "rss_top_after_restart")):
        if fp.get(key):
            rows.append({"id": rid, "label": label, "kind": "mib", "agent": round(fp[key]["VmRSS"] / MiB, 1),
                         "baseline": None, "floor": None, "floor_label": "", "baseline_over_agent": None,
                         "agent_over_floor": None, "note": f"peak (VmHWM) {fp[key].get('VmHWM', 0) / MiB:.0f} MiB"})
    for rid, label, key in (("ready_empty", "start -> READY, empty node", "ready_seconds_empty"),
                            ("ready_top", f"start -> READY with {fp.get('top_level')} instances to reconcile",
                             "ready_seconds_top")):
        if fp.get(key) is not None:
            split = fp.get("startup_steps_top") if rid == "ready_top" else None
            note = "steps: " + ", ".join(f"{k} {v:.2f}s" for k, v in split.items()) if split else ""
            rows.append({"id": rid, "label": label, "kind": "seconds", "agent": round(fp[key], 3), "baseline": None,
                         "floor": None, "floor_label": "", "baseline_over_agent": None, "agent_over_floor": None,
                         "note": note})

    steps = {"prepare": {}, "release": {}}
    for key in (keys[0],) if keys else ():
        lv = levels[key]
        for k, v in lv["lxd_steps"].items():
            steps["prepare"][f"CLI: {k}"] = summary(v)
        for k, v in lv["floor"].items():
            steps["prepare"][f"floor: {k}"] = summary(v)
        for k, v in lv["lxd_release_steps"].items():
            steps["release"][f"CLI: {k}"] = summary(v)
        for k, v in lv["floor_release"].items():
            steps["release"][f"floor: {k}"] = summary(v)

    targets = []

    def target(tid, text, value, limit, better, unit=""):
        met = None if value is None else (value <= limit if better == "le" else value >= limit)
        targets.append({"id": tid, "text": text, "value": value, "limit": limit, "op": better, "unit": unit,
                        "met": met})
    if first:
        a, c = _p50(first["agent_prepared"]), _p50(first["floor"].get(clone, []))
        target("prepared_vs_clone", "prepare->prepared p50 / zfs clone alone p50", ratio(a, c), 1.3, "le", "x")
        target("prepare_vs_lxd", "LXD-style prepare p50 / agent prepare p50", ratio(_p50(first["lxd_prepared"]), a),
               4.0, "ge", "x")
    if bulk and lxd_bulk:
        target("bulk_release", f"LXD-style one-by-one release of {lxd_bulk['n']} / agent bulk release",
               ratio(lxd_bulk["release_seconds"], bulk["seconds"]), 10.0, "ge", "x")
    if len(keys) > 1:
        target("scale_flat", f"prepare p50 at {top['existing']} / at {first['existing']} existing",
               ratio(_p50(top["agent_prepared"]), _p50(first["agent_prepared"])), 1.2, "le", "x")
    if read.get("list") and read.get("echo"):
        d = summary(read["list"])["p50"] - summary(read["echo"])["p50"]
        target("read_overhead", "read-only RPC p50 - bare echo p50 (ListInstances)", round(d, 3), 0.5, "le", "ms")
    if fp.get("rss_top"):
        rss = max(fp["rss_top"]["VmRSS"], fp.get("rss_top_after_restart", {}).get("VmRSS", 0)) / MiB
        target("rss", f"agent RSS with {fp['top_level']} instances", round(rss, 1), 150, "le", "MiB")
    if fp.get("ready_seconds_top") is not None:
        target("ready", f"start -> READY with {fp['top_level']} instances", round(fp["ready_seconds_top"], 3), 3.0,
               "le", "s")
    return {"rows": rows, "steps": steps, "targets": targets}


def _cell(row: dict, which: str) -> str:
    v = row[which]
    if v is None:
        return "-"
    kind = row["kind"]
    if kind == "latency":
        if which == "agent":
            return f"{v['p50']:.2f} / {v['p95']:.2f} / {v['p99']:.2f}" if v["n"] else "-"
        return f"{v['p50']:.2f}" if v["n"] else "-"
    if kind == "rate":
        return f"{v:.1f}/s"
    if kind == "mib":
        return f"{v:.0f} MiB"
    if kind == "seconds":
        return f"{v:.2f} s"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def markdown(doc: dict) -> str:
    m, r = doc["machine"], doc["results"]
    lines = [f"Taken {doc['taken']} on `{m['hostname']}`: {m['cpus']} x {m['cpu_model']}, "
             f"{m['memory_bytes'] / 2**30:.0f} GiB, {m['os']}, kernel {m['kernel']}, Python {m['python']}, "
             f"ZFS {doc['zfs_flavor']}, {m['ovs']}, commit {m['commit']}. "
             f"Load average before/after: {doc['load_before'][0]:.2f} / {doc['load_after'][0]:.2f} "
             f"(1 min). Wall time {doc['wall_seconds'] / 60:.1f} min."
             + (" **SMOKE RUN: tiny sizes, numbers meaningless.**" if doc["smoke"] else "")
             + "".join(f" Note: {n}." for n in doc["raw"].get("notes", [])), "",
             "Latencies in ms (agent: p50 / p95 / p99; baseline and floor: p50). Baseline = the LXD way, one CLI "
             "per step; floor = the slowest single step alone. Ratios: CLI/agent (higher is better for the agent), "
             "agent/floor (1.0 = nothing but the floor).", "",
             "| measurement | agent | LXD-style CLI | floor | CLI / agent | agent / floor | note |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for row in r["rows"]:
        note = row.get("note", "")
        if row["kind"] == "rate" and row.get("latency", {}).get("n"):
            note = f"latency p50 {row['latency']['p50']:.1f} ms under load; " + note
        floor = _cell(row, "floor") + (f" ({row['floor_label']})" if row["floor"] else "")
        lines.append(f"| {row['label']} | {_cell(row, 'agent')} | {_cell(row, 'baseline')} | {floor} | "
                     f"{_ratio(row['baseline_over_agent'])} | {_ratio(row['agent_over_floor'])} | {note} |")
    lines += ["", "Targets (ratios measured in this run):", "", "| target | measured | limit | met |",
              "|---|---:|---:|---|"]
    for t in r["targets"]:
        op = "<=" if t["op"] == "le" else ">="
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['text']} | {t['value']}{t['unit']} | {op} {t['limit']}{t['unit']} | {met} |")
    for phase in ("prepare", "release"):
        if r["steps"].get(phase):
            lines += ["", f"Per-step p50 / p95 (ms), {phase}, at the first level:", "",
                      "| step | p50 | p95 | n |", "|---|---:|---:|---:|"]
            for k, v in r["steps"][phase].items():
                lines.append(f"| {k} | {v['p50']:.2f} | {v['p95']:.2f} | {v['n']} |")
    for level, prof in doc["raw"].get("profiles", {}).items():
        lines += ["", f"Where the agent's prepare + release time goes at level {level} (py-spy, {prof['samples']} "
                  "samples of busy instance threads; share by our innermost frame and its caller, then by what that "
                  "frame waited in):",
                  "", "| our step | share | waiting in | share |", "|---|---:|---|---:|"]
        for i in range(max(len(prof["by_step"]), len(prof["by_leaf"]))):
            a = prof["by_step"][i] if i < len(prof["by_step"]) else ["", None]
            b = prof["by_leaf"][i] if i < len(prof["by_leaf"]) else ["", None]
            pct = lambda x: "" if x is None else f"{x:.0%}"  # noqa: E731
            lines.append(f"| {a[0]} | {pct(a[1])} | {b[0]} | {pct(b[1])} |")
    if doc["raw"].get("fill"):
        lines += ["", "Filling the node (setup, several clients): " + "; ".join(
            f"{f['from']}->{f['to']}: {f['rate']:.1f}/s with {f['clients']} clients ({f['errors']} errors)"
            for f in doc["raw"]["fill"] if f["rate"]) + "."]
    if doc["raw"].get("cleanup"):
        lines += ["", "Cleanup by bulk release per team (ms): " + ", ".join(
            f"{c['team']} ({c['released']}): {c['seconds'] * 1e3:.0f}" for c in doc["raw"]["cleanup"]) + "."]
    if doc["raw"].get("errors"):
        lines += ["", f"Errors seen: {len(doc['raw']['errors'])} (first: {doc['raw']['errors'][0]})."]
    return "\n".join(lines) + "\n"


def write(raw: dict, sizes: dict, smoke: bool, out_dir: Path, *, latest: bool) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    taken = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    doc = {"schema": SCHEMA, "taken": taken, "smoke": smoke, "machine": machine(), "sizes": sizes,
           "wall_seconds": raw.get("wall_seconds"), "load_before": raw.get("load_before"),
           "load_after": raw.get("load_after"), "zfs_flavor": raw.get("zfs_flavor"),
           "results": build(raw, sizes, smoke), "raw": raw}
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-smoke" if smoke else "")
    jpath, mpath = out_dir / f"{stamp}.json", out_dir / f"{stamp}.md"
    jpath.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    text = markdown(doc)
    mpath.write_text(text)
    if latest:
        (out_dir / "latest.json").write_text(jpath.read_text())
        (out_dir / "latest.md").write_text(text)
    return jpath, mpath
