"""The agent as a real process, driven over gRPC like a controller, on a real
OVN stack (userspace datapath): two teams x two instances, real packets,
ovn-trace, ownership next to foreign objects, idempotency, NB faults.
Everything is checked with independent tools (ovn-nbctl, ovn-sbctl,
ovs-vsctl, ovn-trace, ip -j, ping), never with the agent's getters."""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import network_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc as pb_grpc
from tests.support.ovn import PID, Tools, agent_overrides, as_list, uniq, wait_until
from tests.support.server import AgentProcess, temp_dir

HANG = 10.0          # hang detector for calls with a 2 s deadline (not a performance bound)


@pytest.fixture(scope="module")
def agent(ovn_stack):
    tmp = temp_dir()
    proc = AgentProcess(tmp, overrides=agent_overrides(ovn_stack) + [f"node.name=itest-{PID}"]).start()
    yield proc
    proc.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def stub(agent):
    ch = agent.channel()
    yield pb_grpc.NetworkServiceStub(ch)
    ch.close()


@pytest.fixture(scope="module")
def foreign(ovn_stack, ovn_tools):
    """Foreign objects next to ours: a logical switch, an OVS port claiming one of
    our iface-ids under another owner, and a veth in the host netns."""
    ls, port, veth = f"foreign-ls-{PID}", f"fport{PID % 100000}", f"fveth{PID % 100000}"
    ovn_tools.nbctl("ls-add", ls, "--", "lsp-add", ls, f"{ls}-p1")
    ovn_tools.vsctl("add-port", "br-int", port, "--", "set", "Interface", port, "type=internal",
                    "external_ids:devcloud-owner=another-agent")
    subprocess.run(["ip", "-n", ovn_stack.netns, "link", "add", veth, "type", "veth", "peer", "name", veth + "p"],
                   check=True)
    objs = {"ls": ls, "port": port, "veth": veth}
    yield objs
    ovn_tools.nbctl("--if-exists", "ls-del", ls)
    ovn_tools.vsctl("--if-exists", "del-port", "br-int", port)
    subprocess.run(["ip", "-n", ovn_stack.netns, "link", "del", veth])


def _assert_foreign_untouched(objs, tools, stack):
    assert tools.nb_rows("Logical_Switch", f"name={objs['ls']}"), "foreign logical switch removed"
    assert tools.nb_rows("Logical_Switch_Port", f"name={objs['ls']}-p1"), "foreign logical port removed"
    iface = tools.ovs_rows("Interface", f"name={objs['port']}")
    assert iface and iface[0]["external_ids"]["devcloud-owner"] == "another-agent", "foreign OVS port touched"
    assert tools.link(objs["veth"], stack.netns) is not None, "foreign veth removed"


def test_two_teams_real_traffic(stub, agent, ovn_stack, ovn_tools, netns_factory, foreign):
    teams = {uniq("ta"): "10.71.0.0/24", uniq("tb"): "10.72.0.0/24"}
    # the foreign OVS port claims iface-id of a port we will try to create in team A
    team_a = next(iter(teams))
    ovn_tools.vsctl("set", "Interface", foreign["port"], f"external_ids:iface-id=dc.{team_a}.stolen")
    try:
        _scenario(stub, agent, ovn_stack, ovn_tools, netns_factory, foreign, teams)
    finally:
        for t in teams:
            stub.DeleteNetwork(pb.DeleteNetworkRequest(name=t), timeout=60)
    for t in teams:
        assert not ovn_tools.nb_rows("Logical_Switch", f"name=dc-{t}")
        assert not ovn_tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-network={t}")
        assert not ovn_tools.ovs_rows("Interface", f"external_ids:devcloud-network={t}")
    assert not [l for l in ovn_tools.links(ovn_stack.netns) if "devcloud" in l.get("ifalias", "")
                and any(f"net={t} " in l["ifalias"] + " " for t in teams)]
    _assert_foreign_untouched(foreign, ovn_tools, ovn_stack)


