"""A devcloud-agent per simulated node, as a real process inside the node's network
namespace (nsenter --net only: the host's mount namespace, so ZFS mounts are not
pinned), each with its own state dir, unix socket (a file path: reachable from
the host), cgroup subtree, netdev prefix and ZFS pool.

    pools = NodePools(cluster.dir)                # one pool per node on the shared zfs-fuse
    agents = [NodeAgent(c, c.node(i), pool=pools.create(i), cgroup_root=f"{cg}/n{i}") for i in (1, 2, 3)]
    start_all(agents)                             # in parallel, READY via sd_notify
    agents[0].network.EnsureChassis(...)          # gRPC stubs: .network .instances .storage .compute
    agents[0].restart(); agents[1].kill(); ...; stop_all(agents); pools.destroy()

zfs-fuse is one daemon per host (fixed socket): the pools share the running one
(started and leased here when none runs, stopped by PID when we started it and
nobody else holds a lease). Every agent process is a child of Cluster.popen, so
Cluster.down() stops a leftover one by its PID.
"""
from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from agent._proto.devcloud.agent.v1 import (compute_pb2_grpc, instance_pb2_grpc, network_pb2_grpc,
                                            storage_pb2_grpc)
from tests.support.server import NotifySocket, end, wait_ready

REPO = Path(__file__).resolve().parents[2]
POOL_SIZE = 1 << 30


class NodePools:
    """One ZFS pool per node (sparse file under /var/tmp: file vdevs on tmpfs misbehave)."""

    def __init__(self, tag: str) -> None:
        from agent.drivers.embedded import zfs_fuse
        from agent.drivers.zfs import detect_flavor
        from agent.drivers.zfs.cli import ZfsCommand
        from agent.metrics import Metrics
        flavor, reason = detect_flavor()
        if not flavor:
            raise RuntimeError(f"no ZFS here: {reason}")
        self.tag, self.flavor = tag, flavor
        self.dir = Path(f"/var/tmp/{tag}-zfs")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.daemon = self.lease = None
        if flavor == "zfs-fuse":
            self.daemon, self.lease = zfs_fuse.ensure_running(self.dir / "state")
        self.cmd = ZfsCommand(Metrics())
        self.pools: dict[str, Path] = {}

    def create(self, i: int) -> str:
        """The pool of node i (created, mounted under the pools' dir); returns its name."""
        from agent.drivers.embedded import zfs_fuse
        name = f"{self.tag}n{i}"
        path = self.dir / f"{name}.img"
        zfs_fuse.ensure_file_pool(self.cmd, name, path, size=POOL_SIZE, mountpoint=str(self.dir / f"mnt{i}"),
                                  cachefile=False)
        self.pools[name] = path
        return name

    def destroy(self) -> None:
        """Destroy every pool made here, stop zfs-fuse if we started it and nobody else uses it.
        Idempotent; leaves a warning instead of raising."""
        import shutil
        import warnings

        from agent.drivers.embedded import zfs_fuse
        for name, path in list(self.pools.items()):
            try:
                zfs_fuse.destroy_file_pool(self.cmd, name, path)
            except Exception as exc:   # noqa: BLE001 - teardown: report, go on
                warnings.warn(f"pool {name} left behind: {exc}")
            self.pools.pop(name, None)
        if self.daemon is not None:
            zfs_fuse.stop_if_unused(self.daemon, self.lease)
            self.daemon = None
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class NodeAgent:
    """devcloud-agent on one simulated node (see the module doc)."""

    cluster: object
    node: object
    pool: str | None = None                     # None: storage (and instances) off
    cgroup_root: str | None = None              # None: compute (and instances) off
    prefix: str = ""                            # netdev prefix ("" = "n<i>" + 1 random char)
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    _channel: grpc.Channel | None = None

    def __post_init__(self) -> None:
        self.dir = self.node.state_dir / "agent"
        self.dir.mkdir(exist_ok=True)
        self.prefix = self.prefix or f"n{self.node.index}{secrets.choice('abcdefghjk')}"
        self.log_path = self.dir / "agent.log"

    @property
    def socket(self) -> str:
        return str(self.dir / "agent.sock")

    def overrides(self) -> list[str]:
        o = [f"server.socket={self.socket}", "metrics.listen=", f"node.state_dir={self.dir / 'state'}",
             f"node.name={self.node.name}", *self.node.agent_overrides(), f"network.netdev_prefix={self.prefix}",
             "network.ready_timeout=20", "storage.enabled=false", "compute.enabled=false",
             "instances.enabled=false"]
        if self.pool:
            o += ["storage.enabled=true", f"storage.pool={self.pool}", "storage.busy_timeout=20"]
        if self.cgroup_root:
            o += ["compute.enabled=true", f"compute.cgroup_root={self.cgroup_root}"]
        if self.pool and self.cgroup_root:
            o += ["instances.enabled=true"]
        return o + list(self.extra)

    def start(self, wait: bool = True, timeout: float = 90) -> "NodeAgent":
        """Start the process in the node's netns; with wait, until READY=1 (or raise with its log)."""
        self.notify = NotifySocket(self.dir / f"notify-{time.monotonic_ns()}.sock")
        config = self.dir / "agent.toml"             # explicit empty config: never /etc/devcloud-agent
        config.touch()
        argv = [sys.executable, "-m", "agent.cli.daemon", "run", "--config", str(config)]
        for o in self.overrides():
            argv += ["--set", o]
        env = {"NOTIFY_SOCKET": str(self.notify.path), "PYTHONPATH": str(REPO)}
        with open(self.log_path, "ab") as log:
            self.proc = self.node.popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        wait_ready(self.proc, self.notify, timeout, self.log_tail, who=f"{self.node.name} agent")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix:{self.socket}")
        return self._channel

    @property
    def network(self) -> network_pb2_grpc.NetworkServiceStub:
        return network_pb2_grpc.NetworkServiceStub(self.channel())

    @property
    def instances(self) -> instance_pb2_grpc.InstanceServiceStub:
        return instance_pb2_grpc.InstanceServiceStub(self.channel())

    @property
    def storage(self) -> storage_pb2_grpc.StorageServiceStub:
        return storage_pb2_grpc.StorageServiceStub(self.channel())

    @property
    def compute(self) -> compute_pb2_grpc.ComputeServiceStub:
        return compute_pb2_grpc.ComputeServiceStub(self.channel())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal our PID, wait; SIGKILL our PID when it does not exit. Returns the exit code."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.proc is not None and self.proc.poll() is None:
            end(self.proc, sig, timeout)
        if getattr(self, "notify", None) is not None:
            self.notify.close()
            self.notify = None
        return self.proc.returncode if self.proc else None

    def kill(self) -> int | None:
        """SIGKILL (a crash as far as the agent can tell)."""
        return self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM, timeout: float = 90) -> float:
        """Stop (by `sig`) and start again with the same state; returns seconds until READY."""
        self.stop(sig)
        t = time.monotonic()
        self.start(timeout=timeout)
        return time.monotonic() - t

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


def start_all(agents: list[NodeAgent], timeout: float = 120) -> dict[str, float]:
    """Start every agent at once; returns seconds until READY per node."""
    def one(a: NodeAgent) -> float:
        t = time.monotonic()
        a.start(timeout=timeout)
        return time.monotonic() - t
    with ThreadPoolExecutor(max_workers=len(agents)) as ex:
        return dict(zip((a.node.name for a in agents), ex.map(one, agents)))


def stop_all(agents: list[NodeAgent]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(agents))) as ex:
        list(ex.map(lambda a: a.stop(), agents))

