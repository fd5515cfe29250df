"""Marks from the first instant: every netdev the agent creates is born in its link group
(set by the creating RTM_NEWLINK; the kernel ignores IFLA_IFALIAS there), a tap is only made
persistent after its mark is set, and an unmarked netdev of that group under a port's name
(a crash between the two requests) is finished or removed, never mistaken for a foreign one.
Checked with `ip -j -d link`."""
from __future__ import annotations

import subprocess

import pytest

from agent.drivers.netlink import BIRTH_GROUP, Netlink
from agent.errors import FailedPrecondition
from agent.metrics import Metrics
from agent.services.network.model import NetworkSpec, PortSpec
from tests.network.conftest import make_service, close_service
from tests.support.ovn import uniq, wait_until


@pytest.fixture
def host(netns_factory):
    return netns_factory("b")


@pytest.fixture
def nl(host):
    driver = Netlink(Metrics(), host_netns=host)
    yield driver
    driver.close()


def _group(link: dict) -> int:
    g = link.get("group", "default")
    return 0 if g == "default" else int(g)


def test_veth_both_ends_are_born_in_our_group(nl, host, netns_factory, ovn_tools):
    inst = netns_factory("i")
    nl.create_veth("dcg1", "dcg1p", mtu=1400)
    nl.create_veth("dcg2", "eth0", mtu=1400, peer_netns=inst)
    assert {_group(ovn_tools.link(n, host)) for n in ("dcg1", "dcg1p", "dcg2")} == {BIRTH_GROUP}
    assert _group(ovn_tools.link("eth0", inst)) == BIRTH_GROUP
    assert nl.link("dcg1").born_ours and not nl.link("dcg1").alias


def test_bridge_is_born_in_our_group(nl, host, ovn_tools):
    nl.create_bridge("dcgbr", mtu=1500)
    assert _group(ovn_tools.link("dcgbr", host)) == BIRTH_GROUP


def test_tap_is_marked_before_it_is_persistent(nl, host, ovn_tools):
    nl.create_tap("dcgt1", mtu=1442, alias="devcloud owner=devcloud-agent kind=port")
    t = ovn_tools.link("dcgt1", host)
    assert t["ifalias"] == "devcloud owner=devcloud-agent kind=port" and _group(t) == BIRTH_GROUP and t["mtu"] == 1442

    def crash():                               # a failure (or a crash) before TUNSETPERSIST
        raise RuntimeError("killed here")
    with pytest.raises(RuntimeError):
        nl._ns.create_tap(host, "dcgt2", multiqueue=False, configure=crash)
    assert ovn_tools.link("dcgt2", host) is None, "a tap that was never marked must not outlive its creator"


@pytest.fixture
def svc(ovn_stack):
    s = make_service(ovn_stack)
    yield s
    close_service(s)


def test_interrupted_creation_is_adopted_by_the_port_and_foreign_stays_foreign(svc, ovn_stack, ovn_tools):
    net = uniq("nb")
    svc.ensure_network(NetworkSpec(name=net, subnet4="10.44.0.0/24"))
    try:
        spec = PortSpec(network=net, name="p1", instance="i1")
        names = svc.port_names(net, "p1")
        # what a crash between RTM_NEWLINK and the mark leaves: our group, no ifalias
        svc.nl.create_veth(names.host, names.peer, mtu=1442)
        assert ovn_tools.link(names.host, ovn_stack.netns).get("ifalias", "") == ""
        port = svc.ensure_port(spec)
        link = ovn_tools.link(names.host, ovn_stack.netns)
        assert "net=" + net in link["ifalias"] and "port=p1" in link["ifalias"], link
        assert port.host_netdev == names.host
        assert svc.delete_port(net, "p1")
        assert ovn_tools.link(names.host, ovn_stack.netns) is None

        # the same name with neither our mark nor our group: someone else's, never touched
        other = svc.port_names(net, "p2")
        subprocess.run(["ip", "-n", ovn_stack.netns, "link", "add", other.host, "type", "veth", "peer", "name",
                        other.peer], check=True)
        with pytest.raises(FailedPrecondition) as e:
            svc.ensure_port(PortSpec(network=net, name="p2", instance="i2"))
        assert e.value.reason == "NOT_OURS"
        svc.delete_port(net, "p2")
        assert ovn_tools.link(other.host, ovn_stack.netns) is not None
        subprocess.run(["ip", "-n", ovn_stack.netns, "link", "del", other.host], check=True)
    finally:
        svc.delete_network(net)


def test_delete_network_refuses_foreign_logical_ports(svc, ovn_stack, ovn_tools):
    net = uniq("nf")
    svc.ensure_network(NetworkSpec(name=net, subnet4="10.45.0.0/24"))
    svc.ensure_port(PortSpec(network=net, name="p1", instance="i1"))
    ovn_tools.nbctl("lsp-add", f"dc-{net}", f"foreign-{net}")
    with pytest.raises(FailedPrecondition) as e:
        svc.delete_network(net)
    assert e.value.reason == "NOT_OURS" and f"foreign-{net}" in e.value.message
    # nothing was deleted: our port's netdev, OVS port and LSP, and the foreign LSP
    names = svc.port_names(net, "p1")
    assert ovn_tools.link(names.host, ovn_stack.netns) is not None
    assert ovn_tools.ovs_rows("Interface", f"name={names.host}")
    assert ovn_tools.nb_rows("Logical_Switch_Port", f"name={names.lsp}")
    assert ovn_tools.nb_rows("Logical_Switch_Port", f"name=foreign-{net}")
    ovn_tools.nbctl("lsp-del", f"foreign-{net}")
    assert wait_until(lambda: not svc.nb.foreign_ports(f"dc-{net}"))     # the IDL cache catches up
    assert svc.delete_network(net)
    assert ovn_tools.link(names.host, ovn_stack.netns) is None
    assert not ovn_tools.nb_rows("Logical_Switch", f"name=dc-{net}")
