"""devcloudctl compute ...: team slices, instance scopes, limits, stats, freeze/thaw/kill.

  devcloudctl compute ensure TEAM [INSTANCE] [--memory-max 512M --cpu-quota 50000 ...]
  devcloudctl compute update TEAM [INSTANCE] [limits]
  devcloudctl compute get TEAM [INSTANCE]        devcloudctl compute list [--team T | --slices]
  devcloudctl compute stats TEAM [INSTANCE]      devcloudctl compute attach TEAM INSTANCE PID...
  devcloudctl compute freeze|thaw|kill TEAM [INSTANCE]
  devcloudctl compute delete TEAM [INSTANCE] [--kill]
An INSTANCE-less command acts on the team's slice.
"""
from __future__ import annotations

import argparse

from agent._proto.devcloud.agent.v1 import compute_pb2 as pb
from agent._proto.devcloud.agent.v1 import compute_pb2_grpc as pb_grpc
from agent.cli import output


def _stub(ctx) -> pb_grpc.ComputeServiceStub:
    return pb_grpc.ComputeServiceStub(ctx.channel)


def _limits(args) -> pb.Limits:
    """Build a Limits message from the limit flags (unset flags stay unset)."""
    lim = pb.Limits()
    if args.cpu_quota or args.cpu_period or args.cpu_weight:
        lim.cpu.CopyFrom(pb.CpuLimits(quota_us=args.cpu_quota or "", period_us=args.cpu_period or 0,
                                      weight=args.cpu_weight or 0))
    if args.memory_max or args.memory_high or args.memory_low or args.swap_max:
        lim.memory.CopyFrom(pb.MemoryLimits(max=args.memory_max or "", high=args.memory_high or "",
                                            low=args.memory_low or "", swap_max=args.swap_max or ""))
    if args.pids_max:
        lim.pids.CopyFrom(pb.PidsLimits(max=args.pids_max))
    if args.io_weight or args.io:
        devs = []
        for spec in args.io or []:
            dev, _, rest = spec.partition(",")
            kv = dict(p.partition("=")[::2] for p in rest.split(",") if p)
            unknown = set(kv) - {"rbps", "wbps", "riops", "wiops", "weight"}
            if unknown:
                raise SystemExit(f"devcloudctl: --io {spec!r}: unknown key(s) {', '.join(sorted(unknown))}")
            w = kv.pop("weight", "0")
            if not w.isdigit():
                raise SystemExit(f"devcloudctl: --io {spec!r}: weight must be a number")
            devs.append(pb.IoDeviceLimits(device=dev, weight=int(w), **kv))
        lim.io.CopyFrom(pb.IoLimits(weight=args.io_weight or 0, devices=devs))
    if args.cpus is not None or args.mems is not None:
        cs = pb.CpusetLimits()
        if args.cpus is not None:
            cs.cpus = args.cpus
        if args.mems is not None:
            cs.mems = args.mems
        lim.cpuset.CopyFrom(cs)
    for spec in args.hugetlb or []:
        size, sep, value = spec.partition("=")
        if not sep:
            raise SystemExit(f"devcloudctl: --hugetlb {spec!r}: expected SIZE=MAX, e.g. 2MB=1G")
        lim.hugetlb.append(pb.HugetlbLimit(page_size=size, max=value))
    return lim


def _limit_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("limits (sizes: bytes, 512M, 1GiB or max)")
    g.add_argument("--cpu-quota", metavar="USEC|max", help="cpu.max quota per period (>= 1000 µs)")
    g.add_argument("--cpu-period", type=int, metavar="USEC", help="cpu.max period (1000..1000000 µs)")
    g.add_argument("--cpu-weight", type=int, metavar="N", help="cpu.weight 1..10000")
    g.add_argument("--memory-max", metavar="SIZE", help="memory.max (hard limit, OOM above)")
    g.add_argument("--memory-high", metavar="SIZE", help="memory.high (throttle above)")
    g.add_argument("--memory-low", metavar="SIZE", help="memory.low (protection)")
    g.add_argument("--swap-max", metavar="SIZE", help="memory.swap.max")
    g.add_argument("--pids-max", metavar="N|max", help="pids.max")
    g.add_argument("--io-weight", type=int, metavar="N", help="io.weight default 1..10000")
    g.add_argument("--io", action="append", metavar="MAJ:MIN,rbps=..,wbps=..,riops=..,wiops=..,weight=..",
                   help="per-device io.max / io.weight (repeatable)")
    g.add_argument("--cpus", metavar="LIST", help="cpuset.cpus, e.g. 0-3,5 ('' = inherit)")
    g.add_argument("--mems", metavar="LIST", help="cpuset.mems ('' = inherit)")
    g.add_argument("--hugetlb", action="append", metavar="SIZE=MAX", help="hugetlb.<SIZE>.max, e.g. 2MB=1G")


