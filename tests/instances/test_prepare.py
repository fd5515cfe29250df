"""PrepareInstance / ReleaseInstance over a real in-process gRPC server on the
session's real components; results checked with zfs, ip, ovs-vsctl,
ovn-nbctl and cgroupfs."""
from __future__ import annotations

import os
import secrets

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from tests.support.instances import foreign_intact, foreign_objects, nic, remove_foreign, spec, stub
from tests.support.ovn import wait_until
from tests.support.zfs import error_reason

MiB = 1 << 20


def _id(prefix: str = "i") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def test_prepare_get_release(instance_agent, netns_factory):
    agent, env = instance_agent
    team = next(iter(env.teams))
    s = stub(agent.channel)
    ns = netns_factory()
    iid = _id()
    req = ipb.PrepareInstanceRequest(spec=spec(iid, team, [nic("eth0", team, peer_netns=ns)]), wait_ready=True)
    r = s.PrepareInstance(req, timeout=60)
    inst = r.instance
    assert r.changed and inst.state == ipb.INSTANCE_STATE_PREPARED
    names = inst.names
    # observed state of every part, checked independently
    assert env.dataset(names.dataset, "origin", "refquota", "devcloud:instance") == {
        "origin": f"{env.parent}/images/img@base", "refquota": str(64 * MiB), "devcloud:instance": iid}
    assert inst.volume.mountpoint and os.path.ismount(inst.volume.mountpoint)
    n = names.nics[0]
    assert inst.nics[0].port.host_netdev == n.host_netdev and env.link(n.host_netdev) is not None
    assert env.ovs_iface(n.host_netdev)["external_ids"]["iface-id"] == n.lsp
    assert env.lsp(n.lsp)["external_ids"]["devcloud-instance"] == iid
    assert env.link("eth0", ns) is not None and n.peer_netdev == "eth0"
    assert os.path.isdir(names.scope) and names.scope == inst.scope.path
    assert inst.nics[0].port.status.ready and inst.ready
    assert {p.part for p in inst.parts} == {ipb.INSTANCE_PART_STORAGE, ipb.INSTANCE_PART_NETWORK,
                                            ipb.INSTANCE_PART_COMPUTE}
    # idempotent x3
    again = [s.PrepareInstance(req, timeout=60) for _ in range(3)]
    assert [a.changed for a in again] == [False] * 3
    assert again[-1].instance.nics[0].port.mac == inst.nics[0].port.mac
    got = s.GetInstance(ipb.GetInstanceRequest(id=iid), timeout=30).instance
    assert got.ready and got.volume.dataset == names.dataset
    assert [i.id for i in s.ListInstances(ipb.ListInstancesRequest(team=team), timeout=30).instances] == [iid]
    # release, twice
    assert s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60).released
    assert not any(env.present(names).values()), env.present(names)
    assert s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60).released is False
    with pytest.raises(grpc.RpcError) as e:
        s.GetInstance(ipb.GetInstanceRequest(id=iid), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
