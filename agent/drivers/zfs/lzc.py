"""The `lzc` backend: libzfs_core (Debian python3-pyzfs) ioctls on /dev/zfs.

No fork for create/clone/snapshot/rollback/rename/destroy. What
libzfs_core does not offer goes elsewhere: reads and `zfs set` use the CLI
(base class; lzc_get_props/lzc_set_props are uncommitted and absent from
distribution builds), mounting uses `zfs mount` (lzc_create/lzc_clone do
not mount), unmounting uses umount2(2). A dataset is unmounted around
lzc_rename (the ioctl does not move mounts).

This module imports libzfs_core lazily: on hosts without it the backend is
simply not chosen (probe in __init__.py says why).
"""
from __future__ import annotations

import ctypes
import errno
import os
from typing import Mapping, Sequence

from agent.errors import (AgentError, AlreadyExists, FailedPrecondition, Internal, InvalidArgument,
                          NotFound, ResourceExhausted, Unavailable)

from .backend import _libc, ZfsBackend

# Index properties take numbers in an nvlist (what libzfs converts strings to).
_INDEX = {"readonly": {"on": 1, "off": 0}, "canmount": {"off": 0, "on": 1, "noauto": 2},
          "atime": {"on": 1, "off": 0}, "exec": {"on": 1, "off": 0}, "setuid": {"on": 1, "off": 0},
          "devices": {"on": 1, "off": 0}}
_NUMERIC = {"quota", "refquota", "reservation", "refreservation", "volsize", "volblocksize", "recordsize"}


def load_module():
    """Import libzfs_core; return (module, reason-if-missing)."""
    try:
        import libzfs_core
        return libzfs_core, ""
    except Exception as exc:  # ImportError, or cffi failing to load libzfs_core.so
        return None, f"cannot import libzfs_core ({exc}); install python3-pyzfs and run the agent " \
                     "with the system python or a venv created with --system-site-packages"


def lzc_props(props: Mapping[str, str | int] | None) -> dict[bytes, object]:
    """Convert {name: value} to libzfs_core's nvlist-friendly {bytes: int|bytes}."""
    out: dict[bytes, object] = {}
    for k, v in (props or {}).items():
        if ":" in k:                        # user property: string
            out[k.encode()] = str(v).encode()
        elif k in _INDEX:
            out[k.encode()] = _INDEX[k][str(v)]
        elif k in _NUMERIC:
            out[k.encode()] = int(v)
        else:
            out[k.encode()] = str(v).encode()
    return out


def translate(lzc, exc: Exception, what: str) -> AgentError:
    """Map a libzfs_core exception to the agent's errors (same reasons as the CLI backend)."""
    ex = lzc.exceptions
    if isinstance(exc, ex.MultipleOperationsFailure) and exc.errors:
        return translate(lzc, exc.errors[0], what)
    text = f"{what}: {exc}"
    table = [
        ((ex.ParentNotFound,), NotFound, "PARENT_NOT_FOUND"),
        ((ex.DatasetNotFound, ex.PoolNotFound), NotFound, "DATASET_NOT_FOUND"),
        ((ex.DatasetExists,), AlreadyExists, "DATASET_EXISTS"),
        ((ex.DatasetBusy, ex.SnapshotIsHeld), FailedPrecondition, "DATASET_BUSY"),
        ((ex.SnapshotIsCloned,), FailedPrecondition, "HAS_DEPENDENTS"),
        ((ex.SnapshotNotLatest,), FailedPrecondition, "SNAPSHOT_NOT_LATEST"),
        ((ex.NoSpace,), ResourceExhausted, "NO_SPACE"),
        ((ex.QuotaExceeded,), ResourceExhausted, "QUOTA_EXCEEDED"),
        ((ex.PropertyInvalid, ex.NameInvalid, ex.NameTooLong), InvalidArgument, "INVALID_ZFS_NAME"),
        ((ex.FeatureNotSupported, ex.PropertyNotSupported), FailedPrecondition, "NOT_SUPPORTED"),
        ((ex.ReadOnlyPool, ex.SuspendedPool), Unavailable, "POOL_UNAVAILABLE"),
    ]
    for classes, cls, reason in table:
        if isinstance(exc, classes):
            return cls(text, reason=reason)
    code = getattr(exc, "errno", None)
    if code == errno.EBUSY:
        return FailedPrecondition(text, reason="DATASET_BUSY")
    if code == errno.ENOENT:
        return NotFound(text, reason="DATASET_NOT_FOUND")
    if code == errno.EEXIST:
        return AlreadyExists(text, reason="DATASET_EXISTS")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(text, reason="NO_SPACE")
    return Internal(text, reason="LZC_ERROR")


