"""The embedded OVN stack's daemons: they enter only the network namespace (no private
mount table that would pin ZFS mounts), a new stack object adopts the daemons of a previous
run that crashed (same PIDs, no restart of the datapath), a zombie of a previous run is not
taken for alive, and stop() keeps the namespace when it holds a netdev that is not OVS's own.
Checked with /proc and `ip -j`."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from agent.drivers.embedded import processes
from agent.drivers.embedded.ovn_stack import OvnStack
from tests.support.ovn import PID, _require_stack


@pytest.fixture
def stack_dir():
    _require_stack()
    d = Path(tempfile.mkdtemp(prefix="dcol", dir="/tmp"))
    yield d
    for pidfile in d.glob("*.pid"):             # whatever a test left running: by its pidfile
        try:
            pid = int(pidfile.read_text())
            if str(d) in processes.cmdline(pid):
                processes.stop_pid(pid)
        except (OSError, ValueError):
            pass
    shutil.rmtree(d, ignore_errors=True)


def _netns(tag: str) -> str:
    return f"dcol{PID % 100000}{tag}"


def test_daemons_share_our_mount_table_and_are_adopted_after_a_crash(stack_dir):
    ns = _netns("a")
    first = OvnStack(stack_dir, system_id=f"hv-ol-{PID}", netns=ns)
    try:
        first.start()
        pids = {n: first.pid(n) for n in first.ORDER}
        mine = processes.ns_inode("self", "mnt")
        for name, pid in pids.items():
            assert processes.ns_inode(pid, "mnt") == mine, f"{name} has a private mount namespace"
        netns_ino = os.stat(f"/run/netns/{ns}").st_ino
        assert processes.ns_inode(pids["vswitchd"], "net") == netns_ino
        assert processes.ns_inode(pids["controller"], "net") == netns_ino
        # the agent dies (its Popen objects are gone); the next start adopts what still runs
        second = OvnStack(stack_dir, system_id=f"hv-ol-{PID}", netns=ns)
        t0 = time.monotonic()
        second.start()
        print(f"start with adoption: {time.monotonic() - t0:.3f}s")
        assert {n: second.pid(n) for n in second.ORDER} == pids
        assert second.health().available
        second.stop(remove_netns=True)
        assert not any(processes.alive(p) for p in pids.values())
    finally:
        first.stop(remove_netns=True)


def test_a_zombie_is_not_alive_and_a_stale_daemon_is_replaced(stack_dir):
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while processes.state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes.state(child.pid) == "Z" and not processes.alive(child.pid)
    child.wait()
    # a pidfile naming a process that is not one of our daemons: never adopted, never killed
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (stack_dir / "nb.pid").write_text(f"{sleeper.pid}\n")
        ns = _netns("z")
        stack = OvnStack(stack_dir, system_id=f"hv-oz-{PID}", netns=ns)
        try:
            stack.start()
            assert stack.pid("nb") != sleeper.pid and sleeper.poll() is None
        finally:
            stack.stop(remove_netns=True)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_keeps_a_namespace_holding_a_netdev_that_is_not_ovs_own(stack_dir):
    ns = _netns("k")
    stack = OvnStack(stack_dir, system_id=f"hv-ok-{PID}", netns=ns)
    stack.start()
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "foreign0", "type", "veth", "peer", "name", "foreign0p"], check=True)
        stack.stop()                                     # a graceful stop of the agent
        assert ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert subprocess.run(["ip", "-n", ns, "link", "show", "foreign0"], capture_output=True).returncode == 0
        subprocess.run(["ip", "-n", ns, "link", "del", "foreign0"], check=True)
        stack = OvnStack(stack_dir, system_id=f"hv-ok-{PID}", netns=ns)
        stack.start()
        stack.stop()                                     # now only OVS's own netdevs: removed
        assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    finally:
        stack.stop(remove_netns=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
