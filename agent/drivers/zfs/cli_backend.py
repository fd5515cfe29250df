"""The `cli` backend: every write is one `zfs` command (argv list).

Used where /dev/zfs or libzfs_core is missing, in particular with zfs-fuse.
Unmounts go through umount2(2) (base class) so busy mounts surface as
DATASET_BUSY before `zfs destroy` runs.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from agent.errors import AgentError, NotFound

from .backend import ZfsBackend
from .model import DatasetInfo


def _opts(props: Mapping[str, str | int] | None) -> list[str]:
    out: list[str] = []
    for k, v in (props or {}).items():
        out += ["-o", f"{k}={v}"]
    return out


class CliBackend(ZfsBackend):
    """ZfsBackend over the zfs command; each method keeps the contract documented on ZfsBackend."""

    name = "cli"

    def create_filesystem(self, name: str, props: Mapping[str, str | int]) -> None:
        """`zfs create -o ...` (it mounts too). Not idempotent: AlreadyExists DATASET_EXISTS,
        NotFound PARENT_NOT_FOUND, ResourceExhausted NO_SPACE; a failed mount is an error and
        leaves the filesystem unmounted (see ZfsBackend.create_filesystem)."""
        self.cmd.run("zfs", ["create", *_opts(props), name], what=f"create {name}", op="create")

    def create_zvol(self, name: str, size: int, props: Mapping[str, str | int]) -> None:
        """`zfs create -s -V size`. Not idempotent: AlreadyExists DATASET_EXISTS, NotFound
        PARENT_NOT_FOUND; FailedPrecondition NOT_SUPPORTED without zvols (zfs-fuse), checked
        before any command runs."""
        if not self.supports("zvol"):
            raise self._no_zvol()
        self.cmd.run("zfs", ["create", "-s", "-V", str(size), *_opts(props), name], what=f"create zvol {name}",
                     op="create_zvol")

    def clone(self, snapshot: str, name: str, props: Mapping[str, str | int]) -> None:
        """`zfs clone -o ... snapshot name` (it mounts too). Not idempotent: AlreadyExists
        DATASET_EXISTS, NotFound DATASET_NOT_FOUND (no such snapshot) / PARENT_NOT_FOUND."""
        self.cmd.run("zfs", ["clone", *_opts(props), snapshot, name], what=f"clone {snapshot} to {name}",
                     op="clone")

    def snapshot(self, names: Sequence[str], props: Mapping[str, str] | None = None) -> None:
        """One `zfs snapshot` for all names (atomic) where multi_snapshot is supported; else one per
        name, destroying those made when a later one fails, so it stays all or none. Not
        idempotent: AlreadyExists DATASET_EXISTS, NotFound DATASET_NOT_FOUND, NO_SPACE."""
        if len(names) > 1 and self.supports("multi_snapshot"):
            self.cmd.run("zfs", ["snapshot", *_opts(props), *names], what=f"snapshot {names[0]}...",
                         op="snapshot")
            return
        done: list[str] = []
        try:
            for n in names:   # zfs-fuse: one snapshot per command; undo on failure to stay all-or-none
                self.cmd.run("zfs", ["snapshot", *_opts(props), n], what=f"snapshot {n}", op="snapshot")
                done.append(n)
        except AgentError:
            if done:
                self.destroy_snapshots(done)
            raise

    def rollback(self, snapshot: str) -> None:
        """`zfs rollback` (without -r: never destroys newer snapshots). Idempotent. Raises
        FailedPrecondition SNAPSHOT_NOT_LATEST / DATASET_BUSY, NotFound DATASET_NOT_FOUND."""
        self.cmd.run("zfs", ["rollback", snapshot], what=f"rollback to {snapshot}", op="rollback")

    def destroy_snapshots(self, names: Sequence[str]) -> None:
        """`zfs destroy` per snapshot; absent ones are skipped (idempotent). Not atomic: a failure
        (FailedPrecondition HAS_DEPENDENTS / DATASET_BUSY) leaves the earlier ones destroyed."""
        for n in names:
            try:
                self.cmd.run("zfs", ["destroy", n], what=f"destroy snapshot {n}", op="destroy_snapshot")
            except NotFound:
                pass

    def _rename(self, src: str, dst: str) -> None:
        self.cmd.run("zfs", ["rename", src, dst], what=f"rename {src} to {dst}", op="rename")

    def _destroy_one(self, name: str) -> None:
        self.cmd.run("zfs", ["destroy", name], what=f"destroy {name}", op="destroy")

    def _destroy_tree(self, tree: list[DatasetInfo], *, recursive: bool) -> None:
        if not recursive or len(tree) == 1:
            return super()._destroy_tree(tree, recursive=recursive)
        # Bulk: unmount by syscall (deepest first), then ONE `zfs destroy -r`.
        root = min((d for d in tree if not d.is_snapshot), key=lambda d: d.name.count("/"))
        for ds in sorted(tree, key=lambda d: d.name.count("/"), reverse=True):
            if not ds.is_snapshot and ds.mounted:
                self.unmount(ds.name, ds.mountpoint)
        try:
            self.cmd.run("zfs", ["destroy", "-r", root.name], what=f"destroy {root.name} recursively",
                         op="destroy_tree")
        except NotFound:
            pass

    def _no_zvol(self) -> AgentError:
        from agent.errors import FailedPrecondition
        return FailedPrecondition(
            f"zvols are not supported by this ZFS ({self.flavor}): zfs-fuse cannot create block volumes; "
            "use a filesystem volume or run the agent on a host with the OpenZFS kernel module",
            reason="NOT_SUPPORTED", metadata={"feature": "zvol"})
