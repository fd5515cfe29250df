"""The concurrency of volumes, one object shared by Volumes, Snapshots and VolumeDeletes.

- Per volume (team, name): a second operation WAITS for the one in flight (bounded by
  the call's wait_timeout, else the service's; then DeadlineExceeded LOCK_WAIT_TIMEOUT)
  and then measures again.
- Per team (a SharedExclusive gate that waits): creations hold it shared; a whole-team
  recursive destroy holds it exclusively, and a waiting destroy goes before new creations.
"""
from __future__ import annotations

from typing import ContextManager

from agent.services.locks import KeyedLocks, SharedExclusive


class VolumeLocks:
    """The volume keys and the team gate, with the default wait."""

    def __init__(self, wait_timeout: float) -> None:
        self.wait_timeout = wait_timeout
        self.keys = KeyedLocks("volume")
        self.team_gate = SharedExclusive("team")

    def _timeout(self, wait_timeout: float | None) -> float:
        return self.wait_timeout if wait_timeout is None else wait_timeout

    def volume(self, team: str, name: str, wait_timeout: float | None = None) -> ContextManager[None]:
        """Hold the volume's key, waiting for an operation in flight on it."""
        return self.keys.hold((team, name), wait=True, timeout=self._timeout(wait_timeout))

    def creating_in(self, team: str, wait_timeout: float | None = None) -> ContextManager[None]:
        """Hold the team's gate shared (a creation), waiting for a whole-team destroy."""
        return self.team_gate.shared(team, timeout=self._timeout(wait_timeout))

    def destroying(self, team: str) -> ContextManager[None]:
        """Hold the team's gate exclusively (a whole-team destroy), waiting for creations."""
        return self.team_gate.exclusive(team, timeout=self.wait_timeout)