def _limits_text(l: pb.Limits) -> list[tuple[str, str]]:
    rows = []
    if l.HasField("cpu"):
        rows.append(("cpu", f"max={l.cpu.quota_us or '-'} period={l.cpu.period_us or '-'} weight={l.cpu.weight or '-'}"))
    if l.HasField("memory"):
        m = l.memory
        rows.append(("memory", f"max={m.max or '-'} high={m.high or '-'} low={m.low or '-'} swap.max={m.swap_max or '-'}"))
    if l.HasField("pids"):
        rows.append(("pids", f"max={l.pids.max or '-'}"))
    if l.HasField("io"):
        devs = " ".join(f"{d.device}(rbps={d.rbps or 'max'} wbps={d.wbps or 'max'} riops={d.riops or 'max'} "
                        f"wiops={d.wiops or 'max'} weight={d.weight or '-'})" for d in l.io.devices)
        rows.append(("io", f"weight={l.io.weight or '-'} {devs}".strip()))
    if l.HasField("cpuset"):
        rows.append(("cpuset", f"cpus={l.cpuset.cpus or '(inherit)'} mems={l.cpuset.mems or '(inherit)'}"))
    if l.hugetlb:
        rows.append(("hugetlb", " ".join(f"{h.page_size}={h.max}" for h in l.hugetlb)))
    return rows


def _print_cgroup(ctx, c: pb.Cgroup, changed: bool | None = None) -> None:
    if ctx.json:
        return output.print_json(c)
    rows: list[tuple[str, object]] = [("path", c.path), ("team", c.team)]
    rows += [("instance", c.instance_id)] if c.instance_id else []
    rows += [("controllers", " ".join(c.controllers) or "-"), ("populated", output.yes(c.populated)),
             ("frozen", output.yes(c.frozen))]
    if c.instance_id:
        rows.append(("pids", " ".join(map(str, c.pids)) or "-"))
    rows.append(("children", c.children))
    rows += _limits_text(c.limits)
    if changed is not None:
        rows.append(("changed", output.yes(changed)))
    output.kv(rows)


def _ensure(ctx, args):
    s, lim = _stub(ctx), _limits(args)
    if args.instance:
        r = s.EnsureScope(pb.EnsureScopeRequest(team=args.team, instance_id=args.instance, limits=lim),
                          timeout=ctx.timeout)
        return output.print_json(r) if ctx.json else _print_cgroup(ctx, r.scope, r.changed)
    r = s.EnsureSlice(pb.EnsureSliceRequest(team=args.team, limits=lim), timeout=ctx.timeout)
    return output.print_json(r) if ctx.json else _print_cgroup(ctx, r.slice, r.changed)


def _update(ctx, args):
    r = _stub(ctx).UpdateLimits(pb.UpdateLimitsRequest(team=args.team, instance_id=args.instance or "",
                                                       limits=_limits(args)), timeout=ctx.timeout)
    return output.print_json(r) if ctx.json else _print_cgroup(ctx, r.cgroup, r.changed)


def _get(ctx, args):
    s = _stub(ctx)
    if args.instance:
        c = s.GetScope(pb.GetScopeRequest(team=args.team, instance_id=args.instance), timeout=ctx.timeout).scope
    else:
        c = s.GetSlice(pb.GetSliceRequest(team=args.team), timeout=ctx.timeout).slice
    _print_cgroup(ctx, c)


def _list(ctx, args):
    s = _stub(ctx)
    if args.slices:
        r = s.ListSlices(pb.ListSlicesRequest(), timeout=ctx.timeout)
        items = r.slices
    else:
        r = s.ListScopes(pb.ListScopesRequest(team=args.team or ""), timeout=ctx.timeout)
        items = r.scopes
    if ctx.json:
        return output.print_json(r)
    output.table(["team", "instance", "populated", "frozen", "pids", "controllers", "path"],
                 [(c.team, c.instance_id or "-", output.yes(c.populated), output.yes(c.frozen), len(c.pids),
                   " ".join(c.controllers) or "-", c.path) for c in items])


