"""Deletion of volumes: one, or many of a team in bulk (one recursive destroy of the
team's dataset when that covers them all, else in parallel), and the collection of a
parked image whose last clone went with them."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Sequence

from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.errors import AgentError, FailedPrecondition
from agent.model.marks import TYPE_VOLUME

from .directories import Directories
from .images import Images
from .layout import Layout, is_ours
from .model import MARKS, P_TYPE, DeleteResult
from .volume_locks import VolumeLocks

log = logging.getLogger(__name__)
BULK_WORKERS = 8                     # parallel destroys in bulk deletes


class VolumeDeletes:
    """Destroys the volumes of one layout."""

    def __init__(self, zfs: ZfsBackend, layout: Layout, *, dirs: Directories, images: Images,
                 locks: VolumeLocks) -> None:
        self.zfs, self.layout = zfs, layout
        self.dirs = dirs
        self.images = images
        self.locks = locks

    def delete_volume(self, team: str, name: str, *, wait_timeout: float | None = None,
                      tree: list[DatasetInfo] | None = None) -> bool:
        """Destroy the volume with its snapshots. Returns False if it did not exist (OK).

        Unmounts first and retries busy (bounded), then FailedPrecondition DATASET_BUSY naming
        the mountpoint and what holds it. NOT_OURS for a foreign dataset; HAS_DEPENDENTS if one
        of its snapshots has clones. A parked image whose last clone this was is destroyed too.
        `tree`: the volume's listing when the caller has one (a bulk delete lists the team
        once); a retry lists again. Waits for an operation in flight on the volume
        (DeadlineExceeded past wait_timeout, default the service's).
        """
        with self.locks.volume(team, name, wait_timeout):
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
            self.images.collect_parked([info.origin.split("@", 1)[0]])
        return deleted

    def delete_volumes(self, team: str, names: Sequence[str] | None = None) -> list[DeleteResult]:
        """Bulk delete of `names` (None: every volume of `team`). When they are every volume
        in the team and everything there is ours: one recursive destroy of the team dataset,
        with new volumes of the team held back meanwhile (the team gate); else per volume,
        parallel (BULK_WORKERS), foreign datasets left. Each result says deleted/absent/
        error; the call itself fails only if the backend is unavailable (Unavailable) or
        the team stays busy past wait_timeout (DeadlineExceeded)."""
        team_dir = self.layout.team(team)
        with self.locks.destroying(team):
            tree = self.zfs.list(team_dir, MARKS)
            if not tree:
                return [DeleteResult(team, n, False) for n in names or []]
            datasets = [d for d in tree if not d.is_snapshot and d.name != team_dir]
            vols = {d.name.rsplit("/", 1)[-1]: d for d in datasets
                    if is_ours(d) and d.user_props.get(P_TYPE) == TYPE_VOLUME}
            if names is None:
                names = sorted(vols)
            whole = is_ours(tree[0]) and all(is_ours(d) for d in datasets) and set(vols) <= set(names)
            if whole and self._destroy_team(team, team_dir, tree, vols):
                return [DeleteResult(team, n, n in vols) for n in names]

        # one listing for all: per volume its own datasets and snapshots, root first (zfs get -r order)
        subtrees: dict[str, list[DatasetInfo]] = {}
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

    def _destroy_team(self, team: str, team_dir: str, tree: list[DatasetInfo], vols: dict[str, DatasetInfo]) -> bool:
        """One recursive destroy of the team dataset (the caller holds the team gate exclusively).
        False when it failed (busy after the retries...): the caller goes volume by volume,
        which reports per volume."""
        origins = {d.origin.split("@", 1)[0] for d in vols.values() if d.origin and self.layout.is_parked(d.origin)}
        try:
            with ExitStack() as held:
                for n in sorted(vols):
                    held.enter_context(self.locks.volume(team, n))
                self.dirs.forget_team(team)
                self.zfs.destroy(team_dir, recursive=True, tree=tree)
        except AgentError as exc:
            log.warning("recursive destroy of %s failed (%s); deleting volume by volume", team_dir, exc.message)
            return False
        if origins:
            self.images.collect_parked(origins)
        return True

