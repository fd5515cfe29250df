"""GarbageCollect, bulk release, WatchInstances and per-instance locking over a
real in-process gRPC server on the session's real components. Checks with
independent tools."""
from __future__ import annotations

import secrets
import threading
import time

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from tests.support.instances import foreign_intact, foreign_objects, nic, remove_foreign, spec, stub


def _id(prefix: str = "i") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def _service(agent):
    return agent.app.planes.services.instances


def test_garbage_collect_finds_only_unknown_owned_objects(instance_agent, netns_factory):
    agent, env = instance_agent
    ta = next(iter(env.teams))
    s = stub(agent.channel)
    kept, lost = _id("keep"), _id("lost")
    foreign = {}
    try:
        for iid in (kept, lost):
            s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, ta, [nic("eth0", ta)])), timeout=60)
        foreign = foreign_objects(env, ta)
        names = s.GetInstance(ipb.GetInstanceRequest(id=lost), timeout=30).instance.names
        assert s.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True), timeout=60).objects == []
        # the record is lost (e.g. a state dir restored from an old backup): its objects are orphans
        svc = _service(agent)
        with svc.store._lock:
            svc.store._conn().execute("DELETE FROM instances WHERE id=?", (lost,))
        dry = s.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True), timeout=60).objects
        assert {o.instance for o in dry} == {lost}
        assert {(o.part, o.kind) for o in dry} >= {
            (ipb.INSTANCE_PART_STORAGE, "volume"), (ipb.INSTANCE_PART_COMPUTE, "scope"),
            (ipb.INSTANCE_PART_NETWORK, "netdev"), (ipb.INSTANCE_PART_NETWORK, "ovs-interface"),
            (ipb.INSTANCE_PART_NETWORK, "logical-port")}
        assert not any(o.removed for o in dry) and all(env.present(names).values())
        # what the controller still knows is kept
        assert s.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True, keep=[lost]), timeout=60).objects == []
        done = s.GarbageCollect(ipb.GarbageCollectRequest(), timeout=60).objects
        assert done and all(o.removed and not o.error for o in done), done
        assert not any(env.present(names).values()), env.present(names)
        assert s.GarbageCollect(ipb.GarbageCollectRequest(dry_run=True), timeout=60).objects == []
        assert s.GetInstance(ipb.GetInstanceRequest(id=kept), timeout=30).instance.ready
        assert foreign_intact(env, foreign) == []
    finally:
        s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=kept), timeout=60)
        if foreign:
            remove_foreign(env, foreign)


def test_bulk_release_of_a_team(instance_agent):
    agent, env = instance_agent
    ta, tb = list(env.teams)
    s = stub(agent.channel)
    foreign = foreign_objects(env, tb)
    ids = [_id("b") for _ in range(6)]
    other = _id("o")
    try:
        for iid in ids:
            s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, tb, [nic("eth0", tb)])), timeout=60)
        s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(other, ta, [nic("eth0", ta)])), timeout=60)
        names = {i.id: i.names for i in s.ListInstances(ipb.ListInstancesRequest(), timeout=30).instances}
        r = s.ReleaseInstances(ipb.ReleaseInstancesRequest(team=tb), timeout=120)
        assert sorted((x.id, x.released, x.code) for x in r.results) == sorted((i, True, "") for i in ids)
        for iid in ids:
            assert not any(env.present(names[iid]).values()), (iid, env.present(names[iid]))
        assert all(env.present(names[other]).values())
        r = s.ReleaseInstances(ipb.ReleaseInstancesRequest(ids=[ids[0], other]), timeout=60)
        assert [(x.id, x.released) for x in r.results] == [(ids[0], False), (other, True)]
        assert not any(env.present(names[other]).values())
        assert foreign_intact(env, foreign) == []
        with pytest.raises(grpc.RpcError) as e:
            s.ReleaseInstances(ipb.ReleaseInstancesRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        s.ReleaseInstances(ipb.ReleaseInstancesRequest(ids=ids + [other]), timeout=120)
        remove_foreign(env, foreign)


def test_watch_reports_state_and_nic_readiness(instance_agent):
    agent, env = instance_agent
    ta = next(iter(env.teams))
    s = stub(agent.channel)
    iid = _id("w")
    stream = s.WatchInstances(ipb.WatchInstancesRequest(id=iid))
    events: list = []
    done = threading.Event()

    def read():
        try:
            for ev in stream:
                events.append(ev)
                if ev.state == ipb.INSTANCE_STATE_RELEASED:
                    break
        except grpc.RpcError:
            pass
        done.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    time.sleep(0.3)                      # the stream is subscribed before the first event
    s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, ta, [nic("eth0", ta)]), wait_ready=True), timeout=60)
    s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)
    assert done.wait(30)
    stream.cancel()
    states = [e.state for e in events if not e.nic]
    assert states == [ipb.INSTANCE_STATE_PREPARING, ipb.INSTANCE_STATE_PREPARED, ipb.INSTANCE_STATE_RELEASING,
                      ipb.INSTANCE_STATE_RELEASED], events
    nic_events = [e for e in events if e.nic == "eth0"]
    assert any(e.nic_ready and e.ovn_installed and e.up for e in nic_events), events


def test_second_operation_on_an_instance_is_aborted_or_waits(instance_agent):
    agent, env = instance_agent
    ta = next(iter(env.teams))
    s = stub(agent.channel)
    iid = _id("l")
    req = ipb.PrepareInstanceRequest(spec=spec(iid, ta, [nic("eth0", ta)]))
    svc = _service(agent)
    try:
        with svc.locks.hold(iid):                    # an operation in flight on the id
            with pytest.raises(grpc.RpcError) as e:
                s.PrepareInstance(req, timeout=30)
            assert e.value.code() == grpc.StatusCode.ABORTED
            with pytest.raises(grpc.RpcError) as e:
                s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=30)
            assert e.value.code() == grpc.StatusCode.ABORTED
            waiting = ipb.PrepareInstanceRequest(spec=req.spec, wait=True)
            with pytest.raises(grpc.RpcError) as e:
                s.PrepareInstance(waiting, timeout=0.5)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            result = {}
            t = threading.Thread(target=lambda: result.update(r=s.PrepareInstance(waiting, timeout=60)))
            t.start()
            time.sleep(0.3)
        t.join(60)
        assert result["r"].changed and result["r"].instance.state == ipb.INSTANCE_STATE_PREPARED
    finally:
        s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid, wait=True), timeout=60)
