"""The intent store's contract: durable records of what the instance plane is about to create."""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Protocol

from agent.drivers.base import Availability

if TYPE_CHECKING:           # statestore.py imports this module: its records for annotations only
    from agent.drivers.statestore import InstanceRecord, Operation


class StateStoreContract(Protocol):
    """Instance records (the desired spec and every object name, recorded before the first
    object exists) and the operations run on them. Thread-safe.

    Every method but open/probe/close raises FailedPrecondition STATE_STORE_UNAVAILABLE
    while the store is not open. A write returns only once it is durable (on disk); a
    failed write transaction is rolled back. Storage errors of an open store (disk full,
    I/O error) propagate as sqlite3.Error, untranslated."""

    def open(self) -> None:
        """Create or open the store and its tables. Idempotent: open already -> nothing to do;
        an existing store keeps its rows. Raises FailedPrecondition STATE_STORE_UNAVAILABLE
        when the directory or the file is unusable."""

    def probe(self) -> Availability:
        """Available once open() succeeded; else missing with open()'s error. Never raises."""

    def close(self) -> None:
        """Close the store. Idempotent (closed already: nothing to do); open() may follow."""

    # -- writes (each one transaction) ---------------------------------------------
    def begin(self, record: InstanceRecord, kind: str) -> int:
        """Record intent: upsert the instance row and start an operation (status running), in one
        transaction on disk before it returns. Returns the op id. Not idempotent: each call
        starts a new operation; an existing row is overwritten but keeps its created_at.
        Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    def begin_many(self, records: builtins.list[InstanceRecord], kind: str) -> dict[str, int]:
        """begin() for many existing instances in ONE transaction (bulk release): sets their state
        and starts one operation each. Returns id -> op id. An absent instance row is not
        created (its operation is started anyway). Raises as begin()."""

    def step_done(self, op_id: int, step: str) -> None:
        """Journal a finished step of a running operation (not fsync-critical). An unknown op id
        is ignored. Not idempotent: a step given twice is journalled twice. Raises
        FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    def finish(self, op_id: int, status: str, *, instance_id: str, state: str | None,
               message: str = "", names: dict | None = None) -> None:
        """Close an operation; set the instance state (and `names`, when given: e.g. what was
        allocated), or delete the row when state is None; one transaction. Idempotent (same
        arguments again give the same rows); an unknown op id or instance is no error.
        Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    def set_state(self, instance_id: str, state: str, message: str = "", names: dict | None = None) -> None:
        """Set an instance's state (and names, when given) outside an operation (e.g. after a Repair).
        Idempotent; an absent instance is no error (nothing changes). Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    def finish_many(self, op_ids: dict[str, int], status: str) -> None:
        """Close many release operations (instance id -> op id) and delete their instances, in one
        transaction. Idempotent; absent rows are no error. Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    # -- reads --------------------------------------------------------------------
    def get(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None when absent. Read-only. Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    def list(self, team: str = "") -> builtins.list[InstanceRecord]:
        """Every instance record (of `team` when given), by id; [] when none. Read-only.
        Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    def running_operations(self) -> builtins.list[Operation]:
        """Operations still marked running (a crash interrupted them, or in flight now), oldest
        first. Read-only. Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""

    def prune_operations(self, keep_seconds: float = 86400.0) -> int:
        """Drop finished operations older than `keep_seconds`; returns how many (0 when none).
        Idempotent; running operations are never dropped. Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""
