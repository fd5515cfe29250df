"""Crash safety: the agent process exits (os._exit(86), like SIGKILL) at every
step boundary of Prepare and of Release, one run per step, the steps taken
from the code (PREPARE_STEPS / RELEASE_STEPS), so a new step is covered
automatically. After a restart on the same state dir (its reconcile runs
before READY) the instance is fully gone, a GarbageCollect finds nothing,
and foreign objects next to ours are intact. Plus one interrupted converge
that is rolled forward (the instance fully there).
Checked with zfs get, ip -j, ovs-vsctl, ovn-nbctl and cgroupfs."""
from __future__ import annotations

import os
import secrets
import subprocess
import time

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent.services.instances.faults import FAULT_EXIT_CODE, PREPARE_STEPS, RELEASE_STEPS
from tests.support.instances import AgentRun, Env, foreign_intact, foreign_objects, nic, remove_foreign, spec, stub

CRASH_POINTS = [("prepare", s) for s in PREPARE_STEPS] + [("release", s) for s in RELEASE_STEPS]


@pytest.fixture(scope="module")
def crash_env(zfs_pool, ovn_stack, ovn_tools, cgroup_session_dir):
    env = Env.make(zfs_pool, ovn_stack, ovn_tools, cgroup_session_dir, tag="c")
    agent = AgentRun(env).start()
    ch = agent.channel()
    team = f"ca{secrets.token_hex(2)}"
    try:
        env.setup(ch, {team: "10.93.0.0/24"})
        ch.close()
        agent.stop()
        foreign = foreign_objects(env, team)
        yield env, team, foreign
        assert foreign_intact(env, foreign) == []
        remove_foreign(env, foreign)
    finally:
        agent = AgentRun(env).start()
        ch = agent.channel()
        env.delete_networks(ch)
        ch.close()
        agent.stop()
        env.cleanup()


def _check_gone(env: Env, agent: AgentRun, iid: str, foreign) -> None:
    assert env.owned_leftovers() == [], agent.log()[-3000:]
    with agent.channel() as ch:
        s = stub(ch)
        with pytest.raises(grpc.RpcError) as e:
            s.GetInstance(ipb.GetInstanceRequest(id=iid), timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert s.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True), timeout=60).objects == []
    assert foreign_intact(env, foreign) == []


@pytest.mark.parametrize("op, step", CRASH_POINTS, ids=[f"{o}:{s}" for o, s in CRASH_POINTS])
def test_crash_at_step(crash_env, op, step):
    env, team, foreign = crash_env
    iid = f"x{secrets.token_hex(3)}"
    req = ipb.PrepareInstanceRequest(spec=spec(iid, team, [nic("eth0", team)]))
    agent = AgentRun(env).start(fault=f"{op}:{step}")
    try:
        with agent.channel() as ch:
            s = stub(ch)
            if op == "release":
                s.PrepareInstance(req, timeout=60)
                call = lambda: s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)  # noqa: E731
            else:
                call = lambda: s.PrepareInstance(req, timeout=60)  # noqa: E731
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
        assert agent.wait_exit() == FAULT_EXIT_CODE, agent.log()[-3000:]
        assert f"fault injection: exiting at {op}:{step}" in agent.log()
        t0 = time.perf_counter()
        agent = AgentRun(env).start()                  # same state dir: reconcile before READY
        print(f"{op}:{step}: restart to READY {time.perf_counter() - t0:.2f}s")
        _check_gone(env, agent, iid, foreign)
    finally:
        agent.stop()


