"""StorageService on real ZFS (the session pool). Independent checks with `zfs get -Hp`."""
from __future__ import annotations

import os
import subprocess
import threading

import pytest

from agent.drivers.zfs import open_backend
from agent.errors import (Aborted, AlreadyExists, DataLoss, FailedPrecondition, InvalidArgument,
                          NotFound, ResourceExhausted)
from agent.metrics import Metrics
from agent.services.storage.service import StorageService
from agent.services.storage.model import ImageState, VolumeKind, VolumeSpec
from tests.support.zfs import TEST_BUSY_TIMEOUT, chunked, make_tarball, zfs_destroy_tree, zfs_get, zfs_run

MiB = 1 << 20


@pytest.fixture
def svc(zfs_pool, zfs_parent):
    s = StorageService(open_backend(Metrics(), "auto", busy_timeout=TEST_BUSY_TIMEOUT), zfs_parent,
                       allow_device_nodes=False,
                       wait_timeout=10)
    s.start()
    yield s
    zfs_destroy_tree(zfs_parent)


@pytest.fixture(params=["tar-filter", "no-tar-filter"])
def tar_filter(request, monkeypatch):
    """Extraction with tarfile's filter hook (Python >= 3.11.4) and without it (Debian
    bookworm's 3.11.2): the same checks must hold either way."""
    from agent.services.storage import tar as storage_tar
    if request.param == "no-tar-filter":
        monkeypatch.setattr(storage_tar, "_HAS_FILTER", False)
    elif not storage_tar._HAS_FILTER:
        pytest.skip("this Python's tarfile has no extraction filters (< 3.11.4)")
    return request.param


@pytest.fixture
def image(svc):
    data, sha = make_tarball()
    img, changed = svc.ensure_image("img1", sha, chunked(data))
    assert changed
    return img


def local_names(root: str) -> list[str]:
    out = zfs_run("get", "-H", "-r", "-o", "name", "-s", "local", "devcloud:owner", root).stdout.split()
    return sorted(set(out))


def test_start_creates_marked_dirs(svc, zfs_parent):
    for d in ("", "/images", "/instances", "/deleted", "/deleted/images", "/tmp"):
        got = zfs_run("get", "-H", "-o", "value,source", "devcloud:owner", zfs_parent + d).stdout.split()
        assert got == ["devcloud-agent", "local"], d
    assert svc.start()["mounted"] == []        # idempotent


def test_start_refuses_foreign_parent(zfs_pool, zfs_parent):
    zfs_run("create", zfs_parent)
    try:
        svc = StorageService(open_backend(Metrics()), zfs_parent)
        with pytest.raises(FailedPrecondition) as e:
            svc.start()
        assert e.value.reason == "NOT_OURS"
        assert zfs_run("get", "-H", "-r", "-o", "name", "type", zfs_parent).stdout.split() == [zfs_parent]
    finally:
        zfs_destroy_tree(zfs_parent)


def test_import_image_from_stream(svc, zfs_parent, tar_filter):
    data, sha = make_tarball()
    seen = []
    img, changed = svc.ensure_image("img1", sha, chunked(data, 4096), size_bytes=len(data), progress=seen.append)
    assert changed and img.sha256 == sha
    ds = f"{zfs_parent}/images/img1"
    got = zfs_get(ds, "readonly", "devcloud:sha256", "devcloud:type", "mountpoint")
    assert got["devcloud:sha256"] == sha and got["devcloud:type"] == "image"
    with pytest.raises(OSError) as e:        # readonly=on (zfs-fuse shows it as "off temporary" while mounted)
        open(os.path.join(got["mountpoint"], "new-file"), "w")
    assert e.value.errno == 30               # EROFS
    assert zfs_get(ds + "@base", "type") == {"type": "snapshot"}
    root = got["mountpoint"]
    assert open(os.path.join(root, "etc/os-release")).read() == "ID=devcloud\n"
    assert os.readlink(os.path.join(root, "lib")) == "usr/lib"
    assert os.readlink(os.path.join(root, "etc/alt")) == "/usr/lib/big.bin"
    assert os.stat(os.path.join(root, "bin/tool")).st_mode & 0o7777 == 0o4755
    assert os.stat(os.path.join(root, "bin/tool2")).st_ino == os.stat(os.path.join(root, "bin/tool")).st_ino
    assert os.path.getsize(os.path.join(root, "usr/lib/big.bin")) == 256 * 4096
    assert seen and seen[-1].bytes_received == len(data) and seen[-1].entries == 11
    assert seen[-1].bytes_extracted >= 256 * 4096
    assert [p.bytes_received for p in seen] == sorted(p.bytes_received for p in seen)
    assert zfs_run("get", "-H", "-r", "-o", "name", "type", f"{zfs_parent}/tmp").stdout.split() == [f"{zfs_parent}/tmp"]


