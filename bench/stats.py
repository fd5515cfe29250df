"""Percentiles and summaries of latency samples (seconds in, milliseconds out)."""
from __future__ import annotations

import math
import statistics


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank-with-interpolation percentile of `xs` (p in 0..100)."""
    if not xs:
        return math.nan
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(seconds: list[float]) -> dict:
    """{"n", "p50", "p95", "p99", "mean", "min", "max"} in milliseconds (None when empty)."""
    if not seconds:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "min": None, "max": None}
    ms = [x * 1e3 for x in seconds]
    return {"n": len(ms), "p50": round(pct(ms, 50), 3), "p95": round(pct(ms, 95), 3),
            "p99": round(pct(ms, 99), 3), "mean": round(statistics.fmean(ms), 3),
            "min": round(min(ms), 3), "max": round(max(ms), 3)}


def single(seconds: float) -> dict:
    """A one-shot measurement (a bulk operation) in the same shape as summary()."""
    return summary([seconds])


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 3)


def text_row(name: str, seconds: list[float], base: list[float] | None, width: int = 34) -> str:
    """One plain-text line: name, n, p50, p95, mean (ms) and p50 over the base's p50."""
    a = summary(seconds)
    r = ratio(a["p50"], summary(base)["p50"]) if base else None
    shown = f"{r:5.2f}x" if r is not None else "    -"
    return f"{name:<{width}} {a['n']:>4} {a['p50']:>9.1f} {a['p95']:>9.1f} {a['mean']:>9.1f} {shown:>7}"
