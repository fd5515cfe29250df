"""Raw disk files of VMs on nodes without zvols: one sparse file per DISK_FILE
volume, created and grown with ftruncate (no data is written, no space used
until the guest writes)."""
from __future__ import annotations

import os

from agent.errors import from_oserror


def size(path: str) -> int | None:
    """The file's size in bytes, None when it does not exist. Read-only; other OSErrors
    come back translated."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_oserror(exc, f"stat {path}") from None


def ensure(path: str, size_bytes: int) -> bool:
    """Make `path` a regular file of `size_bytes`: created sparse (mode 0600) when absent,
    grown when smaller. Returns changed. Never shrinks (the caller refuses that first).
    Idempotent. Raises translated OSErrors (ResourceExhausted NO_SPACE/QUOTA_EXCEEDED...)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            have = os.fstat(fd).st_size
            if have >= size_bytes:
                return False
            os.ftruncate(fd, size_bytes)
            os.fsync(fd)
            return True
        finally:
            os.close(fd)
    except OSError as exc:
        raise from_oserror(exc, f"disk file {path}") from None
