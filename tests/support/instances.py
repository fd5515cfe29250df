"""Instance plane fixtures: an agent with the storage, network and compute
planes pointed at the session's real components (zfs-fuse pool, OVN stack,
cgroup subtree), a team setup (image, team networks, team slices) done over
gRPC like a controller, and independent checks of every object an instance
owns (zfs get -Hp, ip -j, ovs-vsctl, ovn-nbctl, cgroupfs).

Everything is unique per agent (dataset parent, cgroup root, node name,
netdev prefix) so several agents share the session's OVN stack and pool,
and the agent's GarbageCollect never sees another agent's objects.
"""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import compute_pb2, compute_pb2_grpc
from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc as ipb_grpc
from agent._proto.devcloud.agent.v1 import network_pb2, network_pb2_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc
from tests.support.cgroup import compute_overrides, remove_cgroup_tree
from tests.support.ovn import PID, Tools, agent_overrides
from tests.support.zfs import make_tarball, storage_overrides, upload, zfs_destroy_tree, zfs_get, zfs_run

__all__ = ["instance_agent"]

IMAGE = "img"
_counter = itertools.count(1)


def env_overrides(zfs_pool, stack, cgroup_root: str, parent: str, node: str, prefix: str) -> list[str]:
    """Config overrides of an agent with every plane on the session's components."""
    return (storage_overrides(zfs_pool, parent) + agent_overrides(stack) + compute_overrides(cgroup_root)
            + [f"node.name={node}", f"network.netdev_prefix={prefix}", "network.ready_timeout=20",
               "instances.enabled=true"])


