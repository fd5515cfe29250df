"""The ZFS backend interface and what both backends share.

Two backends implement it: `cli` (the zfs/zpool commands, OpenZFS or
zfs-fuse) and `lzc` (libzfs_core ioctls on /dev/zfs, see lzc.py). Reads go
through batched `zfs get -H -p` calls in both (libzfs_core has no committed
listing or property-read API): one fork per request, never one per dataset.

Dataset names given to these methods are full names ("pool/a/b"); callers
(the storage service) validate them. Every method documents idempotency and
the errors it raises; errors are agent.errors classes with stable reasons:
DATASET_NOT_FOUND, PARENT_NOT_FOUND, DATASET_EXISTS, DATASET_BUSY,
HAS_DEPENDENTS, SNAPSHOT_NOT_LATEST, BELOW_USED, NO_SPACE, NOT_SUPPORTED,
ZFS_UNAVAILABLE, ZFS_TIMEOUT.
"""
from __future__ import annotations

import builtins
import ctypes
import ctypes.util
import errno
import os
import time
from typing import Mapping, Sequence

from agent.drivers import procfs
from agent.drivers.base import Availability
from agent.errors import AgentError, FailedPrecondition, NotFound, from_oserror
from agent.metrics import Metrics

from .cli import ZfsCommand
from .model import DatasetInfo, PoolInfo

# Busy destroys: retry with exponential backoff for at most this long.
BUSY_TIMEOUT = 5.0
_BUSY_FIRST_DELAY = 0.02
_BUSY_MAX_DELAY = 0.5

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def is_reason(exc: BaseException, *reasons: str) -> bool:
    """True when `exc` is an AgentError with one of `reasons`."""
    return isinstance(exc, AgentError) and exc.reason in reasons


