"""Fuzz every StorageService RPC with the plane ENABLED on a real pool:
random request messages never give INTERNAL and never crash the agent."""
from __future__ import annotations

import os
import shutil

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings

from agent._proto.devcloud.agent.v1 import storage_pb2
from tests.support import protofuzz
from tests.support.server import start_inprocess, temp_dir
from tests.support.zfs import storage_overrides, zfs_destroy_tree

SERVICE = storage_pb2.DESCRIPTOR.services_by_name["StorageService"]
OK_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED,
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DATA_LOSS}


@pytest.fixture(scope="module")
def agent(zfs_pool):
    parent = f"{zfs_pool.name}/fuzz{os.getpid()}"
    tmp = temp_dir()
    a = start_inprocess(tmp, storage_overrides(zfs_pool, parent))
    yield a
    a.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    zfs_destroy_tree(parent)


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=[m.name for m in SERVICE.methods])
def test_fuzz_storage_rpc(agent, method):
    req_cls, resp_cls = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
    path = f"/{SERVICE.full_name}/{method.name}"
    strategy = protofuzz.message(method.input_type, GetMessageClass)

    @settings(max_examples=15 if method.client_streaming else 60, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(request):
        try:
            if method.client_streaming:
                call = agent.channel.stream_stream(path, request_serializer=req_cls.SerializeToString,
                                                   response_deserializer=resp_cls.FromString)
                for _ in call(iter([request, request]), timeout=10):
                    pass
            else:
                agent.channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                          response_deserializer=resp_cls.FromString)(request, timeout=10)
        except grpc.RpcError as e:
            assert e.code() in OK_CODES, f"{path} answered {e.code().name}: {e.details()} for {request}"

    run()
