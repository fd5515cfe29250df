"""Image archives the storage plane cannot stream through tarfile: squashfs rootfs
files of LXD/Incus split images (unpacked with `unsquashfs`, as Incus does:
shared/archive/archive.go Unpack), and the format of a file by its magic
(shared/archive/detect.go).

unsquashfs (squashfs-tools >= 4.5.1, Debian bookworm) refuses names with '/'
or '..' and writing through symlinks (CVE-2021-41072); owners, modes and
xattrs (file capabilities) are kept (it runs as root).
"""
from __future__ import annotations

import shutil
import subprocess

from agent.errors import FailedPrecondition, InvalidArgument, Unavailable

_ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
UNSQUASHFS_TIMEOUT = 1800.0          # a multi-GB rootfs on a slow disk


def detect_format(path: str) -> str:
    """"squashfs" | "tar" (plain, gzip, bzip2, xz, zstd) | "qcow2" | "unknown", by magic.
    Read-only. Raises the OSError of the open/read (the caller translates it)."""
    with open(path, "rb") as f:
        h = f.read(263)
    if h[:4] == b"hsqs":
        return "squashfs"
    if h[:3] == b"QFI":
        return "qcow2"
    if h[:2] in (b"\x1f\x8b", b"BZ") or h[:6] == b"\xfd7zXZ\x00" or h[:4] == b"\x28\xb5\x2f\xfd" \
            or h[257:262] == b"ustar":
        return "tar"
    return "unknown"


def unsquashfs(image: str, dest: str, *, timeout: float = UNSQUASHFS_TIMEOUT) -> None:
    """Unpack squashfs file `image` into directory `dest` (created, or merged with -f).
    Not idempotent (files are overwritten). Raises FailedPrecondition NOT_SUPPORTED
    (squashfs-tools missing), InvalidArgument on field "rootfs" (not a squashfs unsquashfs
    can read, or an unsafe one), Unavailable UNSQUASHFS_TIMEOUT."""
    binary = shutil.which("unsquashfs", path=_ENV["PATH"])
    if not binary:
        raise FailedPrecondition("unpacking a squashfs rootfs needs unsquashfs: apt install squashfs-tools",
                                 reason="NOT_SUPPORTED", metadata={"tool": "unsquashfs"})
    try:
        p = subprocess.run([binary, "-f", "-n", "-d", dest, image], capture_output=True, text=True, env=_ENV,
                           stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"unsquashfs {image} did not finish within {timeout:.0f}s",
                          reason="UNSQUASHFS_TIMEOUT") from None
    if p.returncode != 0:
        text = " ".join((p.stderr or p.stdout).split())[-500:]
        raise InvalidArgument.for_field("rootfs", f"not a squashfs rootfs unsquashfs can unpack: {text}")
