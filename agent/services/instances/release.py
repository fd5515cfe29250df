"""Release of instances: one, or many in bulk.

Release: record the intent (state releasing) -> delete the NICs (one bulk
network call), the root volume and the scope concurrently, by the recorded
names, leaving alone anything without our mark -> delete the record.

Bulk (a list of ids, or a whole team): ONE intent transaction for all, the
planes' bulk deletes (network: one OVS transaction + one link-group delete
+ one NB transaction for every NIC; storage: parallel destroys; compute:
every kill sent first, then the rmdirs), ONE finishing transaction.
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack

from agent.drivers.statestore import InstanceRecord
from agent.errors import AgentError
from agent.services.instances.context import InstanceContext
from agent.services.instances.model import RELEASING, ReleaseResult
from agent.services.instances.records import names_from_dict
from agent.services.instances.runner import UNDO_SECONDS, PlaneRunner, describe
from agent.services.locks import remaining


def releasing(rec: InstanceRecord) -> InstanceRecord:
    """The record as a release records its intent (state releasing, spec and names kept)."""
    return dataclasses.replace(rec, state=RELEASING, updated_at=0, message="")


class Releaser:
    """ReleaseInstance / ReleaseInstances, and the bulk delete the startup reconcile reuses."""

    def __init__(self, ctx: InstanceContext, runner: PlaneRunner) -> None:
        self.ctx, self.runner = ctx, runner
        self.store, self.journal, self.faults = ctx.store, ctx.journal, ctx.faults

    # -- one -------------------------------------------------------------------------------
    def release(self, instance_id: str, *, wait: bool = False, deadline: float | None = None) -> bool:
        """Remove every part of the instance and its record; processes still in the scope are
        killed. Idempotent: returns False when nothing is recorded under the id (OK). Raises
        Unavailable NOT_READY (startup reconcile not finished), Aborted (operation in flight,
        wait=False), DeadlineExceeded (wait=True), and the failing part's error (the record
        stays, state failed; Release again to finish)."""
        self.ctx.require_reconciled()
        with self.ctx.locks.hold(instance_id, wait=wait, timeout=remaining(deadline)):
            rec = self.store.get(instance_id)
            if rec is None:
                return False
            names, _ = names_from_dict(rec.names)
            rec = releasing(rec)
            op = self.journal.begin(rec, "release")
            self.faults.hit("release", "intent-recorded")
            errors = self.runner.delete(rec.team, rec.id, names, deadline, "release")
            if errors:
                self.journal.failed(op, rec, "release failed: " + describe(errors))
                raise errors[0]
            self.faults.hit("release", "planes-done")
            self.journal.released(op, rec)
        return True

    # -- many ------------------------------------------------------------------------------
    def release_many(self, ids: list[str] | None = None, team: str = "", *,
                     deadline: float | None = None) -> list[ReleaseResult]:
        """Release the listed instances, or every instance of `team`, in bulk; results in the
        order asked. Idempotent per instance: released=False for an unknown id. Never raises
        for one instance: ABORTED in the result of one with an operation in flight, the part's
        error for one whose delete failed (its record stays, state failed). Raises Unavailable
        NOT_READY (startup reconcile not finished) for the whole call."""
        self.ctx.require_reconciled()
        results: dict[str, ReleaseResult] = {}
        if team:
            recs = self.store.list(team)
            order = [r.id for r in recs]
        else:
            order = list(dict.fromkeys(ids or []))
            recs = []
            for i in order:
                r = self.store.get(i)
                if r is None:
                    results[i] = ReleaseResult(i, False)
                else:
                    recs.append(r)
        end = deadline if deadline is not None else time.monotonic() + UNDO_SECONDS
        with ExitStack() as stack:
            held = []
            for r in recs:
                try:
                    stack.enter_context(self.ctx.locks.hold(r.id))
                    held.append(r)
                except AgentError as exc:
                    results[r.id] = ReleaseResult(r.id, False, exc.message, exc.code.name, exc.reason)
            if held:
                self.bulk_delete(held, end, results)
        return [results[i] for i in order]

    def bulk_delete(self, recs: list[InstanceRecord], end: float, results: dict[str, ReleaseResult], *,
                    op: str = "release", ops: dict[str, int] | None = None, keep_failed: bool = False) -> None:
        """Delete every part of `recs` (their locks held by the caller) in bulk, then their
        records; fills `results` per id. ops=None: record the intent first (one transaction);
        else finish those running operations (startup reconcile, `op` names its checkpoints).
        keep_failed: an instance whose delete failed keeps its operation running (the
        reconcile retries it) instead of being recorded as failed. Never raises for a plane."""
        recs = [releasing(r) for r in recs]
        if ops is None:
            ops = self.journal.begin_many(recs, "release")
            self.faults.hit(op, "intent-recorded")
        else:
            self.journal.resumed(recs)
        failed = self.runner.delete_many(recs, end, op)
        self.faults.hit(op, "planes-done")
        self.journal.released_many(ops, [r for r in recs if r.id not in failed])
        for r in recs:
            if r.id in failed:
                exc = failed[r.id]
                msg = getattr(exc, "message", str(exc))
                if not keep_failed:
                    self.journal.failed(ops[r.id], r, f"release failed: {msg}", event_message=msg)
                code = exc.code.name if isinstance(exc, AgentError) else "INTERNAL"
                results[r.id] = ReleaseResult(r.id, False, msg, code, getattr(exc, "reason", ""))
            else:
                results[r.id] = ReleaseResult(r.id, True)
