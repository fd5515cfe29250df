"""The agent's own Prometheus histograms, read before and after a phase: where
the agent's time went, per operation (mean ms and count), as evidence next to
the profiles."""
from __future__ import annotations

import re
import socket
import urllib.request

_LINE = re.compile(r'^devcloud_agent_(\w+)_seconds_(sum|count)(\{[^}]*\})? (\S+)$')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snapshot(port: int) -> dict[str, list[float]]:
    """{"<histogram>{labels}": [sum seconds, count]} from the agent's /metrics."""
    out: dict[str, list[float]] = {}
    for line in _metrics_text(port).splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name, kind, labels, value = m.groups()
        labels = ",".join(l for l in (labels or "{}")[1:-1].split(",") if l and not l.startswith("backend="))
        key = f"{name}{{{labels}}}"
        out.setdefault(key, [0.0, 0.0])[0 if kind == "sum" else 1] += float(value)
    return out


def delta(before: dict, after: dict) -> dict[str, dict]:
    """Per histogram: count and mean ms of the observations between two snapshots."""
    out = {}
    for key, (s, c) in after.items():
        s0, c0 = before.get(key, [0.0, 0.0])
        n = c - c0
        if n > 0:
            out[key] = {"count": int(n), "mean_ms": round((s - s0) / n * 1e3, 3), "total_ms": round((s - s0) * 1e3, 1)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["total_ms"]))


def gauges(port: int, name: str) -> dict[str, float]:
    """{"<labels>": value} of one gauge family (e.g. startup_step_seconds) from /metrics."""
    line = re.compile(r'^devcloud_agent_' + re.escape(name) + r'\{(?:\w+)="([^"]*)"\} (\S+)$')
    return {m.group(1): float(m.group(2)) for m in map(line.match, _metrics_text(port).splitlines()) if m}


def _metrics_text(port: int) -> str:
    """The agent's /metrics page ("" when it does not answer: a phase without numbers, not a failure)."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except OSError:
        return ""
