"""Ownership marks and creation intents, as xattrs on cgroup directories.

Every slice and scope the agent creates carries one xattr, user.devcloud.owner
= "owner=devcloud-agent kind=scope team=t instance=i"; a directory without it
is never changed or removed. Before a mkdir the parent records the intent
(user.devcloud.pending.<name>), so a directory a crash left unmarked is
recognised as ours and adopted; intents whose directory never appeared are
swept at startup.
"""
from __future__ import annotations

import os
from typing import Callable

from agent.errors import FailedPrecondition, from_oserror
from agent.model.compute import SCOPE, SLICE, Mark
from agent.model.marks import CGROUP_MARK_XATTR, CGROUP_PENDING_XATTR, OWNER

from . import fs

MARK_XATTR = CGROUP_MARK_XATTR           # the driver's (and its tests') short names for the model's keys
PENDING_XATTR = CGROUP_PENDING_XATTR


def encode_mark(mark: Mark) -> bytes:
    """The xattr value of our mark: b"owner=devcloud-agent kind=scope team=t instance=i". Pure."""
    parts = [f"owner={OWNER}", f"kind={mark.kind}", f"team={mark.team}"]
    if mark.instance:
        parts.append(f"instance={mark.instance}")
    return " ".join(parts).encode()


def decode_mark(raw: bytes | None) -> Mark | None:
    """Our mark from the xattr value; None if absent or written by someone else."""
    if not raw:
        return None
    kv = dict(p.partition("=")[::2] for p in raw.decode(errors="replace").split())
    if kv.get("owner") != OWNER or kv.get("kind") not in (SLICE, SCOPE) or not kv.get("team"):
        return None
    return Mark(kv["kind"], kv["team"], kv.get("instance", ""))


def claim(path: str, mark: Mark) -> None:
    """Check `path` carries `mark`; adopt it if a crash left it unmarked after our
    recorded intent. Raises FailedPrecondition NOT_OURS otherwise."""
    parent, name = os.path.split(path)
    found = decode_mark(fs.getxattr(path, MARK_XATTR))
    if found is None:
        if fs.getxattr(parent, PENDING_XATTR + name) is None:
            raise FailedPrecondition(f"{path} exists but does not carry the agent's mark: it is not ours "
                                     "and is left alone (remove it, or use another name)",
                                     reason="NOT_OURS", metadata={"cgroup": path})
        fs.setxattr(path, MARK_XATTR, encode_mark(mark))
        fs.removexattr(parent, PENDING_XATTR + name)
    elif found != mark:
        raise FailedPrecondition(f"{path} carries the mark of {found}, not {mark}", reason="NOT_OURS",
                                 metadata={"cgroup": path})


def is_ours_or_pending(path: str) -> bool:
    """Marked, or an unmarked directory whose creation we recorded (a crash in between)."""
    parent, name = os.path.split(path)
    return decode_mark(fs.getxattr(path, MARK_XATTR)) is not None or \
        fs.getxattr(parent, PENDING_XATTR + name) is not None


def create(path: str, mark: Mark, remove: Callable[[str], None]) -> None:
    """Record the intent on the parent, mkdir, mark; `remove` undoes the mkdir on failure."""
    parent, name = os.path.split(path)
    fs.setxattr(parent, PENDING_XATTR + name, b"1")          # intent before action
    try:
        try:
            os.mkdir(path)
        except OSError as exc:
            raise from_oserror(exc, f"mkdir {path}") from None
        try:
            fs.setxattr(path, MARK_XATTR, encode_mark(mark))
        except BaseException:
            remove(path)
            raise
    finally:
        fs.removexattr(parent, PENDING_XATTR + name)


def forget_intent(parent: str, name: str) -> None:
    """Drop the creation intent for `name` recorded on `parent`. Idempotent (none recorded: no error);
    raises the translated OSError otherwise."""
    fs.removexattr(parent, PENDING_XATTR + name)


def sweep_pending(parents: list[str]) -> int:
    """Drop intents whose directory never came to exist. Returns how many."""
    n = 0
    for parent in parents:
        try:
            names = os.listxattr(parent)
        except OSError:
            continue
        for x in names:
            if x.startswith(PENDING_XATTR) and not os.path.isdir(os.path.join(parent, x[len(PENDING_XATTR):])):
                fs.removexattr(parent, x)
                n += 1
    return n
