"""Volumes: creation (a clone of an image's @base, or of its shifted variant's for a
root with a uid/gid map where idmapped mounts are missing; an empty filesystem; a zvol;
a filesystem holding a sparse raw disk file) and convergence to a spec, and resizes.

Concurrency (volume_locks.py): a second operation on the same (team, name) WAITS for
the first and then measures again: two concurrent EnsureVolume of one name -> one
creates, the other returns the same volume with changed=false. Creations hold their
team's gate shared: a whole-team destroy (volume_deletes.py) excludes them.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from typing import ContextManager

from agent.drivers import diskfile
from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.model.idmap import MODE_SHIFTED
from agent.model.marks import TYPE_VOLUME

from .directories import Directories
from .images import Images
from .layout import Layout, check_name_length, is_ours
from .model import (DISK_FILE, MARKS, OWNER, P_IDMAP, P_IDMAP_MODE, P_IMAGE, P_INSTANCE, P_KIND, P_NAME, P_OWNER,
                    P_ROOTFS, P_TEAM, P_TYPE, Volume, VolumeKind, VolumeSpec)
from .pool import Pool
from .variants import Variants
from .volume_locks import VolumeLocks
from .volume_reads import VolumeReads


class Volumes:
    """Creates and changes the volumes of one layout."""

    def __init__(self, zfs: ZfsBackend, layout: Layout, *, dirs: Directories, images: Images, pool: Pool,
                 reads: VolumeReads, locks: VolumeLocks, variants: Variants) -> None:
        self.zfs, self.layout, self.dirs, self.images = zfs, layout, dirs, images
        self.pool, self.reads, self.locks, self.variants = pool, reads, locks, variants

    def ensure_volume(self, spec: VolumeSpec, *, wait_timeout: float | None = None) -> tuple[Volume, bool]:
        """Create the volume or converge it to `spec`. Returns (observed volume, changed).

        Idempotent. Immutable: kind, image_id, instance -> AlreadyExists VOLUME_SPEC_MISMATCH
        when they differ. Convergent: refquota/quota/reservation (set again), BLOCK size
        (grow only, else FailedPrecondition SHRINK_REFUSED), a filesystem left unmounted
        (mounted again), a DISK_FILE's file (created, grown; never shrunk: SHRINK_REFUSED).
        ROOT needs a READY image (FailedPrecondition IMAGE_NOT_FOUND); BLOCK needs zvols
        (FailedPrecondition NOT_SUPPORTED on zfs-fuse). A ROOT with a map (immutable) is a
        clone of the image's shifted variant (made first when absent) where idmapped mounts
        are missing, else a plain clone marked for an idmapped mount. A dataset of that name
        that is not ours: FailedPrecondition NOT_OURS. InvalidArgument for a bad name length,
        size or map. Concurrent calls on one name wait (DeadlineExceeded past wait_timeout).
        """
        dataset = self.layout.volume(spec.team, spec.name)
        check_name_length(dataset, "spec.name")
        self.pool.check_sizes({"spec.refquota_bytes": spec.refquota_bytes, "spec.quota_bytes": spec.quota_bytes,
                               "spec.reservation_bytes": spec.reservation_bytes, "spec.size_bytes": spec.size_bytes})
        self._check_kind(spec)
        with self.locks.creating_in(spec.team, wait_timeout), self.locks.volume(spec.team, spec.name, wait_timeout):
            self.dirs.ensure()
            if self.dirs.team_known(spec.team) and (spec.kind != VolumeKind.ROOT
                                                    or self.images.known_ready(spec.image_id)) \
                    and spec.kind != VolumeKind.DISK_FILE:
                # Fast path: the create itself is the existence check (ZFS refuses atomically
                # when the name exists; then we measure and converge below).
                try:
                    self._create_dataset(spec, dataset, self._props(spec), None)
                    return self.reads.observe(dataset), True
                except AlreadyExists:
                    pass
                except (NotFound, FailedPrecondition) as exc:
                    if exc.reason not in ("PARENT_NOT_FOUND", "IMAGE_NOT_FOUND"):
                        raise
                    # team or image gone behind our back (libzfs_core cannot tell which): measure
                    self.dirs.forget_team(spec.team)
                    self.images.forget(spec.image_id)
            team_dir = self.layout.team(spec.team)
            names = [dataset]
            if not self.dirs.team_known(spec.team):
                names.append(team_dir)
            if spec.kind == VolumeKind.ROOT:
                names.append(self.layout.image(spec.image_id))
            found = self.zfs.get_many(names, MARKS)          # one read for everything we check
            info = found.get(dataset)
            if info is None:
                self._create(spec, dataset, found)
                return self.reads.observe(dataset), True
            return self._converge(spec, info)

    def _check_kind(self, spec: VolumeSpec) -> None:
        if spec.idmap is not None:
            if spec.kind != VolumeKind.ROOT:
                raise InvalidArgument.for_field("spec.idmap", "only ROOT volumes take a uid/gid map")
            for f, why in spec.idmap.problems():
                raise InvalidArgument.for_field(f"spec.idmap.{f}", why)
        if spec.kind == VolumeKind.DISK_FILE and spec.size_bytes <= 0:
            raise InvalidArgument.for_field("spec.size_bytes", "is required for DISK_FILE volumes")
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

    def _props(self, spec: VolumeSpec) -> dict[str, str | int]:
        props: dict[str, str | int] = {P_OWNER: OWNER, P_TYPE: TYPE_VOLUME, P_KIND: spec.kind.value,
                                       P_TEAM: spec.team, P_NAME: spec.name}
        if spec.instance:
            props[P_INSTANCE] = spec.instance
        if spec.image_id:
            props[P_IMAGE] = spec.image_id
            if self.images.rootfs_of(spec.image_id):
                props[P_ROOTFS] = self.images.rootfs_of(spec.image_id)
        if spec.idmap is not None:
            props[P_IDMAP] = spec.idmap.mark()
            props[P_IDMAP_MODE] = self.pool.idmap_mode()
        if spec.refquota_bytes and spec.kind != VolumeKind.BLOCK:
            props["refquota"] = spec.refquota_bytes
        if spec.quota_bytes:
            props["quota"] = spec.quota_bytes
        if spec.reservation_bytes:
            props["reservation"] = spec.reservation_bytes
        return props

    def _create(self, spec: VolumeSpec, dataset: str, found: dict[str, DatasetInfo]) -> None:
        if not self.dirs.team_known(spec.team):
            self.dirs.ensure_team(spec.team, found.get(self.layout.team(spec.team)))
        try:
            self._create_dataset(spec, dataset, None, found)
        except NotFound as exc:
            if exc.reason != "PARENT_NOT_FOUND":
                raise
            self.dirs.forget_team(spec.team)          # removed behind our back: create it again, once
            self.dirs.ensure_team(spec.team, None)
            self._create_dataset(spec, dataset, None, found)

    def _create_dataset(self, spec: VolumeSpec, dataset: str, props: dict | None,
                        found: dict[str, DatasetInfo] | None) -> None:
        """Create the dataset (props None: computed here, after the image check). found=None:
        the image is known ours (cache), skip that check."""
        if spec.kind == VolumeKind.ROOT:
            if found is not None:
                image = found.get(self.layout.image(spec.image_id))
                if not is_ours(image):
                    self.images.forget(spec.image_id)
                    raise FailedPrecondition(f"image {spec.image_id} is not imported on this node; EnsureImage "
                                             "first", reason="IMAGE_NOT_FOUND", metadata={"image_id": spec.image_id})
                self.images.remember_ready(spec.image_id, image.user_props.get(P_ROOTFS, ""))
            props = props or self._props(spec)
            shifted = spec.idmap is not None and props.get(P_IDMAP_MODE) == MODE_SHIFTED
            try:
                with self._origin(spec, shifted) as origin:
                    self.zfs.clone(origin, dataset, props)
            except NotFound as exc:
                if exc.reason == "PARENT_NOT_FOUND":
                    raise
                self.images.forget(spec.image_id)
                raise FailedPrecondition(f"image {spec.image_id} is not imported on this node (or was deleted "
                                         "meanwhile); EnsureImage first", reason="IMAGE_NOT_FOUND",
                                         metadata={"image_id": spec.image_id}) from None
        elif spec.kind in (VolumeKind.FILESYSTEM, VolumeKind.DISK_FILE):
            self.zfs.create_filesystem(dataset, props or self._props(spec))
            if spec.kind == VolumeKind.DISK_FILE:
                self._disk_file(dataset, spec.size_bytes)
        else:
            self.zfs.create_zvol(dataset, spec.size_bytes, props or self._props(spec))

    def _origin(self, spec: VolumeSpec, shifted: bool) -> ContextManager[str]:
        """A context yielding the snapshot a ROOT is cloned from: the image's @base, or its
        variant's for `spec.idmap` (held, made first when absent)."""
        if not shifted:
            return nullcontext(self.layout.image_base(spec.image_id))
        assert spec.idmap is not None
        return self.variants.base_for(spec.image_id, self.images.rootfs_of(spec.image_id), spec.idmap)

    def _disk_file(self, dataset: str, size: int) -> bool:
        """Create or grow the raw disk file of a DISK_FILE volume (its dataset mounted). Changed?"""
        info = self.zfs.get(dataset)
        if info is None or not info.mounted:
            raise FailedPrecondition(f"{dataset} is not mounted: cannot write its disk file", reason="NOT_MOUNTED",
                                     metadata={"dataset": dataset})
        return diskfile.ensure(os.path.join(info.mountpoint, DISK_FILE), size)

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
        if marks.get(P_IDMAP, "") != (spec.idmap.mark() if spec.idmap else ""):
            diffs.append(f"uid/gid map is {marks.get(P_IDMAP, '') or 'none'}, not "
                         f"{spec.idmap.mark() if spec.idmap else 'none'}")
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
        changed = self._set_limits(info, changes)
        if (info.type == "filesystem" and not info.mounted and info.canmount == "on"
                and info.mountpoint.startswith("/")):      # mountpoint=none/legacy: the operator mounts
            self.zfs.mount(info.name)
            changed = True
        if spec.kind == VolumeKind.DISK_FILE:
            have = diskfile.size(os.path.join(info.mountpoint, DISK_FILE)) or 0
            if spec.size_bytes < have:
                raise FailedPrecondition(f"volume {spec.team}/{spec.name}'s disk file is {have} bytes; shrinking it "
                                         "would destroy data", reason="SHRINK_REFUSED")
            changed |= self._disk_file(info.name, spec.size_bytes)
        return self.reads.observe(info.name), changed

    def _set_limits(self, info: DatasetInfo, changes: dict[str, int]) -> bool:
        """Set the changed limits (0 = remove the limit). Returns whether anything changed."""
        if changes:
            self.zfs.set_props(info.name, {k: (v if v else "none") for k, v in changes.items()})
        return bool(changes)

    def resize_volume(self, team: str, name: str, *, refquota_bytes: int | None = None,
                      quota_bytes: int | None = None, reservation_bytes: int | None = None,
                      size_bytes: int | None = None, wait_timeout: float | None = None) -> tuple[Volume, bool]:
        """Change the given limits (None = leave; 0 = remove the limit). Returns (volume, changed).
        Idempotent. NotFound VOLUME_NOT_FOUND; FailedPrecondition NOT_OURS, BELOW_USED when a
        limit is under what is used, SHRINK_REFUSED for a smaller BLOCK size; InvalidArgument
        (a size on a filesystem, a negative or too large value); ResourceExhausted for a
        reservation the pool lacks."""
        sizes = {k: v for k, v in (("refquota_bytes", refquota_bytes), ("quota_bytes", quota_bytes),
                                   ("reservation_bytes", reservation_bytes), ("size_bytes", size_bytes))
                 if v is not None}
        self.pool.check_sizes(sizes)
        with self.locks.volume(team, name, wait_timeout):
            info = self.reads.required(team, name)
            block = info.type == "volume"
            disk = info.user_props.get(P_KIND) == VolumeKind.DISK_FILE.value
            changes: dict[str, int] = {}
            if refquota_bytes is not None and not block and info.refquota != refquota_bytes:
                changes["refquota"] = refquota_bytes
            if quota_bytes is not None and info.quota != quota_bytes:
                changes["quota"] = quota_bytes
            if reservation_bytes is not None and info.reservation != reservation_bytes:
                changes["reservation"] = reservation_bytes
            grown = False
            if size_bytes is not None and disk:
                have = diskfile.size(os.path.join(info.mountpoint, DISK_FILE)) or 0
                if size_bytes < have:
                    raise FailedPrecondition("shrinking a disk file would destroy data", reason="SHRINK_REFUSED")
                grown = self._disk_file(info.name, size_bytes)
            elif size_bytes is not None:
                if not block:
                    raise InvalidArgument.for_field("size_bytes", "only BLOCK and DISK_FILE volumes have a size; use "
                                                                  "refquota_bytes")
                if size_bytes < info.volsize:
                    raise FailedPrecondition("shrinking a block volume would destroy data", reason="SHRINK_REFUSED")
                if size_bytes != info.volsize:
                    changes["volsize"] = size_bytes
            changed = self._set_limits(info, changes) or grown
            return self.reads.observe(info.name), changed
