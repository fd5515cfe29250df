"""Removing our cgroups: kill their processes, then rmdir bottom-up.

Plain functions over cgroupfs paths; the driver decides ownership before it
calls them. `plain` is the driver's plain-directory-tree mode (unit tests).
"""
from __future__ import annotations

import errno
import os
import shutil
import time

from agent.errors import FailedPrecondition, from_oserror

from . import fs


def kill(path: str, deadline: float | None) -> float:
    """SIGKILL every process of `path` (cgroup.kill) and wait for populated 0; returns seconds waited.
    An empty cgroup: 0.0 at once. Raises FailedPrecondition KILL_UNSUPPORTED (Linux < 5.14),
    DeadlineExceeded CGROUP_WAIT_TIMEOUT, NotFound when it disappears meanwhile."""
    if not fs.populated(path):
        return 0.0
    if not os.path.exists(os.path.join(path, "cgroup.kill")):
        raise FailedPrecondition("this kernel has no cgroup.kill (Linux >= 5.14 needed)",
                                 reason="KILL_UNSUPPORTED")
    fs.write(os.path.join(path, "cgroup.kill"), "1")
    return fs.wait_events(path, "populated", 0, deadline, "kill")


def delete_scope(path: str, kill_first: bool, deadline: float | None, *, plain: bool) -> None:
    """Remove a scope of ours with its nested cgroups. Populated: FailedPrecondition SCOPE_POPULATED
    unless kill_first (its processes are killed first). Raises as kill() and remove_tree()."""
    if fs.populated(path):
        if not kill_first:
            n = len(fs.procs(path))
            raise FailedPrecondition(f"scope {path} holds processes ({n} in the scope itself); "
                                     "pass kill to kill them first", reason="SCOPE_POPULATED",
                                     metadata={"cgroup": path})
        kill(path, deadline)
    remove_tree(path, deadline, plain=plain)


def remove_tree(path: str, deadline: float | None, *, plain: bool) -> None:
    """rmdir bottom-up (a workload may have made nested cgroups inside its scope). Idempotent: what
    is gone already is skipped. A directory still busy (EBUSY) just after a kill is retried until
    `deadline`; then, or for any other error, the translated OSError (FailedPrecondition BUSY...)."""
    if plain:
        shutil.rmtree(path, ignore_errors=False)
        return
    for dirpath, _, _ in os.walk(path, topdown=False):
        while True:
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                # A just-killed cgroup can stay busy for a moment while its tasks finish exiting.
                if exc.errno == errno.EBUSY and deadline is not None and time.monotonic() < deadline \
                        and not fs.populated(dirpath):
                    time.sleep(0.001)
                    continue
                raise from_oserror(exc, f"rmdir {dirpath}") from None


def remove_dir(path: str, *, plain: bool) -> None:
    """Best-effort undo of a mkdir: rmdir (plain trees: rmtree); errors are ignored."""
    try:
        if plain:
            shutil.rmtree(path)
        else:
            os.rmdir(path)
    except OSError:
        pass
