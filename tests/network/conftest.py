"""Fixtures of the network fast tier: drivers and the service wired to the
session's OVN stack, and an in-process agent serving NetworkService."""
from __future__ import annotations

import shutil

import pytest

from agent.drivers.netlink import Netlink
from agent.drivers.ovsdb.nb import OvnNb
from agent.drivers.ovsdb.vswitch import OvsDb
from agent.metrics import Metrics
from agent.services.network.service import NetworkService
from agent.services.network.model import OWNER
from tests.support.ovn import PID, agent_overrides
from tests.support.server import start_inprocess, temp_dir

NODE = f"node-{PID}"


def make_service(stack, node: str = NODE) -> NetworkService:
    m = Metrics()
    kw = dict(metrics=m, owner=OWNER, timeout=3, probe_interval_ms=2000)
    return NetworkService(netlink=Netlink(m, host_netns=stack.netns), nb=OvnNb(stack.nb_remote, **kw),
                          ovs=OvsDb(stack.ovs_remote, **kw), metrics=m, node=node, ready_timeout=10)


def close_service(svc: NetworkService) -> None:
    svc.close()
    svc.nb.close()
    svc.ovs.close()
    svc.nl.close()


@pytest.fixture(scope="module")
def net_svc(ovn_stack):
    svc = make_service(ovn_stack)
    yield svc
    close_service(svc)


@pytest.fixture
def cleanup_networks(net_svc):
    """Names appended here are deleted (with their ports) after the test."""
    names: list[str] = []
    yield names
    for name in names:
        net_svc.delete_network(name)


@pytest.fixture(scope="module")
def net_agent(ovn_stack):
    """A real in-process agent (gRPC over a unix socket) with the network plane on."""
    tmp = temp_dir()
    agent = start_inprocess(tmp, agent_overrides(ovn_stack) + [f"node.name={NODE}-agent"])
    yield agent
    agent.stop()
    shutil.rmtree(tmp, ignore_errors=True)
