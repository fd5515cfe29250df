"""What every part of the instance plane shares, passed to each by constructor:
the intent store and its journal, the composed planes, the per-instance locks,
the worker pool, the watch hub, metrics, fault checkpoints, timeouts, and the
"startup reconcile finished" event.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from agent.drivers.contracts.statestore import StateStoreContract
from agent.drivers.statestore import InstanceRecord
from agent.errors import NotFound, Unavailable
from agent.metrics import Metrics
from agent.services.instances.faults import Faults
from agent.services.instances.journal import Journal
from agent.services.instances.planes import PlaneSet
from agent.services.instances.watch import WatchHub
from agent.services.locks import KeyedLocks

DEFAULT_STORAGE_WAIT = 30.0          # seconds a volume operation waits for another on the same volume


@dataclass
class InstanceContext:
    """The shared state of one instance plane. Build it with `InstanceContext.create`."""

    store: StateStoreContract
    planes: PlaneSet
    metrics: Metrics
    faults: Faults
    locks: KeyedLocks                  # one operation per instance id at a time
    pool: ThreadPoolExecutor           # planes of one instance run concurrently here
    hub: WatchHub
    journal: Journal                   # every write of the intent store goes through it
    ready_timeout: float = 30.0        # default bound of a NIC readiness wait
    storage_wait: float = DEFAULT_STORAGE_WAIT
    reconciled: threading.Event = field(default_factory=threading.Event)   # set once the startup reconcile is done

    @classmethod
    def create(cls, store: StateStoreContract, planes: PlaneSet, metrics: Metrics, *, faults: Faults | None = None,
               workers: int = 32, ready_timeout: float = 30.0,
               storage_wait: float = DEFAULT_STORAGE_WAIT) -> "InstanceContext":
        """A context with its own locks, pool of `workers` threads, watch hub and journal over
        `store` (not opened here: the startup reconcile opens it). Nothing else is touched."""
        hub = WatchHub(planes.network)
        return cls(store=store, planes=planes, metrics=metrics, faults=faults or Faults(),
                   locks=KeyedLocks("instance"),
                   pool=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="instance"),
                   hub=hub, journal=Journal(store, hub), ready_timeout=ready_timeout, storage_wait=storage_wait)

    def require_reconciled(self) -> None:
        """Mutations wait for the startup reconcile: it owns the instances a crash interrupted.
        Raises Unavailable NOT_READY until then."""
        if not self.reconciled.is_set():
            raise Unavailable("the agent is still finishing operations a restart interrupted (startup "
                              "reconcile); retry shortly (Probe says what it is waiting for)", reason="NOT_READY")

    def require_record(self, instance_id: str) -> InstanceRecord:
        """The recorded instance. Raises NotFound INSTANCE_NOT_FOUND when nothing is recorded."""
        rec = self.store.get(instance_id)
        if rec is None:
            raise NotFound(f"instance {instance_id} is not prepared on this node", reason="INSTANCE_NOT_FOUND",
                           metadata={"instance": instance_id})
        return rec

    @contextmanager
    def timed(self, op: str) -> Iterator[None]:
        """Observe the block's duration in the instance_op histogram (result error if it raised)."""
        started, ok = time.perf_counter(), False
        try:
            yield
            ok = True
        finally:
            self.metrics.instance_op.labels(op=op, result="ok" if ok else "error").observe(
                time.perf_counter() - started)

    def close(self) -> None:
        """Stop the watch hub and the pool (running plane calls are not waited for). Idempotent."""
        self.hub.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
