"""Netlink driver against the real kernel, inside throwaway namespaces: one
plays the plane's "host netns", others play instances. Checked with `ip -j`."""
from __future__ import annotations

import subprocess

import pytest

from agent.drivers.netlink import Netlink
from agent.errors import AlreadyExists, FailedPrecondition, NotFound
from agent.metrics import Metrics


@pytest.fixture
def host(netns_factory):
    return netns_factory("h")


@pytest.fixture
def nl(host):
    driver = Netlink(Metrics(), host_netns=host)
    yield driver
    driver.close()


def test_probe_reports_kernel_and_features(nl):
    a = nl.probe()
    assert a.available, a.reason
    assert "veth" in a.features and a.version


def test_probe_of_missing_host_netns_is_unavailable():
    driver = Netlink(Metrics(), host_netns="dc-no-such-netns-x")
    try:
        a = driver.probe()
        assert not a.available and "dc-no-such-netns-x" in a.reason
    finally:
        driver.close()


def test_veth_with_peer_in_instance_netns(nl, host, netns_factory, ovn_tools):
    inst = netns_factory()
    nl.create_veth("dcv1", "eth0", mtu=1400, peer_mac="0a:58:0a:00:00:07", peer_netns=inst)
    nl.disable_ipv6("dcv1")
    nl.configure("dcv1", alias="devcloud owner=x kind=port", up=True)
    changed = nl.configure_peer(inst, "eth0", addresses=["10.0.0.7/24"], fresh=True)
    assert changed
    h = ovn_tools.link("dcv1", host)
    assert h["mtu"] == 1400 and h["ifalias"] == "devcloud owner=x kind=port" and "UP" in h["flags"]
    assert h["linkinfo"]["info_kind"] == "veth"
    assert ovn_tools.sysctl(host, "net.ipv6.conf.dcv1.disable_ipv6") == "1"
    p = ovn_tools.link("eth0", inst)
    assert p["address"] == "0a:58:0a:00:00:07" and p["mtu"] == 1400
    assert "10.0.0.7/24" in ovn_tools.addrs("eth0", inst)
    assert ovn_tools.link("dcv1") is None, "the host end must not appear in the agent's own netns"
    # idempotent re-configuration reports no change
    assert nl.configure_peer(inst, "eth0", addresses=["10.0.0.7/24"]) is False
    link = nl.link("dcv1")
    peer = nl.peer_link(inst, "eth0")
    assert peer.peer_index == link.index


def test_existing_name_and_missing_netns(nl, host, ovn_tools):
    nl.create_veth("dcv2", "dcv2p", mtu=0)
    with pytest.raises(AlreadyExists):
        nl.create_veth("dcv2", "dcv2q", mtu=0)
    with pytest.raises(NotFound):
        nl.create_veth("dcv3", "eth0", mtu=0, peer_netns="dc-no-such-netns-y")
    assert ovn_tools.link("dcv3", host) is None
    assert nl.link("dc-absent") is None
    assert nl.delete("dc-absent") is False


def test_move_peer_into_netns_renamed(nl, host, netns_factory, ovn_tools):
    inst = netns_factory()
    nl.create_veth("dcv4", "dcv4p", mtu=1450)
    nl.move("dcv4p", inst, "eth1")
    assert ovn_tools.link("dcv4p", host) is None
    moved = ovn_tools.link("eth1", inst)
    assert moved is not None and moved["mtu"] == 1450
    with pytest.raises(NotFound):
        nl.move("dcv4p", inst, "eth2")


def test_tap_multiqueue(nl, host, ovn_tools):
    nl.create_tap("dct1", mtu=1442, multiqueue=True)
    nl.create_tap("dct2", mtu=0, multiqueue=False)
    t1, t2 = ovn_tools.link("dct1", host), ovn_tools.link("dct2", host)
    assert t1["linkinfo"]["info_kind"] == "tun" and t1["mtu"] == 1442
    assert t1["linkinfo"]["info_data"]["type"] == "tap"
    assert t1["linkinfo"]["info_data"]["multi_queue"] is True
    assert t2["linkinfo"]["info_data"]["multi_queue"] is False
    assert nl.link("dct1").multiqueue and not nl.link("dct2").multiqueue
    with pytest.raises(AlreadyExists):
        nl.create_tap("dct1", mtu=0)


def test_bulk_delete_takes_only_the_given_links(nl, host, ovn_tools):
    for i in range(40):
        nl.create_veth(f"dcb{i}", f"dcb{i}p", mtu=0)
    nl.create_tap("dcbt", mtu=0)
    # a foreign veth in the same namespace, even in a link group of its own
    subprocess.run(["ip", "-n", host, "link", "add", "foreign0", "group", "7", "type", "veth", "peer", "foreign0p"],
                   check=True)
    idx = [nl.link(f"dcb{i}").index for i in range(40)] + [nl.link("dcbt").index]
    assert nl.delete_many(idx) == 41
    names = {l["ifname"] for l in ovn_tools.links(host)}
    assert not any(n.startswith("dcb") for n in names), names
    assert {"foreign0", "foreign0p", "lo"} <= names


def test_bridge_and_enslaving(nl, host, ovn_tools):
    nl.create_bridge("dcbr0", mtu=1400)
    nl.create_veth("dcv5", "dcv5p", mtu=1400)
    br = nl.link("dcbr0")
    nl.configure("dcv5", master=br.index, up=True)
    seen = ovn_tools.link("dcv5", host)
    assert seen["master"] == "dcbr0"
    if nl.bridge_vlan_supported():
        nl.delete("dcbr0")
        nl.create_bridge("dcbr0", vlan_filtering=True)
        nl.configure("dcv5", master=nl.link("dcbr0").index)
        nl.bridge_port_vlan(nl.link("dcv5").index, 42)
        out = subprocess.run(["bridge", "-n", host, "-j", "vlan", "show", "dev", "dcv5"], capture_output=True,
                             text=True).stdout
        assert '"vlan":42' in out.replace(" ", "")
    else:
        # this kernel lacks CONFIG_BRIDGE_VLAN_FILTERING: the driver says so instead of failing obscurely
        with pytest.raises(FailedPrecondition) as e:
            nl.create_bridge("dcbr1", vlan_filtering=True)
        assert e.value.reason == "NO_BRIDGE_VLAN"
        assert ovn_tools.link("dcbr1", host) is None
