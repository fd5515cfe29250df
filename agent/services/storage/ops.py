"""StorageService, snapshot and deletion part (a mixin of StorageService)."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from agent.errors import AgentError, AlreadyExists, FailedPrecondition, NotFound
from agent.services.locks import KeyedLocks

from .model import MARKS, P_TYPE, DeleteResult, Snapshot, Volume
from .images import is_ours

log = logging.getLogger(__name__)
BULK_WORKERS = 8                     # parallel destroys in bulk deletes


class SnapshotDeleteOps:
    """Snapshots and deletion of volumes (needs StorageService's zfs, layout, locks)."""

    def snapshot_volume(self, team: str, name: str, snapshot: str) -> tuple[Snapshot, bool]:
        """Snapshot the volume as @<snapshot>. Returns (snapshot, changed). Idempotent (an existing
        snapshot of that name is returned with changed=false). NotFound if the volume is absent."""
        with self.volume_locks.hold((team, name), wait=True, timeout=self.wait_timeout):
            info = self._require_volume(team, name)
            full = f"{info.name}@{snapshot}"
            changed = False
            if self.zfs.get(full) is None:
                try:
                    self.zfs.snapshot([full], {P_TYPE: "snapshot"})
                    changed = True
                except AlreadyExists:
                    pass
            s = self.zfs.get(full)
            return Snapshot(snapshot, s.used, s.referenced, s.creation), changed

    def rollback_volume(self, team: str, name: str, snapshot: str, *, destroy_newer: bool = False) -> Volume:
        """Roll the volume back to @<snapshot>. When newer snapshots exist: FailedPrecondition
        SNAPSHOT_NOT_LATEST unless destroy_newer (they are destroyed first; HAS_DEPENDENTS if
        one has clones). NotFound if the volume or snapshot is absent. Idempotent in effect."""
        with self.volume_locks.hold((team, name), wait=True, timeout=self.wait_timeout):
            info = self._require_volume(team, name)
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
            return self._observe(info.name)

    def delete_snapshot(self, team: str, name: str, snapshot: str) -> bool:
        """Destroy @<snapshot>. Idempotent (absent volume or snapshot -> False).
        FailedPrecondition HAS_DEPENDENTS if something was cloned from it."""
        with self.volume_locks.hold((team, name), wait=True, timeout=self.wait_timeout):
            info = self._owned_volume(team, name)
            if info is None or self.zfs.get(f"{info.name}@{snapshot}") is None:
                return False
            self.zfs.destroy_snapshots([f"{info.name}@{snapshot}"])
            return True

    def delete_volume(self, team: str, name: str, *, wait_timeout: float | None = None,
                      tree: list | None = None) -> bool:
        """Destroy the volume with its snapshots. Returns False if it did not exist (OK).

        Unmounts first and retries busy (bounded), then FailedPrecondition DATASET_BUSY naming
        the mountpoint. NOT_OURS for a foreign dataset; HAS_DEPENDENTS if one of its snapshots
        has clones. A parked image whose last clone this was is destroyed too. `tree`: the
        volume's listing when the caller has one (a bulk delete lists the team once); a retry
        lists again.
        """
        with self.volume_locks.hold((team, name), wait=True,
                                    timeout=self.wait_timeout if wait_timeout is None else wait_timeout):
            if tree is None:
                tree = self.zfs.list(self.layout.volume(team, name), MARKS)
            if not tree:
                return False
            info = tree[0]
            if not is_ours(info):
                raise FailedPrecondition(f"{info.name} is not ours; it is left alone", reason="NOT_OURS",
                                         metadata={"dataset": info.name})
            deleted = self.zfs.destroy(info.name, recursive=True, tree=tree)
        if info.origin and self.layout.is_parked(info.origin):
            self.collect_parked([info.origin.split("@", 1)[0]])
        return deleted

    def delete_volumes(self, team: str, names: Sequence[str] | None = None) -> list[DeleteResult]:
        """Bulk delete of `names` (None: every volume of `team`). When they are every volume
        in the team and everything there is ours: one recursive destroy of the team dataset,
        with new volumes of the team held back meanwhile (team_gate); else per volume,
        parallel (BULK_WORKERS), foreign datasets left. Each result says deleted/absent/
        error; the call itself fails only if the backend is unavailable."""
        team_dir = self.layout.team(team)
        with self.team_gate.exclusive(team, timeout=self.wait_timeout):
            tree = self.zfs.list(team_dir, MARKS)
            if not tree:
                return [DeleteResult(team, n, False) for n in names or []]
            datasets = [d for d in tree if not d.is_snapshot and d.name != team_dir]
            vols = {d.name.rsplit("/", 1)[-1]: d for d in datasets
                    if is_ours(d) and d.user_props.get(P_TYPE) == "volume"}
            if names is None:
                names = sorted(vols)
            whole = is_ours(tree[0]) and all(is_ours(d) for d in datasets) and set(vols) <= set(names)
            if whole and self._destroy_team(team, team_dir, tree, vols):
                return [DeleteResult(team, n, n in vols) for n in names]

        # one listing for all: per volume its own datasets and snapshots, root first (zfs get -r order)
        subtrees: dict[str, list] = {}
        for d in tree:
            rest = d.name[len(team_dir) + 1:] if d.name.startswith(team_dir + "/") else ""
            if rest:
                subtrees.setdefault(rest.split("/", 1)[0].split("@", 1)[0], []).append(d)

        def one(n: str) -> DeleteResult:
            root = self.layout.volume(team, n)
            sub = sorted(subtrees.get(n, []), key=lambda d: d.name != root)      # the volume itself first
            try:
                return DeleteResult(team, n, self.delete_volume(team, n, tree=sub))
            except AgentError as exc:
                return DeleteResult(team, n, False, exc.message, exc.reason)

        with ThreadPoolExecutor(max_workers=BULK_WORKERS) as pool:
            return list(pool.map(one, names))

    def _destroy_team(self, team: str, team_dir: str, tree: list, vols: dict) -> bool:
        """One recursive destroy of the team dataset (caller holds team_gate exclusively).
        False when it failed (busy after the retries...): the caller goes volume by volume,
        which reports per volume."""
        origins = {d.origin.split("@", 1)[0] for d in vols.values() if d.origin and self.layout.is_parked(d.origin)}
        try:
            with _hold_all(self.volume_locks, sorted((team, n) for n in vols), self.wait_timeout):
                self._teams.discard(team_dir)
                self.zfs.destroy(team_dir, recursive=True, tree=tree)
        except AgentError as exc:
            log.warning("recursive destroy of %s failed (%s); deleting volume by volume", team_dir, exc.message)
            return False
        if origins:
            self.collect_parked(origins)
        return True



class _hold_all:
    """Hold several keys of a KeyedLocks (sorted, waiting) for a block."""

    def __init__(self, locks: KeyedLocks, keys: Sequence, timeout: float) -> None:
        self.locks, self.keys, self.timeout = locks, list(keys), timeout
        self._cms: list = []

    def __enter__(self):
        try:
            for k in self.keys:
                cm = self.locks.hold(k, wait=True, timeout=self.timeout)
                cm.__enter__()
                self._cms.append(cm)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self._cms:
            self._cms.pop().__exit__(None, None, None)
