"""Composition of the storage plane; the pool choice and startup live in storage_pool.py."""
from __future__ import annotations

from agent.api.server import Registration
from agent.api.storage import register
from agent.composition import Planes, Step, storage_pool
from agent.config import Config
from agent.metrics import Metrics
from agent.services.identity import from_facility


def build_storage(cfg: Config, planes: Planes, metrics: Metrics) -> None:
    """Build the storage plane (when enabled) and record its facility, capabilities, startup
    and shutdown steps and servicer in `planes`."""
    if not cfg.storage.enabled:
        return
    plane = storage_pool.build(cfg, metrics)
    planes.services.storage = plane
    planes.facilities["zfs"] = plane.probe
    planes.own_processes.append(lambda: {plane.zfs_fuse_pid})
    planes.capabilities["storage_zfs"] = from_facility("zfs")
    planes.capabilities["storage_zvol"] = plane.zvol
    planes.startup.append(Step("storage", plane.start, plane="storage", gates=("storage_zfs", "storage_zvol")))
    planes.shutdown.append(plane.release)       # zfs-fuse and every mount stay: they are the data plane
    planes.registrations.append(Registration("devcloud.agent.v1.StorageService",
                                             lambda s: register(s, plane.service)))
