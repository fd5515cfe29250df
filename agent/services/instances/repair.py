"""Diff, Repair and GarbageCollect (a mixin of InstanceService).

Diff: per part, what differs between the recorded spec (NIC addresses pinned
to what was allocated) and the live objects, with the planes' reason codes.
Repair: exactly that plan: the plane Ensure of every drifted part with the
recorded spec, then Diff again to report what remains.
GarbageCollect: every object carrying our mark and an instance id that is
neither recorded nor in `keep`; listed, and removed unless dry_run. The
inventory is read BEFORE the records: an intent is recorded before its
objects exist, so an object in the inventory always finds its record.
"""
from __future__ import annotations

import logging
import time
from typing import Iterable

from agent.errors import AgentError, FailedPrecondition, NotFound
from agent.services.instances.model import (FAILED, PART_COMPUTE, PREPARED, Allocation, InstanceDrift, Orphan,
                                           RepairResult, keep_allocations, names_from_dict, names_to_dict,
                                           spec_from_dict)
from agent.services.locks import remaining
from agent.model.marks import P_INSTANCE, P_TEAM, P_TYPE

log = logging.getLogger(__name__)


class RepairOps:
    # -- diff ----------------------------------------------------------------------------
    def diff(self, instance_id: str = "", deadline: float | None = None) -> list[InstanceDrift]:
        """Drift of one instance (NotFound if not recorded) or of every prepared/failed one
        (concurrently, a failing one reported with its error). Read-only."""
        if instance_id:
            rec = self._require(instance_id)
            return [self._diff_one(rec, deadline)]
        recs = [r for r in self.store.list() if r.state in (PREPARED, FAILED)]
        futures = [(r, self.pool.submit(self._diff_one, r, deadline)) for r in recs]
        out = []
        for r, fut in futures:
            try:
                out.append(fut.result())
            except AgentError as exc:
                out.append(InstanceDrift(r.id, r.team, (), exc.message, exc.reason))
        return out

    def _require(self, instance_id: str):
        rec = self.store.get(instance_id)
        if rec is None:
            raise NotFound(f"instance {instance_id} is not prepared on this node", reason="INSTANCE_NOT_FOUND",
                           metadata={"instance": instance_id})
        return rec

    def _pinned(self, rec):
        names, allocs = names_from_dict(rec.names)
        return keep_allocations(spec_from_dict(rec.spec), allocs)

    def _diff_one(self, rec, deadline: float | None) -> InstanceDrift:
        found = self.planes.drift(self._pinned(rec), deadline)
        return InstanceDrift(rec.id, rec.team, tuple((k, d) for k, ds in found.items() for d in ds))

    # -- repair ----------------------------------------------------------------------------
    def repair(self, instance_id: str = "", *, wait: bool = False,
               deadline: float | None = None) -> list[RepairResult]:
        """Re-ensure exactly the drifted parts of one instance (NotFound if not recorded) or
        of every prepared one (skipping those with an operation in flight: ABORTED in
        their result). Returns per instance: the plan, the parts re-ensured, what remains."""
        started, ok = time.perf_counter(), False
        try:
            self.require_reconciled()
            if instance_id:
                self._require(instance_id)
                with self.locks.hold(instance_id, wait=wait, timeout=remaining(deadline)):
                    out = [self._repair_one(self._require(instance_id), deadline)]
            else:
                out = []
                for rec in self.store.list():
                    if rec.state != PREPARED:
                        continue
                    try:
                        with self.locks.hold(rec.id):
                            out.append(self._repair_one(rec, deadline))
                    except AgentError as exc:
                        out.append(RepairResult(rec.id, rec.team, (), (), (), exc.message, exc.reason))
            ok = True
            return out
        finally:
            self._timed("repair", started, ok)

    def _repair_one(self, rec, deadline: float | None) -> RepairResult:
        spec = spec_from_dict(rec.spec)              # ensure unpinned: a recreated port takes a free address
        plan = self.planes.drift(self._pinned(rec), deadline)
        planned = tuple((k, d) for k, ds in plan.items() for d in ds)
        if not plan:
            return RepairResult(rec.id, rec.team, (), (), ())
        repaired, error, reason = [], "", ""
        names, allocs = names_from_dict(rec.names)
        for key, drifts in plan.items():
            if not any(d.repairable for d in drifts):
                continue
            try:
                if key == "storage":
                    self.planes.ensure_storage(spec, self.storage_wait)
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
        self.store.set_state(rec.id, state, rec.message if state == rec.state else "",
                             names=names_to_dict(names, allocs))
        return RepairResult(rec.id, rec.team, planned, tuple(repaired), remaining_, error, reason)

    # -- garbage collection -------------------------------------------------------------------
    def garbage_collect(self, *, dry_run: bool, keep: Iterable[str] = (),
                        deadline: float | None = None) -> list[Orphan]:
        """Objects of ours (datasets, netdevs, OVS interfaces, logical ports of this node,
        scopes) whose instance is neither recorded nor in `keep`; removed unless dry_run.
        Objects without our mark are never listed. Instances with an operation in flight
        are skipped (their objects reported with an error)."""
        started, ok = time.perf_counter(), False
        try:
            if not dry_run:
                self.require_reconciled()
            found = self._owned_objects(deadline)          # inventory first, records second
            known = {r.id for r in self.store.list()} | set(keep)
            orphans = [o for o in found if o.instance not in known]
            if not dry_run and orphans:
                orphans = self._remove_orphans(orphans, deadline)
            # born with our link group under our prefix, never marked (a crash in between): nobody's
            # instance can be named, so they go by themselves
            orphans += [Orphan("network", "unmarked-netdev", name, "", removed=not dry_run)
                        for name in self.planes.network.sweep_unmarked(dry_run=dry_run)]
            ok = True
            return orphans
        finally:
            self._timed("gc", started, ok)

    def _owned_objects(self, deadline: float | None) -> list[Orphan]:
        out = []
        for o in self.planes.storage.inventory():
            m = o.marks
            if m.get(P_TYPE) == "volume" and m.get(P_INSTANCE):
                out.append(Orphan("storage", "volume", o.dataset, m[P_INSTANCE], m.get(P_TEAM, "")))
        net = self.planes.network
        for o in net.inventory(deadline):
            if not o.instance:
                continue
            if o.kind in ("netdev", "veth-peer") and o.name.startswith(net.prefix):
                out.append(Orphan("network", o.kind, o.name, o.instance, network=f"{o.network}/{o.port}"))
            elif o.kind in ("ovs-interface", "logical-port") and o.node == net.node:
                out.append(Orphan("network", o.kind, o.name, o.instance, network=f"{o.network}/{o.port}"))
        for c in self.planes.compute.owned():
            if c.kind == "scope":
                out.append(Orphan("compute", "scope", c.path, c.instance_id, c.team))
        return out

    def _remove_orphans(self, orphans: list[Orphan], deadline: float | None) -> list[Orphan]:
        by_instance: dict[str, list[Orphan]] = {}
        for o in orphans:
            by_instance.setdefault(o.instance, []).append(o)
        end = deadline if deadline is not None else time.monotonic() + 60
        out = []
        for inst, objs in by_instance.items():
            try:
                with self.locks.hold(inst):
                    errors = self._remove_instance_objects(inst, objs, end)
            except AgentError as exc:
                errors = {id(o): exc.message for o in objs}
            for o in objs:
                err = errors.get(id(o), "")
                out.append(Orphan(o.plane, o.kind, o.name, o.instance, o.team, o.network, not err, err))
                if not err:
                    self.metrics.orphans_total.labels(plane=o.plane, kind=o.kind).inc()
        return out

    def _remove_instance_objects(self, inst: str, objs: list[Orphan], end: float) -> dict[int, str]:
        errors: dict[int, str] = {}
        if self.store.get(inst) is not None:             # recorded meanwhile: it is not garbage
            return {id(o): "instance was recorded meanwhile; left alone" for o in objs}
        ports = sorted({tuple(o.network.split("/", 1)) for o in objs if o.plane == "network"})
        if ports:
            try:
                for p, exc in self._delete_nics(ports, end).items():
                    for o in objs:
                        if o.plane == "network" and o.network == "/".join(p):
                            errors[id(o)] = getattr(exc, "message", str(exc))
            except AgentError as exc:
                for o in objs:
                    if o.plane == "network":
                        errors[id(o)] = exc.message
        layout = self.planes.storage.layout
        for o in objs:
            try:
                if o.plane == "storage":
                    team, name = layout.parse_volume(o.name) or (o.team, inst)
                    self.planes.storage.delete_volume(team, name, wait_timeout=max(0.0, end - time.monotonic()))
                elif o.plane == "compute":
                    self.planes.compute.delete_scope(o.team, inst, kill=True, deadline=end)
            except FailedPrecondition as exc:
                if exc.reason != "NOT_OURS":
                    errors[id(o)] = exc.message
            except AgentError as exc:
                errors[id(o)] = exc.message
        return errors
