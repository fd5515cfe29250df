"""ComputeService servicer: validate -> convert -> call ComputeService -> convert back.

Field violations name the proto field path (e.g. "limits.memory.max",
"limits.io.devices[0].rbps"). Range and host checks (online CPUs, block
devices, hugepage sizes) are the service's, with the same field paths.
"""
from __future__ import annotations

import re
import time

from agent import validation
from agent._proto.devcloud.agent.v1 import compute_pb2 as pb
from agent._proto.devcloud.agent.v1 import compute_pb2_grpc as pb_grpc
from agent.errors import ErrorReport, InvalidArgument
from agent.model.compute import (MAX, MEMORY_MAX_BYTES, CgroupInfo, CpuLimits, CpusetLimits, HugetlbLimit,
                                 IoDeviceLimits, IoLimits, Limits, MemoryLimits, PidsLimits, PressureStat, Stats)
from agent.services.compute import ComputeService

_INT_RE = re.compile(r"^\d{1,20}$")
_MAX_STR = 4096


# ------------------------------------------------------------------ proto -> dataclasses

def _size(report: ErrorReport, field: str, value: str):
    """"" -> None, "max" -> MAX, bytes or with units -> int; a violation otherwise."""
    if value == "":
        return None
    if value == MAX:
        return MAX
    if len(value) > 64:
        report.add(field, "is too long")
        return None
    try:
        return validation.size_bytes(field, value, minimum=0, maximum=MEMORY_MAX_BYTES)
    except InvalidArgument as exc:
        for v in exc.violations:
            report.add(v.field, v.description)
        return None


def _count(report: ErrorReport, field: str, value: str):
    """"" -> None, "max" -> MAX, a decimal integer -> int (ranges are checked by the service)."""
    if value == "":
        return None
    if value == MAX:
        return MAX
    if not _INT_RE.match(value):
        report.add(field, f"{value[:40]!r} is not a whole number or \"max\"")
        return None
    return int(value)


def limits_from_pb(m: pb.Limits, report: ErrorReport, prefix: str = "limits") -> Limits:
    """Convert, collecting syntax violations into `report`."""
    cpu = mem = pids = io = cpuset = None
    if m.HasField("cpu"):
        c = m.cpu
        cpu = CpuLimits(_count(report, f"{prefix}.cpu.quota_us", c.quota_us), c.period_us or None, c.weight or None)
    if m.HasField("memory"):
        x = m.memory
        mem = MemoryLimits(*(_size(report, f"{prefix}.memory.{f}", getattr(x, f))
                             for f in ("max", "high", "low", "swap_max")))
    if m.HasField("pids"):
        pids = PidsLimits(_count(report, f"{prefix}.pids.max", m.pids.max))
    if m.HasField("io"):
        devs = []
        if len(m.io.devices) > 256:
            report.add(f"{prefix}.io.devices", f"at most 256 devices, got {len(m.io.devices)}")
        for i, d in enumerate(m.io.devices[:256]):
            p = f"{prefix}.io.devices[{i}]"
            devs.append(IoDeviceLimits(d.device[:64], _size(report, f"{p}.rbps", d.rbps),
                                       _size(report, f"{p}.wbps", d.wbps), _count(report, f"{p}.riops", d.riops),
                                       _count(report, f"{p}.wiops", d.wiops), d.weight or None))
        io = IoLimits(m.io.weight or None, tuple(devs))
    if m.HasField("cpuset"):
        cs = m.cpuset
        for f in ("cpus", "mems"):
            if cs.HasField(f) and len(getattr(cs, f)) > _MAX_STR:
                report.add(f"{prefix}.cpuset.{f}", "is too long")
        cpuset = CpusetLimits(cs.cpus[:_MAX_STR] if cs.HasField("cpus") else None,
                              cs.mems[:_MAX_STR] if cs.HasField("mems") else None)
    huge = []
    for i, h in enumerate(m.hugetlb[:16]):
        v = _size(report, f"{prefix}.hugetlb[{i}].max", h.max)
        if h.max == "":
            report.add(f"{prefix}.hugetlb[{i}].max", "is required (bytes or \"max\")")
        huge.append(HugetlbLimit(h.page_size[:16], MAX if v is None else v))
    if len(m.hugetlb) > 16:
        report.add(f"{prefix}.hugetlb", "at most 16 page sizes")
    return Limits(cpu, mem, pids, io, cpuset, tuple(huge))


