"""One image import: the bytes go into a fresh <parent>/tmp/<id>-<tag> dataset
(marked tmp: a crash leaves only that, removed at the next start), are checked
(sha256, size, the format's layout), marked with what they are, snapshotted
@base and renamed into images/. Nothing is left behind on any failure.

Formats (model.ImageFormat; lxd_image.py has the layouts):
- ROOTFS_TARBALL: the tarball is extracted into the dataset's root.
- LXD_UNIFIED: the same extraction; metadata.yaml + templates/ + rootfs/ stay.
- LXD_SPLIT: the stream is the metadata tarball (its first metadata_size bytes,
  extracted into the root) followed by the rootfs file, which is written to a
  temporary file in the dataset and unpacked into rootfs/ (squashfs with
  unsquashfs, a tarball with the same safe extraction), then removed.
The sha256 covers the whole stream: for a split image, Incus's fingerprint.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

from agent.drivers import archive
from agent.drivers.zfs import ZfsBackend
from agent.errors import AgentError, DataLoss, InvalidArgument, from_oserror
from agent.model.marks import TYPE_IMAGE

from . import lxd_image
from .model import BASE_SNAPSHOT, P_FORMAT, P_IMAGE, P_METADATA, P_ROOTFS, P_SHA256, P_TYPE, ImageFormat, \
    ImportProgress
from .tar import ChunkReader, extract_stream, file_chunks

ROOTFS_TMP = ".devcloud-rootfs.part"        # a split image's rootfs file while it is unpacked


@dataclass(frozen=True)
class ImportRequest:
    """What EnsureImage asked for (validated at the edge)."""

    image_id: str
    sha256: str                     # "" only with local files (then computed)
    size_bytes: int = 0             # 0 = unknown
    format: ImageFormat | None = None            # None = detect
    metadata_size: int = 0          # LXD_SPLIT streamed: the metadata tarball's length
    local_path: str = ""
    rootfs_local_path: str = ""     # LXD_SPLIT from files on the node

    @property
    def split(self) -> bool:
        """The request is a split image (said, or implied by its fields)."""
        return self.format == ImageFormat.LXD_SPLIT or bool(self.metadata_size or self.rootfs_local_path)

    def local_chunks(self) -> Iterator[bytes]:
        """The local file(s) as one stream (metadata tarball then rootfs for a split image)."""
        yield from file_chunks(self.local_path)
        if self.rootfs_local_path:
            yield from file_chunks(self.rootfs_local_path)


class _Section:
    """The first `limit` bytes of a ChunkReader, as extract_stream reads them (its drain()
    stops at the limit; the reader's hash and counters keep covering everything)."""

    def __init__(self, reader: ChunkReader, limit: int) -> None:
        self.reader, self.left = reader, limit

    @property
    def received(self) -> int:
        return self.reader.received

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.reader.read(n)
        self.left -= len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def import_into(zfs: ZfsBackend, req: ImportRequest, chunks: Iterator[bytes], root: str, *,
                allow_devices: bool, progress: Callable[[ImportProgress], None] | None) -> dict[str, str]:
    """Read the stream into `root` (a fresh dataset's mountpoint) and check it. Returns the
    marks the image gets besides owner/type (format, rootfs, metadata, sha256). Raises
    DataLoss (sha256/size mismatch: checked before any format error, so a corrupted upload is
    reported as such), InvalidArgument (field "tarball"/"rootfs": unreadable or unsafe
    archive, an LXD image without metadata.yaml or rootfs), ResourceExhausted NO_SPACE."""
    reader = ChunkReader(chunks, limit=req.size_bytes)
    bad: AgentError | None = None
    try:
        if req.split:
            _split(reader, req, root, allow_devices, progress)
        else:
            extract_stream(reader, root, allow_devices=allow_devices, progress=progress, total_bytes=req.size_bytes)
    except InvalidArgument as exc:
        if not any(v.field in ("tarball", "rootfs") for v in exc.violations):
            raise                   # a bad request message, not a bad archive
        bad = exc
        reader.drain()              # hash the rest: a truncated/corrupted upload is DATA_LOSS, not our parse error
    digest = reader.sha256.hexdigest()
    if req.size_bytes and reader.received != req.size_bytes:
        raise DataLoss(f"upload truncated: received {reader.received} of {req.size_bytes} bytes",
                       reason="SIZE_MISMATCH", metadata={"received": str(reader.received)})
    if req.sha256 and digest != req.sha256:
        raise DataLoss(f"sha256 mismatch: the upload hashes to {digest}, expected {req.sha256}",
                       reason="SHA256_MISMATCH", metadata={"actual": digest})
    if bad is not None:
        raise bad
    fmt = ImageFormat.LXD_SPLIT if req.split else req.format or lxd_image.detect(root)
    marks = {P_TYPE: TYPE_IMAGE, P_SHA256: digest, P_IMAGE: req.image_id, P_FORMAT: fmt.value}
    if fmt != ImageFormat.ROOTFS_TARBALL:
        lxd_image.check_lxd_layout(root, fmt)
        marks[P_ROOTFS] = lxd_image.ROOTFS_DIR
        marks[P_METADATA] = lxd_image.metadata_mark(lxd_image.read_metadata(root))
    return marks


def _split(reader: ChunkReader, req: ImportRequest, root: str, allow_devices: bool,
           progress: Callable[[ImportProgress], None] | None) -> None:
    meta_size = req.metadata_size or os.path.getsize(req.local_path)
    extract_stream(_Section(reader, meta_size), root, allow_devices=allow_devices,    # type: ignore[arg-type]
                   progress=progress, total_bytes=req.size_bytes)
    if reader.received < meta_size:
        raise InvalidArgument.for_field("tarball", f"the stream ended inside the metadata tarball "
                                                   f"({reader.received} of {meta_size} bytes)")
    part = os.path.join(root, ROOTFS_TMP)
    rootfs = os.path.join(root, lxd_image.ROOTFS_DIR)
    try:
        with open(part, "wb") as f:
            while chunk := reader.read(1 << 20):
                f.write(chunk)
        if os.path.getsize(part) == 0:
            raise InvalidArgument.for_field("rootfs", "a split image needs its rootfs file after the metadata "
                                                      "tarball (none was sent)")
        kind = archive.detect_format(part)
        if os.path.lexists(rootfs) and not os.path.isdir(rootfs) or os.path.islink(rootfs):
            raise InvalidArgument.for_field("tarball", "image rootfs isn't a regular directory")
        os.makedirs(rootfs, mode=0o755, exist_ok=True)
        if kind == "squashfs":
            archive.unsquashfs(part, rootfs)
        elif kind == "tar":
            extract_stream(ChunkReader(file_chunks(part)), rootfs, allow_devices=allow_devices)
        else:
            raise InvalidArgument.for_field("rootfs", f"the rootfs file is {kind}, not a squashfs or a tarball"
                                            + (" (a VM image: not supported)" if kind == "qcow2" else ""))
    except OSError as exc:
        raise from_oserror(exc, f"rootfs of image {req.image_id}") from None
    finally:
        try:
            os.unlink(part)
        except FileNotFoundError:
            pass


def finish(zfs: ZfsBackend, tmp: str, final: str, marks: dict[str, str]) -> None:
    """Mark the verified import, make it read-only, snapshot @base and rename it into place
    (the rename is the commit: a crash before it leaves only tmp/)."""
    zfs.set_props(tmp, {**marks, "readonly": "on"})
    zfs.snapshot([f"{tmp}@{BASE_SNAPSHOT}"])
    zfs.rename(tmp, final)
