"""The components a bench run needs, started the way the tests start them
(same launchers: agent/drivers/embedded/{zfs_fuse,ovn_stack}.py, the cgroup
subtree helpers of tests/support/cgroup.py, tests/support/server.py's
AgentProcess), and removed again in reverse order whatever happened.

Names are unique per run (pid + random suffix); only what this run created is
removed; processes are stopped by PID.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from agent.drivers import procfs
from agent.drivers import zfs as zfsdrv
from agent.drivers.embedded import zfs_fuse
from agent.drivers.embedded.ovn_stack import OvnStack
from agent.drivers.zfs.cli import ZfsCommand
from agent.metrics import Metrics
from tests.support.cgroup import remove_cgroup_tree, write_cgroup_file
from tests.support.ovn import start_stack, stop_stack
from tests.support.server import AgentProcess

log = logging.getLogger("bench")
ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
IMAGE = "bench-img"


def run(argv: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """A CLI step (argv list, never a shell)."""
    return subprocess.run(argv, capture_output=True, text=True, check=check, env=ENV, timeout=timeout)


@dataclass
class Components:
    """What one run started; `close()` removes it all (reverse order)."""

    tmp: Path
    tag: str
    pool: str = ""
    pool_mount: str = ""
    zfs_flavor: str = ""
    stack: OvnStack | None = None
    cgroup_dir: str = ""               # <cgroup2>/devcloud-bench-<tag>: everything of ours below it
    agent: AgentProcess | None = None
    agent_overrides: list[str] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)

    # -- names the agent and the baseline use ------------------------------------------------
    @property
    def parent(self) -> str:
        return f"{self.pool}/devcloud"

    @property
    def lxd_parent(self) -> str:
        """The baseline's own dataset tree (LXD keeps its containers under <pool>/containers)."""
        return f"{self.pool}/lxd"

    @property
    def agent_root(self) -> str:
        return os.path.join(self.cgroup_dir, "agent")

    @property
    def lxd_cgroup(self) -> str:
        return os.path.join(self.cgroup_dir, "lxd")

    @property
    def image_base(self) -> str:
        return f"{self.parent}/images/{IMAGE}@base"

    def close(self) -> None:
        self._stack.close()


def start(sizes_pool_bytes: int, instance_overrides: list[str], extra_overrides: list[str] = ()) -> Components:
    """Start zfs-fuse (or reuse the host's), a file pool, an OVN stack, a cgroup subtree.
    The agent itself is started by start_agent(). On failure everything started is removed."""
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    tmp = Path(tempfile.mkdtemp(prefix=f"devcloud-bench-{tag}-"))
    c = Components(tmp=tmp, tag=tag)
    c._stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    try:
        _start_zfs(c, sizes_pool_bytes)
        _start_ovn(c)
        _start_cgroup(c)
        c.agent_overrides = [
            "storage.enabled=true", f"storage.pool={c.pool}", f"storage.parent={c.parent}",
            "storage.busy_timeout=60",
            "network.enabled=true", f"network.ovn_nb={c.stack.nb_remote}", f"network.ovs_db={c.stack.ovs_remote}",
            f"network.host_netns={c.stack.netns}", "network.ovsdb_timeout=30", "network.ready_timeout=60",
            "network.ovsdb_probe_interval_ms=0",
            "compute.enabled=true", f"compute.cgroup_root={c.agent_root}",
            "log.level=warning",
            *instance_overrides, *extra_overrides]
    except BaseException:
        c.close()
        raise
    return c


def _start_zfs(c: Components, size: int) -> None:
    flavor, reason = zfsdrv.detect_flavor()
    if not flavor:
        raise SystemExit(f"bench: no ZFS here: {reason}")
    c.zfs_flavor = flavor
    if flavor == "zfs-fuse":
        daemon, lease = zfs_fuse.ensure_running(c.tmp / "zfsstate")
        c._stack.callback(zfs_fuse.stop_if_unused, daemon, lease)
    cmd = ZfsCommand(Metrics())
    c.pool = f"dcbench{c.tag}"
    disks = Path(tempfile.mkdtemp(prefix=f"devcloud-bench-{c.tag}-", dir="/var/tmp"))   # not tmpfs (OpenZFS)
    c._stack.callback(shutil.rmtree, disks, ignore_errors=True)
    c.pool_mount = str(c.tmp / "mnt")
    pool = zfs_fuse.ensure_file_pool(cmd, c.pool, disks / f"{c.pool}.img", size=size, mountpoint=c.pool_mount,
                                     cachefile=False)
    c._stack.callback(zfs_fuse.destroy_file_pool, cmd, c.pool, pool.path)


def _start_ovn(c: Components) -> None:
    c.stack = start_stack(tag="bench")
    c._stack.callback(stop_stack, c.stack)


def _start_cgroup(c: Components) -> None:
    mount = procfs.cgroup2_mount()
    if not mount:
        raise SystemExit("bench: no cgroup2 hierarchy mounted")
    before = set(open(os.path.join(mount, "cgroup.subtree_control")).read().split())
    c.cgroup_dir = os.path.join(mount, f"devcloud-bench-{c.tag}")
    os.mkdir(c.cgroup_dir)

    def remove() -> None:
        remove_cgroup_tree(c.cgroup_dir, timeout=120)
        after = set(open(os.path.join(mount, "cgroup.subtree_control")).read().split())
        for ctl in sorted(after - before):
            try:             # EBUSY when another user needs it: then it stays, as it should
                write_cgroup_file(os.path.join(mount, "cgroup.subtree_control"), f"-{ctl}")
            except OSError:
                pass
    c._stack.callback(remove)
    os.mkdir(c.lxd_cgroup)


def start_agent(c: Components, *, wait_ready: bool = True, env: dict | None = None) -> tuple[AgentProcess, float]:
    """Start the agent process; returns (agent, seconds from spawn to READY=1)."""
    agent = AgentProcess(c.tmp / "agent", overrides=c.agent_overrides, env=env or {})
    t0 = time.monotonic()
    agent.start(wait_ready=wait_ready, timeout=600)
    ready = time.monotonic() - t0
    c.agent = agent
    return agent, ready


def agent_pid(agent: AgentProcess) -> int:
    return agent.proc.pid


def rss_bytes(pid: int) -> dict:
    """VmRSS / VmHWM / RssAnon of a process, bytes (from /proc/<pid>/status)."""
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            parts = value.split()
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def channel(agent: AgentProcess) -> grpc.Channel:
    ch = agent.channel()
    grpc.channel_ready_future(ch).result(timeout=30)
    return ch
