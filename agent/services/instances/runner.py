"""The three planes of instances, run together: ensure every part of one
instance concurrently; delete them by recorded names, for one instance or in
bulk. No journal writes here: the callers record what the outcome means.

Deletes leave alone what is absent and what is not ours (NOT_OURS, or a port
bound to another node: OTHER_NODE); fault checkpoints mark each plane's step
boundaries (faults.py lists them).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.drivers.statestore import InstanceRecord
from agent.errors import AgentError, FailedPrecondition, Internal
from agent.services.instances.context import InstanceContext
from agent.services.instances.model import (PART_COMPUTE, PART_NETWORK, PART_STORAGE, PREPARING, Instance,
                                            InstanceNames, InstanceSpec, NicState)
from agent.services.instances.records import names_from_dict
from agent.services.instances.planes import part, tagged
from agent.services.instances import runtime
from agent.services.network.model import Port

log = logging.getLogger(__name__)
TOLERATED = ("NOT_OURS", "OTHER_NODE")          # an object in our name's place that is not ours: left alone
UNDO_SECONDS = 30.0                              # bound of deletes that run without a caller deadline
_PORT_DELETE_STEPS = ("ovs-unbound", "netdevs-deleted", "lsps-deleted")


def tolerated(exc: BaseException) -> bool:
    """A delete refused because the object in our name's place is not ours (left alone: fine)."""
    return isinstance(exc, FailedPrecondition) and exc.reason in TOLERATED


def describe(errors: list[BaseException]) -> str:
    """One line for a list of plane errors (an AgentError's message, else its str)."""
    return "; ".join(getattr(e, "message", None) or str(e) or type(e).__name__ for e in errors)


@dataclass
class PlanesFailed(Exception):
    """One or more planes failed; `results` holds what the others produced."""

    errors: dict[str, BaseException]
    results: dict[str, object] = field(default_factory=dict)

    def first(self) -> BaseException:
        """The error to report: storage's, else network's, else compute's."""
        for key in (PART_STORAGE, PART_NETWORK, PART_COMPUTE):
            if key in self.errors:
                return self.errors[key]
        return next(iter(self.errors.values()))