def test_interrupted_converge_is_rolled_forward(crash_env):
    """An existing instance whose scope vanished is converged with a new refquota; the agent
    dies once the scope dir is made again (before its limits): after the restart the
    update is completed -> the instance is fully there with the new spec."""
    env, team, foreign = crash_env
    iid = f"u{secrets.token_hex(3)}"
    agent = AgentRun(env).start()
    with agent.channel() as ch:
        names = stub(ch).PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, team, [nic("eth0", team)])),
                                         timeout=60).instance.names
    agent.stop()
    os.rmdir(names.scope)                                 # behind the agent's back
    agent = AgentRun(env).start(fault="prepare:compute.scope-created")
    with agent.channel() as ch:
        with pytest.raises(grpc.RpcError) as e:
            stub(ch).PrepareInstance(ipb.PrepareInstanceRequest(
                spec=spec(iid, team, [nic("eth0", team)], refquota=96 << 20)), timeout=60)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert agent.wait_exit() == FAULT_EXIT_CODE
    agent = AgentRun(env).start()
    try:
        with agent.channel() as ch:
            s = stub(ch)
            got = s.GetInstance(ipb.GetInstanceRequest(id=iid), timeout=30).instance
            assert got.state == ipb.INSTANCE_STATE_PREPARED and got.ready, got
            assert got.spec.root.refquota_bytes == 96 << 20
            assert env.dataset(got.names.dataset, "refquota") == {"refquota": str(96 << 20)}
            assert all(env.present(got.names).values()), env.present(got.names)
            assert s.Diff(ipb.DiffRequest(id=iid), timeout=30).instances[0].drifts == []
            assert s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60).released
        assert env.owned_leftovers() == []
        assert foreign_intact(env, foreign) == []
    finally:
        agent.stop()


def test_reconcile_that_cannot_finish_keeps_the_agent_not_ready_and_retries(crash_env):
    """A release interrupted by a crash whose dataset is then held busy (a process has its
    working directory in the instance root): the restarted agent does not call itself ready,
    Probe and GetCapabilities say which instance and why (naming the holder), mutations
    get UNAVAILABLE NOT_READY; once the holder is gone the retried reconcile finishes the
    release and the agent becomes ready. Nothing is recorded as failed on the way."""
    from agent._proto.devcloud.agent.v1 import identity_pb2, identity_pb2_grpc
    from tests.support.zfs import error_reason
    env, team, foreign = crash_env
    iid = f"b{secrets.token_hex(3)}"
    agent = AgentRun(env).start(fault="release:intent-recorded", overrides=["storage.busy_timeout=0.5"])
    holder = None
    try:
        with agent.channel() as ch:
            got = stub(ch).PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, team, [nic("eth0", team)])),
                                           timeout=60).instance
            mountpoint = env.dataset(got.names.dataset, "mountpoint")["mountpoint"]
            holder = subprocess.Popen(["sleep", "600"], cwd=mountpoint)
            with pytest.raises(grpc.RpcError):
                stub(ch).ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)
        assert agent.wait_exit() == FAULT_EXIT_CODE
        agent = AgentRun(env).start(overrides=["storage.busy_timeout=0.5"])
        with agent.channel() as ch:
            ident = identity_pb2_grpc.IdentityServiceStub(ch)
            probe = ident.Probe(identity_pb2.ProbeRequest(), timeout=10)
            assert not probe.ready and "instances: reconcile" in probe.pending, probe
            why = {p.step: p.reason for p in probe.problems}["instances: reconcile"]
            assert iid in why and f"pid {holder.pid} (sleep)" in why, why
            caps = {c.kind: c for c in ident.GetCapabilities(identity_pb2.GetCapabilitiesRequest(), timeout=10)
                    .capabilities}
            inst_cap = caps[identity_pb2.CAPABILITY_KIND_INSTANCES]
            assert not inst_cap.available and "instances: reconcile" in inst_cap.reason, inst_cap
            with pytest.raises(grpc.RpcError) as e:
                stub(ch).PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(f"n{iid}", team)), timeout=30)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and error_reason(e.value) == "NOT_READY"
            rec = stub(ch).ListInstances(ipb.ListInstancesRequest(), timeout=10).instances
            assert [(i.id, i.state) for i in rec if i.id == iid] == [(iid, ipb.INSTANCE_STATE_RELEASING)]
            assert env.dataset(got.names.dataset), "the busy dataset is still there"
            holder.kill()
            holder.wait()
            holder = None
            deadline = time.monotonic() + 120
            while not ident.Probe(identity_pb2.ProbeRequest(), timeout=10).ready:
                assert time.monotonic() < deadline, "the retried reconcile never finished"
                time.sleep(0.2)
        _check_gone(env, agent, iid, foreign)
        assert "unfinished" in agent.log()
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        agent.stop()
