"""Safe, streaming extraction of a rootfs tarball with checksum and progress.

The raw bytes are hashed (sha256) as they arrive, before decompression, so
the digest is the one of the file the client has. tarfile reads in stream
mode ("r|*": plain, gzip, bzip2, xz), one member at a time.

Refused members (InvalidArgument naming the member):
- absolute names, names with a `..` component;
- a member whose path goes through a symlink extracted earlier (writing
  through a link could land outside the root);
- hard links whose target is absolute or escapes the root;
- symlinks whose RELATIVE target climbs above the root (absolute targets are
  kept: inside a rootfs they are resolved against the container's root);
- device nodes unless `allow_devices` (privileged agent), and any other
  type tarfile cannot represent safely.
Ownership (numeric uid/gid) and mode bits (setuid included) are kept: this is
a root filesystem. Failing to set them is an error (FailedPrecondition
EXTRACT_ATTRIBUTES), never a silently different image: tarfile's default
errorlevel ignores a failed chown/chmod/utime (a setuid binary then lands as
0600 under the unit's UMask when seccomp refuses the setuid bit).
"""
from __future__ import annotations

import errno
import copy
import hashlib
import os
import posixpath
import stat
import tarfile
import time
from typing import IO, Callable, Iterator, cast

from agent.errors import DataLoss, FailedPrecondition, InvalidArgument, ResourceExhausted

from .model import ImportProgress

PROGRESS_EVERY_BYTES = 4 << 20
# tarfile's extraction filters arrived in 3.11.4; Debian bookworm's python3 is 3.11.2.
_HAS_FILTER = hasattr(tarfile, "data_filter")
PROGRESS_EVERY_SECONDS = 0.5