def test_import_is_idempotent_without_reading(svc, image):
    def must_not_read():
        raise AssertionError("the stream was read for an existing image")
        yield b""  # pragma: no cover
    for _ in range(3):
        img, changed = svc.ensure_image("img1", image.sha256, must_not_read())
        assert not changed and img.dataset == image.dataset
    with pytest.raises(AlreadyExists) as e:
        svc.ensure_image("img1", "0" * 64, must_not_read())
    assert e.value.reason == "IMAGE_SHA256_MISMATCH"


def test_import_from_local_path(svc, tmp_path, zfs_parent):
    data, sha = make_tarball(compression="xz")
    p = tmp_path / "rootfs.tar.xz"
    p.write_bytes(data)
    img, changed = svc.ensure_image("local", "", local_path=str(p))
    assert changed and img.sha256 == sha
    assert svc.ensure_image("local", "", local_path=str(p))[1] is False
    assert zfs_get(f"{zfs_parent}/images/local@base", "type") == {"type": "snapshot"}


def _nothing_left(zfs_parent):
    for d in ("images", "tmp"):
        assert zfs_run("get", "-H", "-r", "-o", "name", "type", f"{zfs_parent}/{d}").stdout.split() == \
            [f"{zfs_parent}/{d}"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "size"])
def test_corrupted_or_truncated_upload_is_data_loss(svc, zfs_parent, damage):
    data, sha = make_tarball(compression="")
    size = 0
    if damage == "flip":
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0xFF
        data = bytes(bad)
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        size = len(data) + 10
    with pytest.raises(DataLoss):
        svc.ensure_image("bad", sha, chunked(data), size_bytes=size)
    _nothing_left(zfs_parent)


@pytest.mark.parametrize("members,needle", [
    ([("../evil", "file", b"x")], "escapes"),
    ([("/etc/evil", "file", b"x")], "absolute"),
    ([("./a", "dir", None), ("./a/up", "symlink", "../../etc")], "escapes the image root"),
    ([("./dev", "dir", None), ("./dev/null", "chardev", None)], "device node"),
    ([("./lnk", "symlink", "/tmp"), ("./lnk/x", "file", b"x")], "through the symlink"),
    ([("./h", "hardlink", "../../etc/passwd")], "escapes"),
    ([("./s", "symlink", "/etc/passwd"), ("./h", "hardlink", "s")], "not a regular file"),
])
def test_unsafe_members_refused(svc, zfs_parent, members, needle, tar_filter):
    data, sha = make_tarball(members)
    with pytest.raises(InvalidArgument) as e:
        svc.ensure_image("unsafe", sha, chunked(data))
    assert needle in e.value.message
    assert e.value.violations[0].field == "tarball"
    _nothing_left(zfs_parent)


def test_attributes_that_cannot_be_set_fail_the_import(svc, zfs_parent, tar_filter, monkeypatch):
    """A refused chmod (here: a stand-in for seccomp's RestrictSUIDSGID=, which made a
    04755 binary land as 0600 in the real-kernel guest) fails the import instead of
    producing a silently different image; nothing is left behind."""
    import errno
    import tarfile
    real_chmod = tarfile.os.chmod

    def chmod(path, mode, *a, **kw):
        if mode & 0o6000:
            raise PermissionError(errno.EPERM, "Operation not permitted", path)
        return real_chmod(path, mode, *a, **kw)
    monkeypatch.setattr(tarfile.os, "chmod", chmod)
    data, sha = make_tarball()
    with pytest.raises(FailedPrecondition) as e:
        svc.ensure_image("suid", sha, chunked(data))
    assert e.value.reason == "EXTRACT_ATTRIBUTES" and "bin/tool" in e.value.message
    _nothing_left(zfs_parent)


