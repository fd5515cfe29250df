"""devcloudctl instance ...: prepare/release whole instances, inspect, watch, diff, repair, gc.

  devcloudctl instance prepare web-1 --team team-a --image noble --refquota 10G \\
      --nic eth0,network=team-a [--nic eth1,network=...,ip4=10.0.0.5,peer-netns=ns1] [--memory-max 1G ...]
  devcloudctl instance release web-1 [web-2 ...] | --team team-a
  devcloudctl instance get web-1         devcloudctl instance list [--team T] [--state prepared]
  devcloudctl instance watch [--team T]  devcloudctl instance diff [ID]   devcloudctl instance repair [ID]
  devcloudctl instance gc [--dry-run] [--keep ID ...]
  devcloudctl instance lxc-config web-1 [--init-cmd /sbin/init] > web-1.conf    (examples/runtimes.md)
  devcloudctl instance qemu-args vm-1 [--kernel K --initrd I --append A --accel tcg]
"""
from __future__ import annotations

import shlex
import sys

import grpc

from agent._proto.devcloud.agent.v1 import instance_pb2 as pb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc as pb_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2
from agent.cli import output
from agent.cli.ctl_compute import _limit_flags, _limits
from agent.cli.runtime_config import LxcOptions, NotRunnable, QemuOptions, lxc_config, qemu_argv

_STATE_NAMES = {v.number: v.name.removeprefix("INSTANCE_STATE_").lower()
                for v in pb.InstanceState.DESCRIPTOR.values}
_PART_NAMES = {v.number: v.name.removeprefix("INSTANCE_PART_").lower() for v in pb.InstancePart.DESCRIPTOR.values}
_NIC_KEYS = {"network", "mac", "ip4", "ip6", "mtu", "peer-netns", "peer-name", "queues", "placement"}
_PLACEMENTS = {"": pb.PEER_PLACEMENT_UNSPECIFIED, "agent": pb.PEER_PLACEMENT_AGENT_NETNS,
               "host": pb.PEER_PLACEMENT_HOST_NETNS, "netns": pb.PEER_PLACEMENT_NETNS}


def _stub(ctx) -> pb_grpc.InstanceServiceStub:
    return pb_grpc.InstanceServiceStub(ctx.channel)


def _nic(text: str) -> pb.NicSpec:
    """NAME,network=N[,mac=..,ip4=..,ip6=..,mtu=..,peer-netns=..,peer-name=..,queues=..]"""
    name, _, rest = text.partition(",")
    kv = dict(p.partition("=")[::2] for p in rest.split(",") if p)
    unknown = set(kv) - _NIC_KEYS
    if unknown or not name:
        raise SystemExit(f"devcloudctl: --nic {text!r}: expected NAME,network=NET[,{','.join(sorted(_NIC_KEYS))}]")
    for k in ("mtu", "queues"):
        if kv.get(k, "0") and not kv.get(k, "0").isdigit():
            raise SystemExit(f"devcloudctl: --nic {text!r}: {k} must be a number")
    if kv.get("placement", "") not in _PLACEMENTS:
        raise SystemExit(f"devcloudctl: --nic {text!r}: placement is one of agent, host, netns")
    return pb.NicSpec(name=name, network=kv.get("network", ""), mac=kv.get("mac", ""), ip4=kv.get("ip4", ""),
                      ip6=kv.get("ip6", ""), mtu=int(kv.get("mtu", 0) or 0), peer_netns=kv.get("peer-netns", ""),
                      peer_name=kv.get("peer-name", ""), queues=int(kv.get("queues", 0) or 0),
                      peer_placement=_PLACEMENTS[kv.get("placement", "")])


