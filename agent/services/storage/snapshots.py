"""Snapshots of volumes: create, roll back to, destroy. Each holds the volume's key
(volume_locks.py: waiting, bounded, for an operation in flight on it)."""
from __future__ import annotations

from agent.drivers.zfs import ZfsBackend
from agent.errors import AlreadyExists, FailedPrecondition, NotFound
from agent.model.marks import TYPE_SNAPSHOT
from .model import P_TYPE, Snapshot, Volume
from .volume_locks import VolumeLocks
from .volume_reads import VolumeReads


class Snapshots:
    """The snapshots of the volumes of one layout."""

    def __init__(self, zfs: ZfsBackend, *, reads: VolumeReads, locks: VolumeLocks) -> None:
        self.zfs = zfs
        self.reads = reads
        self.locks = locks

    def snapshot_volume(self, team: str, name: str, snapshot: str) -> tuple[Snapshot, bool]:
        """Snapshot the volume as @<snapshot>. Returns (snapshot, changed). Idempotent (an existing
        snapshot of that name is returned with changed=false). NotFound if the volume is absent;
        FailedPrecondition NOT_OURS."""
        with self.locks.volume(team, name):
            info = self.reads.required(team, name)
            full = f"{info.name}@{snapshot}"
            changed = False
            if self.zfs.get(full) is None:
                try:
                    self.zfs.snapshot([full], {P_TYPE: TYPE_SNAPSHOT})
                    changed = True
                except AlreadyExists:
                    pass
            s = self.zfs.get(full)
            assert s is not None, f"{full} vanished right after its creation"
            return Snapshot(snapshot, s.used, s.referenced, s.creation), changed

    def rollback_volume(self, team: str, name: str, snapshot: str, *, destroy_newer: bool = False) -> Volume:
        """Roll the volume back to @<snapshot>. When newer snapshots exist: FailedPrecondition
        SNAPSHOT_NOT_LATEST unless destroy_newer (they are destroyed first; HAS_DEPENDENTS if
        one has clones). NotFound if the volume or snapshot is absent. Idempotent in effect."""
        with self.locks.volume(team, name):
            info = self.reads.required(team, name)
            tree = self.zfs.list(info.name)
            snaps = sorted((d for d in tree if d.is_snapshot and d.dataset == info.name),
                           key=lambda d: d.createtxg)
            names = [s.snapshot_name for s in snaps]
            if snapshot not in names:
                raise NotFound(f"snapshot {snapshot} of volume {team}/{name} not found", reason="SNAPSHOT_NOT_FOUND")
            newer = [s.name for s in snaps[names.index(snapshot) + 1:]]
            if newer and not destroy_newer:
                raise FailedPrecondition(f"newer snapshots exist ({', '.join(n.split('@')[1] for n in newer)}); "
                                         "pass destroy_newer to remove them", reason="SNAPSHOT_NOT_LATEST")
            if newer:
                self.zfs.destroy_snapshots(newer)
            self.zfs.rollback(f"{info.name}@{snapshot}")
            return self.reads.observe(info.name)

    def delete_snapshot(self, team: str, name: str, snapshot: str) -> bool:
        """Destroy @<snapshot>. Idempotent (absent volume or snapshot -> False).
        FailedPrecondition HAS_DEPENDENTS if something was cloned from it; NOT_OURS."""
        with self.locks.volume(team, name):
            info = self.reads.owned(team, name)
            if info is None or self.zfs.get(f"{info.name}@{snapshot}") is None:
                return False
            self.zfs.destroy_snapshots([f"{info.name}@{snapshot}"])
            return True