def _stats(ctx, args):
    r = _stub(ctx).GetStats(pb.GetStatsRequest(team=args.team, instance_id=args.instance or ""),
                            timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    st = r.stats
    rows = [("cpu", f"usage={st.cpu.usage_usec}µs user={st.cpu.user_usec}µs system={st.cpu.system_usec}µs "
                    f"throttled={st.cpu.nr_throttled}/{st.cpu.nr_periods} periods ({st.cpu.throttled_usec}µs)")]
    if st.HasField("memory"):
        e = st.memory.events
        rows.append(("memory", f"current={output.human_bytes(st.memory.current_bytes)} "
                               f"peak={output.human_bytes(st.memory.peak_bytes)} "
                               f"swap={output.human_bytes(st.memory.swap_current_bytes)} "
                               f"events: high={e.high} max={e.max} oom={e.oom} oom_kill={e.oom_kill}"))
    if st.HasField("pids"):
        rows.append(("pids", f"current={st.pids.current} peak={st.pids.peak} refused={st.pids.events_max}"))
    for d in st.io:
        rows.append((f"io {d.device}", f"read={output.human_bytes(d.rbytes)} ({d.rios} ops) "
                                       f"write={output.human_bytes(d.wbytes)} ({d.wios} ops)"))
    for h in st.hugetlb:
        rows.append((f"hugetlb {h.page_size}", output.human_bytes(h.current_bytes)))
    for name in ("cpu", "memory", "io", "irq"):
        if st.HasField(f"{name}_pressure"):
            p = getattr(st, f"{name}_pressure")
            full = f" full avg10={p.full.avg10:.2f}" if p.HasField("full") else ""
            rows.append((f"pressure {name}", f"some avg10={p.some.avg10:.2f} avg60={p.some.avg60:.2f} "
                                             f"total={p.some.total_usec}µs{full}"))
    rows += [("populated", output.yes(st.populated)), ("frozen", output.yes(st.frozen)),
             ("descendants", st.nr_descendants)]
    output.kv(rows)


def _attach(ctx, args):
    r = _stub(ctx).AttachProcesses(pb.AttachProcessesRequest(team=args.team, instance_id=args.instance,
                                                             pids=args.pids), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print(" ".join(map(str, r.pids)))


def _freeze(ctx, args):
    r = _stub(ctx).Freeze(pb.FreezeRequest(team=args.team, instance_id=args.instance or ""), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print(f"frozen ({r.waited_seconds * 1000:.1f} ms)")


def _thaw(ctx, args):
    r = _stub(ctx).Thaw(pb.ThawRequest(team=args.team, instance_id=args.instance or ""), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print(f"thawed ({r.waited_seconds * 1000:.1f} ms)")


def _kill(ctx, args):
    r = _stub(ctx).Kill(pb.KillRequest(team=args.team, instance_id=args.instance or ""), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print(f"killed ({r.waited_seconds * 1000:.1f} ms)")


def _delete(ctx, args):
    s = _stub(ctx)
    if args.instance:
        r = s.DeleteScope(pb.DeleteScopeRequest(team=args.team, instance_id=args.instance, kill=args.kill),
                          timeout=ctx.timeout)
    else:
        r = s.DeleteSlice(pb.DeleteSliceRequest(team=args.team, kill=args.kill), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print("deleted" if r.deleted else "absent (nothing to delete)")


def register(sub) -> None:
    comp = sub.add_parser("compute", help="cgroup v2 slices (teams) and scopes (instances)")
    cs = comp.add_subparsers(dest="compute_command", metavar="COMMAND", required=True)

    def target(p, instance_required=False):
        p.add_argument("team")
        p.add_argument("instance", nargs=None if instance_required else "?", default="",
                       help=None if instance_required else "instance id (omit for the team slice)")
        return p

    p = target(cs.add_parser("ensure", help="create a slice/scope if missing and set its limits"))
    _limit_flags(p)
    p.set_defaults(func=_ensure)
    p = target(cs.add_parser("update", help="write only the given limits"))
    _limit_flags(p)
    p.set_defaults(func=_update)
    target(cs.add_parser("get", help="a slice or scope as the kernel reports it")).set_defaults(func=_get)
    p = cs.add_parser("list", help="scopes (or --slices) carrying the agent's mark")
    p.add_argument("--team", help="only this team's scopes")
    p.add_argument("--slices", action="store_true", help="list team slices instead of scopes")
    p.set_defaults(func=_list)
    target(cs.add_parser("stats", help="cpu/memory/pids/io usage and pressure")).set_defaults(func=_stats)
    p = target(cs.add_parser("attach", help="move processes into a scope"), instance_required=True)
    p.add_argument("pids", type=int, nargs="+", metavar="PID")
    p.set_defaults(func=_attach)
    target(cs.add_parser("freeze", help="freeze every process (waits until frozen)")).set_defaults(func=_freeze)
    target(cs.add_parser("thaw", help="thaw (waits until running)")).set_defaults(func=_thaw)
    target(cs.add_parser("kill", help="SIGKILL every process (waits until empty)")).set_defaults(func=_kill)
    p = target(cs.add_parser("delete", help="remove a scope or a team slice"))
    p.add_argument("--kill", action="store_true", help="kill processes (and a slice's scopes) first")
    p.set_defaults(func=_delete)
