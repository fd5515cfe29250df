"""Three nodes, each with its own devcloud-agent, one clustered OVN central (Raft NB
and SB), two teams: the agent as a member of a multi-node cloud (issue 15).

Real OVN, real packets, everything started here (cloud.py), checked with
independent tools in the namespaces. Numbers are printed (terminal summary),
never asserted. The tests run in file order on one cloud; each leaves it usable.
"""
from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from integration.cluster import cloud as cl
from integration.cluster.cloud import TEAMS, code_of, reason_of, rows, summary_ms
from integration.cluster.procs import wait_until


@pytest.fixture(scope="module")
def cloud(cgroup_session_dir, measure):
    from integration.cluster.conftest import require_cluster
    require_cluster()
    from agent.drivers import zfs as zfsdrv
    if not zfsdrv.detect_flavor()[0]:
        pytest.skip(f"no ZFS for the node agents' pools: {zfsdrv.detect_flavor()[1]}")
    c = cl.build(cgroup_session_dir)
    measure("multi-node cloud up (3 agents, Raft central)", ", ".join(f"{k} {v:.2f}s" for k, v in c.timings.items()))
    try:
        yield c
    finally:
        report = cl.teardown(c)
        measure("multi-node cloud down", f"{report.get('seconds', 0):.2f}s, SIGKILLed {report.get('killed')}")


@pytest.fixture(scope="module")
def fleet(cloud, measure):
    """One instance of each team on every node (aN, bN), ready, with a default route via the
    team gateway (what DHCP's router option gives a real guest)."""
    jobs = [(i, f"{t[-1]}{i}", t) for i in range(1, 4) for t in TEAMS]
    with ThreadPoolExecutor(6) as ex:
        vms = list(ex.map(lambda j: cloud.prepare(*j), jobs))
    for vm in vms:
        gw = str(__import__("ipaddress").ip_network(TEAMS[vm.team]).network_address + 1)
        cl.run(["ip", "route", "replace", "default", "via", gw], netns=vm.netns)
    cloud.wait_ports_up(*(vm.names.nics[0].lsp for vm in vms))
    measure("PrepareInstance (container, 1 NIC, wait_ready) x6 on 3 nodes, 6 at once",
            summary_ms([vm.prepare_seconds for vm in vms]))
    return {vm.id: vm for vm in vms}


# -- chassis --------------------------------------------------------------------------
def test_chassis_health_cluster_view_and_duplicate_system_id(cloud):
    c = cloud.c
    chassis = {r["name"]: r for r in rows(c.sbctl("--format=json", "list", "Chassis"))}
    encaps = rows(c.sbctl("--format=json", "--columns=chassis_name,type,ip", "list", "Encap"))
    assert sorted(chassis) == ["node1", "node2", "node3"]
    assert sorted((e["chassis_name"], e["type"], e["ip"]) for e in encaps) == [
        (f"node{i}", "geneve", f"192.168.50.{10 + i}") for i in (1, 2, 3)]
    assert {r["hostname"] for r in chassis.values()} == {"node1", "node2", "node3"}     # set by EnsureChassis
    for a in cloud.agents:
        got = a.network.GetChassis(npb.GetChassisRequest(), timeout=20).chassis
        assert got.health.healthy, [(k.name, k.detail) for k in got.health.checks if not k.ok]
        assert {k.name for k in got.health.checks} >= {"ovs", "sb-chassis", "system-id", "tunnels", "mtu", "nb"}
        assert got.ovn_remote == c.sb_remotes and got.gateway == (a.node.index in cl.GATEWAY_NODES)
    view = cloud.agent(1).network.ListChassis(npb.ListChassisRequest(), timeout=20)
    assert [(x.name, x.local, x.tunnel, x.gateway) for x in view.chassis] == [
        ("node1", True, False, False), ("node2", False, True, True), ("node3", False, True, True)]
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


