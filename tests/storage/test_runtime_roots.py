"""What runtimes need from storage, on the session's real ZFS: LXD/Incus images
(unified, split with a squashfs or tarball rootfs) and their metadata, roots of
unprivileged instances (a shifted variant per image and map, or a plain clone
marked for an idmapped mount), and DISK_FILE volumes (VM disks without zvols).
Checked with `zfs get -Hp` and stat, never with the service's own reads alone."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile

import grpc
import pytest

from agent.drivers.base import Availability
from agent.drivers.zfs import open_backend
from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from agent.metrics import Metrics
from agent.model.idmap import MODE_MOUNT, MODE_SHIFTED, IdMap
from agent.services.storage.model import ImageFormat, ImageState, VolumeKind, VolumeSpec
from agent.services.storage.service import StorageService
from tests.support.ovn import wait_until
from tests.support.zfs import TEST_BUSY_TIMEOUT, chunked, make_tarball, zfs_destroy_tree, zfs_get, zfs_run

MiB = 1 << 20
MAP = IdMap(100000, 100000, 65536)
META = """architecture: x86_64
creation_date: 1700000000
expiry_date: 1702592000
properties:
  architecture: amd64
  description: "Busybox 1.35 amd64 (20231114_05:24)"
  os: busybox
  release: "1.35"
  serial: "20231114_05:24"
  variant: default
templates:
  /etc/hostname:
    when:
    - create
    - copy
    create_only: false
    template: hostname.tpl
    properties: {}
"""


def service(parent: str, **kw) -> StorageService:
    s = StorageService(open_backend(Metrics(), "auto", busy_timeout=TEST_BUSY_TIMEOUT), parent, wait_timeout=20, **kw)
    s.start()
    return s


@pytest.fixture
def svc(zfs_pool, zfs_parent):
    s = service(zfs_parent, idmap_policy="shift")
    yield s
    zfs_destroy_tree(zfs_parent)


def _tar(members: list[tuple], gz: bool = True) -> bytes:
    """(name, kind, payload, uid, mode) members -> tarball bytes (deterministic)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, payload, uid, mode in members:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid, ti.mode = 1700000000, uid, uid, mode
            if kind == "file":
                ti.size = len(payload)
                tar.addfile(ti, io.BytesIO(payload))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            else:
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                tar.addfile(ti)
    data = buf.getvalue()
    if gz:
        import gzip
        data = gzip.compress(data, mtime=0)
    return data


ROOTFS = [("etc", "dir", None, 0, 0o755), ("etc/os-release", "file", b"ID=busybox\n", 0, 0o644),
          ("root", "dir", None, 0, 0o700), ("home", "dir", None, 0, 0o755), ("home/user", "dir", None, 1000, 0o755),
          ("bin", "dir", None, 0, 0o755), ("bin/su", "file", b"#!/bin/sh\n", 0, 0o4755),
          ("bin/sh", "symlink", "/bin/busybox", 0, 0o777)]


def unified(meta: str = META, rootfs=ROOTFS) -> bytes:
    return _tar([("metadata.yaml", "file", meta.encode(), 0, 0o644), ("templates", "dir", None, 0, 0o755),
                 ("templates/hostname.tpl", "file", b"{{ container.name }}\n", 0, 0o644),
                 ("rootfs", "dir", None, 0, 0o755)] + [(f"rootfs/{n}", *rest) for n, *rest in rootfs])


def metadata_tarball(meta: str = META) -> bytes:
    return _tar([("metadata.yaml", "file", meta.encode(), 0, 0o644), ("templates", "dir", None, 0, 0o755),
                 ("templates/hostname.tpl", "file", b"{{ container.name }}\n", 0, 0o644)])


def sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def retry_busy(fn, timeout: float = 90.0):
    """fn(), retried while zfs-fuse calls a dataset busy: on this shared machine a process of another
    session that unshares its mount namespace pins every mount it saw (a controller retries too)."""
    import time
    end = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except FailedPrecondition as exc:
            if exc.reason != "DATASET_BUSY" or time.monotonic() > end:
                raise
            time.sleep(1)


def owner(path: str) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


# -- LXD/Incus images ----------------------------------------------------------------------


def test_unified_image_keeps_its_layout_and_metadata(svc, zfs_parent):
    data = unified()
    img, changed = svc.ensure_image("bb-unified", sha(data), chunked(data))
    assert changed and img.format == ImageFormat.LXD_UNIFIED
    assert img.rootfs == f"{img.mountpoint}/rootfs" and os.path.isfile(f"{img.rootfs}/etc/os-release")
    assert os.path.isfile(f"{img.mountpoint}/metadata.yaml")
    assert os.path.isfile(f"{img.mountpoint}/templates/hostname.tpl")
    m = svc.get_image("bb-unified").metadata
    assert m is not None and (m.architecture, m.creation_unix, m.expiry_unix) == ("x86_64", 1700000000, 1702592000)
    assert (m.prop("os"), m.prop("release"), m.prop("variant")) == ("busybox", "1.35", "default")
    assert m.prop("description") == "Busybox 1.35 amd64 (20231114_05:24)" and m.templates == ("/etc/hostname",)
    props = zfs_get(f"{zfs_parent}/images/bb-unified", "devcloud:format", "devcloud:rootfs")
    assert props == {"devcloud:format": "lxd-unified", "devcloud:rootfs": "rootfs"}
    vol, _ = svc.ensure_volume(VolumeSpec("t1", "u1", VolumeKind.ROOT, image_id="bb-unified", instance="u1"))
    assert vol.rootfs == f"{vol.mountpoint}/rootfs" and os.path.isfile(f"{vol.rootfs}/etc/os-release")
    assert zfs_get(vol.dataset, "devcloud:rootfs") == {"devcloud:rootfs": "rootfs"}
    plain, psha = make_tarball()                     # a plain rootfs tarball keeps working: its root is the rootfs
    p, _ = svc.ensure_image("plain", psha, chunked(plain))
    assert p.format == ImageFormat.ROOTFS_TARBALL and p.rootfs == p.mountpoint and p.metadata is None
    v2, _ = svc.ensure_volume(VolumeSpec("t1", "p1", VolumeKind.ROOT, image_id="plain", instance="p1"))
    assert v2.rootfs == v2.mountpoint and os.path.isfile(f"{v2.rootfs}/etc/os-release")


def test_split_image_streamed_with_a_squashfs_and_from_files_with_a_tarball(svc, zfs_parent, tmp_path):
    if not shutil.which("mksquashfs"):
        pytest.skip("mksquashfs missing: apt install squashfs-tools (integration/runtimes/setup.sh)")
    root = tmp_path / "rootfs"
    for name, kind, payload, uid, mode in ROOTFS:
        p = root / name
        if kind == "dir":
            p.mkdir(parents=True, exist_ok=True)
        elif kind == "file":
            p.write_bytes(payload)
        else:
            os.symlink(payload, p)
        if kind != "symlink":
            os.chown(p, uid, uid)
            os.chmod(p, mode)
    sq = tmp_path / "rootfs.squashfs"
    subprocess.run(["mksquashfs", str(root), str(sq), "-noappend", "-quiet", "-no-progress"], check=True)
    meta, rootfs = metadata_tarball(), sq.read_bytes()
    img, changed = svc.ensure_image("bb-split", sha(meta, rootfs), chunked(meta + rootfs), fmt=ImageFormat.LXD_SPLIT,
                                    metadata_size=len(meta), size_bytes=len(meta) + len(rootfs))
    assert changed and img.format == ImageFormat.LXD_SPLIT and img.sha256 == sha(meta, rootfs)   # Incus's fingerprint
    assert owner(f"{img.rootfs}/home/user") == (1000, 1000, 0o755) and owner(f"{img.rootfs}/bin/su")[2] == 0o4755
    assert not any(n.startswith(".devcloud") for n in os.listdir(img.mountpoint))
    assert svc.get_image("bb-split").metadata.prop("os") == "busybox"
    # the same split image from files on the node, its rootfs a tarball this time
    (tmp_path / "meta.tar.gz").write_bytes(meta)
    (tmp_path / "rootfs.tar.gz").write_bytes(_tar(ROOTFS))
    img2, _ = svc.ensure_image("bb-split-tar", "", local_path=str(tmp_path / "meta.tar.gz"),
                               rootfs_local_path=str(tmp_path / "rootfs.tar.gz"))
    assert img2.format == ImageFormat.LXD_SPLIT and os.path.isfile(f"{img2.rootfs}/etc/os-release")
    assert img2.sha256 == sha(meta, (tmp_path / "rootfs.tar.gz").read_bytes())
    again, changed = svc.ensure_image("bb-split-tar", "", local_path=str(tmp_path / "meta.tar.gz"),
                                      rootfs_local_path=str(tmp_path / "rootfs.tar.gz"))
    assert not changed and again.dataset == img2.dataset


