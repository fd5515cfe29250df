"""OVSDB drivers against real ovsdb-servers: NB rows (convergence of two
agents, address allocation under concurrency, ownership) and the local
Open_vSwitch db (binding, iface-id claims). Checked with ovn-nbctl/ovs-vsctl."""
from __future__ import annotations

import ipaddress
import threading

import pytest

from agent.drivers.ovsdb.nb import AclRule, NetworkRows, OvnNb, PortRow
from agent.drivers.ovsdb.vswitch import OvsDb
from agent.errors import AlreadyExists, FailedPrecondition, ResourceExhausted
from agent.metrics import Metrics
from tests.support.ovn import as_list, uniq, wait_until

OWNER = "devcloud-test"


@pytest.fixture(scope="module")
def nb_pair(ovn_stack):
    """Two NB clients = two agents on two nodes sharing one NB."""
    a = OvnNb(ovn_stack.nb_remote, metrics=Metrics(), owner=OWNER, timeout=5)
    b = OvnNb(ovn_stack.nb_remote, metrics=Metrics(), owner=OWNER, timeout=5)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def net(nb_pair):
    name = uniq("n")
    rows = NetworkRows(switch=f"sw-{name}", port_group=f"pg_{name.replace('-', '_')}",
                       marks={"devcloud-owner": OWNER, "devcloud-network": name},
                       immutable={"devcloud-subnet4": "10.50.0.0/24"},
                       dhcp4_cidr="10.50.0.0/24", dhcp4_options={"lease_time": "3600", "server_id": "10.50.0.1",
                                                                 "server_mac": "0a:58:0a:32:00:01"},
                       acls=[AclRule("deny", "to-lport", 900, f"outport == @pg_{name.replace('-', '_')} && ip",
                                     "drop")])
    yield rows
    nb_pair[0].delete_network(rows.switch, rows.port_group, name)


def _port(rows: NetworkRows, name: str, **kw) -> PortRow:
    return PortRow(name=name, switch=rows.switch, port_group=rows.port_group,
                   marks={**rows.marks, "devcloud-node": "n1"}, subnet4="10.50.0.0/24", reserved=("10.50.0.1",), **kw)