def test_not_a_tarball_with_right_sha_is_invalid(svc, zfs_parent):
    import hashlib
    data = b"this is not a tar archive" * 100
    with pytest.raises(InvalidArgument):
        svc.ensure_image("junk", hashlib.sha256(data).hexdigest(), chunked(data))
    _nothing_left(zfs_parent)


def test_concurrent_import_same_id_aborts(svc):
    data, sha = make_tarball()
    gate = threading.Event()
    started = threading.Event()

    def slow():
        started.set()
        gate.wait(10)
        yield from chunked(data)

    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", svc.ensure_image("same", sha, slow())))
    t.start()
    started.wait(5)
    with pytest.raises(Aborted):
        svc.ensure_image("same", sha, chunked(data))
    gate.set()
    t.join(20)
    assert result["r"][1] is True


def test_root_volume_clone_quota_and_idempotency(svc, image, zfs_parent):
    spec = VolumeSpec(team="t1", name="web", kind=VolumeKind.ROOT, image_id="img1", instance="i-1",
                      refquota_bytes=64 * MiB)
    vol, changed = svc.ensure_volume(spec)
    assert changed
    ds = f"{zfs_parent}/instances/t1/web"
    assert svc.volume_dataset("t1", "web") == ds == vol.dataset
    got = zfs_get(ds, "origin", "refquota", "quota", "mounted", "devcloud:owner", "devcloud:team",
                  "devcloud:instance", "devcloud:image", "devcloud:kind")
    assert got == {"origin": f"{zfs_parent}/images/img1@base", "refquota": str(64 * MiB), "quota": "0",
                   "mounted": "yes", "devcloud:owner": "devcloud-agent", "devcloud:team": "t1",
                   "devcloud:instance": "i-1", "devcloud:image": "img1", "devcloud:kind": "root"}
    assert os.path.exists(os.path.join(vol.mountpoint, "etc/os-release"))
    for _ in range(3):
        again, changed = svc.ensure_volume(spec)
        assert not changed and again.dataset == ds
    with pytest.raises(AlreadyExists):
        svc.ensure_volume(VolumeSpec(team="t1", name="web", kind=VolumeKind.FILESYSTEM, instance="i-1"))
    with pytest.raises(AlreadyExists):
        svc.ensure_volume(VolumeSpec(team="t1", name="web", kind=VolumeKind.ROOT, image_id="img1", instance="i-2"))
    bigger, changed = svc.ensure_volume(VolumeSpec(**{**spec.__dict__, "refquota_bytes": 128 * MiB,
                                                      "quota_bytes": 256 * MiB}))
    assert changed and zfs_get(ds, "refquota", "quota") == {"refquota": str(128 * MiB), "quota": str(256 * MiB)}
    now = VolumeSpec(**{**spec.__dict__, "refquota_bytes": 128 * MiB, "quota_bytes": 256 * MiB})
    assert svc.diff_volume(spec) != [] and svc.diff_volume(now) == []


def test_root_volume_needs_image(svc):
    with pytest.raises(FailedPrecondition) as e:
        svc.ensure_volume(VolumeSpec(team="t1", name="x", kind=VolumeKind.ROOT, image_id="missing"))
    assert e.value.reason == "IMAGE_NOT_FOUND"


def test_block_volume_matches_capability(svc, zfs_parent):
    spec = VolumeSpec(team="t1", name="disk", kind=VolumeKind.BLOCK, size_bytes=16 * MiB)
    if "zvol" in svc.capabilities():
        vol, changed = svc.ensure_volume(spec)
        assert changed and zfs_get(vol.dataset, "volsize")["volsize"] == str(16 * MiB)
    else:
        with pytest.raises(FailedPrecondition) as e:
            svc.ensure_volume(spec)
        assert e.value.reason == "NOT_SUPPORTED" and "zvol" in e.value.message
        assert zfs_get(f"{zfs_parent}/instances/t1/disk", "type") == {}


def test_refquota_enforced_and_snapshots_excluded(svc, zfs_parent):
    vol, _ = svc.ensure_volume(VolumeSpec(team="t1", name="q", refquota_bytes=8 * MiB))
    with pytest.raises(OSError):
        with open(os.path.join(vol.mountpoint, "fill"), "wb") as f:
            for _ in range(64):
                f.write(os.urandom(MiB))
                f.flush()
                os.fsync(f.fileno())
    assert int(zfs_get(vol.dataset, "referenced")["referenced"]) <= 9 * MiB


