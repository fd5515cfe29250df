"""Images: import from a stream or files on the node into <parent>/tmp/ (renamed
into images/ once verified, ending with a read-only @base snapshot; formats and
steps in image_import.py), their shifted variants (variants.py), parking of images
deleted while clones live, and their collection.

A second EnsureImage/DeleteImage of the same id while one runs gets ABORTED at once
(imports stream for a long time; waiting makes no sense)."""
from __future__ import annotations

import logging
import os
import secrets
from typing import Callable, Iterable, Iterator, Sequence

from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.errors import (AlreadyExists, FailedPrecondition, InvalidArgument,
                          NotFound, from_oserror)
from agent.model.marks import TYPE_IMAGE, TYPE_TMP
from agent.services.locks import KeyedLocks

from . import image_import, lxd_image
from .directories import Directories
from .tmp import building
from .image_import import ImportRequest
from .layout import Layout, check_name_length, is_ours
from .model import (BASE_SNAPSHOT, IMAGE_MARKS, MARKS, OWNER, P_FORMAT, P_METADATA, P_NAME, P_OWNER, P_ROOTFS,
                    P_SHA256, P_TYPE, Image, ImageFormat, ImageState, ImportProgress)
from .variants import Variants

log = logging.getLogger(__name__)


class Images:
    """The images of one layout, and which of them are known READY (saves a read per clone)."""

    def __init__(self, zfs: ZfsBackend, layout: Layout, dirs: Directories, variants: Variants, *,
                 allow_device_nodes: bool) -> None:
        self.zfs = zfs
        self.layout = layout
        self.dirs = dirs
        self.variants = variants
        self.allow_device_nodes = allow_device_nodes    # extract device nodes from tarballs (root only)
        self._locks = KeyedLocks("image")
        self._ready: dict[str, str] = {}                # image ids known ours and READY -> their P_ROOTFS

    def known_ready(self, image_id: str) -> bool:
        """True when the image is known ours and READY without a read."""
        return image_id in self._ready

    def rootfs_of(self, image_id: str) -> str:
        """The rootfs subdirectory of an image known READY ("" = its root). Pure (the cache)."""
        return self._ready.get(image_id, "")

    def remember_ready(self, image_id: str, rootfs: str = "") -> None:
        """A read (or a clone) just showed the image ours and READY, its rootfs in `rootfs`."""
        self._ready[image_id] = rootfs

    def forget(self, image_id: str) -> None:
        """The image may be gone: read it again next time."""
        self._ready.pop(image_id, None)

    def get_image(self, image_id: str) -> Image:
        """The image `image_id` (READY) with its metadata and variants. NotFound if absent
        (parked images are not returned)."""
        info = self.zfs.get(self.layout.image(image_id), IMAGE_MARKS)
        if not is_ours(info):
            raise NotFound(f"image {image_id} not found", reason="IMAGE_NOT_FOUND", metadata={"image_id": image_id})
        counts = self._clone_counts()
        return self._image(info, counts, self.variants.of_image(image_id))

    def list_images(self, include_parked: bool = False) -> list[Image]:
        """All images (and parked ones if asked), two batched reads. Idempotent, read-only."""
        counts = self._clone_counts()
        variants = [d for d in self.zfs.list(self.layout.variants, MARKS, depth=1)
                    if d.name != self.layout.variants and not d.is_snapshot and is_ours(d)]
        out = []
        roots = [self.layout.images] + ([self.layout.deleted_images] if include_parked else [])
        for root in roots:
            for ds in self.zfs.list(root, IMAGE_MARKS, depth=1):
                if ds.name != root and not ds.is_snapshot and is_ours(ds) and ds.user_props.get(P_TYPE) == TYPE_IMAGE:
                    mine = [v for v in variants if v.origin == f"{ds.name}@{BASE_SNAPSHOT}"]
                    out.append(self._image(ds, counts, mine))
        return out

    def _clone_counts(self) -> dict[str, int]:
        """origin snapshot -> how many volumes are its clones (one read)."""
        counts: dict[str, int] = {}
        for origin in self.zfs.origins(self.layout.instances).values():
            counts[origin] = counts.get(origin, 0) + 1
        return counts

    def _image(self, ds: DatasetInfo, counts: dict[str, int], variants: Sequence[DatasetInfo] = ()) -> Image:
        base = f"{ds.name}@{BASE_SNAPSHOT}"
        m = ds.user_props
        state = ImageState.PARKED if self.layout.is_parked(ds.name) else ImageState.READY
        try:
            fmt = ImageFormat(m.get(P_FORMAT) or ImageFormat.ROOTFS_TARBALL.value)
        except ValueError:
            fmt = ImageFormat.ROOTFS_TARBALL
        sub = m.get(P_ROOTFS, "")
        return Image(image_id=m.get(P_NAME, ds.name.rsplit("/", 1)[-1]), dataset=ds.name,
                     state=state, sha256=m.get(P_SHA256, ""), base_snapshot=base,
                     mountpoint=ds.mountpoint, used_bytes=ds.used, referenced_bytes=ds.referenced,
                     clones=counts.get(base, 0), created_unix=ds.creation, format=fmt,
                     metadata=lxd_image.metadata_from_mark(m.get(P_METADATA, "")),
                     rootfs=f"{ds.mountpoint}/{sub}" if sub and ds.mountpoint.startswith("/") else ds.mountpoint,
                     variants=self.variants.describe(list(variants), counts))

    def ensure_image(self, image_id: str, sha256: str, chunks: Iterator[bytes] | None = None, *,
                     local_path: str = "", size_bytes: int = 0,
                     progress: Callable[[ImportProgress], None] | None = None,
                     fmt: ImageFormat | None = None, metadata_size: int = 0,
                     rootfs_local_path: str = "") -> tuple[Image, bool]:
        """Import an image (streamed `chunks`, or files on the node: `local_path`, plus
        `rootfs_local_path` for a split image) in format `fmt` (None: detect; image_import.py)
        and end with a read-only @base snapshot. Returns (image, changed).

        Idempotent: an image with this id and the same sha256 -> (image, False) without
        reading the stream. Same id, other sha256 -> AlreadyExists. The upload goes into
        <parent>/tmp/ and is renamed into images/ only after the sha256 (and size_bytes,
        if given) matched: a mismatch -> DataLoss, an unreadable or unsafe archive ->
        InvalidArgument; nothing is left behind on any failure. A second import of the same
        id while one runs -> Aborted. sha256 may be empty only with local_path (then it is
        computed). FailedPrecondition NOT_OURS (a dataset of that name is not ours),
        IMAGE_INCOMPLETE (it has no @base: delete it and import again).
        """
        sha256 = sha256.lower()
        if local_path and not os.path.isfile(local_path):
            raise InvalidArgument.for_field("header.local_path", f"{local_path} is not a regular file on this node")
        if rootfs_local_path and not os.path.isfile(rootfs_local_path):
            raise InvalidArgument.for_field("header.rootfs_local_path",
                                            f"{rootfs_local_path} is not a regular file on this node")
        req = ImportRequest(image_id, sha256, size_bytes, fmt, metadata_size, local_path, rootfs_local_path)
        with self._locks.hold(image_id):
            self.dirs.ensure()
            dataset = self.layout.image(image_id)
            check_name_length(dataset, "image_id")
            existing = self.zfs.get(dataset, IMAGE_MARKS)
            if existing is not None:
                if not is_ours(existing):
                    raise FailedPrecondition(f"{dataset} exists and is not ours", reason="NOT_OURS")
                have = existing.user_props.get(P_SHA256, "")
                if local_path and not sha256:
                    try:
                        sha256 = _sha256_chunks(req.local_chunks())
                    except OSError as exc:
                        raise from_oserror(exc, f"read {local_path}") from None
                if have != sha256:
                    raise AlreadyExists(f"image {image_id} exists with sha256 {have}, not {sha256}; delete it "
                                        "first or use another id", reason="IMAGE_SHA256_MISMATCH",
                                        metadata={"image_id": image_id, "sha256": have})
                if self.zfs.get(f"{dataset}@{BASE_SNAPSHOT}") is not None:
                    return self._image(existing, self._clone_counts(), self.variants.of_image(image_id)), False
                raise FailedPrecondition(f"image {image_id} has no @{BASE_SNAPSHOT} snapshot; delete it and "
                                         "import again", reason="IMAGE_INCOMPLETE")
            if local_path:
                try:
                    os.stat(local_path)
                    chunks = req.local_chunks()
                except OSError as exc:
                    raise from_oserror(exc, f"read {local_path}") from None
            if chunks is None:
                raise InvalidArgument.for_field("chunks", "no tarball data was given")
            return self._import(req, chunks, progress), True

    def _import(self, req: ImportRequest, chunks: Iterator[bytes],
                progress: Callable[[ImportProgress], None] | None) -> Image:
        image_id = req.image_id
        tmp = f"{self.layout.tmp}/{image_id}-{secrets.token_hex(4)}"
        marks = {P_OWNER: OWNER, P_TYPE: TYPE_TMP, P_NAME: image_id}
        self.zfs.create_filesystem(tmp, marks)
        with building(self.zfs, tmp, "import"):
            info = self.zfs.get(tmp)
            assert info is not None, f"{tmp} vanished right after its creation"
            found = image_import.import_into(self.zfs, req, chunks, info.mountpoint,
                                             allow_devices=self.allow_device_nodes, progress=progress)
            image_import.finish(self.zfs, tmp, self.layout.image(image_id), found)
            self._ready[image_id] = found.get(P_ROOTFS, "")
        imported = self.zfs.get(self.layout.image(image_id), IMAGE_MARKS)
        assert imported is not None, f"image {image_id} vanished right after its import"
        return self._image(imported, {})

    def delete_image(self, image_id: str) -> ImageState:
        """Delete image `image_id`. Returns ABSENT when it is gone (or never was), PARKED when
        clones still live: it is renamed under deleted/ and destroyed with its last clone.
        Idempotent. Aborted if an import of that id is running; FailedPrecondition if not ours."""
        with self._locks.hold(image_id):
            self._ready.pop(image_id, None)
            dataset = self.layout.image(image_id)
            info = self.zfs.get(dataset, MARKS)
            if info is None:
                return ImageState.ABSENT
            if not is_ours(info):
                raise FailedPrecondition(f"{dataset} is not ours", reason="NOT_OURS")
            self.variants.retire(image_id)          # unused ones go, the others are parked
            try:
                self.zfs.destroy(dataset, recursive=True)
                return ImageState.ABSENT
            except FailedPrecondition as exc:
                if exc.reason != "HAS_DEPENDENTS":
                    raise
            self.dirs.ensure()
            parked = f"{self.layout.deleted_images}/{image_id}-{secrets.token_hex(4)}"
            self.zfs.rename(dataset, parked)
            log.info("image %s has clones; parked as %s", image_id, parked)
            return ImageState.PARKED

    def collect_parked(self, only: Iterable[str] | None = None) -> int:
        """Destroy parked variants and images that no clone uses any more (`only`: just these
        datasets, and then the parked image a destroyed variant came from); one still cloned or
        busy is left for later. Returns how many were destroyed. Idempotent."""
        if only is not None:
            candidates = list(only)
        else:
            candidates = [ds.name for root in (self.layout.deleted_variants, self.layout.deleted_images)
                          for ds in self.zfs.list(root, MARKS, depth=1)
                          if ds.name != root and not ds.is_snapshot and is_ours(ds)]
        destroyed = 0
        while candidates:
            name = candidates.pop(0)
            info = self.zfs.get(name, MARKS)
            if not is_ours(info) or not self.layout.is_parked(name):
                continue
            try:
                if self.zfs.destroy(name, recursive=True):
                    destroyed += 1
            except FailedPrecondition as exc:
                if exc.reason not in ("HAS_DEPENDENTS", "DATASET_BUSY"):
                    raise
                continue
            parent = info.origin.split("@", 1)[0]
            if parent and self.layout.is_parked(parent) and parent not in candidates:
                candidates.append(parent)          # a parked variant's parked image may be free now
        return destroyed


def _sha256_chunks(chunks: Iterator[bytes]) -> str:
    import hashlib
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()