@pytest.mark.parametrize("case,needle", [
    ("no-date", "Missing creation date"), ("arch", "unknown architecture"), ("vm", "VM image"),
    ("template", "file name under templates"), ("split-no-rootfs", "needs its rootfs file")])
def test_bad_lxd_images_are_invalid_and_leave_nothing(svc, zfs_parent, case, needle):
    kw: dict = {}
    if case == "no-date":
        data = unified(META.replace("creation_date: 1700000000\n", ""))
    elif case == "arch":
        data = unified(META.replace("architecture: x86_64", "architecture: vax"))
    elif case == "template":
        data = unified(META.replace("template: hostname.tpl", "template: ../x.tpl"))
    elif case == "vm":
        data = _tar([("metadata.yaml", "file", META.encode(), 0, 0o644), ("rootfs.img", "file", b"QFI\xfb", 0, 0o644)])
    else:
        data = metadata_tarball()
        kw = dict(fmt=ImageFormat.LXD_SPLIT, metadata_size=len(data))
    with pytest.raises(InvalidArgument) as e:
        svc.ensure_image("bad", sha(data), chunked(data), **kw)
    assert needle in e.value.message
    assert zfs_run("list", "-H", "-r", "-o", "name", f"{zfs_parent}/tmp").stdout.split() == [f"{zfs_parent}/tmp"]
    assert zfs_get(f"{zfs_parent}/images/bad", "type") == {}


# -- roots of unprivileged instances -----------------------------------------------------------