def test_snapshot_rollback_delete_snapshot(svc, zfs_parent):
    vol, _ = svc.ensure_volume(VolumeSpec(team="t1", name="s"))
    path = os.path.join(vol.mountpoint, "f")
    open(path, "w").write("one")
    snap, changed = svc.snapshot_volume("t1", "s", "zz-first")   # names sort the other way round
    svc.delete_snapshot("t1", "s", "zz-first")
    snap, changed = svc.snapshot_volume("t1", "s", "s1")
    assert changed and zfs_get(f"{vol.dataset}@s1", "type") == {"type": "snapshot"}
    assert svc.snapshot_volume("t1", "s", "s1")[1] is False
    open(path, "w").write("two")
    svc.snapshot_volume("t1", "s", "a2")         # same second as s1, sorts before it by name
    assert [x.name for x in svc.get_volume("t1", "s").snapshots] == ["s1", "a2"]
    with pytest.raises(FailedPrecondition) as e:
        svc.rollback_volume("t1", "s", "s1")
    assert e.value.reason == "SNAPSHOT_NOT_LATEST"
    svc.rollback_volume("t1", "s", "s1", destroy_newer=True)
    assert open(path).read() == "one"
    assert zfs_get(f"{vol.dataset}@a2", "type") == {}
    with pytest.raises(NotFound):
        svc.rollback_volume("t1", "s", "nope")
    assert svc.delete_snapshot("t1", "s", "s1") is True
    assert svc.delete_snapshot("t1", "s", "s1") is False
    assert zfs_get(f"{vol.dataset}@s1", "type") == {}
    assert [s.name for s in svc.get_volume("t1", "s").snapshots] == []


def test_delete_missing_ok_and_foreign_untouched(svc, zfs_parent):
    assert svc.delete_volume("t1", "nothing") is False
    svc.ensure_volume(VolumeSpec(team="t1", name="mine"))
    foreign = f"{zfs_parent}/instances/t1/foreign"
    zfs_run("create", foreign)                      # inherits the owner mark, but not locally
    with pytest.raises(FailedPrecondition) as e:
        svc.delete_volume("t1", "foreign")
    assert e.value.reason == "NOT_OURS"
    with pytest.raises(FailedPrecondition):
        svc.ensure_volume(VolumeSpec(team="t1", name="foreign"))
    with pytest.raises(NotFound):
        svc.get_volume("t1", "foreign")
    results = svc.delete_volumes("t1")
    assert [(r.name, r.deleted) for r in results] == [("mine", True)]
    assert zfs_get(foreign, "type") == {"type": "filesystem"}
    assert zfs_get(f"{zfs_parent}/instances/t1/mine", "type") == {}


def test_bulk_delete_team(svc, image, zfs_parent):
    for i in range(6):
        svc.ensure_volume(VolumeSpec(team="big", name=f"v{i}", kind=VolumeKind.ROOT, image_id="img1"))
    svc.snapshot_volume("big", "v2", "snap")
    results = svc.delete_volumes("big")
    assert sorted(r.name for r in results if r.deleted) == [f"v{i}" for i in range(6)]
    assert zfs_get(f"{zfs_parent}/instances/big", "type") == {}
    assert svc.delete_volumes("big") == []
    svc.ensure_volume(VolumeSpec(team="big", name="a"))
    res = svc.delete_volumes("big", ["a", "b"])
    assert [(r.name, r.deleted, r.error) for r in res] == [("a", True, ""), ("b", False, "")]


