"""StorageService through a real in-process agent (gRPC over its unix socket)
on the session's real ZFS pool. Every claim is checked with `zfs get -Hp`."""
from __future__ import annotations

import os
import shutil
import threading

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import identity_pb2, identity_pb2_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2 as pb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc as pb_grpc
from tests.support.server import start_inprocess, temp_dir
from tests.support.zfs import (error_reason, make_tarball, storage_overrides, upload, zfs_destroy_tree, zfs_get,
                               zfs_run)

MiB = 1 << 20
CLONES = 20


@pytest.fixture(scope="module")
def parent(zfs_pool):
    name = f"{zfs_pool.name}/grpc{os.getpid()}"
    yield name
    zfs_destroy_tree(name)


@pytest.fixture(scope="module")
def agent(zfs_pool, parent):
    tmp = temp_dir()
    a = start_inprocess(tmp, storage_overrides(zfs_pool, parent))
    yield a
    a.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def stub(agent):
    return pb_grpc.StorageServiceStub(agent.channel)


@pytest.fixture(scope="module")
def foreign(parent, agent):
    """Datasets next to ours that the agent must never touch."""
    names = [f"{parent}/foreign-top", f"{parent}/instances/foreign-team",
             f"{parent}/instances/foreign-team/vol", f"{parent}/images/foreign-image"]
    for n in names:
        zfs_run("create", n)
    zfs_run("snapshot", f"{parent}/images/foreign-image@base")
    yield names + [f"{parent}/images/foreign-image@base"]


@pytest.fixture(scope="module")
def image(stub, foreign):
    data, sha = make_tarball()
    progress, result = upload(stub, "base-img", data, sha, size=len(data), chunk=32 << 10)
    assert result.changed and result.image.state == pb.IMAGE_STATE_READY
    return result.image


def vol(team, name, **kw):
    kind = kw.pop("kind", pb.VOLUME_KIND_ROOT)
    image_id = kw.pop("image_id", "base-img" if kind == pb.VOLUME_KIND_ROOT else "")
    return pb.EnsureVolumeRequest(spec=pb.VolumeSpec(team=team, name=name, kind=kind, image_id=image_id, **kw))


def test_image_imported_with_progress_and_base(stub, parent, image):
    ds = f"{parent}/images/base-img"
    assert image.dataset == ds and image.base_snapshot == ds + "@base"
    assert zfs_get(ds + "@base", "type") == {"type": "snapshot"}
    assert zfs_get(ds, "devcloud:sha256")["devcloud:sha256"] == image.sha256
    data, sha = make_tarball()
    progress, result = upload(stub, "base-img", data, sha)
    assert result.changed is False and result.image.dataset == ds
    progress, result = upload(stub, "other-img", data, sha, size=len(data), chunk=4096)
    assert progress and progress[-1].bytes_received == len(data) and progress[-1].total_bytes == len(data)
    assert result.changed


def test_clone_twenty_instances_with_quotas(stub, parent, image):
    for i in range(CLONES):
        r = stub.EnsureVolume(vol("team-a", f"web-{i}", instance=f"inst-{i}", refquota_bytes=32 * MiB,
                                  quota_bytes=64 * MiB), timeout=30)
        assert r.changed and r.volume.mounted
    out = zfs_run("get", "-H", "-p", "-r", "-o", "name,property,value", "origin,refquota,quota,devcloud:owner",
                  f"{parent}/instances/team-a").stdout
    props: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        n, p, v = line.split("\t")
        props.setdefault(n, {})[p] = v
    for i in range(CLONES):
        got = props[f"{parent}/instances/team-a/web-{i}"]
        assert got == {"origin": f"{parent}/images/base-img@base", "refquota": str(32 * MiB),
                       "quota": str(64 * MiB), "devcloud:owner": "devcloud-agent"}
    assert stub.GetImage(pb.GetImageRequest(image_id="base-img"), timeout=10).image.clones == CLONES
    listed = stub.ListVolumes(pb.ListVolumesRequest(team="team-a"), timeout=10).volumes
    assert len(listed) == CLONES and all(v.referenced_bytes > 0 and v.available_bytes > 0 for v in listed)
    assert [v.name for v in stub.ListVolumes(pb.ListVolumesRequest(instance="inst-3"), timeout=10).volumes] == ["web-3"]


