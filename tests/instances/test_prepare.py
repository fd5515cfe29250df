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


def _err(e) -> tuple[grpc.StatusCode, str, dict]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    st = rpc_status.from_call(e.value)
    meta = {}
    for d in st.details if st else []:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            meta = dict(info.metadata)
    return e.value.code(), error_reason(e.value), meta


def test_incompatible_and_mutable_changes(instance_agent):
    agent, env = instance_agent
    ta, tb = list(env.teams)
    s = stub(agent.channel)
    iid = _id()
    base = spec(iid, ta, [nic("eth0", ta)])
    r = s.PrepareInstance(ipb.PrepareInstanceRequest(spec=base), timeout=60)
    try:
        for changed in (spec(iid, tb, [nic("eth0", ta)]),                      # team
                        spec(iid, ta, [nic("eth0", tb)]),                      # NIC network
                        spec(iid, ta, [nic("eth0", ta), nic("eth1", ta)]),     # NICs
                        spec(iid, ta, [nic("eth0", ta, ip4="10.81.0.200")]),   # address
                        spec(iid, ta, [nic("eth0", ta)], image="other")):      # image
            with pytest.raises(grpc.RpcError) as e:
                s.PrepareInstance(ipb.PrepareInstanceRequest(spec=changed), timeout=60)
            code, reason, _ = _err(e)
            assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "INSTANCE_SPEC_MISMATCH"), e.value.details()
        # the allocated address given explicitly is the same spec as far as the network is concerned
        ip = r.instance.nics[0].port.ip4
        pinned = spec(iid, ta, [nic("eth0", ta, ip4=ip)])
        assert s.PrepareInstance(ipb.PrepareInstanceRequest(spec=pinned), timeout=60).instance.nics[0].port.ip4 == ip
        # mutable: refquota and a memory/pids limit converge (changed), recorded (generation+1)
        grown = spec(iid, ta, [nic("eth0", ta, ip4=ip)], refquota=128 * MiB)
        from tests.support.cgroup import cgroup_controllers_available
        from agent.drivers import procfs
        pids = "pids" in cgroup_controllers_available(procfs.cgroup2_mount())
        if pids:                 # limits only where the controller is cgroup v2 (the node tier has it)
            grown.limits.pids.max = "100"
        r2 = s.PrepareInstance(ipb.PrepareInstanceRequest(spec=grown), timeout=60)
        assert r2.changed and r2.instance.generation == r.instance.generation + 2
        assert env.dataset(r.instance.names.dataset, "refquota") == {"refquota": str(128 * MiB)}
        if pids:
            assert open(os.path.join(r.instance.names.scope, "pids.max")).read().strip() == "100"
        assert s.PrepareInstance(ipb.PrepareInstanceRequest(spec=grown), timeout=60).changed is False
        # nothing leaked by the refused calls
        assert [i.id for i in s.ListInstances(ipb.ListInstancesRequest(), timeout=30).instances].count(iid) == 1
    finally:
        s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)


def test_vm_prepared_with_a_tap_and_a_disk(instance_agent):
    """A VM: a multiqueue tap and a disk: a zvol where the node has them, a sparse raw disk file on a
    filesystem volume where it has none (zfs-fuse); refused (NODE_CANNOT_HOST) without KVM."""
    agent, env = instance_agent
    team = next(iter(env.teams))
    vm = ipb.InstanceSpec(id=_id("vm"), team=team, kind=ipb.INSTANCE_KIND_VM,
                          root=ipb.RootVolumeSpec(size_bytes=64 * MiB), nics=[nic("eth0", team, queues=2)])
    s = stub(agent.channel)
    if not os.path.exists("/dev/kvm") or not os.path.exists("/dev/net/tun"):
        with pytest.raises(grpc.RpcError) as e:
            s.PrepareInstance(ipb.PrepareInstanceRequest(spec=vm), timeout=60)
        code, reason, meta = _err(e)
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NODE_CANNOT_HOST")
        assert "kvm.device" in meta["missing"] or "dev.tun" in meta["missing"]
        assert not env.dataset(f"{env.parent}/instances/{team}/{vm.id}")
        return
    try:
        inst = s.PrepareInstance(ipb.PrepareInstanceRequest(spec=vm), timeout=60).instance
        rt = inst.runtime
        tap = inst.names.nics[0].host_netdev
        link = env.link(tap)
        assert link is not None and link["linkinfo"]["info_kind"] == "tun" and rt.nics[0].netdev == tap
        assert rt.nics[0].queues == 2 and rt.nics[0].mac == inst.nics[0].port.mac and rt.nics[0].dhcp
        assert rt.nics[0].ip4 == inst.nics[0].port.ip4 + "/24" and rt.nics[0].gateway4 == "10.81.0.1"
        if env.pool.flavor == "zfs-fuse":
            assert rt.storage.disk_is_file and rt.storage.disk == f"{inst.volume.mountpoint}/disk.raw"
            assert os.path.getsize(rt.storage.disk) == 64 * MiB and inst.volume.kind == 4       # DISK_FILE
        else:
            assert rt.storage.disk == f"/dev/zvol/{inst.names.dataset}" and not rt.storage.disk_is_file
        assert rt.compute.payload_cgroup == rt.compute.cgroup + "/payload"
    finally:
        s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=vm.id), timeout=60)
    assert not env.dataset(inst.names.dataset) and env.link(tap) is None


