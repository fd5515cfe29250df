"""Shifted image variants: the roots of unprivileged instances where the pool's
filesystem cannot do idmapped mounts (zfs-fuse; OpenZFS < 2.2).

A variant is made ONCE per (image, map), then every root with that map is an
instant clone of its @base (no copy per instance):

    images/<id>@base --clone--> tmp/<id>_<map>-<tag>   (marked tmp: a crash leaves only this,
                                                         removed at the next start)
        shift the rootfs into the map (drivers/idmap.shift_tree), mark it a variant,
        read-only, snapshot @base, unmount it (only its clones are read),
        rename -> variants/<id>_<map>   (the rename is the commit)

A variant belongs to its image: deleting the image destroys its unused
variants and parks the others under deleted/variants/ (destroyed with their
last clone, then the parked image with its last variant). One whose origin is
no longer its image's @base (a crash between parking the image and its
variants) is parked when next needed and made again.
"""
from __future__ import annotations

import logging
import os
import secrets
from contextlib import contextmanager
from typing import Callable, Iterator

from agent.drivers import idmap as idmap_driver
from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.errors import FailedPrecondition
from agent.model.idmap import IdMap
from agent.model.marks import TYPE_TMP, TYPE_VARIANT
from agent.services.locks import KeyedLocks

from .directories import Directories
from .tmp import building
from .layout import Layout, is_ours
from .model import (BASE_SNAPSHOT, MARKS, OWNER, P_IDMAP, P_IMAGE, P_NAME, P_OWNER, P_ROOTFS, P_TYPE,
                    ImageVariant)

log = logging.getLogger(__name__)
Shift = Callable[[str, IdMap], object]


class Variants:
    """The shifted variants of one layout's images."""

    def __init__(self, zfs: ZfsBackend, layout: Layout, dirs: Directories, *, wait_timeout: float,
                 shift: Shift = idmap_driver.shift_tree) -> None:
        self.zfs, self.layout, self.dirs = zfs, layout, dirs
        self.wait_timeout = wait_timeout
        self.shift = shift
        self._locks = KeyedLocks("image variant")

    @contextmanager
    def base_for(self, image_id: str, rootfs: str, idmap: IdMap, wait_timeout: float | None = None) -> Iterator[str]:
        """Hold the variant of image `image_id` (ours, READY; `rootfs` its P_ROOTFS subdirectory)
        for `idmap` and yield its @base snapshot,
        made first when absent (clone + shift + snapshot, crash-safe). Concurrent callers for
        the same variant wait (DeadlineExceeded past wait_timeout); the variant cannot be
        destroyed while held. Raises FailedPrecondition NOT_OURS (a dataset of the variant's
        name is not ours), the shift's translated OSError, the backend's errors."""
        key = self.layout.variant(image_id, idmap)
        with self._locks.hold(key, wait=True, timeout=self.wait_timeout if wait_timeout is None else wait_timeout):
            yield self._ensure(image_id, rootfs, idmap)

    def _ensure(self, image_id: str, sub: str, idmap: IdMap) -> str:
        name = self.layout.variant(image_id, idmap)
        image_base = self.layout.image_base(image_id)
        base = f"{name}@{BASE_SNAPSHOT}"
        info = self.zfs.get(name, MARKS)
        if info is not None:
            if not is_ours(info):
                raise FailedPrecondition(f"{name} exists and is not ours; it is left alone", reason="NOT_OURS",
                                         metadata={"dataset": name})
            if info.origin == image_base and self.zfs.exists(base):
                return base
            log.warning("variant %s is not of the current image %s (origin %s): parking it", name, image_id,
                        info.origin or "-")
            self._park(info)
        self.dirs.ensure()
        tmp = f"{self.layout.tmp}/{image_id}_{idmap.suffix()}-{secrets.token_hex(4)}"
        self.zfs.clone(image_base, tmp, {P_OWNER: OWNER, P_TYPE: TYPE_TMP, P_NAME: image_id})
        with building(self.zfs, tmp, "variant"):
            mounted = self.zfs.get(tmp)
            assert mounted is not None, f"{tmp} vanished right after its creation"
            self.shift(os.path.join(mounted.mountpoint, sub) if sub else mounted.mountpoint, idmap)
            marks = {P_TYPE: TYPE_VARIANT, P_IMAGE: image_id, P_IDMAP: idmap.mark(), "readonly": "on"}
            if sub:
                marks[P_ROOTFS] = sub
            self.zfs.set_props(tmp, marks)
            self.zfs.snapshot([f"{tmp}@{BASE_SNAPSHOT}"])
            # nothing reads a variant but its clones: unmounted, no other mount namespace can pin it (a
            # later park or destroy would stay "busy"). Not canmount=off: zfs-fuse then calls the
            # dataset busy for ~15 s (measured); a restart's `zfs mount -a` mounts it again, harmlessly.
            self.zfs.retry_busy(lambda: self.zfs.unmount(tmp, mounted.mountpoint), f"unmount {tmp}")
            self.zfs.rename(tmp, name)
        log.info("image %s: variant %s made for map %s", image_id, name, idmap.mark())
        return base

    # -- an image's variants ---------------------------------------------------------------
    def of_image(self, image_id: str) -> list[DatasetInfo]:
        """The variants (ours, under variants/) of `image_id`. One read; read-only."""
        return [d for d in self.zfs.list(self.layout.variants, MARKS, depth=1)
                if d.name != self.layout.variants and not d.is_snapshot and is_ours(d)
                and d.user_props.get(P_TYPE) == TYPE_VARIANT and d.user_props.get(P_IMAGE) == image_id]

    def describe(self, variants: list[DatasetInfo], counts: dict[str, int]) -> tuple[ImageVariant, ...]:
        """ImageVariant views (counts: origin snapshot -> clones). Pure."""
        out = []
        for d in variants:
            m = IdMap.from_mark(d.user_props.get(P_IDMAP, ""))
            if m is not None:
                base = f"{d.name}@{BASE_SNAPSHOT}"
                out.append(ImageVariant(m, d.name, base, counts.get(base, 0)))
        return tuple(sorted(out, key=lambda v: v.dataset))

    def retire(self, image_id: str) -> None:
        """The image is being deleted: destroy its unused variants, park the ones with clones
        under deleted/variants/. Idempotent. Raises the backend's errors (a variant held by a
        volume creation is waited for, bounded)."""
        for d in self.of_image(image_id):
            with self._locks.hold(d.name, wait=True, timeout=self.wait_timeout):
                self._park(d)

    def _park(self, d: DatasetInfo) -> None:
        try:
            self.zfs.destroy(d.name, recursive=True)
            return
        except FailedPrecondition as exc:
            if exc.reason != "HAS_DEPENDENTS":
                raise
        self.dirs.ensure()
        parked = f"{self.layout.deleted_variants}/{d.name.rsplit('/', 1)[-1]}-{secrets.token_hex(4)}"
        self.zfs.rename(d.name, parked)
        log.info("variant %s has clones; parked as %s", d.name, parked)