def test_refquota_enforced_on_write(stub, image):
    v = stub.EnsureVolume(vol("team-b", "small", refquota_bytes=4 * MiB), timeout=30).volume
    with pytest.raises(OSError):
        with open(os.path.join(v.mountpoint, "fill"), "wb") as f:
            for _ in range(32):
                f.write(os.urandom(MiB))
                f.flush()
                os.fsync(f.fileno())
    assert int(zfs_get(v.dataset, "referenced")["referenced"]) <= 5 * MiB


def test_snapshot_and_rollback(stub, image):
    v = stub.EnsureVolume(vol("team-b", "snappy"), timeout=30).volume
    path = os.path.join(v.mountpoint, "state")
    open(path, "w").write("before")
    s = stub.SnapshotVolume(pb.SnapshotVolumeRequest(team="team-b", name="snappy", snapshot="s1"), timeout=10)
    assert s.changed and zfs_get(f"{v.dataset}@s1", "type") == {"type": "snapshot"}
    open(path, "w").write("after")
    r = stub.RollbackVolume(pb.RollbackVolumeRequest(team="team-b", name="snappy", snapshot="s1"), timeout=10)
    assert open(path).read() == "before" and [s.name for s in r.volume.snapshots] == ["s1"]
    assert stub.DeleteSnapshot(pb.DeleteSnapshotRequest(team="team-b", name="snappy", snapshot="s1"),
                               timeout=10).deleted
    assert zfs_get(f"{v.dataset}@s1", "type") == {}


