"""EnsureChassis on a private stack (it rewrites the chassis settings):
x3 -> changed only the first time; a new integration bridge is created with
our mark; checked with ovs-vsctl."""
from __future__ import annotations

from agent.services.network.model import ChassisSpec
from tests.network.conftest import close_service, make_service
from tests.support.ovn import Tools


def test_ensure_chassis_idempotent(private_ovn_stack):
    stack, tools = private_ovn_stack, Tools(private_ovn_stack)
    svc = make_service(stack)
    try:
        spec = ChassisSpec(system_id=stack.system_id, ovn_remote=stack.sb_remote, encap_ip="127.0.0.2",
                           bridge_datapath_type="netdev")
        results = [svc.ensure_chassis(spec) for _ in range(3)]
        assert [r.changed for r in results] == [True, False, False]
        assert tools.vsctl("get", "Open_vSwitch", ".", "external_ids:ovn-encap-ip").strip().strip('"') == "127.0.0.2"
        assert results[0].encap_ip == "127.0.0.2" and results[0].bridge_exists

        other = ChassisSpec(system_id=stack.system_id, ovn_remote=stack.sb_remote, encap_ip="127.0.0.2",
                            bridge_datapath_type="netdev", bridge="br-dc")
        assert svc.ensure_chassis(other).changed
        br = tools.ovs_rows("Bridge", "name=br-dc")[0]
        assert br["datapath_type"] == "netdev" and br["fail_mode"] == "secure"
        assert br["external_ids"]["devcloud-owner"] == "devcloud-agent"
        assert tools.vsctl("get", "Open_vSwitch", ".", "external_ids:ovn-bridge").strip().strip('"') == "br-dc"
        assert not svc.ensure_chassis(other).changed
    finally:
        close_service(svc)
