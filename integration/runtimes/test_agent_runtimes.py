"""Real runtimes on what the agent prepares (issue 14), the agent as a process on
the session's OVN stack, a zfs-fuse pool of this module's own (its mountpoint
under /var/tmp: every directory on the way is o+x, as an unprivileged root
needs) and a cgroup subtree of the session's.

Every LXC config and QEMU command line comes from `devcloudctl instance
lxc-config` / `qemu-args` and is used verbatim (agent_lxc.py). Checked with
independent tools: busybox udhcpc and ping inside the instances, ip -j, zfs get,
cgroupfs, ovs-vsctl/ovn-nbctl (tests/support Env.owned_leftovers).

Module order matters: test_1 starts three containers in two teams and leaves
them running, test_2 boots a VM that pings one of them, test_3 stops and
releases and checks nothing is left. Timings are printed, never asserted.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import compute_pb2, compute_pb2_grpc
from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc as ipb_grpc
from agent._proto.devcloud.agent.v1 import network_pb2, network_pb2_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2 as spb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc as spb_grpc
from integration.runtimes import common, images, lxc, qemu
from integration.runtimes.agent_lxc import AgentContainer, AgentVm, ctl
from integration.runtimes.common import Netns, Unavailable, unique
from tests.support.instances import Env
from tests.support.server import AgentProcess
from tests.support.zfs import SessionPool

NUMBERS: list[str] = []
MAP = spb.IdMap(host_uid=100000, host_gid=100000, count=65536)
INIT = "/sbin/devcloud-init"                       # the fixture rootfs's init (exits on SIGTERM)


def report(line: str) -> None:
    NUMBERS.append(line)
    print(f"\n[agent-runtimes] {line}")


def require(fn, *args):
    try:
        return fn(*args)
    except Unavailable as exc:
        pytest.skip(str(exc))


@dataclass
class Rt:
    """The module's agent and what the tests share."""

    env: Env
    agent: AgentProcess
    channel: grpc.Channel
    work: Path
    teams: dict[str, str]                          # "a"/"b" -> team name
    subnets: dict[str, str]
    dns: dict[str, str]
    containers: dict[str, AgentContainer] = field(default_factory=dict)
    instances: dict[str, ipb.Instance] = field(default_factory=dict)
    netns: list[Netns] = field(default_factory=list)

    @property
    def socket(self) -> str:
        return self.agent.socket

    def stub(self) -> ipb_grpc.InstanceServiceStub:
        return ipb_grpc.InstanceServiceStub(self.channel)


@pytest.fixture(scope="module", autouse=True)
def _print_numbers():
    yield
    if NUMBERS:
        print("\n[agent-runtimes] ---- numbers ----\n" + "\n".join(f"[agent-runtimes] {n}" for n in NUMBERS))


def _pool(name: str, mnt: str, img: Path):
    from agent.drivers.embedded import zfs_fuse
    from agent.drivers.zfs.cli import ZfsCommand
    from agent.metrics import Metrics
    cmd = ZfsCommand(Metrics())
    zfs_fuse.ensure_file_pool(cmd, name, img, size=3 << 30, mountpoint=mnt, cachefile=False)
    return cmd


