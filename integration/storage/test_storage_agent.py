"""The agent as a real process, driven over gRPC like a controller; results
checked with `zfs get -Hp`, `zpool list` and /proc/mounts, never with the
agent's own getters."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from agent._proto.devcloud.agent.v1 import storage_pb2 as pb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc as pb_grpc
from tests.support.server import AgentProcess, temp_dir
from tests.support.zfs import (cleanup_embedded_storage, make_tarball, storage_overrides, upload,
                               zfs_destroy_tree, zfs_get, zfs_run)

MiB = 1 << 20


def mounts() -> set[str]:
    with open("/proc/self/mounts") as f:
        return {line.split()[1] for line in f}


@pytest.fixture
def tmp():
    d = temp_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_controller_flow_and_restart_keeps_data_plane(zfs_pool, tmp):
    parent = f"{zfs_pool.name}/it{os.getpid()}"
    agent = AgentProcess(tmp, storage_overrides(zfs_pool, parent)).start()
    try:
        with agent.channel() as ch:
            stub = pb_grpc.StorageServiceStub(ch)
            data, sha = make_tarball()
            progress, result = upload(stub, "img", data, sha, size=len(data), chunk=16 << 10)
            assert result.changed and progress
            assert zfs_get(f"{parent}/images/img@base", "type") == {"type": "snapshot"}
            vols = [stub.EnsureVolume(pb.EnsureVolumeRequest(spec=pb.VolumeSpec(
                team="t", name=f"n{i}", kind=pb.VOLUME_KIND_ROOT, image_id="img", refquota_bytes=16 * MiB)),
                timeout=30).volume for i in range(5)]
        for v in vols:
            assert zfs_get(v.dataset, "origin", "refquota") == {"origin": f"{parent}/images/img@base",
                                                                 "refquota": str(16 * MiB)}
            assert v.mountpoint in mounts()
        with open(os.path.join(vols[0].mountpoint, "marker"), "w") as f:
            f.write("kept")
        # Stopping the agent must not tear down the data plane: roots stay mounted.
        assert agent.stop() == 0
        assert all(v.mountpoint in mounts() for v in vols)
        assert open(os.path.join(vols[0].mountpoint, "marker")).read() == "kept"
        # A root left unmounted (as after a zfs-fuse restart) is mounted again at start.
        subprocess.run(["zfs", "umount", vols[1].dataset], check=True)
        assert zfs_get(vols[1].dataset, "mounted") == {"mounted": "no"}
        agent = AgentProcess(tmp, storage_overrides(zfs_pool, parent)).start()
        assert zfs_get(vols[1].dataset, "mounted") == {"mounted": "yes"}
        with agent.channel() as ch:
            stub = pb_grpc.StorageServiceStub(ch)
            assert stub.EnsureVolume(pb.EnsureVolumeRequest(spec=pb.VolumeSpec(
                team="t", name="n0", kind=pb.VOLUME_KIND_ROOT, image_id="img", refquota_bytes=16 * MiB)),
                timeout=30).changed is False
            assert stub.DeleteImage(pb.DeleteImageRequest(image_id="img"), timeout=30).state == pb.IMAGE_STATE_PARKED
            res = stub.DeleteVolumes(pb.DeleteVolumesRequest(team="t", all=True), timeout=60).results
            assert sorted(r.name for r in res if r.deleted) == [f"n{i}" for i in range(5)]
        assert zfs_run("get", "-H", "-r", "-o", "name", "type", f"{parent}/deleted/images").stdout.split() == \
            [f"{parent}/deleted/images"]
        assert not any(v.mountpoint in mounts() for v in vols)
    finally:
        agent.stop()
        zfs_destroy_tree(parent)


def test_embedded_pool_default(zfs_pool, tmp):
    """[storage].pool empty: the agent creates its own file-backed pool, keeps it across
    restarts, imports it again when it was exported, and leaves zfs-fuse running."""
    name = f"dcemb{os.getpid()}"
    over = ["storage.enabled=true", "storage.pool=", f"storage.embedded_pool_name={name}",
            "storage.embedded_pool_size=512M"]
    state = tmp / "state"
    agent = AgentProcess(tmp, over).start()
    try:
        img = state / "disks" / f"{name}.img"
        assert img.exists() and img.stat().st_blocks * 512 < 64 * MiB, "the pool file must be sparse"
        assert name in subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True,
                                      text=True).stdout.split()
        assert str(img) in subprocess.run(["zpool", "status", name], capture_output=True, text=True).stdout
        with agent.channel() as ch:
            stub = pb_grpc.StorageServiceStub(ch)
            pool = stub.GetPool(pb.GetPoolRequest(), timeout=10).pool
            assert pool.embedded and pool.name == name and pool.parent == f"{name}/devcloud"
            v = stub.EnsureVolume(pb.EnsureVolumeRequest(spec=pb.VolumeSpec(
                team="t", name="v", kind=pb.VOLUME_KIND_FILESYSTEM, refquota_bytes=8 * MiB)), timeout=30).volume
        assert v.mountpoint.startswith(str(state / "storage"))
        assert zfs_get(v.dataset, "refquota") == {"refquota": str(8 * MiB)}
        assert agent.stop() == 0
        if zfs_pool.flavor == "zfs-fuse":
            assert os.path.exists("/var/run/zfs/zfs_socket"), "zfs-fuse must outlive the agent"
        assert v.mountpoint in mounts()
        # Exported while the agent was down (e.g. a host reboot): the next start imports it.
        for _ in range(50):
            if subprocess.run(["zpool", "export", name], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        assert zfs_get(v.dataset, "type") == {}
        agent = AgentProcess(tmp, over).start()
        assert zfs_get(v.dataset, "mounted", "refquota") == {"mounted": "yes", "refquota": str(8 * MiB)}
        agent.stop()
    finally:
        agent.stop()
        cleanup_embedded_storage(state)
    assert name not in subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True,
                                      text=True).stdout.split()
    assert not (state / "disks" / f"{name}.img").exists()
