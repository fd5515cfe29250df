"""devcloudctl info | capabilities | probe | health."""
from __future__ import annotations

import datetime

from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent._proto.devcloud.agent.v1 import identity_pb2 as pb
from agent._proto.devcloud.agent.v1 import identity_pb2_grpc as pb_grpc
from agent.cli import output


def _info(ctx, args):
    r = pb_grpc.IdentityServiceStub(ctx.channel).GetAgentInfo(pb.GetAgentInfoRequest(), timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    started = datetime.datetime.fromtimestamp(r.started_at.seconds, datetime.timezone.utc)
    output.kv([("name", r.name), ("version", r.version), ("node", r.node_name), ("api", r.api_version),
               ("started", started.isoformat()), ("pid", r.pid), ("runtime", r.runtime_version)])


def _capabilities(ctx, args):
    r = pb_grpc.IdentityServiceStub(ctx.channel).GetCapabilities(pb.GetCapabilitiesRequest(), timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    output.table(["capability", "available", "reason"],
                 [(pb.CapabilityKind.Name(c.kind).removeprefix("CAPABILITY_KIND_").lower(),
                   output.yes(c.available), c.reason) for c in r.capabilities])
    print()
    output.table(["facility", "available", "version", "features", "reason"],
                 [(f.name, output.yes(f.available), f.version, " ".join(f.features), f.reason)
                  for f in r.facilities])


def _probe(ctx, args):
    r = pb_grpc.IdentityServiceStub(ctx.channel).Probe(pb.ProbeRequest(), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
    else:
        print("ready" if r.ready else f"not ready; pending: {', '.join(r.pending)}")
        for p in r.problems:
            print(f"  {p.step} (attempt {p.attempts}): {p.reason}")
    return 0 if r.ready else 3


def _health(ctx, args):
    r = health_pb2_grpc.HealthStub(ctx.channel).Check(health_pb2.HealthCheckRequest(service=args.service),
                                                       timeout=ctx.timeout)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
    if ctx.json:
        output.print_json({"service": args.service, "status": status})
    else:
        print(f"{args.service or '(overall)'}: {status}")
    return 0 if r.status == health_pb2.HealthCheckResponse.SERVING else 3


def register(sub) -> None:
    sub.add_parser("info", help="agent name, version, node").set_defaults(func=_info)
    sub.add_parser("capabilities", help="what this node can do (and why not)").set_defaults(func=_capabilities)
    sub.add_parser("probe", help="ready once startup work is done (exit 3 if not)").set_defaults(func=_probe)
    h = sub.add_parser("health", help="grpc.health.v1 Check (exit 3 unless SERVING)")
    h.add_argument("service", nargs="?", default="", help="full service name, e.g. devcloud.agent.v1.HostService")
    h.set_defaults(func=_health)
