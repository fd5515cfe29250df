"""Startup reconcile of the instance plane.

Runs before the agent reports ready. Every operation a crash left running
is finished from its intent record, by the recorded names, touching only
objects that carry our mark (or, for netdevs, were born with our link group
under the recorded name: a crash between creating and marking one):
- prepare (a new instance): rolled back -> the instance is fully gone;
- update (converging an existing instance): rolled forward to the recorded
  spec -> prepared; a part that refuses for good (e.g. an immutable
  conflict) -> failed, with the reason;
- release: completed -> fully gone.
Rollbacks and releases run as ONE bulk delete (a crash during the release
of a 200-instance team costs one bulk pass). A transient failure (dataset
busy, a daemon restarting, OVSDB unreachable) leaves the operation running
and raises Unfinished: the startup runner retries the whole pass with
backoff, and the agent is not ready meanwhile (Probe says which instances
and why). Reads: the running operations (an index) and, for the watch
index, every record once.
"""
from __future__ import annotations

import logging
import time

from agent.drivers.statestore import InstanceRecord, Operation
from agent.errors import AgentError, Unavailable
from agent.services.instances.context import InstanceContext
from agent.services.instances.model import FAILED, ReleaseResult
from agent.services.instances.records import names_from_dict, names_to_dict, spec_from_dict
from agent.services.instances.release import Releaser
from agent.services.instances.runner import PlaneRunner, PlanesFailed

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 120.0            # bound of the deletes/ensures one reconcile pass runs
# Failures worth retrying: the part is there to be finished, something is in the way for now.
_TRANSIENT_CODES = ("UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED", "INTERNAL", "RESOURCE_EXHAUSTED")
_TRANSIENT_REASONS = ("DATASET_BUSY", "SCOPE_POPULATED", "OVN_STACK_TIMEOUT")


class Unfinished(Unavailable):
    """Some interrupted operations could not be finished yet (retried by the caller)."""


def transient(exc: BaseException) -> bool:
    """A failure a retry can cure (busy, unreachable, in flight); not a refusal for good."""
    if not isinstance(exc, AgentError):
        return True                   # unexpected: retried, and logged with its traceback
    return exc.code.name in _TRANSIENT_CODES or exc.reason in _TRANSIENT_REASONS


class Reconciler:
    """The startup step "instances: reconcile"."""

    def __init__(self, ctx: InstanceContext, runner: PlaneRunner, releaser: Releaser) -> None:
        self.ctx, self.runner, self.releaser = ctx, runner, releaser
        self.store, self.journal, self.metrics = ctx.store, ctx.journal, ctx.metrics

    def reconcile(self) -> dict[str, int]:
        """Finish interrupted operations (see module doc) and index the records for the watch;
        then mutations are allowed (ctx.reconciled). Idempotent: a second pass finds nothing
        running. Returns counts (rolled_back, released, rolled_forward, failed). Raises
        Unfinished RECONCILE_UNFINISHED (naming the instances and why) when a transient
        failure left some running; FailedPrecondition when the store is unusable."""
        started, counts = time.perf_counter(), {"rolled_back": 0, "released": 0, "rolled_forward": 0, "failed": 0}
        end = time.monotonic() + RECONCILE_SECONDS
        latest: dict[str, Operation] = {}
        for op in self.store.running_operations():          # ordered by id: the last one per instance wins
            prev = latest.get(op.instance_id)
            if prev is not None:
                self.journal.abandoned(prev.id, op.instance_id, state=FAILED,
                                       message="superseded by a later operation")
            latest[op.instance_id] = op
        delete: list[tuple[Operation, InstanceRecord]] = []
        forward: list[tuple[Operation, InstanceRecord]] = []
        for op in latest.values():
            rec = self.store.get(op.instance_id)
            if rec is None:
                self.journal.abandoned(op.id, op.instance_id, state=None)
                continue
            (forward if op.kind == "update" else delete).append((op, rec))
        unfinished: dict[str, str] = {}
        if delete:
            results: dict[str, ReleaseResult] = {}
            self.releaser.bulk_delete([r for _, r in delete], end, results, op="reconcile",
                                      ops={r.id: op.id for op, r in delete}, keep_failed=True)
            for op, rec in delete:
                res = results[rec.id]
                if res.released:
                    counts["rolled_back" if op.kind == "prepare" else "released"] += 1
                else:
                    unfinished[rec.id] = f"{op.kind} interrupted, undoing it failed: {res.error}"
        for op, rec in forward:
            outcome = self._roll_forward(op.id, rec, end)
            if outcome is True:
                counts["rolled_forward"] += 1
            elif outcome is False:
                counts["failed"] += 1
            else:
                unfinished[rec.id] = f"update interrupted, completing it failed: {outcome}"
        self.journal.track(self.store.list())
        self.journal.prune()
        for k, v in counts.items():
            if v:
                self.metrics.reconcile_total.labels(plane="instances", result=k).inc(v)
        self.metrics.reconcile_unfinished.set(len(unfinished))
        log.info("instances reconciled in %.3fs: %s, unfinished %d", time.perf_counter() - started, counts,
                 len(unfinished))
        if unfinished:
            self.metrics.reconcile_total.labels(plane="instances", result="unfinished").inc(len(unfinished))
            shown = "; ".join(f"{i}: {why}" for i, why in sorted(unfinished.items())[:5])
            raise Unfinished(f"{len(unfinished)} interrupted instance operation(s) not finished yet, retrying: "
                             f"{shown}{' ...' if len(unfinished) > 5 else ''}", reason="RECONCILE_UNFINISHED",
                             metadata={"instances": ",".join(sorted(unfinished)[:50])})
        self.ctx.reconciled.set()
        return counts

    def _roll_forward(self, op_id: int, rec: InstanceRecord, end: float) -> bool | str:
        """True: done; False: refused for good (recorded as failed); a str: a transient failure
        (the operation stays running, the reason is returned)."""
        spec = spec_from_dict(rec.spec)
        names, allocs = names_from_dict(rec.names)
        try:
            inst = self.runner.ensure(spec, names, end, False, None)
        except Exception as exc:             # noqa: BLE001 - PlanesFailed or a bug: recorded, never raised
            err = exc.first() if isinstance(exc, PlanesFailed) else exc
            reason = getattr(err, "message", None) or str(err)
            if transient(err):
                log.warning("reconcile: instance %s: update not completed yet: %s", rec.id, reason)
                return reason
            msg = f"update interrupted by a restart and could not be completed: {reason}"
            log.error("reconcile: instance %s: %s", rec.id, msg)
            self.journal.failed(op_id, rec, msg)
            return False
        allocs = {**allocs, **inst.observed_allocations()}
        # no event, as before this refactor: a watcher subscribed during startup is not told (issue 13 note)
        self.journal.prepared(op_id, rec, names_to_dict(names, allocs), ready=inst.ready, announce=False)
        return True
