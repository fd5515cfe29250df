"""Fuzz every ComputeService RPC with the plane enabled on a throwaway subtree:
random request messages never give INTERNAL and never crash the agent.

Safety: fuzzed pids are mapped above this host's pid_max, so AttachProcesses
can never move a real process of this machine into the test subtree.
"""
from __future__ import annotations

import os

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings

from agent._proto.devcloud.agent.v1 import compute_pb2 as pb
from tests.support import protofuzz

SERVICE = pb.DESCRIPTOR.services_by_name["ComputeService"]
PID_MAX = int(open("/proc/sys/kernel/pid_max").read())
INTERNALS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def _safe(request):
    if hasattr(request, "pids"):
        safe = [PID_MAX + 1 + (abs(p) % max(1, 4_194_304 - PID_MAX)) if p > 1 else p for p in request.pids]
        del request.pids[:]
        request.pids.extend(safe)
    return request


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=[m.name for m in SERVICE.methods])
def test_fuzz_compute_rpc(compute_agent, method):
    agent, root = compute_agent
    req_cls, resp_cls = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
    call = agent.channel.unary_unary(f"/{SERVICE.full_name}/{method.name}",
                                     request_serializer=req_cls.SerializeToString,
                                     response_deserializer=resp_cls.FromString)

    @settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(protofuzz.message(method.input_type, GetMessageClass))
    def run(request):
        try:
            call(_safe(request), timeout=10)
        except grpc.RpcError as err:
            assert err.code() not in INTERNALS, f"{method.name}({request}) -> {err.code()}: {err.details()}"

    run()
    # everything the fuzz created stays inside the agent's subtree
    parent = os.path.dirname(root)
    assert all(not e.endswith((".slice", ".scope")) for e in os.listdir(parent) if e != os.path.basename(root))
