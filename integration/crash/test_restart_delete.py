"""After a restart of the agent (SIGKILL, then start on the same state dir, embedded OVN
stack as in the README's run command), every volume and image that existed before it can
be deleted: nothing the agent starts holds a private copy of the pool's mounts. Checked
with `zfs get` and /proc/*/mountinfo."""
from __future__ import annotations

import glob

import grpc

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc as ipb_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2, storage_pb2_grpc
from integration.crash.harness import IMAGE, REFQUOTAS, KillNode
from tests.support.zfs import zfs_get


def _mount_copies(parent: str, mountpoint_prefix: str) -> list[str]:
    """Processes whose mount table holds one of our pool's mounts but that are not in ours."""
    import os
    mine = os.stat("/proc/self/ns/mnt").st_ino
    out = []
    for path in glob.glob("/proc/[0-9]*/mountinfo"):
        pid = path.split("/")[2]
        try:
            if os.stat(f"/proc/{pid}/ns/mnt").st_ino == mine:
                continue
            if mountpoint_prefix in open(path).read():
                out.append(pid)
        except OSError:
            continue
    return out


def test_every_volume_and_image_deletes_after_a_restart(zfs_pool, cgroup_session_dir):
    node = KillNode(zfs_pool.name, cgroup_session_dir)
    try:
        node.start()
        node.setup()
        ids = []
        with node.channel() as ch:
            stub = ipb_grpc.InstanceServiceStub(ch)
            for i in range(4):
                iid = f"kb{i:04d}"
                stub.PrepareInstance(ipb.PrepareInstanceRequest(spec=node._spec(iid, "kb", REFQUOTAS[0])), timeout=60)
                ids.append(iid)
            ids += sorted(node.steady)
        node.kill()
        node.start()
        mountpoint = zfs_get(node.parent, "mountpoint")["mountpoint"]
        assert _mount_copies(node.parent, mountpoint) == [], "a process holds a private copy of our mounts"
        with node.channel() as ch:
            stub = ipb_grpc.InstanceServiceStub(ch)
            for iid in ids:
                assert stub.ReleaseInstance(ipb.ReleaseInstanceRequest(id=iid), timeout=60).released, iid
            stor = storage_pb2_grpc.StorageServiceStub(ch)
            stor.DeleteImage(storage_pb2.DeleteImageRequest(image_id=IMAGE), timeout=60)
        for iid in ids:
            team = iid[:2]
            assert zfs_get(f"{node.parent}/instances/{team}/{iid}", "type") == {}, iid
        assert zfs_get(f"{node.parent}/images/{IMAGE}", "type") == {}
    finally:
        node.stop()