@pytest.fixture(scope="module")
def rt(ovn_stack, ovn_tools, cgroup_session_dir):
    require(lxc.available)
    require(images.busybox_binary)
    from agent.drivers import zfs as zfsdrv
    from agent.drivers.embedded import zfs_fuse
    flavor, why = zfsdrv.detect_flavor()
    if not flavor:
        pytest.skip(why)
    state = Path(tempfile.mkdtemp(prefix="rtfx-agent-", dir="/var/tmp"))
    os.chmod(state, 0o711)
    daemon = lease = None
    if flavor == "zfs-fuse":
        daemon, lease = zfs_fuse.ensure_running(state / "zfs-fuse")
    name = unique()
    mnt, img = f"/var/tmp/{name}-mnt", state / f"{name}.img"
    cmd = _pool(name, mnt, img)
    os.chmod(mnt, 0o755)
    tag = secrets.token_hex(2)
    env = Env(pool=SessionPool(name, mnt, img, flavor), stack=ovn_stack, tools=ovn_tools, parent=f"{name}/dc",
              cgroup_root=os.path.join(cgroup_session_dir, f"rt{tag}"), node=f"rt-node-{tag}",
              prefix=f"r{secrets.token_hex(1)}", tmp=state / "agent")
    agent = AgentProcess(env.tmp, env.overrides() + ["storage.busy_timeout=30"]).start()
    ch = agent.channel()
    teams = {"a": f"ta{tag}", "b": f"tb{tag}"}
    subnets = {"a": "10.93.0.0/24", "b": "10.94.0.0/24"}
    dns = {"a": "10.93.0.53", "b": "10.94.0.53"}
    r = Rt(env, agent, ch, state, teams, subnets, dns)
    try:
        net = network_pb2_grpc.NetworkServiceStub(ch)
        comp = compute_pb2_grpc.ComputeServiceStub(ch)
        for k, team in teams.items():
            net.EnsureNetwork(network_pb2.EnsureNetworkRequest(spec=network_pb2.NetworkSpec(
                name=team, subnet4=subnets[k], dns_servers=[dns[k]])), timeout=30)
            comp.EnsureSlice(compute_pb2.EnsureSliceRequest(team=team), timeout=30)
            env.teams[team] = subnets[k]
        root = images.build_busybox_rootfs(state / "build" / "rootfs")
        tarball = images.rootfs_tarball(root, state / "busybox.tar.gz")
        list(spb_grpc.StorageServiceStub(ch).EnsureImage(
            iter([spb.EnsureImageRequest(header=spb.ImageHeader(image_id="busybox", local_path=str(tarball)))]),
            timeout=120))
        yield r
    finally:
        for c in r.containers.values():
            c.stop()
        try:
            for team in teams.values():
                r.stub().ReleaseInstances(ipb.ReleaseInstancesRequest(team=team), timeout=120)
        except grpc.RpcError as exc:
            print(f"[agent-runtimes] teardown release: {exc}")
        env.delete_networks(ch)
        ch.close()
        agent.stop()
        env.cleanup()
        for ns in r.netns:
            ns.delete()
        rel = os.path.relpath(env.cgroup_root, lxc.cgroup2_mount())
        lxc.remove_cgroup_tree_everywhere(rel, kill=False)
        for cg_mnt, fstype in lxc.cgroup_mounts().items():  # LXC mirrored our path in the v1 hierarchies too
            if fstype == "cgroup":
                try:
                    os.rmdir(os.path.join(cg_mnt, os.path.dirname(rel)))   # the session dir's mirror, if empty
                except OSError:
                    pass
        try:
            zfs_fuse.destroy_file_pool(cmd, name, img)
        finally:
            if daemon is not None:
                zfs_fuse.stop_if_unused(daemon, lease)
            shutil.rmtree(state, ignore_errors=True)
            if os.path.isdir(mnt):
                os.rmdir(mnt)


def prepare(r: Rt, iid: str, team_key: str, *, nics=None, image: str = "busybox", **kw) -> ipb.Instance:
    team = r.teams[team_key]
    nics = [ipb.NicSpec(name="eth0", network=team)] if nics is None else nics
    spec = ipb.InstanceSpec(id=iid, team=team, kind=ipb.INSTANCE_KIND_CONTAINER,
                            root=ipb.RootVolumeSpec(image_id=image, refquota_bytes=256 << 20), nics=nics, **kw)
    inst = r.stub().PrepareInstance(ipb.PrepareInstanceRequest(spec=spec, wait_ready=True), timeout=120).instance
    assert inst.ready, inst.parts
    r.instances[iid] = inst
    return inst


def start(r: Rt, iid: str, init: str = INIT) -> tuple[AgentContainer, float]:
    """lxc-config from the agent (verbatim) -> lxc-start; (container, seconds to RUNNING)."""
    d = r.work / "lxc" / iid
    d.mkdir(parents=True, exist_ok=True)
    cfg = ctl(r.socket, "--json", "instance", "lxc-config", iid, "--init-cmd", init, "--halt-signal", "SIGTERM",
              "--log-file", str(d / f"lxc-{secrets.token_hex(2)}.log"))
    ct = AgentContainer(cfg, d)
    r.containers[iid] = ct
    return ct, ct.start()