def test_two_agents_ensuring_the_same_network_converge(nb_pair, net, ovn_tools):
    a, b = nb_pair
    results = []
    threads = [threading.Thread(target=lambda c=c: results.append(c.ensure_network(net))) for c in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert len(ovn_tools.nb_rows("Logical_Switch", f"name={net.switch}")) == 1
    assert len(ovn_tools.nb_rows("Port_Group", f"name={net.port_group}")) == 1
    dhcp = ovn_tools.nb_rows("DHCP_Options", f"external_ids:devcloud-network={net.marks['devcloud-network']}")
    assert len(dhcp) == 1 and dhcp[0]["cidr"] == "10.50.0.0/24"
    acls = ovn_tools.nb_rows("ACL", f"external_ids:devcloud-network={net.marks['devcloud-network']}")
    assert [(x["priority"], x["action"]) for x in acls] == [(900, "drop")]
    assert a.ensure_network(net) is False and b.ensure_network(net) is False


def test_immutable_mark_conflict(nb_pair, net):
    a, _ = nb_pair
    a.ensure_network(net)
    other = NetworkRows(**{**net.__dict__, "immutable": {"devcloud-subnet4": "10.99.0.0/24"}})
    with pytest.raises(AlreadyExists) as e:
        a.ensure_network(other)
    assert e.value.metadata["field"] == "devcloud-subnet4"


def test_concurrent_allocation_from_two_agents_never_repeats(nb_pair, net, ovn_tools):
    a, b = nb_pair
    a.ensure_network(net)
    errors = []

    def worker(client, i):
        try:
            client.ensure_ports([_port(net, f"{net.switch}-p{i}")])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=((a, b)[i % 2], i)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rows = ovn_tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-network={net.marks['devcloud-network']}")
    ips = [as_list(r["addresses"])[0].split()[1] for r in rows]
    macs = [as_list(r["addresses"])[0].split()[0] for r in rows]
    assert len(rows) == 40 and len(set(ips)) == 40 and len(set(macs)) == 40
    assert "10.50.0.1" not in ips
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.50.0.0/24") for ip in ips)
    assert all(r["port_security"] == r["addresses"] for r in rows)
    pg = ovn_tools.nb_rows("Port_Group", f"name={net.port_group}")[0]
    assert len(as_list(pg["ports"])) == 40


def test_bulk_ensure_in_one_transaction_allocates_distinct_addresses(nb_pair, net):
    a, _ = nb_pair
    a.ensure_network(net)
    res = a.ensure_ports([_port(net, f"{net.switch}-b{i}") for i in range(10)])
    assert len({ips[0] for _, _, ips in res}) == 10
    assert all(changed for changed, _, _ in res)
    assert all(not c for c, _, _ in a.ensure_ports([_port(net, f"{net.switch}-b{i}") for i in range(10)]))


def test_address_in_use_and_exhaustion(nb_pair, ovn_tools):
    a, _ = nb_pair
    name = uniq("x")
    rows = NetworkRows(switch=f"sw-{name}", port_group=f"pg_{name.replace('-', '_')}",
                       marks={"devcloud-owner": OWNER, "devcloud-network": name}, immutable={})
    a.ensure_network(rows)
    try:
        small = dict(switch=rows.switch, port_group=rows.port_group, marks={**rows.marks, "devcloud-node": "n"},
                     subnet4="10.60.0.0/30", reserved=("10.60.0.1",))
        a.ensure_ports([PortRow(name=f"{name}-1", ip4="10.60.0.2", **small)])
        with pytest.raises(AlreadyExists) as e:
            a.ensure_ports([PortRow(name=f"{name}-2", ip4="10.60.0.2", **small)])
        assert e.value.reason == "ADDRESS_IN_USE"
        with pytest.raises(ResourceExhausted):
            a.ensure_ports([PortRow(name=f"{name}-3", **small)])
        assert not ovn_tools.nb_rows("Logical_Switch_Port", f"name={name}-3")
    finally:
        a.delete_network(rows.switch, rows.port_group, name)


def test_foreign_switch_with_our_name_is_never_touched(nb_pair, ovn_tools):
    a, _ = nb_pair
    name = uniq("f")
    ovn_tools.nbctl("ls-add", f"sw-{name}", "--", "set", "Logical_Switch", f"sw-{name}", "external_ids:owner=someone")
    assert wait_until(lambda: a.db.lookup("Logical_Switch", "name", f"sw-{name}") is not None)   # pre-existing
    try:
        rows = NetworkRows(switch=f"sw-{name}", port_group=f"pg_{name.replace('-', '_')}",
                           marks={"devcloud-owner": OWNER, "devcloud-network": name}, immutable={})
        with pytest.raises(FailedPrecondition) as e:
            a.ensure_network(rows)
        assert e.value.reason == "NOT_OURS"
        with pytest.raises(FailedPrecondition):
            a.delete_network(rows.switch, rows.port_group, name)
        ls = ovn_tools.nb_rows("Logical_Switch", f"name=sw-{name}")
        assert len(ls) == 1 and ls[0]["external_ids"] == {"owner": "someone"}
        assert not ovn_tools.nb_rows("Port_Group", f"name=pg_{name.replace('-', '_')}")
    finally:
        ovn_tools.nbctl("ls-del", f"sw-{name}")


@pytest.fixture(scope="module")
def ovsdb(ovn_stack):
    c = OvsDb(ovn_stack.ovs_remote, metrics=Metrics(), owner=OWNER, timeout=5)
    yield c
    c.close()


def test_bind_replaces_our_stale_claimant_but_not_a_foreign_one(ovsdb, ovn_tools):
    iface_id = uniq("iid")
    ovsdb.bind("br-int", "dcstale1", {"iface-id": iface_id})
    changed, removed = ovsdb.bind("br-int", "dcnew1", {"iface-id": iface_id, "attached-mac": "0a:58:00:00:00:01"})
    assert changed and removed == ["dcstale1"]
    assert not ovn_tools.ovs_rows("Interface", "name=dcstale1")
    assert ovn_tools.ovs_rows("Interface", "name=dcnew1")[0]["external_ids"]["iface-id"] == iface_id
    assert ovsdb.bind("br-int", "dcnew1", {"iface-id": iface_id, "attached-mac": "0a:58:00:00:00:01"}) == (False, [])
    # a foreign interface claiming the same iface-id under another owner
    ovn_tools.vsctl("add-port", "br-int", "foreign1", "--", "set", "Interface", "foreign1",
                    f"external_ids:iface-id={iface_id}-2", "external_ids:devcloud-owner=someone-else")
    assert wait_until(lambda: ovsdb.interface_cached("foreign1") is not None)                   # pre-existing
    try:
        with pytest.raises(FailedPrecondition) as e:
            ovsdb.bind("br-int", "dcnew2", {"iface-id": f"{iface_id}-2"})
        assert "foreign1" in e.value.message and e.value.reason == "IFACE_ID_CLAIMED"
        assert not ovn_tools.ovs_rows("Interface", "name=dcnew2")
        assert ovn_tools.ovs_rows("Interface", "name=foreign1")[0]["external_ids"]["devcloud-owner"] == "someone-else"
        with pytest.raises(FailedPrecondition):
            ovsdb.unbind(["foreign1"])
    finally:
        ovn_tools.vsctl("del-port", "br-int", "foreign1")
        ovsdb.unbind(["dcnew1"])
    assert not ovn_tools.ovs_rows("Interface", "name=dcnew1")


def test_chassis_settings_respect_another_tools_values(ovsdb, ovn_tools):
    info = ovsdb.chassis("br-int")
    assert info.bridge_exists and info.bridge_datapath_type == "netdev"
    current = info.external_ids["system-id"]
    # the stack's launcher marked the row as ours: re-applying the same values changes nothing
    assert ovsdb.ensure_chassis({"system-id": current}, "br-int", "netdev") is False
    original_owner = ovn_tools.vsctl("get", "Open_vSwitch", ".", "external_ids:devcloud-owner").strip().strip('"')
    ovn_tools.vsctl("remove", "Open_vSwitch", ".", "external_ids", "devcloud-owner")
    try:
        with pytest.raises(FailedPrecondition) as e:
            ovsdb.ensure_chassis({"system-id": "someone-else"}, "br-int")
        assert e.value.metadata["key"] == "system-id"
        assert ovn_tools.vsctl("get", "Open_vSwitch", ".", "external_ids:system-id").strip().strip('"') == current
    finally:
        ovn_tools.vsctl("set", "Open_vSwitch", ".", f"external_ids:devcloud-owner={original_owner}")


def test_cache_read_retries_while_the_idl_thread_changes_the_cache():
    # ovs.db.custom_index raises KeyError for an index entry whose row the IDL thread just removed
    from agent.drivers.ovsdb.client import _retry
    outcomes = [KeyError("uuid"), RuntimeError("dictionary changed size during iteration"), "row"]

    def read():
        o = outcomes.pop(0)
        if isinstance(o, Exception):
            raise o
        return o
    assert _retry(read) == "row" and outcomes == []


def test_ovsdb_json_parses_with_the_c_parser_when_debian_ships_it():
    import json
    import os

    import ovs.json

    from agent.drivers.ovsdb import fastjson
    found = any(os.path.exists(os.path.join(fastjson.DEBIAN_DIR, "_json" + s))
                for s in __import__("importlib.machinery").machinery.EXTENSION_SUFFIXES)
    if not found:
        pytest.skip("python3-openvswitch's ovs/_json extension for this Python is not installed")
    assert fastjson.enable() == "C" and ovs.json.PARSER == ovs.json.PARSER_C
    msg = {"id": 1, "result": {"Interface": {"u1": {"new": {"name": "dcv1", "external_ids": ["map", [
        ["iface-id", "dc.t.p1"]]], "ofport": 7, "mtu": ["set", []], "x": 1.5, "s": "\u00e9\"\\"}}}}, "error": None}
    parsed = ovs.json.from_string(json.dumps(msg))
    assert type(ovs.json.Parser()).__module__ != "ovs.json"     # the C type, not the Python class
    assert parsed == msg
