"""End to end through gRPC against the agent as a process, like a controller:
2 teams x 3 instances prepared (each instance's netns holds its veth end with
its IP), real ping within a team and none across, release (one team in bulk,
the other one by one), nothing left, foreign objects seeded beforehand intact.
Checked with ip -j, ovn-nbctl, ovs-vsctl, zfs get -Hp and cgroupfs."""
from __future__ import annotations

import itertools
import secrets
import statistics
import time

import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from tests.support.instances import AgentRun, Env, foreign_intact, foreign_objects, nic, remove_foreign, spec, stub


@pytest.fixture(scope="module")
def run(zfs_pool, ovn_stack, ovn_tools, cgroup_session_dir):
    env = Env.make(zfs_pool, ovn_stack, ovn_tools, cgroup_session_dir, tag="e")
    agent = AgentRun(env).start()
    ch = agent.channel()
    try:
        tag = secrets.token_hex(2)
        env.setup(ch, {f"ea{tag}": "10.91.0.0/24", f"eb{tag}": "10.92.0.0/24"})
        yield agent, env, ch
    finally:
        env.delete_networks(ch)
        ch.close()
        agent.stop()
        env.cleanup()


def test_two_teams_three_instances_traffic_release(run, netns_factory):
    agent, env, ch = run
    s = stub(ch)
    teams = list(env.teams)
    foreign = {t: foreign_objects(env, t) for t in teams}
    inst, took = {}, []
    try:
        for team in teams:
            for i in range(3):
                ns = netns_factory()
                iid = f"{team}-{i}"
                t0 = time.perf_counter()
                r = s.PrepareInstance(ipb.PrepareInstanceRequest(
                    spec=spec(iid, team, [nic("eth0", team, peer_netns=ns, peer_name="eth0")]), wait_ready=True),
                    timeout=60)
                took.append(time.perf_counter() - t0)
                assert r.changed and r.instance.ready, r.instance
                inst[(team, i)] = (ns, r.instance)
        print(f"PrepareInstance to ready over gRPC (agent process): p50 {statistics.median(took) * 1e3:.1f} ms, "
              f"max {max(took) * 1e3:.1f} ms over {len(took)}")
        for (team, i), (ns, it) in inst.items():
            port = it.nics[0].port
            assert env.dataset(it.names.dataset, "origin", "mounted", "devcloud:owner") == {
                "origin": f"{env.parent}/images/img@base", "mounted": "yes", "devcloud:owner": "devcloud-agent"}
            assert env.link("eth0", ns)["address"] == port.mac
            assert f"{port.ip4}/24" in env.tools.addrs("eth0", ns)
            iface = env.ovs_iface(port.host_netdev)
            assert iface["external_ids"]["iface-id"] == port.iface_id and iface["external_ids"]["ovn-installed"] == "true"
            assert env.lsp(port.iface_id)["up"] is True
            with open(it.names.scope + "/cgroup.procs") as f:
                assert f.read() == ""
        for a, b in itertools.permutations(inst, 2):
            same = a[0] == b[0]
            ok = env.tools.ping_eventually(inst[a][0], inst[b][1].nics[0].port.ip4, attempts=10 if same else 2)
            assert ok == same, f"ping {a} -> {b}: {'ok' if ok else 'failed'}, expected {'ok' if same else 'blocked'}"
        r = s.ReleaseInstances(ipb.ReleaseInstancesRequest(team=teams[0]), timeout=120)
        assert sorted(x.id for x in r.results if x.released) == [f"{teams[0]}-{i}" for i in range(3)]
        for i in range(3):
            assert s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=f"{teams[1]}-{i}"), timeout=60).released
        for key, (_, it) in inst.items():
            assert not any(env.present(it.names).values()), (key, env.present(it.names))
        assert env.owned_leftovers() == []
        assert s.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True), timeout=60).objects == []
        for t in teams:
            assert foreign_intact(env, foreign[t]) == [], t
    finally:
        s.ReleaseInstances(ipb.ReleaseInstancesRequest(ids=[f"{t}-{i}" for t in teams for i in range(3)]),
                           timeout=120)
        for t in teams:
            remove_foreign(env, foreign[t])
