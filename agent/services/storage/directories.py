"""Our directory datasets: the fixed ones under the parent (images/, instances/,
deleted/images/, tmp/), checked or created once per process, and one per team under
instances/, created on the team's first volume and remembered (saves a read per create)."""
from __future__ import annotations

import threading

from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.errors import AlreadyExists, FailedPrecondition
from agent.model.marks import TYPE_DIR
from agent.services.locks import KeyedLocks

from .layout import Layout, is_ours
from .model import MARKS, OWNER, P_OWNER, P_TEAM, P_TYPE


class Directories:
    """The directory datasets of one layout (see the module doc)."""

    def __init__(self, zfs: ZfsBackend, layout: Layout, *, wait_timeout: float) -> None:
        self.zfs = zfs
        self.layout = layout
        self.wait_timeout = wait_timeout
        self._ready = False
        self._ready_lock = threading.Lock()
        self._team_locks = KeyedLocks("team directory")
        self._teams: set[str] = set()  # team datasets known to exist and be ours

    def ensure(self) -> None:
        """Create the fixed directories with our mark, or check they are ours. Idempotent;
        the work is done once per process. Raises FailedPrecondition POOL_NOT_FOUND (pool
        not imported), NOT_OURS (one exists without our mark)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            pool = self.layout.pool
            if self.zfs.get(pool) is None:
                raise FailedPrecondition(f"pool {pool} is not imported; import it or fix [storage].pool",
                                         reason="POOL_NOT_FOUND", metadata={"pool": pool})
            found = self.zfs.get_many(self.layout.dirs(), MARKS)
            for d in self.layout.dirs():
                self._ensure_dir(d, found.get(d))
            self._ready = True

    def _ensure_dir(self, dataset: str, info: DatasetInfo | None, **marks: str) -> bool:
        """Create one of our directory datasets with our mark. Returns True if created."""
        if info is not None:
            if not is_ours(info):
                raise FailedPrecondition(
                    f"{dataset} exists but is not the agent's (no local {P_OWNER}={OWNER}); set that property "
                    "on it to hand it to the agent, or configure another [storage].parent",
                    reason="NOT_OURS", metadata={"dataset": dataset})
            return False
        try:
            self.zfs.create_filesystem(dataset, {P_OWNER: OWNER, P_TYPE: TYPE_DIR, **marks})
            return True
        except AlreadyExists:   # created concurrently: check it is ours
            again = self.zfs.get(dataset, MARKS)
            if not is_ours(again):
                raise FailedPrecondition(f"{dataset} appeared concurrently and is not ours", reason="NOT_OURS")
            return False

    def team_known(self, team: str) -> bool:
        """True when the team's directory is known to exist and be ours (no read)."""
        return self.layout.team(team) in self._teams

    def forget_team(self, team: str) -> None:
        """The team's directory may be gone (destroyed, or removed behind our back)."""
        self._teams.discard(self.layout.team(team))

    def ensure_team(self, team: str, info: DatasetInfo | None) -> None:
        """Create the team's directory once, even when volumes of a new team are created
        concurrently: zfs-fuse sets the properties of `zfs create -o` after the dataset
        appears, so a racing creator would see it without our mark (NOT_OURS). `info`: a
        read of it the caller already has (None = absent or unknown). Raises
        FailedPrecondition NOT_OURS, DeadlineExceeded (another creator held it too long)."""
        team_dir = self.layout.team(team)
        with self._team_locks.hold(team, wait=True, timeout=self.wait_timeout):
            if team_dir in self._teams:
                return
            if info is None or not is_ours(info):          # read again under the lock
                info = self.zfs.get(team_dir, MARKS)
            self._ensure_dir(team_dir, info, **{P_TEAM: team})
            self._teams.add(team_dir)
