"""NetworkService on the real stack: idempotency, immutable conflicts,
rollback, ownership (foreign objects untouched), bulk teardown, readiness,
traffic policy. Checked with ovn-nbctl / ovs-vsctl / ip -j / ping."""
from __future__ import annotations

import subprocess
import time

import pytest

from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.services.network.model import NetworkSpec, PortSpec, port_names
from tests.network.conftest import NODE
from tests.support.ovn import as_list, uniq


def _net(cleanup, svc, subnet="10.30.0.0/24", **kw):
    name = uniq("n")
    cleanup.append(name)
    return svc.ensure_network(NetworkSpec(name=name, subnet4=subnet, **kw))


def test_port_names_are_deterministic_and_fit_ifnamsiz():
    a = port_names("dc", "team-a", "vm1-eth0")
    assert a == port_names("dc", "team-a", "vm1-eth0")
    assert a.host.startswith("dc") and len(a.host) <= 15 and len(a.peer) <= 15
    assert a.lsp == "dc.team-a.vm1-eth0"
    assert port_names("dc", "team-a", "vm1-eth1").host != a.host
    assert len(port_names("abcd", "x" * 48, "y" * 63).peer.encode()) == 15


def test_ensure_network_idempotent_and_immutable(net_svc, cleanup_networks, ovn_tools):
    name = uniq("n")
    cleanup_networks.append(name)
    spec = NetworkSpec(name=name, subnet4="10.31.0.0/24", subnet6="fd31::/64", mtu=1400, dns_servers=("10.31.0.53",))
    results = [net_svc.ensure_network(spec) for _ in range(3)]
    assert [r.changed for r in results] == [True, False, False]
    ls = ovn_tools.nb_rows("Logical_Switch", f"name=dc-{name}")
    assert len(ls) == 1
    ext = ls[0]["external_ids"]
    assert ext["devcloud-owner"] == "devcloud-agent" and ext["devcloud-network"] == name
    assert ext["devcloud-subnet4"] == "10.31.0.0/24" and ext["devcloud-subnet6"] == "fd31::/64"
    dhcp = ovn_tools.nb_rows("DHCP_Options", f"external_ids:devcloud-network={name}")
    assert len(dhcp) == 1 and dhcp[0]["options"]["mtu"] == "1400" and dhcp[0]["options"]["server_id"] == "10.31.0.1"
    pg = ovn_tools.nb_rows("Port_Group", f"name=dc_{name.replace('-', '_')}")
    assert len(pg) == 1 and len(as_list(pg[0]["acls"])) == 5        # egress, intra4, intra6, nd, deny
    # mutable: mtu -> changed, DHCP updated in place
    changed = net_svc.ensure_network(NetworkSpec(**{**spec.__dict__, "mtu": 1300}))
    assert changed.changed and changed.mtu == 1300
    assert ovn_tools.nb_rows("DHCP_Options", f"external_ids:devcloud-network={name}")[0]["options"]["mtu"] == "1300"
    # immutable: subnet
    with pytest.raises(AlreadyExists):
        net_svc.ensure_network(NetworkSpec(name=name, subnet4="10.32.0.0/24"))
    assert ovn_tools.nb_rows("Logical_Switch", f"name=dc-{name}")[0]["external_ids"]["devcloud-subnet4"] == \
        "10.31.0.0/24"


def test_extra_allow_rules_become_acls(net_svc, cleanup_networks, ovn_tools):
    from agent.services.network.model import AllowRule
    name = uniq("n")
    cleanup_networks.append(name)
    rules = (AllowRule(source_cidr="192.168.5.0/24", protocol="tcp", port_min=22),
             AllowRule(source_network="other", protocol="udp", port_min=5000, port_max=5010))
    net = net_svc.ensure_network(NetworkSpec(name=name, subnet4="10.33.0.0/24", allow=rules))
    assert net.allow == rules
    matches = sorted(a["match"] for a in ovn_tools.nb_rows("ACL", f"external_ids:devcloud-network={name}"))
    pg = f"dc_{name.replace('-', '_')}"
    assert f"outport == @{pg} && ip4.src == 192.168.5.0/24 && tcp && tcp.dst == 22" in matches
    assert f"outport == @{pg} && ip4.src == $dc_other_ip4 && udp && udp.dst >= 5000 && udp.dst <= 5010" in matches
    net2 = net_svc.ensure_network(NetworkSpec(name=name, subnet4="10.33.0.0/24"))
    assert net2.changed and net2.allow == () and net2.acl_count == 3


