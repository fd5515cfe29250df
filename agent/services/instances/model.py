"""The instance plane's data: specs in, observed state out, the names of every
object an instance owns (computable before anything exists), and the JSON
forms kept in the intent store. Pure: no I/O.

An instance is one root dataset (a clone of an image for a container, a zvol
for a VM), one NIC per entry of `nics` (a logical switch port + a veth or a
tap on this node), and one cgroup scope in its team's slice. Team networks,
team slices and images belong to the team, not to an instance: they must
exist before PrepareInstance and are never removed by the instance plane.
The forms kept in the intent store and the immutability rules: records.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent.model.compute import CgroupInfo, Limits
from agent.model.idmap import IdMap
from agent.services.drift import Drift
from agent.services.network.model import Port
from agent.services.storage.model import Volume

KIND_CONTAINER = "container"
KIND_VM = "vm"
KINDS = (KIND_CONTAINER, KIND_VM)

# Instance states (the record's `state` column).
PREPARING = "preparing"        # a prepare (or a converging re-prepare) is running
PREPARED = "prepared"          # every part exists as the spec says (as of the last operation)
RELEASING = "releasing"        # a release is running
RELEASED = "released"          # only in events: the record is gone
FAILED = "failed"              # the last operation failed and could not be undone completely
STATES = (PREPARING, PREPARED, RELEASING, RELEASED, FAILED)

PART_STORAGE = "storage"
PART_NETWORK = "network"
PART_COMPUTE = "compute"
PARTS = (PART_STORAGE, PART_NETWORK, PART_COMPUTE)

# Where a container NIC's instance end goes (NicSpec.peer_placement; "" = netns when peer_netns is set,
# else agent). Resolved by PlaneSet.placement.
PLACE_AGENT = "agent"          # left next to the host end, in the agent's (OVS-side) network namespace
PLACE_HOST = "host"            # moved into the host's network namespace (the agent process's own)
PLACE_NETNS = "netns"          # moved into peer_netns, renamed, addresses configured
PLACEMENTS = (PLACE_AGENT, PLACE_HOST, PLACE_NETNS)

MAX_ID_LEN = 40                # "<id>-<nic>" must stay a valid port name (63) in every consumer
MAX_NIC_NAME_LEN = 15
MAX_NICS = 16


# -- desired state -------------------------------------------------------------
@dataclass(frozen=True)
class RootSpec:
    """The root volume. Immutable: image_id (containers), size_bytes may only grow (VMs).
    Mutable (converged): refquota, quota, reservation."""

    image_id: str = ""             # container: image to clone (required); vm: must be empty
    size_bytes: int = 0            # vm: block device size (required); container: must be 0
    refquota_bytes: int = 0        # container: limit of the root's own data; 0 = none
    quota_bytes: int = 0           # limit including snapshots; 0 = none
    reservation_bytes: int = 0     # guaranteed space; 0 = none


@dataclass(frozen=True)
class NicSpec:
    """One NIC. Immutable: name, network, mac, ip4, ip6, queues. Mutable: mtu, peer placement
    (peer_netns, peer_name, peer_placement)."""

    name: str                      # e.g. "eth0"; the port is "<instance>-<name>"
    network: str                   # the team network (must exist)
    mac: str = ""                  # "" = derived from the address
    ip4: str = ""                  # "" = allocated
    ip6: str = ""
    mtu: int = 0                   # 0 = the network's
    peer_netns: str = ""           # container: put the instance end there
    peer_name: str = ""            # container: its name there ("" = the NIC name)
    queues: int = 0                # vm: tap queues (>1 = multiqueue)
    peer_placement: str = ""       # container: PLACE_* ("" = netns when peer_netns is set, else agent)


@dataclass(frozen=True)
class InstanceSpec:
    id: str
    team: str
    kind: str = KIND_CONTAINER
    root: RootSpec = field(default_factory=RootSpec)
    nics: tuple[NicSpec, ...] = ()
    limits: Limits = field(default_factory=Limits)
    labels: tuple[tuple[str, str], ...] = ()      # sorted (key, value) pairs
    kubernetes_node: bool = False                 # container meant to run Kubernetes: nesting preflight first
    idmap: IdMap | None = None                    # container: an unprivileged instance's uid/gid map (immutable)

    def port_name(self, nic: NicSpec) -> str:
        """The network plane's port name of `nic`: "<id>-<nic name>"."""
        return f"{self.id}-{nic.name}"


# -- names (recorded before creation) --------------------------------------------
@dataclass(frozen=True)
class NicNames:
    nic: str
    network: str
    port: str                      # network plane port name "<instance>-<nic>"
    lsp: str                       # logical switch port (== OVS iface-id)
    host: str                      # host-side netdev (veth end or tap)
    peer: str                      # veth: the instance end's name ("" for taps)