def _print_instance(ctx, inst: pb.Instance, changed: bool | None = None) -> None:
    rows = [("id", inst.id), ("team", inst.team),
            ("kind", pb.InstanceKind.Name(inst.kind).removeprefix("INSTANCE_KIND_").lower()),
            ("state", _STATE_NAMES.get(inst.state, "?") + (f" ({inst.message})" if inst.message else "")),
            ("generation", inst.generation)]
    if inst.parts:
        rows.append(("ready", output.yes(inst.ready)))
    v = inst.volume if inst.HasField("volume") else None
    rows.append(("dataset", inst.names.dataset + (f" -> {v.mountpoint or v.device} (origin {v.origin or '-'})"
                                                    if v else "")))
    rows.append(("scope", inst.names.scope))
    output.kv(rows)
    nics = {n.name: n for n in inst.nics}
    if inst.names.nics:
        print()
        output.table(["nic", "network", "host", "peer", "lsp", "mac", "ip4", "ready"], [
            (n.nic, n.network, n.host_netdev, n.peer_netdev or "-", n.lsp,
             nics[n.nic].port.mac if n.nic in nics and nics[n.nic].HasField("port") else "-",
             nics[n.nic].port.ip4 if n.nic in nics and nics[n.nic].HasField("port") else "-",
             (output.yes(nics[n.nic].port.status.ready) if n.nic in nics and nics[n.nic].HasField("port") else "-"))
            for n in inst.names.nics])
    if inst.parts:
        print()
        output.table(["part", "object", "present", "ready", "detail"],
                     [(_PART_NAMES.get(p.part, "?"), p.object, output.yes(p.present), output.yes(p.ready),
                       p.detail or "") for p in inst.parts])
    if changed is not None:
        print(f"\nchanged: {output.yes(changed)}")