class PlaneRunner:
    """Ensure/delete the parts of instances across the planes (thread-safe)."""

    def __init__(self, ctx: InstanceContext) -> None:
        self.planes, self.pool, self.faults = ctx.planes, ctx.pool, ctx.faults
        self.ready_timeout, self.storage_wait = ctx.ready_timeout, ctx.storage_wait

    # -- ensure ----------------------------------------------------------------------------
    def ensure(self, spec: InstanceSpec, names: InstanceNames, deadline: float | None, wait_ready: bool,
               ready_timeout: float | None) -> Instance:
        """Converge every part of `spec` (each plane's Ensure: idempotent, changed=False when in
        sync): NICs (and their readiness wait) || compute scope in the pool, the root volume
        here (the ZFS clone, the longest part, starts first and the rest hides behind it).
        Returns the observed instance (state preparing). Raises PlanesFailed after every plane
        finished, so an undo knows what exists; each error names its part."""
        f = self.faults
        wait_s = self.storage_wait
        if deadline is not None:
            wait_s = max(0.0, min(wait_s, deadline - time.monotonic()))

        def network() -> list[Port]:
            ports = [self.planes.ensure_nic(spec, i, deadline, wait_ready=False, ready_timeout=None,
                                            checkpoint=f.checkpoint("prepare", "network."))
                     for i in range(len(spec.nics))]
            if wait_ready:
                for p in ports:
                    p.status = self.planes.network.wait_port_ready(p.network, p.name, deadline,
                                                                   ready_timeout or self.ready_timeout)
            return ports

        futures: dict[str, Future] = {}
        if spec.nics:
            futures[PART_NETWORK] = self.pool.submit(network)
        futures[PART_COMPUTE] = self.pool.submit(self.planes.ensure_scope, spec, f.checkpoint("prepare", "compute."))
        errors: dict[str, BaseException] = {}
        results: dict[str, Any] = {PART_NETWORK: []}
        try:
            results[PART_STORAGE] = self.planes.ensure_storage(spec, wait_s)
            f.hit("prepare", "storage.volume-created")
        except BaseException as exc:                # noqa: BLE001 - re-raised through PlanesFailed
            errors[PART_STORAGE] = exc
        for key, fut in futures.items():
            try:
                results[key] = fut.result()
            except BaseException as exc:            # noqa: BLE001
                errors[key] = exc
        if errors:
            for key, err in errors.items():
                if not isinstance(err, AgentError):
                    log.error("instance %s: %s failed unexpectedly", spec.id, key, exc_info=err)
            raise PlanesFailed(errors, results)
        (volume, v_changed), (scope, s_changed) = results[PART_STORAGE], results[PART_COMPUTE]
        ports = results[PART_NETWORK]
        nics = [NicState(n.name, p) for n, p in zip(spec.nics, ports)]
        inst = Instance(id=spec.id, team=spec.team, kind=spec.kind, state=PREPARING, spec=spec, names=names,
                        volume=volume, nics=nics, scope=scope, observed=True,
                        changed=v_changed or s_changed or any(p.changed for p in ports))
        inst.parts = self.planes.parts(names, volume, nics, scope)
        inst.runtime = runtime.build(self.planes, inst)
        return inst

    # -- delete one ------------------------------------------------------------------------
    def delete(self, team: str, instance_id: str, names: InstanceNames, deadline: float | None,
               op: str) -> list[BaseException]:
        """Delete the NICs (here), the volume and the scope (pool) concurrently by recorded
        names; processes in the scope are killed. Idempotent: absent objects and objects that
        are not ours are fine. Returns the errors (empty: all gone); never raises for a plane.
        `op` names the fault checkpoints (release, rollback)."""
        end = deadline if deadline is not None else time.monotonic() + UNDO_SECONDS
        f = self.faults

        def storage() -> None:
            try:
                self.planes.delete_storage(names, wait_timeout=max(0.0, end - time.monotonic()))
            except FailedPrecondition as exc:
                if not tolerated(exc):
                    raise
            f.hit(op, "storage.volume-destroyed")

        def compute() -> None:
            try:
                self.planes.delete_scope(team, instance_id, end)
            except FailedPrecondition as exc:
                if not tolerated(exc):
                    raise
            f.hit(op, "compute.scope-removed")

        futures = [self.pool.submit(storage), self.pool.submit(compute)]
        errors: list[BaseException] = []
        try:
            self.delete_nics(names.ports(), end, f.checkpoint(op, "network."))
        except BaseException as exc:         # noqa: BLE001 - collected, the caller raises
            errors.append(exc)
        for fut in futures:
            try:
                fut.result()
            except BaseException as exc:     # noqa: BLE001
                errors.append(exc)
        return errors

    def delete_nics(self, ports: list[tuple[str, str]], deadline: float,
                    checkpoint: Callable[[str], None] | None = None) -> dict[tuple[str, str], BaseException]:
        """One bulk delete of the (network, port) pairs; absent ones are fine. If an object in
        the batch is not ours (or bound to another node), port by port, leaving that one
        alone. Returns the errors by port of a multi-port call; raises the error of a single
        port, and a failure of the whole call (e.g. Unavailable)."""
        if not ports:
            if checkpoint:
                for step in _PORT_DELETE_STEPS:
                    checkpoint(step)
            return {}
        try:
            self.planes.delete_nics(ports, deadline, checkpoint)
            return {}
        except FailedPrecondition as exc:
            if not tolerated(exc) and len(ports) == 1:
                raise
            first = exc
        errors: dict[tuple[str, str], BaseException] = {}
        for p in ports:                        # isolate the one(s) in the way
            try:
                self.planes.delete_nics([p], deadline)
            except FailedPrecondition as exc:
                if not tolerated(exc):
                    errors[p] = exc
        if errors and len(ports) == 1:
            raise first
        return errors

    # -- delete many -----------------------------------------------------------------------
    def delete_many(self, recs: list[InstanceRecord], end: float, op: str) -> dict[str, BaseException]:
        """Every part of the recorded instances with each plane's bulk delete (storage:
        parallel destroys per team; compute: every kill first, then the rmdirs; network: one
        pass for every NIC) running concurrently. Idempotent like delete(). Returns the error
        of each instance a part of which is still there (never raises for a plane)."""
        f = self.faults
        names = {r.id: names_from_dict(r.names)[0] for r in recs}
        failed: dict[str, BaseException] = {}

        def storage() -> None:
            by_team: dict[str, list[str]] = {}
            for r in recs:
                by_team.setdefault(names[r.id].volume_team, []).append(names[r.id].volume_name)
            owner = {(names[r.id].volume_team, names[r.id].volume_name): r.id for r in recs}
            for t, vols in by_team.items():
                for res in self.planes.storage.delete_volumes(t, vols):
                    if res.error and res.reason not in TOLERATED:
                        failed.setdefault(owner[(t, res.name)], tagged(
                            FailedPrecondition(res.error, reason=res.reason or "DELETE_FAILED"), PART_STORAGE,
                            f"{t}/{res.name}"))
            f.hit(op, "storage.volume-destroyed")

        def compute() -> None:
            outcomes = self.planes.compute.delete_scopes([(r.team, r.id) for r in recs], kill=True, deadline=end)
            for o in outcomes:
                if o.error is not None and not tolerated(o.error):
                    failed.setdefault(o.instance_id, tagged(o.error, PART_COMPUTE, o.instance_id))
            f.hit(op, "compute.scope-removed")

        futures = [self.pool.submit(storage), self.pool.submit(compute)]
        ports = {p: r.id for r in recs for p in names[r.id].ports()}
        try:
            with part(PART_NETWORK, f"{len(ports)} ports"):
                for p, exc in self.delete_nics(sorted(ports), end, f.checkpoint(op, "network.")).items():
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
        return failed