def check_lease(lease: dict | None, nic: ipb.RuntimeNic, out: str) -> None:
    assert lease is not None, out
    assert f"{lease['ip']}/{lease['mask']}" == nic.ip4, (lease, nic.ip4)
    assert lease["router"] == nic.gateway4 and lease["dns"] == ",".join(nic.dns_servers), (lease, nic)
    assert int(lease["mtu"] or 0) == nic.mtu, (lease, nic.mtu)


def pings(ct: AgentContainer, ip: str, attempts: int) -> bool:
    return any(ct.sh(f"ping -c 1 -W 1 {ip}", check=False).returncode == 0 for _ in range(attempts))


# -- two teams, privileged and unprivileged ------------------------------------------------------


def test_1_two_teams_privileged_and_unprivileged_containers(rt):
    r, tag = rt, secrets.token_hex(2)
    b_ns = Netns()
    r.netns.append(b_ns)
    specs = {  # id: (team, placement, privileged)
        f"pa{tag}": ("a", ipb.PEER_PLACEMENT_AGENT_NETNS, True),
        f"ua{tag}": ("a", ipb.PEER_PLACEMENT_HOST_NETNS, False),
        f"pb{tag}": ("b", ipb.PEER_PLACEMENT_NETNS, True)}
    for iid, (team, place, priv) in specs.items():
        nic = ipb.NicSpec(name="eth0", network=r.teams[team], peer_placement=place,
                          peer_netns=b_ns.name if place == ipb.PEER_PLACEMENT_NETNS else "")
        t0 = time.monotonic()
        inst = prepare(r, iid, team, nics=[nic], **({} if priv else {"idmap": MAP}))
        took = time.monotonic() - t0
        rtm = inst.runtime
        n = rtm.nics[0]
        # the reply says where each netdev is, and it is there (ip -j)
        if place == ipb.PEER_PLACEMENT_AGENT_NETNS:
            assert n.netns == f"/run/netns/{r.env.stack.netns}" and not n.host_netns
            assert r.env.link(n.netdev)["address"] == n.mac
        elif place == ipb.PEER_PLACEMENT_HOST_NETNS:
            assert n.netns in ("/proc/1/ns/net", f"/proc/{r.agent.proc.pid}/ns/net") and n.host_netns
            assert r.env.tools.link(n.netdev)["address"] == n.mac
        else:
            assert n.netns == b_ns.path and n.configured and n.netdev == "eth0"
            assert n.ip4 in r.env.tools.addrs("eth0", b_ns.name)
        assert n.gateway4 == r.subnets[team].replace("0/24", "1") and list(n.dns_servers) == [r.dns[team]] and n.dhcp
        assert rtm.compute.payload_cgroup == rtm.compute.cgroup + "/payload"
        if not priv:
            assert rtm.storage.idmap_mode == spb.IDMAP_MODE_SHIFTED and rtm.idmap == MAP
            assert os.stat(f"{rtm.storage.rootfs}/root").st_uid == 100000
        ct, t_start = start(r, iid)
        lease, t_dhcp, out = ct.dhcp()
        check_lease(lease, n, out)
        assert ct.v2_cgroup() == rtm.compute.payload_cgroup                 # the workload under the scope
        report(f"{'privileged' if priv else 'unprivileged'} container, NIC {ipb.PeerPlacement.Name(place)}: "
               f"prepare {took:.3f} s; lxc-start {t_start:.3f} s + udhcpc {t_dhcp:.3f} s = container start -> DHCP "
               f"address {t_start + t_dhcp:.3f} s ({lease['ip']})")
    (pa, ua, pb) = (r.containers[i] for i in specs)
    ip = {i: r.instances[i].runtime.nics[0].ip4.split("/")[0] for i in specs}
    ia, iu, ib = specs
    assert pings(pa, ip[iu], 10) and pings(ua, ip[ia], 10)                   # within team a
    assert not pings(pa, ip[ib], 2) and not pings(pb, ip[ia], 2)             # across teams
    p = ua.sh("cat /proc/self/uid_map; echo written > /root/own && cat /root/own; ls -ln /root/own", check=False)
    assert p.returncode == 0 and "written" in p.stdout and p.stdout.split()[:3] == ["0", "100000", "65536"], p
    assert os.stat(f"{r.instances[iu].runtime.storage.rootfs}/root/own").st_uid == 100000
    for i in specs:                                  # what ran, verbatim (examples/runtimes.md quotes them)
        c = r.containers[i]
        print(f"\n# lxc-start: {' '.join(c.wrap + ['lxc-start', '-n', c.name, '-P', str(c.lxcpath), '-f', str(c.conf)])}"
              f" -d\n{c.text}")


