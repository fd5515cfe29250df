"""The Linux-bridge backend with a VLAN, through devcloud-agent.service, on the
guest's Debian kernel (our dev machines' kernel lacks bridge VLAN filtering, so
this only runs here). Checked with `ip -d -j link`, `bridge -j vlan` and ping
between two network namespaces, not with the agent's getters."""
from __future__ import annotations

import json
import os

import pytest

from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc

import agent_unit as au

pytestmark = pytest.mark.skipif(os.environ.get("DEVCLOUD_NODE_GUEST") != "1", reason="runs inside the node guest")
VLAN = 100


def _vlans(dev: str) -> list[dict]:
    doc = json.loads(au.run("bridge", "-j", "vlan", "show", "dev", dev).stdout or "[]")
    # iproute2 6.1 prints [{"ifname": ..., "vlans": [{"vlan": 100, "flags": ["PVID", "Egress Untagged"]}]}]
    return [v for entry in doc for v in entry.get("vlans", [])]


def test_bridge_network_with_vlan_carries_traffic(agent, session_id, results_dir):
    stub = agent.stub(network_pb2_grpc)
    name = f"bv{session_id}"
    spec = npb.NetworkSpec(name=name, backend=npb.NETWORK_BACKEND_BRIDGE, subnet4="10.88.0.0/24", vlan=VLAN)
    netns = [f"bvns{session_id}{i}" for i in range(2)]
    bridge, hosts = "", []
    try:
        replies = [stub.EnsureNetwork(npb.EnsureNetworkRequest(spec=spec), timeout=au.RPC) for _ in range(3)]
        assert [r.changed for r in replies] == [True, False, False]
        bridge = replies[0].network.bridge
        br = au.link(bridge)
        assert br["linkinfo"]["info_kind"] == "bridge"
        assert br["linkinfo"]["info_data"]["vlan_filtering"] == 1
        assert br["ifalias"].startswith("devcloud ")
        for i, ns in enumerate(netns):
            au.run("ip", "netns", "add", ns)
            r = stub.EnsurePort(npb.EnsurePortRequest(spec=npb.PortSpec(
                network=name, name=f"e{i}", instance=f"bv{i}", peer_netns=ns, ip4=f"10.88.0.{10 + i}")),
                timeout=au.RPC)
            assert r.changed
            hosts.append(r.port.host_netdev)
            assert au.link(r.port.host_netdev)["master"] == bridge
            assert f"10.88.0.{10 + i}" in au.addrs4("eth0", ns)
            vl = _vlans(r.port.host_netdev)
            assert [v["vlan"] for v in vl] == [VLAN], vl            # VLAN 1 dropped
            assert {"PVID", "Egress Untagged"} <= set(vl[0].get("flags", [])), vl
        assert au.ping_eventually(netns[0], "10.88.0.11", attempts=5)
        assert au.ping_eventually(netns[1], "10.88.0.10", attempts=5)
        au.record(results_dir, "bridge-vlan", bridge=bridge, vlan=VLAN, ports=hosts)
    finally:
        stub.DeleteNetwork(npb.DeleteNetworkRequest(name=name), timeout=au.RPC)
        for ns in netns:
            au.run("ip", "netns", "del", ns, check=False)
    assert au.link(bridge) is None
    assert all(au.link(h) is None for h in hosts)
