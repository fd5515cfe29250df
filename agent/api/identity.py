"""IdentityService servicer: converts the identity service's answers."""
from __future__ import annotations

from typing import cast

from google.protobuf import timestamp_pb2

from agent._proto.devcloud.agent.v1 import identity_pb2 as pb
from agent._proto.devcloud.agent.v1 import identity_pb2_grpc as pb_grpc
from agent.services.identity import IdentityService


def capability_kind(kind: str) -> pb.CapabilityKind:
    """'storage_zfs' -> CAPABILITY_KIND_STORAGE_ZFS (UNSPECIFIED if unknown)."""
    name = f"CAPABILITY_KIND_{kind.upper()}"
    if name not in pb.CapabilityKind.keys():
        return pb.CAPABILITY_KIND_UNSPECIFIED
    # the generated stubs type EnumTypeWrapper.Value() as a plain int; it is a member of the enum
    return cast(pb.CapabilityKind, pb.CapabilityKind.Value(name))


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, service: IdentityService) -> None:
        self._svc = service

    def GetAgentInfo(self, request, context):
        i = self._svc.info()
        started = timestamp_pb2.Timestamp()
        started.FromNanoseconds(int(i.started_at * 1e9))
        return pb.GetAgentInfoResponse(name=i.name, version=i.version, node_name=i.node_name,
                                       api_version=i.api_version, started_at=started, pid=i.pid,
                                       runtime_version=i.runtime_version)

    def GetCapabilities(self, request, context):
        caps = self._svc.capabilities()
        return pb.GetCapabilitiesResponse(
            capabilities=[pb.Capability(kind=capability_kind(c.kind), available=c.available, reason=c.reason)
                          for c in caps.capabilities],
            extensions=caps.extensions,
            facilities=[pb.Facility(name=n, available=a.available, reason=a.reason, version=a.version,
                                    features=list(a.features))
                        for n, a in sorted(caps.facilities.items())])

    def Probe(self, request, context):
        p = self._svc.probe()
        return pb.ProbeResponse(ready=p.ready, pending=p.pending,
                                problems=[pb.StartupProblem(step=x.step, reason=x.reason, attempts=x.attempts)
                                          for x in p.problems])