def test_bulk_delete_by_name_lists_the_team_once(svc, image, zfs_parent, monkeypatch):
    for i in range(5):
        svc.ensure_volume(VolumeSpec(team="bn", name=f"v{i}", kind=VolumeKind.ROOT, image_id="img1"))
    svc.snapshot_volume("bn", "v1", "snap")
    events, given = [], {}
    real_list, real_destroy = svc.zfs.list, svc.zfs.destroy
    monkeypatch.setattr(svc.zfs, "list", lambda root, *a, **kw: events.append(("list", root)) or
                        real_list(root, *a, **kw))

    def destroy(name, **kw):
        events.append(("destroy", name))
        given[name] = sorted(d.name.rsplit("/", 1)[-1] for d in kw.get("tree") or [])
        return real_destroy(name, **kw)
    monkeypatch.setattr(svc.zfs, "destroy", destroy)
    res = svc.delete_volumes("bn", ["v0", "v1", "v3", "gone"])
    assert [(r.name, r.deleted, r.error) for r in res] == [("v0", True, ""), ("v1", True, ""), ("v3", True, ""),
                                                         ("gone", False, "")]
    # the team is listed once and each destroy starts from its part of that listing: no `zfs get -r`
    # per volume before its destroy (a busy retry inside the destroy lists it again; zfs-fuse runs
    # one command at a time, so these reads add up)
    team = f"{zfs_parent}/instances/bn"
    assert events[0] == ("list", team) and events.count(("list", team)) == 1, events
    for vol in ("v0", "v1", "v3"):
        first_destroy = events.index(("destroy", f"{team}/{vol}"))
        assert ("list", f"{team}/{vol}") not in events[:first_destroy], events
    assert given == {f"{team}/v0": ["v0"], f"{team}/v1": ["v1", "v1@snap"], f"{team}/v3": ["v3"]}, given
    for name in ("v0", "v1", "v1@snap", "v3"):
        assert zfs_get(f"{zfs_parent}/instances/bn/{name}", "type") == {}, name
    for name in ("v2", "v4"):
        assert zfs_get(f"{zfs_parent}/instances/bn/{name}", "type") == {"type": "filesystem"}, name


def test_bulk_delete_of_every_volume_by_name_is_one_recursive_destroy(svc, image, zfs_parent, monkeypatch):
    for i in range(4):
        svc.ensure_volume(VolumeSpec(team="whole", name=f"v{i}", kind=VolumeKind.ROOT, image_id="img1"))
    svc.snapshot_volume("whole", "v1", "snap")
    destroyed, real_destroy = [], svc.zfs.destroy
    monkeypatch.setattr(svc.zfs, "destroy", lambda name, **kw: destroyed.append(name) or real_destroy(name, **kw))
    res = svc.delete_volumes("whole", ["v0", "v1", "v2", "v3", "absent"])
    assert [(r.name, r.deleted, r.error) for r in res] == [(f"v{i}", True, "") for i in range(4)] + \
        [("absent", False, "")]
    team = f"{zfs_parent}/instances/whole"
    assert destroyed == [team]                          # one destroy of the team, not one per volume
    assert zfs_get(team, "type") == {}
    # the team comes back with the next volume
    svc.ensure_volume(VolumeSpec(team="whole", name="again"))
    assert zfs_get(f"{team}/again", "type") == {"type": "filesystem"}


def test_a_foreign_dataset_in_the_team_means_volume_by_volume(svc, zfs_parent):
    for i in range(2):
        svc.ensure_volume(VolumeSpec(team="mixed", name=f"v{i}"))
    foreign = f"{zfs_parent}/instances/mixed/foreign"
    zfs_run("create", foreign)                          # not marked by us
    res = svc.delete_volumes("mixed", ["v0", "v1"])
    assert [(r.name, r.deleted) for r in res] == [("v0", True), ("v1", True)]
    assert zfs_get(foreign, "type") == {"type": "filesystem"}


def test_delete_image_with_clones_parks_then_collects(svc, image, zfs_parent):
    for i in range(3):
        svc.ensure_volume(VolumeSpec(team="t1", name=f"c{i}", kind=VolumeKind.ROOT, image_id="img1"))
    assert svc.delete_image("img1") == ImageState.PARKED
    assert zfs_get(f"{zfs_parent}/images/img1", "type") == {}
    parked = zfs_run("get", "-H", "-d", "1", "-o", "name", "type", f"{zfs_parent}/deleted/images").stdout.split()[1:]
    assert len(parked) == 1 and parked[0].startswith(f"{zfs_parent}/deleted/images/img1-")
    assert zfs_get(f"{zfs_parent}/instances/t1/c0", "origin")["origin"] == parked[0] + "@base"
    assert [i.state for i in svc.list_images(include_parked=True)] == [ImageState.PARKED]
    assert svc.delete_image("img1") == ImageState.ABSENT
    svc.delete_volume("t1", "c0")
    svc.delete_volume("t1", "c1")
    assert zfs_get(parked[0], "type") == {"type": "filesystem"}
    svc.delete_volume("t1", "c2")
    assert zfs_get(parked[0], "type") == {}


