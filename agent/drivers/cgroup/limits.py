"""Limits <-> cgroup v2 interface files, as pure functions (no I/O).

`plan()` compares desired limits with what the kernel files say and returns
the writes that make them agree; `observed_limits()` reads limits back from
file contents. The driver does the I/O around them, and unit tests exercise
them on plain strings. The value types and the kernel's bounds are in
agent/model/compute.py; checking a request against them (with proto field
paths) is agent/validation.py's `limits`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from typing import Any, Callable

from agent.model.compute import (CPU_PERIOD_DEFAULT_US, IO_KEYS, MAX, WEIGHT_DEFAULT, Bound, CpuLimits,
                                  CpusetLimits, HugetlbLimit, IoDeviceLimits, IoLimits, Limits, MemoryLimits,
                                  PidsLimits, format_cpulist, parse_cpulist)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
HUGETLB_MAX_RE = re.compile(r"^hugetlb\.(\d+[KMG]B)\.max$")

# What each kernel file holds when nobody set it: Ensure resets unrequested
# limits to these, and a plain directory tree (unit tests) reads them for absent files.
DEFAULTS = {
    "cpu.max": f"max {CPU_PERIOD_DEFAULT_US}", "cpu.weight": "100",
    "memory.max": "max", "memory.high": "max", "memory.low": "0", "memory.swap.max": "max",
    "pids.max": "max", "io.max": "", "io.weight": "default 100",
    "cpuset.cpus": "", "cpuset.mems": "",
}
HUGETLB_DEFAULT = "max"

# Files per controller that limits are written to (hugetlb files depend on page sizes).
CONTROLLER_FILES = {
    "cpu": ("cpu.max", "cpu.weight"),
    "memory": ("memory.max", "memory.high", "memory.low", "memory.swap.max"),
    "pids": ("pids.max",),
    "io": ("io.max", "io.weight"),
    "cpuset": ("cpuset.cpus", "cpuset.mems"),
}


def hugetlb_file(page_size: str) -> str:
    """The limit file of a hugepage size: "2MB" -> "hugetlb.2MB.max". Pure."""
    return f"hugetlb.{page_size}.max"


def files_for(controllers: set[str] | frozenset[str], page_sizes: tuple[str, ...]) -> list[str]:
    """Every limit file of `controllers` (hugetlb: one per page size)."""
    out: list[str] = []
    for c in sorted(controllers):
        if c == "hugetlb":
            out.extend(hugetlb_file(s) for s in page_sizes)
        else:
            out.extend(CONTROLLER_FILES.get(c, ()))
    return out


def default_text(file: str) -> str:
    """What limit file `file` holds when nobody set it. Pure; KeyError for a file that is not a limit."""
    return HUGETLB_DEFAULT if file.startswith("hugetlb.") else DEFAULTS[file]


# ---------------------------------------------------------------- which controllers

def _set(obj) -> bool:
    """True when any field of a limits group is requested."""
    if obj is None:
        return False
    return any(getattr(obj, f.name) not in (None, ()) for f in fields(obj))


def required_controllers(limits: Limits) -> set[str]:
    """Controllers that must be enabled on the cgroup for `limits` to apply."""
    need = set()
    for name in ("cpu", "memory", "pids", "cpuset"):
        if _set(getattr(limits, name)):
            need.add(name)
    if limits.io is not None and (limits.io.weight is not None or limits.io.devices):
        need.add("io")
    if limits.hugetlb:
        need.add("hugetlb")
    return need


# ---------------------------------------------------------------- parsing kernel text

def parse_bound(text: str) -> Bound:
    """'max' -> MAX, '123' -> 123. Pure; ValueError for anything else."""
    t = text.strip()
    return MAX if t == MAX else int(t)


def parse_cpu_max(text: str) -> tuple[Bound, int]:
    """'max 100000' / '50000 100000' (cpu.max) -> (quota, period); a missing period is the
    kernel default. Pure; ValueError on bad text."""
    q, _, p = text.strip().partition(" ")
    return parse_bound(q), int(p or CPU_PERIOD_DEFAULT_US)


def parse_io_max(text: str) -> dict[str, dict[str, Bound]]:
    """'8:0 rbps=1 wbps=max riops=max wiops=2' lines -> {dev: {key: value}}."""
    out: dict[str, dict[str, Bound]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        vals: dict[str, Bound] = {k: MAX for k in IO_KEYS}
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            if k in IO_KEYS:
                vals[k] = parse_bound(v)
        out[parts[0]] = vals
    return out


def parse_io_weight(text: str) -> tuple[int, dict[str, int]]:
    """'default 100\\n8:0 200' -> (100, {'8:0': 200})."""
    default, per = WEIGHT_DEFAULT, {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        if parts[0] == "default":
            default = int(parts[1])
        else:
            per[parts[0]] = int(parts[1])
    return default, per


def parse_flat_keyed(text: str) -> dict[str, int]:
    """'key value' lines (cpu.stat, memory.events, pids.events) -> dict."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