def _scenario(stub, agent, stack, tools, netns_factory, foreign, teams):
    for team, subnet in teams.items():
        replies = [stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=pb.NetworkSpec(name=team, subnet4=subnet)),
                                      timeout=10) for _ in range(3)]
        assert [r.changed for r in replies] == [True, False, False]
        with pytest.raises(grpc.RpcError) as e:
            stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=pb.NetworkSpec(name=team, subnet4="10.9.9.0/24")),
                               timeout=10)
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS

    inst = {}
    for team in teams:
        for i in range(2):
            ns = netns_factory()
            req = pb.EnsurePortRequest(spec=pb.PortSpec(network=team, name=f"vm{i}-eth0", instance=f"vm{i}",
                                                        peer_netns=ns), wait_ready=True)
            start = time.monotonic()
            r = stub.EnsurePort(req, timeout=20)
            took = time.monotonic() - start
            print(f"EnsurePort {team}/vm{i}: {took * 1000:.1f} ms (ready wait {r.port.status.waited_seconds * 1000:.1f}"
                  " ms)")
            assert r.changed and r.port.status.ready and r.port.status.up and r.port.status.ovn_installed
            assert [stub.EnsurePort(req, timeout=20).changed for _ in range(2)] == [False, False]
            inst[(team, i)] = (ns, r.port)
            tools.in_ns(ns, "ethtool", "-K", "eth0", "tx", "off")

    # the foreign interface claiming our iface-id is not stolen: FAILED_PRECONDITION naming it
    team_a = next(iter(teams))
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network=team_a, name="stolen")), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and foreign["port"] in e.value.details()
    assert not tools.nb_rows("Logical_Switch_Port", f"name=dc.{team_a}.stolen")

    _check_objects(stub, stack, tools, teams, inst)
    reach = _check_traffic(tools, inst)
    _check_trace(tools, inst, reach)
    _check_spoofing(tools, inst, team_a)
    _assert_foreign_untouched(foreign, tools, stack)


def _check_objects(stub, stack, tools, teams, inst):
    for team in teams:
        ls = tools.nb_rows("Logical_Switch", f"name=dc-{team}")
        assert len(ls) == 1 and ls[0]["external_ids"]["devcloud-owner"] == "devcloud-agent"
        lsps = tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-network={team}")
        assert sorted(r["external_ids"]["devcloud-port"] for r in lsps) == ["vm0-eth0", "vm1-eth0"]
        assert all(r["up"] is True and r["external_ids"]["devcloud-node"] == f"itest-{PID}" for r in lsps)
        assert all(as_list(r["port_security"]) == as_list(r["addresses"]) for r in lsps)
        pg = tools.nb_rows("Port_Group", f"name=dc_{team.replace('-', '_')}")[0]
        assert sorted(as_list(pg["ports"])) == sorted(r["_uuid"] for r in lsps)
        acls = tools.nb_rows("ACL", f"external_ids:devcloud-network={team}")
        assert sorted((a["direction"], a["priority"], a["action"]) for a in acls) == [
            ("from-lport", 1001, "allow-related"), ("to-lport", 900, "drop"), ("to-lport", 1001, "allow-related")]
    chassis = tools.sbctl("--bare", "--columns=_uuid", "find", "Chassis", f"name={stack.system_id}").strip()
    for (team, i), (ns, port) in inst.items():
        pb_row = json.loads(tools.sbctl("--format=json", "find", "Port_Binding", f"logical_port={port.iface_id}"))
        assert pb_row["data"], port.iface_id
        iface = tools.ovs_rows("Interface", f"name={port.host_netdev}")[0]
        assert iface["external_ids"]["iface-id"] == port.iface_id
        assert iface["external_ids"]["ovn-installed"] == "true"
        assert iface["external_ids"]["devcloud-owner"] == "devcloud-agent"
        host = tools.link(port.host_netdev, stack.netns)
        assert host["ifalias"].startswith("devcloud ") and f"net={team}" in host["ifalias"]
        assert host["mtu"] == 1442 and host["linkinfo"]["info_kind"] == "veth"
        assert tools.sysctl(stack.netns, f"net.ipv6.conf.{port.host_netdev}.disable_ipv6") == "1"
        peer = tools.link("eth0", ns)
        assert peer["address"] == port.mac and f"{port.ip4}/24" in tools.addrs("eth0", ns)
    assert chassis
    # the agent's own netns holds none of these netdevs
    mine = {l["ifname"] for l in tools.links()}
    assert not mine & {p.host_netdev for _, p in inst.values()}