def test_port_lifecycle_idempotent_with_marks(net_svc, cleanup_networks, netns_factory, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc)
    inst = netns_factory()
    spec = PortSpec(network=net.name, name="vm1-eth0", instance="vm1", peer_netns=inst)
    ports = [net_svc.ensure_port(spec, time.monotonic() + 10, wait_ready=True) for _ in range(3)]
    assert [p.changed for p in ports] == [True, False, False]
    p = ports[0]
    assert p.status.ready and p.status.up and p.status.ovn_installed and not p.status.missing
    names = net_svc.port_names(net.name, "vm1-eth0")
    # NB: addresses, port security, marks, port group membership
    lsp = ovn_tools.nb_rows("Logical_Switch_Port", f"name={names.lsp}")[0]
    assert as_list(lsp["addresses"]) == [f"{p.mac} {p.ip4}"] and as_list(lsp["port_security"]) == [f"{p.mac} {p.ip4}"]
    assert lsp["external_ids"]["devcloud-node"] == NODE and lsp["external_ids"]["devcloud-instance"] == "vm1"
    assert lsp["up"] is True
    pg = ovn_tools.nb_rows("Port_Group", f"name={net.port_group}")[0]
    assert lsp["_uuid"] in as_list(pg["ports"])
    # OVS: iface-id, attached-mac, owner, ovn-installed
    iface = ovn_tools.ovs_rows("Interface", f"name={names.host}")[0]
    assert iface["external_ids"]["iface-id"] == names.lsp and iface["external_ids"]["attached-mac"] == p.mac
    assert iface["external_ids"]["devcloud-owner"] == "devcloud-agent"
    assert iface["external_ids"]["ovn-installed"] == "true"
    # netdevs: host end in the stack's netns with mark, MTU, IPv6 off; peer in the instance with MAC + IP
    host = ovn_tools.link(names.host, ovn_stack.netns)
    assert host["ifalias"].startswith("devcloud ") and "port=vm1-eth0" in host["ifalias"]
    assert host["mtu"] == 1442 and "UP" in host["flags"]
    assert ovn_tools.sysctl(ovn_stack.netns, f"net.ipv6.conf.{names.host}.disable_ipv6") == "1"
    peer = ovn_tools.link("eth0", inst)
    assert peer["address"] == p.mac and f"{p.ip4}/24" in ovn_tools.addrs("eth0", inst)
    # DeletePort, then again (absent -> OK)
    assert net_svc.delete_port(net.name, "vm1-eth0") is True
    assert net_svc.delete_port(net.name, "vm1-eth0") is False
    assert not ovn_tools.nb_rows("Logical_Switch_Port", f"name={names.lsp}")
    assert not ovn_tools.ovs_rows("Interface", f"name={names.host}")
    assert ovn_tools.link(names.host, ovn_stack.netns) is None and ovn_tools.link("eth0", inst) is None
    with pytest.raises(NotFound):
        net_svc.get_port(net.name, "vm1-eth0")


def test_port_immutable_fields_and_address_checks(net_svc, cleanup_networks, ovn_tools):
    net = _net(cleanup_networks, net_svc, subnet="10.34.0.0/24")
    p = net_svc.ensure_port(PortSpec(network=net.name, name="a", ip4="10.34.0.20", mac="0a:00:00:00:00:20"))
    assert (p.ip4, p.mac) == ("10.34.0.20", "0a:00:00:00:00:20")
    for bad in (PortSpec(network=net.name, name="a", ip4="10.34.0.21"),
                PortSpec(network=net.name, name="a", mac="0a:00:00:00:00:21"),
                PortSpec(network=net.name, name="a", kind="tap"),
                PortSpec(network=net.name, name="a", instance="other")):
        with pytest.raises(AlreadyExists):
            net_svc.ensure_port(bad)
    with pytest.raises(AlreadyExists) as e:
        net_svc.ensure_port(PortSpec(network=net.name, name="b", ip4="10.34.0.20"))
    assert e.value.reason == "ADDRESS_IN_USE"
    with pytest.raises(InvalidArgument) as e:
        net_svc.ensure_port(PortSpec(network=net.name, name="c", ip4="10.35.0.5"))
    assert e.value.violations[0].field == "spec.ip4"
    with pytest.raises(InvalidArgument):
        net_svc.ensure_port(PortSpec(network=net.name, name="c", ip4="10.34.0.1"))   # the gateway
    with pytest.raises(NotFound):
        net_svc.ensure_port(PortSpec(network=uniq("missing"), name="c"))
    for name in ("b", "c"):
        assert not ovn_tools.nb_rows("Logical_Switch_Port", f"name=dc.{net.name}.{name}")