# ---------------------------------------------------------------- canonical forms

def _mem(v: Bound) -> Bound:
    # The kernel stores memory limits in pages, rounding down.
    return v if v == MAX else (int(v) // PAGE_SIZE) * PAGE_SIZE


def _huge(page_size: str) -> Callable[[Bound], Bound]:
    unit = page_size_bytes(page_size)
    return lambda v: v if v == MAX else (int(v) // unit) * unit


def page_size_bytes(page_size: str) -> int:
    """'2MB' -> 2097152 (the kernel's hugetlb file naming)."""
    m = re.match(r"^(\d+)([KMG])B$", page_size)
    if not m:
        raise ValueError(f"{page_size!r} is not a page size like 2MB or 1GB")
    return int(m.group(1)) << {"K": 10, "M": 20, "G": 30}[m.group(2)]


def _bound_text(v: Bound) -> str:
    return MAX if v == MAX else str(int(v))


# ---------------------------------------------------------------- plan

@dataclass(frozen=True)
class Write:
    file: str
    payload: str        # one write(2) (io.max / io.weight take one device per write)


class MissingFile(Exception):
    """A requested limit's file is absent although its controller is enabled."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.file = file


def plan(limits: Limits, observed: dict[str, str | None], *, full: bool) -> list[Write]:
    """Writes that bring the kernel files in `observed` to `limits`.

    `observed` maps every limit file of the enabled controllers to its
    content (None: the file does not exist). full=True (Ensure): limits not
    requested go back to the kernel default. full=False (Update): only
    requested limits are written. Raises MissingFile for a requested limit
    whose file is absent.
    """
    writes: list[Write] = []

    # The value's type depends on the file (a Bound, an int weight, a CPU set): canon() normalises it,
    # render() writes it.
    def want(file: str, desired: Any, canon: Callable[[Any], Any], render: Callable[[Any], str]) -> None:
        text = observed.get(file)
        if text is None:
            if desired is not None:
                raise MissingFile(file)
            return
        if desired is None:
            if not full:
                return
            desired = canon(_parse_single(file, default_text(file)))
        if canon(desired) != canon(_parse_single(file, text)):
            writes.append(Write(file, render(desired)))

    cpu = limits.cpu or CpuLimits()
    text = observed.get("cpu.max")
    asked = cpu.quota_us is not None or cpu.period_us is not None
    if text is None:
        if asked:
            raise MissingFile("cpu.max")
    elif asked or full:
        cur_q, cur_p = parse_cpu_max(text)
        q = cpu.quota_us if cpu.quota_us is not None else (MAX if full else cur_q)
        p = cpu.period_us if cpu.period_us is not None else (CPU_PERIOD_DEFAULT_US if full else cur_p)
        if (q, p) != (cur_q, cur_p):
            writes.append(Write("cpu.max", f"{_bound_text(q)} {p}"))
    want("cpu.weight", cpu.weight, int, str)

    mem = limits.memory or MemoryLimits()
    for file, value in (("memory.max", mem.max), ("memory.high", mem.high),
                        ("memory.low", mem.low), ("memory.swap.max", mem.swap_max)):
        want(file, value, _mem, _bound_text)

    want("pids.max", (limits.pids or PidsLimits()).max, lambda v: v, _bound_text)

    cs = limits.cpuset or CpusetLimits()
    for file, ids in (("cpuset.cpus", cs.cpus), ("cpuset.mems", cs.mems)):
        want(file, None if ids is None else parse_cpulist(ids),
             lambda v: frozenset(v), lambda v: format_cpulist(v) or "\n")

    _plan_io(limits.io, observed, full, writes)

    requested = {h.page_size: h.max for h in limits.hugetlb}
    sizes = {m.group(1) for f in observed if (m := HUGETLB_MAX_RE.match(f))} | set(requested)
    for size in sorted(sizes):
        want(hugetlb_file(size), requested.get(size), _huge(size), _bound_text)
    return writes


def _parse_single(file: str, text: str):
    if file in ("cpuset.cpus", "cpuset.mems"):
        return parse_cpulist(text)
    if file == "cpu.weight":
        return int(text.strip())
    return parse_bound(text)


def _plan_io(io: IoLimits | None, observed: dict[str, str | None], full: bool,
             writes: list[Write]) -> None:
    io = io or IoLimits()
    want_max = {d.device: d for d in io.devices if any(getattr(d, k) is not None for k in IO_KEYS)}
    want_w = {d.device: d.weight for d in io.devices if d.weight is not None}

    text = observed.get("io.max")
    if text is None:
        if want_max:
            raise MissingFile("io.max")
    else:
        cur = parse_io_max(text)
        for dev in sorted(set(cur) | set(want_max)):
            have = cur.get(dev, {k: MAX for k in IO_KEYS})
            if dev in want_max:
                d = want_max[dev]
                target = {k: (getattr(d, k) if getattr(d, k) is not None else (MAX if full else have[k]))
                          for k in IO_KEYS}
            elif full:
                target = {k: MAX for k in IO_KEYS}
            else:
                continue
            if target != have:
                writes.append(Write("io.max", dev + " " + " ".join(f"{k}={_bound_text(target[k])}"
                                                                    for k in IO_KEYS)))

    text = observed.get("io.weight")
    if text is None:
        if want_w or io.weight is not None:
            raise MissingFile("io.weight")
        return
    cur_default, cur_per = parse_io_weight(text)
    default = io.weight if io.weight is not None else (WEIGHT_DEFAULT if full else cur_default)
    if default != cur_default:
        writes.append(Write("io.weight", f"default {default}"))
    for dev in sorted(set(cur_per) | set(want_w)):
        if dev in want_w:
            if cur_per.get(dev) != want_w[dev]:
                writes.append(Write("io.weight", f"{dev} {want_w[dev]}"))
        elif full:
            writes.append(Write("io.weight", f"{dev} default"))


# ---------------------------------------------------------------- reading back

def observed_limits(files: dict[str, str | None]) -> Limits:
    """Limits as the kernel files say (fields None where the file is absent)."""
    def get(f):
        return files.get(f)

    cpu = None
    if get("cpu.max") is not None or get("cpu.weight") is not None:
        q, p = parse_cpu_max(get("cpu.max")) if get("cpu.max") is not None else (None, None)
        cpu = CpuLimits(q, p, int(get("cpu.weight")) if get("cpu.weight") is not None else None)
    mem = None
    if any(get(f) is not None for f in CONTROLLER_FILES["memory"]):
        values = [parse_bound(get(f)) if get(f) is not None else None for f in CONTROLLER_FILES["memory"]]
        mem = MemoryLimits(*values)
    pids = PidsLimits(parse_bound(get("pids.max"))) if get("pids.max") is not None else None
    io = None
    if get("io.max") is not None or get("io.weight") is not None:
        maxes = parse_io_max(get("io.max") or "")
        default, per = parse_io_weight(get("io.weight")) if get("io.weight") is not None else (None, {})
        devs = tuple(_device_limits(dev, maxes.get(dev, {}), per.get(dev)) for dev in sorted(set(maxes) | set(per)))
        io = IoLimits(default, devs)
    cpuset = None
    if get("cpuset.cpus") is not None or get("cpuset.mems") is not None:
        cpuset = CpusetLimits(get("cpuset.cpus"), get("cpuset.mems"))
    huge = tuple(HugetlbLimit(m.group(1), parse_bound(v)) for f, v in sorted(files.items())
                 if (m := HUGETLB_MAX_RE.match(f)) and v is not None)
    return Limits(cpu, mem, pids, io, cpuset, huge)


def _device_limits(dev: str, io_max: dict[str, Bound], weight: int | None) -> IoDeviceLimits:
    """One device's io.max keys (IO_KEYS) and io.weight override as IoDeviceLimits. Pure."""
    return IoDeviceLimits(dev, rbps=io_max.get("rbps"), wbps=io_max.get("wbps"), riops=io_max.get("riops"),
                          wiops=io_max.get("wiops"), weight=weight)
