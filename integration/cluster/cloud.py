"""A three-node developer cloud for the multi-node tests: the cluster harness (Raft
central, chassis left to the agents), an uplink on the gateway nodes, and a
devcloud-agent per node set up over gRPC as a controller would: EnsureChassis
(nodes 2 and 3 as gateways), the image, the team slices and the team networks.

Independent checks (never the agent's getters): ovn-nbctl/ovn-sbctl in the
central's netns, ovs-vsctl/ovs-appctl on a node, ip/ping in the namespaces,
zfs get, cgroupfs.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field

import grpc

from agent._proto.devcloud.agent.v1 import compute_pb2 as cpb
from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from integration.cluster.agents import NodeAgent, NodePools, start_all, stop_all
from integration.cluster.harness import Cluster
from integration.cluster.instances import PingResult, parse_ping
from integration.cluster.procs import run, wait_until

IMAGE = "img"
TEAMS = {"team-a": "10.41.0.0/24", "team-b": "10.42.0.0/24"}
GATEWAY_NODES = [2, 3]


def rows(out: str) -> list[dict]:
    """ovn-*ctl/ovs-vsctl --format=json output -> [{column: value}] (sets/maps decoded)."""
    data = json.loads(out)
    return [{h: _atom(v) for h, v in zip(data["headings"], r)} for r in data["data"]]


def _atom(v):
    if isinstance(v, list) and len(v) == 2 and v[0] in ("set", "map", "uuid"):
        if v[0] == "set":
            return [_atom(x) for x in v[1]]
        if v[0] == "map":
            return {a: _atom(b) for a, b in v[1]}
        return v[1]
    return v


def aslist(v) -> list:
    """An OVSDB set column as a list (JSON gives a one-member set as the member itself)."""
    return v if isinstance(v, list) else [v]


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summary_ms(values: list[float]) -> str:
    return (f"n={len(values)} p50 {percentile(values, .5) * 1000:.0f} ms, p95 {percentile(values, .95) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms, mean {statistics.mean(values) * 1000:.0f} ms")


@dataclass
class VM:
    """An instance as the tests see it: its node, namespace, address and recorded names."""

    id: str
    node: int
    team: str
    netns: str
    ip: str
    names: object = None                      # ipb.InstanceNames
    prepare_seconds: float = 0.0

    def ping(self, dst: str, count: int = 3, interval: float = 0.2, wait: float = 1) -> PingResult:
        r = run(["ping", "-n", "-q", "-c", str(count), "-i", f"{interval:g}", "-W", f"{wait:g}", dst],
                netns=self.netns, check=False, timeout=count * (interval + wait) + 10)
        return parse_ping(r.stdout + r.stderr)


@dataclass
class Cloud:
    c: Cluster
    agents: list[NodeAgent]
    pools: NodePools
    vms: dict[str, VM] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def agent(self, i: int) -> NodeAgent:
        return self.agents[i - 1]

    # -- controller calls ------------------------------------------------------------
    def network_spec(self, team: str, egress: bool = False) -> npb.NetworkSpec:
        spec = npb.NetworkSpec(name=team, subnet4=TEAMS[team])
        if egress:
            up = self.c.uplink
            spec.egress.CopyFrom(npb.EgressSpec(uplink=up.physnet, external_ip4=up.external_ip(list(TEAMS).index(team)),
                                                uplink_gateway4=up.gateway_ip))
        return spec

    def prepare(self, node: int, iid: str, team: str, *, wait_ready: bool = True, timeout: float = 60,
                netns: bool = True) -> VM:
        """PrepareInstance of a container with one NIC whose instance end goes into a fresh
        netns <prefix>-v-<iid> (made here, removed by the cluster's down)."""
        ns = f"{self.c.prefix}-v-{iid}"
        if netns and not os.path.exists(f"/run/netns/{ns}"):
            self.c.netns.add(ns)
        spec = ipb.InstanceSpec(id=iid, team=team, kind=ipb.INSTANCE_KIND_CONTAINER,
                                root=ipb.RootVolumeSpec(image_id=IMAGE),
                                nics=[ipb.NicSpec(name="eth0", network=team, peer_netns=ns if netns else "")])
        t = time.monotonic()
        r = self.agent(node).instances.PrepareInstance(
            ipb.PrepareInstanceRequest(spec=spec, wait_ready=wait_ready, ready_timeout_ms=int(timeout * 1000)),
            timeout=timeout)
        vm = VM(iid, node, team, ns, r.instance.nics[0].port.ip4, r.instance.names, time.monotonic() - t)
        self.vms[iid] = vm
        return vm

    # -- independent checks ------------------------------------------------------------
    def lsp(self, name: str) -> dict | None:
        found = rows(self.c.nbctl("--format=json", "find", "Logical_Switch_Port", f"name={name}"))
        return found[0] if found else None

    def binding_chassis(self, lsp: str) -> str:
        """SB: the chassis name a logical port is bound to ("" = none)."""
        pb = rows(self.c.sbctl("--format=json", "--columns=chassis", "find", "Port_Binding", f"logical_port={lsp}"))
        if not pb or not pb[0]["chassis"]:
            return ""
        uuid = pb[0]["chassis"] if isinstance(pb[0]["chassis"], str) else pb[0]["chassis"][0]
        return self.c.sbctl("--bare", "--columns=name", "list", "Chassis", uuid).strip()

    def whole(self, vm: VM) -> dict[str, bool]:
        """Which of the instance's recorded objects exist (independent tools)."""
        n = self.c.node(vm.node)
        nic = vm.names.nics[0]
        ds = subprocess.run(["zfs", "get", "-H", "-o", "value", "type", vm.names.dataset], capture_output=True,
                            text=True)
        iface = rows(n.vsctl("--format=json", "--columns=name,external_ids", "find", "Interface",
                             f"name={nic.host_netdev}"))
        link = run(["ip", "link", "show", nic.host_netdev], netns=n.netns, check=False)
        return {"dataset": ds.returncode == 0, "scope": os.path.isdir(vm.names.scope),
                "netdev": link.returncode == 0, "ovs": bool(iface), "lsp": self.lsp(nic.lsp) is not None,
                "peer": run(["ip", "link", "show", "eth0"], netns=vm.netns, check=False).returncode == 0}

    def ovn_installed(self, vm: VM) -> bool:
        nic = vm.names.nics[0]
        out = self.c.node(vm.node).vsctl("--bare", "--columns=external_ids", "find", "Interface",
                                         f"name={nic.host_netdev}")
        return "ovn-installed=true" in out or '"ovn-installed"="true"' in out

    def wait_ports_up(self, *lsps: str, timeout: float = 30) -> None:
        for lsp in lsps:
            self.c.nbctl("wait-until", "Logical_Switch_Port", lsp, "up=true", timeout=timeout)
        self.c.nbctl("--wait=hv", "sync", timeout=timeout)


def code_of(err: grpc.RpcError) -> str:
    return err.code().name


def reason_of(err: grpc.RpcError) -> str:
    from tests.support.zfs import error_reason
    return error_reason(err)


def build(cgroup_dir: str) -> Cloud:
    """Bring the cloud up (see the module doc); on failure everything started is stopped."""
    from tests.support.zfs import make_tarball, upload
    c = Cluster(nodes=3, raft=True, chassis=False)
    pools = agents = None
    t0 = time.monotonic()
    try:
        c.up()
        up = c.add_uplink(GATEWAY_NODES)
        pools = NodePools(c.prefix)
        agents = [NodeAgent(c, c.node(i), pool=pools.create(i), cgroup_root=os.path.join(cgroup_dir, f"{c.prefix}n{i}"))
                  for i in range(1, c.n + 1)]
        cloud = Cloud(c, agents, pools)
        cloud.timings["cluster + pools"] = time.monotonic() - t0
        ready = start_all(agents)
        cloud.timings["agents READY (parallel)"] = max(ready.values())
        t = time.monotonic()
        for a in agents:
            gw = a.node.index in GATEWAY_NODES
            a.network.EnsureChassis(npb.EnsureChassisRequest(spec=npb.ChassisSpec(
                system_id=a.node.system_id, encap_ip=a.node.encap_ip, bridge_datapath_type="netdev", gateway=gw,
                bridge_mappings={up.physnet: up.bridge} if gw else {})), timeout=30)
        c.wait_chassis()
        # gateway marks reach the SB through ovn-controller: wait before networks pick gateways
        wait_until(lambda: all(f"enable-chassis-as-gw" in c.sbctl("get", "Chassis", c.node(i).system_id,
                                                                   "other_config") for i in GATEWAY_NODES),
                   30, "gateway marks in the SB")
        c.prime_tunnels()
        cloud.timings["EnsureChassis x3 -> chassis, tunnels, neighbours"] = time.monotonic() - t
        t = time.monotonic()
        data, sha = make_tarball()
        for a in agents:
            _, result = upload(a.storage, IMAGE, data, sha, size=len(data))
            assert result is not None
            for team in TEAMS:
                a.compute.EnsureSlice(cpb.EnsureSliceRequest(team=team), timeout=30)
        agents[0].network.EnsureNetwork(npb.EnsureNetworkRequest(spec=cloud.network_spec("team-a", egress=True)),
                                        timeout=30)
        agents[0].network.EnsureNetwork(npb.EnsureNetworkRequest(spec=cloud.network_spec("team-b")), timeout=30)
        cloud.timings["images, slices, networks"] = time.monotonic() - t
        return cloud
    except BaseException:
        if agents:
            stop_all(agents)
        if pools is not None:
            pools.destroy()
        c.down()
        raise


def teardown(cloud: Cloud) -> dict:
    """Stop the agents (by PID), destroy the pools, bring the cluster down."""
    stop_all(cloud.agents)
    cloud.pools.destroy()
    return cloud.c.down()