# ------------------------------------------------------------------ dataclasses -> proto

def _txt(v) -> str:
    return "" if v is None else str(v)


def limits_to_pb(l: Limits) -> pb.Limits:
    out = pb.Limits()
    if l.cpu is not None:
        out.cpu.CopyFrom(pb.CpuLimits(quota_us=_txt(l.cpu.quota_us), period_us=l.cpu.period_us or 0,
                                      weight=l.cpu.weight or 0))
    if l.memory is not None:
        m = l.memory
        out.memory.CopyFrom(pb.MemoryLimits(max=_txt(m.max), high=_txt(m.high), low=_txt(m.low),
                                            swap_max=_txt(m.swap_max)))
    if l.pids is not None:
        out.pids.CopyFrom(pb.PidsLimits(max=_txt(l.pids.max)))
    if l.io is not None:
        out.io.CopyFrom(pb.IoLimits(weight=l.io.weight or 0, devices=[
            pb.IoDeviceLimits(device=d.device, rbps=_txt(d.rbps), wbps=_txt(d.wbps), riops=_txt(d.riops),
                              wiops=_txt(d.wiops), weight=d.weight or 0) for d in l.io.devices]))
    if l.cpuset is not None:
        cs = pb.CpusetLimits()
        if l.cpuset.cpus is not None:
            cs.cpus = l.cpuset.cpus.strip()
        if l.cpuset.mems is not None:
            cs.mems = l.cpuset.mems.strip()
        out.cpuset.CopyFrom(cs)
    out.hugetlb.extend(pb.HugetlbLimit(page_size=h.page_size, max=_txt(h.max)) for h in l.hugetlb)
    return out


def cgroup_to_pb(c: CgroupInfo) -> pb.Cgroup:
    return pb.Cgroup(team=c.mark.team, instance_id=c.mark.instance, path=c.path, controllers=list(c.controllers),
                     limits=limits_to_pb(c.limits), populated=c.populated, frozen=c.frozen, pids=list(c.pids),
                     children=c.children)


def _pressure(p: PressureStat | None) -> pb.Pressure | None:
    if p is None:
        return None
    out = pb.Pressure(some=pb.PressureLine(avg10=p.some.avg10, avg60=p.some.avg60, avg300=p.some.avg300,
                                           total_usec=p.some.total_us))
    if p.full is not None:
        out.full.CopyFrom(pb.PressureLine(avg10=p.full.avg10, avg60=p.full.avg60, avg300=p.full.avg300,
                                          total_usec=p.full.total_us))
    return out


def stats_to_pb(s: Stats) -> pb.Stats:
    c = s.cpu
    out = pb.Stats(
        cpu=pb.CpuStat(**{k: max(0, c.get(k, 0)) for k in ("usage_usec", "user_usec", "system_usec", "nr_periods",
                                                            "nr_throttled", "throttled_usec")}),
        io=[pb.IoDeviceStat(device=dev, **{k: v for k, v in vals.items()
                                           if k in ("rbytes", "wbytes", "rios", "wios", "dbytes", "dios")})
            for dev, vals in sorted(s.io.items())],
        hugetlb=[pb.HugetlbUsage(page_size=k, current_bytes=v) for k, v in sorted(s.hugetlb_current.items())],
        populated=s.populated, frozen=s.frozen, nr_descendants=s.nr_descendants)
    if s.memory_current is not None:
        e = s.memory_events
        out.memory.CopyFrom(pb.MemoryStat(
            current_bytes=s.memory_current, peak_bytes=s.memory_peak or 0,
            swap_current_bytes=s.memory_swap_current or 0,
            events=pb.MemoryEvents(**{k: e.get(k, 0) for k in ("low", "high", "max", "oom", "oom_kill",
                                                                "oom_group_kill")})))
    if s.pids_current is not None:
        out.pids.CopyFrom(pb.PidsStat(current=s.pids_current, peak=s.pids_peak or 0,
                                      events_max=s.pids_events.get("max", 0)))
    for name in ("cpu", "memory", "io", "irq"):
        p = _pressure(s.pressure.get(name))
        if p is not None:
            getattr(out, f"{name}_pressure").CopyFrom(p)
    return out


# ------------------------------------------------------------------ servicer

def _deadline(context) -> float | None:
    left = context.time_remaining() if context is not None else None
    return None if left is None else time.monotonic() + left