def test_failure_after_nb_row_rolls_everything_back(net_svc, cleanup_networks, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc, subnet="10.36.0.0/24")
    names = net_svc.port_names(net.name, "p1")
    with pytest.raises(NotFound):      # the netns does not exist: fails after the NB row was created
        net_svc.ensure_port(PortSpec(network=net.name, name="p1", peer_netns="dc-no-such-ns"))
    assert not ovn_tools.nb_rows("Logical_Switch_Port", f"name={names.lsp}")
    assert ovn_tools.link(names.host, ovn_stack.netns) is None
    # binding refused (a foreign interface claims the iface-id): netdev and NB row undone
    ovn_tools.vsctl("add-port", "br-int", f"fx{names.host[2:12]}", "--", "set", "Interface", f"fx{names.host[2:12]}",
                    "type=internal", f"external_ids:iface-id={names.lsp}", "external_ids:devcloud-owner=other")
    from tests.support.ovn import wait_until      # pre-existing: our cache has seen it
    assert wait_until(lambda: net_svc.ovs.interface_cached(f"fx{names.host[2:12]}") is not None)
    try:
        with pytest.raises(FailedPrecondition) as e:
            net_svc.ensure_port(PortSpec(network=net.name, name="p1"))
        assert f"fx{names.host[2:12]}" in e.value.message
        assert not ovn_tools.nb_rows("Logical_Switch_Port", f"name={names.lsp}")
        assert ovn_tools.link(names.host, ovn_stack.netns) is None
        assert not ovn_tools.ovs_rows("Interface", f"name={names.host}")
        assert ovn_tools.ovs_rows("Interface", f"name=fx{names.host[2:12]}")[0]["external_ids"]["devcloud-owner"] \
            == "other"
    finally:
        ovn_tools.vsctl("del-port", "br-int", f"fx{names.host[2:12]}")


def test_foreign_netdev_with_our_name_is_left_alone(net_svc, cleanup_networks, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc, subnet="10.37.0.0/24")
    names = net_svc.port_names(net.name, "p1")
    subprocess.run(["ip", "-n", ovn_stack.netns, "link", "add", names.host, "type", "veth", "peer", "name",
                    "fy" + names.host[2:]], check=True)
    try:
        with pytest.raises(FailedPrecondition) as e:
            net_svc.ensure_port(PortSpec(network=net.name, name="p1"))
        assert names.host in e.value.message
        assert not ovn_tools.nb_rows("Logical_Switch_Port", f"name={names.lsp}")
        assert net_svc.delete_port(net.name, "p1") is False
        net_svc.delete_network(net.name)
        assert ovn_tools.link(names.host, ovn_stack.netns) is not None, "foreign veth must survive"
    finally:
        subprocess.run(["ip", "-n", ovn_stack.netns, "link", "del", names.host])


def test_peer_left_in_place_then_moved(net_svc, cleanup_networks, netns_factory, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc, subnet="10.38.0.0/24")
    names = net_svc.port_names(net.name, "lx")
    p = net_svc.ensure_port(PortSpec(network=net.name, name="lx"))
    assert p.peer_netdev == names.peer and ovn_tools.link(names.peer, ovn_stack.netns)["address"] == p.mac
    inst = netns_factory()
    moved = net_svc.ensure_port(PortSpec(network=net.name, name="lx", peer_netns=inst, peer_name="eth5"))
    assert moved.changed and moved.peer_netns == inst
    assert ovn_tools.link(names.peer, ovn_stack.netns) is None
    assert f"{p.ip4}/24" in ovn_tools.addrs("eth5", inst)
    assert not net_svc.ensure_port(PortSpec(network=net.name, name="lx", peer_netns=inst, peer_name="eth5")).changed
    assert net_svc.diff_port(PortSpec(network=net.name, name="lx", peer_netns=inst, peer_name="eth5")) == []
    subprocess.run(["ip", "-n", ovn_stack.netns, "link", "set", names.host, "down"], check=True)
    assert "netdev: down" in net_svc.diff_port(PortSpec(network=net.name, name="lx", peer_netns=inst,
                                                        peer_name="eth5"))


