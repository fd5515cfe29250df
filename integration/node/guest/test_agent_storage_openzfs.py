"""Storage through devcloud-agent.service (systemd, the shipped hardening) on a
real OpenZFS pool with the libzfs_core backend, driven over gRPC: an image
streamed from a rootfs tarball, instant clones with a refquota, a zvol for a
VM disk. Checked with zfs get -Hp, /proc/self/mountinfo, lstat and the block
device, never with the agent's getters alone."""
from __future__ import annotations

import os
import stat

import pytest

from agent._proto.devcloud.agent.v1 import storage_pb2 as spb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc

import agent_unit as au
import agent_world as aw

pytestmark = pytest.mark.skipif(os.environ.get("DEVCLOUD_NODE_GUEST") != "1", reason="runs inside the node guest")
MiB = aw.MiB
OWNER = "devcloud-agent"


@pytest.fixture(scope="module")
def stub(agent):
    return agent.stub(storage_pb2_grpc)


def test_pool_uses_libzfs_core(stub, agent):
    pool = stub.GetPool(spb.GetPoolRequest(), timeout=au.RPC).pool
    assert (pool.name, pool.backend, pool.flavor) == (agent.pool, "lzc", "openzfs")
    assert "zvol" in pool.capabilities and not pool.embedded
    assert au.zget(pool.parent, "devcloud:owner")["devcloud:owner"] == OWNER


def test_image_from_tarball(stub, storage_world, results_dir):
    w = storage_world
    img = w.image
    assert img.state == spb.IMAGE_STATE_READY and img.sha256 == w.sha256
    props = au.zget(img.dataset, "type", "mounted", "mountpoint", "devcloud:owner")
    assert props["type"] == "filesystem" and props["devcloud:owner"] == OWNER
    snaps = au.run("zfs", "list", "-H", "-o", "name", "-t", "snapshot", img.dataset).stdout.split()
    assert snaps == [img.base_snapshot] and img.base_snapshot == f"{img.dataset}@base"
    # same id and sha256 again: answered without re-importing (the @base snapshot is the same one)
    guid = au.zget(img.base_snapshot, "guid")["guid"]
    _, res = aw.ensure_image(stub, w.image_id, w.tarball)
    assert res.changed is False and res.image.dataset == img.dataset
    assert au.zget(img.base_snapshot, "guid")["guid"] == guid
    au.record(results_dir, "agent-storage", image_import_s=round(w.import_s, 2), tarball_bytes=len(w.tarball))


def _tree_ok(root: str) -> None:
    """What only a privileged, unblocked extraction produces (checked with lstat)."""
    st = os.lstat(f"{root}/usr/bin/setuid-helper")
    assert st.st_mode & stat.S_ISUID and stat.S_IMODE(st.st_mode) == 0o4755, oct(st.st_mode)
    assert os.lstat(f"{root}/usr/bin/hard-helper").st_ino == st.st_ino and st.st_nlink == 2
    sg = os.lstat(f"{root}/usr/bin/setgid-helper")
    assert sg.st_mode & stat.S_ISGID and sg.st_gid == 5
    notes = os.lstat(f"{root}/home/dev/notes.txt")
    assert (notes.st_uid, notes.st_gid, stat.S_IMODE(notes.st_mode)) == (1000, 1000, 0o640)
    home = os.lstat(f"{root}/home/dev")
    assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (1000, 0o750)
    dev = os.lstat(f"{root}/dev/null")
    assert stat.S_ISCHR(dev.st_mode) and (os.major(dev.st_rdev), os.minor(dev.st_rdev)) == (1, 3)
    assert stat.S_IMODE(os.lstat(f"{root}/tmp").st_mode) == 0o1777
    assert os.readlink(f"{root}/usr/bin/sh") == "/bin/busybox" and os.readlink(f"{root}/bin") == "usr/bin"
    assert os.path.getsize(f"{root}/data/blob.bin") == 2 * MiB


def test_image_content_survives_the_hardening(storage_world):
    # setuid/setgid bits (RestrictSUIDSGID=), chown (CAP_CHOWN), mknod (CAP_MKNOD, DeviceAllow=char-* m)
    _tree_ok(storage_world.image.mountpoint)


def test_clones_are_instant_mounted_and_quota_bounded(storage_world):
    w = storage_world
    mi = au.mounts()
    for name, vol in w.volumes.items():
        p = au.zget(vol.dataset, "type", "origin", "refquota", "mounted", "mountpoint", "devcloud:owner")
        assert p == {"type": "filesystem", "origin": w.image.base_snapshot, "refquota": str(256 * MiB),
                     "mounted": "yes", "mountpoint": vol.mountpoint, "devcloud:owner": OWNER}, (name, p)
        assert mi.get(vol.mountpoint) == "zfs", f"{vol.mountpoint} not in mountinfo as zfs"
        assert vol.origin == w.image.base_snapshot and vol.mounted
        _tree_ok(vol.mountpoint)
    # a write in one clone is private to it
    c0, c1 = w.volumes["c0"].mountpoint, w.volumes["c1"].mountpoint
    with open(f"{c0}/etc/only-in-c0", "w") as f:
        f.write("c0\n")
    assert not os.path.exists(f"{c1}/etc/only-in-c0")
    assert not os.path.exists(f"{w.image.mountpoint}/etc/only-in-c0")


def test_zvol_for_a_vm_disk(stub, storage_world):
    z = storage_world.zvol
    p = au.zget(z.dataset, "type", "volsize", "devcloud:owner")
    assert p == {"type": "volume", "volsize": str(64 * MiB), "devcloud:owner": OWNER}
    link = f"/dev/zvol/{z.dataset}"
    dev = au.until(lambda: os.path.exists(link) and os.path.realpath(link), f"udev link {link}")
    assert stat.S_ISBLK(os.stat(dev).st_mode)
    assert z.device in (link, dev), z.device
    assert int(au.run("blockdev", "--getsize64", dev).stdout) == 64 * MiB
    # grow the disk; the kernel sees the new size
    r = stub.ResizeVolume(spb.ResizeVolumeRequest(team=storage_world.team, name="disk0", size_bytes=128 * MiB),
                          timeout=au.RPC)
    assert r.changed
    assert au.zget(z.dataset, "volsize")["volsize"] == str(128 * MiB)
    au.until(lambda: int(au.run("blockdev", "--getsize64", dev).stdout) == 128 * MiB, "the zvol to grow to 128 MiB")
    storage_world.specs["disk0"].size_bytes = 128 * MiB     # the spec the restart tests re-ensure


def test_refquota_resize_read_back(stub, storage_world):
    w = storage_world
    r = stub.ResizeVolume(spb.ResizeVolumeRequest(team=w.team, name="c1", refquota_bytes=512 * MiB), timeout=au.RPC)
    assert r.changed and r.volume.refquota_bytes == 512 * MiB
    assert au.zget(w.volumes["c1"].dataset, "refquota")["refquota"] == str(512 * MiB)
    w.specs["c1"].refquota_bytes = 512 * MiB
    # drift behind the agent's back: EnsureVolume with the spec puts it back
    au.run("zfs", "set", f"refquota={300 * MiB}", w.volumes["c1"].dataset)
    r = stub.EnsureVolume(spb.EnsureVolumeRequest(spec=w.specs["c1"]), timeout=au.RPC)
    assert r.changed
    assert au.zget(w.volumes["c1"].dataset, "refquota")["refquota"] == str(512 * MiB)
