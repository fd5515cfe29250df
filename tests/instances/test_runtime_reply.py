"""The runtime part of PrepareInstance/GetInstance (issue 14) on the session's real
components: where each NIC's runtime-side netdev is put and said to be (ip -j),
the DHCP options (ovn-nbctl), the cgroup placement, the uid/gid map's checks,
validation field paths, and the drift event of a netdev deleted behind the
agent's back."""
from __future__ import annotations

import os
import secrets
import subprocess
import threading

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import storage_pb2 as spb
from agent.model.idmap import IdMap
from agent.services.instances.model import InstanceSpec, NicSpec, RootSpec
from agent.services.instances.records import incompatible, spec_from_dict, spec_to_dict
from tests.support.instances import nic, spec, stub
from tests.support.ovn import wait_until

MAP = spb.IdMap(host_uid=100000, host_gid=100000, count=65536)


def _id(prefix: str = "r") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def _err(e) -> tuple[grpc.StatusCode, str, dict]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    st = rpc_status.from_call(e.value)
    for d in st.details if st else []:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return e.value.code(), info.reason, dict(info.metadata)
    return e.value.code(), "", {}


def test_runtime_reply_per_placement(instance_agent, netns_factory):
    agent, env = instance_agent
    team = next(iter(env.teams))
    s = stub(agent.channel)
    ns = netns_factory()
    ids = {p: _id() for p in ("agent", "host", "netns")}
    nics = {"agent": nic("eth0", team, peer_placement=ipb.PEER_PLACEMENT_AGENT_NETNS),
            "host": nic("eth0", team, peer_placement=ipb.PEER_PLACEMENT_HOST_NETNS),
            "netns": nic("eth0", team, peer_netns=ns)}
    got = {}
    try:
        for p, iid in ids.items():
            got[p] = s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, team, [nics[p]]), wait_ready=True),
                                       timeout=60).instance
        for p, inst in got.items():
            rt, names = inst.runtime, inst.names
            n = rt.nics[0]
            port = inst.nics[0].port
            assert (n.name, n.mac, n.mtu, n.kind) == ("eth0", port.mac, port.mtu, 1)   # NIC_KIND_VETH
            assert n.ip4 == f"{port.ip4}/24" and n.gateway4 == "10.81.0.1" and n.dhcp
            assert n.host_netdev == names.nics[0].host_netdev and n.netdev == names.nics[0].peer_netdev
            assert rt.storage.rootfs == inst.volume.mountpoint and not rt.storage.disk
            assert rt.compute.cgroup_path == names.scope and rt.compute.payload_cgroup == f"{rt.compute.cgroup}/payload"
            assert names.scope.endswith("/" + rt.compute.cgroup) and rt.compute.monitor_cgroup.endswith("/monitor")
            assert not inst.runtime.HasField("idmap")
        a, h, x = (got[p].runtime.nics[0] for p in ("agent", "host", "netns"))
        assert a.placement == ipb.PEER_PLACEMENT_AGENT_NETNS and a.netns == f"/run/netns/{env.stack.netns}"
        assert not a.host_netns and env.link(a.netdev)["address"] == a.mac        # beside the host end
        assert h.placement == ipb.PEER_PLACEMENT_HOST_NETNS and h.host_netns and not h.configured
        assert env.tools.link(h.netdev)["address"] == h.mac and env.link(h.netdev) is None   # in the host's netns
        assert h.netdev.startswith(env.prefix) and len(h.netdev) <= 15
        assert x.placement == ipb.PEER_PLACEMENT_NETNS and x.configured and x.netns == f"/run/netns/{ns}"
        assert x.netdev == "eth0" and x.ip4 in env.tools.addrs("eth0", ns)
        # the network's DHCP announces the router (its gateway), as the reply says
        rows = env.tools.nb_rows("DHCP_Options", f"external_ids:devcloud-network={team}")
        assert rows and rows[0]["options"]["router"] == a.gateway4 == "10.81.0.1"
        # GetInstance says the same
        assert s.GetInstance(ipb.GetInstanceRequest(id=ids["host"]), timeout=30).instance.runtime == got["host"].runtime
        # placement is mutable: AGENT -> HOST moves the instance end into the host's netns
        moved = spec(ids["agent"], team, [nic("eth0", team, peer_placement=ipb.PEER_PLACEMENT_HOST_NETNS)])
        m = s.PrepareInstance(ipb.PrepareInstanceRequest(spec=moved), timeout=60).instance.runtime.nics[0]
        assert m.host_netns and env.tools.link(m.netdev) is not None and env.link(a.netdev) is None
    finally:
        for iid in ids.values():
            s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)
    assert env.tools.link(h.netdev) is None and env.tools.link(m.netdev) is None   # went with their veths


@pytest.mark.parametrize("case,field", [
    ("netns-placement-without-netns", "spec.nics[0].peer_netns"),
    ("netns-with-host-placement", "spec.nics[0].peer_netns"),
    ("peer-name-beside", "spec.nics[0].peer_name"),
    ("vm-placement", "spec.nics[0].peer_placement"),
    ("vm-idmap", "spec.idmap"),
    ("idmap-root", "spec.idmap.host_uid"),
    ("idmap-count", "spec.idmap.count")])
