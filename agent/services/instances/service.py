"""InstanceService: prepare a whole instance's data plane in one call; the
facade the servicer (agent/api/instance.py) and the composition call.

It builds the parts and delegates; each part gets what it calls by constructor:

    InstanceContext   store, planes, metrics, faults, locks, pool, hub, journal,
                      timeouts, the "reconciled" event          (context.py)
    Journal           intent store writes + their watch events   (journal.py)
    PlaneRunner       the three planes for one instance or many   (runner.py)
    Preparer          PrepareInstance                             (prepare.py)
    Releaser          ReleaseInstance(s), the bulk delete         (release.py)
    Reconciler        the startup reconcile                       (reconcile.py)
    Repairer          DiffInstances / RepairInstances             (repair.py)
    GarbageCollector  GarbageCollect                              (garbage.py)
    Reader            Get / List / WatchInstances                 (reader.py)

Idempotency: the same spec again -> OK, changed=false (the planes' Ensures
measure and converge, no intent is written); a spec with another immutable
field -> AlreadyExists; mutable fields (limits, quotas, MTU) converge under a
recorded "update" operation. One operation per instance id at a time (ABORTED,
or a bounded wait when asked). Mutations wait for the startup reconcile
(UNAVAILABLE NOT_READY until it finished).
"""
from __future__ import annotations

from typing import Iterable

from agent.drivers.base import Availability
from agent.drivers.contracts.statestore import StateStoreContract
from agent.metrics import Metrics
from agent.services.instances.context import DEFAULT_STORAGE_WAIT, InstanceContext
from agent.services.instances.faults import Faults
from agent.services.instances.garbage import GarbageCollector
from agent.services.instances.model import (Event, Instance, InstanceDrift, InstanceNames, InstanceSpec, Orphan,
                                           ReleaseResult, RepairResult)
from agent.services.instances.planes import PlaneSet
from agent.services.instances.prepare import Preparer
from agent.services.instances.reader import Reader
from agent.services.instances.reconcile import Reconciler
from agent.services.instances.release import Releaser
from agent.services.instances.repair import Repairer
from agent.services.instances.runner import PlaneRunner
from agent.services.instances.watch import Subscription
from agent.services.locks import KeyedLocks


class InstanceService:
    """Use cases of the instance plane (plain dataclasses in and out). Thread-safe."""

    def __init__(self, store: StateStoreContract, planes: PlaneSet, metrics: Metrics, *, faults: Faults | None = None,
                 workers: int = 32, ready_timeout: float = 30.0, storage_wait: float = DEFAULT_STORAGE_WAIT) -> None:
        self.ctx = ctx = InstanceContext.create(store, planes, metrics, faults=faults, workers=workers,
                                                ready_timeout=ready_timeout, storage_wait=storage_wait)
        runner = PlaneRunner(ctx)
        self.preparer = Preparer(ctx, runner)
        self.releaser = Releaser(ctx, runner)
        self.reconciler = Reconciler(ctx, runner, self.releaser)
        self.repairer = Repairer(ctx)
        self.collector = GarbageCollector(ctx, runner)
        self.reader = Reader(ctx)

    @property
    def store(self) -> StateStoreContract:
        """The intent store (tests reach it to set up a situation; writes go through the journal)."""
        return self.ctx.store

    @property
    def locks(self) -> KeyedLocks:
        """The per-instance locks (holding one makes operations on that id ABORTED or wait)."""
        return self.ctx.locks

    def require_reconciled(self) -> None:
        """Raises Unavailable NOT_READY until the startup reconcile finished (see InstanceContext)."""
        self.ctx.require_reconciled()

    def probe(self) -> Availability:
        """The intent store's availability (no I/O beyond it)."""
        return self.ctx.store.probe()

    def close(self) -> None:
        """Stop the watch and the worker pool. Idempotent."""
        self.ctx.close()

    def names_for(self, spec: InstanceSpec) -> InstanceNames:
        """The exact object names Prepare will create (pure). Raises InvalidArgument."""
        return self.ctx.planes.names_for(spec)

    # -- mutations (each timed in the instance_op histogram) -------------------------------
    def prepare(self, spec: InstanceSpec, *, wait: bool = False, deadline: float | None = None,
                wait_ready: bool = False, ready_timeout: float | None = None) -> Instance:
        """Create or converge every part of the instance (Preparer.prepare says how and which
        errors come back). Idempotent: the same spec again -> changed=False."""
        with self.ctx.timed("prepare"):
            return self.preparer.prepare(spec, wait=wait, deadline=deadline, wait_ready=wait_ready,
                                         ready_timeout=ready_timeout)

    def release(self, instance_id: str, *, wait: bool = False, deadline: float | None = None) -> bool:
        """Remove every part and the record (Releaser.release). Idempotent: False when nothing
        is recorded under the id."""
        with self.ctx.timed("release"):
            return self.releaser.release(instance_id, wait=wait, deadline=deadline)

    def release_many(self, ids: list[str] | None = None, team: str = "", *,
                     deadline: float | None = None) -> list[ReleaseResult]:
        """Release the listed instances or a whole team in bulk, a result per id
        (Releaser.release_many)."""
        with self.ctx.timed("bulk_release"):
            return self.releaser.release_many(ids, team, deadline=deadline)

    def reconcile(self) -> dict[str, int]:
        """Finish the operations a crash interrupted (Reconciler.reconcile); raises Unfinished
        while some could not be finished yet."""
        return self.reconciler.reconcile()

    def diff(self, instance_id: str = "", deadline: float | None = None) -> list[InstanceDrift]:
        """Drift of one instance or of all (Repairer.diff). Read-only; NotFound for an unknown id."""
        return self.repairer.diff(instance_id, deadline)

    def repair(self, instance_id: str = "", *, wait: bool = False,
               deadline: float | None = None) -> list[RepairResult]:
        """Re-ensure the drifted parts of one instance or of all (Repairer.repair)."""
        with self.ctx.timed("repair"):
            return self.repairer.repair(instance_id, wait=wait, deadline=deadline)

    def garbage_collect(self, *, dry_run: bool, keep: Iterable[str] = (),
                        deadline: float | None = None) -> list[Orphan]:
        """Our objects whose instance is neither recorded nor kept; removed unless dry_run
        (GarbageCollector.garbage_collect)."""
        with self.ctx.timed("gc"):
            return self.collector.garbage_collect(dry_run=dry_run, keep=keep, deadline=deadline)

    # -- reads -----------------------------------------------------------------------------
    def get(self, instance_id: str) -> Instance:
        """The recorded instance, every part observed now. Raises NotFound."""
        return self.reader.get(instance_id)

    def watch(self, team: str = "", instance_id: str = "", *,
              snapshot: bool = True) -> tuple[list[Event], Subscription]:
        """(snapshot events, a subscription for every later change). Close the subscription."""
        return self.reader.watch(team, instance_id, snapshot=snapshot)

    def list(self, team: str = "", state: str = "") -> list[Instance]:
        """Recorded instances (one read; nothing observed)."""
        return self.reader.list(team, state)
