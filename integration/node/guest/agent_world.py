"""What the node-tier tests build THROUGH the agent (gRPC over its unix socket),
shared by the agent-service suites: an image with clones and a zvol on
OpenZFS, a team slice + instance scope holding a live process, and two OVN
teams x two instances on the OVS kernel datapath. Built once per guest
session (conftest.py), torn down through the agent with a tool-level
fallback, so the stop/restart tests can check that all of it survives.
"""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import time

import grpc
from dataclasses import dataclass

from agent._proto.devcloud.agent.v1 import compute_pb2 as cpb
from agent._proto.devcloud.agent.v1 import compute_pb2_grpc
from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2 as spb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc

from agent_unit import RPC, AgentUnit, run, vsctl_rows

MiB = 1 << 20
CHUNK = 256 * 1024


# -------------------------------------------------------------------- storage

def rootfs_tarball() -> bytes:
    """A small root filesystem exercising what the unit's hardening could block:
    a setuid binary (RestrictSUIDSGID), foreign owners (CAP_CHOWN), a device
    node (CAP_MKNOD + DeviceAllow=... m), links, a sticky dir, incompressible data."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, **kw):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, 1_700_000_000
            for k, v in kw.items():
                setattr(ti, k, v)
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        for d, mode in (("etc", 0o755), ("usr", 0o755), ("usr/bin", 0o755), ("dev", 0o755), ("home", 0o755),
                        ("home/dev", 0o750), ("tmp", 0o1777), ("data", 0o755)):
            add(d, tarfile.DIRTYPE, mode=mode, uid=1000 if d == "home/dev" else 0, gid=1000 if d == "home/dev" else 0)
        add("etc/os-release", data=b'ID=devcloud-test\nVERSION_ID="1"\n')
        add("usr/bin/setuid-helper", data=b"#!/bin/sh\necho helper\n", mode=0o4755)
        add("usr/bin/setgid-helper", data=b"#!/bin/sh\necho helper\n", mode=0o2755, gid=5)
        add("usr/bin/hard-helper", tarfile.LNKTYPE, linkname="usr/bin/setuid-helper", mode=0o4755)
        add("bin", tarfile.SYMTYPE, linkname="usr/bin", mode=0o777)
        add("usr/bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox", mode=0o777)
        add("home/dev/notes.txt", data=b"dev's notes\n", mode=0o640, uid=1000, gid=1000)
        add("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        add("data/blob.bin", data=os.urandom(2 * MiB))
    return buf.getvalue()


class StorageWorld:
    """An image, three ROOT clones with a refquota and a zvol, all of team st<u>."""

    def __init__(self, u: str) -> None:
        self.team, self.image_id = f"st{u}", f"img-{u}"
        self.tarball = rootfs_tarball()
        self.sha256 = hashlib.sha256(self.tarball).hexdigest()
        self.image: spb.Image | None = None
        self.import_s = 0.0
        self.specs: dict[str, spb.VolumeSpec] = {}
        self.volumes: dict[str, spb.Volume] = {}     # ROOT clones, as EnsureVolume answered
        self.zvol: spb.Volume | None = None


def ensure_image(stub, image_id: str, tarball: bytes) -> tuple[list, spb.EnsureImageResult]:
    """Stream `tarball` as EnsureImage chunks; (progress messages, result)."""
    sha = hashlib.sha256(tarball).hexdigest()

    def requests():
        yield spb.EnsureImageRequest(header=spb.ImageHeader(image_id=image_id, sha256=sha, size_bytes=len(tarball)))
        for i in range(0, len(tarball), CHUNK):
            yield spb.EnsureImageRequest(chunk=tarball[i:i + CHUNK])
    progress, result = [], None
    for msg in stub.EnsureImage(requests(), timeout=RPC):
        if msg.HasField("result"):
            result = msg.result
        else:
            progress.append(msg.progress)
    assert result is not None, "EnsureImage ended without a result"
    return progress, result


def build_storage(agent: AgentUnit, world: StorageWorld) -> None:
    stub = agent.stub(storage_pb2_grpc)
    t = time.monotonic()
    _, res = ensure_image(stub, world.image_id, world.tarball)
    world.image, world.import_s = res.image, time.monotonic() - t
    for i in range(3):
        spec = spb.VolumeSpec(team=world.team, name=f"c{i}", kind=spb.VOLUME_KIND_ROOT, image_id=world.image_id,
                              instance=f"inst{i}", refquota_bytes=256 * MiB)
        world.specs[spec.name] = spec
        world.volumes[spec.name] = stub.EnsureVolume(spb.EnsureVolumeRequest(spec=spec), timeout=RPC).volume
    spec = spb.VolumeSpec(team=world.team, name="disk0", kind=spb.VOLUME_KIND_BLOCK, instance="vm0", size_bytes=64 * MiB)
    world.specs[spec.name] = spec
    world.zvol = stub.EnsureVolume(spb.EnsureVolumeRequest(spec=spec), timeout=RPC).volume


def teardown_storage(agent: AgentUnit, world: StorageWorld) -> None:
    """Through the agent; the pool's destruction (conftest) removes any remainder."""
    try:
        stub = agent.stub(storage_pb2_grpc)
        stub.DeleteVolumes(spb.DeleteVolumesRequest(team=world.team, all=True), timeout=RPC)
        stub.DeleteImage(spb.DeleteImageRequest(image_id=world.image_id), timeout=RPC)
    except Exception as exc:   # the agent may be the thing that failed; zpool destroy follows
        print(f"storage teardown through the agent failed: {exc!r}")


