"""Three nodes, each with its own devcloud-agent, one clustered OVN central (Raft NB
and SB), two teams: the agent as a member of a multi-node cloud (issue 15). The
central's failover and egress are test_multinode_failover.py (same cloud).

Real OVN, real packets, everything started here (cloud.py, the `cloud` and `fleet`
fixtures in conftest.py), checked with independent tools in the namespaces. Numbers
are printed (terminal summary), never asserted. The tests run in file order on one
cloud; each leaves it usable.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from integration.cluster import cloud as cl
from integration.cluster.cloud import TEAMS, code_of, reason_of, rows, summary_ms


# -- chassis --------------------------------------------------------------------------
def test_chassis_health_cluster_view_and_duplicate_system_id(cloud):
    c = cloud.c
    chassis = {r["name"]: r for r in rows(c.sbctl("--format=json", "list", "Chassis"))}
    encaps = rows(c.sbctl("--format=json", "--columns=chassis_name,type,ip", "list", "Encap"))
    assert sorted(chassis) == ["node1", "node2", "node3"]
    assert sorted((e["chassis_name"], e["type"], e["ip"]) for e in encaps) == [
        (f"node{i}", "geneve", f"192.168.50.{10 + i}") for i in (1, 2, 3)]
    assert {r["hostname"] for r in chassis.values()} == {"node1", "node2", "node3"}     # set by EnsureChassis
    up = c.uplink
    for a in cloud.agents:                      # EnsureChassis again, as at setup: nothing to do
        gw = a.node.index in cl.GATEWAY_NODES
        again = a.network.EnsureChassis(npb.EnsureChassisRequest(spec=npb.ChassisSpec(
            system_id=a.node.system_id, encap_ip=a.node.encap_ip, bridge_datapath_type="netdev", gateway=gw,
            bridge_mappings={up.physnet: up.bridge} if gw else {})), timeout=30)
        assert not again.changed, a.node.name
    for a in cloud.agents:
        got = a.network.GetChassis(npb.GetChassisRequest(), timeout=20).chassis
        assert got.health.healthy, [(k.name, k.detail) for k in got.health.checks if not k.ok]
        assert {k.name for k in got.health.checks} >= {"ovs", "sb-chassis", "system-id", "tunnels", "mtu", "nb"}
        assert got.ovn_remote == c.sb_remotes and got.gateway == (a.node.index in cl.GATEWAY_NODES)
    view = cloud.agent(1).network.ListChassis(npb.ListChassisRequest(), timeout=20)
    assert [(x.name, x.local, x.tunnel, x.gateway) for x in view.chassis] == [
        ("node1", True, False, False), ("node2", False, True, True), ("node3", False, True, True)]
    # devcloudctl's cluster view, as an operator on node1 runs it
    out = cl.run([sys.executable, "-m", "agent.cli.ctl", "--socket", cloud.agent(1).socket, "chassis"]).stdout
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["CHASSIS", "HOSTNAME", "ENCAP", "GATEWAY"], out
    assert [ln.split()[0] for ln in lines[1:4]] == ["node1", "node2", "node3"], out
    assert "geneve:192.168.50.12" in lines[2] and "uplink:br-ex" in lines[2], out
    health = cl.run([sys.executable, "-m", "agent.cli.ctl", "--socket", cloud.agent(2).socket, "chassis", "health"])
    assert health.stdout.strip().endswith("healthy"), health.stdout
    # a cloned host image: node3's agent asked to be node1
    n3 = c.node(3)
    with pytest.raises(grpc.RpcError) as e:
        cloud.agent(3).network.EnsureChassis(npb.EnsureChassisRequest(spec=npb.ChassisSpec(
            system_id="node1", encap_ip=n3.encap_ip, bridge_datapath_type="netdev")), timeout=20)
    assert code_of(e.value) == "FAILED_PRECONDITION" and reason_of(e.value) == "DUPLICATE_SYSTEM_ID"
    assert "192.168.50.11" in e.value.details() and "chassis-del node1" in e.value.details()
    assert n3.vsctl("get", "Open_vSwitch", ".", "external_ids:system-id").strip().strip('"') == "node3"


def test_team_network_converges_across_nodes(cloud):
    """Every node ensuring the same spec writes nothing; a spec that differs in an immutable
    field is refused on any node."""
    for a in cloud.agents:
        for team in TEAMS:
            r = a.network.EnsureNetwork(npb.EnsureNetworkRequest(
                spec=cloud.network_spec(team, egress=team == "team-a")), timeout=30)
            assert not r.changed, (a.node.name, team)
    with pytest.raises(grpc.RpcError) as e:
        cloud.agent(3).network.EnsureNetwork(npb.EnsureNetworkRequest(
            spec=npb.NetworkSpec(name="team-b", subnet4="10.99.0.0/24")), timeout=30)
    assert code_of(e.value) == "ALREADY_EXISTS"
    switches = rows(cloud.c.nbctl("--format=json", "--columns=name", "find", "Logical_Switch",
                                  "external_ids:devcloud-kind=network"))
    assert sorted(s["name"] for s in switches) == ["dc-team-a", "dc-team-b"]


# -- instances across nodes ------------------------------------------------------------
def test_ports_bound_where_prepared_with_requested_chassis(cloud, fleet):
    for vm in fleet.values():
        lsp = cloud.lsp(vm.names.nics[0].lsp)
        assert lsp["options"].get("requested-chassis") == f"node{vm.node}", lsp
        assert lsp["external_ids"]["devcloud-node"] == f"node{vm.node}"
        assert cloud.binding_chassis(vm.names.nics[0].lsp) == f"node{vm.node}"
        assert cloud.whole(vm) == dict.fromkeys(("dataset", "scope", "netdev", "ovs", "lsp", "peer"), True)
    ips = [vm.ip for vm in fleet.values()]
    assert len(set(ips)) == len(ips)


def test_ping_across_nodes_within_team_not_across_teams(cloud, fleet, measure):
    same = [("a1", "a2"), ("a1", "a3"), ("a3", "a2"), ("b2", "b1"), ("b3", "b1"), ("b2", "b3")]
    cross = [("a1", "b2"), ("b1", "a3"), ("a2", "b3"), ("b3", "a1"), ("a1", "b1")]
    with ThreadPoolExecutor(6) as ex:
        ok = dict(zip(same, ex.map(lambda p: fleet[p[0]].ping(fleet[p[1]].ip, count=3, interval=0.1), same)))
        blocked = dict(zip(cross, ex.map(lambda p: fleet[p[0]].ping(fleet[p[1]].ip, count=2, wait=1), cross)))
    assert all(r.ok for r in ok.values()), {p: r.output for p, r in ok.items() if not r.ok}
    assert all(r.none for r in blocked.values()), {p: r.output for p, r in blocked.items() if not r.none}
    rtt = fleet["a1"].ping(fleet["a2"].ip, count=50, interval=0.02)
    assert rtt.ok
    measure("overlay ping RTT a1(node1) -> a2(node2), agent-made ports, 50 x 20 ms",
            f"min/avg/max {rtt.rtt_min}/{rtt.rtt_avg}/{rtt.rtt_max} ms")


def test_tunnel_is_used(cloud, fleet):
    assert fleet["a1"].ping(fleet["a3"].ip, count=3, interval=0.1).ok
    flows = cloud.c.node(1).appctl("dpctl/dump-flows")
    assert "tnl_push(" in flows and "tnl_pop(" in flows, flows
    assert "dst=6081" in flows


def test_port_to_ready_and_reachable_across_nodes(cloud, fleet, measure):
    """10 ports made one at a time on node3 (EnsurePort wait_ready, the instance end in a fresh
    netns): the call until ready (ovn-installed + NB up), and until a1 on node1, pinging every
    10 ms from before the call, gets its first reply."""
    import subprocess
    c, ready, reach = cloud.c, [], []
    for k in range(10):
        ns, ip = c.netns.add(f"{c.prefix}-v-r{k}"), f"10.41.0.{200 + k}"
        # a1 would ARP for an address whose port does not exist yet and then retry once a second:
        # give it the neighbour (the agent derives the MAC from the address) to time the data path
        mac = "0a:58:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
        cl.run(["ip", "neigh", "replace", ip, "lladdr", mac, "dev", "eth0", "nud", "permanent"],
               netns=fleet["a1"].netns)
        pinger = subprocess.Popen(["nsenter", f"--net=/run/netns/{fleet['a1'].netns}", "--", "ping", "-n", "-D",
                                   "-i", "0.01", "-W", "0.01", "-w", "10", ip], stdout=subprocess.PIPE, text=True)
        try:
            t0, m0 = time.time(), time.monotonic()
            r = cloud.agent(3).network.EnsurePort(npb.EnsurePortRequest(
                spec=npb.PortSpec(network="team-a", name=f"reach-{k}", instance="reach", ip4=ip, peer_netns=ns),
                wait_ready=True, ready_timeout_ms=20000), timeout=30)
            ready.append(time.monotonic() - m0)
            assert r.port.status.ready
            line = ""
            for line in pinger.stdout:
                if "bytes from" in line:
                    break
            assert "bytes from" in line, f"{ip} never answered a1"
            reach.append(float(line.split("]")[0].lstrip("[")) - t0)
        finally:
            pinger.kill()
            pinger.wait()
            cl.run(["ip", "neigh", "del", ip, "dev", "eth0"], netns=fleet["a1"].netns, check=False)
    cloud.agent(3).network.DeletePorts(npb.DeletePortsRequest(
        ports=[npb.PortRef(network="team-a", name=f"reach-{k}") for k in range(10)]), timeout=60)
    measure("cross-node port-to-ready: EnsurePort on node3 -> ready (one at a time)", summary_ms(ready))
    measure("cross-node port-to-reachable: EnsurePort on node3 -> first reply to a1 on node1 (10 ms pings)",
            summary_ms(reach))


# -- allocation from several nodes ---------------------------------------------------------
def test_concurrent_allocation_from_two_nodes(cloud, measure):
    """Nodes 1 and 2 each ensure 50 NICs in team-a at once (8 calls in flight per node), the
    addresses allocated by the agents: no address or MAC twice (checked in NB); each node's
    bulk delete takes only its own ports, and refuses the other node's."""
    per_node, lat = 50, {1: [], 2: []}

    def ensure(job):
        node, k = job
        t = time.monotonic()
        r = cloud.agent(node).network.EnsurePort(npb.EnsurePortRequest(
            spec=npb.PortSpec(network="team-a", name=f"alloc{node}-{k}", instance=f"alloc{node}"),
            wait_ready=True, ready_timeout_ms=30000), timeout=60)
        lat[node].append(time.monotonic() - t)
        return r.port

    jobs = [(n, k) for k in range(per_node) for n in (1, 2)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as ex:
        ports = list(ex.map(ensure, jobs))
    wall = time.monotonic() - t0
    assert all(p.status.ready for p in ports), [p.name for p in ports if not p.status.ready]
    lsps = [r for r in rows(cloud.c.nbctl("--format=json", "--columns=name,addresses,external_ids", "find",
                                          "Logical_Switch_Port", "external_ids:devcloud-network=team-a"))
            if r["external_ids"].get("devcloud-kind") == "port"]
    addrs = [cl.aslist(r["addresses"])[0].split() for r in lsps]
    ips, macs = [a[1] for a in addrs], [a[0] for a in addrs]
    assert len(lsps) >= 2 * per_node
    assert len(set(ips)) == len(ips), sorted(ip for ip in ips if ips.count(ip) > 1)
    assert len(set(macs)) == len(macs)
    by_node = {n: sorted(r["name"] for r in lsps if r["external_ids"]["devcloud-node"] == f"node{n}"
                         and r["name"].startswith(f"dc.team-a.alloc{n}-")) for n in (1, 2)}
    assert [len(v) for v in by_node.values()] == [per_node, per_node]
    measure("EnsurePort wait_ready (port-to-ready, ovn-installed + NB up), 2 nodes x 50 at once in one team",
            f"{summary_ms(lat[1] + lat[2])}; wall {wall:.1f}s")
    # bulk release: a node refuses the other's ports, then each deletes its own
    with pytest.raises(grpc.RpcError) as e:
        cloud.agent(1).network.DeletePorts(npb.DeletePortsRequest(
            ports=[npb.PortRef(network="team-a", name="alloc2-0"), npb.PortRef(network="team-a", name="alloc1-0")]),
            timeout=30)
    assert code_of(e.value) == "FAILED_PRECONDITION" and reason_of(e.value) == "OTHER_NODE"
    assert cloud.lsp("dc.team-a.alloc1-0") is not None          # nothing deleted
    for n in (1, 2):
        r = cloud.agent(n).network.DeletePorts(npb.DeletePortsRequest(
            ports=[npb.PortRef(network="team-a", name=f"alloc{n}-{k}") for k in range(per_node)]), timeout=60)
        assert r.deleted == per_node
        left = rows(cloud.c.nbctl("--format=json", "--columns=name", "find", "Logical_Switch_Port",
                                  f"external_ids:devcloud-instance=alloc{n}"))
        assert left == []
        assert [line for line in cloud.c.node(n).vsctl("--bare", "--columns=name", "find", "Interface",
                                                       f"external_ids:devcloud-instance=alloc{n}").split()] == []


# -- per-node upkeep -------------------------------------------------------------------
def test_gc_diff_repair_on_one_node_leave_the_others_alone(cloud, fleet):
    before = {vm.id: (cloud.lsp(vm.names.nics[0].lsp)["_uuid"], cloud.binding_chassis(vm.names.nics[0].lsp))
              for vm in fleet.values()}
    a1 = cloud.agent(1)
    gc = a1.instances.GarbageCollect(ipb.GarbageCollectRequest(dry_run=False), timeout=60)
    assert list(gc.objects) == [], gc
    diff = a1.instances.Diff(ipb.DiffRequest(), timeout=60)
    assert {d.id for d in diff.instances} <= {"a1", "b1"}
    assert all(not d.drifts and not d.error for d in diff.instances), diff
    rep = a1.instances.Repair(ipb.RepairRequest(), timeout=60)
    assert {r.id for r in rep.instances} <= {"a1", "b1"}
    after = {vm.id: (cloud.lsp(vm.names.nics[0].lsp)["_uuid"], cloud.binding_chassis(vm.names.nics[0].lsp))
             for vm in fleet.values()}
    assert after == before
    # deleting a team network with other nodes' ports is refused, naming them
    with pytest.raises(grpc.RpcError) as e:
        a1.network.DeleteNetwork(npb.DeleteNetworkRequest(name="team-b"), timeout=30)
    assert code_of(e.value) == "FAILED_PRECONDITION" and reason_of(e.value) == "PORTS_ON_OTHER_NODES"
    assert "node2 (1 port)" in e.value.details() and "node3 (1 port)" in e.value.details()
    assert cloud.lsp(fleet["b1"].names.nics[0].lsp) is not None


def test_agent_restart_keeps_ports_bound(cloud, fleet, measure):
    """node1's agent restarts (SIGTERM), node2's is killed (SIGKILL) and started again: their
    startup reconcile leaves every port bound where it was, traffic flows meanwhile."""
    lsps = {vm.id: vm.names.nics[0].lsp for vm in fleet.values()}
    t1 = cloud.agent(1).restart()
    cloud.agent(2).kill()
    assert fleet["a1"].ping(fleet["a2"].ip, count=2, interval=0.1).ok        # data plane without agent
    t2 = cloud.agent(2).restart()
    measure("agent restart -> READY (SIGTERM node1 / SIGKILL node2)", f"{t1:.2f}s / {t2:.2f}s")
    for vm in fleet.values():
        assert cloud.binding_chassis(lsps[vm.id]) == f"node{vm.node}"
        assert cloud.ovn_installed(vm), vm.id
    assert fleet["a2"].ping(fleet["a1"].ip, count=3, interval=0.1).ok
    got = cloud.agent(2).instances.GetInstance(ipb.GetInstanceRequest(id="a2"), timeout=30).instance
    assert got.ready
