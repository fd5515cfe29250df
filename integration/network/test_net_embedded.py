"""The embedded default: with [network].ovn_nb empty the agent starts its own
local OVN stack under <state_dir>/ovn (the same launcher the tests use),
supervises it (a dead daemon is restarted) and stops it with itself, by PID,
keeping the namespace and the netdevs (the data plane survives the agent)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pyroute2 import netns as pr_netns

from agent._proto.devcloud.agent.v1 import identity_pb2 as ipb
from agent._proto.devcloud.agent.v1 import identity_pb2_grpc as ipb_grpc
from agent._proto.devcloud.agent.v1 import network_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc as pb_grpc
from agent.drivers.embedded.ovn_stack import OvnStack, probe
from tests.support.ovn import PID, Tools, wait_until
from agent.drivers.embedded import processes
from tests.support.server import AgentProcess, temp_dir

DAEMONS = ("nb", "sb", "northd", "ovsdb", "vswitchd", "controller")


def _pid(d: Path, name: str) -> int | None:
    """The daemon's PID from its pidfile, only while that PID is alive and still runs our command
    line (PIDs are recycled: pid_max is 32768 here; a stale pidfile must never name a stranger)."""
    try:
        pid = int((d / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if processes.alive(pid) and str(d) in processes.cmdline(pid) else None


@pytest.fixture
def embedded_agent():
    if not probe().available:
        pytest.skip(f"OVN binaries unavailable: {probe().reason}")
    tmp = temp_dir()
    ns = f"dcemb{PID % 100000}"
    proc = AgentProcess(tmp, overrides=["network.enabled=true", f"network.embedded_netns={ns}",
                                        "node.name=embedded-node"])
    yield proc, tmp / "state" / "ovn", ns
    proc.stop()
    for name in DAEMONS:                       # never leave a daemon behind, even on failure
        pid = _pid(tmp / "state" / "ovn", name)
        if pid:
            os.kill(pid, 9)
    if ns in pr_netns.listnetns():
        pr_netns.remove(ns)
    shutil.rmtree(tmp, ignore_errors=True)


def test_embedded_stack_serves_supervised_and_stops_with_agent(embedded_agent, netns_factory):
    proc, d, ns = embedded_agent
    proc.start(timeout=120)
    ch = proc.channel()
    try:
        caps = ipb_grpc.IdentityServiceStub(ch).GetCapabilities(ipb.GetCapabilitiesRequest(), timeout=10)
        ovn = [c for c in caps.capabilities if c.kind == ipb.CAPABILITY_KIND_NETWORK_OVN][0]
        assert ovn.available, ovn.reason
        pids = {n: _pid(d, n) for n in DAEMONS}
        assert all(pids.values()), pids
        # ovs-vswitchd runs in the embedded namespace, the agent does not
        vs_ns = os.stat(f"/proc/{pids['vswitchd']}/ns/net").st_ino
        assert vs_ns == os.stat(f"/run/netns/{ns}").st_ino != os.stat("/proc/self/ns/net").st_ino

        stub = pb_grpc.NetworkServiceStub(ch)
        stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=pb.NetworkSpec(name="emb", subnet4="10.90.0.0/24")),
                           timeout=10)
        a, b = netns_factory(), netns_factory()
        ports = [stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network="emb", name=f"p{i}", peer_netns=n),
                                                      wait_ready=True), timeout=20).port
                 for i, n in enumerate((a, b))]
        assert all(p.status.ready for p in ports)
        stack = OvnStack(d, system_id="embedded-node", netns=ns)      # only for its addresses
        tools = Tools(stack)
        assert tools.nb_rows("Logical_Switch", "name=dc-emb")
        assert tools.ping_eventually(a, ports[1].ip4)

        # supervision: a daemon killed behind the agent's back is restarted
        os.kill(pids["northd"], 9)
        assert wait_until(lambda: _pid(d, "northd") not in (None, pids["northd"]), timeout=20), \
            "northd was not restarted"
        stub.EnsurePort(pb.EnsurePortRequest(spec=pb.PortSpec(network="emb", name="p2"), wait_ready=True),
                        timeout=20)
        host_netdevs = [p.host_netdev for p in ports]
    finally:
        ch.close()
    assert proc.stop() == 0
    # stopped with the agent, by PID: no daemon left; the namespace and our netdevs stay
    assert wait_until(lambda: not any(_pid(d, n) for n in DAEMONS), timeout=10), \
        {n: _pid(d, n) for n in DAEMONS}
    assert ns in pr_netns.listnetns()
    left = {l["ifname"] for l in Tools(OvnStack(d, system_id="x", netns=ns)).links(ns)}
    assert set(host_netdevs) <= left

    # a restart adopts the persisted databases: the network is still there
    proc.start(timeout=120)
    ch = proc.channel()
    try:
        got = pb_grpc.NetworkServiceStub(ch).GetNetwork(pb.GetNetworkRequest(name="emb"), timeout=10).network
        assert got.subnet4 == "10.90.0.0/24" and sorted(got.ports) == ["p0", "p1", "p2"]
    finally:
        ch.close()