def _check_traffic(tools, inst):
    reach = {}
    for (a, b) in itertools.permutations(inst, 2):
        ns_a, _ = inst[a]
        _, port_b = inst[b]
        same = a[0] == b[0]
        ok = tools.ping_eventually(ns_a, port_b.ip4, attempts=10 if same else 2)
        reach[(a, b)] = ok
        assert ok == same, f"ping {a} -> {b}: {'ok' if ok else 'failed'}, expected {'ok' if same else 'blocked'}"
    # TCP within a team (tx checksum offload off in the instance namespaces)
    (ns0, _), (ns1, p1) = inst[(next(iter(inst))[0], 0)], inst[(next(iter(inst))[0], 1)]
    server = subprocess.Popen(["ip", "netns", "exec", ns1, "python3", "-c",
                               "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                               "s.bind(('0.0.0.0',7777));s.listen();c,_=s.accept();c.sendall(c.recv(100));c.close()"])
    try:
        out = ""
        for _ in range(50):
            r = subprocess.run(["ip", "netns", "exec", ns0, "python3", "-c",
                                f"import socket;s=socket.create_connection(('{p1.ip4}',7777),timeout=2);"
                                "s.sendall(b'hello-devcloud');print(s.recv(100).decode())"],
                               capture_output=True, text=True, timeout=10)
            out = r.stdout.strip()
            if out:
                break
            time.sleep(0.05)
        assert out == "hello-devcloud"
    finally:
        server.kill()
        server.wait()
    return reach


def _check_trace(tools, inst, reach):
    for (a, b), ok in reach.items():
        _, pa = inst[a]
        _, pb_ = inst[b]
        flow = (f'inport == "{pa.iface_id}" && eth.src == {pa.mac} && eth.dst == {pb_.mac} && '
                f"ip4.src == {pa.ip4} && ip4.dst == {pb_.ip4} && ip.ttl == 64 && icmp4.type == 8")
        out = tools.trace(f"dc-{a[0]}", flow)
        delivered = f'output("{pb_.iface_id}")' in out
        assert delivered == ok, f"ovn-trace {a}->{b} says delivered={delivered}, ping said {ok}:\n{out}"


def _check_spoofing(tools, inst, team):
    (ns0, p0), (_, p1) = inst[(team, 0)], inst[(team, 1)]
    spoof = p0.ip4.rsplit(".", 1)[0] + ".250"
    tools.in_ns(ns0, "ip", "addr", "add", f"{spoof}/24", "dev", "eth0")
    try:
        assert tools.ping(ns0, p1.ip4, count=2, source=p0.ip4), "the real source must still pass"
        assert not tools.ping(ns0, p1.ip4, count=2, source=spoof), "a spoofed source IP must be dropped"
        flow = (f'inport == "{p0.iface_id}" && eth.src == {p0.mac} && eth.dst == {p1.mac} && '
                f"ip4.src == {spoof} && ip4.dst == {p1.ip4} && ip.ttl == 64 && icmp4.type == 8")
        assert f'output("{p1.iface_id}")' not in tools.trace(f"dc-{team}", flow)
    finally:
        tools.in_ns(ns0, "ip", "addr", "del", f"{spoof}/24", "dev", "eth0")


def test_nb_down_unavailable_then_recovers_without_agent_restart(private_ovn_stack, netns_factory):
    stack = private_ovn_stack
    tools = Tools(stack)
    tmp = temp_dir()
    proc = AgentProcess(tmp, overrides=agent_overrides(stack)).start()
    ch = proc.channel()
    stub = pb_grpc.NetworkServiceStub(ch)
    try:
        stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=pb.NetworkSpec(name="f1", subnet4="10.81.0.0/24")),
                           timeout=10)
        pid = proc.proc.pid
        stack.stop_component("nb")
        calls = [lambda: stub.EnsureNetwork(pb.EnsureNetworkRequest(
                     spec=pb.NetworkSpec(name="f2", subnet4="10.82.0.0/24")), timeout=2),
                 lambda: stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network="f1", name="p")), timeout=2),
                 lambda: stub.GetNetwork(pb.GetNetworkRequest(name="f1"), timeout=2),
                 lambda: stub.DeleteNetwork(pb.DeleteNetworkRequest(name="f1"), timeout=2)]
        for call in calls:
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e.value
            assert time.monotonic() - start < HANG
        stack.start_component("nb")

        def works():
            try:
                return stub.EnsureNetwork(pb.EnsureNetworkRequest(
                    spec=pb.NetworkSpec(name="f2", subnet4="10.82.0.0/24")), timeout=2)
            except grpc.RpcError:
                return None
        assert wait_until(works, timeout=30, interval=0.2), "no recovery after NB restart"
        ns = netns_factory()
        r = stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network="f1", name="p", peer_netns=ns),
                                                 wait_ready=True), timeout=20)
        assert r.port.status.ready
        assert tools.nb_rows("Logical_Switch", "name=dc-f2")
        assert proc.proc.pid == pid and proc.proc.poll() is None, "the agent was not restarted"
    finally:
        for n in ("f1", "f2"):
            try:
                stub.DeleteNetwork(pb.DeleteNetworkRequest(name=n), timeout=20)
            except grpc.RpcError:
                pass
        ch.close()
        proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