class ChunkReader:
    """A file-like reader over an iterator of byte chunks that hashes and counts."""

    def __init__(self, chunks: Iterator[bytes], *, limit: int = 0) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._eof = False
        self.sha256 = hashlib.sha256()
        self.received = 0
        self.limit = limit              # > 0: refuse more than this many bytes

    def _pull(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._eof = True
            return False
        if chunk:
            self.received += len(chunk)
            if self.limit and self.received > self.limit:
                raise DataLoss(f"upload is longer than the announced {self.limit} bytes",
                               reason="SIZE_MISMATCH")
            self.sha256.update(chunk)
            self._buf += chunk
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all with n < 0), b"" at the end (what it pulls is hashed and counted)."""
        if n is None or n < 0:
            while self._pull():
                pass
            out, self._buf = bytes(self._buf), bytearray()
            return out
        while len(self._buf) < n and self._pull():
            pass
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def drain(self) -> None:
        """Consume (and hash) everything left, e.g. the padding after the tar end marker."""
        self._buf.clear()
        while self._pull():
            self._buf.clear()


def _check_name(name: str, what: str) -> str:
    if not name or "\0" in name:
        raise InvalidArgument.for_field("tarball", f"{what}: empty or NUL in name")
    if name.startswith("/"):
        raise InvalidArgument.for_field("tarball", f"{what}: absolute path {name!r} is not allowed")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument.for_field("tarball", f"{what}: {name!r} escapes the image root with '..'")
    return "/".join(parts)


def _escapes(base_dir: str, target: str) -> bool:
    """True if relative `target`, seen from `base_dir` (relative to the root), climbs above the root."""
    depth = len([p for p in base_dir.split("/") if p])
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _renamed(member: tarfile.TarInfo, name: str, linkname: str | None = None) -> tarfile.TarInfo:
    """A copy of `member` with a normalized name (TarInfo.replace needs Python >= 3.11.4)."""
    out = copy.copy(member)
    out.name = name
    if linkname is not None:
        out.linkname = linkname
    return out


class SafeFilter:
    """tarfile extraction filter enforcing the rules in the module docstring."""

    def __init__(self, root: str, *, allow_devices: bool) -> None:
        self.root = os.path.realpath(root)
        self.allow_devices = allow_devices

    def _no_symlink_parents(self, rel: str) -> None:
        path = self.root
        for part in rel.split("/")[:-1]:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(st.st_mode):
                raise InvalidArgument.for_field(
                    "tarball", f"member {rel!r} goes through the symlink {path[len(self.root):]!r}")

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        rel = _check_name(member.name, "member")
        if not rel:          # "./" itself: the root directory's attributes; skip it
            return None      # type: ignore[return-value]
        self._no_symlink_parents(rel)
        if member.issym():
            target = member.linkname
            if not target.startswith("/") and _escapes(posixpath.dirname(rel), target):
                raise InvalidArgument.for_field("tarball", f"symlink {rel!r} -> {target!r} escapes the image root")
        elif member.islnk():
            target = _check_name(member.linkname, f"hard link {rel!r}")
            self._no_symlink_parents(target)
            try:
                st = os.lstat(os.path.join(self.root, target))
            except OSError:
                raise InvalidArgument.for_field("tarball", f"hard link {rel!r} -> {target!r}: target not "
                                                "extracted before it") from None
            if not stat.S_ISREG(st.st_mode):
                raise InvalidArgument.for_field("tarball", f"hard link {rel!r} -> {target!r}: target is not "
                                                "a regular file")
            return _renamed(member, rel, target)
        elif member.ischr() or member.isblk():
            if not self.allow_devices:
                raise InvalidArgument.for_field(
                    "tarball", f"device node {rel!r} is not allowed (the agent is not privileged to create it)")
        elif not (member.isreg() or member.isdir() or member.isfifo()):
            raise InvalidArgument.for_field("tarball", f"member {rel!r} has an unsupported type")
        return _renamed(member, rel)


def extract_stream(reader: ChunkReader, root: str, *, allow_devices: bool,
                   progress: Callable[[ImportProgress], None] | None = None,
                   total_bytes: int = 0) -> tuple[int, int]:
    """Extract the tar stream read from `reader` into `root`.

    Returns (entries, bytes_extracted). Raises InvalidArgument for a refused
    member or an archive tarfile cannot read (the caller decides whether a
    checksum mismatch makes that DATA_LOSS), OSError from the filesystem.
    """
    flt = SafeFilter(root, allow_devices=allow_devices)
    entries = extracted = 0
    last_bytes, last_time = 0, time.monotonic()
    try:
        with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r|*") as tar:
            tar.errorlevel = 2          # chown/chmod/utime failures raise ExtractError (default: ignored)
            for member in tar:
                try:
                    if _HAS_FILTER:
                        tar.extract(member, path=root, set_attrs=True, numeric_owner=True, filter=flt)
                    else:           # same checks, applied by hand
                        safe = flt(member, root)
                        if safe is not None:
                            tar.extract(safe, path=root, set_attrs=True, numeric_owner=True)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise ResourceExhausted(f"no space left while extracting {member.name!r}",
                                                reason="NO_SPACE") from None
                    raise InvalidArgument.for_field(
                        "tarball", f"cannot extract member {member.name!r}: {exc.strerror or exc}") from None
                except tarfile.ExtractError as exc:
                    raise FailedPrecondition(
                        f"cannot set the owner, mode or times of {member.name!r} ({exc}): the agent needs "
                        "CAP_CHOWN and CAP_FOWNER and may not be barred from setuid/setgid bits "
                        "(systemd RestrictSUIDSGID=)", reason="EXTRACT_ATTRIBUTES",
                        metadata={"member": member.name[:256]}) from None
                entries += 1
                extracted += member.size if member.isreg() else 0
                now = time.monotonic()
                if progress and (reader.received - last_bytes >= PROGRESS_EVERY_BYTES
                                 or now - last_time >= PROGRESS_EVERY_SECONDS):
                    progress(ImportProgress(reader.received, extracted, entries, total_bytes))
                    last_bytes, last_time = reader.received, now
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise InvalidArgument.for_field("tarball", f"not a readable tar archive: {exc}") from None
    if entries == 0:
        raise InvalidArgument.for_field("tarball", "the archive holds no files")
    reader.drain()
    if progress:
        progress(ImportProgress(reader.received, extracted, entries, total_bytes))
    return entries, extracted


def file_chunks(path: str, size: int = 1 << 20) -> Iterator[bytes]:
    """Read a local file in chunks (EnsureImage from a path on the node)."""
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk
