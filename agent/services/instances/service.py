"""InstanceService: prepare a whole instance's data plane in one call.

Prepare: validate -> kind checks (VM: KVM + zvols; Kubernetes node: nesting
preflight) -> compute every object name -> record the intent (SQLite,
synchronous) naming them -> run the planes concurrently (storage clone in
the pool || compute scope in the pool || NICs in the calling thread) ->
record "prepared" with the addresses that were allocated. A failure rolls
back what this operation created, in reverse plane order, and the error
names the failed part. Release, bulk release: release.py; startup
reconcile: reconcile.py; Diff/Repair/GarbageCollect:
repair.py; WatchInstances: watch.py.

Idempotency: the same spec again -> OK, changed=false (the planes' Ensures
measure and converge, no intent is written); a spec with another immutable
field -> AlreadyExists; mutable fields (limits, quotas, MTU) converge under a
recorded "update" operation. One operation per instance id at a time (ABORTED,
or a bounded wait when asked).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.drivers.base import Availability
from agent.drivers.statestore import InstanceRecord, StateStore
from agent.errors import AgentError, AlreadyExists, FailedPrecondition, NotFound, Unavailable
from agent.metrics import Metrics
from agent.services.instances.faults import Faults
from agent.services.instances.model import (FAILED, PREPARED, PREPARING, Allocation, Event, Instance, InstanceNames,
                                           InstanceSpec, NicState, incompatible, names_from_dict,
                                           names_to_dict, spec_from_dict, spec_to_dict)
from agent.services.instances.planes import PlaneSet
from agent.services.instances.reconcile import ReconcileOps
from agent.services.instances.release import ReleaseOps, describe
from agent.services.instances.repair import RepairOps
from agent.services.instances.watch import WatchHub
from agent.services.locks import KeyedLocks, remaining

log = logging.getLogger(__name__)
DEFAULT_STORAGE_WAIT = 30.0          # seconds a volume operation waits for another on the same volume


@dataclass
class PlanesFailed(Exception):
    """One or more planes failed; `results` holds what the others produced."""

    errors: dict[str, BaseException]
    results: dict[str, object] = field(default_factory=dict)

    def first(self) -> BaseException:
        for key in ("storage", "network", "compute"):
            if key in self.errors:
                return self.errors[key]
        return next(iter(self.errors.values()))


class InstanceService(ReleaseOps, ReconcileOps, RepairOps):
    """Use cases of the instance plane (plain dataclasses in and out). Thread-safe."""

    def __init__(self, store: StateStore, planes: PlaneSet, metrics: Metrics, *, faults: Faults | None = None,
                 workers: int = 32, ready_timeout: float = 30.0, storage_wait: float = DEFAULT_STORAGE_WAIT) -> None:
        self.store, self.planes, self.metrics = store, planes, metrics
        self.faults = faults or Faults()
        self.locks = KeyedLocks("instance")
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="instance")
        self.hub = WatchHub(planes.network)
        self.ready_timeout = ready_timeout
        self.storage_wait = storage_wait
        self.reconciled = threading.Event()        # set once the startup reconcile finished everything

    def require_reconciled(self) -> None:
        """Mutations wait for the startup reconcile: it owns the instances a crash interrupted.
        Raises Unavailable NOT_READY until then."""
        if not self.reconciled.is_set():
            raise Unavailable("the agent is still finishing operations a restart interrupted (startup "
                              "reconcile); retry shortly (Probe says what it is waiting for)", reason="NOT_READY")

    def probe(self) -> Availability:
        return self.store.probe()

    def close(self) -> None:
        self.hub.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def names_for(self, spec: InstanceSpec) -> InstanceNames:
        """The exact object names Prepare will create (pure). Raises InvalidArgument."""
        return self.planes.names_for(spec)

    def _timed(self, op: str, started: float, ok: bool) -> None:
        self.metrics.instance_op.labels(op=op, result="ok" if ok else "error").observe(time.perf_counter() - started)

    # -- prepare ---------------------------------------------------------------------
    def prepare(self, spec: InstanceSpec, *, wait: bool = False, deadline: float | None = None,
                wait_ready: bool = False, ready_timeout: float | None = None) -> Instance:
        """Create or converge every part of the instance; returns the observed instance.

        Idempotent (same spec: changed=False). Raises AlreadyExists (immutable field
        differs), FailedPrecondition (the node cannot host this kind: reasons listed; a
        team network/slice/image missing; an object in the way is not ours), Aborted
        (another operation on the id in flight, wait=False), DeadlineExceeded (wait=True
        and the deadline passed), InvalidArgument, Unavailable; errors of a plane name
        the part (metadata part/object). With wait_ready the NICs are waited for until
        ovn-installed and up (bounded); their status says what is still missing."""
        started, ok = time.perf_counter(), False
        try:
            self.require_reconciled()
            names = self.planes.names_for(spec)
            with self.locks.hold(spec.id, wait=wait, timeout=remaining(deadline)):
                rec = self.store.get(spec.id)
                if rec is None:
                    self._check_kind(spec)
                    inst = self._create(spec, names, deadline, wait_ready, ready_timeout)
                else:
                    inst = self._update(spec, rec, deadline, wait_ready, ready_timeout)
            ok = True
            return inst
        finally:
            self._timed("prepare", started, ok)

    def _check_kind(self, spec: InstanceSpec) -> None:
        problems = self.planes.kind_problems(spec)
        if problems:
            what = "a VM" if spec.kind == "vm" else "a Kubernetes node container"
            raise FailedPrecondition(f"this node cannot host {what}: " + "; ".join(problems),
                                     reason="NODE_CANNOT_HOST", metadata={
                                         "missing": ",".join(p.split(":", 1)[0] for p in problems)})

    def _create(self, spec: InstanceSpec, names: InstanceNames, deadline: float | None, wait_ready: bool,
                ready_timeout: float | None) -> Instance:
        rec = InstanceRecord(spec.id, spec.team, PREPARING, spec_to_dict(spec), names_to_dict(names), 1, 0, 0)
        op = self.store.begin(rec, "prepare")                      # intent before action
        self.hub.index(spec.id, spec.team, PREPARING, names.nics)
        self.hub.publish(Event(spec.id, spec.team, PREPARING))
        self.faults.hit("prepare", "intent-recorded")
        try:
            inst = self._run_planes(spec, names, deadline, wait_ready, ready_timeout)
        except PlanesFailed as pf:
            err = pf.first()
            self._undo_new(spec, names, op, err)
            raise err from None
        self.faults.hit("prepare", "planes-done")
        allocs = {n.nic: Allocation(n.port.mac, n.port.ip4, n.port.ip6) for n in inst.nics if n.port}
        self.store.finish(op, "done", instance_id=spec.id, state=PREPARED, names=names_to_dict(names, allocs))
        inst.allocations, inst.state, inst.changed = allocs, PREPARED, True
        self.hub.publish(Event(spec.id, spec.team, PREPARED, ready=inst.ready))
        return inst

    def _undo_new(self, spec: InstanceSpec, names: InstanceNames, op: int, err: BaseException) -> None:
        """Roll back a new instance: compute, network, storage (reverse order), by recorded
        names, objects without our mark left alone. Fully undone -> the record goes; else it
        stays as failed (Release or reconcile finish the job)."""
        problems = self._delete_parts(spec.team, spec.id, names, time.monotonic() + 30, "rollback")
        msg = f"prepare failed: {getattr(err, 'message', err)}"
        if problems:
            msg += "; rollback incomplete: " + describe(problems)
            log.error("instance %s: %s", spec.id, msg)
            self.store.finish(op, "failed", instance_id=spec.id, state=FAILED, message=msg)
            self.hub.publish(Event(spec.id, spec.team, FAILED, message=msg))
        else:
            self.store.finish(op, "rolled-back", instance_id=spec.id, state=None, message=msg)
            self.hub.publish(Event(spec.id, spec.team, FAILED, message=msg))
            self.hub.unindex(spec.id, names.nics)

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
        op = None
        if not (same and rec.state == PREPARED):
            if not same:
                self._check_kind(spec)
                names = self.planes.names_for(spec)               # peer placement may have changed
            gen = rec.generation + (0 if same else 1)
            op = self.store.begin(InstanceRecord(spec.id, spec.team, PREPARING, spec_to_dict(spec),
                                                 names_to_dict(names, allocs), gen, rec.created_at, 0), "update")
            self.hub.index(spec.id, spec.team, PREPARING, names.nics)
            self.hub.publish(Event(spec.id, spec.team, PREPARING))
        try:
            # addresses are not pinned: an existing port keeps its own (the network plane restores them
            # from its mark), a port that vanished gets a free one (its old one may be taken meanwhile)
            inst = self._run_planes(spec, names, deadline, wait_ready, ready_timeout)
        except PlanesFailed as pf:
            err = pf.first()
            if op is not None:
                msg = f"update failed: {getattr(err, 'message', err)}"
                self.store.finish(op, "failed", instance_id=spec.id, state=FAILED, message=msg)
                self.hub.publish(Event(spec.id, spec.team, FAILED, message=msg))
            raise err from None
        allocs = {**allocs, **{n.nic: Allocation(n.port.mac, n.port.ip4, n.port.ip6) for n in inst.nics if n.port}}
        if op is not None:
            self.store.finish(op, "done", instance_id=spec.id, state=PREPARED, names=names_to_dict(names, allocs))
            self.hub.publish(Event(spec.id, spec.team, PREPARED, ready=inst.ready))
        inst.spec, inst.allocations, inst.state = spec, allocs, PREPARED
        inst.generation, inst.created_at = rec.generation + (0 if same else 1), rec.created_at
        inst.changed = inst.changed or op is not None and not same
        return inst

    def _run_planes(self, spec: InstanceSpec, names: InstanceNames, deadline: float | None, wait_ready: bool,
                    ready_timeout: float | None) -> Instance:
        """NICs (and their readiness wait) || compute scope in the pool, the root volume here:
        the ZFS clone, the longest part, starts first and the rest hides behind it. Raises
        PlanesFailed after every plane finished (so the undo knows what exists)."""
        f = self.faults
        wait_s = self.storage_wait if deadline is None else max(0.0, min(self.storage_wait, remaining(deadline)))

        def network():
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
            futures["network"] = self.pool.submit(network)
        futures["compute"] = self.pool.submit(self.planes.ensure_scope, spec, f.checkpoint("prepare", "compute."))
        errors: dict[str, BaseException] = {}
        results: dict[str, object] = {"network": []}
        try:
            results["storage"] = self.planes.ensure_storage(spec, wait_s)
            f.hit("prepare", "storage.volume-created")
        except BaseException as exc:                # noqa: BLE001 - re-raised through PlanesFailed
            errors["storage"] = exc
        for key, fut in futures.items():
            try:
                results[key] = fut.result()
            except BaseException as exc:            # noqa: BLE001
                errors[key] = exc
        if errors:
            for key, exc in errors.items():
                if not isinstance(exc, AgentError):
                    log.error("instance %s: %s failed unexpectedly", spec.id, key, exc_info=exc)
            raise PlanesFailed(errors, results)
        (volume, v_changed), (scope, s_changed) = results["storage"], results["compute"]
        ports = results["network"]
        nics = [NicState(n.name, p) for n, p in zip(spec.nics, ports)]
        inst = Instance(id=spec.id, team=spec.team, kind=spec.kind, state=PREPARING, spec=spec, names=names,
                        volume=volume, nics=nics, scope=scope, observed=True,
                        changed=v_changed or s_changed or any(p.changed for p in ports))
        inst.parts = self.planes.parts(names, volume, nics, scope)
        return inst

    # -- reads -----------------------------------------------------------------------------
    def _record_instance(self, rec: InstanceRecord) -> Instance:
        names, allocs = names_from_dict(rec.names)
        spec = spec_from_dict(rec.spec)
        return Instance(id=rec.id, team=rec.team, kind=spec.kind, state=rec.state, spec=spec, names=names,
                        allocations=allocs, generation=rec.generation, created_at=rec.created_at,
                        updated_at=rec.updated_at, message=rec.message)

    def get(self, instance_id: str) -> Instance:
        """The recorded instance with every part observed now (cheap lookups by name).
        Raises NotFound."""
        rec = self.store.get(instance_id)
        if rec is None:
            raise NotFound(f"instance {instance_id} is not prepared on this node", reason="INSTANCE_NOT_FOUND",
                           metadata={"instance": instance_id})
        inst = self._record_instance(rec)
        fut = self.pool.submit(self.planes.observe_storage, inst.names)
        inst.nics = [NicState(n.nic, self.planes.observe_nic(n)) for n in inst.names.nics]
        inst.scope = self.planes.observe_scope(inst.team, inst.id)
        inst.volume = fut.result()
        inst.parts = self.planes.parts(inst.names, inst.volume, inst.nics, inst.scope)
        inst.observed = True
        return inst

    def list(self, team: str = "", state: str = "") -> list[Instance]:
        """Recorded instances (one read; nothing observed: GetInstance observes)."""
        return [self._record_instance(r) for r in self.store.list(team) if not state or r.state == state]

    def watch(self, team: str = "", instance_id: str = "", *, snapshot: bool = True):
        """(snapshot events of the recorded instances, a subscription for every later change).
        Subscribed before the snapshot is read: nothing falls between. Close the subscription."""
        sub = self.hub.subscribe(team, instance_id)
        events = []
        if snapshot:
            for rec in self.store.list(team):
                if not instance_id or rec.id == instance_id:
                    events.append(Event(rec.id, rec.team, rec.state, message=rec.message, snapshot=True))
        return events, sub