def _prepare(ctx, args):
    root = pb.RootVolumeSpec(image_id=args.image or "", size_bytes=output.size_arg(args.size),
                             refquota_bytes=output.size_arg(args.refquota), quota_bytes=output.size_arg(args.quota),
                             reservation_bytes=output.size_arg(args.reservation))
    labels = {}
    for item in args.label or []:
        k, sep, val = item.partition("=")
        if not sep:
            raise SystemExit(f"devcloudctl: --label {item!r}: expected KEY=VALUE")
        labels[k] = val
    spec = pb.InstanceSpec(id=args.id, team=args.team,
                           kind=pb.INSTANCE_KIND_VM if args.vm else pb.INSTANCE_KIND_CONTAINER, root=root,
                           nics=[_nic(n) for n in args.nic or []], limits=_limits(args), labels=labels,
                           kubernetes_node=args.kubernetes_node)
    if args.idmap:
        try:
            uid, gid, count = (int(x) for x in args.idmap.split(":"))
        except ValueError:
            raise SystemExit(f"devcloudctl: --idmap {args.idmap!r}: expected HOST_UID:HOST_GID:COUNT") from None
        spec.idmap.CopyFrom(storage_pb2.IdMap(host_uid=uid, host_gid=gid, count=count))
    r = _stub(ctx).PrepareInstance(pb.PrepareInstanceRequest(spec=spec, wait=args.wait, wait_ready=args.wait_ready),
                                   timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_instance(ctx, r.instance, r.changed)


def _release(ctx, args):
    s = _stub(ctx)
    if args.team or len(args.ids) > 1:
        if args.team and args.ids:
            raise SystemExit("devcloudctl: give instance ids or --team, not both")
        r = s.ReleaseInstances(pb.ReleaseInstancesRequest(ids=args.ids, team=args.team or ""), timeout=ctx.timeout)
        if ctx.json:
            return output.print_json(r)
        output.table(["id", "released", "error"], [(x.id, output.yes(x.released),
                                                    f"{x.code}: {x.message}" if x.code else "") for x in r.results])
        return 1 if any(x.code for x in r.results) else 0
    if not args.ids:
        raise SystemExit("devcloudctl: give an instance id or --team")
    r = s.ReleaseInstance(pb.ReleaseInstanceRequest(id=args.ids[0], wait=args.wait), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print("released" if r.released else "absent (nothing to release)")


def _get(ctx, args):
    r = _stub(ctx).GetInstance(pb.GetInstanceRequest(id=args.id), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_instance(ctx, r.instance)


def _list(ctx, args):
    state: pb.InstanceState | str = pb.INSTANCE_STATE_UNSPECIFIED
    if args.state:
        names = set(_STATE_NAMES.values())
        if args.state not in names:
            raise SystemExit(f"devcloudctl: --state: one of {', '.join(sorted(names))}")
        state = f"INSTANCE_STATE_{args.state.upper()}"      # the request takes the enum value's name too
    r = _stub(ctx).ListInstances(pb.ListInstancesRequest(team=args.team or "", state=state), timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    output.table(["id", "team", "state", "image", "nics", "dataset"],
                 [(i.id, i.team, _STATE_NAMES.get(i.state, "?"), i.spec.root.image_id or "-",
                   " ".join(f"{n.nic}:{n.host_netdev}" for n in i.names.nics) or "-", i.names.dataset)
                  for i in r.instances])


def _watch(ctx, args):
    stream = _stub(ctx).WatchInstances(pb.WatchInstancesRequest(team=args.team or "", id=args.id or ""),
                                       timeout=args.duration)
    try:
        for ev in stream:
            if ctx.json:
                output.print_json(ev)
            elif ev.nic:
                print(f"{ev.id} nic {ev.nic}: ready={output.yes(ev.nic_ready)} "
                      f"ovn-installed={output.yes(ev.ovn_installed)} up={output.yes(ev.up)}", flush=True)
            else:
                print(f"{ev.id} ({ev.team}): {_STATE_NAMES.get(ev.state, '?')}"
                      + (" [snapshot]" if ev.snapshot else "") + (f" {ev.message}" if ev.message else ""), flush=True)
    except KeyboardInterrupt:
        stream.cancel()
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED or args.duration is None:
            raise


def _drift_rows(instances, attr: str):
    return [(i.id, d.part, d.reason, d.object, d.detail) for i in instances for d in getattr(i, attr)]


def _diff(ctx, args):
    r = _stub(ctx).Diff(pb.DiffRequest(id=args.id or ""), timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    rows = _drift_rows(r.instances, "drifts") + [(i.id, "-", "ERROR", "-", i.error) for i in r.instances if i.error]
    output.table(["id", "part", "reason", "object", "detail"], rows)
    print(f"\n{len(r.instances)} instance(s) looked at, {len(rows)} difference(s)")
    return 3 if rows else 0


def _repair(ctx, args):
    r = _stub(ctx).Repair(pb.RepairRequest(id=args.id or "", wait=args.wait), timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    output.table(["id", "repaired", "remaining", "error"],
                 [(i.id, " ".join(i.repaired) or "-", " ".join(d.reason for d in i.remaining) or "-", i.error or "")
                  for i in r.instances if i.planned or i.error])
    return 1 if any(i.remaining or i.error for i in r.instances) else 0


def _get_runtime(ctx, instance_id: str) -> pb.Instance:
    return _stub(ctx).GetInstance(pb.GetInstanceRequest(id=instance_id), timeout=ctx.timeout).instance


def _lxc_config(ctx, args):
    opts = LxcOptions(init_cmd=args.init_cmd, halt_signal=args.halt_signal or "", apparmor=args.apparmor or "",
                      log_file=args.log_file or "", log_level=args.log_level, extra=list(args.set or []))
    try:
        cfg = lxc_config(_get_runtime(ctx, args.id), opts)
    except NotRunnable as exc:
        print(f"devcloudctl: {exc}", file=sys.stderr)
        return 2
    if not ctx.json:
        print(cfg.text, end="")
        return 0
    out = {"name": cfg.name, "config": cfg.text, "netns": cfg.netns, "wrap": cfg.wrap}
    if args.lxcpath and args.config_file:
        out["start"] = cfg.start_argv(args.lxcpath, args.config_file)
    output.print_json(out)
    return 0


def _qemu_args(ctx, args):
    opts = QemuOptions(binary=args.qemu, accel=args.accel, memory_mb=args.memory, cpus=args.cpus,
                       kernel=args.kernel or "", initrd=args.initrd or "", append=args.append or "",
                       serial=args.serial, no_reboot=args.no_reboot, extra=list(args.extra or []))
    try:
        cmd = qemu_argv(_get_runtime(ctx, args.id), opts)
    except NotRunnable as exc:
        print(f"devcloudctl: {exc}", file=sys.stderr)
        return 2
    if ctx.json:
        output.print_json({"argv": cmd.argv, "netns": cmd.netns, "payload_cgroup": cmd.payload_cgroup})
    else:
        print(shlex.join(cmd.argv))
    return 0


def _gc(ctx, args):
    r = _stub(ctx).GarbageCollect(pb.GarbageCollectRequest(dry_run=args.dry_run, keep=args.keep or []),
                                  timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    output.table(["part", "kind", "name", "instance", "removed", "error"],
                 [(_PART_NAMES.get(o.part, "?"), o.kind, o.name, o.instance, output.yes(o.removed), o.error)
                  for o in r.objects])
    print(f"\n{len(r.objects)} orphan object(s)" + (" (dry run: nothing removed)" if args.dry_run else ""))


def register(sub) -> None:
    inst = sub.add_parser("instance", help="whole instances: root volume + NICs + cgroup scope in one call")
    ic = inst.add_subparsers(dest="instance_command", metavar="COMMAND", required=True)

    p = ic.add_parser("prepare", help="create or converge an instance (storage || network || compute)")
    p.add_argument("id")
    p.add_argument("--team", required=True)
    p.add_argument("--image", help="container: the image to clone")
    p.add_argument("--vm", action="store_true", help="a VM (zvol root, tap NICs): needs KVM and zvols")
    p.add_argument("--size", metavar="SIZE", help="VM disk size")
    p.add_argument("--refquota", metavar="SIZE", help="container root refquota")
    p.add_argument("--quota", metavar="SIZE")
    p.add_argument("--reservation", metavar="SIZE")
    p.add_argument("--nic", action="append", metavar="NAME,network=NET[,ip4=..,mac=..,peer-netns=..]",
                   help="a NIC (repeatable)")
    p.add_argument("--label", action="append", metavar="KEY=VALUE")
    p.add_argument("--kubernetes-node", action="store_true", help="run the Kubernetes-in-LXD preflight first")
    p.add_argument("--idmap", metavar="UID:GID:COUNT", help="unprivileged container: map ids 0..COUNT-1 to host "
                                                            "UID.., GID..")
    p.add_argument("--wait", action="store_true", help="wait for an operation in flight on the id")
    p.add_argument("--wait-ready", action="store_true", help="wait until every NIC is ovn-installed and up")
    _limit_flags(p)
    p.set_defaults(func=_prepare)

    p = ic.add_parser("release", help="remove instances (one, several, or a whole team in bulk)")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--team", help="every instance of this team")
    p.add_argument("--wait", action="store_true", help="one id: wait for an operation in flight")
    p.set_defaults(func=_release)

    p = ic.add_parser("get", help="an instance with every part observed now")
    p.add_argument("id")
    p.set_defaults(func=_get)
    p = ic.add_parser("list", help="recorded instances")
    p.add_argument("--team")
    p.add_argument("--state", help="preparing | prepared | releasing | failed")
    p.set_defaults(func=_list)
    p = ic.add_parser("watch", help="stream state and NIC readiness changes")
    p.add_argument("--team")
    p.add_argument("--id")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: until ^C)")
    p.set_defaults(func=_watch)
    p = ic.add_parser("diff", help="recorded spec vs live objects (exit 3 when something differs)")
    p.add_argument("id", nargs="?")
    p.set_defaults(func=_diff)
    p = ic.add_parser("repair", help="re-ensure exactly the drifted parts")
    p.add_argument("id", nargs="?")
    p.add_argument("--wait", action="store_true")
    p.set_defaults(func=_repair)
    p = ic.add_parser("gc", help="objects of ours whose instance is unknown: list and remove")
    p.add_argument("--dry-run", action="store_true", help="only list them")
    p.add_argument("--keep", nargs="*", metavar="ID", help="instance ids the controller knows (kept)")
    p.set_defaults(func=_gc)

    p = ic.add_parser("lxc-config", help="the LXC config of a prepared container, from its runtime reply "
                                         "(examples/runtimes.md); --json adds where lxc-start must run")
    p.add_argument("id")
    p.add_argument("--init-cmd", default="/sbin/init", help="lxc.init.cmd (default /sbin/init)")
    p.add_argument("--halt-signal", help="lxc.signal.halt (default: LXC's, SIGPWR)")
    p.add_argument("--apparmor", metavar="PROFILE", help="lxc.apparmor.profile (default: LXC's for this host)")
    p.add_argument("--log-file", help="lxc.log.file")
    p.add_argument("--log-level", default="INFO", help="lxc.log.level (with --log-file)")
    p.add_argument("--set", action="append", metavar="'KEY = VALUE'", help="an extra config line (repeatable)")
    p.add_argument("--lxcpath", help="--json: with --config-file, add the lxc-start command")
    p.add_argument("--config-file", help="--json: where the config will be written")
    p.set_defaults(func=_lxc_config)

    p = ic.add_parser("qemu-args", help="the QEMU command line of a prepared VM, from its runtime reply "
                                        "(examples/runtimes.md); --json adds its payload cgroup")
    p.add_argument("id")
    p.add_argument("--qemu", default="qemu-system-x86_64", help="the QEMU binary")
    p.add_argument("--accel", default="kvm", choices=["kvm", "tcg"])
    p.add_argument("--memory", type=int, default=1024, metavar="MB")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--kernel", help="direct kernel boot: the kernel image")
    p.add_argument("--initrd")
    p.add_argument("--append", help="kernel command line")
    p.add_argument("--serial", default="stdio", help="-serial (e.g. file:/tmp/vm.log)")
    p.add_argument("--no-reboot", action="store_true")
    p.add_argument("--extra", action="append", metavar="ARG", help="an extra QEMU argument (repeatable)")
    p.set_defaults(func=_qemu_args)