def test_shifted_variant_made_once_per_map_and_cloned(svc, zfs_parent):
    data = unified()
    svc.ensure_image("bb", sha(data), chunked(data))
    v1, changed = svc.ensure_volume(VolumeSpec("t1", "u1", VolumeKind.ROOT, image_id="bb", instance="u1", idmap=MAP))
    variant = f"{zfs_parent}/variants/bb_u100000_g100000_n65536"
    assert changed and v1.origin == f"{variant}@base" and (v1.idmap, v1.idmap_mode) == (MAP, MODE_SHIFTED)
    marks = zfs_get(variant, "devcloud:type", "devcloud:idmap", "devcloud:image", "devcloud:owner")
    assert marks == {"devcloud:type": "variant", "devcloud:idmap": "u100000:g100000:n65536", "devcloud:image": "bb",
                     "devcloud:owner": "devcloud-agent"}
    r = v1.rootfs
    assert owner(r) == (100000, 100000, 0o755) and owner(f"{r}/root") == (100000, 100000, 0o700)
    assert owner(f"{r}/home/user")[:2] == (101000, 101000) and owner(f"{r}/bin/su") == (100000, 100000, 0o4755)
    assert os.lstat(f"{r}/bin/sh").st_uid == 100000
    assert owner(f"{v1.mountpoint}/metadata.yaml")[:2] == (0, 0)          # only the rootfs is shifted
    image_root = svc.get_image("bb").rootfs
    assert owner(f"{image_root}/root")[:2] == (0, 0)                    # the image itself is untouched
    v2, _ = svc.ensure_volume(VolumeSpec("t1", "u2", VolumeKind.ROOT, image_id="bb", instance="u2", idmap=MAP))
    other = IdMap(200000, 300000, 65536)
    v3, _ = svc.ensure_volume(VolumeSpec("t1", "u3", VolumeKind.ROOT, image_id="bb", instance="u3", idmap=other))
    assert v2.origin == v1.origin != v3.origin and owner(f"{v3.rootfs}/root")[:2] == (200000, 300000)
    img = svc.get_image("bb")
    assert sorted((v.idmap, v.clones) for v in img.variants) == sorted([(MAP, 2), (other, 1)])
    # converge: same spec -> nothing; another map -> immutable
    assert svc.ensure_volume(VolumeSpec("t1", "u1", VolumeKind.ROOT, image_id="bb", instance="u1", idmap=MAP))[1] \
        is False
    with pytest.raises(AlreadyExists):
        svc.ensure_volume(VolumeSpec("t1", "u1", VolumeKind.ROOT, image_id="bb", instance="u1", idmap=other))
    drift = svc.volume_drift(VolumeSpec("t1", "u1", VolumeKind.ROOT, image_id="bb", instance="u1"))
    assert [d.reason for d in drift] == ["IDMAP_MISMATCH"] and not drift[0].repairable
    # deleting the image parks the used variants, deleting the last clones collects everything
    assert retry_busy(lambda: svc.delete_image("bb")) == ImageState.PARKED
    assert zfs_get(variant, "type") == {}
    parked = zfs_run("list", "-H", "-o", "name", "-d", "1", f"{zfs_parent}/deleted/variants").stdout.split()[1:]
    assert len(parked) == 2
    for n in ("u1", "u2", "u3"):
        assert svc.delete_volume("t1", n)

    def left() -> list[str]:
        # a destroy that zfs-fuse still calls busy is left for later (the next delete or start): collect again
        svc.collect_parked()
        return zfs_run("list", "-H", "-r", "-o", "name", f"{zfs_parent}/deleted").stdout.split()
    expected = [f"{zfs_parent}/deleted", f"{zfs_parent}/deleted/images", f"{zfs_parent}/deleted/variants"]
    assert wait_until(lambda: left() == expected, 60, 0.5), left()


def test_unused_variant_goes_with_its_image_and_a_failed_shift_leaves_nothing(zfs_pool, zfs_parent):
    def broken_shift(path, idmap):
        raise FailedPrecondition("cannot chown (test)", reason="PERMISSION")
    s = service(zfs_parent, idmap_policy="shift", shift=broken_shift)
    try:
        data, digest = make_tarball()
        s.ensure_image("img", digest, chunked(data))
        with pytest.raises(FailedPrecondition):
            s.ensure_volume(VolumeSpec("t1", "v1", VolumeKind.ROOT, image_id="img", instance="v1", idmap=MAP))
        assert zfs_run("list", "-H", "-r", "-o", "name", f"{zfs_parent}/tmp").stdout.split() == [f"{zfs_parent}/tmp"]
        assert zfs_get(f"{zfs_parent}/instances/t1/v1", "type") == {}
        good = service(zfs_parent, idmap_policy="shift")
        good.ensure_volume(VolumeSpec("t1", "v1", VolumeKind.ROOT, image_id="img", instance="v1", idmap=MAP))
        assert good.delete_volume("t1", "v1")
        assert good.delete_image("img") == ImageState.ABSENT                # the unused variant went too
        assert zfs_run("list", "-H", "-r", "-o", "name", f"{zfs_parent}/variants").stdout.split() == \
            [f"{zfs_parent}/variants"]
    finally:
        zfs_destroy_tree(zfs_parent)


