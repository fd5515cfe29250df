"""Startup reconcile of the instance plane (a mixin of InstanceService).

Runs before the agent reports ready. Every operation a crash left running
is finished from its intent record, by the recorded names, touching only
objects that carry our mark:
- prepare (a new instance): rolled back -> the instance is fully gone;
- update (converging an existing instance): rolled forward to the recorded
  spec -> prepared (or failed, with the reason, when a part refuses);
- release: completed -> fully gone.
Rollbacks and releases run as ONE bulk delete (a crash during the release
of a 200-instance team costs one bulk pass). Reads: the running operations
(an index) and, for the watch index, every record once.
"""
from __future__ import annotations

import logging
import time

from agent.services.instances.model import (FAILED, PREPARED, Allocation, Event, ReleaseResult,
                                           names_from_dict, names_to_dict, spec_from_dict)

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 120.0            # bound of the deletes/ensures the startup reconcile runs


class ReconcileOps:
    def reconcile(self) -> dict[str, int]:
        """Finish interrupted operations (see module doc). Returns counts. Per-instance
        failures are recorded (state failed, message) and never raise."""
        started, counts = time.perf_counter(), {"rolled_back": 0, "released": 0, "rolled_forward": 0, "failed": 0}
        end = time.monotonic() + RECONCILE_SECONDS
        latest: dict[str, object] = {}
        for op in self.store.running_operations():          # ordered by id: the last one per instance wins
            prev = latest.get(op.instance_id)
            if prev is not None:
                self.store.finish(prev.id, "abandoned", instance_id=op.instance_id, state=FAILED,
                                  message="superseded by a later operation")
            latest[op.instance_id] = op
        delete, forward = [], []
        for op in latest.values():
            rec = self.store.get(op.instance_id)
            if rec is None:
                self.store.finish(op.id, "abandoned", instance_id=op.instance_id, state=None)
                continue
            (forward if op.kind == "update" else delete).append((op, rec))
        if delete:
            results: dict[str, ReleaseResult] = {}
            self._bulk_delete([r for _, r in delete], end, results, op="reconcile",
                              ops={r.id: op.id for op, r in delete})
            for op, rec in delete:
                res = results[rec.id]
                key = ("rolled_back" if op.kind == "prepare" else "released") if res.released else "failed"
                counts[key] += 1
                if not res.released:
                    log.error("reconcile: instance %s (%s interrupted): %s", rec.id, op.kind, res.error)
        for op, rec in forward:
            counts["rolled_forward" if self._roll_forward(op.id, rec, end) else "failed"] += 1
        for rec in self.store.list():
            self.hub.index(rec.id, rec.team, rec.state, names_from_dict(rec.names)[0].nics)
        self.store.prune_operations()
        for k, v in counts.items():
            if v:
                self.metrics.reconcile_total.labels(plane="instances", result=k).inc(v)
        log.info("instances reconciled in %.3fs: %s", time.perf_counter() - started, counts)
        return counts

    def _roll_forward(self, op_id: int, rec, end: float) -> bool:
        spec = spec_from_dict(rec.spec)
        names, allocs = names_from_dict(rec.names)
        try:
            inst = self._run_planes(spec, names, end, False, None)
        except Exception as exc:             # noqa: BLE001 - PlanesFailed or a bug: recorded, never raised
            err = exc.first() if hasattr(exc, "first") else exc
            msg = f"update interrupted by a restart and could not be completed: {getattr(err, 'message', err)}"
            log.error("reconcile: instance %s: %s", rec.id, msg)
            self.store.finish(op_id, "failed", instance_id=rec.id, state=FAILED, message=msg)
            self.hub.publish(Event(rec.id, rec.team, FAILED, message=msg))
            return False
        allocs = {**allocs, **{n.nic: Allocation(n.port.mac, n.port.ip4, n.port.ip6) for n in inst.nics if n.port}}
        self.store.finish(op_id, "done", instance_id=rec.id, state=PREPARED, names=names_to_dict(names, allocs))
        return True
