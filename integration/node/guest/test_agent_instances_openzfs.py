"""Runtime roots on OpenZFS through devcloud-agent.service (the shipped hardening):
an unprivileged container's root in MOUNT mode (a plain clone of the image, made
usable by an idmapped mount, OpenZFS >= 2.2) and a VM whose disk is a zvol.

Checked with zfs get -Hp, the block device, and an idmapped mount this test makes
itself (integration/runtimes/idshift.py: open_tree + mount_setattr +
move_mount, as LXC does for `lxc.rootfs.options = idmap=container`), written through by a process running as
the map's root. No runtime boots here: the guest has no QEMU or LXC (both boot on
prepared instances in integration/runtimes on the host tier)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile

import pytest

from agent._proto.devcloud.agent.v1 import compute_pb2 as cpb
from agent._proto.devcloud.agent.v1 import compute_pb2_grpc
from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2 as spb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc

import agent_unit as au
from integration.runtimes import idshift      # the host tier's idmapped-mount helper, not the agent's

pytestmark = pytest.mark.skipif(os.environ.get("DEVCLOUD_NODE_GUEST") != "1", reason="runs inside the node guest")
MiB = 1 << 20
HOST_ID, COUNT = 100000, 65536
CTL = "/opt/devcloud-agent/bin/devcloudctl"

def write_as_map_root(path: str) -> subprocess.CompletedProcess:
    """Create `path` as host uid/gid HOST_ID (the container's root), in a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", f"open({path!r}, 'w').write('from the map root\\n')"],
                          user=HOST_ID, group=HOST_ID, extra_groups=[], capture_output=True, text=True,
                          timeout=au.CMD)


@pytest.fixture(scope="module")
def stubs(agent):
    return (agent.stub(instance_pb2_grpc), agent.stub(storage_pb2_grpc), agent.stub(compute_pb2_grpc))


@pytest.fixture(scope="module")
def team(stubs, session_id):
    name = f"in{session_id}"
    stubs[2].EnsureSlice(cpb.EnsureSliceRequest(team=name), timeout=au.RPC)
    yield name
    stubs[2].DeleteSlice(cpb.DeleteSliceRequest(team=name), timeout=au.RPC)


def _prepare(stub, spec):
    inst = stub.PrepareInstance(ipb.PrepareInstanceRequest(spec=spec, wait_ready=True), timeout=au.RPC).instance
    assert inst.ready, inst.parts
    return inst


def test_unprivileged_root_is_a_plain_clone_made_usable_by_an_idmapped_mount(stubs, team, storage_world, results_dir):
    inst_stub, storage, _ = stubs
    image = storage_world.image_id
    iid = f"u{team}"
    spec = ipb.InstanceSpec(id=iid, team=team, kind=ipb.INSTANCE_KIND_CONTAINER,
                            root=ipb.RootVolumeSpec(image_id=image, refquota_bytes=256 * MiB),
                            idmap=spb.IdMap(host_uid=HOST_ID, host_gid=HOST_ID, count=COUNT))
    inst = _prepare(inst_stub, spec)
    target = tempfile.mkdtemp(prefix="idmapped-")
    mounted = False
    try:
        st = inst.runtime.storage
        # the agent chose MOUNT here (OpenZFS >= 2.2), even though its unit forbids user namespaces
        assert st.idmap_mode == spb.IDMAP_MODE_MOUNT, spb.IdmapMode.Name(st.idmap_mode)
        caps = storage.GetPool(spb.GetPoolRequest(), timeout=au.RPC).pool.capabilities
        assert "idmap:mount" in caps, caps
        # a plain clone of the image's snapshot (no shifted variant), stored as imported: root-owned
        dataset = au.run("zfs", "list", "-Hpo", "name", st.rootfs).stdout.strip()
        origin = au.zget(dataset, "origin")["origin"]
        assert origin.split("@")[0].endswith(f"/{image}") and "variants" not in origin, origin
        etc = os.path.join(st.rootfs, "etc")
        assert os.stat(etc).st_uid == 0
        # without the idmapped mount the map's root cannot write there (the control)...
        denied = write_as_map_root(os.path.join(etc, "direct"))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
        # ...through it, it owns its root: sees it as HOST_ID and writes, stored as uid 0
        idshift.idmapped_bind(st.rootfs, target, idshift.IdMap(HOST_ID, HOST_ID, COUNT))
        mounted = True
        assert os.stat(os.path.join(target, "etc")).st_uid == HOST_ID
        wrote = write_as_map_root(os.path.join(target, "etc", "through-idmap"))
        assert wrote.returncode == 0, wrote.stderr
        on_disk = os.stat(os.path.join(etc, "through-idmap"))
        assert (on_disk.st_uid, on_disk.st_gid) == (0, 0)
        au.record(results_dir, "agent-instances", event="idmap-mount", dataset=dataset, origin=origin)
    finally:
        if mounted:
            au.run("umount", target)
        os.rmdir(target)
        assert inst_stub.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=au.RPC).released
    assert not au.zexists(dataset) and not os.path.exists(st.rootfs)


def test_vm_disk_is_a_zvol_and_qemu_args_name_it(stubs, team, results_dir):
    inst_stub, _, _ = stubs
    vid = f"v{team}"
    spec = ipb.InstanceSpec(id=vid, team=team, kind=ipb.INSTANCE_KIND_VM, root=ipb.RootVolumeSpec(size_bytes=64 * MiB))
    inst = _prepare(inst_stub, spec)
    try:
        st = inst.runtime.storage
        assert st.disk.startswith("/dev/zvol/") and not st.disk_is_file, st
        dataset = st.disk[len("/dev/zvol/"):]
        assert au.zget(dataset, "type", "volsize") == {"type": "volume", "volsize": str(64 * MiB)}
        dev = au.until(lambda: os.path.exists(st.disk) and os.path.realpath(st.disk), f"udev link {st.disk}")
        assert stat.S_ISBLK(os.stat(dev).st_mode)
        assert int(au.run("blockdev", "--getsize64", dev).stdout) == 64 * MiB
        # what QEMU would do with it: write at offset 0, read back with dd (O_DIRECT: from the zvol, not a cache)
        marker = f"devcloud-{vid}".encode().ljust(4096, b"\0")
        fd = os.open(dev, os.O_WRONLY)
        try:
            os.pwrite(fd, marker, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        back = subprocess.run(["dd", f"if={dev}", "bs=4096", "count=1", "iflag=direct", "status=none"],
                              capture_output=True, timeout=au.CMD, check=True).stdout
        assert back == marker
        cmd = json.loads(au.run(CTL, "--json", "instance", "qemu-args", vid, "--accel", "tcg").stdout)
        drive = cmd["argv"][cmd["argv"].index("-drive") + 1]
        assert drive.startswith(f"file={st.disk},format=raw,") and "cache=none" in drive, drive
        au.record(results_dir, "agent-instances", event="vm-zvol", disk=st.disk, drive=drive)
    finally:
        assert inst_stub.ReleaseInstance(ipb.ReleaseInstanceRequest(id=vid), timeout=au.RPC).released
    assert not au.zexists(dataset)