# -- clustered central -------------------------------------------------------------------
def test_nb_leader_killed_during_prepare_burst(cloud, measure):
    """PrepareInstance on nodes 1 and 2 (3 in flight each) while the NB Raft leader is
    SIGKILLed by PID: no call outlives its deadline, each either fails (UNAVAILABLE while the
    central elects) or answers with a whole instance; retried, the burst completes. A probe
    writing NB through node1's agent (EnsurePort, 20/s) measures the write gap."""
    c = cloud.c
    deadline, per_node = 20.0, 8
    ids = {n: [f"fb{n}-{k}" for k in range(per_node)] for n in (1, 2)}
    results: dict[str, tuple] = {}
    probe: list[tuple[float, float, bool]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def call(node_iid):
        node, iid = node_iid
        t = time.monotonic()
        try:
            cloud.prepare(node, iid, "team-b", wait_ready=False, timeout=deadline)
            out = ("OK", "")
        except grpc.RpcError as err:
            out = (code_of(err), reason_of(err))
        with lock:
            results[iid] = (*out, t, time.monotonic())

    def prober():
        k = 0
        while not stop.is_set():
            t = time.monotonic()
            try:
                cloud.agent(1).network.EnsurePort(npb.EnsurePortRequest(spec=npb.PortSpec(
                    network="team-b", name=f"probe-{k}", instance="probe")), timeout=10)
                ok = True
                k += 1
            except grpc.RpcError:
                ok = False
            probe.append((t, time.monotonic(), ok))
            stop.wait(0.05)

    def short_call() -> tuple[str, float]:
        """A write with a 1 s deadline right after the kill: answered (OK or UNAVAILABLE) in time."""
        t = time.monotonic()
        try:
            cloud.agent(2).network.EnsurePort(npb.EnsurePortRequest(spec=npb.PortSpec(
                network="team-b", name="short-0", instance="probe")), timeout=1.0)
            code = "OK"
        except grpc.RpcError as err:
            code = f"{code_of(err)} {err.details()[:160]}"
        return code, time.monotonic() - t

    leader = c.leader("nb")
    assert leader is not None
    term = c.cluster_status("nb", leader).get("term")
    pt = threading.Thread(target=prober, daemon=True)
    pt.start()
    jobs = [(n, iid) for k in range(per_node) for n in (1, 2) for iid in [ids[n][k]]]
    with ThreadPoolExecutor(6) as ex:
        futs = [ex.submit(call, j) for j in jobs]
        wait_until(lambda: len(results) >= 4, 60, "4 prepares done before the kill")
        t_kill = time.monotonic()
        c.kill_member("nb", leader)
        with ThreadPoolExecutor(1) as now:               # its own thread: not queued behind the burst
            short_code, short_s = now.submit(short_call).result(timeout=10)
        for f in futs:
            f.result(timeout=deadline + 30)
    assert short_s < 1.0 + 0.5, (short_code, short_s)                  # within its deadline, never hanging
    assert short_code.split()[0] in ("OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"), short_code
    time.sleep(0.5)
    stop.set()
    pt.join(15)
    durations = {iid: r[3] - r[2] for iid, r in results.items()}
    assert max(durations.values()) < deadline + 2, durations           # no call hung past its deadline
    failed = {iid: r[:2] for iid, r in results.items() if r[0] != "OK"}
    assert all(code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED") for code, _ in failed.values()), failed
    acked = [iid for iid, r in results.items() if r[0] == "OK"]
    for iid in acked:
        assert all(cloud.whole(cloud.vms[iid]).values()), (iid, cloud.whole(cloud.vms[iid]))
    # the burst completes after the failover: the failed ones again
    t_retry = time.monotonic()
    for iid in sorted(failed):
        node = int(iid[2])
        cloud.prepare(node, iid, "team-b", wait_ready=False, timeout=30)
    retry_s = time.monotonic() - t_retry
    new_leader = c.leader("nb")
    assert new_leader not in (None, leader)
    new_term = c.cluster_status("nb", new_leader).get("term")
    # every instance ready (northd has to reach the new NB leader first)
    t = time.monotonic()
    for n in (1, 2):
        for iid in ids[n]:
            r = cloud.agent(n).instances.PrepareInstance(ipb.PrepareInstanceRequest(
                spec=_spec_of(cloud, iid), wait_ready=True, ready_timeout_ms=30000), timeout=40)
            assert r.instance.ready, iid
            assert all(cloud.whole(cloud.vms[iid]).values())
    ready_after = time.monotonic() - t_kill
    gaps = _write_gap(probe, t_kill)
    measure("NB leader SIGKILL during 16 PrepareInstance on 2 nodes",
            f"acked {len(acked)}, failed {len(failed)} {sorted(set(failed.values()))}, longest call "
            f"{max(durations.values()):.2f}s (deadline {deadline:.0f}s), retries done in {retry_s:.2f}s, all ready "
            f"{ready_after:.1f}s after the kill; leader c{leader} -> c{new_leader}, term {term} -> {new_term}; "
            f"a 1 s-deadline write right after the kill: {short_code} in {short_s:.2f}s")
    measure("NB leader failover gap seen by the agent (EnsurePort probe on node1, 20/s)", gaps)
    t = time.monotonic()
    c.restart_member("nb", leader)
    measure("killed NB member restarted -> rejoined", f"{time.monotonic() - t:.2f}s")
    cloud.agent(1).network.DeletePorts(npb.DeletePortsRequest(
        ports=[npb.PortRef(network="team-b", name=f"probe-{k}") for k in range(sum(1 for p in probe if p[2]))]),
        timeout=60)
    cloud.agent(2).network.DeletePorts(npb.DeletePortsRequest(ports=[npb.PortRef(network="team-b", name="short-0")]),
                                       timeout=60)
    for n in (1, 2):
        r = cloud.agent(n).instances.ReleaseInstances(ipb.ReleaseInstancesRequest(ids=ids[n]), timeout=120)
        assert all(x.released for x in r.results), r


def _spec_of(cloud, iid: str) -> ipb.InstanceSpec:
    vm = cloud.vms[iid]
    return ipb.InstanceSpec(id=iid, team=vm.team, kind=ipb.INSTANCE_KIND_CONTAINER,
                            root=ipb.RootVolumeSpec(image_id=cl.IMAGE),
                            nics=[ipb.NicSpec(name="eth0", network=vm.team, peer_netns=vm.netns)])


def _write_gap(probe: list[tuple[float, float, bool]], t_kill: float) -> str:
    """The agent's NB write gap around the kill: the longest stretch without a write committing
    (consecutive successful probe calls; the probe is sequential, so a stalled write shows as a
    long call and a long stretch), and the first write started after the kill to commit."""
    ends = sorted(end for start, end, ok in probe if ok and t_kill - 2 <= end <= t_kill + 30)
    later = [end for start, end, ok in probe if ok and start > t_kill]
    if len(ends) < 2 or not later:
        return f"not measured ({len(ends)} writes around the kill, {len(later)} started after it)"
    gap = max(b - a for a, b in zip(ends, ends[1:]))
    failed = sum(1 for start, _, ok in probe if not ok and start > t_kill - 2)
    calls = [end - start for start, end, ok in probe if ok]
    return (f"longest stretch without a committed write {gap:.2f}s, longest write call {max(calls):.2f}s, first "
            f"write started after the kill committed {later[0] - t_kill:.2f}s after it, {failed} failed calls, "
            f"median call {statistics.median(calls) * 1000:.0f} ms")


# -- egress --------------------------------------------------------------------------------
SNIFF = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)); s.bind(("eth0", 0))
s.settimeout(0.1); print("ready", flush=True); end = time.time() + float(sys.argv[1]); seen = set()
while time.time() < end:
    try: f = s.recv(65535)
    except socket.timeout: continue
    if f[23] == 1 and f[34] == 8:        # ICMP echo request
        seen.add(socket.inet_ntoa(f[26:30]))
