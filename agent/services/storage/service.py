"""StorageService: the storage plane's facade (images, instance volumes, quotas,
snapshots, safe deletion) over one ZFS backend (agent.drivers.zfs) and one dataset
layout. Plain dataclasses in and out (model.py); no protobuf. The gRPC servicer and
the instance plane call it in-process.

Composed by the constructor, each part getting the backend, the layout and the
locks it needs:
- Directories (directories.py): our directory datasets, per team too.
- Pool (pool.py): capabilities, status, capacity and size checks.
- Images (images.py): import, parking, collection; which images are known READY.
- VolumeReads (volume_reads.py): observed volumes, lists, drift, inventory.
- Volumes (volumes.py): create/converge, resize.
- Snapshots (snapshots.py) and VolumeDeletes (volume_deletes.py).
- VolumeLocks (volume_locks.py), shared by the last three.

Concurrency:
- Volumes: a second operation on the same (team, name) WAITS for the first
  (bounded by `wait_timeout`, then DEADLINE_EXCEEDED) and then measures
  again. Creations in a team share its gate; a whole-team destroy excludes them.
- Images: a second EnsureImage/DeleteImage of the same id while one runs
  gets ABORTED at once (imports stream for a long time; waiting makes no sense).

Idempotency: Ensure* measure then act (changed=false when nothing was
needed); Delete* of something absent is OK; Get* of missing -> NotFound.
Ownership: nothing without devcloud:owner=devcloud-agent (source local) is
modified; such a dataset in our way -> FailedPrecondition(NOT_OURS).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

from agent.drivers import idmap as idmap_driver
from agent.drivers.base import Availability
from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.model.idmap import IdMap
from agent.services.drift import Drift

from .directories import Directories
from .images import Images
from .layout import Layout, check_name_length, is_ours
from .model import (MARKS, DeleteResult, Image, ImageFormat, ImageState, ImportProgress, OwnedDataset, PoolStatus,
                    Snapshot, Volume, VolumeSpec)
from .pool import Pool
from .snapshots import Snapshots
from .variants import Variants
from .volume_deletes import VolumeDeletes
from .volume_locks import VolumeLocks
from .volume_reads import VolumeReads
from .volumes import Volumes

DEFAULT_WAIT = 30.0                  # seconds a volume operation waits for one in flight on the same key


class StorageService:
    """Use cases of the storage plane over one pool/parent."""

    def __init__(self, backend: ZfsBackend, parent: str, *, allow_device_nodes: bool = False,
                 embedded: bool = False, wait_timeout: float = DEFAULT_WAIT, idmap_policy: str = "auto",
                 idmap_probe: Callable[[str], Availability] | None = None,
                 shift: Callable[[str, IdMap], object] | None = None) -> None:
        """idmap_policy: [storage].idmap (auto | shift | mount); idmap_probe / shift: the idmap
        driver's probe_idmapped_mount / shift_tree (tests pass stand-ins)."""
        self.zfs = backend
        self.layout = Layout(parent)
        self.allow_device_nodes = allow_device_nodes
        self.embedded = embedded
        self.wait_timeout = wait_timeout
        self.locks = VolumeLocks(wait_timeout)
        self.dirs = Directories(backend, self.layout, wait_timeout=wait_timeout)
        self.pool = Pool(backend, self.layout, embedded=embedded, idmap_policy=idmap_policy,
                         **({"idmap_probe": idmap_probe} if idmap_probe else {}))
        self.variants = Variants(backend, self.layout, self.dirs, wait_timeout=wait_timeout,
                                 **({"shift": shift} if shift else {}))
        self.images = Images(backend, self.layout, self.dirs, self.variants, allow_device_nodes=allow_device_nodes)
        self.reads = VolumeReads(backend, self.layout)
        self.volumes = Volumes(backend, self.layout, dirs=self.dirs, images=self.images, pool=self.pool,
                               reads=self.reads, locks=self.locks, variants=self.variants)
        self.snapshots = Snapshots(backend, reads=self.reads, locks=self.locks)
        self.deletes = VolumeDeletes(backend, self.layout, dirs=self.dirs, images=self.images, locks=self.locks)

    # -- names (deterministic, computable before creation) --------------------------

    def volume_dataset(self, team: str, name: str) -> str:
        """The dataset name of a volume (pure)."""
        return self.layout.volume(team, name)

    def image_dataset(self, image_id: str) -> str:
        """The dataset name of a READY image (pure)."""
        return self.layout.image(image_id)

    def _check_len(self, dataset: str, field: str) -> None:
        check_name_length(dataset, field)

    # -- startup -------------------------------------------------------------------

    def start(self) -> dict[str, object]:
        """Startup reconcile: create/verify our directory datasets, mount what a zfs-fuse
        restart left unmounted, remove imports a crash interrupted, destroy parked images
        whose last clone is gone. Idempotent. FailedPrecondition NOT_OURS if the parent is
        not ours, POOL_NOT_FOUND if its pool is not imported."""
        self.dirs.ensure()
        mounted = self.zfs.mount_all(self.layout.parent)
        stale = 0
        for ds in self.zfs.list(self.layout.tmp, MARKS, depth=1):
            if ds.name != self.layout.tmp and is_ours(ds) and not ds.is_snapshot:
                self.zfs.destroy(ds.name, recursive=True)
                stale += 1
        collected = self.images.collect_parked()
        idmap = self.pool.idmap_mode()              # probed once here (a throwaway idmapped mount)
        return {"mounted": mounted, "stale_imports_removed": stale, "parked_images_destroyed": collected,
                "idmap": idmap}

    # -- pool (pool.py) ----------------------------------------------------------------

    def capabilities(self) -> tuple[str, ...]:
        """What this node's storage can do, as data (backend:, flavor:, zvol, lz4, ...)."""
        return self.pool.capabilities()

    def pool_status(self) -> PoolStatus:
        """Health and capacity of the pool and our parent. NotFound if the pool is not imported."""
        return self.pool.status()

    def pool_capacity(self) -> int:
        """Bytes datasets can use in the pool, cached briefly."""
        return self.pool.capacity()

    # -- volumes (volumes.py, volume_reads.py) -----------------------------------------

    def ensure_volume(self, spec: VolumeSpec, *, wait_timeout: float | None = None) -> tuple[Volume, bool]:
        """Create the volume or converge it to `spec`; idempotent. Errors: Volumes.ensure_volume."""
        return self.volumes.ensure_volume(spec, wait_timeout=wait_timeout)

    def resize_volume(self, team: str, name: str, *, refquota_bytes: int | None = None,
                      quota_bytes: int | None = None, reservation_bytes: int | None = None,
                      size_bytes: int | None = None, wait_timeout: float | None = None) -> tuple[Volume, bool]:
        """Change the given limits; idempotent; NotFound if absent. Errors: Volumes.resize_volume."""
        return self.volumes.resize_volume(team, name, refquota_bytes=refquota_bytes, quota_bytes=quota_bytes,
                                          reservation_bytes=reservation_bytes, size_bytes=size_bytes,
                                          wait_timeout=wait_timeout)

    def get_volume(self, team: str, name: str) -> Volume:
        """The observed volume. NotFound if absent or not ours."""
        return self.reads.get_volume(team, name)

    def list_volumes(self, team: str = "", instance: str = "") -> list[Volume]:
        """Our volumes (of one team / one instance if given)."""
        return self.reads.list_volumes(team, instance)

    def diff_volume(self, spec: VolumeSpec) -> list[str]:
        """Differences between `spec` and the live volume ([] = in sync; ["absent"] if missing)."""
        return [d.detail for d in self.reads.volume_drift(spec)]

    def volume_drift(self, spec: VolumeSpec) -> list[Drift]:
        """diff_volume as Drift items with reason codes. Read-only. See VolumeReads.volume_drift."""
        return self.reads.volume_drift(spec)

    def inventory(self) -> list[OwnedDataset]:
        """Every dataset of ours under the parent with its marks (for GarbageCollect)."""
        return self.reads.inventory()

    # -- snapshots (snapshots.py) ------------------------------------------------------

    def snapshot_volume(self, team: str, name: str, snapshot: str) -> tuple[Snapshot, bool]:
        """Snapshot the volume; idempotent; NotFound if absent. See Snapshots.snapshot_volume."""
        return self.snapshots.snapshot_volume(team, name, snapshot)

    def rollback_volume(self, team: str, name: str, snapshot: str, *, destroy_newer: bool = False) -> Volume:
        """Roll the volume back to a snapshot. Errors: Snapshots.rollback_volume."""
        return self.snapshots.rollback_volume(team, name, snapshot, destroy_newer=destroy_newer)

    def delete_snapshot(self, team: str, name: str, snapshot: str) -> bool:
        """Destroy a snapshot; absent -> False. Errors: Snapshots.delete_snapshot."""
        return self.snapshots.delete_snapshot(team, name, snapshot)

    # -- deletion (volume_deletes.py) --------------------------------------------------

    def delete_volume(self, team: str, name: str, *, wait_timeout: float | None = None,
                      tree: list[DatasetInfo] | None = None) -> bool:
        """Destroy the volume with its snapshots; absent -> False. Errors: VolumeDeletes.delete_volume."""
        return self.deletes.delete_volume(team, name, wait_timeout=wait_timeout, tree=tree)

    def delete_volumes(self, team: str, names: Sequence[str] | None = None) -> list[DeleteResult]:
        """Bulk delete with a result per volume. See VolumeDeletes.delete_volumes."""
        return self.deletes.delete_volumes(team, names)

    # -- images (images.py) --------------------------------------------------------------

    def get_image(self, image_id: str) -> Image:
        """The READY image. NotFound if absent (parked images are not returned)."""
        return self.images.get_image(image_id)

    def list_images(self, include_parked: bool = False) -> list[Image]:
        """All images (and parked ones if asked)."""
        return self.images.list_images(include_parked)

    def ensure_image(self, image_id: str, sha256: str, chunks: Iterator[bytes] | None = None, *,
                     local_path: str = "", size_bytes: int = 0,
                     progress: Callable[[ImportProgress], None] | None = None, fmt: ImageFormat | None = None,
                     metadata_size: int = 0, rootfs_local_path: str = "") -> tuple[Image, bool]:
        """Import an image (rootfs tarball, LXD unified or split); idempotent by sha256.
        Errors: Images.ensure_image."""
        return self.images.ensure_image(image_id, sha256, chunks, local_path=local_path, size_bytes=size_bytes,
                                        progress=progress, fmt=fmt, metadata_size=metadata_size,
                                        rootfs_local_path=rootfs_local_path)

    def delete_image(self, image_id: str) -> ImageState:
        """Delete an image (ABSENT) or park it while clones live (PARKED). See Images.delete_image."""
        return self.images.delete_image(image_id)

    def collect_parked(self, only: Iterable[str] | None = None) -> int:
        """Destroy parked images no clone uses any more; returns how many. Idempotent."""
        return self.images.collect_parked(only)

    # -- for the instance plane (public; it never reaches the backend) -------------------

    def check_dataset_name(self, dataset: str, field: str) -> None:
        """Pure check of a dataset name computed before anything exists: it must leave room for
        any snapshot name within ZFS's name limit. Raises InvalidArgument naming `field`."""
        self._check_len(dataset, field)

    def supports(self, feature: str) -> bool:
        """Whether this node's ZFS can do `feature` ("zvol", "lz4", ...), as probed. No I/O."""
        return self.zfs.supports(feature)

    def rootfs_unreachable(self, volume: Volume) -> str:
        """For a ROOT with a uid/gid map: the first directory on the way to its rootfs that the
        instance's root (host uid/gid of the map) cannot enter, "<dir> (mode, owner)"; "" when
        it can reach it (or the volume has no map). An unprivileged runtime fails there
        otherwise. Read-only."""
        if volume.idmap is None or not volume.rootfs:
            return ""
        return idmap_driver.untraversable(volume.rootfs, volume.idmap.host_uid, volume.idmap.host_gid)

    def idmap_mode(self) -> str:
        """How roots with a uid/gid map are made on this node: "mount" | "shifted" (Pool.idmap_mode)."""
        return self.pool.idmap_mode()

    @property
    def flavor(self) -> str:
        """This node's ZFS implementation: "openzfs" | "zfs-fuse"."""
        return self.zfs.flavor
