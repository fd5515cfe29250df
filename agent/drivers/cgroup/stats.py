"""Reading usage counters and pressure (PSI) of a cgroup."""
from __future__ import annotations

import os

from agent.model.compute import Pressure, PressureStat, Stats

from . import fs
from .limits import parse_flat_keyed

PSI_RESOURCES = ("cpu", "memory", "io", "irq")


def parse_pressure(text: str) -> PressureStat:
    """'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\\nfull ...' -> PressureStat."""
    lines = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kv = dict(p.partition("=")[::2] for p in parts[1:])
        try:
            lines[parts[0]] = Pressure(float(kv.get("avg10", 0)), float(kv.get("avg60", 0)),
                                       float(kv.get("avg300", 0)), int(kv.get("total", 0)))
        except ValueError:
            continue
    return PressureStat(lines.get("some", Pressure()), lines.get("full"))


def parse_io_stat(text: str) -> dict[str, dict[str, int]]:
    """'254:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0' lines -> {dev: {key: n}}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        vals = {}
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            if v.isdigit():
                vals[k] = int(v)
        out[parts[0]] = vals
    return out


def _int(path: str, name: str) -> int | None:
    text = fs.read(os.path.join(path, name))
    if text is None:
        return None
    t = text.strip()
    return int(t) if t.isdigit() else None


def read_stats(path: str, page_sizes: tuple[str, ...]) -> Stats:
    """Every counter file of `path` that exists; absent ones stay None/empty."""
    def keyed(name: str) -> dict[str, int]:
        return parse_flat_keyed(fs.read(os.path.join(path, name)) or "")

    pressure = {}
    for r in PSI_RESOURCES:
        text = fs.read(os.path.join(path, f"{r}.pressure"))
        if text is not None:
            pressure[r] = parse_pressure(text)
    huge = {}
    for s in page_sizes:
        v = _int(path, f"hugetlb.{s}.current")
        if v is not None:
            huge[s] = v
    events = fs.parse_events(fs.read(os.path.join(path, "cgroup.events")) or "")
    return Stats(
        cpu=keyed("cpu.stat"),
        memory_current=_int(path, "memory.current"),
        memory_peak=_int(path, "memory.peak"),
        memory_swap_current=_int(path, "memory.swap.current"),
        memory_events=keyed("memory.events"),
        pids_current=_int(path, "pids.current"),
        pids_peak=_int(path, "pids.peak"),
        pids_events=keyed("pids.events"),
        io=parse_io_stat(fs.read(os.path.join(path, "io.stat")) or ""),
        hugetlb_current=huge,
        pressure=pressure,
        populated=bool(events.get("populated", 0)),
        frozen=bool(events.get("frozen", 0)),
        nr_descendants=keyed("cgroup.stat").get("nr_descendants", 0),
    )
