"""How the agent is put together: one builder per plane, called in order by the
composition root (agent/app.py). A builder makes the plane's drivers from the
config, passes them into its service by constructor, and records what the
root needs: facilities (probes), capabilities, startup and shutdown steps,
the servicer registration, and the built service for planes that compose
others (instances composes storage, network and compute).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

from agent.api.server import Registration
from agent.drivers.base import Availability


@dataclass
class Step:
    """A named startup step; failure makes its plane unavailable, never the agent.

    Steps of different planes run concurrently (a node with many instances spends its
    start in each plane's reconcile), a plane's own steps in order; a barrier step (a
    plane composing others) starts once every earlier step finished."""

    name: str
    run: Callable[[], None]
    plane: str = ""
    barrier: bool = False


def run_steps(steps: list[Step], run_one: Callable[[Step], None]) -> None:
    """Run startup steps as Step describes; run_one must not raise."""
    batch: list[Step] = []
    for step in steps:
        if step.barrier:
            _run_concurrently(batch, run_one)
            batch = []
            run_one(step)
        else:
            batch.append(step)
    _run_concurrently(batch, run_one)


def _run_concurrently(batch: list[Step], run_one: Callable[[Step], None]) -> None:
    groups: dict[str, list[Step]] = {}
    for step in batch:
        groups.setdefault(step.plane or step.name, []).append(step)
    threads = [threading.Thread(target=lambda g=g: [run_one(s) for s in g], name=f"startup-{key}", daemon=True)
               for key, g in groups.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@dataclass
class Planes:
    """What the composition collects from each plane while building."""

    registrations: list[Registration] = field(default_factory=list)
    facilities: dict[str, Callable[[], Availability]] = field(default_factory=dict)
    capabilities: dict = field(default_factory=dict)
    startup: list[Step] = field(default_factory=list)
    shutdown: list[Callable[[], None]] = field(default_factory=list)   # run in reverse order
    services: dict[str, object] = field(default_factory=dict)   # built services, for planes composing others
    # PIDs of the daemons a plane runs (embedded OVN, zfs-fuse): never moved into a workload scope
    own_processes: list[Callable[[], Iterable[int]]] = field(default_factory=list)

    def own_pids(self) -> set[int]:
        return {pid for source in self.own_processes for pid in source() if pid}
