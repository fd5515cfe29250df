"""NetworkService: the network plane's facade (plain dataclasses in and out).

Composed by the constructor, each part getting what it needs:
- Netdevs (netdevs.py): the host netdevs of ports, common to both backends.
- one object per backend behind backend.NetworkBackend: BridgeBackend
  (backend_bridge.py, always) and OvnBackend (backend_ovn.py, when NB and the local
  Open_vSwitch are configured); Backends picks the one serving a network.
- Ports (ports.py): the port use cases.
- ChassisManager (chassis.py): this node as an OVN chassis, its health, the cluster view.
- Gateways (egress.py): the gateway chassis of egress networks (SB), given to OvnBackend.
Team networks and the node-wide passes (reconcile, GC, inventory) are here. The model, names and ACL policy live in model.py; readiness in watch.py.

Every method takes `deadline` (time.monotonic() seconds, None = unbounded) and never
waits past it.
"""
from __future__ import annotations

from agent.drivers.contracts.netlink import NetlinkContract
from agent.drivers.contracts.ovsdb import OvnNbContract, OvnSbContract, OvsDbContract
from agent.errors import NotFound
from agent.metrics import Metrics
from agent.services.drift import Drift
from agent.services.locks import KeyedLocks, SharedExclusive, WhenBusy
from agent.services.network.backend import Backends, Checkpoint
from agent.services.network.backend_bridge import BridgeBackend
from agent.services.network.backend_ovn import OvnBackend
from agent.services.network.chassis import ChassisManager
from agent.services.network.egress import Gateways
from agent.services.network.model import (OWNER, Chassis, ChassisSpec, Network, NetworkSpec, OwnedObject, Port,
                                          PortEvent, PortNames, PortSpec, PortStatus)
from agent.services.network.netdev_watch import NetdevSubscription, NetdevWatch
from agent.services.network.model_cluster import ClusterChassis
from agent.services.network.netdevs import Netdevs
from agent.services.network.ports import Ports
from agent.services.network.watch import ReadinessHub, Subscription


