"""The multi-node cloud (conftest.py `cloud`, `fleet`) when parts of the central or a
gateway node die: the NB Raft leader killed during a burst of PrepareInstance on two
nodes, and egress through a team's router before and after its active gateway
chassis crashes. Numbers printed, never asserted."""
from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from integration.cluster import cloud as cl
from integration.cluster.cloud import code_of, reason_of
from integration.cluster.procs import wait_until


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
