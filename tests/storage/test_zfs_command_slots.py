"""The bound on zfs/zpool commands in flight (zfs-fuse deadlocks when they overlap).

The limiter is ours, not ZFS's: a stand-in `zfs` script that records how many copies
of itself run at once stands in for the binary, because a real daemon cannot show how
many of our commands overlapped.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.drivers.zfs.cli import ZfsCommand
from agent.errors import Unavailable
from agent.metrics import Metrics

SCRIPT = """#!/bin/sh
d={dir}
mkdir "$d/run.$$"
ls "$d" | grep -c '^run\\.' >> "$d/seen"
sleep 0.15
rmdir "$d/run.$$"
"""


def _stand_in(tmp_path: Path) -> str:
    exe = tmp_path / "zfs"
    exe.write_text(SCRIPT.format(dir=tmp_path))
    exe.chmod(0o755)
    return str(exe)


def _run_many(cmd: ZfsCommand, n: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def one():
        try:
            cmd.run("zfs", ["list"], what="slot test", op="get")
        except BaseException as exc:     # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("limit", [1, 2])
def test_commands_in_flight_never_exceed_the_bound(tmp_path, limit):
    cmd = ZfsCommand(Metrics(), max_parallel=limit)
    cmd.zfs = _stand_in(tmp_path)
    assert _run_many(cmd, 8) == []
    seen = [int(x) for x in (tmp_path / "seen").read_text().split()]
    assert len(seen) == 8 and max(seen) <= limit, seen


def test_unbounded_commands_overlap(tmp_path):
    # the check above can fail: without a bound the same 8 commands overlap
    cmd = ZfsCommand(Metrics())
    cmd.zfs = _stand_in(tmp_path)
    assert _run_many(cmd, 8) == []
    assert max(int(x) for x in (tmp_path / "seen").read_text().split()) > 2


def test_no_slot_within_the_timeout_is_unavailable(tmp_path):
    cmd = ZfsCommand(Metrics(), max_parallel=1, timeout=0.05)
    cmd.zfs = _stand_in(tmp_path)
    cmd._slots.acquire()           # a command that never finishes holds the only slot
    with pytest.raises(Unavailable) as exc:
        cmd.run("zfs", ["list"], what="slot test", op="get")
    assert exc.value.reason == "ZFS_TIMEOUT" and "no ZFS command slot" in exc.value.message


def test_our_unmount_waits_for_a_slot_too(tmp_path):
    # umount2(2) on a zfs-fuse mount is a request to the same daemon: it takes the slot
    from agent.drivers.zfs import CliBackend
    cmd = ZfsCommand(Metrics(), max_parallel=1, timeout=0.05)
    backend = CliBackend(Metrics(), flavor="zfs-fuse", features=(), cmd=cmd)
    cmd._slots.acquire()
    with pytest.raises(Unavailable) as exc:
        backend.unmount("pool/x", str(tmp_path))
    assert exc.value.reason == "ZFS_TIMEOUT"
    cmd._slots.release()
    backend.unmount("pool/x", str(tmp_path))       # not a mount point: idempotent, no error
