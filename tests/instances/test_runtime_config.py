"""The LXC config and QEMU command line rendered from a runtime reply (pure):
every reply field lands where examples/runtimes.md says, and replies a runtime
cannot use are refused with the reason."""
from __future__ import annotations

import pytest

from agent._proto.devcloud.agent.v1 import instance_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2 as net_pb
from agent._proto.devcloud.agent.v1 import storage_pb2 as st_pb
from agent.cli.runtime_config import LxcOptions, NotRunnable, QemuOptions, lxc_config, qemu_argv

SCOPE = "devcloud.slice/ta.slice/c1.scope"
COMPUTE = pb.RuntimeCompute(cgroup=SCOPE, cgroup_path=f"/sys/fs/cgroup/{SCOPE}", payload_cgroup=f"{SCOPE}/payload",
                            monitor_cgroup=f"{SCOPE}/monitor")


def nic(placement=pb.PEER_PLACEMENT_AGENT_NETNS, netns="/run/netns/devcloud-ovs", host=False, **kw) -> pb.RuntimeNic:
    d = dict(name="eth0", kind=net_pb.NIC_KIND_VETH, netdev="dcabcdefp", netns=netns, host_netns=host,
             placement=placement, mac="0a:58:0a:5d:00:02", mtu=1442, ip4="10.93.0.2/24", gateway4="10.93.0.1",
             dns_servers=["10.93.0.53"], dhcp=True, host_netdev="dcabcdef")
    d.update(kw)
    return pb.RuntimeNic(**d)


def container(*nics, idmap=None, mode=0) -> pb.Instance:
    rt = pb.Runtime(nics=list(nics), storage=pb.RuntimeStorage(rootfs="/pool/dc/instances/ta/c1", idmap_mode=mode),
                    compute=COMPUTE, idmap=idmap)
    return pb.Instance(id="c1", team="ta", kind=pb.INSTANCE_KIND_CONTAINER, runtime=rt)


def test_lxc_privileged_phys_nic_in_the_agents_netns():
    cfg = lxc_config(container(nic()), LxcOptions(init_cmd="/sbin/devcloud-init", halt_signal="SIGTERM"))
    lines = cfg.text.splitlines()
    for want in ("lxc.uts.name = c1", "lxc.rootfs.path = dir:/pool/dc/instances/ta/c1",
                 "lxc.init.cmd = /sbin/devcloud-init", "lxc.signal.halt = SIGTERM",
                 f"lxc.cgroup.dir.container = {SCOPE}/payload", f"lxc.cgroup.dir.monitor = {SCOPE}/monitor",
                 f"lxc.cgroup.dir.monitor.pivot = {SCOPE}", "lxc.net.0.type = phys", "lxc.net.0.link = dcabcdefp",
                 "lxc.net.0.name = eth0", "lxc.net.0.flags = up", "lxc.net.0.hwaddr = 0a:58:0a:5d:00:02",
                 "lxc.net.0.mtu = 1442"):
        assert want in lines, want
    assert not any(l.startswith(("lxc.idmap", "lxc.rootfs.options", "lxc.apparmor", "lxc.namespace")) for l in lines)
    assert cfg.wrap == ["nsenter", "--net=/run/netns/devcloud-ovs", "--"] and cfg.netns == "/run/netns/devcloud-ovs"
    assert cfg.start_argv("/var/lib/lxc", "/tmp/c1.conf") == [
        "nsenter", "--net=/run/netns/devcloud-ovs", "--", "lxc-start", "-n", "c1", "-P", "/var/lib/lxc", "-f",
        "/tmp/c1.conf", "-d"]


def test_lxc_unprivileged_host_netns_and_idmap_modes():
    m = st_pb.IdMap(host_uid=100000, host_gid=200000, count=65536)
    host = nic(pb.PEER_PLACEMENT_HOST_NETNS, netns="/proc/1/ns/net", host=True)
    shifted = lxc_config(container(host, idmap=m, mode=st_pb.IDMAP_MODE_SHIFTED))
    assert "lxc.idmap = u 0 100000 65536" in shifted.text and "lxc.idmap = g 0 200000 65536" in shifted.text
    assert "idmap=container" not in shifted.text and shifted.wrap == [] and shifted.netns == ""
    mounted = lxc_config(container(host, idmap=m, mode=st_pb.IDMAP_MODE_MOUNT))
    assert "lxc.rootfs.options = idmap=container" in mounted.text.splitlines()


def test_lxc_shared_netns_and_what_cannot_run():
    shared = nic(pb.PEER_PLACEMENT_NETNS, netns="/run/netns/c1", netdev="eth0", configured=True)
    cfg = lxc_config(container(shared))
    assert "lxc.namespace.share.net = /run/netns/c1" in cfg.text and "lxc.net.0" not in cfg.text and not cfg.wrap
    with pytest.raises(NotRunnable, match="unprivileged"):
        lxc_config(container(shared, idmap=st_pb.IdMap(host_uid=1, host_gid=1, count=1)))
    with pytest.raises(NotRunnable, match="same netns"):
        lxc_config(container(shared, nic(name="eth1")))
    with pytest.raises(NotRunnable, match="different namespaces"):
        lxc_config(container(nic(), nic(pb.PEER_PLACEMENT_HOST_NETNS, netns="/proc/1/ns/net", host=True,
                                        name="eth1")))
    with pytest.raises(NotRunnable, match="qemu-args"):
        lxc_config(pb.Instance(id="v", kind=pb.INSTANCE_KIND_VM))
    no_root = container(nic())
    no_root.runtime.storage.rootfs = ""
    with pytest.raises(NotRunnable, match="no rootfs"):
        lxc_config(no_root)


def test_qemu_argv_from_taps_and_disk():
    tap = nic(kind=net_pb.NIC_KIND_TAP, netdev="dctap1", queues=4)
    rt = pb.Runtime(nics=[tap], storage=pb.RuntimeStorage(disk="/pool/dc/instances/ta/v1/disk.raw", disk_is_file=True,
                                                          disk_format="raw"), compute=COMPUTE)
    inst = pb.Instance(id="v1", team="ta", kind=pb.INSTANCE_KIND_VM, runtime=rt)
    cmd = qemu_argv(inst, QemuOptions(accel="tcg", memory_mb=256, kernel="/k", initrd="/i", append="console=ttyS0"))
    a = cmd.argv
    assert a[:3] == ["nsenter", "--net=/run/netns/devcloud-ovs", "--"] and a[3] == "qemu-system-x86_64"
    assert a[a.index("-netdev") + 1] == "tap,id=net0,ifname=dctap1,script=no,downscript=no,queues=4"
    assert a[a.index("-device") + 1] == ("virtio-net-pci,netdev=net0,mac=0a:58:0a:5d:00:02,romfile=,mq=on,"
                                         "vectors=10,host_mtu=1442")
    assert a[a.index("-drive") + 1] == "file=/pool/dc/instances/ta/v1/disk.raw,format=raw,if=none,id=disk0," \
                                       "cache=writeback"
    k = a.index("-kernel")
    assert a[k:k + 6] == ["-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0"]
    assert "-cpu" not in a and cmd.payload_cgroup == f"/sys/fs/cgroup/{SCOPE}/payload"
    inst.runtime.storage.disk, inst.runtime.storage.disk_is_file = "/dev/zvol/pool/dc/instances/ta/v1", False
    zvol = qemu_argv(inst).argv
    assert zvol[zvol.index("-drive") + 1].endswith(",cache=none") and "-cpu" in zvol      # kvm by default
    with pytest.raises(NotRunnable, match="lxc-config"):
        qemu_argv(container(nic()))
