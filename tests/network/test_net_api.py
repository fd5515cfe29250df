"""NetworkService over a real in-process gRPC server: edge validation (field
paths in BadRequest), status codes, observed state in replies, WatchPorts,
EnsureChassis; and a fuzz of every RPC with the plane enabled (on a private
OVN stack, since random chassis settings must not disturb the shared one)."""
from __future__ import annotations

import shutil
import threading
import time

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings

from agent._proto.devcloud.agent.v1 import network_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc as pb_grpc
from tests.support import protofuzz
from tests.support.ovn import agent_overrides, as_list, uniq
from tests.support.server import start_inprocess, temp_dir


@pytest.fixture(scope="module")
def stub(net_agent):
    return pb_grpc.NetworkServiceStub(net_agent.channel)


@pytest.fixture
def networks(stub):
    names: list[str] = []
    yield names
    for n in names:
        stub.DeleteNetwork(pb.DeleteNetworkRequest(name=n), timeout=30)


def _violations(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)
    out = []
    for d in status.details if status else []:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            out += [v.field for v in br.field_violations]
    return out


def _reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)
    for d in status.details if status else []:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info.reason
    return ""


@pytest.mark.parametrize("spec, field", [
    (pb.NetworkSpec(name="Bad_Name", subnet4="10.0.0.0/24"), "spec.name"),
    (pb.NetworkSpec(name="ok"), "spec.subnet4"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.1/24"), "spec.subnet4"),
    (pb.NetworkSpec(name="ok", subnet4="fd00::/64"), "spec.subnet4"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", subnet6="10.1.0.0/24"), "spec.subnet6"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", gateway4="10.9.0.1"), "spec.gateway4"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", mtu=100), "spec.mtu"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", backend=77), "spec.backend"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", vlan=5), "spec.vlan"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", dns_servers=["dns.example"]), "spec.dns_servers[0]"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", allow=[pb.AllowRule(source_network='x" || 1')]),
     "spec.allow[0].source_network"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24", allow=[pb.AllowRule(protocol=pb.PROTOCOL_ICMP, port_min=3)]),
     "spec.allow[0].port_min"),
    (pb.NetworkSpec(name="ok", subnet4="10.0.0.0/24",
                    allow=[pb.AllowRule(protocol=pb.PROTOCOL_TCP, port_min=90, port_max=80)]),
     "spec.allow[0].port_max"),
    (pb.NetworkSpec(name="ok", backend=pb.NETWORK_BACKEND_BRIDGE, bridge="a-very-long-bridge-name"), "spec.bridge"),
])
def test_network_spec_validation(stub, spec, field, ovn_tools):
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=spec), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in _violations(e.value)
    assert not ovn_tools.nb_rows("Logical_Switch", f"name=dc-{spec.name}")


@pytest.mark.parametrize("spec, field", [
    (pb.PortSpec(network="n", name=""), "spec.name"),
    (pb.PortSpec(network="n", name="p", mac="01:00:5e:00:00:01"), "spec.mac"),
    (pb.PortSpec(network="n", name="p", ip4="10.0.0.300"), "spec.ip4"),
    (pb.PortSpec(network="n", name="p", ip6="10.0.0.3"), "spec.ip6"),
    (pb.PortSpec(network="n", name="p", peer_netns="../../etc"), "spec.peer_netns"),
    (pb.PortSpec(network="n", name="p", peer_netns="ns1", peer_name="this-name-is-too-long"), "spec.peer_name"),
    (pb.PortSpec(network="n", name="p", kind=pb.NIC_KIND_TAP, peer_netns="ns1"), "spec.peer_netns"),
    (pb.PortSpec(network="n", name="p", multiqueue=True), "spec.multiqueue"),
    (pb.PortSpec(network="n", name="p", kind=9), "spec.kind"),
])
def test_port_spec_validation(stub, spec, field):
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsurePort(pb.EnsurePortRequest(spec=spec), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in _violations(e.value)


def test_network_and_port_over_grpc(stub, networks, netns_factory, ovn_tools, ovn_stack):
    name = uniq("api")
    networks.append(name)
    spec = pb.NetworkSpec(name=name, subnet4="10.61.0.0/24", mtu=1400,
                          allow=[pb.AllowRule(source_cidr="192.168.0.0/16", protocol=pb.PROTOCOL_TCP, port_min=443)])
    replies = [stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=spec), timeout=10) for _ in range(3)]
    assert [r.changed for r in replies] == [True, False, False]
    n = replies[0].network
    assert (n.subnet4, n.gateway4, n.mtu, n.backend) == ("10.61.0.0/24", "10.61.0.1", 1400, pb.NETWORK_BACKEND_OVN)
    assert n.allow[0].protocol == pb.PROTOCOL_TCP and n.acl_count == 4
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=pb.NetworkSpec(name=name, subnet4="10.62.0.0/24")), timeout=10)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and _reason(e.value) == "IMMUTABLE_FIELD"
    assert name in [x.name for x in stub.ListNetworks(pb.ListNetworksRequest(), timeout=10).networks]

    inst = netns_factory()
    req = pb.EnsurePortRequest(spec=pb.PortSpec(network=name, name="vm-1", instance="vm", peer_netns=inst),
                               wait_ready=True)
    first = stub.EnsurePort(req, timeout=15)
    assert first.changed and first.port.status.ready and first.port.status.up and first.port.status.ovn_installed
    assert not first.port.status.missing and first.port.mtu == 1400
    again = [stub.EnsurePort(req, timeout=15) for _ in range(2)]
    assert [r.changed for r in again] == [False, False]
    assert again[0].port.ip4 == first.port.ip4 and again[0].port.mac == first.port.mac
    got = stub.GetPort(pb.GetPortRequest(network=name, name="vm-1"), timeout=10).port
    assert got.host_netdev == first.port.host_netdev and got.status.ready and got.mtu == 1400
    lsp = ovn_tools.nb_rows("Logical_Switch_Port", f"name={first.port.iface_id}")[0]
    assert as_list(lsp["addresses"]) == [f"{first.port.mac} {first.port.ip4}"]
    ports = stub.ListPorts(pb.ListPortsRequest(network=name), timeout=10).ports
    assert [p.name for p in ports] == ["vm-1"]

    with pytest.raises(grpc.RpcError) as e:
        stub.GetPort(pb.GetPortRequest(network=name, name="nope"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network=name, name="vm-2", ip4=first.port.ip4)),
                        timeout=10)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and _reason(e.value) == "ADDRESS_IN_USE"
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network=name, name="vm-2", ip4="10.99.0.4")),
                        timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.ip4" in _violations(e.value)

    assert stub.DeletePort(pb.DeletePortRequest(network=name, name="vm-1"), timeout=10).deleted
    assert not stub.DeletePort(pb.DeletePortRequest(network=name, name="vm-1"), timeout=10).deleted
    assert ovn_tools.link(first.port.host_netdev, ovn_stack.netns) is None
    assert stub.DeleteNetwork(pb.DeleteNetworkRequest(name=name), timeout=10).deleted
    assert not stub.DeleteNetwork(pb.DeleteNetworkRequest(name=name), timeout=10).deleted
    with pytest.raises(grpc.RpcError) as e:
        stub.GetNetwork(pb.GetNetworkRequest(name=name), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_ports_streams_readiness(stub, networks, ovn_stack):
    name = uniq("w")
    networks.append(name)
    stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=pb.NetworkSpec(name=name, subnet4="10.63.0.0/24")), timeout=10)
    stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network=name, name="old"), wait_ready=True), timeout=15)
    call = stub.WatchPorts(pb.WatchPortsRequest(network=name), timeout=30)
    events = []
    done = threading.Event()

    def read():
        try:
            for ev in call:
                events.append(ev)
                if ev.name == "new" and ev.status.ready:
                    done.set()
                if ev.name == "new" and ev.deleted:
                    return
        except grpc.RpcError:
            pass
    t = threading.Thread(target=read)
    t.start()
    try:
        assert wait_for(lambda: any(e.snapshot_done for e in events))
        snapshot = events[:events.index(next(e for e in events if e.snapshot_done))]
        assert [(e.name, e.status.ready) for e in snapshot] == [("old", True)]
        stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network=name, name="new")), timeout=15)
        assert done.wait(20), [(e.name, e.status) for e in events]
        stub.DeletePort(pb.DeletePortRequest(network=name, name="new"), timeout=10)
        assert wait_for(lambda: any(e.name == "new" and e.deleted for e in events))
        new_events = [e for e in events if e.name == "new"]
        assert not new_events[0].status.ready, "the first event of a new port precedes its readiness"
    finally:
        call.cancel()
        t.join(5)