print(" ".join(sorted(seen)))
"""


def test_egress_snat_and_gateway_failover(cloud, fleet, measure):
    """a1 on node1 (not a gateway) reaches the uplink host through team-a's router, SNATed to
    the router's external address; team-b (no egress) does not. Then the active gateway
    node's chassis dies (ovn-controller + ovs-vswitchd SIGKILLed by PID): the other gateway
    takes the uplink port over and a1 reaches the uplink again."""
    import subprocess
    import sys
    c, up = cloud.c, cloud.c.uplink
    net = cloud.agent(1).network.GetNetwork(npb.GetNetworkRequest(name="team-a"), timeout=20).network
    assert net.egress.router == "dcr.team-a"
    assert sorted(g.chassis for g in net.egress.gateways) == ["node2", "node3"]
    wait_until(lambda: cloud.binding_chassis("cr-dcr.team-a.wan") in ("node2", "node3"), 30, "an active gateway")
    ext_ip = up.external_ip(0).split("/")[0]
    sniff = c.popen([sys.executable, "-c", SNIFF, "4"], netns=up.host_netns, stdout=subprocess.PIPE, text=True)
    assert sniff.stdout.readline().strip() == "ready"
    t = time.monotonic()
    r = _ping_until(fleet["a1"], up.gateway_ip, 20)
    first = time.monotonic() - t
    assert r.ok, r.output
    assert fleet["b1"].ping(up.gateway_ip, count=2, wait=1).none        # no egress for team-b
    sources, _ = sniff.communicate(timeout=15)
    assert sources.split() == [ext_ip], sources                         # SNAT: only the router's address
    active = cloud.agent(1).network.GetNetwork(npb.GetNetworkRequest(name="team-a"), timeout=20).network.egress
    sb_active = cloud.binding_chassis("cr-dcr.team-a.wan")
    assert active.active_chassis == sb_active
    rtt = fleet["a1"].ping(up.gateway_ip, count=20, interval=0.02)
    measure("egress a1(node1) -> uplink via " + sb_active, f"first reply {first:.2f}s after the ping started; "
            f"RTT min/avg/max {rtt.rtt_min}/{rtt.rtt_avg}/{rtt.rtt_max} ms")
    # the active gateway's chassis dies
    victim = int(sb_active[-1])
    other = f"node{5 - victim}"
    t_kill = time.monotonic()
    c.crash_datapath(victim)
    try:
        wait_until(lambda: cloud.binding_chassis("cr-dcr.team-a.wan") == other, 60, f"{other} taking over")
        moved = time.monotonic() - t_kill
        r = _ping_until(fleet["a1"], up.gateway_ip, 60)
        back = time.monotonic() - t_kill
        assert r.ok, r.output
        got = cloud.agent(1).network.GetNetwork(npb.GetNetworkRequest(name="team-a"), timeout=20).network.egress
        assert got.active_chassis == other
        measure("egress gateway failover (active gateway's ovn-controller + vswitchd SIGKILLed)",
                f"SB moved the uplink port {sb_active} -> {other} {moved:.2f}s after the kill, a1 reaches the "
                f"uplink again {back:.2f}s after it")
    finally:
        c.restart_datapath(victim)
        wait_until(lambda: all(len(n.tunnel_ports()) >= 2 for n in c.nodes), 30, "tunnel mesh back")
        c.prime_tunnels()


def _ping_until(vm, dst: str, timeout: float):
    end = time.monotonic() + timeout
    while True:
        r = vm.ping(dst, count=1, wait=0.5)
        if r.ok or time.monotonic() > end:
            return r
