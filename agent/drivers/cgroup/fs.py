"""Low-level cgroupfs I/O: unbuffered writes, errno mapping, event waits.

Writes go through os.open/os.write/os.close so the kernel's answer to each
write is seen at once (a buffered write would report it only at close, or
never). Every OSError is translated right here (agent.errors.from_oserror),
with the file named.
"""
from __future__ import annotations

import errno
import os
import select
import time

from agent.errors import AgentError, DeadlineExceeded, FailedPrecondition, NotFound, from_oserror

_READ_MAX = 1 << 20


def write(path: str, payload: str, *, create: bool = False) -> None:
    """One write(2) of `payload` to a cgroup interface file.

    create=True is for plain directory trees (unit tests): the file is
    created and truncated. Raises the translated OSError.
    """
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise from_oserror(exc, f"open {path}") from None
    try:
        data = payload.encode()
        n = os.write(fd, data)
        if n != len(data):
            raise FailedPrecondition(f"write {path}: short write ({n} of {len(data)} bytes)",
                                     reason="SHORT_WRITE")
    except OSError as exc:
        raise translate_write(exc, path, payload) from None
    finally:
        os.close(fd)


def translate_write(exc: OSError, path: str, payload: str) -> AgentError:
    """errno of a cgroupfs write -> the hierarchy, with the kernel file's meaning."""
    name = os.path.basename(path)
    shown = payload.strip()[:80]
    if exc.errno == errno.ESRCH:
        return NotFound(f"write {shown!r} to {path}: no such process", reason="PROCESS_NOT_FOUND",
                        metadata={"file": name})
    if exc.errno == errno.EBUSY and name == "cgroup.subtree_control":
        return FailedPrecondition(
            f"write {shown!r} to {path}: the cgroup holds processes or a child uses the controller "
            "(cgroup v2 'no internal processes' rule)", reason="CGROUP_BUSY", metadata={"file": name})
    return from_oserror(exc, f"write {shown!r} to {path}", file=name)


def read(path: str) -> str | None:
    """Contents of a cgroup file; None if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_oserror(exc, f"open {path}") from None
    try:
        return os.read(fd, _READ_MAX).decode(errors="replace")
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):   # cgroup removed while reading
            return None
        raise from_oserror(exc, f"read {path}") from None
    finally:
        os.close(fd)


def parse_events(text: str) -> dict[str, int]:
    """'populated 1\nfrozen 0' (cgroup.events) -> {key: int}; lines without a number are skipped. Pure."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


def procs(cgroup: str) -> tuple[int, ...]:
    """PIDs in `cgroup` itself (cgroup.procs; () when it is absent). Read-only."""
    text = read(os.path.join(cgroup, "cgroup.procs")) or ""
    return tuple(int(p) for p in text.split())


def populated(cgroup: str) -> bool:
    """True while `cgroup` or a descendant holds a process (cgroup.events populated 1). Read-only."""
    return parse_events(read(os.path.join(cgroup, "cgroup.events")) or "").get("populated", 0) == 1


def wait_events(cgroup: str, key: str, want: int, deadline: float | None, what: str) -> float:
    """Wait until cgroup.events says `key want` (frozen 1, populated 0...).

    Wakes on the kernel's file notification (poll POLLPRI) and re-checks at
    least every 50 ms in case one is missed. `deadline` is a time.monotonic()
    instant (None: wait forever). Returns the seconds waited. Raises NotFound
    if the cgroup disappears, DeadlineExceeded when the deadline passes.
    """
    path = os.path.join(cgroup, "cgroup.events")
    start = time.monotonic()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, f"open {path}") from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        while True:
            try:
                os.lseek(fd, 0, os.SEEK_SET)
                events = parse_events(os.read(fd, 4096).decode())
            except OSError as exc:
                raise NotFound(f"{cgroup} disappeared while waiting for {key}={want}",
                               metadata={"errno": errno.errorcode.get(exc.errno or 0, "")}) from None
            if events.get(key) == want:
                return time.monotonic() - start
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                raise DeadlineExceeded(f"{what}: {cgroup} did not reach {key}={want} before the deadline "
                                       f"(cgroup.events: {' '.join(f'{k}={v}' for k, v in events.items())})",
                                       reason="CGROUP_WAIT_TIMEOUT", metadata={"cgroup": cgroup})
            poller.poll(left * 1000)
    finally:
        os.close(fd)


def getxattr(path: str, name: str) -> bytes | None:
    """The xattr's value; None when the attribute or the path is absent. Read-only. Raises the
    translated OSError otherwise (e.g. FailedPrecondition PERMISSION / NOT_SUPPORTED)."""
    try:
        return os.getxattr(path, name)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOENT):
            return None
        raise from_oserror(exc, f"getxattr {name} on {path}") from None


def setxattr(path: str, name: str, value: bytes) -> None:
    """Set (create or replace) an xattr. Idempotent. Raises the translated OSError (NotFound
    NOT_FOUND when the path is absent, FailedPrecondition PERMISSION / NOT_SUPPORTED)."""
    try:
        os.setxattr(path, name, value)
    except OSError as exc:
        raise from_oserror(exc, f"setxattr {name} on {path}") from None


def removexattr(path: str, name: str) -> None:
    """Remove an xattr. Idempotent: an absent attribute or path is no error. Raises the
    translated OSError otherwise."""
    try:
        os.removexattr(path, name)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOENT):
            return
        raise from_oserror(exc, f"removexattr {name} on {path}") from None