class LzcBackend(ZfsBackend):
    """ZfsBackend over libzfs_core ioctls; each method keeps the contract documented on ZfsBackend.
    libzfs_core errors come back through translate() with the CLI backend's reasons."""

    name = "lzc"

    def __init__(self, metrics, *, lzc_module, **kw) -> None:
        super().__init__(metrics, **kw)
        self.lzc = lzc_module
        self._parent_mp: dict[str, str] = {}     # parent dataset -> its mountpoint (children inherit it)

    def _call(self, op: str, what: str, fn, *args, **kwargs):
        try:
            with self.metrics.time(self.metrics.zfs_op, op=op, backend=self.name):
                return fn(*args, **kwargs)
        except self.lzc.exceptions.ZFSError as exc:
            raise translate(self.lzc, exc, what) from None
        except NotImplementedError as exc:
            raise FailedPrecondition(f"{what}: libzfs_core lacks {exc}", reason="NOT_SUPPORTED") from None

    def _mount_new(self, name: str) -> None:
        """Mount a dataset we just created (its mountpoint is inherited: <parent's>/<leaf>).

        On OpenZFS with mount(2) directly, as libzfs does ("zfsutil" lets the module mount a
        non-legacy dataset; it applies the dataset's properties itself): no fork. Anything
        unusual (parent mountpoint none/legacy: nothing to mount; a failing syscall) goes the
        CLI's way."""
        parent, _, leaf = name.rpartition("/")
        pmp = self._parent_mp.get(parent)
        if pmp is None:
            info = self.get(parent)
            pmp = info.mountpoint if info else ""
            self._parent_mp[parent] = pmp
        if pmp in ("none", "legacy"):
            return                                  # like `zfs create` there: not mounted
        if self.flavor == "openzfs" and pmp.startswith("/"):
            mp = f"{pmp.rstrip('/')}/{leaf}"
            try:
                os.makedirs(mp, exist_ok=True)
                with self.metrics.time(self.metrics.zfs_op, op="mount", backend=self.name):
                    rc = _libc.mount(name.encode(), mp.encode(), b"zfs", 0, b"zfsutil")
                if rc == 0:
                    return
                err = ctypes.get_errno()
                if err == errno.EBUSY and os.path.ismount(mp):
                    return
            except OSError:
                pass
            self._parent_mp.pop(parent, None)       # maybe stale: ask again next time
        self.mount(name)

    def _mount_or_undo(self, name: str) -> None:
        try:
            self._mount_new(name)
        except AgentError:
            try:
                self._call("destroy", f"undo create {name}", self.lzc.lzc_destroy, name.encode())
            except AgentError:
                pass
            raise

    def create_filesystem(self, name: str, props: Mapping[str, str | int]) -> None:
        """lzc_create, then mount (mount(2) on OpenZFS, else `zfs mount`). Not idempotent:
        AlreadyExists DATASET_EXISTS, NotFound PARENT_NOT_FOUND, ResourceExhausted NO_SPACE;
        when the mount fails the filesystem is destroyed again and the mount error raised."""
        self._call("create", f"create {name}", self.lzc.lzc_create, name.encode(), "zfs", lzc_props(props))
        self._mount_or_undo(name)

    def create_zvol(self, name: str, size: int, props: Mapping[str, str | int]) -> None:
        """lzc_create of a zvol of `size` bytes (nothing to mount). Not idempotent: AlreadyExists
        DATASET_EXISTS, NotFound PARENT_NOT_FOUND, ResourceExhausted NO_SPACE."""
        p = dict(props)
        p["volsize"] = size
        self._call("create_zvol", f"create zvol {name}", self.lzc.lzc_create, name.encode(), "zvol",
                   lzc_props(p))

    def clone(self, snapshot: str, name: str, props: Mapping[str, str | int]) -> None:
        """lzc_clone, then mount as create_filesystem(). Not idempotent: AlreadyExists
        DATASET_EXISTS, NotFound DATASET_NOT_FOUND / PARENT_NOT_FOUND; when the mount fails the
        clone is destroyed again."""
        self._call("clone", f"clone {snapshot} to {name}", self.lzc.lzc_clone, name.encode(),
                   snapshot.encode(), lzc_props(props))
        self._mount_or_undo(name)

    def snapshot(self, names: Sequence[str], props: Mapping[str, str] | None = None) -> None:
        """One lzc_snapshot for all names: atomic (all or none). Not idempotent: AlreadyExists
        DATASET_EXISTS, NotFound DATASET_NOT_FOUND, ResourceExhausted NO_SPACE."""
        self._call("snapshot", f"snapshot {names[0]}", self.lzc.lzc_snapshot, [n.encode() for n in names],
                   lzc_props(props) or None)

    def rollback(self, snapshot: str) -> None:
        """lzc_rollback_to: only to the latest snapshot. Idempotent. Raises FailedPrecondition
        SNAPSHOT_NOT_LATEST / DATASET_BUSY, NotFound DATASET_NOT_FOUND."""
        ds, _, _ = snapshot.partition("@")
        self._call("rollback", f"rollback to {snapshot}", self.lzc.lzc_rollback_to, ds.encode(),
                   snapshot.encode())

    def destroy_snapshots(self, names: Sequence[str]) -> None:
        """One lzc_destroy_snaps (not deferred); absent snapshots are ignored (idempotent; [] is a
        no-op). Raises FailedPrecondition HAS_DEPENDENTS (cloned), DATASET_BUSY (held)."""
        if names:
            self._call("destroy_snapshot", f"destroy snapshot {names[0]}", self.lzc.lzc_destroy_snaps,
                       [n.encode() for n in names], False)

    def _rename(self, src: str, dst: str) -> None:
        # The base class unmounts around it: the ioctl does not move mounts.
        self._call("rename", f"rename {src} to {dst}", self.lzc.lzc_rename, src.encode(), dst.encode())

    def _destroy_one(self, name: str) -> None:
        try:
            self._call("destroy", f"destroy {name}", self.lzc.lzc_destroy, name.encode())
        except AlreadyExists as exc:     # the ioctl's EEXIST: the dataset has children
            raise FailedPrecondition(exc.message, reason="HAS_DEPENDENTS") from None
