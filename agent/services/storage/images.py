"""Images: import from a tarball stream or a node path into <parent>/tmp/ (renamed
into images/ once verified, ending with a read-only @base snapshot), parking of images
deleted while clones live, and their collection.

A second EnsureImage/DeleteImage of the same id while one runs gets ABORTED at once
(imports stream for a long time; waiting makes no sense)."""
from __future__ import annotations

import logging
import os
import secrets
from typing import Callable, Iterable, Iterator

from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.errors import (AgentError, AlreadyExists, DataLoss, FailedPrecondition, InvalidArgument,
                          NotFound, from_oserror)
from agent.model.marks import TYPE_IMAGE, TYPE_TMP
from agent.services.locks import KeyedLocks

from .directories import Directories
from .layout import Layout, check_name_length, is_ours
from .model import (BASE_SNAPSHOT, MARKS, OWNER, P_IMAGE, P_NAME, P_OWNER, P_SHA256, P_TYPE, Image,
                    ImageState, ImportProgress)
from .tar import ChunkReader, extract_stream, file_chunks

log = logging.getLogger(__name__)


class Images:
    """The images of one layout, and which of them are known READY (saves a read per clone)."""

    def __init__(self, zfs: ZfsBackend, layout: Layout, dirs: Directories, *, allow_device_nodes: bool) -> None:
        self.zfs = zfs
        self.layout = layout
        self.dirs = dirs
        self.allow_device_nodes = allow_device_nodes    # extract device nodes from tarballs (root only)
        self._locks = KeyedLocks("image")
        self._ready: set[str] = set()                   # image ids known ours and READY

    def known_ready(self, image_id: str) -> bool:
        """True when the image is known ours and READY without a read."""
        return image_id in self._ready

    def remember_ready(self, image_id: str) -> None:
        """A read (or a clone) just showed the image ours and READY."""
        self._ready.add(image_id)

    def forget(self, image_id: str) -> None:
        """The image may be gone: read it again next time."""
        self._ready.discard(image_id)

    def get_image(self, image_id: str) -> Image:
        """The image `image_id` (READY). NotFound if absent (parked images are not returned)."""
        info = self.zfs.get(self.layout.image(image_id), MARKS)
        if not is_ours(info):
            raise NotFound(f"image {image_id} not found", reason="IMAGE_NOT_FOUND", metadata={"image_id": image_id})
        return self._image(info, self._clone_counts())

    def list_images(self, include_parked: bool = False) -> list[Image]:
        """All images (and parked ones if asked), two batched reads. Idempotent, read-only."""
        counts = self._clone_counts()
        out = []
        roots = [self.layout.images] + ([self.layout.deleted_images] if include_parked else [])
        for root in roots:
            for ds in self.zfs.list(root, MARKS, depth=1):
                if ds.name != root and not ds.is_snapshot and is_ours(ds) and ds.user_props.get(P_TYPE) == TYPE_IMAGE:
                    out.append(self._image(ds, counts))
        return out

    def _clone_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for origin in self.zfs.origins(self.layout.instances).values():
            counts[origin] = counts.get(origin, 0) + 1
        return counts

    def _image(self, ds: DatasetInfo, counts: dict[str, int]) -> Image:
        base = f"{ds.name}@{BASE_SNAPSHOT}"
        state = ImageState.PARKED if self.layout.is_parked(ds.name) else ImageState.READY
        return Image(image_id=ds.user_props.get(P_NAME, ds.name.rsplit("/", 1)[-1]), dataset=ds.name,
                     state=state, sha256=ds.user_props.get(P_SHA256, ""), base_snapshot=base,
                     mountpoint=ds.mountpoint, used_bytes=ds.used, referenced_bytes=ds.referenced,
                     clones=counts.get(base, 0), created_unix=ds.creation)

    def ensure_image(self, image_id: str, sha256: str, chunks: Iterator[bytes] | None = None, *,
                     local_path: str = "", size_bytes: int = 0,
                     progress: Callable[[ImportProgress], None] | None = None) -> tuple[Image, bool]:
        """Import an image from a tarball (streamed `chunks` or a file at `local_path` on the node)
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
        with self._locks.hold(image_id):
            self.dirs.ensure()
            dataset = self.layout.image(image_id)
            check_name_length(dataset, "image_id")
            existing = self.zfs.get(dataset, MARKS)
            if existing is not None:
                if not is_ours(existing):
                    raise FailedPrecondition(f"{dataset} exists and is not ours", reason="NOT_OURS")
                have = existing.user_props.get(P_SHA256, "")
                if local_path and not sha256:
                    try:
                        sha256 = _sha256_file(local_path)
                    except OSError as exc:
                        raise from_oserror(exc, f"read {local_path}") from None
                if have != sha256:
                    raise AlreadyExists(f"image {image_id} exists with sha256 {have}, not {sha256}; delete it "
                                        "first or use another id", reason="IMAGE_SHA256_MISMATCH",
                                        metadata={"image_id": image_id, "sha256": have})
                if self.zfs.get(f"{dataset}@{BASE_SNAPSHOT}") is not None:
                    return self._image(existing, self._clone_counts()), False
                raise FailedPrecondition(f"image {image_id} has no @{BASE_SNAPSHOT} snapshot; delete it and "
                                         "import again", reason="IMAGE_INCOMPLETE")
            if local_path:
                try:
                    os.stat(local_path)
                    chunks = file_chunks(local_path)
                except OSError as exc:
                    raise from_oserror(exc, f"read {local_path}") from None
            if chunks is None:
                raise InvalidArgument.for_field("chunks", "no tarball data was given")
            return self._import(image_id, sha256, chunks, size_bytes, progress), True

    def _import(self, image_id: str, sha256: str, chunks: Iterator[bytes], size_bytes: int,
                progress: Callable[[ImportProgress], None] | None) -> Image:
        tmp = f"{self.layout.tmp}/{image_id}-{secrets.token_hex(4)}"
        marks = {P_OWNER: OWNER, P_TYPE: TYPE_TMP, P_NAME: image_id}
        self.zfs.create_filesystem(tmp, marks)
        try:
            info = self.zfs.get(tmp)
            assert info is not None, f"{tmp} vanished right after its creation"
            reader = ChunkReader(chunks, limit=size_bytes)
            tar_error: AgentError | None = None
            try:
                extract_stream(reader, info.mountpoint, allow_devices=self.allow_device_nodes,
                               progress=progress, total_bytes=size_bytes)
            except InvalidArgument as exc:
                if not any(v.field == "tarball" for v in exc.violations):
                    raise           # a bad request message, not a bad archive
                tar_error = exc
                reader.drain()      # hash the rest: a truncated/corrupted upload is DATA_LOSS, not our parse error
            digest = reader.sha256.hexdigest()
            if size_bytes and reader.received != size_bytes:
                raise DataLoss(f"upload truncated: received {reader.received} of {size_bytes} bytes",
                               reason="SIZE_MISMATCH", metadata={"received": str(reader.received)})
            if sha256 and digest != sha256:
                raise DataLoss(f"sha256 mismatch: the upload hashes to {digest}, expected {sha256}",
                               reason="SHA256_MISMATCH", metadata={"actual": digest})
            if tar_error is not None:
                raise tar_error
            self.zfs.set_props(tmp, {P_TYPE: TYPE_IMAGE, P_SHA256: digest, P_IMAGE: image_id, "readonly": "on"})
            self.zfs.snapshot([f"{tmp}@{BASE_SNAPSHOT}"])
            self.zfs.rename(tmp, self.layout.image(image_id))
            self._ready.add(image_id)
        except BaseException:
            try:
                self.zfs.destroy(tmp, recursive=True)
            except AgentError as exc:
                log.warning("could not remove the failed import %s: %s (removed at next start)", tmp, exc)
            raise
        imported = self.zfs.get(self.layout.image(image_id), MARKS)
        assert imported is not None, f"image {image_id} vanished right after its import"
        return self._image(imported, {})

    def delete_image(self, image_id: str) -> ImageState:
        """Delete image `image_id`. Returns ABSENT when it is gone (or never was), PARKED when
        clones still live: it is renamed under deleted/ and destroyed with its last clone.
        Idempotent. Aborted if an import of that id is running; FailedPrecondition if not ours."""
        with self._locks.hold(image_id):
            self._ready.discard(image_id)
            dataset = self.layout.image(image_id)
            info = self.zfs.get(dataset, MARKS)
            if info is None:
                return ImageState.ABSENT
            if not is_ours(info):
                raise FailedPrecondition(f"{dataset} is not ours", reason="NOT_OURS")
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
        """Destroy parked images that no clone uses any more (`only`: just these datasets);
        one still cloned or busy is left for later. Returns how many were destroyed.
        Idempotent."""
        candidates = list(only) if only is not None else [
            ds.name for ds in self.zfs.list(self.layout.deleted_images, MARKS, depth=1)
            if ds.name != self.layout.deleted_images and not ds.is_snapshot and is_ours(ds)]
        destroyed = 0
        for name in candidates:
            try:
                if self.zfs.destroy(name, recursive=True):
                    destroyed += 1
            except FailedPrecondition as exc:
                if exc.reason not in ("HAS_DEPENDENTS", "DATASET_BUSY"):
                    raise
        return destroyed


def _sha256_file(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    for chunk in file_chunks(path):
        h.update(chunk)
    return h.hexdigest()
