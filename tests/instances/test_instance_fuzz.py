"""Fuzz every InstanceService RPC with the planes ENABLED on the session's real
components: random request messages, and PrepareInstance requests built around
an existing team, network and image (so the planes themselves are reached)
with random values everywhere else: never INTERNAL, never a crash."""
from __future__ import annotations

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from tests.support import protofuzz
from tests.support.instances import stub

SERVICE = ipb.DESCRIPTOR.services_by_name["InstanceService"]
OK_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED,
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}


def _call(agent, method, request):
    req_cls, resp_cls = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
    path = f"/{SERVICE.full_name}/{method.name}"
    try:
        if method.server_streaming:
            for _ in agent.channel.unary_stream(path, request_serializer=req_cls.SerializeToString,
                                                response_deserializer=resp_cls.FromString)(request, timeout=0.5):
                pass
        else:
            agent.channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                      response_deserializer=resp_cls.FromString)(request, timeout=30)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            return
        assert e.code() in OK_CODES, f"{path} answered {e.code().name}: {e.details()} for {request}"


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=[m.name for m in SERVICE.methods])
def test_fuzz_instance_rpc(instance_agent, method):
    agent, env = instance_agent
    strategy = protofuzz.message(method.input_type, GetMessageClass)
    if method.name == "GarbageCollect":            # never let the fuzz remove what other tests made
        strategy = strategy.map(lambda r: (r.__setattr__("dry_run", True), r)[1])

    @settings(max_examples=20 if method.server_streaming else 60, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(request):
        _call(agent, method, request)

    run()


_NASTY = st.sampled_from(["", "0", "max", "-1", "x" * 300, "10.81.0.7", "fe80::1", "0a:58:0a:51:00:07", "'\"",
                          "eth0", "é", "1G", "18446744073709551615"])


def test_fuzz_prepare_reaching_the_planes(instance_agent):
    agent, env = instance_agent
    team = next(iter(env.teams))
    s = stub(agent.channel)
    prepare = SERVICE.methods_by_name["PrepareInstance"]
    nics = st.lists(st.builds(
        ipb.NicSpec, name=st.sampled_from(["eth0", "eth1", "Eth0", ""]),
        network=st.sampled_from([team, "nonet", ""]), mac=_NASTY, ip4=st.sampled_from(["", "10.81.0.9", "10.9.9.9",
                                                                                       "10.81.0.0", "300.1.1.1"]),
        ip6=st.sampled_from(["", "fd00::5", "x"]), mtu=st.sampled_from([0, 575, 1400, 9001, 2**32 - 1]),
        peer_netns=st.sampled_from(["", "nonexistent-ns", "/proc/1/ns/net", "../x"]),
        peer_name=st.sampled_from(["", "eth0", "x" * 20]), queues=st.sampled_from([0, 1, 4, 1000])), max_size=3)
    limits = st.builds(lambda m, p: _limits(m, p), _NASTY, _NASTY)
    specs = st.builds(lambda iid, kind, img, size, rq, n, lim, k8s: ipb.InstanceSpec(
        id=iid, team=team, kind=kind, root=ipb.RootVolumeSpec(image_id=img, size_bytes=size, refquota_bytes=rq),
        nics=n, limits=lim, kubernetes_node=k8s),
        st.sampled_from(["fz1", "fz2", "FZ", ""]), st.sampled_from([0, 1, 2, 7]), st.sampled_from(["img", "noimg", ""]),
        st.sampled_from([0, 1 << 20, 2**63]), st.sampled_from([0, 1, 64 << 20, 2**64 - 1]), nics, limits,
        st.booleans())

    @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(specs, st.booleans())
    def run(spec, wait_ready):
        _call(agent, prepare, ipb.PrepareInstanceRequest(spec=spec, wait_ready=wait_ready, ready_timeout_ms=200))

    try:
        run()
    finally:
        s.ReleaseInstances(ipb.ReleaseInstancesRequest(team=team), timeout=120)
    assert s.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True), timeout=60).objects == []


def _limits(mem: str, pids: str) -> ipb.InstanceSpec:
    spec = ipb.InstanceSpec()
    spec.limits.memory.max = mem
    spec.limits.pids.max = pids
    return spec.limits
