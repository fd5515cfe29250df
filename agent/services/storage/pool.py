"""The pool our parent lives in: what it can do, its health and capacity, and the size
checks requests get against that capacity."""
from __future__ import annotations

import logging
import time
from typing import Callable

from agent.drivers import idmap as idmap_driver
from agent.drivers.base import Availability
from agent.drivers.zfs import ZfsBackend
from agent.errors import AgentError, InvalidArgument, NotFound
from agent.model.idmap import MODE_MOUNT, MODE_SHIFTED

from .layout import Layout
from .model import PoolStatus

_CAPACITY_TTL = 30.0                 # seconds the pool capacity used for size checks is cached
IDMAP_POLICIES = ("auto", "shift", "mount")
log = logging.getLogger(__name__)


class Pool:
    """Capabilities, status and capacity of the pool of one layout."""

    def __init__(self, zfs: ZfsBackend, layout: Layout, *, embedded: bool, idmap_policy: str = "auto",
                 idmap_probe: Callable[[str], Availability] | None = None) -> None:
        self.zfs = zfs
        self.layout = layout
        self.embedded = embedded            # a file-backed pool the agent manages itself
        self._capacity = (0.0, 0)           # (monotonic time, bytes)
        self.idmap_policy = idmap_policy    # auto | shift | mount ([storage].idmap)
        self._idmap_probe = idmap_probe or (lambda path: idmap_driver.probe_idmapped_mount(
            path, zfs_flavor=zfs.flavor, zfs_version=zfs.version))
        self._idmapped: Availability | None = None       # the probe's answer, once asked

    def idmapped_mounts(self) -> Availability:
        """Whether the pool's filesystem takes idmapped mounts (probed once on the parent's
        mountpoint: a detached idmapped mount made and freed). Never raises."""
        if self._idmapped is None:
            parent = None
            try:
                parent = self.zfs.get(self.layout.parent)
            except AgentError as exc:
                return Availability.missing(f"cannot read {self.layout.parent}: {exc.message}")
            if parent is None or not parent.mountpoint.startswith("/"):
                return Availability.missing(f"{self.layout.parent} is not mounted")
            self._idmapped = self._idmap_probe(parent.mountpoint)
            log.info("idmapped mounts on %s: %s", parent.mountpoint,
                     ("supported" + (" (by version: the probe could not run)"
                                     if "by-version" in self._idmapped.features else ""))
                     if self._idmapped.available else self._idmapped.reason)
        return self._idmapped

    def idmap_mode(self) -> str:
        """How roots with a uid/gid map are made here: MODE_MOUNT (the runtime mounts them
        idmapped) where idmapped mounts work (or [storage].idmap = "mount"), else
        MODE_SHIFTED (a shifted variant of the image per map)."""
        if self.idmap_policy == "shift":
            return MODE_SHIFTED
        if self.idmap_policy == "mount":
            return MODE_MOUNT
        return MODE_MOUNT if self.idmapped_mounts().available else MODE_SHIFTED

    def capabilities(self) -> tuple[str, ...]:
        """What this node's storage can do, as data: backend:<lzc|cli>, flavor:<...>, zvol, lz4,
        encryption... Never raises for a pool that is not imported (its features are left out)."""
        feats = set(self.zfs.probe().features)
        try:
            pool = self.zfs.pool(self.layout.pool)
        except AgentError:
            pool = None
        if pool is not None:
            if "lz4_compress" in pool.features:
                feats.add("lz4")
            if "encryption" in pool.features:
                feats.add("encryption")
        feats.discard("multi_set")
        feats.discard("multi_snapshot")
        if self._idmapped is not None or self.idmap_policy != "auto":
            feats.add(f"idmap:{self.idmap_mode()}")          # idmap:mount | idmap:shifted
        return tuple(sorted(feats))

    def status(self) -> PoolStatus:
        """Health and capacity of the pool and of our parent. NotFound POOL_NOT_FOUND if the
        pool is not imported."""
        pool = self.zfs.pool(self.layout.pool)
        if pool is None:
            raise NotFound(f"pool {self.layout.pool} is not imported", reason="POOL_NOT_FOUND")
        parent = self.zfs.get(self.layout.parent)
        return PoolStatus(name=pool.name, health=pool.health, size_bytes=pool.size,
                          allocated_bytes=pool.allocated, free_bytes=pool.free, parent=self.layout.parent,
                          parent_used_bytes=parent.used if parent else 0,
                          parent_available_bytes=parent.available if parent else pool.root_available,
                          backend=self.zfs.name, flavor=self.zfs.flavor, capabilities=self.capabilities(),
                          embedded=self.embedded)

    def capacity(self) -> int:
        """Bytes datasets can use in the pool (used + available of its root), cached briefly;
        0 when the pool is not imported."""
        at, value = self._capacity
        if value and time.monotonic() - at < _CAPACITY_TTL:
            return value
        root = self.zfs.get(self.layout.pool)
        value = (root.used + root.available) if root else 0
        self._capacity = (time.monotonic(), value)
        return value

    def check_sizes(self, sizes: dict[str, int]) -> None:
        """Raise InvalidArgument on the first field (name -> bytes) that is negative or
        larger than the pool's capacity."""
        cap = self.capacity()
        for field, value in sizes.items():
            if value < 0:
                raise InvalidArgument.for_field(field, "must not be negative")
            if cap and value > cap:
                raise InvalidArgument.for_field(field, f"{value} bytes exceeds the pool's capacity of {cap} bytes")