def test_tap_port(net_svc, cleanup_networks, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc, subnet="10.39.0.0/24")
    p = net_svc.ensure_port(PortSpec(network=net.name, name="vm-eth0", kind="tap", multiqueue=True))
    link = ovn_tools.link(p.host_netdev, ovn_stack.netns)
    assert link["linkinfo"]["info_data"]["type"] == "tap" and link["linkinfo"]["info_data"]["multi_queue"]
    assert ovn_tools.ovs_rows("Interface", f"name={p.host_netdev}")[0]["external_ids"]["iface-id"] == p.iface_id
    assert not net_svc.ensure_port(PortSpec(network=net.name, name="vm-eth0", kind="tap", multiqueue=True)).changed
    with pytest.raises(AlreadyExists):
        net_svc.ensure_port(PortSpec(network=net.name, name="vm-eth0", kind="tap", multiqueue=False))


def test_concurrent_ensure_port_same_network_unique_addresses(net_svc, cleanup_networks, ovn_tools):
    import threading
    net = _net(cleanup_networks, net_svc, subnet="10.40.0.0/24")
    out, errors = [], []

    def work(i):
        try:
            out.append(net_svc.ensure_port(PortSpec(network=net.name, name=f"c{i}")))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({p.ip4 for p in out}) == 16
    rows = ovn_tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-network={net.name}")
    assert len({as_list(r["addresses"])[0] for r in rows}) == 16