def test_idmapped_mount_mode_is_a_plain_clone(zfs_pool, zfs_parent):
    """Where the probe says idmapped mounts work (OpenZFS >= 2.2; faked here), a root with a
    map is a plain clone of the image, marked for the runtime to mount it idmapped."""
    s = service(zfs_parent, idmap_probe=lambda path: Availability.ok("zfs", ("idmapped-mount",)))
    try:
        assert s.idmap_mode() == MODE_MOUNT and "idmap:mount" in s.capabilities()
        data, digest = make_tarball()
        img, _ = s.ensure_image("img", digest, chunked(data))
        v, _ = s.ensure_volume(VolumeSpec("t1", "v1", VolumeKind.ROOT, image_id="img", instance="v1", idmap=MAP))
        assert v.origin == img.base_snapshot and v.idmap_mode == MODE_MOUNT
        assert zfs_get(v.dataset, "devcloud:idmap-mode") == {"devcloud:idmap-mode": "mount"}
        assert owner(f"{v.rootfs}/etc")[:2] == (0, 0)                        # stored as imported
    finally:
        zfs_destroy_tree(zfs_parent)


def test_this_pool_probes_idmapped_mounts(svc, zfs_pool):
    """The real probe on the session pool (zfs-fuse refuses: EINVAL; OpenZFS >= 2.2 takes them)."""
    probe = svc.pool.idmapped_mounts()
    if zfs_pool.flavor == "zfs-fuse":
        assert not probe.available and "EINVAL" in probe.reason and probe.version == "fuse.zfs"
    print(f"\nidmapped mounts on {zfs_pool.flavor}: {probe}")


# -- VM disks without zvols ---------------------------------------------------------------------


@pytest.mark.parametrize("fstype, flavor, version, available", [
    ("zfs", "openzfs", "2.3.2-1", True), ("zfs", "openzfs", "2.2.0", True),
    ("zfs", "openzfs", "2.1.11-1", False), ("fuse.zfs", "zfs-fuse", "", False), ("zfs", "openzfs", "", False)])
def test_without_a_user_namespace_the_versions_answer(fstype, flavor, version, available):
    """The shipped unit forbids user namespaces (RestrictNamespaces=net): OpenZFS >= 2.2 takes
    idmapped mounts (this kernel is >= 5.12), anything else says why it was not probed."""
    from agent.drivers.idmap import by_version
    a = by_version(fstype, flavor, version, "cannot make a user namespace to probe with: EPERM")
    assert a.available == available
    if available:
        assert "by-version" in a.features
    else:
        assert "EPERM" in a.reason and "OpenZFS >= 2.2" in a.reason


def test_disk_file_volume(svc, zfs_parent):
    spec = VolumeSpec("t1", "vm1", VolumeKind.DISK_FILE, instance="vm1", size_bytes=16 * MiB)
    v, changed = svc.ensure_volume(spec)
    assert changed and v.disk_file == f"{v.mountpoint}/disk.raw" and v.size_bytes == 16 * MiB
    st = os.stat(v.disk_file)
    assert st.st_size == 16 * MiB and st.st_blocks * 512 < MiB and stat.S_IMODE(st.st_mode) == 0o600   # sparse
    assert zfs_get(v.dataset, "devcloud:kind") == {"devcloud:kind": "disk_file"}
    assert svc.ensure_volume(spec)[1] is False and svc.volume_drift(spec) == []
    bigger = VolumeSpec("t1", "vm1", VolumeKind.DISK_FILE, instance="vm1", size_bytes=32 * MiB)
    assert [d.reason for d in svc.volume_drift(bigger)] == ["VOLSIZE_DRIFT"]
    assert svc.ensure_volume(bigger)[0].size_bytes == 32 * MiB
    with pytest.raises(FailedPrecondition) as e:
        svc.ensure_volume(spec)
    assert e.value.reason == "SHRINK_REFUSED"
    os.unlink(v.disk_file)
    assert [d.reason for d in svc.volume_drift(bigger)] == ["DISK_FILE_MISSING"]
    assert svc.ensure_volume(bigger)[1] is True and os.path.getsize(v.disk_file) == 32 * MiB
    assert svc.resize_volume("t1", "vm1", size_bytes=48 * MiB)[0].size_bytes == 48 * MiB
    with pytest.raises(InvalidArgument):
        svc.ensure_volume(VolumeSpec("t1", "vm2", VolumeKind.DISK_FILE, instance="vm2"))
    assert svc.delete_volume("t1", "vm1")


