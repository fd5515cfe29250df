"""The one contract of a network backend, and the choice of the backend serving a network.

Two backends implement NetworkBackend, one module each (like lxc/incus
internal/server/network: network_interface.go with driver_bridge.go / driver_ovn.go):
- backend_ovn.OvnBackend: a logical switch per team network in the cluster-wide OVN
  NB; ports are logical switch ports bound to br-int (needs NB and Open_vSwitch).
- backend_bridge.BridgeBackend: a Linux bridge per team network on this node, for
  nodes without OVN; ports are netdevs enslaved to it.

The host netdev of a port is the same in both (netdevs.Netdevs, given to both).
Backends take no locks: NetworkService and Ports hold them. Every method takes
`deadline` (time.monotonic() seconds, None = unbounded) and never waits past it.
"""
from __future__ import annotations

from typing import Callable, Protocol

from agent.errors import FailedPrecondition
from agent.services.drift import Drift
from agent.services.network.model import (BACKEND_BRIDGE, Network, NetworkSpec, OwnedObject, Port, PortNames,
                                          PortSpec, PortStatus)
from agent.services.revert import Reverter

# Step boundaries inside ensure_port / delete_ports, announced through the optional
# `checkpoint(step)` callback (the instance plane's crash tests stop the process there).
PORT_ENSURE_STEPS = ("lsp-created", "netdev-created", "ovs-bound")
PORT_DELETE_STEPS = ("ovs-unbound", "netdevs-deleted", "lsps-deleted")
Checkpoint = Callable[[str], None]
NamedPort = tuple[str, str, PortNames]          # (network, port, its object names)


def no_checkpoint(step: str) -> None:
    """The checkpoint of a caller that asked for none."""
    return None


class PortRelease(Protocol):
    """What a backend holds for some ports besides their netdevs, measured before anything
    is deleted. Ports.delete_ports calls detach(), deletes the netdevs, then remove()."""

    def detach(self, deadline: float | None) -> None:
        """Undo what needs the netdev (OVS ports: never one without its netdev)."""

    def remove(self, deadline: float | None) -> None:
        """Delete the rest (logical ports) once the netdevs are gone."""

    def covers(self, names: PortNames) -> bool:
        """True when this release deletes something of that port."""


class NothingToRelease:
    """The release of a backend whose ports are only their netdevs."""

    def detach(self, deadline: float | None) -> None:
        """Nothing to detach."""

    def remove(self, deadline: float | None) -> None:
        """Nothing to remove."""

    def covers(self, names: PortNames) -> bool:
        """Never: only the netdev is deleted."""
        return False


class NetworkBackend(Protocol):
    """A way to build team networks and their ports. `kind` is the NetworkSpec.backend
    value it serves ("ovn" | "bridge")."""

    kind: str

    # -- networks ---------------------------------------------------------------
    def ensure_network(self, spec: NetworkSpec, deadline: float | None) -> Network:
        """Create or converge the network (measure, then act; changed=False when nothing was
        needed). Raises InvalidArgument (spec incomplete for this backend), AlreadyExists
        IMMUTABLE_FIELD (an immutable field differs), FailedPrecondition NOT_OURS (a same-named
        object is not ours), Unavailable (its database is down)."""

    def find_network(self, name: str, deadline: float | None) -> Network | None:
        """The network without its port list (the hot path of ports), or None when this
        backend has no network `name`. Reads caches only."""

    def get_network(self, name: str, deadline: float | None) -> Network | None:
        """The observed network with its ports, or None when absent."""

    def list_networks(self, deadline: float | None) -> list[Network]:
        """Every network of ours this backend knows."""

    def delete_network(self, name: str, deadline: float | None, force: bool = False) -> bool:
        """Delete the network with all its ports (on this node; other nodes' netdevs are
        their agents'). Absent -> False (after removing this node's leftovers of an
        interrupted delete, when the backend can tell them). Raises FailedPrecondition
        NOT_OURS, deleting nothing, when the network or one of its ports is not ours, and
        PORTS_ON_OTHER_NODES (naming them) when other nodes have ports in it, unless force."""

    # -- ports --------------------------------------------------------------------
    def ensure_port(self, spec: PortSpec, net: Network, names: PortNames, revert: Reverter,
                    deadline: float | None, checkpoint: Checkpoint) -> Port:
        """Create or converge one NIC of `net` (an existing network of this backend),
        registering the undo of each object it creates with `revert`. Raises like
        Ports.ensure_port."""

    def readiness(self, names: PortNames, until: float | None) -> PortStatus:
        """The port's readiness now (until=None), or once ready or at `until` (monotonic);
        the status names what is missing. Raises Unavailable (a database connection lost)."""

    def get_port(self, network: str, name: str, names: PortNames, deadline: float | None) -> Port | None:
        """The observed port, or None when it does not exist."""

    def list_ports(self, network: str, all_nodes: bool, deadline: float | None) -> list[Port]:
        """Ports of this node (or of all nodes), of one network ("" = all), from caches."""

    def release_ports(self, ports: list[NamedPort], deadline: float | None) -> PortRelease:
        """Measure what this backend holds for `ports` (read-only). Raises FailedPrecondition
        OTHER_NODE when one is bound to another node: nothing may be deleted then."""

    def port_drift(self, spec: PortSpec, names: PortNames, net: Network | None,
                   deadline: float | None) -> list[Drift]:
        """What differs between `spec` and this backend's objects of the port (its netdev
        is Netdevs.drift's). Read-only."""

    # -- node upkeep --------------------------------------------------------------
    def reconcile(self, links: list, deadline: float | None) -> dict[str, int]:
        """Startup pass over a fresh link dump; returns counts by name."""

    def stale_ports(self, deadline: float | None) -> list[tuple[str, str]]:
        """(network, port) of this node's ports whose network no longer exists."""

    def inventory(self, deadline: float | None) -> list[OwnedObject]:
        """Objects of ours this backend holds beyond netdevs (GC/Diff)."""


class Backends:
    """The backends of this node and the choice of the one serving a network: this
    node's Linux bridge of that name when there is one, else OVN when configured."""

    def __init__(self, bridge: NetworkBackend, ovn: NetworkBackend | None) -> None:
        self.bridge = bridge
        self.ovn = ovn
        self.all: tuple[NetworkBackend, ...] = (bridge, ovn) if ovn is not None else (bridge,)

    def ovn_required(self) -> NetworkBackend:
        """The OVN backend. Raises FailedPrecondition NO_OVN when it is not configured."""
        if self.ovn is None:
            raise FailedPrecondition("OVN is not configured on this node (set [network].ovn_nb or enable the "
                                     "embedded stack); only the bridge backend is available", reason="NO_OVN")
        return self.ovn

    def for_spec(self, spec: NetworkSpec) -> NetworkBackend:
        """The backend a new network asks for. Raises FailedPrecondition NO_OVN."""
        return self.bridge if spec.backend == BACKEND_BRIDGE else self.ovn_required()

    def serving(self, name: str, deadline: float | None) -> tuple[NetworkBackend, Network | None]:
        """The backend serving network `name` and the network (None when it does not exist)."""
        net = self.bridge.find_network(name, deadline)
        if net is not None or self.ovn is None:
            return self.bridge, net
        return self.ovn, self.ovn.find_network(name, deadline)
