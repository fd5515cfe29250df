"""Fixtures of the multi-node cluster tier: a simulated N-node OVN cloud (harness.py) per test
module, standalone or Raft central, always brought down (by PID) at the end, also on failure.

Measured numbers go through the `measure` fixture and are printed in pytest's terminal summary
(visible with -q, no -s needed). Tests never assert on timings.
"""
from __future__ import annotations

import os

import pytest

from integration.cluster.harness import Cluster, missing_binaries

_measured: list[tuple[str, str]] = []


def require_cluster() -> None:
    if os.geteuid() != 0:
        pytest.skip("the cluster harness needs root (network namespaces, veth, nsenter)")
    miss = missing_binaries()
    if miss:
        pytest.skip(f"cluster harness: missing {', '.join(miss)} "
                    "(apt-get install ovn-central ovn-host openvswitch-switch iproute2 ethtool util-linux)")


def _cluster(**kw):
    require_cluster()
    c = Cluster(**kw)
    try:
        c.up()
        _measured.append((f"up ({'raft' if c.raft else 'standalone'}, {c.n} nodes)",
                          ", ".join(f"{k} {v:.3f}s" for k, v in c.timings.items())))
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def standalone_cluster():
    """3 nodes, standalone OVN central."""
    yield from _cluster(nodes=3, raft=False)


@pytest.fixture(scope="module")
def raft_cluster():
    """3 nodes, NB and SB as 3-member Raft clusters, northd on every central member."""
    yield from _cluster(nodes=3, raft=True)


@pytest.fixture(scope="session")
def cloud(cgroup_session_dir, measure):
    """Three nodes with an agent each, Raft central, uplink on nodes 2 and 3, two teams
    (integration/cluster/cloud.py); shared by the test_multinode* modules, down at the end."""
    require_cluster()
    from agent.drivers import zfs as zfsdrv
    from integration.cluster import cloud as cl
    flavor, reason = zfsdrv.detect_flavor()
    if not flavor:
        pytest.skip(f"no ZFS for the node agents' pools: {reason}")
    c = cl.build(cgroup_session_dir)
    measure("multi-node cloud up (3 agents, Raft central)", ", ".join(f"{k} {v:.2f}s" for k, v in c.timings.items()))
    try:
        yield c
    finally:
        report = cl.teardown(c)
        measure("multi-node cloud down", f"{report.get('seconds', 0):.2f}s, SIGKILLed {report.get('killed')}")


@pytest.fixture(scope="session")
def fleet(cloud, measure):
    """One instance of each team on every node (aN, bN), ready, with a default route via the
    team gateway (what DHCP's router option gives a real guest)."""
    import ipaddress
    from concurrent.futures import ThreadPoolExecutor

    from integration.cluster import cloud as cl
    jobs = [(i, f"{t[-1]}{i}", t) for i in range(1, 4) for t in cl.TEAMS]
    with ThreadPoolExecutor(6) as ex:
        vms = list(ex.map(lambda j: cloud.prepare(*j), jobs))
    for vm in vms:
        gw = str(ipaddress.ip_network(cl.TEAMS[vm.team]).network_address + 1)
        cl.run(["ip", "route", "replace", "default", "via", gw], netns=vm.netns)
    cloud.wait_ports_up(*(vm.names.nics[0].lsp for vm in vms))
    measure("PrepareInstance (container, 1 NIC, wait_ready) x6 on 3 nodes, 6 at once",
            cl.summary_ms([vm.prepare_seconds for vm in vms]))
    return {vm.id: vm for vm in vms}


@pytest.fixture
def cluster_factory():
    """Clusters of a test's own (e.g. Cluster(chassis=False)); all brought down at teardown."""
    require_cluster()
    made: list[Cluster] = []

    def make(**kw) -> Cluster:
        c = Cluster(**kw)
        made.append(c)
        return c.up()

    yield make
    for c in made:
        c.down()


@pytest.fixture(scope="session")
def measure():
    """measure(name, text): a number for the terminal summary (and stdout)."""
    def record(name: str, text: str) -> None:
        _measured.append((name, text))
        print(f"{name}: {text}")
    return record


def pytest_terminal_summary(terminalreporter):
    if _measured:
        terminalreporter.section("cluster harness: measured (no assertions on these)")
        for name, text in _measured:
            terminalreporter.write_line(f"{name}: {text}")