class NetworkService:
    """Use cases of the network plane."""

    def __init__(self, *, netlink: NetlinkContract, nb: OvnNbContract | None, ovs: OvsDbContract | None,
                 metrics: Metrics, node: str, netdev_prefix: str = "dc", integration_bridge: str = "br-int",
                 owner: str = OWNER, ready_timeout: float = 30.0, sb: OvnSbContract | None = None,
                 sb_remote: str = "") -> None:
        self.nl, self.nb, self.ovs, self.sb = netlink, nb, ovs, sb
        self.metrics = metrics
        self.node = node
        self.prefix = netdev_prefix
        self.integration_bridge = integration_bridge
        self.owner = owner
        self.netdevs = Netdevs(netlink, owner=owner, prefix=netdev_prefix, node=node, metrics=metrics)
        self.hub: ReadinessHub | None = None
        ovn = None
        if nb is not None and ovs is not None:
            self.hub = ReadinessHub(nb, ovs, owner)
            ovn = OvnBackend(nb, ovs, self.hub, self.netdevs, owner=owner, node=node,
                             integration_bridge=integration_bridge, metrics=metrics, gateways=Gateways(sb))
        self.chassis = ChassisManager(ovs, sb, nb, netlink, node=node, integration_bridge=integration_bridge,
                                      default_remote=sb_remote)
        self.backends = Backends(BridgeBackend(netlink, self.netdevs, owner=owner, prefix=netdev_prefix, node=node),
                                 ovn)
        self._net_locks = KeyedLocks("network")
        # port operations share a network; deleting it waits for them and refuses new ones
        self._gate = SharedExclusive("network", when_busy=WhenBusy.ABORT, shared_work="port operations")
        self.ports = Ports(self.backends, self.netdevs, gate=self._gate, hub=self.hub, prefix=netdev_prefix,
                           ready_timeout=ready_timeout)
        self.netdev_watch = NetdevWatch(netlink, owner)

    def close(self) -> None:
        """Stop listening to the OVSDB caches and to link changes (the drivers are closed by
        their owner)."""
        if self.hub is not None:
            self.hub.close()
        self.netdev_watch.close()

    def watch_netdevs(self) -> NetdevSubscription:
        """NetdevGone events: a host netdev of one of our ports deleted (by anyone, the agent
        included). The link monitor runs while someone subscribes. Close the subscription."""
        return self.netdev_watch.subscribe()

    def netns_paths(self) -> tuple[str, str]:
        """(where host-side netdevs live, the agent's own namespace) as enterable paths
        (/proc/1/ns/net for the host's, /run/netns/<name>...). Read-only."""
        return self.nl.host_end_netns(), self.nl.own_netns()

    def is_host_netns(self, path: str) -> bool:
        """True when `path` is the host's (PID 1's) network namespace. Read-only."""
        return self.nl.is_init_netns(path)

    def find_network(self, name: str, deadline: float | None = None) -> Network | None:
        """The network without its port list (caches only), None when absent."""
        return self.backends.serving(name, deadline)[1]

    @property
    def ovn_enabled(self) -> bool:
        """True when NB and the local Open_vSwitch are configured (the OVN backend exists)."""
        return self.backends.ovn is not None

    # -- team networks -----------------------------------------------------
    def ensure_network(self, spec: NetworkSpec, deadline: float | None = None) -> Network:
        """Create or reconcile a team network. Idempotent: same spec again ->
        changed=False. OVN: switch + DHCP options + port group + ACLs in ONE NB
        transaction, converging when several nodes ensure the same spec.

        Raises InvalidArgument (spec inconsistent), AlreadyExists (immutable
        field differs), FailedPrecondition (same-named object not ours, backend
        missing: NO_OVN), Aborted (same network in flight), Unavailable (NB down)."""
        with self._net_locks.hold(spec.name):
            return self.backends.for_spec(spec).ensure_network(spec, deadline)

    def delete_network(self, name: str, deadline: float | None = None, force: bool = False) -> bool:
        """Delete a team network with all its ports. OVN: the NB rows in one transaction
        (which refuses, deleting nothing, when a port of the switch is not ours), then
        this node's OVS ports and netdevs (bulk: one OVS transaction, one link-group
        delete); other nodes' netdevs are left to their agents (their ports vanish from
        NB); a retry after a crash in between finds this node's leftovers by their marks.
        Bridge: the bridge with our ports on it. Absent -> OK, returns False.

        Waits (bounded by the deadline) for port operations in flight on the network and
        refuses new ones meanwhile. Raises FailedPrecondition NOT_OURS (a same-named
        object, or a logical port or bridge port in the network, is not ours: nothing is
        deleted), PORTS_ON_OTHER_NODES (OVN: other nodes still have ports in it, named;
        force deletes anyway), Aborted (operation in flight, or port operations still in
        flight at the deadline), Unavailable."""
        with self._net_locks.hold(name), self._gate.exclusive(name, deadline=deadline):
            backend, _ = self.backends.serving(name, deadline)
            return backend.delete_network(name, deadline, force)

    def get_network(self, name: str, deadline: float | None = None) -> Network:
        """Observed state of a team network. Raises NotFound, Unavailable."""
        backend, _ = self.backends.serving(name, deadline)
        net = backend.get_network(name, deadline)
        if net is None:
            raise NotFound(f"network {name} does not exist", reason="NETWORK_NOT_FOUND", metadata={"network": name})
        return net

    def list_networks(self, deadline: float | None = None) -> list[Network]:
        """Every team network of ours: OVN ones (cluster-wide) and this node's bridge ones."""
        out = [n for b in self.backends.all for n in b.list_networks(deadline)]
        return sorted(out, key=lambda n: n.name)

    # -- ports (ports.py) -------------------------------------------------------
    def port_names(self, network: str, port: str) -> PortNames:
        """Deterministic names of a port's objects, computable before creation."""
        return self.ports.port_names(network, port)

    def ensure_port(self, spec: PortSpec, deadline: float | None = None, *, wait_ready: bool = False,
                    ready_timeout: float | None = None, checkpoint: Checkpoint | None = None) -> Port:
        """Create or reconcile one NIC; idempotent. Errors: Ports.ensure_port."""
        return self.ports.ensure_port(spec, deadline, wait_ready=wait_ready, ready_timeout=ready_timeout,
                                      checkpoint=checkpoint)

    def wait_port_ready(self, network: str, name: str, deadline: float | None = None,
                        ready_timeout: float | None = None) -> PortStatus:
        """Wait (bounded) until the port is ready; see Ports.wait_port_ready."""
        return self.ports.wait_port_ready(network, name, deadline, ready_timeout)

    def delete_port(self, network: str, name: str, deadline: float | None = None) -> bool:
        """Delete one NIC; absent -> False. Errors: Ports.delete_port."""
        return self.ports.delete_port(network, name, deadline)

    def delete_ports(self, ports: list[tuple[str, str]], deadline: float | None = None, *,
                     checkpoint: Checkpoint | None = None) -> int:
        """Delete many NICs of this node in bulk; absent ones skipped. See Ports.delete_ports."""
        return self.ports.delete_ports(ports, deadline, checkpoint=checkpoint)

    def get_port(self, network: str, name: str, deadline: float | None = None) -> Port:
        """Observed state of one NIC. Raises NotFound, Unavailable."""
        return self.ports.get_port(network, name, deadline)

    def list_ports(self, network: str = "", *, all_nodes: bool = False,
                   deadline: float | None = None) -> list[Port]:
        """Ports of this node (or of every node), from the caches. See Ports.list_ports."""
        return self.ports.list_ports(network, all_nodes=all_nodes, deadline=deadline)

    def watch_ports(self, network: str = "") -> tuple[list[PortEvent], Subscription]:
        """Readiness snapshot + subscription; FailedPrecondition NO_OVN. See Ports.watch_ports."""
        return self.ports.watch_ports(network)

    def diff_port(self, spec: PortSpec, deadline: float | None = None) -> list[str]:
        """What differs from `spec` ([] = in sync). Read-only. See Ports.diff_port."""
        return self.ports.diff_port(spec, deadline)

    def port_drift(self, spec: PortSpec, deadline: float | None = None) -> list[Drift]:
        """diff_port as Drift items with reason codes. Read-only. See Ports.port_drift."""
        return self.ports.port_drift(spec, deadline)

    # -- chassis (chassis.py) ------------------------------------------------------
    def ensure_chassis(self, spec: ChassisSpec, deadline: float | None = None) -> Chassis:
        """Make this node an OVN chassis (and a gateway when asked); idempotent; the reply carries
        the health. Errors: ChassisManager.ensure (InvalidArgument, FailedPrecondition NO_OVS /
        NOT_OURS / DUPLICATE_SYSTEM_ID, Unavailable)."""
        return self.chassis.ensure(spec, deadline)

    def get_chassis(self, bridge: str = "", deadline: float | None = None) -> Chassis:
        """Observed chassis settings and health. Raises FailedPrecondition NO_OVS, Unavailable."""
        return self.chassis.get(bridge, deadline)

    def list_chassis(self, deadline: float | None = None) -> tuple[list[ClusterChassis], dict[str, int]]:
        """The cluster view (every SB chassis) and our ports per node. Read-only. Raises
        FailedPrecondition NO_SB, Unavailable."""
        return self.chassis.cluster(deadline)

    # -- startup, GC, drift ----------------------------------------------------
    def reconcile(self, deadline: float | None = None) -> dict[str, int]:
        """Startup pass over one link dump (pyroute2 parses ~1,600 netdevs slowly on a
        full node): learn this node's bridge networks, sweep unmarked netdevs of ours,
        remove OVS ports of ours whose netdev no longer exists (never leave an OVS port
        without its netdev). Idempotent. Returns counts. Raises Unavailable."""
        links = self.nl.links()
        counts = {"bridges": 0, "stale_ovs_ports_removed": 0,
                  "unmarked_netdevs_removed": len(self.netdevs.sweep_unmarked(links=links))}
        for backend in self.backends.all:
            counts.update(backend.reconcile(links, deadline))
        return counts

    def sweep_unmarked(self, *, dry_run: bool = False, links: list | None = None) -> list[str]:
        """Remove (unless dry_run) and name the netdevs of our link group never marked;
        see Netdevs.sweep_unmarked."""
        return self.netdevs.sweep_unmarked(dry_run=dry_run, links=links)

    def stale_ports(self, deadline: float | None = None) -> list[tuple[str, str]]:
        """(network, port) of this node's OVN ports whose team network no longer
        exists in NB (deleted from another node). Not deleted here: pass them to
        delete_ports (the caller decides; an NB that was wiped would list all)."""
        return sorted({p for b in self.backends.all for p in b.stale_ports(deadline)})

    def inventory(self, deadline: float | None = None) -> list[OwnedObject]:
        """Every object of ours: this node's netdevs (link dump), OVS interfaces,
        and NB logical ports bound to this node, plus our logical switches.
        For GarbageCollect/Diff in the instance plane (full scans: not a hot path)."""
        return self.netdevs.inventory() + [o for b in self.backends.all for o in b.inventory(deadline)]

    def probe_all(self) -> dict[str, object]:
        """Availability of every facility the plane uses (never raises)."""
        out: dict[str, object] = {"netlink": self.nl.probe()}
        if self.nb is not None:
            out["ovn-nb"] = self.nb.probe()
        if self.ovs is not None:
            out["ovsdb"] = self.ovs.probe()
        if self.sb is not None:
            out["ovn-sb"] = self.sb.probe()
        return out
