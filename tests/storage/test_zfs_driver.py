"""Contract tests of the ZFS driver: the same bodies run against each backend.

Real ZFS: the session pool (zfs-fuse here, the kernel module in the
real-kernel tier). Checks are independent of the driver: `zfs get -Hp`,
/proc/mounts, files on disk.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from agent.drivers.zfs.cli import parse_get
from agent.drivers.zfs.model import parse_size
from agent.errors import AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted
from tests.support.zfs import zfs_destroy_tree, zfs_get, zfs_run

MARK = {"devcloud:owner": "test"}


def mounted_paths() -> set[str]:
    with open("/proc/self/mounts") as f:
        return {line.split()[1] for line in f}


@pytest.fixture
def root(zfs_backend, zfs_parent):
    """A fresh parent filesystem for one test; destroyed recursively after it."""
    zfs_run("create", zfs_parent)
    yield zfs_parent
    zfs_destroy_tree(zfs_parent)


def test_probe_reports_backend_and_flavor(zfs_backend):
    a = zfs_backend.probe()
    assert a.available, a.reason
    assert f"backend:{zfs_backend.name}" in a.features
    assert any(f.startswith("flavor:") for f in a.features)


def test_create_filesystem_sets_props_and_mounts(zfs_backend, root):
    name = f"{root}/fs"
    zfs_backend.create_filesystem(name, {**MARK, "refquota": 64 << 20})
    got = zfs_get(name, "devcloud:owner", "refquota", "mounted", "mountpoint", "type")
    assert got["devcloud:owner"] == "test"
    assert got["refquota"] == str(64 << 20)
    assert got["mounted"] == "yes" and got["type"] == "filesystem"
    assert got["mountpoint"] in mounted_paths()
    info = zfs_backend.get(name, user_props=["devcloud:owner"])
    assert info.user_props == {"devcloud:owner": "test"} and info.refquota == 64 << 20


def test_create_existing_and_missing_parent(zfs_backend, root):
    zfs_backend.create_filesystem(f"{root}/a", MARK)
    with pytest.raises(AlreadyExists) as e:
        zfs_backend.create_filesystem(f"{root}/a", MARK)
    assert e.value.reason == "DATASET_EXISTS"
    with pytest.raises(NotFound) as e:
        zfs_backend.create_filesystem(f"{root}/missing/child", MARK)
    assert e.value.reason in ("PARENT_NOT_FOUND", "DATASET_NOT_FOUND")
    assert zfs_get(f"{root}/missing/child", "type") == {}


def test_get_missing_is_none_and_list_includes_snapshots(zfs_backend, root):
    assert zfs_backend.get(f"{root}/nope") is None
    assert zfs_backend.list(f"{root}/nope") == []
    zfs_backend.create_filesystem(f"{root}/a", MARK)
    zfs_backend.snapshot([f"{root}/a@s1"])
    names = [d.name for d in zfs_backend.list(root)]
    assert names[0] == root and f"{root}/a" in names and f"{root}/a@s1" in names
    assert [d.name for d in zfs_backend.list(root, depth=1)] == [root, f"{root}/a"]


def test_snapshot_clone_mounts_with_origin(zfs_backend, root):
    src = f"{root}/img"
    zfs_backend.create_filesystem(src, MARK)
    mp = zfs_get(src, "mountpoint")["mountpoint"]
    with open(os.path.join(mp, "hello"), "w") as f:
        f.write("world")
    zfs_backend.snapshot([f"{src}@base"])
    zfs_backend.clone(f"{src}@base", f"{root}/c1", {**MARK, "refquota": 32 << 20})
    got = zfs_get(f"{root}/c1", "origin", "mounted", "mountpoint", "refquota", "devcloud:owner")
    assert got["origin"] == f"{src}@base" and got["mounted"] == "yes"
    assert got["refquota"] == str(32 << 20) and got["devcloud:owner"] == "test"
    with open(os.path.join(got["mountpoint"], "hello")) as f:
        assert f.read() == "world"
    with pytest.raises(AlreadyExists):
        zfs_backend.clone(f"{src}@base", f"{root}/c1", MARK)
    with pytest.raises(NotFound):
        zfs_backend.clone(f"{src}@nope", f"{root}/c2", MARK)
    assert zfs_get(f"{root}/c2", "type") == {}


def test_snapshot_many_is_all_or_nothing(zfs_backend, root):
    zfs_backend.create_filesystem(f"{root}/a", MARK)
    zfs_backend.create_filesystem(f"{root}/b", MARK)
    zfs_backend.snapshot([f"{root}/b@s"])
    with pytest.raises(AlreadyExists):
        zfs_backend.snapshot([f"{root}/a@s", f"{root}/b@s"])
    assert zfs_get(f"{root}/a@s", "type") == {}
    zfs_backend.snapshot([f"{root}/a@t", f"{root}/b@t"], {"devcloud:owner": "test"})
    assert zfs_get(f"{root}/a@t", "type")["type"] == "snapshot"
    assert zfs_get(f"{root}/b@t", "devcloud:owner")["devcloud:owner"] == "test"


def test_rollback_latest_and_not_latest(zfs_backend, root):
    name = f"{root}/r"
    zfs_backend.create_filesystem(name, MARK)
    mp = zfs_get(name, "mountpoint")["mountpoint"]
    path = os.path.join(mp, "f")
    with open(path, "w") as f:
        f.write("v1")
    zfs_backend.snapshot([f"{name}@s1"])
    with open(path, "w") as f:
        f.write("v2")
    zfs_backend.rollback(f"{name}@s1")
    with open(path) as f:
        assert f.read() == "v1"
    zfs_backend.snapshot([f"{name}@s2"])
    with pytest.raises(FailedPrecondition) as e:
        zfs_backend.rollback(f"{name}@s1")
    assert e.value.reason == "SNAPSHOT_NOT_LATEST"


def test_destroy_idempotent_and_children(zfs_backend, root):
    name = f"{root}/d"
    assert zfs_backend.destroy(name) is False
    zfs_backend.create_filesystem(name, MARK)
    mp = zfs_get(name, "mountpoint")["mountpoint"]
    zfs_backend.snapshot([f"{name}@s"])
    with pytest.raises(FailedPrecondition) as e:
        zfs_backend.destroy(name)
    assert e.value.reason == "HAS_DEPENDENTS"
    assert zfs_get(name, "mounted")["mounted"] == "yes"
    assert zfs_backend.destroy(name, recursive=True) is True
    assert zfs_get(name, "type") == {} and zfs_get(f"{name}@s", "type") == {}
    assert mp not in mounted_paths()
    assert not os.path.exists(mp)          # its empty mountpoint went too (seen left over under OpenZFS)
    assert zfs_backend.destroy(name, recursive=True) is False


def test_destroy_tree_of_many(zfs_backend, root):
    tree = f"{root}/team"
    zfs_backend.create_filesystem(tree, MARK)
    for i in range(10):
        zfs_backend.create_filesystem(f"{tree}/v{i}", MARK)
    zfs_backend.snapshot([f"{tree}/v3@s"])
    assert zfs_backend.destroy(tree, recursive=True)
    out = zfs_run("get", "-H", "-r", "-o", "name", "type", root).stdout.split()
    assert out == [root]


def test_destroy_busy_fails_with_reason_and_keeps_mount(zfs_backend, root):
    name = f"{root}/busy"
    zfs_backend.create_filesystem(name, MARK)
    mp = zfs_get(name, "mountpoint")["mountpoint"]
    holder = subprocess.Popen(["sleep", "30"], cwd=mp)
    try:
        t0 = time.monotonic()
        with pytest.raises(FailedPrecondition) as e:
            zfs_backend.destroy(name, timeout=0.5)
        assert e.value.reason == "DATASET_BUSY"
        assert mp in e.value.message
        assert f"pid {holder.pid} (sleep) has its working directory there" in e.value.message, e.value.message
        assert time.monotonic() - t0 < 10
        assert zfs_get(name, "mounted")["mounted"] == "yes"
    finally:
        holder.kill()
        holder.wait()
    assert zfs_backend.destroy(name) is True
    assert zfs_get(name, "type") == {}


def test_busy_names_a_mount_namespace_that_holds_a_copy(zfs_backend, root):
    """No process has a file open, but one runs with its own mount table made after the
    mount (unshare -m, as `ip netns exec` does): DATASET_BUSY names that holder."""
    if zfs_backend.flavor != "zfs-fuse":
        pytest.skip("OpenZFS unmounts in every namespace only with shared propagation; zfs-fuse shows the pin")
    name = f"{root}/pinned"
    zfs_backend.create_filesystem(name, MARK)
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while "sleep" not in open(f"/proc/{holder.pid}/comm").read() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(FailedPrecondition) as e:
            zfs_backend.destroy(name, timeout=0.5)
        assert e.value.reason == "DATASET_BUSY"
        assert f"the mount namespace of pid {holder.pid} (sleep) holds its own copy of the mount" \
            in e.value.message, e.value.message
    finally:
        holder.kill()
        holder.wait()
    assert zfs_backend.destroy(name, timeout=20) is True


def test_destroy_snapshot_with_clone_refused(zfs_backend, root):
    zfs_backend.create_filesystem(f"{root}/o", MARK)
    zfs_backend.snapshot([f"{root}/o@base"])
    zfs_backend.clone(f"{root}/o@base", f"{root}/c", MARK)
    with pytest.raises(FailedPrecondition) as e:
        zfs_backend.destroy_snapshots([f"{root}/o@base"])
    assert e.value.reason in ("HAS_DEPENDENTS", "DATASET_BUSY")
    assert zfs_get(f"{root}/o@base", "type")["type"] == "snapshot"
    zfs_backend.destroy_snapshots([f"{root}/o@missing"])      # missing is fine


def test_rename_moves_mount(zfs_backend, root):
    zfs_backend.create_filesystem(f"{root}/src", MARK)
    zfs_backend.create_filesystem(f"{root}/dir", MARK)
    zfs_backend.snapshot([f"{root}/src@base"])
    old_mp = zfs_get(f"{root}/src", "mountpoint")["mountpoint"]
    zfs_backend.rename(f"{root}/src", f"{root}/dir/dst")
    got = zfs_get(f"{root}/dir/dst", "mounted", "mountpoint", "devcloud:owner")
    assert got["mounted"] == "yes" and got["mountpoint"] in mounted_paths()
    assert got["devcloud:owner"] == "test"
    assert old_mp not in mounted_paths()
    assert zfs_get(f"{root}/dir/dst@base", "type")["type"] == "snapshot"
    with pytest.raises(NotFound):
        zfs_backend.rename(f"{root}/src", f"{root}/other")


def test_set_props_and_below_used(zfs_backend, root):
    name = f"{root}/q"
    zfs_backend.create_filesystem(name, MARK)
    zfs_backend.set_props(name, {"refquota": 8 << 20, "quota": 16 << 20, "devcloud:team": "t1"})
    got = zfs_get(name, "refquota", "quota", "devcloud:team")
    assert got == {"refquota": str(8 << 20), "quota": str(16 << 20), "devcloud:team": "t1"}
    mp = zfs_get(name, "mountpoint")["mountpoint"]
    with open(os.path.join(mp, "blob"), "wb") as f:
        f.write(os.urandom(2 << 20))
        f.flush()
        os.fsync(f.fileno())
    deadline = time.monotonic() + 10
    while int(zfs_get(name, "referenced")["referenced"]) < (1 << 20) and time.monotonic() < deadline:
        time.sleep(0.1)      # space accounting follows the txg sync
    with pytest.raises(FailedPrecondition) as e:
        zfs_backend.set_props(name, {"refquota": 64 << 10})
    assert e.value.reason == "BELOW_USED"
    zfs_backend.inherit_prop(name, "devcloud:team")
    assert zfs_get(name, "devcloud:team")["devcloud:team"] == "-"


def test_refquota_enforced_on_write(zfs_backend, root):
    name = f"{root}/full"
    zfs_backend.create_filesystem(name, {**MARK, "refquota": 4 << 20})
    mp = zfs_get(name, "mountpoint")["mountpoint"]
    written = 0
    with pytest.raises(OSError):
        with open(os.path.join(mp, "fill"), "wb") as f:
            for _ in range(64):
                f.write(os.urandom(256 << 10))      # not zeros: OpenZFS compresses them to nothing
                f.flush()
                os.fsync(f.fileno())
                written += 256 << 10
    assert written < 16 << 20


def test_zvol_matches_capability(zfs_backend, root):
    name = f"{root}/vol"
    if zfs_backend.supports("zvol"):
        zfs_backend.create_zvol(name, 16 << 20, MARK)
        assert zfs_get(name, "type", "volsize") == {"type": "volume", "volsize": str(16 << 20)}
    else:
        with pytest.raises(FailedPrecondition) as e:
            zfs_backend.create_zvol(name, 16 << 20, MARK)
        assert e.value.reason == "NOT_SUPPORTED" and "zvol" in e.value.message
        assert zfs_get(name, "type") == {}


def test_mount_all_after_unmount(zfs_backend, root):
    zfs_backend.create_filesystem(f"{root}/m", MARK)
    info = zfs_backend.get(f"{root}/m")
    zfs_backend.unmount(info.name, info.mountpoint)
    zfs_backend.unmount(info.name, info.mountpoint)        # idempotent
    assert zfs_get(f"{root}/m", "mounted")["mounted"] == "no"
    assert zfs_backend.mount_all(root) == [f"{root}/m"]
    assert zfs_get(f"{root}/m", "mounted")["mounted"] == "yes"
    zfs_backend.mount(f"{root}/m")                          # idempotent


def test_pool_info(zfs_backend, zfs_pool):
    p = zfs_backend.pool(zfs_pool.name)
    assert p.health == "ONLINE"
    assert 1 << 30 < p.size <= 2 << 30
    assert 0 < p.root_available < p.size
    assert zfs_backend.pool("nosuchpool") is None


def test_parse_get_keeps_local_user_props_only():
    out = ("p/a\ttype\tfilesystem\t-\np/a\tdevcloud:owner\tx\tlocal\n"
           "p/a/b\ttype\tfilesystem\t-\np/a/b\tdevcloud:owner\tx\tinherited from p/a\n"
           "p/a/b\tused\t123\t-\np/a/b\torigin\t-\t-\n")
    got = parse_get(out, ["devcloud:owner"])
    assert got["p/a"].user_props == {"devcloud:owner": "x"}
    assert got["p/a/b"].user_props == {} and got["p/a/b"].inherited_props == {"devcloud:owner": "x"}
    assert got["p/a/b"].used == 123 and got["p/a/b"].origin == ""


@pytest.mark.parametrize("text,expected", [("123", 123), ("1K", 1024), ("1.5M", 3 << 19), ("-", 0)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_no_space_maps_to_resource_exhausted(zfs_backend, root):
    with pytest.raises(ResourceExhausted):
        zfs_backend.create_filesystem(f"{root}/big", {**MARK, "reservation": 1 << 40})


def test_host_without_zfs_reports_why_and_refuses_calls(monkeypatch):
    """No /dev/zfs and no zfs-fuse: the backend still builds; probe says why; calls raise
    FailedPrecondition naming the facility (the daemon never crashes)."""
    from agent.drivers import zfs as zfsdrv
    from agent.metrics import Metrics
    monkeypatch.setattr(zfsdrv, "detect_flavor", lambda: ("", "no ZFS here: install zfs-fuse"))
    backend = zfsdrv.open_backend(Metrics(), "auto")
    a = backend.probe()
    assert not a.available and "no ZFS here" in a.reason
    with pytest.raises(FailedPrecondition) as e:
        backend.create_filesystem("p/x", {})
    assert e.value.reason == "FACILITY_UNAVAILABLE"
    lzc = zfsdrv.open_backend(Metrics(), "lzc")
    assert not lzc.probe().available and "lzc" in lzc.probe().reason
