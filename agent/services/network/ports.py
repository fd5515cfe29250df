"""Port use cases: a NIC of an instance = the host netdev (veth pair or tap,
netdevs.py) + what the backend serving its network adds (OVN: a logical switch
port and the binding to br-int; bridge: enslaving to the network's bridge).

Order of creation: NB row (address allocation) -> netdev -> OVS binding, so an
OVS port never exists without its netdev; each step registers its undo with a
Reverter (nothing half-created). Deletion runs the other way, in bulk: one OVS
transaction, one link-group delete, one NB transaction.

Locks: a port operation holds its network's gate shared (deleting the network
holds it exclusively: a port operation meanwhile is ABORTED) and the port's key
(a second operation on it meanwhile is ABORTED).
"""
from __future__ import annotations

import time
from contextlib import ExitStack

from agent.errors import NotFound
from agent.services.drift import Drift
from agent.services.locks import KeyedLocks, SharedExclusive
from agent.services.network.backend import (  # noqa: F401 - the steps are re-exported for the instance plane
    PORT_DELETE_STEPS, PORT_ENSURE_STEPS, Backends, Checkpoint, no_checkpoint)
from agent.services.network.model import Port, PortEvent, PortNames, PortSpec, PortStatus, port_names
from agent.services.network.netdevs import Netdevs
from agent.services.network.watch import ReadinessHub, Subscription
from agent.services.revert import Reverter

_READY_MARGIN = 0.5                  # at most this much of the call deadline is kept to send the reply