# -------------------------------------------------------------------- compute

class ComputeWorld:
    """Team slice ct<u> with an instance scope holding one live process of ours."""

    def __init__(self, u: str) -> None:
        self.team, self.instance = f"ct{u}", f"inst-{u}"
        self.slice_limits = cpb.Limits(memory=cpb.MemoryLimits(max=str(512 * MiB)), pids=cpb.PidsLimits(max="200"))
        self.limits = cpb.Limits(cpu=cpb.CpuLimits(quota_us="50000", period_us=100000),
                                 memory=cpb.MemoryLimits(max=str(256 * MiB)), pids=cpb.PidsLimits(max="64"))
        self.slice: cpb.Cgroup | None = None
        self.scope: cpb.Cgroup | None = None
        self.proc: subprocess.Popen | None = None


def build_compute(agent: AgentUnit, world: ComputeWorld) -> None:
    stub = agent.stub(compute_pb2_grpc)
    world.slice = stub.EnsureSlice(cpb.EnsureSliceRequest(team=world.team, limits=world.slice_limits),
                                   timeout=RPC).slice
    world.scope = stub.EnsureScope(cpb.EnsureScopeRequest(team=world.team, instance_id=world.instance,
                                                          limits=world.limits), timeout=RPC).scope
    # a workload process of OURS (killed by PID in teardown), moved into the scope by the agent
    world.proc = subprocess.Popen(["sleep", "100000"], start_new_session=True)
    stub.AttachProcesses(cpb.AttachProcessesRequest(team=world.team, instance_id=world.instance,
                                                    pids=[world.proc.pid]), timeout=RPC)


def teardown_compute(agent: AgentUnit, world: ComputeWorld) -> None:
    if world.proc is not None:
        world.proc.kill()
        world.proc.wait()
    try:
        agent.stub(compute_pb2_grpc).DeleteSlice(cpb.DeleteSliceRequest(team=world.team, kill=True), timeout=RPC)
    except Exception as exc:
        print(f"compute teardown through the agent failed: {exc!r}; removing the cgroups directly")
        for path in (world.scope.path if world.scope else "", world.slice.path if world.slice else ""):
            if path and os.path.isdir(path):
                os.rmdir(path)


# -------------------------------------------------------------------- network

@dataclass
class Instance:
    team: str
    index: int
    netns: str
    spec: npb.PortSpec
    port: npb.Port
    ensure_s: float


CHASSIS_KEYS = ("ovn-remote", "ovn-encap-type", "ovn-encap-ip", "ovn-bridge-datapath-type", "devcloud-owner")


class NetworkWorld:
    """Chassis + br-int (kernel datapath), teams ka<u>/kb<u> x two instances (a netns
    each, veth NICs), and one tap NIC (VM) in team ka<u>."""

    def __init__(self, u: str) -> None:
        self.u = u
        self.teams = {f"ka{u}": "10.81.0.0/24", f"kb{u}": "10.82.0.0/24"}
        self.chassis: npb.Chassis | None = None
        self.system_id = ""
        self.chassis_s = 0.0
        self.added_external_ids: list[str] = []
        self.bridge_existed = True
        self.instances: list[Instance] = []
        self.netns: list[str] = []
        self.tap_spec: npb.PortSpec | None = None
        self.tap: npb.Port | None = None
        self.default_id_refused: grpc.RpcError | None = None