# -- a VM on the same team network -----------------------------------------------------------------


def test_2_vm_with_prepared_tap_and_disk_pings_a_container(rt):
    r = rt
    require(common.need, "qemu-system-x86_64", "qemu-system-x86")
    kernel = require(qemu.find_kernel)
    target = next((i for i in r.instances if i.startswith("pa")), None)
    if target is None or target not in r.containers:
        pytest.skip("needs test_1's container of team a")
    target_ip = r.instances[target].runtime.nics[0].ip4.split("/")[0]
    vid = f"vm{secrets.token_hex(2)}"
    spec = ipb.InstanceSpec(id=vid, team=r.teams["a"], kind=ipb.INSTANCE_KIND_VM,
                            root=ipb.RootVolumeSpec(size_bytes=16 << 20),
                            nics=[ipb.NicSpec(name="eth0", network=r.teams["a"])])
    inst = r.stub().PrepareInstance(ipb.PrepareInstanceRequest(spec=spec, wait_ready=True), timeout=120).instance
    r.instances[vid] = inst
    rtm = inst.runtime
    assert rtm.storage.disk and (rtm.storage.disk_is_file or rtm.storage.disk.startswith("/dev/zvol/"))
    marker = f"devcloud-disk-{secrets.token_hex(4)}"
    with open(rtm.storage.disk, "r+b") as f:                               # the guest reads it at offset 0
        f.write(marker.encode() + b"\n")
    d = r.work / "vm"
    d.mkdir(exist_ok=True)
    initrd = qemu.build_initramfs(d / "initramfs.cpio.gz", kernel)
    token = secrets.token_hex(4)
    cmd = ctl(r.socket, "--json", "instance", "qemu-args", vid, "--accel", "tcg", "--memory", "256", "--kernel",
              str(kernel.vmlinuz), "--initrd", str(initrd), "--append",
              f"console=ttyS0 panic=-1 loglevel=4 devcloud_token={token} devcloud_dhcp_tries=15 "
              f"devcloud_ping={target_ip}", "--serial", f"file:{d / 'serial.log'}", "--no-reboot")
    print(" ".join(cmd["argv"]))
    vm = AgentVm(cmd, d / "serial.log").start()
    try:
        boot = vm.wait_for("DEVCLOUD-BOOT", 120)
        assert boot is not None, vm.serial()[-3000:] + vm.stderr()
        with open(f"{cmd['payload_cgroup']}/cgroup.procs") as f:         # QEMU runs in the payload cgroup
            assert str(vm.proc.pid) in f.read().split()
        lease = vm.wait_for("DEVCLOUD-LEASE", 60) if boot else None
        ping = vm.wait_for("DEVCLOUD-PING", 30) if lease else None
        disk = vm.wait_for("DEVCLOUD-DISK", 30) if lease else None
        done = vm.wait_for("DEVCLOUD-DONE", 30) if lease else None
    finally:
        vm.stop()
    check_lease(lease, rtm.nics[0], vm.serial()[-3000:])
    assert ping is not None and ping["ok"] == "1", vm.serial()[-2000:]
    assert disk is not None and disk["marker"] == marker, disk
    assert done is not None and qemu.read_guest_write(rtm.storage.disk) == f"DEVCLOUD-GUEST-WROTE {token}"
    s = vm.seen
    report(f"QEMU TCG VM (tap {rtm.nics[0].netdev}, disk {'file' if rtm.storage.disk_is_file else 'zvol'}): "
           f"spawn -> /init {s['DEVCLOUD-BOOT']:.2f} s; -> DHCP lease {s['DEVCLOUD-LEASE']:.2f} s "
           f"({lease['ip']}); VM boot -> ping of container {target_ip} done {s['DEVCLOUD-PING']:.2f} s")


