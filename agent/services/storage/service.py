"""StorageService: images, instance volumes, quotas, snapshots, safe deletion.

Composes a ZFS backend (agent.drivers.zfs). Plain dataclasses in and out
(model.py); no protobuf. The instance plane calls this in-process.

Concurrency: one KeyedLocks per object kind.
- Volumes: a second operation on the same (team, name) WAITS for the first
  (bounded by `wait_timeout`, then DEADLINE_EXCEEDED) and then measures
  again: two concurrent EnsureVolume of one name -> one creates, the other
  returns the same volume with changed=false.
- Images: a second EnsureImage/DeleteImage of the same id while one runs
  gets ABORTED at once (imports stream for a long time; waiting makes no sense).

Idempotency: Ensure* measure then act (changed=false when nothing was
needed); Delete* of something absent is OK; Get* of missing -> NotFound.
Ownership: nothing without devcloud:owner=devcloud-agent (source local) is
modified; such a dataset in our way -> FailedPrecondition(NOT_OURS).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from agent.drivers.zfs import MAX_NAME_LEN, DatasetInfo, ZfsBackend
from agent.errors import AgentError, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.services.drift import Drift
from agent.services.locks import KeyedLocks, SharedExclusive

from .model import (MARKS, OWNER, P_IMAGE, P_INSTANCE, P_KIND, P_NAME, P_OWNER, P_TEAM,
                            P_TYPE, Layout, OwnedDataset, PoolStatus, Snapshot, Volume, VolumeKind, VolumeSpec)
from .images import ImageOps, is_ours
from .ops import SnapshotDeleteOps

log = logging.getLogger(__name__)

DEFAULT_WAIT = 30.0                  # seconds a volume operation waits for one in flight on the same key
_CAPACITY_TTL = 30.0                 # seconds the pool capacity used for size checks is cached


class StorageService(ImageOps, SnapshotDeleteOps):
    """Use cases of the storage plane over one pool/parent."""

    def __init__(self, backend: ZfsBackend, parent: str, *, allow_device_nodes: bool = False,
                 embedded: bool = False, wait_timeout: float = DEFAULT_WAIT) -> None:
        self.zfs = backend
        self.layout = Layout(parent)
        self.allow_device_nodes = allow_device_nodes
        self.embedded = embedded
        self.wait_timeout = wait_timeout
        self.volume_locks = KeyedLocks("volume")
        # creations in a team share it; a whole-team recursive destroy excludes them (ops.delete_volumes)
        self.team_gate = SharedExclusive("team")
        self.image_locks = KeyedLocks("image")
        self.team_locks = KeyedLocks("team directory")
        self._capacity = (0.0, 0)      # (monotonic time, bytes)
        self._dirs_ready = False
        self._dirs_lock = threading.Lock()
        self._teams: set[str] = set()  # team datasets known to exist and be ours (saves a read per create)
        self._images_ok: set[str] = set()  # image ids known ours and READY (saves a read per clone)

    # -- names (deterministic, computable before creation) --------------------------

    def volume_dataset(self, team: str, name: str) -> str:
        return self.layout.volume(team, name)

    def image_dataset(self, image_id: str) -> str:
        return self.layout.image(image_id)

    def _check_len(self, dataset: str, field: str) -> None:
        # +1+64: room for "@<snapshot>" so every snapshot of it stays within MAXNAMELEN
        if len(dataset.encode()) + 65 > MAX_NAME_LEN:
            raise InvalidArgument.for_field(field, f"the dataset name {dataset!r} would exceed ZFS's "
                                                   f"{MAX_NAME_LEN}-byte limit; use a shorter name")

    # -- startup -------------------------------------------------------------------

    def start(self) -> dict[str, object]:
        """Startup reconcile: create/verify our directory datasets, mount what a zfs-fuse
        restart left unmounted, remove imports a crash interrupted, destroy parked images
        whose last clone is gone. Idempotent. FailedPrecondition if the parent is not ours."""
        self._ensure_dirs()
        mounted = self.zfs.mount_all(self.layout.parent)
        stale = 0
        for ds in self.zfs.list(self.layout.tmp, MARKS, depth=1):
            if ds.name != self.layout.tmp and is_ours(ds) and not ds.is_snapshot:
                self.zfs.destroy(ds.name, recursive=True)
                stale += 1
        collected = self.collect_parked()
        return {"mounted": mounted, "stale_imports_removed": stale, "parked_images_destroyed": collected}

    def _ensure_dirs(self) -> None:
        if self._dirs_ready:
            return
        with self._dirs_lock:
            if self._dirs_ready:
                return
            pool = self.layout.pool
            if self.zfs.get(pool) is None:
                raise FailedPrecondition(f"pool {pool} is not imported; import it or fix [storage].pool",
                                         reason="POOL_NOT_FOUND", metadata={"pool": pool})
            found = self.zfs.get_many(self.layout.dirs(), MARKS)
            for d in self.layout.dirs():
                self._ensure_dir(d, found.get(d))
            self._dirs_ready = True

    def _ensure_dir(self, dataset: str, info: DatasetInfo | None, **marks: str) -> bool:
        """Create one of our directory datasets with our mark. Returns True if created."""
        if info is not None:
            if not is_ours(info):
                raise FailedPrecondition(
                    f"{dataset} exists but is not the agent's (no local {P_OWNER}={OWNER}); set that property "
                    "on it to hand it to the agent, or configure another [storage].parent",
                    reason="NOT_OURS", metadata={"dataset": dataset})
            return False
        try:
            self.zfs.create_filesystem(dataset, {P_OWNER: OWNER, P_TYPE: "dir", **marks})
            return True
        except AlreadyExists:   # created concurrently: check it is ours
            again = self.zfs.get(dataset, MARKS)
            if not is_ours(again):
                raise FailedPrecondition(f"{dataset} appeared concurrently and is not ours", reason="NOT_OURS")
            return False

    # -- pool and capabilities -----------------------------------------------------------

    def capabilities(self) -> tuple[str, ...]:
        """What this node's storage can do, as data: backend:<lzc|cli>, flavor:<...>, zvol, lz4, encryption..."""
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
        return tuple(sorted(feats))

    def pool_status(self) -> PoolStatus:
        """Health and capacity of the pool and of our parent. NotFound if the pool is not imported."""
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

    def pool_capacity(self) -> int:
        """Bytes datasets can use in the pool (used + available of its root), cached briefly."""
        at, value = self._capacity
        if value and time.monotonic() - at < _CAPACITY_TTL:
            return value
        root = self.zfs.get(self.layout.pool)
        value = (root.used + root.available) if root else 0
        self._capacity = (time.monotonic(), value)
        return value

    def _check_sizes(self, sizes: dict[str, int]) -> None:
        cap = self.pool_capacity()
        for field, value in sizes.items():
            if value < 0:
                raise InvalidArgument.for_field(field, "must not be negative")
            if cap and value > cap:
                raise InvalidArgument.for_field(field, f"{value} bytes exceeds the pool's capacity of {cap} bytes")

    # -- volumes ---------------------------------------------------------------------------------

    def ensure_volume(self, spec: VolumeSpec, *, wait_timeout: float | None = None) -> tuple[Volume, bool]:
        """Create the volume or converge it to `spec`. Returns (observed volume, changed).

        Idempotent. Immutable: kind, image_id, instance -> AlreadyExists when they differ.
        Convergent: refquota/quota/reservation (set again), BLOCK size (grow only), a
        filesystem left unmounted (mounted again). ROOT needs a READY image
        (FailedPrecondition IMAGE_NOT_FOUND); BLOCK needs zvols (FailedPrecondition
        NOT_SUPPORTED on zfs-fuse). Concurrent calls on one name wait (see module doc).
        """
        dataset = self.layout.volume(spec.team, spec.name)
        self._check_len(dataset, "spec.name")
        self._check_sizes({"spec.refquota_bytes": spec.refquota_bytes, "spec.quota_bytes": spec.quota_bytes,
                           "spec.reservation_bytes": spec.reservation_bytes, "spec.size_bytes": spec.size_bytes})
        if spec.kind == VolumeKind.BLOCK:
            if not self.zfs.supports("zvol"):
                raise FailedPrecondition(
                    f"BLOCK volumes need zvols, which this node's ZFS ({self.zfs.flavor}) cannot create; use a "
                    "FILESYSTEM volume or a node with the OpenZFS kernel module", reason="NOT_SUPPORTED",
                    metadata={"capability": "zvol"})
            if spec.size_bytes <= 0:
                raise InvalidArgument.for_field("spec.size_bytes", "is required for BLOCK volumes")
        if spec.kind == VolumeKind.ROOT and not spec.image_id:
            raise InvalidArgument.for_field("spec.image_id", "is required for ROOT volumes")
        if spec.kind != VolumeKind.ROOT and spec.image_id:
            raise InvalidArgument.for_field("spec.image_id", "is only allowed for ROOT volumes")
        timeout = self.wait_timeout if wait_timeout is None else wait_timeout
        with self.team_gate.shared(spec.team, timeout=timeout), \
                self.volume_locks.hold((spec.team, spec.name), wait=True, timeout=timeout):
            self._ensure_dirs()
            team_dir = self.layout.team(spec.team)
            if team_dir in self._teams and (spec.kind != VolumeKind.ROOT or spec.image_id in self._images_ok):
                # Fast path: the create itself is the existence check (ZFS refuses atomically
                # when the name exists; then we measure and converge below).
                try:
                    self._create_dataset(spec, dataset, self._volume_props(spec), None)
                    return self._observe(dataset), True
                except AlreadyExists:
                    pass
                except (NotFound, FailedPrecondition) as exc:
                    if exc.reason not in ("PARENT_NOT_FOUND", "IMAGE_NOT_FOUND"):
                        raise
                    # team or image gone behind our back (libzfs_core cannot tell which): measure
                    self._teams.discard(team_dir)
                    self._images_ok.discard(spec.image_id)
            names = [dataset]
            if team_dir not in self._teams:
                names.append(team_dir)
            if spec.kind == VolumeKind.ROOT:
                names.append(self.layout.image(spec.image_id))
            found = self.zfs.get_many(names, MARKS)          # one read for everything we check
            info = found.get(dataset)
            if info is None:
                self._create_volume(spec, dataset, found)
                return self._observe(dataset), True
            return self._converge(spec, info)

    def _volume_props(self, spec: VolumeSpec) -> dict[str, str | int]:
        props: dict[str, str | int] = {P_OWNER: OWNER, P_TYPE: "volume", P_KIND: spec.kind.value,
                                       P_TEAM: spec.team, P_NAME: spec.name}
        if spec.instance:
            props[P_INSTANCE] = spec.instance
        if spec.image_id:
            props[P_IMAGE] = spec.image_id
        if spec.refquota_bytes and spec.kind != VolumeKind.BLOCK:
            props["refquota"] = spec.refquota_bytes
        if spec.quota_bytes:
            props["quota"] = spec.quota_bytes
        if spec.reservation_bytes:
            props["reservation"] = spec.reservation_bytes
        return props

    def _create_volume(self, spec: VolumeSpec, dataset: str, found: dict[str, DatasetInfo]) -> None:
        team_dir = self.layout.team(spec.team)
        if team_dir not in self._teams:
            self._ensure_team_dir(spec.team, team_dir, found.get(team_dir))
        props = self._volume_props(spec)
        try:
            self._create_dataset(spec, dataset, props, found)
        except NotFound as exc:
            if exc.reason != "PARENT_NOT_FOUND":
                raise
            self._teams.discard(team_dir)          # removed behind our back: create it again, once
            self._ensure_team_dir(spec.team, team_dir, None)
            self._create_dataset(spec, dataset, props, found)

    def _ensure_team_dir(self, team: str, team_dir: str, info: DatasetInfo | None) -> None:
        """Create the team's directory once, even when volumes of a new team are created
        concurrently: zfs-fuse sets the properties of `zfs create -o` after the dataset
        appears, so a racing creator would see it without our mark (NOT_OURS)."""
        with self.team_locks.hold(team, wait=True, timeout=self.wait_timeout):
            if team_dir in self._teams:
                return
            if info is None or not is_ours(info):          # read again under the lock
                info = self.zfs.get(team_dir, MARKS)
            self._ensure_dir(team_dir, info, **{P_TEAM: team})
            self._teams.add(team_dir)

    def _create_dataset(self, spec: VolumeSpec, dataset: str, props: dict,
                        found: dict[str, DatasetInfo] | None) -> None:
        """Create the dataset. found=None: the image is known ours (cache), skip that check."""
        if spec.kind == VolumeKind.ROOT:
            base = self.layout.image_base(spec.image_id)
            if found is not None:
                if not is_ours(found.get(self.layout.image(spec.image_id))):
                    self._images_ok.discard(spec.image_id)
                    raise FailedPrecondition(f"image {spec.image_id} is not imported on this node; EnsureImage "
                                             "first", reason="IMAGE_NOT_FOUND", metadata={"image_id": spec.image_id})
                self._images_ok.add(spec.image_id)
            try:
                self.zfs.clone(base, dataset, props)
            except NotFound as exc:
                if exc.reason == "PARENT_NOT_FOUND":
                    raise
                self._images_ok.discard(spec.image_id)
                raise FailedPrecondition(f"image {spec.image_id} is not imported on this node (or was deleted "
                                         "meanwhile); EnsureImage first", reason="IMAGE_NOT_FOUND",
                                         metadata={"image_id": spec.image_id}) from None
        elif spec.kind == VolumeKind.FILESYSTEM:
            self.zfs.create_filesystem(dataset, props)
        else:
            self.zfs.create_zvol(dataset, spec.size_bytes, props)

    def _converge(self, spec: VolumeSpec, info: DatasetInfo) -> tuple[Volume, bool]:
        if not is_ours(info):
            raise FailedPrecondition(f"{info.name} exists and is not ours; it is left alone", reason="NOT_OURS",
                                     metadata={"dataset": info.name})
        marks = info.user_props
        diffs = []
        if marks.get(P_KIND) != spec.kind.value:
            diffs.append(f"kind is {marks.get(P_KIND)}, not {spec.kind.value}")
        if marks.get(P_IMAGE, "") != spec.image_id:
            diffs.append(f"image is {marks.get(P_IMAGE, '') or 'none'}, not {spec.image_id or 'none'}")
        if marks.get(P_INSTANCE, "") != spec.instance:
            diffs.append(f"instance is {marks.get(P_INSTANCE, '') or 'none'}, not {spec.instance or 'none'}")
        if diffs:
            raise AlreadyExists(f"volume {spec.team}/{spec.name} exists with another spec: {'; '.join(diffs)}",
                                reason="VOLUME_SPEC_MISMATCH", metadata={"dataset": info.name})
        changes: dict[str, int] = {}
        if spec.kind != VolumeKind.BLOCK and info.refquota != spec.refquota_bytes:
            changes["refquota"] = spec.refquota_bytes
        if info.quota != spec.quota_bytes:
            changes["quota"] = spec.quota_bytes
        if info.reservation != spec.reservation_bytes:
            changes["reservation"] = spec.reservation_bytes
        if spec.kind == VolumeKind.BLOCK and info.volsize != spec.size_bytes:
            if spec.size_bytes < info.volsize:
                raise FailedPrecondition(f"volume {spec.team}/{spec.name} is {info.volsize} bytes; shrinking a "
                                         "block volume would destroy data", reason="SHRINK_REFUSED")
            changes["volsize"] = spec.size_bytes
        changed = bool(changes)
        if changes:
            self.zfs.set_props(info.name, {k: (v if v else "none") for k, v in changes.items()})
        if (info.type == "filesystem" and not info.mounted and info.canmount == "on"
                and info.mountpoint.startswith("/")):      # mountpoint=none/legacy: the operator mounts
            self.zfs.mount(info.name)
            changed = True
        return self._observe(info.name), changed

    def diff_volume(self, spec: VolumeSpec) -> list[str]:
        """Differences between `spec` and the live volume ([] = in sync; ["absent"] if missing)."""
        return [d.detail for d in self.volume_drift(spec)]

    def volume_drift(self, spec: VolumeSpec) -> list[Drift]:
        """Differences between `spec` and the live volume as Drift items with reason codes
        (VOLUME_MISSING, NOT_OURS, KIND/IMAGE/INSTANCE_MISMATCH (not repairable),
        REFQUOTA/QUOTA/RESERVATION/VOLSIZE_DRIFT, NOT_MOUNTED). Read-only: one read.
        Repair = ensure_volume(spec)."""
        dataset = self.layout.volume(spec.team, spec.name)
        info = self.zfs.get(dataset, MARKS)
        if info is None:
            return [Drift("storage", dataset, "VOLUME_MISSING", "absent")]
        if not is_ours(info):
            return [Drift("storage", dataset, "NOT_OURS", "not ours", repairable=False)]
        out = []
        m = info.user_props
        for label, code, have, want, fix in (
                ("kind", "KIND_MISMATCH", m.get(P_KIND, ""), spec.kind.value, False),
                ("image_id", "IMAGE_MISMATCH", m.get(P_IMAGE, ""), spec.image_id, False),
                ("instance", "INSTANCE_MISMATCH", m.get(P_INSTANCE, ""), spec.instance, False),
                ("quota_bytes", "QUOTA_DRIFT", info.quota, spec.quota_bytes, True),
                ("reservation_bytes", "RESERVATION_DRIFT", info.reservation, spec.reservation_bytes, True)):
            if have != want:
                out.append(Drift("storage", dataset, code, f"{label}: live {have!r}, wanted {want!r}",
                                 str(want), str(have), fix))
        if spec.kind != VolumeKind.BLOCK and info.refquota != spec.refquota_bytes:
            out.append(Drift("storage", dataset, "REFQUOTA_DRIFT",
                             f"refquota_bytes: live {info.refquota}, wanted {spec.refquota_bytes}",
                             str(spec.refquota_bytes), str(info.refquota)))
        if spec.kind == VolumeKind.BLOCK and info.volsize != spec.size_bytes:
            out.append(Drift("storage", dataset, "VOLSIZE_DRIFT",
                             f"size_bytes: live {info.volsize}, wanted {spec.size_bytes}",
                             str(spec.size_bytes), str(info.volsize), spec.size_bytes > info.volsize))
        if info.type == "filesystem" and not info.mounted and info.mountpoint.startswith("/"):
            out.append(Drift("storage", dataset, "NOT_MOUNTED", "not mounted", "mounted", "unmounted"))
        return out

    def _observe(self, dataset: str) -> Volume:
        tree = self.zfs.list(dataset, MARKS)
        if not tree:
            raise NotFound(f"volume dataset {dataset} not found", reason="VOLUME_NOT_FOUND")
        return self._volume(tree[0], [d for d in tree[1:] if d.is_snapshot and d.dataset == dataset])

    def _volume(self, ds: DatasetInfo, snaps: Sequence[DatasetInfo]) -> Volume:
        m = ds.user_props
        kind = VolumeKind(m.get(P_KIND, "filesystem"))
        return Volume(team=m.get(P_TEAM, ""), name=m.get(P_NAME, ""), kind=kind, dataset=ds.name,
                      image_id=m.get(P_IMAGE, ""), instance=m.get(P_INSTANCE, ""),
                      mountpoint=ds.mountpoint if ds.type == "filesystem" else "", mounted=ds.mounted,
                      device=f"/dev/zvol/{ds.name}" if ds.type == "volume" else "",
                      refquota_bytes=ds.refquota, quota_bytes=ds.quota, reservation_bytes=ds.reservation,
                      size_bytes=ds.volsize, used_bytes=ds.used, available_bytes=ds.available,
                      referenced_bytes=ds.referenced, origin=ds.origin, created_unix=ds.creation,
                      snapshots=tuple(Snapshot(s.snapshot_name, s.used, s.referenced, s.creation)
                                      for s in sorted(snaps, key=lambda s: s.createtxg)))

    def get_volume(self, team: str, name: str) -> Volume:
        """The observed volume. NotFound if absent or not ours. One batched read."""
        dataset = self.layout.volume(team, name)
        tree = self.zfs.list(dataset, MARKS)
        if not tree or not is_ours(tree[0]):
            raise NotFound(f"volume {team}/{name} not found", reason="VOLUME_NOT_FOUND",
                           metadata={"dataset": dataset})
        return self._volume(tree[0], [d for d in tree[1:] if d.is_snapshot and d.dataset == dataset])

    def list_volumes(self, team: str = "", instance: str = "") -> list[Volume]:
        """Our volumes (of one team if given, of one instance if given): one `zfs get -r`."""
        root = self.layout.team(team) if team else self.layout.instances
        tree = self.zfs.list(root, MARKS)
        snaps: dict[str, list[DatasetInfo]] = {}
        for d in tree:
            if d.is_snapshot:
                snaps.setdefault(d.dataset, []).append(d)
        out = []
        for d in tree:
            if d.is_snapshot or not is_ours(d) or d.user_props.get(P_TYPE) != "volume":
                continue
            if instance and d.user_props.get(P_INSTANCE) != instance:
                continue
            out.append(self._volume(d, snaps.get(d.name, [])))
        return out

    def inventory(self) -> list[OwnedDataset]:
        """Every dataset of ours under the parent with its marks (for GarbageCollect). One read."""
        return [OwnedDataset(d.name, dict(d.user_props)) for d in self.zfs.list(self.layout.parent, MARKS)
                if not d.is_snapshot and is_ours(d)]

    def _owned_volume(self, team: str, name: str) -> DatasetInfo | None:
        info = self.zfs.get(self.layout.volume(team, name), MARKS)
        if info is not None and not is_ours(info):
            raise FailedPrecondition(f"{info.name} is not ours; it is left alone", reason="NOT_OURS",
                                     metadata={"dataset": info.name})
        return info

    def _require_volume(self, team: str, name: str) -> DatasetInfo:
        info = self._owned_volume(team, name)
        if info is None:
            raise NotFound(f"volume {team}/{name} not found", reason="VOLUME_NOT_FOUND")
        return info

    def resize_volume(self, team: str, name: str, *, refquota_bytes: int | None = None,
                      quota_bytes: int | None = None, reservation_bytes: int | None = None,
                      size_bytes: int | None = None, wait_timeout: float | None = None) -> tuple[Volume, bool]:
        """Change the given limits (None = leave; 0 = remove the limit). Returns (volume, changed).
        Idempotent. NotFound; FailedPrecondition BELOW_USED when a limit is under what is used,
        SHRINK_REFUSED for a smaller BLOCK size; ResourceExhausted for a reservation the pool lacks."""
        sizes = {k: v for k, v in (("refquota_bytes", refquota_bytes), ("quota_bytes", quota_bytes),
                                   ("reservation_bytes", reservation_bytes), ("size_bytes", size_bytes))
                 if v is not None}
        self._check_sizes(sizes)
        with self.volume_locks.hold((team, name), wait=True,
                                    timeout=self.wait_timeout if wait_timeout is None else wait_timeout):
            info = self._require_volume(team, name)
            block = info.type == "volume"
            changes: dict[str, int] = {}
            if refquota_bytes is not None and not block and info.refquota != refquota_bytes:
                changes["refquota"] = refquota_bytes
            if quota_bytes is not None and info.quota != quota_bytes:
                changes["quota"] = quota_bytes
            if reservation_bytes is not None and info.reservation != reservation_bytes:
                changes["reservation"] = reservation_bytes
            if size_bytes is not None:
                if not block:
                    raise InvalidArgument.for_field("size_bytes", "only BLOCK volumes have a size; use refquota_bytes")
                if size_bytes < info.volsize:
                    raise FailedPrecondition("shrinking a block volume would destroy data", reason="SHRINK_REFUSED")
                if size_bytes != info.volsize:
                    changes["volsize"] = size_bytes
            if changes:
                self.zfs.set_props(info.name, {k: (v if v else "none") for k, v in changes.items()})
            return self._observe(info.name), bool(changes)

    # -- for the instance plane (public; it never reaches the backend) -------------------

    def check_dataset_name(self, dataset: str, field: str) -> None:
        """Pure check of a dataset name computed before anything exists: it must leave room for
        any snapshot name within ZFS's name limit. Raises InvalidArgument naming `field`."""
        self._check_len(dataset, field)

    def supports(self, feature: str) -> bool:
        """Whether this node's ZFS can do `feature` ("zvol", "lz4", ...), as probed. No I/O."""
        return self.zfs.supports(feature)

    @property
    def flavor(self) -> str:
        """This node's ZFS implementation: "openzfs" | "zfs-fuse"."""
        return self.zfs.flavor
