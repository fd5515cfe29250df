"""GarbageCollect: every object carrying our mark and an instance id that is
neither recorded nor in `keep`; listed, and removed unless dry_run. The
inventory is read BEFORE the records: an intent is recorded before its
objects exist, so an object in the inventory always finds its record.
Netdevs born in our link group under our prefix but never marked (a crash in
between) name no instance: they are listed (and removed) by themselves.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Iterable

from agent.errors import AgentError, FailedPrecondition
from agent.model.compute import SCOPE
from agent.model.marks import P_INSTANCE, P_TEAM, P_TYPE, TYPE_VOLUME
from agent.services.instances.context import InstanceContext
from agent.services.instances.model import PART_COMPUTE, PART_NETWORK, PART_STORAGE, Orphan
from agent.services.instances.runner import PlaneRunner

GC_SECONDS = 60.0                    # bound of the removals of one GarbageCollect without a deadline


def _port_of(o: Orphan) -> tuple[str, str]:
    network, _, port = o.network.partition("/")          # Orphan.network is "<network>/<port>"
    return network, port


class GarbageCollector:
    """GarbageCollect."""

    def __init__(self, ctx: InstanceContext, runner: PlaneRunner) -> None:
        self.ctx, self.runner, self.planes = ctx, runner, ctx.planes

    def garbage_collect(self, *, dry_run: bool, keep: Iterable[str] = (),
                        deadline: float | None = None) -> list[Orphan]:
        """Objects of ours (datasets, netdevs, OVS interfaces, logical ports of this node,
        scopes) whose instance is neither recorded nor in `keep`, plus unmarked netdevs of our
        link group; removed unless dry_run (idempotent: a second call lists nothing). Objects
        without our mark are never listed. An object whose removal failed (or whose instance
        has an operation in flight) is reported with its error. Raises Unavailable NOT_READY
        (startup reconcile not finished; not for dry_run), and a plane's error when its
        inventory cannot be read."""
        if not dry_run:
            self.ctx.require_reconciled()
        found = self._owned_objects(deadline)          # inventory first, records second
        known = {r.id for r in self.ctx.store.list()} | set(keep)
        orphans = [o for o in found if o.instance not in known]
        if not dry_run and orphans:
            orphans = self._remove_orphans(orphans, deadline)
        orphans += [Orphan(PART_NETWORK, "unmarked-netdev", name, "", removed=not dry_run)
                    for name in self.planes.network.sweep_unmarked(dry_run=dry_run)]
        return orphans

    def _owned_objects(self, deadline: float | None) -> list[Orphan]:
        out = []
        for d in self.planes.storage.inventory():
            m = d.marks
            if m.get(P_TYPE) == TYPE_VOLUME and m.get(P_INSTANCE):
                out.append(Orphan(PART_STORAGE, "volume", d.dataset, m[P_INSTANCE], m.get(P_TEAM, "")))
        net = self.planes.network
        for o in net.inventory(deadline):
            if not o.instance:
                continue
            if (o.kind in ("netdev", "veth-peer") and o.name.startswith(net.prefix)
                    or o.kind in ("ovs-interface", "logical-port") and o.node == net.node):
                out.append(Orphan(PART_NETWORK, o.kind, o.name, o.instance, network=f"{o.network}/{o.port}"))
        for c in self.planes.compute.owned():
            if c.kind == SCOPE:
                out.append(Orphan(PART_COMPUTE, "scope", c.path, c.instance_id, c.team))
        return out

    def _remove_orphans(self, orphans: list[Orphan], deadline: float | None) -> list[Orphan]:
        by_instance: dict[str, list[Orphan]] = {}
        for o in orphans:
            by_instance.setdefault(o.instance, []).append(o)
        end = deadline if deadline is not None else time.monotonic() + GC_SECONDS
        out = []
        for inst, objs in by_instance.items():
            try:
                with self.ctx.locks.hold(inst):
                    errors = self._remove_instance_objects(inst, objs, end)
            except AgentError as exc:
                errors = {id(o): exc.message for o in objs}
            for o in objs:
                err = errors.get(id(o), "")
                out.append(dataclasses.replace(o, removed=not err, error=err))
                if not err:
                    self.ctx.metrics.orphans_total.labels(plane=o.plane, kind=o.kind).inc()
        return out

    def _remove_instance_objects(self, inst: str, objs: list[Orphan], end: float) -> dict[int, str]:
        """Remove one unrecorded instance's objects (its lock held); errors by id(orphan)."""
        errors: dict[int, str] = {}
        if self.ctx.store.get(inst) is not None:             # recorded meanwhile: it is not garbage
            return {id(o): "instance was recorded meanwhile; left alone" for o in objs}
        ports = sorted({_port_of(o) for o in objs if o.plane == PART_NETWORK})
        if ports:
            try:
                for p, exc in self.runner.delete_nics(ports, end).items():
                    for o in objs:
                        if o.plane == PART_NETWORK and o.network == "/".join(p):
                            errors[id(o)] = getattr(exc, "message", str(exc))
            except AgentError as exc:
                for o in objs:
                    if o.plane == PART_NETWORK:
                        errors[id(o)] = exc.message
        layout = self.planes.storage.layout
        for o in objs:
            try:
                if o.plane == PART_STORAGE:
                    team, name = layout.parse_volume(o.name) or (o.team, inst)
                    self.planes.storage.delete_volume(team, name, wait_timeout=max(0.0, end - time.monotonic()))
                elif o.plane == PART_COMPUTE:
                    self.planes.compute.delete_scope(o.team, inst, kill=True, deadline=end)
            except FailedPrecondition as exc:
                if exc.reason != "NOT_OURS":
                    errors[id(o)] = exc.message
            except AgentError as exc:
                errors[id(o)] = exc.message
        return errors
