"""Network through devcloud-agent.service on the OVS KERNEL datapath: the guest's
openvswitch-switch (openvswitch module) + Debian's ovn-central / ovn-host
services, no embedded userspace stack. EnsureChassis makes the guest an OVN
chassis with a kernel br-int; two teams x two instances (a netns each) get
veth NICs that must reach ovn-installed=true / up=true; ping works within a
team and not across. Checked with ovs-vsctl, ovs-dpctl, ovn-nbctl, ovn-sbctl,
ip -j and ping, not with the agent's getters."""
from __future__ import annotations

import itertools
import os

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc

import agent_unit as au

pytestmark = pytest.mark.skipif(os.environ.get("DEVCLOUD_NODE_GUEST") != "1", reason="runs inside the node guest")
OWNER = "devcloud-agent"


@pytest.fixture(scope="module")
def stub(agent):
    return agent.stub(network_pb2_grpc)


def test_chassis_on_the_kernel_datapath(network_world, stub, results_dir):
    w = network_world
    c = w.chassis
    assert (c.system_id, c.ovn_remote, c.encap_type, c.encap_ip) == (w.system_id, au.SB_REMOTE, "geneve", "127.0.0.1")
    assert c.bridge == "br-int" and c.bridge_exists and c.bridge_datapath_type == "system"
    ext = au.vsctl_rows("Open_vSwitch")[0]["external_ids"]
    assert ext["system-id"] == w.system_id and ext["ovn-remote"] == au.SB_REMOTE
    assert ext["ovn-encap-ip"] == "127.0.0.1" and ext["ovn-bridge-datapath-type"] == "system"
    (br,) = au.vsctl_rows("Bridge", "name=br-int")
    assert br["datapath_type"] == "system" and br["fail_mode"] == "secure"
    # the kernel datapath, not netdev: br-int is an openvswitch netdev in the kernel
    assert "br-int" in au.dp_ports()
    assert au.link("br-int")["linkinfo"]["info_kind"] == "openvswitch"
    # ovn-controller (the ovn-host unit) registered the chassis in SB
    au.until(lambda: au.sb_rows("Chassis", f"name={w.system_id}"), "the chassis row in SB")
    # idempotent
    again = stub.EnsureChassis(npb.EnsureChassisRequest(spec=npb.ChassisSpec(
        system_id=w.system_id, ovn_remote=au.SB_REMOTE, encap_type="geneve", encap_ip="127.0.0.1",
        bridge_datapath_type="system", bridge="br-int")), timeout=au.RPC)
    assert again.changed is False
    # before the agent owned anything there, its default system-id (the node name) was refused
    # rather than overriding the one openvswitch-switch set from /etc/openvswitch/system-id.conf
    refused = w.default_id_refused
    assert refused is not None and refused.code() == grpc.StatusCode.FAILED_PRECONDITION, refused
    assert "system-id" in refused.details()
    with open("/etc/openvswitch/system-id.conf") as f:
        assert f.read().strip() == w.system_id == ext["system-id"]
    au.record(results_dir, "agent-network", ensure_chassis_s=round(w.chassis_s, 2),
              ensure_port_ready_s=[round(i.ensure_s, 2) for i in w.instances])


def test_ports_ready_and_bound_in_the_kernel(network_world):
    dp = au.dp_ports()
    for inst in network_world.instances:
        p = inst.port
        assert p.status.ready and p.status.ovn_installed and p.status.up, (inst.team, inst.index, p.status)
        (iface,) = au.vsctl_rows("Interface", f"name={p.host_netdev}")
        assert iface["external_ids"]["iface-id"] == p.iface_id
        assert iface["external_ids"]["ovn-installed"] == "true"
        assert iface["external_ids"]["devcloud-owner"] == OWNER
        assert isinstance(iface["ofport"], int) and iface["ofport"] > 0, iface["ofport"]
        (lsp,) = au.nb_rows("Logical_Switch_Port", f"name={p.iface_id}")
        assert lsp["up"] is True and lsp["external_ids"]["devcloud-owner"] == OWNER
        (binding,) = au.sb_rows("Port_Binding", f"logical_port={p.iface_id}")
        assert binding["chassis"], f"{p.iface_id} is not bound to a chassis in SB"
        # the host end is a kernel datapath port (enslaved to ovs-system), the peer sits in the instance netns
        assert p.host_netdev in dp, f"{p.host_netdev} not in `ovs-dpctl show`: {sorted(dp)}"
        host = au.link(p.host_netdev)
        assert host["linkinfo"]["info_kind"] == "veth" and host.get("master") == "ovs-system"
        assert host["ifalias"].startswith("devcloud ")
        peer = au.link(p.peer_netdev or "eth0", inst.netns)
        assert peer["address"] == p.mac and "UP" in peer["flags"]
        assert au.addrs4(p.peer_netdev or "eth0", inst.netns) == [p.ip4]
        assert au.link(p.host_netdev, inst.netns) is None


def test_tap_nic_through_dev_net_tun(network_world):
    tap = network_world.tap
    link = au.link(tap.host_netdev)
    assert link is not None and link["linkinfo"]["info_kind"] == "tun"
    assert link["linkinfo"]["info_data"]["type"] == "tap"
    (iface,) = au.vsctl_rows("Interface", f"name={tap.host_netdev}")
    assert iface["external_ids"]["iface-id"] == tap.iface_id
    assert tap.host_netdev in au.dp_ports()
    assert au.nb_rows("Logical_Switch_Port", f"name={tap.iface_id}")


def test_ping_within_a_team_not_across(network_world, results_dir):
    insts = network_world.instances
    lookups_before = _dp_lookups()
    seen = {}
    for a, b in itertools.permutations(insts, 2):
        same = a.team == b.team
        ok = au.ping_eventually(a.netns, b.port.ip4, attempts=15 if same else 2)
        seen[f"{a.team}/{a.index}->{b.team}/{b.index}"] = ok
        assert ok == same, f"ping {a.netns} -> {b.port.ip4}: {'ok' if ok else 'failed'}, expected " \
                           f"{'ok' if same else 'blocked'}"
    assert _dp_lookups() > lookups_before, "no packet went through the kernel datapath"
    au.record(results_dir, "agent-network", ping_matrix=seen)


def _dp_lookups() -> int:
    out = au.run("ovs-dpctl", "show", "system@ovs-system").stdout
    line = next(l for l in out.splitlines() if "lookups:" in l)
    parts = dict(kv.split(":") for kv in line.split()[1:])
    return int(parts["hit"]) + int(parts["missed"])
