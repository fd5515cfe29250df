"""How the agent is put together: one builder per plane, called in order by the
composition root (agent/app.py). A builder makes the plane's drivers from the
config, passes them into its service by constructor, and records what the
root needs: facilities (probes), capabilities, startup and shutdown steps,
the servicer registration, and the built service for planes that compose
others (instances composes storage, network and compute).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from agent.api.server import Registration
from agent.composition.startup import Step
from agent.drivers.base import Availability

if TYPE_CHECKING:
    from agent.composition.storage_pool import StoragePlane
    from agent.services.compute import ComputeService
    from agent.services.host import HostService
    from agent.services.instances.service import InstanceService
    from agent.services.network.service import NetworkService


@dataclass
class Built:
    """The services the planes built (None: that plane is disabled), for planes composing others."""

    host: HostService | None = None
    compute: ComputeService | None = None
    network: NetworkService | None = None
    storage: StoragePlane | None = None
    instances: InstanceService | None = None


@dataclass
class Planes:
    """What the composition collects from each plane while building."""

    registrations: list[Registration] = field(default_factory=list)
    facilities: dict[str, Callable[[], Availability]] = field(default_factory=dict)
    capabilities: dict = field(default_factory=dict)
    startup: list[Step] = field(default_factory=list)
    shutdown: list[Callable[[], None]] = field(default_factory=list)   # run in reverse order
    services: Built = field(default_factory=Built)
    # PIDs of the daemons a plane runs (embedded OVN, zfs-fuse): never moved into a workload scope
    own_processes: list[Callable[[], Iterable[int]]] = field(default_factory=list)

    def own_pids(self) -> set[int]:
        return {pid for source in self.own_processes for pid in source() if pid}
