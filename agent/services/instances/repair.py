"""Diff and Repair.

Diff: per part, what differs between the recorded spec (NIC addresses pinned
to what was allocated) and the live objects, with the planes' reason codes.
Repair: exactly that plan: the plane Ensure of every drifted part with the
recorded spec, then Diff again to report what remains.
"""
from __future__ import annotations

from agent.drivers.statestore import InstanceRecord
from agent.errors import AgentError
from agent.services.instances.context import InstanceContext
from agent.services.instances.model import (FAILED, PART_COMPUTE, PART_STORAGE, PREPARED, Allocation, InstanceDrift,
                                            InstanceSpec, RepairResult)
from agent.services.instances.records import keep_allocations, names_from_dict, names_to_dict, spec_from_dict
from agent.services.locks import remaining


def _pinned(rec: InstanceRecord) -> InstanceSpec:
    """The recorded spec with its NIC addresses pinned to what was allocated."""
    _, allocs = names_from_dict(rec.names)
    return keep_allocations(spec_from_dict(rec.spec), allocs)


class Repairer:
    """DiffInstances / RepairInstances."""

    def __init__(self, ctx: InstanceContext) -> None:
        self.ctx, self.planes, self.store = ctx, ctx.planes, ctx.store

    # -- diff ------------------------------------------------------------------------------
    def diff(self, instance_id: str = "", deadline: float | None = None) -> list[InstanceDrift]:
        """Drift of one instance or of every prepared/failed one (concurrently, a failing one
        reported with its error in its result). Read-only. Raises NotFound INSTANCE_NOT_FOUND
        for an id that is not recorded, and the plane's error when one instance's diff fails."""
        if instance_id:
            rec = self.ctx.require_record(instance_id)
            return [self._diff_one(rec, deadline)]
        recs = [r for r in self.store.list() if r.state in (PREPARED, FAILED)]
        futures = [(r, self.ctx.pool.submit(self._diff_one, r, deadline)) for r in recs]
        out = []
        for r, fut in futures:
            try:
                out.append(fut.result())
            except AgentError as exc:
                out.append(InstanceDrift(r.id, r.team, (), exc.message, exc.reason))
        return out

    def _diff_one(self, rec: InstanceRecord, deadline: float | None) -> InstanceDrift:
        found = self.planes.drift(_pinned(rec), deadline)
        return InstanceDrift(rec.id, rec.team, tuple((k, d) for k, ds in found.items() for d in ds))

    # -- repair ----------------------------------------------------------------------------
    def repair(self, instance_id: str = "", *, wait: bool = False,
               deadline: float | None = None) -> list[RepairResult]:
        """Re-ensure exactly the drifted parts of one instance or of every prepared one
        (skipping those with an operation in flight: ABORTED in their result). Idempotent:
        nothing drifted -> nothing done. Returns per instance: the plan, the parts
        re-ensured, what remains, the first part error (a failed one becomes prepared when
        nothing remains). Raises Unavailable NOT_READY (startup reconcile not finished),
        NotFound INSTANCE_NOT_FOUND (id not recorded), Aborted/DeadlineExceeded (one id, an
        operation in flight)."""
        self.ctx.require_reconciled()
        if instance_id:
            self.ctx.require_record(instance_id)
            with self.ctx.locks.hold(instance_id, wait=wait, timeout=remaining(deadline)):
                return [self._repair_one(self.ctx.require_record(instance_id), deadline)]
        out = []
        for rec in self.store.list():
            if rec.state != PREPARED:
                continue
            try:
                with self.ctx.locks.hold(rec.id):
                    out.append(self._repair_one(rec, deadline))
            except AgentError as exc:
                out.append(RepairResult(rec.id, rec.team, (), (), (), exc.message, exc.reason))
        return out

    def _repair_one(self, rec: InstanceRecord, deadline: float | None) -> RepairResult:
        spec = spec_from_dict(rec.spec)              # ensure unpinned: a recreated port takes a free address
        plan = self.planes.drift(_pinned(rec), deadline)
        planned = tuple((k, d) for k, ds in plan.items() for d in ds)
        if not plan:
            return RepairResult(rec.id, rec.team, (), (), ())
        repaired, error, reason = [], "", ""
        names, allocs = names_from_dict(rec.names)
        for key, drifts in plan.items():
            if not any(d.repairable for d in drifts):
                continue
            try:
                if key == PART_STORAGE:
                    self.planes.ensure_storage(spec, self.ctx.storage_wait)
                elif key == PART_COMPUTE:
                    self.planes.ensure_scope(spec)
                else:
                    nic = key.split(":", 1)[1]
                    i = next(i for i, n in enumerate(spec.nics) if n.name == nic)
                    port = self.planes.ensure_nic(spec, i, deadline, wait_ready=False, ready_timeout=None)
                    allocs[nic] = Allocation(port.mac, port.ip4, port.ip6)
                repaired.append(key)
            except AgentError as exc:
                error, reason = error or exc.message, reason or exc.reason
        left = self.planes.drift(keep_allocations(spec, allocs), deadline)
        remaining_ = tuple((k, d) for k, ds in left.items() for d in ds)
        state = PREPARED if rec.state == FAILED and not error and not left else rec.state
        self.ctx.journal.set_state(rec, state, rec.message if state == rec.state else "",
                                   names_to_dict(names, allocs))
        return RepairResult(rec.id, rec.team, planned, tuple(repaired), remaining_, error, reason)