def build_network(agent: AgentUnit, world: NetworkWorld, sb_remote: str) -> None:
    stub = agent.stub(network_pb2_grpc)
    root = vsctl_rows("Open_vSwitch")[0]
    # Debian's openvswitch-switch sets a random system-id on first start
    # (/etc/openvswitch/system-id.conf); the agent never overrides another
    # tool's value, so the controller passes the one the node has.
    world.system_id = root["external_ids"].get("system-id", "") or agent.node
    world.added_external_ids = [k for k in CHASSIS_KEYS if k not in root["external_ids"]]
    world.bridge_existed = bool(vsctl_rows("Bridge", "name=br-int"))
    # system_id "" means the node name, which differs from the Debian one: refused, nothing changed
    try:
        stub.EnsureChassis(npb.EnsureChassisRequest(spec=npb.ChassisSpec(
            ovn_remote=sb_remote, encap_ip="127.0.0.1", bridge_datapath_type="system")), timeout=RPC)
    except grpc.RpcError as exc:
        world.default_id_refused = exc
    t = time.monotonic()
    world.chassis = stub.EnsureChassis(npb.EnsureChassisRequest(spec=npb.ChassisSpec(
        system_id=world.system_id, ovn_remote=sb_remote, encap_type="geneve", encap_ip="127.0.0.1",
        bridge_datapath_type="system", bridge="br-int")), timeout=RPC).chassis
    world.chassis_s = time.monotonic() - t
    for team, subnet in world.teams.items():
        stub.EnsureNetwork(npb.EnsureNetworkRequest(spec=npb.NetworkSpec(name=team, subnet4=subnet)), timeout=RPC)
    for team in world.teams:
        for i in range(2):
            ns = f"dcg{world.u}{team[1]}{i}"
            run("ip", "netns", "add", ns)
            world.netns.append(ns)
            spec = npb.PortSpec(network=team, name=f"i{i}-eth0", instance=f"i{i}", peer_netns=ns)
            t = time.monotonic()
            port = stub.EnsurePort(npb.EnsurePortRequest(spec=spec, wait_ready=True, ready_timeout_ms=170_000),
                                   timeout=RPC).port
            world.instances.append(Instance(team, i, ns, spec, port, time.monotonic() - t))
    # a VM NIC: a tap opened through /dev/net/tun (DevicePolicy=closed + DeviceAllow=char-misc)
    team_a = next(iter(world.teams))
    world.tap_spec = npb.PortSpec(network=team_a, name="vm9-nic0", instance="vm9", kind=npb.NIC_KIND_TAP)
    world.tap = stub.EnsurePort(npb.EnsurePortRequest(spec=world.tap_spec), timeout=RPC).port


def teardown_network(agent: AgentUnit, world: NetworkWorld) -> None:
    try:
        stub = agent.stub(network_pb2_grpc)
        for team in world.teams:
            stub.DeleteNetwork(npb.DeleteNetworkRequest(name=team), timeout=RPC)
    except Exception as exc:
        print(f"network teardown through the agent failed: {exc!r}; removing with the tools")
        for team in world.teams:
            run("ovn-nbctl", "--db=unix:/var/run/ovn/ovnnb_db.sock", "--if-exists", "ls-del", f"dc-{team}", check=False)
        for inst in world.instances:
            run("ovs-vsctl", "--if-exists", "del-port", inst.port.host_netdev, check=False)
        if world.tap is not None:
            run("ovs-vsctl", "--if-exists", "del-port", world.tap.host_netdev, check=False)
            run("ip", "link", "del", world.tap.host_netdev, check=False)
    for ns in world.netns:
        run("ip", "netns", "del", ns, check=False)    # takes the veth pairs with it


def teardown_chassis(world: NetworkWorld) -> None:
    """Undo EnsureChassis: our br-int and the external_ids keys that were not there before."""
    br = vsctl_rows("Bridge", "name=br-int")
    if br and not world.bridge_existed and br[0]["external_ids"].get("devcloud-owner"):
        run("ovs-vsctl", "--timeout=60", "--if-exists", "del-br", "br-int")
    for key in world.added_external_ids:
        run("ovs-vsctl", "--timeout=60", "remove", "Open_vSwitch", ".", "external_ids", key, check=False)