def test_invalid_runtime_fields_name_their_path(instance_agent, case, field):
    agent, env = instance_agent
    team = next(iter(env.teams))
    vm = case.startswith("vm")
    n = ipb.NicSpec(name="eth0", network=team)
    kw = {}
    if case == "netns-placement-without-netns":
        n.peer_placement = ipb.PEER_PLACEMENT_NETNS
    elif case == "netns-with-host-placement":
        n.peer_placement, n.peer_netns = ipb.PEER_PLACEMENT_HOST_NETNS, "somens"
    elif case == "peer-name-beside":
        n.peer_name = "eth7"
    elif case == "vm-placement":
        n.peer_placement = ipb.PEER_PLACEMENT_HOST_NETNS
    elif case == "vm-idmap":
        kw["idmap"] = MAP
    elif case == "idmap-root":
        kw["idmap"] = spb.IdMap(host_uid=0, host_gid=100000, count=65536)
    else:
        kw["idmap"] = spb.IdMap(host_uid=100000, host_gid=100000, count=0)
    if vm:
        sp = ipb.InstanceSpec(id=_id("v"), team=team, kind=ipb.INSTANCE_KIND_VM,
                              root=ipb.RootVolumeSpec(size_bytes=16 << 20), nics=[n], **kw)
    else:
        sp = spec(_id(), team, [n], **kw)
    with pytest.raises(grpc.RpcError) as e:
        stub(agent.channel).PrepareInstance(ipb.PrepareInstanceRequest(spec=sp), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details(), e.value.details()


def test_unprivileged_root_must_be_reachable_by_its_root(instance_agent):
    """The session pool lives below pytest's 0700 base directory: an unprivileged root (host uid
    100000) could not reach its rootfs there, so the prepare is refused with the directory named
    and rolled back; where it can, the root is shifted (zfs-fuse) or marked for an idmapped mount."""
    agent, env = instance_agent
    team = next(iter(env.teams))
    s = stub(agent.channel)
    iid = _id("u")
    req = ipb.PrepareInstanceRequest(spec=spec(iid, team, [], idmap=MAP))
    try:
        inst = s.PrepareInstance(req, timeout=60).instance
    except grpc.RpcError as e:
        code, reason, meta = _err(type("E", (), {"value": e})())
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ROOTFS_NOT_TRAVERSABLE")
        assert os.stat(meta["dir"]).st_mode & 0o001 == 0 and meta["dir"] in e.details()
        assert iid not in [i.id for i in s.ListInstances(ipb.ListInstancesRequest(), timeout=30).instances]
        assert not env.dataset(f"{env.parent}/instances/{team}/{iid}")
        return
    try:
        assert inst.runtime.idmap == MAP and inst.runtime.storage.idmap_mode in (spb.IDMAP_MODE_SHIFTED,
                                                                                 spb.IDMAP_MODE_MOUNT)
        if inst.runtime.storage.idmap_mode == spb.IDMAP_MODE_SHIFTED:
            assert os.stat(inst.runtime.storage.rootfs).st_uid == 100000
        with pytest.raises(grpc.RpcError) as e:               # the map is immutable
            s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, team, [])), timeout=60)
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "spec.idmap" in e.value.details()
    finally:
        s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)


def test_idmap_in_records_is_immutable_and_old_records_read_back():
    base = InstanceSpec(id="i1", team="t", root=RootSpec(image_id="img"), nics=(NicSpec("eth0", "n"),))
    with_map = InstanceSpec(id="i1", team="t", root=RootSpec(image_id="img"), nics=(NicSpec("eth0", "n"),),
                            idmap=IdMap(100000, 100000, 65536))
    assert spec_from_dict(spec_to_dict(with_map)) == with_map
    assert "idmap" not in spec_to_dict(base) and "peer_placement" not in spec_to_dict(base)["nics"][0]
    assert [b.split(":")[0] for b in incompatible(base, with_map, {})] == ["spec.idmap"]
    placed = InstanceSpec(id="i1", team="t", root=RootSpec(image_id="img"),
                          nics=(NicSpec("eth0", "n", peer_placement="host"),))
    assert incompatible(base, placed, {}) == []                 # placement is mutable


def test_a_vanished_netdev_is_a_drift_event(instance_agent):
    agent, env = instance_agent
    team = next(iter(env.teams))
    s = stub(agent.channel)
    iid = _id("d")
    inst = s.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec(iid, team, [nic("eth0", team)])),
                             timeout=60).instance
    host = inst.names.nics[0].host_netdev
    events: list = []
    stream = s.WatchInstances(ipb.WatchInstancesRequest(id=iid), timeout=30)
    t = threading.Thread(target=lambda: [events.append(e) for e in _safe(stream)], daemon=True)
    t.start()
    try:
        assert wait_until(lambda: any(e.snapshot for e in events), 30)       # subscribed (netdev monitor too)
        subprocess.run(["ip", "-n", env.stack.netns, "link", "del", host], check=True)    # behind the agent's back
        assert wait_until(lambda: [e for e in events if e.drifts], 10), events
        d = next(e for e in events if e.drifts).drifts[0]
        assert (d.part, d.reason, d.object, d.repairable) == ("network:eth0", "VETH_MISSING", host, True)
        n_drift = len([e for e in events if e.drifts])
        s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)     # the agent's own deletes: no drift
        assert wait_until(lambda: any(e.state == ipb.INSTANCE_STATE_RELEASED for e in events), 10)
        assert len([e for e in events if e.drifts]) == n_drift
    finally:
        stream.cancel()
        s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)


def _safe(stream):
    try:
        yield from stream
    except grpc.RpcError:
        return