class ZfsBackend:
    """Common interface; subclasses implement the write primitives.

    Besides the reasons each method names, any call can raise Unavailable
    ZFS_UNAVAILABLE / ZFS_TIMEOUT (the daemon or module is down or hung, or
    no command slot freed in time), FailedPrecondition FACILITY_UNAVAILABLE /
    ZFS_NOT_INSTALLED (no usable ZFS here), PERMISSION, InvalidArgument
    INVALID_ZFS_NAME (a name or property ZFS refuses), and Internal
    ZFS_COMMAND_FAILED / LZC_ERROR for a failure no rule recognises. No
    method checks ownership: the storage service does."""

    name = "base"

    def __init__(self, metrics: Metrics, *, flavor: str, features: Sequence[str], version: str = "",
                 busy_timeout: float = BUSY_TIMEOUT, cmd: ZfsCommand | None = None) -> None:
        self.metrics = metrics
        self.flavor = flavor                    # "openzfs" | "zfs-fuse"
        self.features = tuple(features)         # e.g. ("zvol", "lz4", "encryption", "multi_set")
        self.version = version
        self.busy_timeout = busy_timeout
        self.cmd = cmd or ZfsCommand(metrics, backend=self.name)

    # -- capabilities -------------------------------------------------------------

    def probe(self) -> Availability:
        """Availability with features as data: 'backend:<name>', 'flavor:<flavor>', 'zvol', 'lz4'...
        Read-only (one `zpool list`); never raises: any failure -> missing with its message."""
        try:
            self.cmd.run("zpool", ["list", "-H", "-o", "name"], what="zfs probe", op="probe", timeout=10)
        except AgentError as exc:
            return Availability.missing(exc.message, self.version)
        return Availability.ok(self.version, (f"backend:{self.name}", f"flavor:{self.flavor}", *self.features))

    def supports(self, feature: str) -> bool:
        """Whether the backend/pool has `feature` (e.g. "zvol", "multi_set"). Pure; never raises."""
        return feature in self.features

    # -- reads (batched CLI in both backends) ------------------------------------

    def get(self, name: str, user_props: Sequence[str] = ()) -> DatasetInfo | None:
        """The dataset or snapshot `name`, or None if it does not exist. One `zfs get`; read-only.
        Raises only for daemon/transport failures (Unavailable, FailedPrecondition)."""
        found, _ = self.cmd.get([name], user_props=user_props, what=f"dataset {name}")
        return found.get(name)

    def get_many(self, names: Sequence[str], user_props: Sequence[str] = ()) -> dict[str, DatasetInfo]:
        """Several datasets in one `zfs get`; missing names are absent from the result ({} for none).
        Read-only. Raises only for daemon/transport failures."""
        found, _ = self.cmd.get(names, user_props=user_props, what="datasets")
        return found

    def list(self, root: str, user_props: Sequence[str] = (), depth: int | None = None) -> list[DatasetInfo]:
        """`root` and everything below it (snapshots included), in one `zfs get -r`.

        Returns [] if `root` does not exist. depth=1: root and its direct children.
        Read-only. Raises only for daemon/transport failures.
        """
        found, _ = self.cmd.get([root], recursive=depth is None, depth=depth, user_props=user_props,
                                what=f"datasets under {root}")
        return list(found.values())

    def origins(self, root: str) -> dict[str, str]:
        """{clone: origin snapshot} for every clone under `root`, one light `zfs get -r origin`
        ({} if root does not exist). Read-only. Raises only when the command cannot run."""
        proc = self.cmd.run("zfs", ["get", "-H", "-p", "-r", "-o", "name,value", "origin", root],
                            what=f"origins under {root}", op="get", check=False)
        out = {}
        for line in proc.stdout.splitlines():
            name, _, origin = line.partition("\t")
            if origin and origin != "-":
                out[name] = origin
        return out

    def exists(self, name: str) -> bool:
        """True if the dataset or snapshot exists. Read-only; raises as get()."""
        return self.get(name) is not None

    def pool(self, name: str) -> PoolInfo | None:
        """Health and capacity of pool `name`, or None if it is not imported. Read-only. Raises
        Internal on output it cannot parse, and daemon/transport failures."""
        return self.cmd.pool(name, parsable=self.flavor == "openzfs")

    # -- writes: implemented by the backends --------------------------------------

    def create_filesystem(self, name: str, props: Mapping[str, str | int]) -> None:
        """Create and mount filesystem `name` with `props` (parent must exist).
        Not idempotent: exists -> AlreadyExists DATASET_EXISTS (left as it is); no parent ->
        NotFound PARENT_NOT_FOUND; ResourceExhausted NO_SPACE / QUOTA_EXCEEDED;
        FailedPrecondition NOT_SUPPORTED (a property this ZFS lacks). A failed mount is an
        error: lzc destroys the new filesystem again, the CLI's `zfs create` leaves it
        created but unmounted."""
        raise NotImplementedError

    def create_zvol(self, name: str, size: int, props: Mapping[str, str | int]) -> None:
        """Create a sparse zvol of `size` bytes with `props` (parent must exist).
        Not idempotent: exists -> AlreadyExists DATASET_EXISTS; no parent -> NotFound
        PARENT_NOT_FOUND; FailedPrecondition NOT_SUPPORTED where the backend has no zvols
        (zfs-fuse); ResourceExhausted NO_SPACE."""
        raise NotImplementedError

    def clone(self, snapshot: str, name: str, props: Mapping[str, str | int]) -> None:
        """Clone `snapshot` into `name` with `props` and mount it (a filesystem).
        Not idempotent: `name` exists -> AlreadyExists DATASET_EXISTS; no such snapshot ->
        NotFound DATASET_NOT_FOUND; no parent -> NotFound PARENT_NOT_FOUND; NO_SPACE. A
        failed mount is an error: lzc destroys the clone again, the CLI's `zfs clone`
        leaves it unmounted."""
        raise NotImplementedError

    def snapshot(self, names: Sequence[str], props: Mapping[str, str] | None = None) -> None:
        """Create snapshots ("ds@snap") with user `props`, atomically (all or none).
        Not idempotent: one exists already -> AlreadyExists DATASET_EXISTS (none is created);
        its dataset absent -> NotFound DATASET_NOT_FOUND; ResourceExhausted NO_SPACE."""
        raise NotImplementedError

    def rollback(self, snapshot: str) -> None:
        """Roll the dataset back to `snapshot`, which must be its latest.
        Idempotent (again: discards what was written since, no error). Raises FailedPrecondition
        SNAPSHOT_NOT_LATEST (newer snapshots exist), DATASET_BUSY; NotFound DATASET_NOT_FOUND."""
        raise NotImplementedError

    def destroy_snapshots(self, names: Sequence[str]) -> None:
        """Destroy snapshots; missing ones are ignored (idempotent; [] is a no-op).
        Raises FailedPrecondition HAS_DEPENDENTS (a snapshot has clones), DATASET_BUSY (held)."""
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        """Rename a dataset (dst's parent must exist); its mount follows.

        Unmounts first (zfs-fuse's own unmount-rename sequence races with the
        daemon releasing the dataset and reports it busy), retries busy, mounts
        the new name; on failure the old name is mounted again.
        Not idempotent: `dst` exists -> AlreadyExists DATASET_EXISTS; `src` absent ->
        NotFound DATASET_NOT_FOUND; no parent of `dst` -> NotFound PARENT_NOT_FOUND;
        FailedPrecondition DATASET_BUSY after the bounded retries.
        """
        info = self.get(src)
        if info is None:
            raise NotFound(f"rename {src}: dataset does not exist", reason="DATASET_NOT_FOUND")
        was_mounted = info.type == "filesystem" and info.mounted
        if was_mounted:
            self.retry_busy(lambda: self.unmount(src, info.mountpoint), f"unmount {src}")
        try:
            self.retry_busy(lambda: self._rename(src, dst), f"rename {src}")
        except AgentError:
            if was_mounted:
                self._remount(src)
            raise
        if was_mounted:
            self.mount(dst)

    def _rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def _destroy_one(self, name: str) -> None:
        """Destroy one unmounted dataset without children or snapshots."""
        raise NotImplementedError

    def set_props(self, name: str, props: Mapping[str, str | int]) -> None:
        """Set properties (idempotent: the same values again change nothing; {} is a no-op).
        Absent -> NotFound DATASET_NOT_FOUND. Raises FailedPrecondition BELOW_USED (a quota
        below what is used), NOT_SUPPORTED; ResourceExhausted NO_SPACE (a reservation).
        Without multi_set (zfs-fuse) one `zfs set` per property: a failure can leave the
        earlier ones set."""
        if not props:
            return
        if self.supports("multi_set"):
            self.cmd.run("zfs", ["set", *(f"{k}={v}" for k, v in props.items()), name],
                         what=f"set properties on {name}", op="set")
            return
        for k, v in props.items():  # zfs-fuse: one property per `zfs set`
            self.cmd.run("zfs", ["set", f"{k}={v}", name], what=f"set {k} on {name}", op="set")

    def inherit_prop(self, name: str, prop: str) -> None:
        """Remove a local property (user props vanish; native ones return to default).
        Idempotent (not set locally: no error). Absent dataset -> NotFound DATASET_NOT_FOUND."""
        self.cmd.run("zfs", ["inherit", prop, name], what=f"inherit {prop} on {name}", op="inherit")

    # -- mounts -----------------------------------------------------------------

    def mount(self, name: str) -> None:
        """Mount filesystem `name` at its mountpoint. Idempotent (already mounted is OK).
        Retries busy (a just-unmounted zfs-fuse dataset stays busy for a moment), then raises
        FailedPrecondition DATASET_BUSY. Absent -> NotFound DATASET_NOT_FOUND."""
        def attempt() -> None:
            try:
                self.cmd.run("zfs", ["mount", name], what=f"mount {name}", op="mount")
            except AgentError as exc:
                if "already mounted" in exc.message:
                    return
                raise
        self.retry_busy(attempt, f"mount {name}")

    def unmount(self, name: str, mountpoint: str) -> None:
        """Unmount `mountpoint` (of dataset `name`) with umount2(2): no fork.

        Idempotent: not mounted is OK. DATASET_BUSY when a process uses it.
        """
        if not mountpoint or not mountpoint.startswith("/"):
            return
        with self.cmd.slot(f"unmount {name}"), \
                self.metrics.time(self.metrics.zfs_op, op="unmount", backend=self.name):
            rc = _libc.umount2(os.fsencode(mountpoint), 0)
            err = ctypes.get_errno()
        if rc == 0:
            return
        if err in (errno.EINVAL, errno.ENOENT):     # not a mount point (already unmounted)
            return
        if err == errno.EBUSY:
            raise FailedPrecondition(f"cannot unmount {name} at {mountpoint}: target is busy",
                                     reason="DATASET_BUSY", metadata={"dataset": name, "mountpoint": mountpoint})
        raise from_oserror(OSError(err, os.strerror(err)), f"unmount {name} at {mountpoint}")

    def mount_all(self, root: str) -> builtins.list[str]:
        """Mount every filesystem under `root` that should be mounted and is not (after a
        zfs-fuse restart pools import but do not mount). Returns the names mounted.
        Idempotent (mounted ones are skipped: a second call returns []); absent root -> [].
        Raises mount()'s errors (the first failure stops the walk)."""
        mounted = []
        for ds in self.list(root):
            if (ds.type == "filesystem" and not ds.mounted and ds.canmount == "on"
                    and ds.mountpoint.startswith("/")):
                self.mount(ds.name)
                mounted.append(ds.name)
        return mounted

    # -- destroy ------------------------------------------------------------------

    def destroy(self, name: str, *, recursive: bool = False, timeout: float | None = None,
                tree: builtins.list[DatasetInfo] | None = None) -> bool:
        """Destroy `name` (and, if recursive, its children and snapshots).

        Unmounts first, retries DATASET_BUSY with a bounded exponential backoff,
        then raises FailedPrecondition(DATASET_BUSY) naming the mountpoint; on
        that failure whatever was unmounted is mounted again.
        Idempotent: returns False if `name` did not exist, True if destroyed.
        HAS_DEPENDENTS if a snapshot has clones outside the tree (or, without
        recursive, if it has children/snapshots). `tree`: the caller's fresh list(name)
        (saves a read on the first attempt).
        """
        deadline = time.monotonic() + (self.busy_timeout if timeout is None else timeout)
        delay, attempts = _BUSY_FIRST_DELAY, 0
        while True:
            attempts += 1
            if tree is None or attempts > 1:
                tree = self.list(name)
            if not tree:
                return attempts > 1
            if not recursive and len(tree) > 1:
                # Same answer from both backends (the ioctl says EBUSY for snapshots, EEXIST for children).
                raise FailedPrecondition(f"cannot destroy {name}: it has children or snapshots "
                                         f"({', '.join(d.name for d in tree[1:4])}...)", reason="HAS_DEPENDENTS",
                                         metadata={"dataset": name})
            try:
                self._destroy_tree(tree, recursive=recursive)
                return True
            except AgentError as exc:
                if not is_reason(exc, "DATASET_BUSY"):
                    self._remount(name)      # leave what we unmounted as it was
                    raise
                if time.monotonic() + delay > deadline:
                    self._remount(name)
                    mp = next((d.mountpoint for d in tree if d.name == name), "")
                    raise FailedPrecondition(
                        f"{name}{f' (mounted at {mp})' if mp else ''} is busy after {attempts} attempts over "
                        f"{self.busy_timeout if timeout is None else timeout:.1f}s: {busy_holders(mp)} "
                        f"({exc.message})", reason="DATASET_BUSY",
                        metadata={"dataset": name, "mountpoint": mp}) from None
            time.sleep(delay)
            delay = min(delay * 2, _BUSY_MAX_DELAY)

    def _destroy_tree(self, tree: builtins.list[DatasetInfo], *, recursive: bool) -> None:
        """Unmount deepest first, then destroy. Default: per dataset primitives."""
        datasets = [d for d in tree if not d.is_snapshot]
        for ds in sorted(datasets, key=lambda d: d.name.count("/"), reverse=True):
            if ds.mounted:
                self.unmount(ds.name, ds.mountpoint)
        snaps = [d.name for d in tree if d.is_snapshot]
        if snaps and recursive:
            self.destroy_snapshots(snaps)
        for ds in sorted(datasets, key=lambda d: d.name.count("/"), reverse=True):
            try:
                self._destroy_one(ds.name)
            except NotFound:
                pass
            if ds.mounted:
                _remove_mountpoint(ds.mountpoint)

    def retry_busy(self, fn, what: str, timeout: float | None = None):
        """Call fn() retrying DATASET_BUSY with the bounded backoff (zfs-fuse reports
        a dataset busy for a moment after it was mounted); returns fn()'s value.
        Idempotent as far as fn is. Re-raises any other error at once, and
        DATASET_BUSY once `timeout` (default busy_timeout) has passed."""
        deadline = time.monotonic() + (self.busy_timeout if timeout is None else timeout)
        delay = _BUSY_FIRST_DELAY
        while True:
            try:
                return fn()
            except AgentError as exc:
                if not is_reason(exc, "DATASET_BUSY") or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, _BUSY_MAX_DELAY)

    def _remount(self, root: str) -> None:
        try:
            self.mount_all(root)
        except AgentError:
            pass


def busy_holders(mountpoint: str) -> str:
    """What keeps a dataset busy, for the DATASET_BUSY message: the processes and mount
    namespaces found holding its mount, or that none was found."""
    found = procfs.mount_holders(mountpoint) if mountpoint else []
    if found:
        return "; ".join(found) + " (stop them, or end that mount namespace, and retry)"
    where = f" under {mountpoint}" if mountpoint else ""
    return (f"no process or mount namespace was found holding it{where} (zfs-fuse may still be releasing "
            "it: retry in a moment)")


def _remove_mountpoint(path: str) -> None:
    """Remove the now empty directory a destroyed dataset was mounted on, as `zfs destroy` does
    when it unmounts (we unmount ourselves, so it does not). Never raises: a directory that is
    not empty, is mounted on again or is gone stays as it is."""
    if path.startswith("/"):
        try:
            os.rmdir(path)
        except OSError:
            pass
