"""The operation journal of the instance plane: every write of the intent store
together with the watch event it implies, in one place.

An operation begins (intent recorded: the record names every object before
any exists; state published; the NICs indexed for the watch), then ends one
way: prepared, released, failed, rolled back, or abandoned by the startup
reconcile. Each end is one store transaction, then its event. Records are
`InstanceRecord`s (their `names` dict says which NICs the watch indexes).
"""
from __future__ import annotations

from typing import Iterable

from agent.drivers.contracts.statestore import StateStoreContract
from agent.drivers.statestore import InstanceRecord
from agent.services.instances.model import FAILED, PREPARED, RELEASED, Event, NicNames
from agent.services.instances.records import names_from_dict
from agent.services.instances.watch import WatchHub


def _nics(rec: InstanceRecord) -> tuple[NicNames, ...]:
    return names_from_dict(rec.names)[0].nics


class Journal:
    """Intent store writes + their events (thread-safe: the store and the hub are)."""

    def __init__(self, store: StateStoreContract, hub: WatchHub) -> None:
        self.store, self.hub = store, hub

    # -- beginnings ------------------------------------------------------------------------
    def begin(self, rec: InstanceRecord, kind: str) -> int:
        """Record the intent (upsert `rec` with its state and names, start a running operation
        of `kind`: one synchronous transaction), index its NICs, publish its state. Returns the
        operation id. Raises FailedPrecondition STATE_STORE_UNAVAILABLE (nothing recorded)."""
        op = self.store.begin(rec, kind)
        self.hub.index(rec.id, rec.team, rec.state, _nics(rec))
        self.hub.publish(Event(rec.id, rec.team, rec.state))
        return op

    def begin_many(self, recs: list[InstanceRecord], kind: str) -> dict[str, int]:
        """begin() for many existing records in ONE transaction (their state set, names kept).
        Returns id -> operation id. Raises like begin() (then nothing is recorded)."""
        ops = self.store.begin_many(recs, kind)
        self.resumed(recs)
        return ops

    def resumed(self, recs: Iterable[InstanceRecord]) -> None:
        """Publish the state of records whose operations are already running (no write)."""
        for r in recs:
            self.hub.publish(Event(r.id, r.team, r.state))

    # -- ends ------------------------------------------------------------------------------
    def prepared(self, op: int, rec: InstanceRecord, names: dict, *, ready: bool, announce: bool = True) -> None:
        """Close `op` as done: the instance is prepared with `names` (allocations included).
        announce=False records without an event (the startup reconcile's roll-forward)."""
        self.store.finish(op, "done", instance_id=rec.id, state=PREPARED, names=names)
        if announce:
            self.hub.publish(Event(rec.id, rec.team, PREPARED, ready=ready))

    def failed(self, op: int, rec: InstanceRecord, message: str, *, event_message: str | None = None) -> None:
        """Close `op` as failed: the record stays, state failed, with `message` (the event
        carries `event_message` when given). Release or reconcile finish the job later."""
        self.store.finish(op, "failed", instance_id=rec.id, state=FAILED, message=message)
        self.hub.publish(Event(rec.id, rec.team, FAILED,
                               message=message if event_message is None else event_message))

    def rolled_back(self, op: int, rec: InstanceRecord, message: str) -> None:
        """Close `op` of a new instance fully undone: the record goes; the event says failed."""
        self.store.finish(op, "rolled-back", instance_id=rec.id, state=None, message=message)
        self.hub.publish(Event(rec.id, rec.team, FAILED, message=message))
        self.hub.unindex(rec.id, _nics(rec))

    def released(self, op: int, rec: InstanceRecord) -> None:
        """Close `op` as done: every part is gone, the record goes."""
        self.store.finish(op, "done", instance_id=rec.id, state=None)
        self._gone([rec])

    def released_many(self, ops: dict[str, int], recs: list[InstanceRecord]) -> None:
        """released() for `recs` (ops: id -> operation id) in ONE transaction."""
        if not recs:
            return
        self.store.finish_many({r.id: ops[r.id] for r in recs}, "done")
        self._gone(recs)

    def _gone(self, recs: Iterable[InstanceRecord]) -> None:
        """Publish released and drop the NICs of records already deleted (no write)."""
        for r in recs:
            self.hub.publish(Event(r.id, r.team, RELEASED))
            self.hub.unindex(r.id, _nics(r))

    def abandoned(self, op: int, instance_id: str, *, state: str | None, message: str = "") -> None:
        """Close a running operation the startup reconcile will not finish (superseded by a
        later one, or its record is gone); state None deletes the record. No event."""
        self.store.finish(op, "abandoned", instance_id=instance_id, state=state, message=message)

    # -- outside operations ----------------------------------------------------------------
    def set_state(self, rec: InstanceRecord, state: str, message: str, names: dict) -> None:
        """Record a state and names reached outside an operation (after a Repair). No event."""
        self.store.set_state(rec.id, state, message, names=names)

    def track(self, recs: Iterable[InstanceRecord]) -> None:
        """Index the NICs of recorded instances for the watch (startup). No write."""
        for r in recs:
            self.hub.index(r.id, r.team, r.state, _nics(r))

    def prune(self) -> int:
        """Delete finished operations older than a day. Returns how many."""
        return self.store.prune_operations()