@dataclass(frozen=True)
class InstanceNames:
    """Every object an instance owns; computed before anything is created and recorded."""

    dataset: str
    volume_team: str
    volume_name: str
    scope: str
    nics: tuple[NicNames, ...] = ()

    def ports(self) -> list[tuple[str, str]]:
        """(network, port) of every NIC, as the network plane's bulk delete takes them."""
        return [(n.network, n.port) for n in self.nics]


@dataclass(frozen=True)
class Allocation:
    """Addresses the network plane handed out to a NIC (recorded after prepare)."""

    mac: str = ""
    ip4: str = ""
    ip6: str = ""


# -- observed state --------------------------------------------------------------
@dataclass
class PartStatus:
    part: str                      # storage | network | compute
    object: str                    # dataset, NIC name, scope path
    present: bool
    ready: bool
    detail: str = ""               # what is missing


@dataclass
class NicState:
    nic: str
    port: Port | None              # observed port (None: absent)


@dataclass(frozen=True)
class RuntimeNic:
    """One NIC as a runtime attaches it (proto RuntimeNic)."""

    name: str
    kind: str                      # veth | tap
    netdev: str                    # the runtime-side netdev (veth instance end, or the tap)
    netns: str                     # path of the namespace it is in
    host_netns: bool               # that is the host's (PID 1's) namespace
    placement: str                 # PLACE_* (a tap: PLACE_AGENT)
    mac: str = ""
    mtu: int = 0
    ip4: str = ""                  # "10.0.0.5/24"
    gateway4: str = ""
    ip6: str = ""
    dns_servers: tuple[str, ...] = ()
    dhcp: bool = False             # the network answers DHCPv4 with exactly these values
    configured: bool = False       # the agent set the addresses on the netdev (PLACE_NETNS)
    queues: int = 0
    host_netdev: str = ""


@dataclass(frozen=True)
class Runtime:
    """What a runtime needs from the prepared parts (proto Runtime)."""

    nics: tuple[RuntimeNic, ...] = ()
    rootfs: str = ""               # container
    disk: str = ""                 # vm: block device or raw disk file
    disk_is_file: bool = False
    idmap_mode: str = ""           # container with a map: shifted | mount
    image_metadata_dir: str = ""   # LXD-format image: where metadata.yaml and templates/ are
    cgroup: str = ""               # the scope, relative to the cgroup2 mount
    cgroup_path: str = ""
    payload_cgroup: str = ""
    monitor_cgroup: str = ""
    idmap: IdMap | None = None


@dataclass
class Instance:
    id: str
    team: str
    kind: str
    state: str
    spec: InstanceSpec
    names: InstanceNames
    allocations: dict[str, Allocation] = field(default_factory=dict)    # by NIC name
    generation: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    message: str = ""
    volume: Volume | None = None
    nics: list[NicState] = field(default_factory=list)
    scope: CgroupInfo | None = None
    parts: list[PartStatus] = field(default_factory=list)
    observed: bool = False         # False: record only (List), nothing was looked at
    changed: bool = False
    runtime: Runtime | None = None    # observed only

    @property
    def ready(self) -> bool:
        """Observed, and every part ready."""
        return self.observed and bool(self.parts) and all(p.ready for p in self.parts)

    def observed_allocations(self) -> dict[str, Allocation]:
        """The addresses of the NICs whose port was observed, by NIC name."""
        return {n.nic: Allocation(n.port.mac, n.port.ip4, n.port.ip6) for n in self.nics if n.port}


PartDrift = tuple[str, Drift]      # (part key: "storage" | "network:<nic>" | "compute", drift)


@dataclass(frozen=True)
class InstanceDrift:
    id: str
    team: str
    drifts: tuple[PartDrift, ...]
    error: str = ""                # the diff itself failed (backend down...)
    reason: str = ""


@dataclass(frozen=True)
class RepairResult:
    id: str
    team: str
    planned: tuple[PartDrift, ...]     # what Diff found
    repaired: tuple[str, ...]          # parts re-ensured ("storage", "network:eth0", "compute")
    remaining: tuple[PartDrift, ...]   # what Diff finds afterwards
    error: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ReleaseResult:
    id: str
    released: bool                 # False: nothing was recorded under this id (still OK)
    error: str = ""
    code: str = ""                 # gRPC code name of the error ("" = fine)
    reason: str = ""


@dataclass(frozen=True)
class Orphan:
    """An object carrying our mark whose instance is neither recorded nor kept."""

    plane: str
    kind: str                      # volume | netdev | veth-peer | unmarked-netdev | ovs-interface | logical-port
                                   # | scope
    name: str
    instance: str
    team: str = ""
    network: str = ""
    removed: bool = False
    error: str = ""


@dataclass(frozen=True)
class Event:
    """A change of one instance (WatchInstances)."""

    id: str
    team: str
    state: str
    ready: bool = False
    nic: str = ""                  # set for a NIC readiness change
    nic_ready: bool = False
    ovn_installed: bool = False
    up: bool = False
    message: str = ""
    snapshot: bool = False         # part of the initial snapshot
    drifts: tuple[PartDrift, ...] = ()    # a drift event: what changed behind the agent's back
