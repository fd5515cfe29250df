"""A STAND-IN for Debian's libzfs_core module (python3-pyzfs), built on the zfs CLI.

libzfs_core cannot run on machines without /dev/zfs (ours). This shim lets the
driver contract tests drive agent.drivers.zfs.lzc.LzcBackend anyway, so its
own code (mount after create/clone, unmount around rename, error translation,
nvlist-style props) runs here on every commit. It mimics the pyzfs API and
exception classes the backend uses, including the semantics that differ from
the CLI: lzc_create/lzc_clone do not mount, lzc_clone cannot tell a missing
parent from a missing origin (DatasetNotFound), lzc_snapshot is all-or-none,
lzc_destroy_snaps ignores missing snapshots, lzc_destroy of a dataset with
children fails with EEXIST. It is NOT libzfs_core: the real library runs the
same tests in the real-kernel tier (integration/node).
"""
from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import time
import types

_ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
_libc = ctypes.CDLL(None, use_errno=True)


# -- exceptions: the subset of libzfs_core.exceptions the backend catches ------------------

class ZFSError(Exception):
    errno = None
    message = None
    name = None

    def __str__(self):
        return f"[Errno {self.errno}] {self.message}: {self.name!r}"


class ZFSGenericError(ZFSError):
    def __init__(self, err, name, message):
        self.errno, self.name, self.message = err, name, message


class MultipleOperationsFailure(ZFSError):
    def __init__(self, errors, suppressed_count=0):
        self.errno = errors[0].errno
        self.errors = errors
        self.suppressed_count = suppressed_count


def _cls(clsname, base, err, message):
    def __init__(self, name=None):
        self.name = name
    return type(clsname, (base,), {"errno": err, "message": message, "__init__": __init__})


DatasetNotFound = _cls("DatasetNotFound", ZFSError, errno.ENOENT, "Dataset not found")
DatasetExists = _cls("DatasetExists", ZFSError, errno.EEXIST, "Dataset already exists")
FilesystemExists = _cls("FilesystemExists", DatasetExists, errno.EEXIST, "Filesystem already exists")
FilesystemNotFound = _cls("FilesystemNotFound", DatasetNotFound, errno.ENOENT, "Filesystem not found")
ParentNotFound = _cls("ParentNotFound", ZFSError, errno.ENOENT, "Parent not found")
SnapshotExists = _cls("SnapshotExists", DatasetExists, errno.EEXIST, "Snapshot already exists")
SnapshotNotFound = _cls("SnapshotNotFound", DatasetNotFound, errno.ENOENT, "Snapshot not found")
SnapshotNotLatest = _cls("SnapshotNotLatest", ZFSError, errno.EEXIST, "Snapshot is not the latest")
SnapshotIsCloned = _cls("SnapshotIsCloned", ZFSError, errno.EEXIST, "Snapshot is cloned")
SnapshotIsHeld = _cls("SnapshotIsHeld", ZFSError, errno.EBUSY, "Snapshot is held")
DatasetBusy = _cls("DatasetBusy", ZFSError, errno.EBUSY, "Dataset is busy")
NoSpace = _cls("NoSpace", ZFSError, errno.ENOSPC, "No space left")
QuotaExceeded = _cls("QuotaExceeded", ZFSError, errno.EDQUOT, "Quota exceeded")
PropertyInvalid = _cls("PropertyInvalid", ZFSError, errno.EINVAL, "Invalid property or property value")
NameInvalid = _cls("NameInvalid", ZFSError, errno.EINVAL, "Invalid name")
NameTooLong = _cls("NameTooLong", ZFSError, errno.ENAMETOOLONG, "Dataset name is too long")
FeatureNotSupported = _cls("FeatureNotSupported", ZFSError, errno.ENOTSUP, "Feature is not supported")
PropertyNotSupported = _cls("PropertyNotSupported", ZFSError, errno.ENOTSUP, "Property is not supported")
ReadOnlyPool = _cls("ReadOnlyPool", ZFSError, errno.EROFS, "Pool is read-only")
SuspendedPool = _cls("SuspendedPool", ZFSError, errno.EAGAIN, "Pool is suspended")
PoolNotFound = _cls("PoolNotFound", ZFSError, errno.EXDEV, "No such pool")


class SnapshotFailure(MultipleOperationsFailure):
    message = "Creation of snapshot(s) failed for one or more reasons"


