"""Release of instances (a mixin of InstanceService): one, or many in bulk.

Release: record the intent (state releasing) -> delete the NICs (one bulk
network call), the root volume and the scope concurrently, by the recorded
names, leaving alone anything without our mark -> delete the record.

Bulk (a list of ids, or a whole team): ONE intent transaction for all, the
planes' bulk deletes (network: one OVS transaction + one link-group delete
+ one NB transaction for every NIC; storage: parallel destroys; compute:
every kill sent first, then the rmdirs), ONE finishing transaction.
"""
from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from typing import Callable

from agent.drivers.statestore import InstanceRecord
from agent.errors import AgentError, FailedPrecondition, Internal
from agent.services.instances.model import (FAILED, RELEASED, RELEASING, Event, InstanceNames, ReleaseResult,
                                           names_from_dict)
from agent.services.instances.planes import part, tagged
from agent.services.locks import remaining

log = logging.getLogger(__name__)
_TOLERATED = ("NOT_OURS", "OTHER_NODE")        # an object in our name's place that is not ours: left alone
_UNDO_SECONDS = 30.0                            # bound of deletes that run without a caller deadline


def _tolerated(exc: BaseException) -> bool:
    return isinstance(exc, FailedPrecondition) and exc.reason in _TOLERATED


def describe(errors: list[BaseException]) -> str:
    """One line for a list of plane errors (an AgentError's message, else its str)."""
    return "; ".join(getattr(e, "message", None) or str(e) or type(e).__name__ for e in errors)


