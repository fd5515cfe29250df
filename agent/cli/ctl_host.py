"""devcloudctl host facts | host preflight."""
from __future__ import annotations

from agent._proto.devcloud.agent.v1 import host_pb2 as pb
from agent._proto.devcloud.agent.v1 import host_pb2_grpc as pb_grpc
from agent.cli import output

_PROFILES = {"all": pb.PREFLIGHT_PROFILE_ALL, "kubernetes-in-lxd": pb.PREFLIGHT_PROFILE_KUBERNETES_IN_LXD,
             "vm-host": pb.PREFLIGHT_PROFILE_VM_HOST}


def _facts(ctx, args):
    r = pb_grpc.HostServiceStub(ctx.channel).GetHostFacts(pb.GetHostFactsRequest(), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else output.print_host_facts(r)


def _preflight(ctx, args):
    r = pb_grpc.HostServiceStub(ctx.channel).Preflight(pb.PreflightRequest(profile=_PROFILES[args.profile]),
                                                      timeout=ctx.timeout)
    output.print_json(r) if ctx.json else output.print_preflight(r)
    return 0 if r.passed or not args.strict else 3


def register(sub) -> None:
    host = sub.add_parser("host", help="host facts and preflight checks")
    hs = host.add_subparsers(dest="host_command", metavar="COMMAND", required=True)
    hs.add_parser("facts", help="KVM (from ioctls), cgroup and inventory facts").set_defaults(func=_facts)
    p = hs.add_parser("preflight", help="checks per profile: ok | missing | unknown, with remedies")
    p.add_argument("--profile", default="all", choices=sorted(_PROFILES))
    p.add_argument("--strict", action="store_true", help="exit 3 when a check is missing")
    p.set_defaults(func=_preflight)
