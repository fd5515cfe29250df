"""openvswitch kernel module and an OVS bridge forwarding on the kernel datapath."""
import json
import pathlib
import re

import pytest


@pytest.fixture(scope="module")
def ovs(sh):
    """openvswitch-switch running (started here, and stopped again, if it was not)."""
    sh("modprobe", "openvswitch")
    was_active = sh("systemctl", "is-active", "openvswitch-switch", check=False).stdout.strip() == "active"
    if not was_active:
        sh("systemctl", "start", "openvswitch-switch")
    yield
    if not was_active:
        sh("systemctl", "stop", "openvswitch-switch")


def test_module_loads(sh):
    sh("modprobe", "openvswitch")
    assert pathlib.Path("/sys/module/openvswitch").is_dir()


@pytest.fixture
def bridge(ovs, sh, unique):
    """A bridge on the kernel datapath plus two netns attached by veth."""
    br, nss = f"dcbr{unique}", [f"dcns-{unique}-{i}" for i in (1, 2)]
    sh("ovs-vsctl", "--timeout=120", "add-br", br, "--", "set", "bridge", br, "datapath_type=system")
    try:
        for i, ns in enumerate(nss, 1):
            host_if, ns_if = f"dc{unique}h{i}", f"dc{unique}n{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
            sh("ip", "link", "set", host_if, "up")
            sh("ovs-vsctl", "--timeout=120", "add-port", br, host_if)
            sh("ip", "-n", ns, "addr", "add", f"10.250.0.{i}/24", "dev", ns_if)
            sh("ip", "-n", ns, "link", "set", ns_if, "up")
        yield br, nss
    finally:
        for ns in nss:
            sh("ip", "netns", "del", ns, check=False)   # takes the veth pair with it
        sh("ovs-vsctl", "--timeout=120", "--if-exists", "del-br", br)


def test_bridge_is_in_the_kernel_datapath(bridge, sh):
    br, _ = bridge
    assert sh("ovs-vsctl", "get", "bridge", br, "datapath_type").stdout.strip() == "system"
    dp = sh("ovs-dpctl", "show").stdout
    assert "system@ovs-system" in dp
    assert f": {br} (internal)" in dp, dp
    (link,) = json.loads(sh("ip", "-d", "-j", "link", "show", br).stdout)
    assert link["linkinfo"]["info_kind"] == "openvswitch"


def _lookups(sh):
    """Kernel datapath packet lookups so far (hit + missed): cumulative, unlike flows."""
    m = re.search(r"lookups: hit:(\d+) missed:(\d+)", sh("ovs-dpctl", "show", "system@ovs-system").stdout)
    return int(m[1]) + int(m[2])


def test_ping_through_kernel_datapath(bridge, sh):
    _, (ns1, _) = bridge
    before = _lookups(sh)
    r = sh("ip", "netns", "exec", ns1, "ping", "-c", "3", "-W", "10", "10.250.0.2", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _lookups(sh) >= before + 3, "the pings did not go through the kernel datapath"