class ReleaseOps:
    """release / release_many / the shared delete-by-names (needs InstanceService's members)."""

    # -- one -----------------------------------------------------------------------------
    def release(self, instance_id: str, *, wait: bool = False, deadline: float | None = None) -> bool:
        """Remove every part of the instance and its record. Returns False when nothing is
        recorded under the id (OK: idempotent). Processes still in the scope are killed.
        Raises Aborted (operation in flight), DeadlineExceeded (wait=True), and the failing
        part's error (the record stays, state failed; Release again to finish)."""
        started, ok = time.perf_counter(), False
        try:
            self.require_reconciled()
            with self.locks.hold(instance_id, wait=wait, timeout=remaining(deadline)):
                rec = self.store.get(instance_id)
                if rec is None:
                    ok = True
                    return False
                names, _ = names_from_dict(rec.names)
                op = self.store.begin(InstanceRecord(rec.id, rec.team, RELEASING, rec.spec, rec.names,
                                                     rec.generation, rec.created_at, 0), "release")
                self.hub.publish(Event(rec.id, rec.team, RELEASING))
                self.faults.hit("release", "intent-recorded")
                errors = self._delete_parts(rec.team, rec.id, names, deadline, "release")
                if errors:
                    msg = "release failed: " + describe(errors)
                    self.store.finish(op, "failed", instance_id=rec.id, state=FAILED, message=msg)
                    self.hub.publish(Event(rec.id, rec.team, FAILED, message=msg))
                    raise errors[0]
                self.faults.hit("release", "planes-done")
                self.store.finish(op, "done", instance_id=rec.id, state=None)
                self.hub.publish(Event(rec.id, rec.team, RELEASED))
                self.hub.unindex(rec.id, names.nics)
            ok = True
            return True
        finally:
            self._timed("release", started, ok)

    def _delete_parts(self, team: str, instance_id: str, names: InstanceNames, deadline: float | None,
                      op: str) -> list[BaseException]:
        """Delete NICs (here), volume and scope (pool) concurrently by recorded names. Absent
        objects and objects that are not ours are fine. Returns the errors (empty: all gone)."""
        end = deadline if deadline is not None else time.monotonic() + _UNDO_SECONDS
        f = self.faults

        def storage():
            try:
                self.planes.delete_storage(names, wait_timeout=max(0.0, end - time.monotonic()))
            except FailedPrecondition as exc:
                if not _tolerated(exc):
                    raise
            f.hit(op, "storage.volume-destroyed")

        def compute():
            try:
                self.planes.delete_scope(team, instance_id, end)
            except FailedPrecondition as exc:
                if not _tolerated(exc):
                    raise
            f.hit(op, "compute.scope-removed")

        futures = [self.pool.submit(storage), self.pool.submit(compute)]
        errors: list[BaseException] = []
        try:
            self._delete_nics(names.ports(), end, f.checkpoint(op, "network."))
        except BaseException as exc:         # noqa: BLE001 - collected, the caller raises
            errors.append(exc)
        for fut in futures:
            try:
                fut.result()
            except BaseException as exc:     # noqa: BLE001
                errors.append(exc)
        return errors

    def _delete_nics(self, ports: list[tuple[str, str]], deadline: float,
                     checkpoint: Callable[[str], None] | None = None) -> dict[tuple[str, str], BaseException]:
        """One bulk delete of the ports. If an object in the batch is not ours (or bound to
        another node), port by port, leaving that one alone. Returns the errors by port of a
        multi-port call; raises for a single port, and for a failure of the whole call
        (e.g. Unavailable)."""
        if not ports:
            if checkpoint:
                for step in ("ovs-unbound", "netdevs-deleted", "lsps-deleted"):
                    checkpoint(step)
            return {}
        try:
            self.planes.delete_nics(ports, deadline, checkpoint)
            return {}
        except FailedPrecondition as exc:
            if not _tolerated(exc) and len(ports) == 1:
                raise
            first = exc
        errors = {}
        for p in ports:                        # isolate the one(s) in the way
            try:
                self.planes.delete_nics([p], deadline)
            except FailedPrecondition as exc:
                if not _tolerated(exc):
                    errors[p] = exc
        if errors and len(ports) == 1:
            raise first
        return errors

    # -- many ----------------------------------------------------------------------------------
    def release_many(self, ids: list[str] | None = None, team: str = "", *,
                     deadline: float | None = None) -> list[ReleaseResult]:
        """Release the listed instances, or every instance of `team`, in bulk. Per-instance
        results (never raises for one instance): released=False for an unknown id, ABORTED
        for one with an operation in flight, the part's error for one whose delete failed
        (its record stays, state failed)."""
        started, ok = time.perf_counter(), False
        try:
            self.require_reconciled()
            out = self._release_many(ids, team, deadline)
            ok = True
            return out
        finally:
            self._timed("bulk_release", started, ok)

    def _release_many(self, ids: list[str] | None, team: str, deadline: float | None) -> list[ReleaseResult]:
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
        end = deadline if deadline is not None else time.monotonic() + _UNDO_SECONDS
        with ExitStack() as stack:
            held = []
            for r in recs:
                try:
                    stack.enter_context(self.locks.hold(r.id))
                    held.append(r)
                except AgentError as exc:
                    results[r.id] = ReleaseResult(r.id, False, exc.message, exc.code.name, exc.reason)
            if held:
                self._bulk_delete(held, end, results)
        return [results[i] for i in order]

    def _bulk_delete(self, recs: list[InstanceRecord], end: float, results: dict[str, ReleaseResult], *,
                     op: str = "release", ops: dict[str, int] | None = None, keep_failed: bool = False) -> None:
        """Delete every part of `recs` in bulk and their records. ops=None: record the intent
        first (one transaction); else finish those running operations (startup reconcile).
        keep_failed: an instance whose delete failed keeps its operation running (the
        reconcile retries it) instead of being recorded as failed."""
        f = self.faults
        if ops is None:
            ops = self.store.begin_many([InstanceRecord(r.id, r.team, RELEASING, r.spec, r.names, r.generation,
                                                        r.created_at, 0) for r in recs], "release")
            f.hit(op, "intent-recorded")
        names = {r.id: names_from_dict(r.names)[0] for r in recs}
        for r in recs:
            self.hub.publish(Event(r.id, r.team, RELEASING))
        failed: dict[str, BaseException] = {}

        def storage():
            by_team: dict[str, list[str]] = {}
            for r in recs:
                by_team.setdefault(names[r.id].volume_team, []).append(names[r.id].volume_name)
            owner = {(names[r.id].volume_team, names[r.id].volume_name): r.id for r in recs}
            for t, vols in by_team.items():
                for res in self.planes.storage.delete_volumes(t, vols):
                    if res.error and res.reason not in _TOLERATED:
                        failed.setdefault(owner[(t, res.name)], tagged(
                            FailedPrecondition(res.error, reason=res.reason or "DELETE_FAILED"), "storage",
                            f"{t}/{res.name}"))
            f.hit(op, "storage.volume-destroyed")

        def compute():
            outcomes = self.planes.compute.delete_scopes([(r.team, r.id) for r in recs], kill=True, deadline=end)
            for o in outcomes:
                if o.error is not None and not _tolerated(o.error):
                    failed.setdefault(o.instance_id, tagged(o.error, "compute", o.instance_id))
            f.hit(op, "compute.scope-removed")

        futures = [self.pool.submit(storage), self.pool.submit(compute)]
        ports = {p: r.id for r in recs for p in names[r.id].ports()}
        try:
            with part("network", f"{len(ports)} ports"):
                for p, exc in self._delete_nics(sorted(ports), end, f.checkpoint(op, "network.")).items():
                    failed.setdefault(ports[p], exc)
        except AgentError as exc:
            for r in recs:
                failed.setdefault(r.id, exc)
        for fut in futures:
            try:
                fut.result()
            except BaseException as exc:       # noqa: BLE001 - a plane failed as a whole
                err = exc if isinstance(exc, AgentError) else Internal(f"bulk release failed: {exc}")
                for r in recs:
                    failed.setdefault(r.id, err)
        f.hit(op, "planes-done")
        done = {r.id: ops[r.id] for r in recs if r.id not in failed}
        if done:
            self.store.finish_many(done, "done")
        for r in recs:
            if r.id in failed:
                exc = failed[r.id]
                msg = getattr(exc, "message", str(exc))
                if not keep_failed:
                    self.store.finish(ops[r.id], "failed", instance_id=r.id, state=FAILED,
                                      message=f"release failed: {msg}")
                    self.hub.publish(Event(r.id, r.team, FAILED, message=msg))
                code = exc.code.name if isinstance(exc, AgentError) else "INTERNAL"
                results[r.id] = ReleaseResult(r.id, False, msg, code, getattr(exc, "reason", ""))
            else:
                self.hub.publish(Event(r.id, r.team, RELEASED))
                self.hub.unindex(r.id, names[r.id].nics)
                results[r.id] = ReleaseResult(r.id, True)
