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