# -- stop + release leaves nothing ---------------------------------------------------------------------


def test_3_stop_and_release_leave_nothing(rt):
    r = rt
    if not r.instances:
        pytest.skip("nothing was started")
    hosted = {i: r.instances[i].runtime.nics[0].netdev for i in r.instances
              if r.instances[i].runtime.nics and r.instances[i].runtime.nics[0].host_netns}
    for c in r.containers.values():
        c.stop()
    s = r.stub()
    for iid in list(r.instances):
        assert s.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=120).released
    scopes = [i.runtime.compute.cgroup_path for i in r.instances.values()]
    assert r.env.owned_leftovers() == []                       # datasets, netdevs, OVS, LSPs, scopes: none
    assert not any(os.path.exists(p) for p in scopes)          # payload/monitor/lxc.pivot went with the scope
    for iid, netdev in hosted.items():
        assert r.env.tools.link(netdev) is None, netdev        # the peer in the host's netns went with its veth
    for i in r.instances.values():
        st = i.runtime.storage
        assert not os.path.exists(st.disk if st.disk else f"{st.rootfs}/sbin/devcloud-init")
    variants = spb_grpc.StorageServiceStub(r.channel).GetImage(spb.GetImageRequest(image_id="busybox"),
                                                              timeout=30).image.variants
    assert [(v.idmap.host_uid, v.clones) for v in variants] == [(100000, 0)]      # kept for the next one
    r.containers.clear()
    r.instances.clear()


# -- LXD images --------------------------------------------------------------------------------------


def test_lxd_unified_and_split_images_start_under_lxc(rt):
    r = rt
    require(common.need, "mksquashfs", "squashfs-tools")
    d = r.work / "lxd"
    root = images.build_busybox_rootfs(d / "rootfs")
    uni = images.unified_image(root, d / "unified.tar.gz", images.ImageMetadata.busybox(release="1.35-unified"))
    meta, sq = images.split_image(root, d / "meta.tar.gz", d / "rootfs.squashfs",
                                  images.ImageMetadata.busybox(release="1.35-split"))
    st = spb_grpc.StorageServiceStub(r.channel)
    t0 = time.monotonic()
    data = uni.read_bytes()

    def chunks():
        yield spb.EnsureImageRequest(header=spb.ImageHeader(image_id="bb-unified", sha256=images.fingerprint(uni),
                                                            size_bytes=len(data)))
        for i in range(0, len(data), 1 << 20):
            yield spb.EnsureImageRequest(chunk=data[i:i + (1 << 20)])
    list(st.EnsureImage(chunks(), timeout=120))
    t_uni = time.monotonic() - t0
    t0 = time.monotonic()
    list(st.EnsureImage(iter([spb.EnsureImageRequest(header=spb.ImageHeader(
        image_id="bb-split", local_path=str(meta), rootfs_local_path=str(sq)))]), timeout=120))
    t_split = time.monotonic() - t0
    got = {}
    for iid, image, release in (("lu", "bb-unified", "1.35-unified"), ("ls", "bb-split", "1.35-split")):
        img = st.GetImage(spb.GetImageRequest(image_id=image), timeout=30).image
        assert img.metadata.release == release and img.metadata.os == "busybox"
        assert img.metadata.architecture == "x86_64" and img.metadata.description.startswith("busybox")
        assert img.rootfs == f"{img.mountpoint}/rootfs"
        iid = f"{iid}{secrets.token_hex(2)}"
        inst = prepare(r, iid, "a", nics=[], image=image)
        assert inst.runtime.storage.rootfs.endswith("/rootfs") and inst.runtime.storage.image_metadata_dir
        ct, took = start(r, iid)
        out = ct.sh("cat /etc/os-release; hostname").stdout
        assert "ID=busybox" in out, out
        got[image] = (img.format, took)
        ct.stop()
        del r.containers[iid]
        assert r.stub().ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60).released
        del r.instances[iid]
    assert got["bb-unified"][0] == spb.IMAGE_FORMAT_LXD_UNIFIED and got["bb-split"][0] == spb.IMAGE_FORMAT_LXD_SPLIT
    assert st.GetImage(spb.GetImageRequest(image_id="bb-split"), timeout=30).image.sha256 == \
        images.fingerprint(meta, sq)                                     # Incus's fingerprint of a split image
    report(f"LXD images: unified import (streamed) {t_uni:.3f} s, split import (squashfs, files on the node) "
           f"{t_split:.3f} s; containers on them started in {got['bb-unified'][1]:.3f} / {got['bb-split'][1]:.3f} s")


