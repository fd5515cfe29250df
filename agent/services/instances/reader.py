"""GetInstance, ListInstances, WatchInstances: reads of the records, observed
parts (cheap lookups by name), and the watch hub's events. Never write."""
from __future__ import annotations

from agent.drivers.statestore import InstanceRecord
from agent.services.instances.context import InstanceContext
from agent.services.instances import runtime
from agent.services.instances.model import Event, Instance, NicState
from agent.services.instances.records import names_from_dict, spec_from_dict
from agent.services.instances.watch import Subscription


def record_instance(rec: InstanceRecord) -> Instance:
    """The instance as recorded (nothing observed)."""
    names, allocs = names_from_dict(rec.names)
    spec = spec_from_dict(rec.spec)
    return Instance(id=rec.id, team=rec.team, kind=spec.kind, state=rec.state, spec=spec, names=names,
                    allocations=allocs, generation=rec.generation, created_at=rec.created_at,
                    updated_at=rec.updated_at, message=rec.message)


class Reader:
    """Reads of the instance plane (thread-safe, lock-free: they may see an operation midway)."""

    def __init__(self, ctx: InstanceContext) -> None:
        self.ctx, self.planes, self.store = ctx, ctx.planes, ctx.store

    def get(self, instance_id: str) -> Instance:
        """The recorded instance with every part observed now (absent parts reported as such,
        not as errors). Raises NotFound INSTANCE_NOT_FOUND when nothing is recorded."""
        inst = record_instance(self.ctx.require_record(instance_id))
        fut = self.ctx.pool.submit(self.planes.observe_storage, inst.names)
        inst.nics = [NicState(n.nic, self.planes.observe_nic(n)) for n in inst.names.nics]
        inst.scope = self.planes.observe_scope(inst.team, inst.id)
        inst.volume = fut.result()
        inst.parts = self.planes.parts(inst.names, inst.volume, inst.nics, inst.scope)
        inst.observed = True
        inst.runtime = runtime.build(self.planes, inst)
        return inst

    def watch(self, team: str = "", instance_id: str = "", *,
              snapshot: bool = True) -> tuple[list[Event], Subscription]:
        """(snapshot events of the recorded instances, a subscription for every later change).
        Subscribed before the snapshot is read: nothing falls between. An unknown id is not an
        error (its events come once it is prepared). Close the subscription."""
        sub = self.ctx.hub.subscribe(team, instance_id)
        events = []
        if snapshot:
            for rec in self.store.list(team):
                if not instance_id or rec.id == instance_id:
                    events.append(Event(rec.id, rec.team, rec.state, message=rec.message, snapshot=True))
        return events, sub

    def list(self, team: str = "", state: str = "") -> list[Instance]:
        """Recorded instances of `team` ("" = all) in `state` ("" = any): one read, nothing
        observed (GetInstance observes). Empty when none."""
        return [record_instance(r) for r in self.store.list(team) if not state or r.state == state]
