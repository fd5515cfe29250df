"""Prepare: validate -> kind checks (VM: KVM + zvols; Kubernetes node: nesting
preflight) -> compute every object name -> record the intent (SQLite,
synchronous) naming them -> run the planes concurrently -> record "prepared"
with the addresses that were allocated.

A new instance registers its undo right after the intent is recorded: delete
the parts by the recorded names (reverse plane order), objects without our
mark left alone; fully undone -> the record goes, else it stays failed. An
existing instance converges its mutable fields under a recorded "update";
a failure records it failed (the parts stay: they were there before).
"""
from __future__ import annotations

import logging

from agent.drivers.statestore import InstanceRecord
from agent.errors import AlreadyExists, FailedPrecondition
from agent.services.instances.context import InstanceContext
from agent.services.instances.model import KIND_VM, PREPARED, PREPARING, Instance, InstanceNames, InstanceSpec
from agent.services.instances.records import incompatible, names_from_dict, names_to_dict, spec_from_dict, spec_to_dict
from agent.services.instances.runner import PlaneRunner, PlanesFailed, describe
from agent.services.locks import remaining
from agent.services.revert import Reverter

log = logging.getLogger(__name__)


class Preparer:
    """PrepareInstance: create or converge one instance."""

    def __init__(self, ctx: InstanceContext, runner: PlaneRunner) -> None:
        self.ctx, self.runner = ctx, runner
        self.journal, self.planes, self.faults = ctx.journal, ctx.planes, ctx.faults

    def prepare(self, spec: InstanceSpec, *, wait: bool = False, deadline: float | None = None,
                wait_ready: bool = False, ready_timeout: float | None = None) -> Instance:
        """Create or converge every part of the instance; returns the observed instance.

        Idempotent (same spec: changed=False, nothing recorded). Raises Unavailable NOT_READY
        (startup reconcile not finished), AlreadyExists INSTANCE_SPEC_MISMATCH (an immutable
        field differs from the record), FailedPrecondition (NODE_CANNOT_HOST with the reasons;
        a team network/slice/image missing; an object in the way is not ours), Aborted
        (another operation on the id in flight, wait=False), DeadlineExceeded (wait=True and
        the deadline passed), InvalidArgument, Unavailable; errors of a plane name the part
        (metadata part/object). With wait_ready the NICs are waited for until ovn-installed
        and up (bounded); their status says what is still missing."""
        self.ctx.require_reconciled()
        names = self.planes.names_for(spec)
        with self.ctx.locks.hold(spec.id, wait=wait, timeout=remaining(deadline)):
            rec = self.ctx.store.get(spec.id)
            if rec is None:
                self._check_kind(spec)
                return self._create(spec, names, deadline, wait_ready, ready_timeout)
            return self._update(spec, rec, deadline, wait_ready, ready_timeout)

    def _check_kind(self, spec: InstanceSpec) -> None:
        problems = self.planes.kind_problems(spec)
        if problems:
            what = "a VM" if spec.kind == KIND_VM else "a Kubernetes node container"
            raise FailedPrecondition(f"this node cannot host {what}: " + "; ".join(problems),
                                     reason="NODE_CANNOT_HOST", metadata={
                                         "missing": ",".join(p.split(":", 1)[0] for p in problems)})

    def _create(self, spec: InstanceSpec, names: InstanceNames, deadline: float | None, wait_ready: bool,
                ready_timeout: float | None) -> Instance:
        rec = InstanceRecord(spec.id, spec.team, PREPARING, spec_to_dict(spec), names_to_dict(names), 1, 0, 0)
        op = self.journal.begin(rec, "prepare")                      # intent before action
        cause: list[BaseException] = []         # what the undo reports (empty: the "prepared" write failed)
        with Reverter(f"prepare of instance {spec.id}") as revert:
            revert.add(lambda: self._undo_new(rec, names, op, cause))
            self.faults.hit("prepare", "intent-recorded")
            try:
                inst = self.runner.ensure(spec, names, deadline, wait_ready, ready_timeout)
            except PlanesFailed as pf:
                cause.append(pf.first())
                raise cause[0] from None
            self.faults.hit("prepare", "planes-done")
            allocs = inst.observed_allocations()
            self.journal.prepared(op, rec, names_to_dict(names, allocs), ready=inst.ready)
            revert.success()
        inst.allocations, inst.state, inst.changed = allocs, PREPARED, True
        return inst

    def _undo_new(self, rec: InstanceRecord, names: InstanceNames, op: int, cause: list[BaseException]) -> None:
        """Roll back a new instance: delete its parts by recorded names, objects without our
        mark left alone. Fully undone -> the record goes; else it stays as failed (Release or
        the startup reconcile finish the job)."""
        problems = self.runner.delete(rec.team, rec.id, names, None, "rollback")      # bounded: UNDO_SECONDS
        err = cause[0] if cause else "not recorded as prepared"
        msg = f"prepare failed: {getattr(err, 'message', err)}"
        if problems:
            msg += "; rollback incomplete: " + describe(problems)
            log.error("instance %s: %s", rec.id, msg)
            self.journal.failed(op, rec, msg)
        else:
            self.journal.rolled_back(op, rec, msg)

    def _update(self, spec: InstanceSpec, rec: InstanceRecord, deadline: float | None, wait_ready: bool,
                ready_timeout: float | None) -> Instance:
        old = spec_from_dict(rec.spec)
        names, allocs = names_from_dict(rec.names)
        bad = incompatible(old, spec, allocs)
        if bad:
            raise AlreadyExists(f"instance {spec.id} exists with another spec: " + "; ".join(bad),
                                reason="INSTANCE_SPEC_MISMATCH",
                                metadata={"fields": ",".join(b.split(":", 1)[0] for b in bad)})
        same = spec_to_dict(spec) == rec.spec
        gen = rec.generation + (0 if same else 1)
        op = None
        if not (same and rec.state == PREPARED):
            if not same:
                self._check_kind(spec)
                names = self.planes.names_for(spec)               # peer placement may have changed
            rec = InstanceRecord(spec.id, spec.team, PREPARING, spec_to_dict(spec), names_to_dict(names, allocs),
                                 gen, rec.created_at, 0)
            op = self.journal.begin(rec, "update")
        try:
            # addresses are not pinned: an existing port keeps its own (the network plane restores them
            # from its mark), a port that vanished gets a free one (its old one may be taken meanwhile)
            inst = self.runner.ensure(spec, names, deadline, wait_ready, ready_timeout)
        except PlanesFailed as pf:
            err = pf.first()
            if op is not None:
                self.journal.failed(op, rec, f"update failed: {getattr(err, 'message', err)}")
            raise err from None
        allocs = {**allocs, **inst.observed_allocations()}
        if op is not None:
            self.journal.prepared(op, rec, names_to_dict(names, allocs), ready=inst.ready)
        inst.spec, inst.allocations, inst.state = spec, allocs, PREPARED
        inst.generation, inst.created_at = gen, rec.created_at
        inst.changed = inst.changed or op is not None and not same
        return inst