class SnapshotDestructionFailure(MultipleOperationsFailure):
    message = "Destruction of snapshot(s) failed for one or more reasons"


exceptions = types.SimpleNamespace(**{k: v for k, v in dict(globals()).items()
                                      if isinstance(v, type) and issubclass(v, ZFSError)})


# -- helpers -----------------------------------------------------------------------------------

def _s(b) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


def _zfs(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["zfs", *args], capture_output=True, text=True, env=_ENV)


def _opts(props) -> list[str]:
    out = []
    for k, v in (props or {}).items():
        out += ["-o", f"{_s(k)}={_s(v)}"]
    return out


def _raise(stderr: str, name: str, *, notfound=DatasetNotFound, exists=FilesystemExists):
    if "dataset is busy" in stderr or "pool or dataset is busy" in stderr:
        raise DatasetBusy(name)
    if "parent does not exist" in stderr:
        raise notfound(name)
    if "does not exist" in stderr:
        raise notfound(name)
    if "already exists" in stderr:
        raise exists(name)
    if "out of space" in stderr or "greater than available" in stderr:
        raise NoSpace(name)
    if "invalid" in stderr or "must be one of" in stderr:
        raise PropertyInvalid(name)
    raise ZFSGenericError(errno.EIO, name, stderr.strip())


def _unmount_new(name: str) -> None:
    """lzc_create/lzc_clone do not mount: undo the CLI's automatic mount."""
    mp = _zfs("get", "-H", "-o", "value", "mountpoint", name).stdout.strip()
    if mp.startswith("/"):
        for _ in range(100):
            if _libc.umount2(mp.encode(), 0) == 0 or ctypes.get_errno() == errno.EINVAL:
                return
            time.sleep(0.02)


# -- the API subset ----------------------------------------------------------------------------

def lzc_create(name, ds_type="zfs", props=None, key=None):
    n = _s(name)
    props = dict(props or {})
    args = ["create", *_opts(props), n]
    if ds_type == "zvol":
        size = props.pop(b"volsize", None)
        if size is None or not os.path.exists("/dev/zfs"):
            raise FeatureNotSupported(n)     # zfs-fuse has no zvols
        args = ["create", "-s", "-V", str(size), *_opts(props), n]
    p = _zfs(*args)
    if p.returncode:
        _raise(p.stderr, n, notfound=ParentNotFound)
    _unmount_new(n)


def lzc_clone(name, origin, props=None):
    n = _s(name)
    p = _zfs("clone", *_opts(props), _s(origin), n)
    if p.returncode:
        _raise(p.stderr, n, notfound=DatasetNotFound)     # pyzfs cannot tell parent from origin
    _unmount_new(n)


def lzc_snapshot(snaps, props=None):
    done = []
    for s in snaps:
        p = _zfs("snapshot", *_opts(props), _s(s))
        if p.returncode:
            for d in done:
                _zfs("destroy", d)
            try:
                _raise(p.stderr, _s(s), notfound=FilesystemNotFound, exists=SnapshotExists)
            except ZFSError as exc:
                raise SnapshotFailure([exc]) from None
        done.append(_s(s))


def lzc_destroy_snaps(snaps, defer):
    for s in snaps:
        p = _zfs("destroy", _s(s))
        if p.returncode and "does not exist" not in p.stderr and "could not find" not in p.stderr:
            err = SnapshotIsCloned(_s(s)) if "dependent clones" in p.stderr else DatasetBusy(_s(s))
            raise SnapshotDestructionFailure([err])


def lzc_rollback_to(name, snap):
    p = _zfs("rollback", _s(snap))
    if p.returncode:
        if "more recent snapshots" in p.stderr:
            raise SnapshotNotLatest(_s(snap))
        _raise(p.stderr, _s(snap), notfound=SnapshotNotFound)


def lzc_rename(source, target):
    p = _zfs("rename", _s(source), _s(target))
    if p.returncode:
        _raise(p.stderr, _s(source), notfound=FilesystemNotFound)


def lzc_destroy(name):
    n = _s(name)
    p = _zfs("destroy", n)
    if p.returncode:
        if "has children" in p.stderr:
            raise ZFSGenericError(errno.EEXIST, n, "Failed to destroy dataset")   # what the ioctl returns
        _raise(p.stderr, n, notfound=FilesystemNotFound)


def lzc_exists(name):
    return _zfs("get", "-H", "-o", "value", "type", _s(name)).returncode == 0

