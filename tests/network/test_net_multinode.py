"""The multi-node parts of the network plane on the session's single OVN stack (the
three-node cloud is integration/cluster/test_multinode.py): requested-chassis,
a network refusing deletion while another node has ports in it, egress rows
(router, SNAT, uplink switch, HA chassis group) created, converged and removed
in the network's transaction, gateway membership, edge validation of the new
fields, the config's remotes, and the duplicate system-id rule. Checked with
ovn-nbctl."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from agent import config
from agent._proto.devcloud.agent.v1 import network_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc as pb_grpc
from agent.drivers.ovsdb.sb import ChassisRow, OvnSb
from agent.errors import FailedPrecondition
from agent.metrics import Metrics
from agent.services.network.chassis import ChassisManager
from agent.services.network.model import NetworkSpec, PortSpec
from agent.services.network.model_cluster import EgressSpec
from tests.network.conftest import NODE, close_service, make_service
from tests.support.ovn import uniq


def _reason(err: grpc.RpcError) -> str:
    from tests.support.zfs import error_reason
    return error_reason(err)


@pytest.fixture(scope="module")
def sb_svc(ovn_stack):
    """The network service with the read-only SB too (egress needs it)."""
    svc = make_service(ovn_stack)
    sb = OvnSb(ovn_stack.sb_remote, metrics=Metrics(), timeout=3)
    from agent.services.network.egress import Gateways
    svc.sb = sb
    svc.backends.ovn.gateways = Gateways(sb)
    yield svc
    sb.close()
    close_service(svc)


def test_ports_request_this_chassis(net_svc, ovn_stack, ovn_tools, cleanup_networks):
    name = uniq("rc")
    cleanup_networks.append(name)
    net_svc.ensure_network(NetworkSpec(name=name, subnet4="10.77.0.0/24"))
    net_svc.ensure_port(PortSpec(network=name, name="p0", instance="i0"))
    lsp = ovn_tools.nb_rows("Logical_Switch_Port", f"name=dc.{name}.p0")[0]
    assert lsp["options"]["requested-chassis"] == ovn_stack.system_id
    # drift put back by ensure: someone moved it
    ovn_tools.nbctl("set", "Logical_Switch_Port", f"dc.{name}.p0", "options:requested-chassis=elsewhere")
    from tests.support.ovn import wait_until
    assert wait_until(lambda: any(d.reason == "REQUESTED_CHASSIS_DRIFT" for d in
                                  net_svc.port_drift(PortSpec(network=name, name="p0", instance="i0"))))
    assert net_svc.ensure_port(PortSpec(network=name, name="p0", instance="i0")).changed
    assert ovn_tools.nb_rows("Logical_Switch_Port", f"name=dc.{name}.p0")[0]["options"]["requested-chassis"] == \
        ovn_stack.system_id


def test_delete_network_refuses_other_nodes_ports_unless_forced(net_svc, ovn_stack, ovn_tools):
    name = uniq("on")
    other = make_service(ovn_stack, node=f"{NODE}-other")
    try:
        net_svc.ensure_network(NetworkSpec(name=name, subnet4="10.78.0.0/24"))
        other.ensure_port(PortSpec(network=name, name="o0", instance="io"))
        other.ensure_port(PortSpec(network=name, name="o1", instance="io"))
        net_svc.ensure_port(PortSpec(network=name, name="m0", instance="im"))
        with pytest.raises(FailedPrecondition) as e:
            net_svc.delete_network(name)
        assert e.value.reason == "PORTS_ON_OTHER_NODES" and f"{NODE}-other (2 ports)" in e.value.message
        with pytest.raises(FailedPrecondition) as e:
            other.delete_network(name)
        assert e.value.reason == "PORTS_ON_OTHER_NODES" and f"{NODE} (1 port)" in e.value.message
        assert len(ovn_tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-network={name}")) == 3
        assert net_svc.delete_network(name, force=True)
        assert ovn_tools.nb_rows("Logical_Switch", f"name=dc-{name}") == []
        # the other node's netdevs and OVS ports stay until released there
        assert ovn_tools.ovs_rows("Interface", f"external_ids:devcloud-node={NODE}-other",
                                  f"external_ids:devcloud-network={name}")
        assert other.delete_ports([(name, "o0"), (name, "o1")]) == 2
    finally:
        net_svc.delete_network(name, force=True)
        other.delete_ports([(name, "o0"), (name, "o1")])
        close_service(other)


def test_egress_rows_created_converged_removed(sb_svc, ovn_tools):
    name = uniq("eg")
    spec = NetworkSpec(name=name, subnet4="10.79.0.0/24", mtu=1400,
                       egress=EgressSpec("uplink", "203.0.113.10/24", "203.0.113.1"))
    try:
        assert sb_svc.ensure_network(spec).changed
        lr = ovn_tools.nb_rows("Logical_Router", f"name=dcr.{name}")[0]
        assert lr["external_ids"]["devcloud-owner"] == "devcloud-agent"
        lrps = {r["name"]: r for r in ovn_tools.nb_rows("Logical_Router_Port", f"external_ids:devcloud-network={name}")}
        assert lrps[f"dcr.{name}.lan"]["networks"] == "10.79.0.1/24"
        assert lrps[f"dcr.{name}.wan"]["networks"] == "203.0.113.10/24"
        assert lrps[f"dcr.{name}.wan"]["options"] == {"gateway_mtu": "1400"}
        nat = ovn_tools.nb_rows("NAT", f"external_ids:devcloud-network={name}")
        assert [(n["type"], n["external_ip"], n["logical_ip"]) for n in nat] == [("snat", "203.0.113.10",
                                                                                 "10.79.0.0/24")]
        route = ovn_tools.nb_rows("Logical_Router_Static_Route", f"external_ids:devcloud-network={name}")
        assert [(r["ip_prefix"], r["nexthop"]) for r in route] == [("0.0.0.0/0", "203.0.113.1")]
        ln = ovn_tools.nb_rows("Logical_Switch_Port", f"name=dcs.{name}.ln")[0]
        assert ln["type"] == "localnet" and ln["options"] == {"network_name": "uplink"}
        assert ovn_tools.nb_rows("HA_Chassis_Group", f"name=dcr.{name}")         # no gateway chassis here yet
        assert not sb_svc.ensure_network(spec).changed                            # converged: nothing written
        net = sb_svc.get_network(name)
        assert net.egress is not None and net.egress.router == f"dcr.{name}" and net.ports == []
        # a node marking itself as gateway joins every group; unmarking leaves
        assert f"dcr.{name}" in sb_svc.nb.gateway_membership("gw-x", True)
        assert [(g.chassis, g.priority) for g in sb_svc.get_network(name).egress.gateways] == [("gw-x", 100)]
        assert sb_svc.nb.gateway_membership("gw-x", True) == []
        # a changed egress is converged in place
        moved = NetworkSpec(name=name, subnet4="10.79.0.0/24", mtu=1400,
                            egress=EgressSpec("uplink2", "198.51.100.7/24", "198.51.100.1"))
        assert sb_svc.ensure_network(moved).changed
        nat = ovn_tools.nb_rows("NAT", f"external_ids:devcloud-network={name}")
        assert [n["external_ip"] for n in nat] == ["198.51.100.7"]
        assert sb_svc.get_network(name).egress.gateways[0].chassis == "gw-x"    # never removed by an ensure
        assert sb_svc.nb.gateway_membership("gw-x", False) == [f"dcr.{name}"]
        # egress removed: every gateway row goes, the network stays
        assert sb_svc.ensure_network(NetworkSpec(name=name, subnet4="10.79.0.0/24", mtu=1400)).changed
        for table in ("Logical_Router", "Logical_Router_Port", "NAT", "HA_Chassis_Group"):
            assert ovn_tools.nb_rows(table, f"external_ids:devcloud-network={name}") == [], table
        assert ovn_tools.nb_rows("Logical_Switch", f"name=dcx.{name}") == []
        assert sb_svc.get_network(name).egress is None
        assert sb_svc.ensure_network(spec).changed                                # and back
    finally:
        sb_svc.delete_network(name)
    for table in ("Logical_Router", "Logical_Router_Port", "NAT", "HA_Chassis_Group", "Logical_Switch_Port"):
        assert ovn_tools.nb_rows(table, f"external_ids:devcloud-network={name}") == [], table


def test_egress_without_sb_is_refused(net_svc):
    with pytest.raises(FailedPrecondition) as e:
        net_svc.ensure_network(NetworkSpec(name=uniq("ns"), subnet4="10.80.0.0/24",
                                           egress=EgressSpec("uplink", "203.0.113.10/24", "203.0.113.1")))
    assert e.value.reason == "NO_SB" and "[network].ovn_sb" in e.value.message


@pytest.mark.parametrize("egress, field", [
    (pb.EgressSpec(uplink="bad name", external_ip4="203.0.113.10/24", uplink_gateway4="203.0.113.1"),
     "spec.egress.uplink"),
    (pb.EgressSpec(uplink="up", external_ip4="203.0.113.10", uplink_gateway4="203.0.113.1"),
     "spec.egress.external_ip4"),
    (pb.EgressSpec(uplink="up", external_ip4="203.0.113.0/24", uplink_gateway4="203.0.113.1"),
     "spec.egress.external_ip4"),
    (pb.EgressSpec(uplink="up", external_ip4="10.0.0.200/16", uplink_gateway4="10.0.0.1"),
     "spec.egress.external_ip4"),                      # overlaps the team subnet
    (pb.EgressSpec(uplink="up", external_ip4="203.0.113.10/24", uplink_gateway4="198.51.100.1"),
     "spec.egress.uplink_gateway4"),
    (pb.EgressSpec(uplink="up", external_ip4="203.0.113.10/24", uplink_gateway4="203.0.113.10"),
     "spec.egress.uplink_gateway4"),
])
def test_egress_validation_names_the_field(net_agent, egress, field):
    from tests.network.test_net_api import _violations
    stub = pb_grpc.NetworkServiceStub(net_agent.channel)
    spec = pb.NetworkSpec(name="eg", subnet4="10.0.0.0/24")
    spec.egress.CopyFrom(egress)
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=spec), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in _violations(e.value)


def test_chassis_spec_validation_and_list_without_sb(net_agent):
    from tests.network.test_net_api import _violations
    stub = pb_grpc.NetworkServiceStub(net_agent.channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureChassis(pb.EnsureChassisRequest(spec=pb.ChassisSpec(ovn_remote="tcp:1.2.3.4:6642",
                                                                       encap_ip="1.2.3.4", gateway=True)), timeout=10)
    assert "spec.bridge_mappings" in _violations(e.value)
    with pytest.raises(grpc.RpcError) as e:
        stub.EnsureChassis(pb.EnsureChassisRequest(spec=pb.ChassisSpec(encap_ip="1.2.3.4")), timeout=10)
    assert "spec.ovn_remote" in _violations(e.value)            # no [network].ovn_sb to default to
    with pytest.raises(grpc.RpcError) as e:
        stub.ListChassis(pb.ListChassisRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and _reason(e.value) == "NO_SB"
    health = stub.GetChassis(pb.GetChassisRequest(), timeout=10).chassis.health
    assert not health.healthy and [k.ok for k in health.checks if k.name == "sb-chassis"] == [False]


@pytest.mark.parametrize("value, ok", [
    ("tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,tcp:10.0.0.3:6641", True), ("unix:/run/ovn/ovnsb_db.sock", True),
    ("ssl:[fd00::1]:6642", True), ("tcp:central:6641", False), ("tcp:10.0.0.1", False), ("ptcp:6641", False),
])
def test_remotes_are_validated(value, ok):
    for key in ("ovn_nb", "ovn_sb"):
        if ok:
            assert getattr(config.load(Path("/nonexistent"), [f"network.{key}={value}"]).network, key) == value
        else:
            with pytest.raises(config.ConfigError) as e:
                config.load(Path("/nonexistent"), [f"network.{key}={value}"])
            assert f"[network].{key}" in str(e.value)


@pytest.mark.parametrize("row, local, requested, dup", [
    # a fresh node, nobody has the name
    (None, {}, "10.0.0.5", False),
    # our own row (re-run)
    (ChassisRow("n1", "n1", [("geneve", "10.0.0.5")], False, {}), {"system-id": "n1", "hostname": "n1",
                                                                  "ovn-encap-ip": "10.0.0.5"}, "10.0.0.5", False),
    # this node moves its tunnel endpoint: the row still shows the old one, which is ours
    (ChassisRow("n1", "n1", [("geneve", "10.0.0.5")], False, {}), {"system-id": "n1", "hostname": "n1",
                                                                  "ovn-encap-ip": "10.0.0.5"}, "10.0.0.9", False),
    # a clone: same name, same hostname, another endpoint
    (ChassisRow("n1", "n1", [("geneve", "10.0.0.5")], False, {}), {}, "10.0.0.6", True),
    # another host's row reached with the same endpoint but another hostname, not ours yet
    (ChassisRow("n1", "host-b", [("geneve", "10.0.0.5")], False, {}), {"hostname": "host-a"}, "10.0.0.5", True),
])
def test_duplicate_system_id_rule(row, local, requested, dup):
    if row is None:
        return
    assert ChassisManager._duplicate(row, local, row.name, requested, {local.get("hostname", ""), "node-x"}) is dup