@dataclass
class Env:
    """Where an instance agent keeps its objects (for independent checks and teardown)."""

    pool: object
    stack: object
    tools: Tools
    parent: str
    cgroup_root: str
    node: str
    prefix: str
    tmp: Path
    teams: dict[str, str] = field(default_factory=dict)     # team -> subnet4

    @classmethod
    def make(cls, zfs_pool, stack, tools, cgroup_session_dir: str, tag: str = "i") -> "Env":
        n = next(_counter)
        suffix = secrets.token_hex(2)
        tmp = Path(__import__("tempfile").mkdtemp(prefix=f"devcloud-inst-{PID}-"))
        return cls(pool=zfs_pool, stack=stack, tools=tools, parent=f"{zfs_pool.name}/{tag}{n}{suffix}",
                   cgroup_root=os.path.join(cgroup_session_dir, f"{tag}{n}{suffix}"),
                   node=f"{tag}-node-{PID}-{n}{suffix}", prefix=f"{tag[0]}{secrets.token_hex(1)}{n % 10}",
                   tmp=tmp)

    def overrides(self) -> list[str]:
        return env_overrides(self.pool, self.stack, self.cgroup_root, self.parent, self.node, self.prefix)

    # -- controller-side setup over gRPC --------------------------------------------------
    def setup(self, channel: grpc.Channel, teams: dict[str, str]) -> None:
        """Image, team networks and team slices: what a controller does before instances."""
        data, sha = make_tarball()
        _, result = upload(storage_pb2_grpc.StorageServiceStub(channel), IMAGE, data, sha, size=len(data))
        assert result is not None
        net = network_pb2_grpc.NetworkServiceStub(channel)
        comp = compute_pb2_grpc.ComputeServiceStub(channel)
        for team, subnet in teams.items():
            net.EnsureNetwork(network_pb2.EnsureNetworkRequest(spec=network_pb2.NetworkSpec(name=team, subnet4=subnet)),
                              timeout=30)
            comp.EnsureSlice(compute_pb2.EnsureSliceRequest(team=team), timeout=30)
            self.teams[team] = subnet

    def delete_networks(self, channel: grpc.Channel | None) -> None:
        """Remove the team networks with any port left (through the agent, while it runs)."""
        if channel is None:
            return
        net = network_pb2_grpc.NetworkServiceStub(channel)
        for team in self.teams:
            try:
                net.DeleteNetwork(network_pb2.DeleteNetworkRequest(name=team), timeout=60)
            except grpc.RpcError:
                pass

    def cleanup(self) -> None:
        """After the agent stopped: everything under our roots, by hand."""
        for team in self.teams:
            self.tools.nbctl("--if-exists", "ls-del", f"dc-{team}", check=False)
        for l in self.tools.links(self.stack.netns):
            if l["ifname"].startswith(self.prefix) and "devcloud" in l.get("ifalias", ""):
                subprocess.run(["ip", "-n", self.stack.netns, "link", "del", l["ifname"]], capture_output=True)
        for row in self.tools.ovs_rows("Interface", f"external_ids:devcloud-node={self.node}"):
            if row["external_ids"].get("devcloud-owner") == "devcloud-agent":
                self.tools.vsctl("--if-exists", "del-port", row["name"], check=False)
        zfs_destroy_tree(self.parent)
        remove_cgroup_tree(self.cgroup_root)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- independent checks (never the agent's getters) ----------------------------------------
    def dataset(self, name: str, *props: str) -> dict[str, str]:
        return zfs_get(name, *(props or ("type",)))

    def link(self, name: str, netns: str | None = None) -> dict | None:
        return self.tools.link(name, netns or self.stack.netns)

    def ovs_iface(self, name: str) -> dict | None:
        rows = self.tools.ovs_rows("Interface", f"name={name}")
        return rows[0] if rows else None

    def lsp(self, name: str) -> dict | None:
        rows = self.tools.nb_rows("Logical_Switch_Port", f"name={name}")
        return rows[0] if rows else None

    def present(self, names: ipb.InstanceNames) -> dict[str, bool]:
        """Which recorded objects of an instance exist, per object (independent tools)."""
        out = {f"dataset {names.dataset}": bool(self.dataset(names.dataset)),
               f"scope {names.scope}": os.path.isdir(names.scope)}
        for n in names.nics:
            out[f"netdev {n.host_netdev}"] = self.link(n.host_netdev) is not None
            out[f"ovs {n.host_netdev}"] = self.ovs_iface(n.host_netdev) is not None
            out[f"lsp {n.lsp}"] = self.lsp(n.lsp) is not None
        return out

    def owned_leftovers(self) -> list[str]:
        """Every object with our mark that this agent could own, found with independent tools:
        volumes under <parent>/instances, our-prefix netdevs, OVS interfaces and LSPs of our node,
        scopes under our cgroup root."""
        out = []
        r = zfs_run("get", "-H", "-r", "-o", "name,value", "-s", "local", "devcloud:type", f"{self.parent}/instances",
                    check=False)
        out += [f"dataset {l.split()[0]}" for l in r.stdout.splitlines() if l.split()[1:] == ["volume"]]
        for l in self.tools.links(self.stack.netns):
            if l["ifname"].startswith(self.prefix) and "devcloud" in l.get("ifalias", ""):
                out.append(f"netdev {l['ifname']}")
        mark = ("external_ids:devcloud-owner=devcloud-agent", f"external_ids:devcloud-node={self.node}")
        out += [f"ovs {row['name']}" for row in self.tools.ovs_rows("Interface", *mark)]
        out += [f"lsp {row['name']}" for row in self.tools.nb_rows("Logical_Switch_Port", *mark)]
        if os.path.isdir(self.cgroup_root):
            for s in os.listdir(self.cgroup_root):
                p = os.path.join(self.cgroup_root, s)
                if s.endswith(".slice") and os.path.isdir(p):
                    out += [f"scope {p}/{c}" for c in os.listdir(p) if c.endswith(".scope") and _marked(f"{p}/{c}")]
        return sorted(out)


def _marked(path: str) -> bool:
    """The compute plane's ownership xattr on a cgroup dir (read with os.getxattr, not the agent)."""
    try:
        return b"owner=devcloud-agent" in os.getxattr(path, "user.devcloud.owner")
    except OSError:
        return False


def nic(name: str, network: str, **kw) -> ipb.NicSpec:
    return ipb.NicSpec(name=name, network=network, **kw)


def spec(iid: str, team: str, nics=(), *, image: str = IMAGE, refquota: int = 64 << 20, **kw) -> ipb.InstanceSpec:
    return ipb.InstanceSpec(id=iid, team=team, kind=ipb.INSTANCE_KIND_CONTAINER,
                            root=ipb.RootVolumeSpec(image_id=image, refquota_bytes=refquota), nics=list(nics), **kw)


def stub(channel: grpc.Channel) -> ipb_grpc.InstanceServiceStub:
    return ipb_grpc.InstanceServiceStub(channel)


def foreign_objects(env: Env, team: str) -> dict[str, str]:
    """Objects WITHOUT our mark next to ours: a dataset in the team's volume directory, a
    cgroup in the team slice, a netdev with our prefix, an LSP on the team switch and an OVS
    port with another owner. Returns their names (check them with foreign_intact)."""
    tag = secrets.token_hex(2)
    team_dir = f"{env.parent}/instances/{team}"          # inside our team directory once it exists
    objs = {"dataset": f"{team_dir}/foreign{tag}" if env.dataset(team_dir) else f"{team_dir}-foreign{tag}",
            "cgroup": os.path.join(env.cgroup_root, f"{team}.slice", f"foreign{tag}.scope"),
            "netdev": f"{env.prefix}f{tag}", "lsp": f"foreign-{team}-{tag}", "ovs": f"fovs{tag}"}
    zfs_run("create", objs["dataset"])
    os.mkdir(objs["cgroup"])
    subprocess.run(["ip", "-n", env.stack.netns, "link", "add", objs["netdev"], "type", "veth", "peer", "name",
                    f"fp{tag}"], check=True)
    env.tools.nbctl("lsp-add", f"dc-{team}", objs["lsp"])
    env.tools.vsctl("add-port", "br-int", objs["ovs"], "--", "set", "Interface", objs["ovs"], "type=internal",
                    "external_ids:devcloud-owner=another-agent", f"external_ids:devcloud-node={env.node}")
    return objs


def foreign_intact(env: Env, objs: dict[str, str]) -> list[str]:
    """Foreign objects that were touched (empty: all intact)."""
    bad = []
    if not env.dataset(objs["dataset"]):
        bad.append("dataset")
    if not os.path.isdir(objs["cgroup"]):
        bad.append("cgroup")
    if env.link(objs["netdev"]) is None:
        bad.append("netdev")
    if env.lsp(objs["lsp"]) is None:
        bad.append("lsp")
    iface = env.ovs_iface(objs["ovs"])
    if iface is None or iface["external_ids"].get("devcloud-owner") != "another-agent":
        bad.append("ovs")
    return bad


def remove_foreign(env: Env, objs: dict[str, str]) -> None:
    zfs_run("destroy", objs["dataset"], check=False)
    try:
        os.rmdir(objs["cgroup"])
    except OSError:
        pass
    subprocess.run(["ip", "-n", env.stack.netns, "link", "del", objs["netdev"]], capture_output=True)
    env.tools.nbctl("--if-exists", "lsp-del", objs["lsp"], check=False)
    env.tools.vsctl("--if-exists", "del-port", "br-int", objs["ovs"], check=False)


@pytest.fixture(scope="module")
def instance_agent(zfs_pool, ovn_stack, ovn_tools, cgroup_session_dir):
    """A real in-process agent with every plane on, two teams set up; yields (agent, env)."""
    from tests.support.server import start_inprocess
    env = Env.make(zfs_pool, ovn_stack, ovn_tools, cgroup_session_dir)
    agent = start_inprocess(env.tmp, env.overrides())
    try:
        tag = secrets.token_hex(2)
        env.setup(agent.channel, {f"ta{tag}": "10.81.0.0/24", f"tb{tag}": "10.82.0.0/24"})
        yield agent, env
    finally:
        env.delete_networks(agent.channel)
        agent.stop()
        env.cleanup()


class AgentRun:
    """The agent as a real process on an Env, restartable (same state dir), optionally
    with the test-only fault hook set (DEVCLOUD_AGENT_FAULT)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.proc = None

    def start(self, fault: str = "", timeout: float = 120.0, overrides: list[str] = ()) -> "AgentRun":
        from tests.support.server import AgentProcess
        extra = {"DEVCLOUD_AGENT_FAULT": fault} if fault else {}
        self.proc = AgentProcess(self.env.tmp, self.env.overrides() + list(overrides), env=extra).start(
            timeout=timeout)
        return self

    def channel(self) -> grpc.Channel:
        return self.proc.channel()

    def wait_exit(self, timeout: float = 60.0) -> int:
        """The process's exit code once it exited by itself (e.g. at a fault step)."""
        code = self.proc.proc.wait(timeout)
        self.proc.stop()
        return code

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log(self) -> str:
        return self.proc.log() if self.proc else ""
