"""Composition of the network plane.

[network].ovn_nb set      -> use that NB (one or several Raft members) and the local Open_vSwitch db;
                              start nothing. [network].ovn_sb adds the read-only SB (chassis health,
                              gateway chassis, cluster view).
ovn_nb empty, embedded_ovn -> start the embedded local OVN stack under
                              <state_dir>/ovn (supervised, stopped with the agent,
                              its netns and netdevs kept so the data plane survives).
ovn_nb empty, no embedded  -> bridge backend only.
"""
from __future__ import annotations

import time
from pathlib import Path

from agent._proto.devcloud.agent.v1 import network_pb2_grpc
from agent.api.network import NetworkServicer
from agent.api.server import Registration
from agent.composition import Planes, Step
from agent.config import Config
from agent.drivers.base import Availability
from agent.drivers.embedded.ovn_stack import OvnStack
from agent.drivers.netlink import Netlink
from agent.drivers.ovsdb.nb import OvnNb
from agent.drivers.ovsdb.sb import OvnSb
from agent.drivers.ovsdb.vswitch import OvsDb
from agent.metrics import Metrics
from agent.model.marks import OWNER
from agent.services.identity import all_of, from_facility
from agent.services.network.service import NetworkService

DEFAULT_OVS_DB = "unix:/var/run/openvswitch/db.sock"


def build_network(cfg: Config, planes: Planes, metrics: Metrics) -> NetworkService | None:
    """Build drivers and the service, register the servicer, startup and shutdown steps."""
    n = cfg.network
    if not n.enabled:
        return None
    stack = None
    nb_remote, sb_remote, ovs_remote, host_netns = n.ovn_nb, n.ovn_sb, n.ovs_db or DEFAULT_OVS_DB, n.host_netns
    if not n.ovn_nb and n.embedded_ovn:
        stack = OvnStack(Path(cfg.node.state_dir) / "ovn", system_id=cfg.node_name, netns=n.embedded_netns,
                         datapath_type=n.datapath_type or "netdev", bridge=n.integration_bridge)
        nb_remote, ovs_remote, host_netns = stack.nb_remote, stack.ovs_remote, n.host_netns or stack.netns
        sb_remote = n.ovn_sb or stack.sb_remote
    netlink = Netlink(metrics, host_netns=host_netns)
    nb: OvnNb | None = None
    ovs: OvsDb | None = None
    sb: OvnSb | None = None
    if nb_remote and sb_remote:           # read-only, connected lazily: chassis health, gateways, cluster view
        sb = OvnSb(sb_remote, metrics=metrics, timeout=n.ovsdb_timeout, probe_interval_ms=n.ovsdb_probe_interval_ms)
    if nb_remote:
        nb = OvnNb(nb_remote, metrics=metrics, owner=OWNER, timeout=n.ovsdb_timeout,
                   probe_interval_ms=n.ovsdb_probe_interval_ms)
        ovs = OvsDb(ovs_remote, metrics=metrics, owner=OWNER, timeout=n.ovsdb_timeout,
                    probe_interval_ms=n.ovsdb_probe_interval_ms)
    service = NetworkService(netlink=netlink, nb=nb, ovs=ovs, metrics=metrics, node=cfg.node_name,
                             netdev_prefix=n.netdev_prefix, integration_bridge=n.integration_bridge,
                             ready_timeout=n.ready_timeout, sb=sb, sb_remote=sb_remote)

    planes.services.network = service
    planes.facilities["netlink"] = netlink.probe
    if stack is not None:
        planes.facilities["ovn-stack"] = stack.health
        planes.own_processes.append(stack.pids)
        embedded = stack

        def start_stack() -> None:
            embedded.start()
            embedded.supervise()
        planes.startup.append(Step("network.embedded-ovn", start_stack, plane="network", gates=("network_ovn",)))
        planes.shutdown.append(stack.stop)                 # runs last: after the drivers closed
    if nb is not None and ovs is not None:
        planes.facilities["ovn-nb"] = nb.probe
        planes.facilities["ovsdb"] = ovs.probe
        planes.shutdown.extend([nb.close, ovs.close])
        if sb is not None:
            planes.facilities["ovn-sb"] = sb.probe
            planes.shutdown.append(sb.close)
        planes.capabilities["network_ovn"] = all_of("netlink", "ovn-nb", "ovsdb")
    else:
        planes.capabilities["network_ovn"] = lambda f: Availability.missing(
            "OVN is not configured: set [network].ovn_nb or embedded_ovn = true")
    planes.capabilities["network_bridge"] = from_facility("netlink")

    def reconcile() -> None:
        service.reconcile(time.monotonic() + 30)
    planes.startup.append(Step("network.reconcile", reconcile, plane="network",
                               gates=("network_ovn", "network_bridge")))
    planes.shutdown.extend([service.close, netlink.close])
    planes.registrations.append(Registration(
        "devcloud.agent.v1.NetworkService",
        lambda s: network_pb2_grpc.add_NetworkServiceServicer_to_server(NetworkServicer(service), s)))
    return service