def test_kubernetes_node_preflight_lists_missing(instance_agent):
    from agent.drivers.kernel import KernelDriver
    from agent.drivers.kvm import KvmDriver
    from agent.services.host import HostService, Profile
    agent, env = instance_agent
    team = next(iter(env.teams))
    missing = [c.id for c in HostService(KvmDriver(), KernelDriver(), lambda: env.cgroup_root)
               .preflight(Profile.KUBERNETES_IN_LXD).checks if c.status == "missing"]
    s = stub(agent.channel)
    iid = _id("k")
    req = ipb.PrepareInstanceRequest(spec=spec(iid, team, [nic("eth0", team)], kubernetes_node=True))
    if not missing:
        pytest.skip("this host passes the Kubernetes-in-LXD preflight; the refusal cannot be shown here")
    with pytest.raises(grpc.RpcError) as e:
        s.PrepareInstance(req, timeout=60)
    code, reason, meta = _err(e)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NODE_CANNOT_HOST")
    assert set(meta["missing"].split(",")) == set(missing)
    assert iid not in [i.id for i in s.ListInstances(ipb.ListInstancesRequest(), timeout=30).instances]


@pytest.mark.parametrize("broken", ["network", "storage", "compute"])
def test_failure_rolls_back_and_names_the_part(instance_agent, broken):
    agent, env = instance_agent
    ta = next(iter(env.teams))
    s = stub(agent.channel)
    iid = _id("f")
    nics = [nic("eth0", ta), nic("eth1", "nosuchnet" if broken == "network" else ta)]
    bad = spec(iid, "noslice" if broken == "compute" else ta, nics, image="noimage" if broken == "storage" else "img")
    if broken == "compute":      # a team without a slice: storage and network succeed, then are rolled back
        from agent._proto.devcloud.agent.v1 import network_pb2, network_pb2_grpc
        network_pb2_grpc.NetworkServiceStub(agent.channel).EnsureNetwork(network_pb2.EnsureNetworkRequest(
            spec=network_pb2.NetworkSpec(name="noslice", subnet4="10.89.0.0/24")), timeout=30)
        env.teams["noslice"] = "10.89.0.0/24"
        bad = spec(iid, "noslice", [nic("eth0", "noslice")])
    with pytest.raises(grpc.RpcError) as e:
        s.PrepareInstance(ipb.PrepareInstanceRequest(spec=bad), timeout=60)
    code, reason, meta = _err(e)
    assert meta.get("part") == broken and e.value.details().startswith(broken), (code, reason, e.value.details())
    assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
    assert env.owned_leftovers() == [] or not [x for x in env.owned_leftovers() if iid in x], env.owned_leftovers()
    names = s.ListInstances(ipb.ListInstancesRequest(), timeout=30).instances
    assert iid not in [i.id for i in names]
    team = bad.team
    assert not env.dataset(f"{env.parent}/instances/{team}/{iid}")
    assert not os.path.isdir(os.path.join(env.cgroup_root, f"{team}.slice", f"{iid}.scope"))
    assert not env.tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-instance={iid}")
    assert not env.tools.ovs_rows("Interface", f"external_ids:devcloud-instance={iid}")


def test_edge_validation_names_fields(instance_agent):
    agent, env = instance_agent
    s = stub(agent.channel)
    bad = ipb.InstanceSpec(id="Bad_ID", team="t", root=ipb.RootVolumeSpec(image_id="img", size_bytes=5),
                           nics=[nic("eth0", "n", ip4="300.1.1.1"), nic("eth0", "n", queues=2)])
    bad.limits.memory.max = "lots"
    with pytest.raises(grpc.RpcError) as e:
        s.PrepareInstance(ipb.PrepareInstanceRequest(spec=bad), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    fields = set()
    for d in rpc_status.from_call(e.value).details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            fields |= {v.field for v in br.field_violations}
    assert {"spec.id", "spec.root.size_bytes", "spec.nics[0].ip4", "spec.nics[1].name", "spec.nics[1].queues",
            "spec.limits.memory.max"} <= fields, fields