def test_bulk_delete_and_network_teardown(net_svc, cleanup_networks, netns_factory, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc, subnet="10.41.0.0/24")
    inst = netns_factory()
    for i in range(12):
        net_svc.ensure_port(PortSpec(network=net.name, name=f"b{i}", peer_netns=inst if i == 0 else ""))
    assert net_svc.delete_ports([(net.name, f"b{i}") for i in range(6)] + [(net.name, "nope")]) == 6
    assert len(ovn_tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-network={net.name}")) == 6
    hosts = [net_svc.port_names(net.name, f"b{i}").host for i in range(12)]
    present = {l["ifname"] for l in ovn_tools.links(ovn_stack.netns)}
    assert not present & set(hosts[:6]) and set(hosts[6:]) <= present
    assert ovn_tools.link("eth0", inst) is None, "the instance end went with its host end"
    assert net_svc.delete_network(net.name) is True
    assert net_svc.delete_network(net.name) is False
    assert not ovn_tools.nb_rows("Logical_Switch", f"name=dc-{net.name}")
    assert not ovn_tools.nb_rows("Port_Group", f"name={net.port_group}")
    assert not ovn_tools.nb_rows("DHCP_Options", f"external_ids:devcloud-network={net.name}")
    assert not ovn_tools.ovs_rows("Interface", f"external_ids:devcloud-network={net.name}")
    present = {l["ifname"] for l in ovn_tools.links(ovn_stack.netns)}
    assert not present & set(hosts)


def test_reconcile_removes_our_ovs_ports_without_netdev(net_svc, cleanup_networks, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc, subnet="10.42.0.0/24")
    p = net_svc.ensure_port(PortSpec(network=net.name, name="r1"))
    subprocess.run(["ip", "-n", ovn_stack.netns, "link", "del", p.host_netdev], check=True)
    ovn_tools.vsctl("add-port", "br-int", "foreignr", "--", "set", "Interface", "foreignr", "type=internal")
    try:
        assert net_svc.reconcile()["stale_ovs_ports_removed"] >= 1
        assert not ovn_tools.ovs_rows("Interface", f"name={p.host_netdev}")
        assert ovn_tools.ovs_rows("Interface", "name=foreignr"), "foreign OVS port must survive"
    finally:
        ovn_tools.vsctl("del-port", "br-int", "foreignr")


def test_inventory_lists_our_objects_with_marks(net_svc, cleanup_networks):
    net = _net(cleanup_networks, net_svc, subnet="10.43.0.0/24")
    net_svc.ensure_port(PortSpec(network=net.name, name="g1", instance="inst-1"))
    inv = [o for o in net_svc.inventory() if o.network == net.name]
    kinds = sorted(o.kind for o in inv)
    assert kinds == ["logical-port", "logical-switch", "netdev", "ovs-interface", "veth-peer"]
    assert all(o.instance == "inst-1" for o in inv if o.kind != "logical-switch")


def test_bridge_backend(net_svc, netns_factory, ovn_tools, ovn_stack):
    name = uniq("br")
    vlan = 0 if not net_svc.nl.bridge_vlan_supported() else 12
    spec = NetworkSpec(name=name, backend="bridge", subnet4="10.44.0.0/24", mtu=1450, vlan=vlan)
    try:
        nets = [net_svc.ensure_network(spec) for _ in range(3)]
        assert [n.changed for n in nets] == [True, False, False]
        br = ovn_tools.link(nets[0].bridge, ovn_stack.netns)
        assert br["linkinfo"]["info_kind"] == "bridge" and br["ifalias"].startswith("devcloud ")
        inst = netns_factory()
        p = net_svc.ensure_port(PortSpec(network=name, name="e0", peer_netns=inst, ip4="10.44.0.5"))
        assert ovn_tools.link(p.host_netdev, ovn_stack.netns)["master"] == nets[0].bridge
        assert "10.44.0.5/24" in ovn_tools.addrs("eth0", inst)
        assert not net_svc.ensure_port(PortSpec(network=name, name="e0", peer_netns=inst, ip4="10.44.0.5")).changed
        assert [x.name for x in net_svc.list_ports(name)] == ["e0"]
        assert net_svc.get_network(name).bridge == nets[0].bridge
        if not vlan:
            with pytest.raises(FailedPrecondition):
                net_svc.ensure_network(NetworkSpec(name=uniq("br"), backend="bridge", vlan=10))
    finally:
        assert net_svc.delete_network(name)
    assert ovn_tools.link(nets[0].bridge, ovn_stack.netns) is None


def test_readiness_wait_reports_missing_condition(ovn_stack, cleanup_networks, net_svc):
    """With ovn-controller stopped nothing gets installed: the wait ends at the
    deadline with status naming the missing conditions (not an error)."""
    net = _net(cleanup_networks, net_svc, subnet="10.45.0.0/24")
    ovn_stack.stop_component("controller")
    try:
        p = net_svc.ensure_port(PortSpec(network=net.name, name="w1"), time.monotonic() + 1.0, wait_ready=True)
        assert not p.status.ready and "ovn-installed" in p.status.missing and "up" in p.status.missing
    finally:
        ovn_stack.start_component("controller")
    from tests.support.ovn import wait_until
    assert wait_until(lambda: net_svc.get_port(net.name, "w1").status.ready, timeout=20)


def test_ipv6_ports_get_addresses_and_talk(net_svc, cleanup_networks, netns_factory, ovn_tools):
    name = uniq("v6")
    cleanup_networks.append(name)
    net_svc.ensure_network(NetworkSpec(name=name, subnet4="10.46.0.0/24", subnet6="fd46::/64"))
    a, b = netns_factory(), netns_factory()
    pa = net_svc.ensure_port(PortSpec(network=name, name="a", peer_netns=a), time.monotonic() + 10, wait_ready=True)
    pb_ = net_svc.ensure_port(PortSpec(network=name, name="b", peer_netns=b), time.monotonic() + 10, wait_ready=True)
    assert pa.ip6 == "fd46::2" and pb_.ip6 == "fd46::3", (pa.ip6, pb_.ip6)
    lsp = ovn_tools.nb_rows("Logical_Switch_Port", f"name={pa.iface_id}")[0]
    assert as_list(lsp["addresses"]) == [f"{pa.mac} {pa.ip4} {pa.ip6}"]
    assert f"{pb_.ip6}/64" in ovn_tools.addrs("eth0", b)
    assert ovn_tools.ping_eventually(a, pb_.ip6), "IPv6 within a team (ND + intra6 ACL) must work"
    assert ovn_tools.ping_eventually(a, pb_.ip4)


def test_stale_ports_of_a_network_deleted_elsewhere(net_svc, cleanup_networks, ovn_tools, ovn_stack):
    net = _net(cleanup_networks, net_svc, subnet="10.47.0.0/24")
    p = net_svc.ensure_port(PortSpec(network=net.name, name="s1"))
    assert (net.name, "s1") not in net_svc.stale_ports()
    # another node deleted the team network: NB rows gone, our local port remains
    ovn_tools.nbctl("ls-del", f"dc-{net.name}")
    from tests.support.ovn import wait_until      # our NB cache learns of the deletion asynchronously
    assert wait_until(lambda: (net.name, "s1") in net_svc.stale_ports(), timeout=10)
    assert net_svc.delete_ports(net_svc.stale_ports()) >= 1
    assert ovn_tools.link(p.host_netdev, ovn_stack.netns) is None
    assert not ovn_tools.ovs_rows("Interface", f"name={p.host_netdev}")
