"""Fuzz every unary RPC of every devcloud service with random request
messages built from the descriptors: never INTERNAL, never a crash.

Planes are disabled in this agent (nothing can be created on the host), so
the fuzz exercises edge validation and the precondition paths; plane tests
fuzz their RPCs again with the plane enabled.
"""
from __future__ import annotations

import importlib
import pkgutil

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings

import agent._proto.devcloud.agent.v1 as v1
from tests.support import protofuzz


def _services():
    """(service full name, method descriptor) for every RPC in every generated module."""
    out = []
    for info in pkgutil.iter_modules(v1.__path__):
        if info.name.endswith("_pb2"):
            fd = importlib.import_module(f"{v1.__name__}.{info.name}").DESCRIPTOR
            out += [(svc.full_name, m) for svc in fd.services_by_name.values() for m in svc.methods]
    return out


_cls = GetMessageClass
METHODS = _services()
OK_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED,
            grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNIMPLEMENTED}


@pytest.mark.parametrize("service, method", METHODS, ids=[f"{s.rsplit('.', 1)[-1]}.{m.name}" for s, m in METHODS])
def test_fuzz_rpc(agent, service, method):
    req_cls, resp_cls = _cls(method.input_type), _cls(method.output_type)
    path = f"/{service}/{method.name}"
    unary = not method.client_streaming and not method.server_streaming
    strategy = protofuzz.message(method.input_type, _cls)

    @settings(max_examples=150 if unary else 25, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(request):
        code = grpc.StatusCode.OK
        try:
            if unary:
                agent.channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                          response_deserializer=resp_cls.FromString)(request, timeout=10)
            elif method.client_streaming:
                call = agent.channel.stream_stream if method.server_streaming else agent.channel.stream_unary
                result = call(path, request_serializer=req_cls.SerializeToString,
                              response_deserializer=resp_cls.FromString)(iter([request, request]), timeout=2)
                if method.server_streaming:
                    for _ in result:
                        pass
            else:
                for _ in agent.channel.unary_stream(path, request_serializer=req_cls.SerializeToString,
                                                    response_deserializer=resp_cls.FromString)(request, timeout=0.5):
                    pass
        except grpc.RpcError as e:
            code = e.code()
            assert code in OK_CODES, f"{path} answered {code.name}: {e.details()} for {request}"
        assert code != grpc.StatusCode.INTERNAL

    run()