# -- a failed runtime start destroys the veth: reported live, in Diff, fixed by Repair ---------------------


def test_failed_start_destroying_the_veth_is_a_drift_event_diff_and_repair(rt):
    r = rt
    iid = f"fs{secrets.token_hex(2)}"
    inst = prepare(r, iid, "a", nics=[ipb.NicSpec(name="eth0", network=r.teams["a"],
                                                  peer_placement=ipb.PEER_PLACEMENT_HOST_NETNS)])
    host_end = inst.names.nics[0].host_netdev
    events: list[ipb.WatchInstancesResponse] = []
    stream = r.stub().WatchInstances(ipb.WatchInstancesRequest(id=iid), timeout=60)

    def collect():
        try:
            for ev in stream:
                events.append(ev)
        except grpc.RpcError:
            pass
    t = threading.Thread(target=collect, daemon=True)
    t.start()
    # the snapshot event comes after the subscription (netdev monitor included) is live
    common.wait_for(lambda: any(ev.snapshot for ev in events), 30, 0.02, "the watch's snapshot")
    try:
        with pytest.raises(RuntimeError, match="no-such-init"):
            start(r, iid, init="/sbin/no-such-init")
        del r.containers[iid]
        t0 = time.monotonic()
        common.wait_for(lambda: any(ev.drifts for ev in events), 15, 0.02, "the drift event")
        took = time.monotonic() - t0
        assert r.env.link(host_end) is None                             # ip -j: gone, both ends
        drift = next(ev for ev in events if ev.drifts).drifts[0]
        assert (drift.part, drift.reason, drift.object) == ("network:eth0", "VETH_MISSING", host_end)
        diff = r.stub().Diff(ipb.DiffRequest(id=iid), timeout=30).instances[0]
        assert "VETH_MISSING" in [d.reason for d in diff.drifts]
        rep = r.stub().Repair(ipb.RepairRequest(id=iid), timeout=60).instances[0]
        assert "network:eth0" in rep.repaired and not rep.remaining, rep
        assert r.env.link(host_end) is not None
        common.wait_for(lambda: r.stub().GetInstance(ipb.GetInstanceRequest(id=iid), timeout=30).instance.ready, 30,
                        0.05, "the repaired NIC ovn-installed and up")          # Repair does not wait for it
        ct, _ = start(r, iid)                                          # and now it starts
        lease, _, out = ct.dhcp()
        check_lease(lease, r.stub().GetInstance(ipb.GetInstanceRequest(id=iid), timeout=30).instance.runtime.nics[0],
                    out)
        report(f"failed lxc-start (init missing) after the phys NIC moved: veth destroyed, WatchInstances drift "
               f"event {took:.3f} s after lxc-start returned; Repair recreated it and the container started")
    finally:
        stream.cancel()
        if iid in r.containers:
            r.containers.pop(iid).stop()
        r.stub().ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60)
        r.instances.pop(iid, None)
