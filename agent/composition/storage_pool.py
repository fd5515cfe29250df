"""Building the storage plane from the config, and its startup step.

Pool choice:
- [storage].pool set: use that pool (it must be imported; the agent never
  creates or destroys it).
- [storage].pool empty (the embedded default, like `lxd init --auto`): a
  file-backed pool `<embedded_pool_name>` on the sparse file
  `<state_dir>/disks/<name>.img` (`embedded_pool_size`), mounted under
  `<state_dir>/storage`, created on first start and imported on later ones.
Where /dev/zfs is missing the agent uses zfs-fuse and starts it if none
runs. zfs-fuse is part of the data plane (instance roots are its FUSE
mounts): the agent leaves it running when it stops, its PID recorded in
`<state_dir>/zfs-fuse.pid`; a later start reuses it, or starts a new one,
imports the pool and mounts what is not mounted.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from agent import validation
from agent.config import Config
from agent.drivers.base import Availability
from agent.drivers.embedded import zfs_fuse
from agent.drivers.zfs import ZfsBackend, open_backend
from agent.metrics import Metrics
from agent.services.storage.service import StorageService

log = logging.getLogger(__name__)


@dataclass
class StoragePlane:
    """The built storage plane: its backend and service, and the zfs-fuse it runs on (if any)."""

    backend: ZfsBackend
    service: StorageService
    cfg: Config
    metrics: Metrics
    leases: list = field(default_factory=list)      # zfs-fuse leases held for the agent's lifetime
    zfs_fuse_pid: int = 0                           # the zfs-fuse daemon serving our pool (0: none known)

    @property
    def embedded(self) -> bool:
        """True for the file-backed pool the agent manages itself ([storage].pool empty)."""
        return not self.cfg.storage.pool

    def probe(self) -> Availability:
        """The backend's probe with the pool's abilities folded in (lz4, encryption):
        capabilities as data, e.g. backend:cli, flavor:zfs-fuse, zvol, lz4."""
        a = self.backend.probe()
        if not a.available:
            return a
        try:
            return Availability.ok(a.version, self.service.capabilities())
        except Exception:      # the pool may not be imported yet; the backend's answer stands
            return a

    def zvol(self, facilities: dict[str, Availability]) -> Availability:
        """The storage_zvol capability: zvols (BLOCK volumes) need the OpenZFS kernel module."""
        a = facilities.get("zfs") or self.probe()
        if not a.available:
            return Availability.missing(f"zfs: {a.reason}")
        if "zvol" not in a.features:
            return Availability.missing(f"the {self.backend.flavor} ZFS on this node cannot create zvols "
                                        "(BLOCK volumes); load the OpenZFS kernel module to get them")
        return Availability.ok()

    def release(self) -> None:
        """Shutdown step: drop our zfs-fuse leases. zfs-fuse itself keeps running (data plane)."""
        while self.leases:
            self.leases.pop().release()

    def start(self) -> None:
        """Startup step: zfs-fuse (if needed), the embedded pool (if configured so), reconcile."""
        state = Path(self.cfg.node.state_dir)
        if self.backend.flavor == "zfs-fuse":
            daemon, lease = zfs_fuse.ensure_running(state, self.metrics)
            self.leases.append(lease)           # never released: process exit drops it
            self.zfs_fuse_pid = daemon.pid
            log.info("zfs-fuse %s (pid %s)", "started" if daemon.owned else "reused", daemon.pid or "?")
        if self.embedded:
            s = self.cfg.storage
            size = validation.size_bytes("[storage].embedded_pool_size", s.embedded_pool_size)
            pool = zfs_fuse.ensure_file_pool(self.backend.cmd, s.embedded_pool_name,
                                             state / "disks" / f"{s.embedded_pool_name}.img", size=size,
                                             mountpoint=str(state / "storage"))
            log.info("embedded pool %s: %s", pool.name, pool.action)
        summary = self.service.start()
        log.info("storage ready: %s", summary)


def build(cfg: Config, metrics: Metrics) -> StoragePlane:
    """Open the ZFS backend and build the service over [storage].parent (default <pool>/devcloud)."""
    s = cfg.storage
    backend = open_backend(metrics, s.backend, busy_timeout=s.busy_timeout)
    pool = s.pool or s.embedded_pool_name
    parent = s.parent or f"{pool}/devcloud"
    service = StorageService(backend, parent, allow_device_nodes=os.geteuid() == 0, embedded=not s.pool,
                             idmap_policy=s.idmap)
    return StoragePlane(backend, service, cfg, metrics)
