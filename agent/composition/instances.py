"""Composition of the instance plane (built after the three planes it composes).

The intent store is <state_dir>/instances.db (SQLite, WAL, synchronous).
Its startup step "instances: reconcile" runs after the planes' own startup
steps and before the agent reports ready: every operation a crash
interrupted is finished first.
"""
from __future__ import annotations

from pathlib import Path

from agent._proto.devcloud.agent.v1 import instance_pb2_grpc
from agent.api.instance import InstanceServicer
from agent.api.server import Registration
from agent.composition import Planes, Step
from agent.config import Config
from agent.drivers.base import Availability
from agent.drivers.statestore import StateStore
from agent.metrics import Metrics
from agent.services.identity import all_of
from agent.services.instances.service import InstanceService
from agent.services.instances.faults import Faults
from agent.services.instances.planes import PlaneSet

STATE_DB = "instances.db"


def build_instances(cfg: Config, planes: Planes, metrics: Metrics) -> InstanceService | None:
    """Build the store and the service, register the servicer, the reconcile step and shutdown."""
    if not cfg.instances.enabled:
        planes.capabilities["instances"] = lambda f: Availability.missing(
            "the instance plane is disabled ([instances].enabled = false)")
        return None
    storage, network, compute = planes.services.storage, planes.services.network, planes.services.compute
    if storage is None or network is None or compute is None:
        missing = [k for k, s in (("storage", storage), ("network", network), ("compute", compute)) if s is None]
        reason = (f"the instance plane composes the storage, network and compute planes; enable "
                  f"[{'], ['.join(missing)}]")
        planes.capabilities["instances"] = lambda f: Availability.missing(reason)
        return None
    store = StateStore(Path(cfg.node.state_dir) / STATE_DB)
    service = InstanceService(store, PlaneSet(storage.service, network, compute, planes.services.host),
                              metrics, faults=Faults.from_env(), workers=cfg.instances.workers,
                              ready_timeout=cfg.instances.ready_timeout)
    planes.services.instances = service
    planes.facilities["statedb"] = store.probe
    needs = ["statedb", "zfs", "netlink", "cgroup"] + (["ovn-nb", "ovsdb"] if network.ovn_enabled else [])
    planes.capabilities["instances"] = all_of(*needs)

    def reconcile() -> None:
        store.open()
        service.reconcile()

    planes.startup.append(Step("instances: reconcile", reconcile, barrier=True, gates=("instances",)))
    planes.shutdown.extend([store.close, service.close])          # run in reverse: service first
    planes.registrations.append(Registration(
        "devcloud.agent.v1.InstanceService",
        lambda s: instance_pb2_grpc.add_InstanceServiceServicer_to_server(InstanceServicer(service), s),
        serving=lambda: store.probe().available))
    return service