def test_grpc_header_and_volume_validation(zfs_pool, zfs_parent):
    """Field paths at the edge: a split image without its parts, a map on a non-ROOT volume."""
    from agent._proto.devcloud.agent.v1 import storage_pb2 as pb
    from agent._proto.devcloud.agent.v1 import storage_pb2_grpc as pb_grpc
    from tests.support.server import start_inprocess, temp_dir
    from tests.support.zfs import storage_overrides
    tmp = temp_dir()
    agent = start_inprocess(tmp, storage_overrides(zfs_pool, zfs_parent))
    try:
        stub = pb_grpc.StorageServiceStub(agent.channel)
        for header, field in ((pb.ImageHeader(image_id="x", sha256="0" * 64, format=pb.IMAGE_FORMAT_LXD_SPLIT),
                               "header.metadata_size_bytes"),
                              (pb.ImageHeader(image_id="x", sha256="0" * 64, rootfs_local_path="/tmp/r"),
                               "header.local_path"),
                              (pb.ImageHeader(image_id="x", sha256="0" * 64, format=pb.IMAGE_FORMAT_ROOTFS_TARBALL,
                                              metadata_size_bytes=10), "header.format")):
            with pytest.raises(grpc.RpcError) as e:
                list(stub.EnsureImage(iter([pb.EnsureImageRequest(header=header)]), timeout=30))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details(), header
        spec = pb.VolumeSpec(team="t1", name="f1", kind=pb.VOLUME_KIND_FILESYSTEM, idmap=pb.IdMap(host_uid=0, count=1))
        with pytest.raises(grpc.RpcError) as e:
            stub.EnsureVolume(pb.EnsureVolumeRequest(spec=spec), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.idmap" in e.value.details()
    finally:
        agent.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        zfs_destroy_tree(zfs_parent)


def test_a_variant_interrupted_by_a_crash_is_removed_at_start(svc, zfs_parent):
    """A crash while a variant is made leaves only its tmp/ clone (marked tmp): the next start
    removes it, and the variant is made again when next needed."""
    data, digest = make_tarball()
    svc.ensure_image("img", digest, chunked(data))
    tmp = f"{zfs_parent}/tmp/img_u100000_g100000_n65536-dead"
    zfs_run("clone", "-o", "devcloud:owner=devcloud-agent", "-o", "devcloud:type=tmp", "-o", "devcloud:name=img",
            f"{zfs_parent}/images/img@base", tmp)
    summary = StorageService(open_backend(Metrics(), "auto", busy_timeout=TEST_BUSY_TIMEOUT), zfs_parent).start()
    assert summary["stale_imports_removed"] == 1 and zfs_get(tmp, "type") == {}
    v, _ = svc.ensure_volume(VolumeSpec("t1", "v1", VolumeKind.ROOT, image_id="img", instance="v1", idmap=MAP))
    assert v.origin == f"{zfs_parent}/variants/img_u100000_g100000_n65536@base"
    assert svc.delete_volume("t1", "v1")