def test_delete_busy_volume(svc):
    vol, _ = svc.ensure_volume(VolumeSpec(team="t1", name="busy"))
    holder = subprocess.Popen(["sleep", "30"], cwd=vol.mountpoint)
    svc.zfs.busy_timeout = 1.0
    try:
        with pytest.raises(FailedPrecondition) as e:
            svc.delete_volume("t1", "busy")
        assert e.value.reason == "DATASET_BUSY" and vol.mountpoint in e.value.message
        assert zfs_get(vol.dataset, "mounted") == {"mounted": "yes"}
    finally:
        holder.kill()
        holder.wait()
    assert svc.delete_volume("t1", "busy") is True


def test_concurrent_ensure_same_volume(svc, image):
    spec = VolumeSpec(team="t1", name="race", kind=VolumeKind.ROOT, image_id="img1")
    results, errors = [], []
    barrier = threading.Barrier(4)

    def go():
        barrier.wait()
        try:
            results.append(svc.ensure_volume(spec)[1])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and sorted(results) == [False, False, False, True]


def test_resize_and_limits(svc):
    vol, _ = svc.ensure_volume(VolumeSpec(team="t1", name="r", refquota_bytes=32 * MiB))
    out, changed = svc.resize_volume("t1", "r", refquota_bytes=64 * MiB, reservation_bytes=4 * MiB)
    assert changed and zfs_get(vol.dataset, "refquota", "reservation") == {"refquota": str(64 * MiB),
                                                                          "reservation": str(4 * MiB)}
    assert svc.resize_volume("t1", "r", refquota_bytes=64 * MiB)[1] is False
    svc.resize_volume("t1", "r", refquota_bytes=0)
    assert zfs_get(vol.dataset, "refquota") == {"refquota": "0"}
    with pytest.raises(InvalidArgument):
        svc.resize_volume("t1", "r", refquota_bytes=1 << 60)
    with pytest.raises(NotFound):
        svc.resize_volume("t1", "missing", refquota_bytes=MiB)
    with pytest.raises(ResourceExhausted):
        svc.resize_volume("t1", "r", reservation_bytes=svc.pool_capacity() - 1)


def test_list_get_inventory_pool(svc, image, zfs_pool):
    svc.ensure_volume(VolumeSpec(team="a", name="v1", instance="i1"))
    svc.ensure_volume(VolumeSpec(team="a", name="v2", instance="i2"))
    svc.ensure_volume(VolumeSpec(team="b", name="v1", instance="i1"))
    assert sorted((v.team, v.name) for v in svc.list_volumes()) == [("a", "v1"), ("a", "v2"), ("b", "v1")]
    assert [(v.team, v.name) for v in svc.list_volumes(team="a", instance="i2")] == [("a", "v2")]
    v = svc.get_volume("a", "v1")
    assert v.used_bytes > 0 and v.available_bytes > 0 and v.mounted
    with pytest.raises(NotFound):
        svc.get_volume("a", "zzz")
    inv = {o.dataset: o.marks for o in svc.inventory()}
    assert inv[svc.volume_dataset("b", "v1")]["devcloud:instance"] == "i1"
    assert inv[svc.image_dataset("img1")]["devcloud:type"] == "image"
    p = svc.pool_status()
    assert p.name == zfs_pool.name and p.health == "ONLINE" and p.size_bytes > 0
    assert p.parent_available_bytes > 0 and f"backend:{p.backend}" in p.capabilities


def test_start_remounts_and_removes_stale_imports(svc, zfs_parent):
    vol, _ = svc.ensure_volume(VolumeSpec(team="t1", name="m"))
    svc.zfs.unmount(vol.dataset, vol.mountpoint)
    stale = f"{zfs_parent}/tmp/crashed-1234"
    zfs_run("create", "-o", "devcloud:owner=devcloud-agent", stale)
    foreign = f"{zfs_parent}/tmp/foreign"
    zfs_run("create", foreign)
    out = svc.start()
    assert vol.dataset in out["mounted"] and out["stale_imports_removed"] == 1
    assert zfs_get(vol.dataset, "mounted") == {"mounted": "yes"}
    assert zfs_get(stale, "type") == {} and zfs_get(foreign, "type") == {"type": "filesystem"}