def test_idempotency_conflict_and_missing(stub, image):
    req = vol("team-c", "idem", refquota_bytes=16 * MiB)
    assert stub.EnsureVolume(req, timeout=30).changed
    for _ in range(3):
        r = stub.EnsureVolume(req, timeout=30)
        assert r.changed is False and r.volume.refquota_bytes == 16 * MiB
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureVolume(vol("team-c", "idem", kind=pb.VOLUME_KIND_FILESYSTEM), timeout=30)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and error_reason(e.value) == "VOLUME_SPEC_MISMATCH"
    assert stub.DeleteVolume(pb.DeleteVolumeRequest(team="team-c", name="never"), timeout=10).deleted is False
    assert stub.DeleteImage(pb.DeleteImageRequest(image_id="never"), timeout=10).state == pb.IMAGE_STATE_ABSENT
    with pytest.raises(grpc.RpcError) as e:
        stub.GetVolume(pb.GetVolumeRequest(team="team-c", name="never"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_concurrent_ensure_same_name(stub, image):
    req = vol("team-c", "racy")
    out, barrier = [], threading.Barrier(5)

    def go():
        barrier.wait()
        try:
            out.append(stub.EnsureVolume(req, timeout=30).changed)
        except grpc.RpcError as exc:
            out.append(exc.code())
    threads = [threading.Thread(target=go) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(out, key=str) == [False, False, False, False, True]


def test_corrupted_upload_is_data_loss_and_leaves_nothing(stub, parent):
    data, sha = make_tarball()
    bad = bytearray(data)
    bad[100] ^= 0x55
    with pytest.raises(grpc.RpcError) as e:
        upload(stub, "corrupt", bytes(bad), sha)
    assert e.value.code() in (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(grpc.RpcError) as e:
        upload(stub, "truncated", data[: len(data) // 3], sha, size=len(data))
    assert e.value.code() == grpc.StatusCode.DATA_LOSS
    for name in ("corrupt", "truncated"):
        assert zfs_get(f"{parent}/images/{name}", "type") == {}
    assert zfs_run("get", "-H", "-r", "-o", "name", "type", f"{parent}/tmp").stdout.split() == [f"{parent}/tmp"]


def test_bad_header_and_fields_are_invalid_argument(stub):
    def only_chunk():
        yield pb.EnsureImageRequest(chunk=b"x")
    with pytest.raises(grpc.RpcError) as e:
        list(stub.EnsureImage(only_chunk(), timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for bad in (vol("Team", "x"), vol("t", "a/b"), vol("t", "x", kind=0), vol("t", "x", image_id="../x"),
                vol("t", "x", kind=pb.VOLUME_KIND_FILESYSTEM, size_bytes=5),
                vol("t", "x", refquota_bytes=1 << 62)):
        with pytest.raises(grpc.RpcError) as e:
            stub.EnsureVolume(bad, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad


def test_block_volume_needs_zvol(stub, agent):
    caps = identity_pb2_grpc.IdentityServiceStub(agent.channel).GetCapabilities(
        identity_pb2.GetCapabilitiesRequest(), timeout=10)
    by_kind = {c.kind: c for c in caps.capabilities}
    assert by_kind[identity_pb2.CAPABILITY_KIND_STORAGE_ZFS].available
    zvol = by_kind[identity_pb2.CAPABILITY_KIND_STORAGE_ZVOL]
    req = vol("team-d", "disk", kind=pb.VOLUME_KIND_BLOCK, size_bytes=16 * MiB)
    if zvol.available:
        assert stub.EnsureVolume(req, timeout=30).volume.device.startswith("/dev/zvol/")
    else:
        assert "zvol" in zvol.reason
        with pytest.raises(grpc.RpcError) as e:
            stub.EnsureVolume(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(e.value) == "NOT_SUPPORTED"


def test_pool(stub, zfs_pool, parent):
    p = stub.GetPool(pb.GetPoolRequest(), timeout=10).pool
    assert p.name == zfs_pool.name and p.health == "ONLINE" and p.parent == parent
    assert p.parent_available_bytes > 0 and p.backend in ("cli", "lzc") and f"backend:{p.backend}" in p.capabilities


def test_z_delete_image_with_clones_then_clones(stub, parent, image, foreign):
    """Runs last in this module (name): parks the image, deletes every volume, checks it is gone."""
    r = stub.DeleteImage(pb.DeleteImageRequest(image_id="base-img"), timeout=30)
    assert r.state == pb.IMAGE_STATE_PARKED
    assert zfs_get(f"{parent}/images/base-img", "type") == {}
    parked = [n for n in zfs_run("get", "-H", "-d", "1", "-o", "name", "type", f"{parent}/deleted/images")
              .stdout.split() if "base-img-" in n]
    assert len(parked) == 1
    assert zfs_get(f"{parent}/instances/team-a/web-0", "origin")["origin"] == parked[0] + "@base"
    # a new image under the same id can be imported while the old one is parked
    data, sha = make_tarball(compression="bz2")
    assert upload(stub, "base-img", data, sha)[1].changed
    res = stub.DeleteVolumes(pb.DeleteVolumesRequest(team="team-a", all=True), timeout=60).results
    assert len(res) == CLONES and all(x.deleted for x in res)
    for team in ("team-b", "team-c"):
        stub.DeleteVolumes(pb.DeleteVolumesRequest(team=team, all=True), timeout=60)
    assert zfs_get(parked[0], "type") == {}, "the parked image outlived its last clone"
    for name in foreign:
        assert zfs_get(name, "type"), f"foreign dataset {name} was touched"
    src = zfs_run("get", "-H", "-o", "source", "devcloud:owner", f"{parent}/instances/foreign-team/vol").stdout
    assert src.strip().startswith("inherited"), "the agent marked a foreign dataset"


def test_cancelled_upload_leaves_nothing(stub, agent, parent):
    """A client that gives up mid-upload (cancel) leaves no image and no temporary dataset."""
    import time as _time
    data, sha = make_tarball([("./big", "file", os.urandom(4 * MiB))], compression="")
    sent = threading.Event()

    def requests():
        yield pb.EnsureImageRequest(header=pb.ImageHeader(image_id="cancelled", sha256=sha, size_bytes=len(data)))
        yield pb.EnsureImageRequest(chunk=data[:MiB])
        sent.set()
        _time.sleep(30)                       # never finishes: the client cancels first
        yield pb.EnsureImageRequest(chunk=data[MiB:])
    call = stub.EnsureImage(requests(), timeout=60)
    sent.wait(10)
    _time.sleep(0.5)
    call.cancel()
    deadline = _time.monotonic() + 30
    while _time.monotonic() < deadline:
        left = zfs_run("get", "-H", "-r", "-o", "name", "type", f"{parent}/tmp").stdout.split()
        if left == [f"{parent}/tmp"]:
            break
        _time.sleep(0.2)
    assert left == [f"{parent}/tmp"], f"temporary datasets left behind: {left}"
    assert zfs_get(f"{parent}/images/cancelled", "type") == {}
    caps = identity_pb2_grpc.IdentityServiceStub(agent.channel).GetCapabilities(
        identity_pb2.GetCapabilitiesRequest(), timeout=10)
    assert any(e.startswith("zfs.backend:") for e in caps.extensions)