def wait_for(fn, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.02)
    return False


def test_chassis_over_grpc(stub, ovn_stack, ovn_tools):
    got = stub.GetChassis(pb.GetChassisRequest(), timeout=10).chassis
    assert got.system_id == ovn_stack.system_id and got.bridge_exists and got.bridge_datapath_type == "netdev"
    same = pb.ChassisSpec(system_id=got.system_id, ovn_remote=got.ovn_remote, encap_type=got.encap_type,
                          encap_ip=got.encap_ip, bridge_datapath_type="netdev")
    r = stub.EnsureChassis(pb.EnsureChassisRequest(spec=same), timeout=10)
    assert not r.changed and r.chassis.ovn_remote == ovn_stack.sb_remote
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureChassis(pb.EnsureChassisRequest(spec=pb.ChassisSpec(ovn_remote="tcp:1.2.3.4:6642")), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.encap_ip" in _violations(e.value)
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureChassis(pb.EnsureChassisRequest(spec=pb.ChassisSpec(ovn_remote="tcp:1.2.3.4:6642; rm",
                                                                       encap_ip="1.2.3.4")), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ovn_tools.vsctl("get", "Open_vSwitch", ".", "external_ids:ovn-remote").strip().strip('"') == \
        ovn_stack.sb_remote


# -- fuzz --------------------------------------------------------------------------
METHODS = list(pb.DESCRIPTOR.services_by_name["NetworkService"].methods)


@pytest.fixture(scope="module")
def fuzz_agent():
    from tests.support.ovn import start_stack, stop_stack
    stack = start_stack(tag="fz")
    tmp = temp_dir()
    agent = start_inprocess(tmp, agent_overrides(stack))
    yield agent
    stub = pb_grpc.NetworkServiceStub(agent.channel)
    for n in stub.ListNetworks(pb.ListNetworksRequest(), timeout=30).networks:
        stub.DeleteNetwork(pb.DeleteNetworkRequest(name=n.name), timeout=60)
    agent.stop()
    stop_stack(stack)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_fuzz_network_rpcs(fuzz_agent, method):
    req_cls, resp_cls = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
    path = f"/devcloud.agent.v1.NetworkService/{method.name}"

    @settings(max_examples=8 if method.server_streaming else 60, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(protofuzz.message(method.input_type, GetMessageClass))
    def run(request):
        try:
            if method.server_streaming:
                for _ in fuzz_agent.channel.unary_stream(path, request_serializer=req_cls.SerializeToString,
                                                         response_deserializer=resp_cls.FromString)(
                        request, timeout=0.5):
                    pass
            else:
                fuzz_agent.channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                               response_deserializer=resp_cls.FromString)(request, timeout=10)
        except grpc.RpcError as e:
            assert e.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), \
                f"{method.name} answered {e.code().name}: {e.details()} for {request}"
    run()