class Ports:
    """The ports of this node, each built by the backend serving its network."""

    def __init__(self, backends: Backends, netdevs: Netdevs, *, gate: SharedExclusive, hub: ReadinessHub | None,
                 prefix: str, ready_timeout: float) -> None:
        self.backends = backends
        self.netdevs = netdevs
        self.gate = gate                            # per network: port operations shared, network deletion exclusive
        self.hub = hub
        self.prefix = prefix
        self.ready_timeout = ready_timeout          # bound of a readiness wait when the call has no deadline
        self._locks = KeyedLocks("port")

    def port_names(self, network: str, port: str) -> PortNames:
        """Deterministic names of a port's objects, computable before creation."""
        return port_names(self.prefix, network, port)

    def _ready_until(self, deadline: float | None, ready_timeout: float | None) -> float:
        """When a readiness wait ends: ready_timeout (default the service's) from now, and a
        slice of the call's deadline kept to send the reply."""
        end = time.monotonic() + (ready_timeout or self.ready_timeout)
        if deadline is not None:
            end = min(end, deadline - min(_READY_MARGIN, 0.1 * max(0.0, deadline - time.monotonic())))
        return end

    # -- ensure ----------------------------------------------------------------------
    def ensure_port(self, spec: PortSpec, deadline: float | None = None, *, wait_ready: bool = False,
                    ready_timeout: float | None = None, checkpoint: Checkpoint | None = None) -> Port:
        """Create or reconcile one NIC. Idempotent (changed=False the second time).
        With wait_ready, waits (bounded by the deadline and ready_timeout, default
        the service's) for ovn-installed and NB up; on timeout the returned
        status lists what is missing. A bridge port is ready at once.

        Raises NotFound (network missing), AlreadyExists (immutable field
        differs, address or MAC in use), ResourceExhausted (subnet full),
        FailedPrecondition (an object with our name or the same iface-id is
        not ours, netns missing), Aborted (same port or its network busy),
        Unavailable (OVSDB down). `checkpoint` is called at PORT_ENSURE_STEPS."""
        names = self.port_names(spec.network, spec.name)
        with self.gate.shared(spec.network), self._locks.hold((spec.network, spec.name)):
            backend, net = self.backends.serving(spec.network, deadline)
            if net is None:
                raise NotFound(f"network {spec.network} does not exist on this node", reason="NETWORK_NOT_FOUND",
                               metadata={"network": spec.network})
            with Reverter(f"port {spec.network}/{spec.name}") as revert:
                port = backend.ensure_port(spec, net, names, revert, deadline, checkpoint or no_checkpoint)
                revert.success()
        port.status = backend.readiness(names, self._ready_until(deadline, ready_timeout) if wait_ready else None)
        return port

    def wait_port_ready(self, network: str, name: str, deadline: float | None = None,
                        ready_timeout: float | None = None) -> PortStatus:
        """Wait (bounded by the deadline and ready_timeout, default the service's) until the
        port is ovn-installed and up; the status names what is still missing. Bridge
        ports are ready at once. Raises Unavailable when OVSDB is down at the end."""
        backend, _ = self.backends.serving(network, deadline)
        return backend.readiness(self.port_names(network, name), self._ready_until(deadline, ready_timeout))

    # -- delete ----------------------------------------------------------------------
    def delete_port(self, network: str, name: str, deadline: float | None = None) -> bool:
        """Delete one NIC (OVS binding, netdev, logical port). Absent -> OK, False.
        Raises FailedPrecondition (the logical port is bound to another node),
        Aborted, Unavailable."""
        return self.delete_ports([(network, name)], deadline) > 0

    def delete_ports(self, ports: list[tuple[str, str]], deadline: float | None = None, *,
                     checkpoint: Checkpoint | None = None) -> int:
        """Delete many NICs of this node in bulk: one OVS transaction, one
        link-group delete, one NB transaction. Absent ones are skipped; objects
        that carry no mark of ours are never touched. Returns how many ports had
        something deleted. Raises like delete_port (nothing deleted then).
        `checkpoint` is called at PORT_DELETE_STEPS. Every backend is asked (a port
        may outlive its network)."""
        ports = sorted(set(ports))
        checkpoint = checkpoint or no_checkpoint
        with ExitStack() as stack:
            for network in sorted({n for n, _ in ports}):
                stack.enter_context(self.gate.shared(network))
            for key in ports:
                stack.enter_context(self._locks.hold(key))
            named = [(n, p, self.port_names(n, p)) for n, p in ports]
            releases = [b.release_ports(named, deadline) for b in self.backends.all]
            # look at the netdevs while the host is quiet, before OVS starts removing ports
            indexes, deleted = self.netdevs.owned([names.host for _, _, names in named],
                                                  ports={(n, p) for n, p, _ in named})
            for release in releases:
                release.detach(deadline)
            checkpoint("ovs-unbound")
            self.netdevs.delete(indexes)
            checkpoint("netdevs-deleted")
            for release in releases:
                release.remove(deadline)
            checkpoint("lsps-deleted")
            return sum(1 for _, _, names in named
                       if names.host in deleted or any(r.covers(names) for r in releases))

    # -- reads -----------------------------------------------------------------------
    def get_port(self, network: str, name: str, deadline: float | None = None) -> Port:
        """Observed state of one NIC: NB row (any node), and on this node the
        netdev and readiness. Raises NotFound, Unavailable."""
        backend, _ = self.backends.serving(network, deadline)
        port = backend.get_port(network, name, self.port_names(network, name), deadline)
        if port is None:
            raise NotFound(f"port {network}/{name} does not exist", reason="PORT_NOT_FOUND",
                           metadata={"network": network, "port": name})
        return port

    def list_ports(self, network: str = "", *, all_nodes: bool = False,
                   deadline: float | None = None) -> list[Port]:
        """Ports of this node (or of every node), optionally of one network, from
        the caches (no netdev lookups: mtu is 0 here; GetPort has it)."""
        out = [p for b in self.backends.all for p in b.list_ports(network, all_nodes, deadline)]
        return sorted(out, key=lambda p: (p.network, p.name))

    def watch_ports(self, network: str = "") -> tuple[list[PortEvent], Subscription]:
        """Current readiness of this node's ports (of one network or all) and a
        subscription delivering every later change. Close the subscription.
        Raises FailedPrecondition NO_OVN."""
        self.backends.ovn_required()
        assert self.hub is not None                 # OVN is configured: so is its readiness hub
        sub = self.hub.subscribe(network)
        snapshot = []
        for port in self.list_ports(network):
            ev = PortEvent(port.network, port.name, port.status)
            sub.prime(ev)
            snapshot.append(ev)
        return snapshot, sub

    # -- drift -----------------------------------------------------------------------
    def diff_port(self, spec: PortSpec, deadline: float | None = None) -> list[str]:
        """What differs between `spec` and the live objects of this node ([] = in
        sync). Repair = ensure_port(spec). Raises Unavailable."""
        return [d.detail for d in self.port_drift(spec, deadline)]

    def port_drift(self, spec: PortSpec, deadline: float | None = None) -> list[Drift]:
        """Like diff_port, as Drift items with reason codes: LSP_MISSING, LSP_OTHER_NODE,
        LSP_ADDRESS_CHANGED, PORT_SECURITY_OFF, OVS_PORT_MISSING, IFACE_ID_MISMATCH,
        VETH_MISSING / TAP_MISSING, NETDEV_NOT_OURS, NETDEV_DOWN, MTU_DRIFT,
        IPV6_ENABLED, PEER_MISSING. Read-only: caches and name lookups, no dumps."""
        names = self.port_names(spec.network, spec.name)
        backend, net = self.backends.serving(spec.network, deadline)
        return backend.port_drift(spec, names, net, deadline) + self.netdevs.drift(spec, names)
