"""grpc.health.v1 (overall + per service, Check + Watch) and server reflection,
from the stock grpcio-health-checking and grpcio-reflection clients."""
from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICES = ["devcloud.agent.v1.IdentityService", "devcloud.agent.v1.HostService"]


def test_health_check_overall_and_per_service(agent):
    stub = health_pb2_grpc.HealthStub(agent.channel)
    assert stub.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    for name in SERVICES:
        assert stub.Check(health_pb2.HealthCheckRequest(service=name)).status == \
            health_pb2.HealthCheckResponse.SERVING


def test_health_check_unknown_service_is_not_found(agent):
    stub = health_pb2_grpc.HealthStub(agent.channel)
    try:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("unknown service must be NOT_FOUND")


def test_health_watch_streams_current_status(agent):
    stub = health_pb2_grpc.HealthStub(agent.channel)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICES[1]), timeout=5)
    first = next(stream)
    stream.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_services(agent):
    db = ProtoReflectionDescriptorDatabase(agent.channel)
    services = set(db.get_services())
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", *SERVICES} <= services
    fd = db.FindFileContainingSymbol("devcloud.agent.v1.HostService")
    assert fd.package == "devcloud.agent.v1"
    assert {m.name for m in fd.service[0].method} == {"GetHostFacts", "Preflight"}