def _names(report: ErrorReport, team: str, instance_id: str | None) -> None:
    for field, value in (("team", team), ("instance_id", instance_id)):
        if value is None:
            continue
        try:
            validation.cgroup_name(field, value)
        except InvalidArgument as exc:
            for v in exc.violations:
                report.add(v.field, v.description)


class ComputeServicer(pb_grpc.ComputeServiceServicer):
    def __init__(self, service: ComputeService) -> None:
        self._svc = service

    def _check(self, team: str, instance_id: str | None, *, optional_instance: bool = False) -> None:
        report = ErrorReport()
        _names(report, team, None if (optional_instance and not instance_id) else instance_id)
        report.raise_if_any()

    def _limits(self, team: str, instance_id: str | None, limits: pb.Limits, *,
                optional_instance: bool = False) -> Limits:
        """The names checked as _check() does, and `limits` converted; all violations in one error."""
        report = ErrorReport()
        _names(report, team, None if (optional_instance and not instance_id) else instance_id)
        out = limits_from_pb(limits, report)
        report.raise_if_any()
        return out

    def EnsureSlice(self, request, context):
        limits = self._limits(request.team, None, request.limits)
        r = self._svc.ensure_slice(request.team, limits)
        return pb.EnsureSliceResponse(slice=cgroup_to_pb(r.cgroup), changed=r.changed)

    def EnsureScope(self, request, context):
        limits = self._limits(request.team, request.instance_id, request.limits)
        r = self._svc.ensure_scope(request.team, request.instance_id, limits)
        return pb.EnsureScopeResponse(scope=cgroup_to_pb(r.cgroup), changed=r.changed)

    def UpdateLimits(self, request, context):
        limits = self._limits(request.team, request.instance_id, request.limits, optional_instance=True)
        r = self._svc.update_limits(request.team, request.instance_id, limits)
        return pb.UpdateLimitsResponse(cgroup=cgroup_to_pb(r.cgroup), changed=r.changed)

    def AttachProcesses(self, request, context):
        self._check(request.team, request.instance_id)
        pids = self._svc.attach(request.team, request.instance_id, list(request.pids))
        return pb.AttachProcessesResponse(pids=list(pids))

    def GetStats(self, request, context):
        self._check(request.team, request.instance_id, optional_instance=True)
        return pb.GetStatsResponse(stats=stats_to_pb(self._svc.stats(request.team, request.instance_id)))

    def Freeze(self, request, context):
        self._check(request.team, request.instance_id, optional_instance=True)
        waited = self._svc.freeze(request.team, request.instance_id, _deadline(context))
        return pb.FreezeResponse(frozen=True, waited_seconds=waited)

    def Thaw(self, request, context):
        self._check(request.team, request.instance_id, optional_instance=True)
        waited = self._svc.thaw(request.team, request.instance_id, _deadline(context))
        return pb.ThawResponse(frozen=False, waited_seconds=waited)

    def Kill(self, request, context):
        self._check(request.team, request.instance_id, optional_instance=True)
        waited = self._svc.kill(request.team, request.instance_id, _deadline(context))
        return pb.KillResponse(populated=False, waited_seconds=waited)

    def DeleteScope(self, request, context):
        self._check(request.team, request.instance_id)
        deleted = self._svc.delete_scope(request.team, request.instance_id, kill=request.kill,
                                         deadline=_deadline(context))
        return pb.DeleteScopeResponse(deleted=deleted)

    def DeleteSlice(self, request, context):
        self._check(request.team, None)
        deleted = self._svc.delete_slice(request.team, kill=request.kill, deadline=_deadline(context))
        return pb.DeleteSliceResponse(deleted=deleted)

    def GetSlice(self, request, context):
        self._check(request.team, None)
        return pb.GetSliceResponse(slice=cgroup_to_pb(self._svc.get(request.team)))

    def GetScope(self, request, context):
        self._check(request.team, request.instance_id)
        return pb.GetScopeResponse(scope=cgroup_to_pb(self._svc.get(request.team, request.instance_id)))

    def ListSlices(self, request, context):
        return pb.ListSlicesResponse(slices=[cgroup_to_pb(c) for c in self._svc.list_slices()])

    def ListScopes(self, request, context):
        if request.team:
            self._check(request.team, None)
        return pb.ListScopesResponse(scopes=[cgroup_to_pb(c) for c in self._svc.list_scopes(request.team)])
