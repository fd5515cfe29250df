"""Identity: who the agent is, what this node can do, and startup readiness."""
from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import dataclass
from typing import Callable

from agent import __version__
from agent.drivers.base import Availability

API_VERSION = "devcloud.agent.v1"
_PROBE_TTL = 2.0   # seconds a facility probe result is reused; probes fork or open devices


class Readiness:
    """Startup steps still pending; ready when none is left. Thread-safe."""

    def __init__(self, steps: list[str]) -> None:
        self._lock = threading.Lock()
        self._pending = list(steps)
        self._changed = threading.Condition(self._lock)

    def done(self, step: str) -> None:
        with self._lock:
            if step in self._pending:
                self._pending.remove(step)
            self._changed.notify_all()

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    @property
    def ready(self) -> bool:
        with self._lock:
            return not self._pending

    def wait(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending, timeout)


@dataclass
class AgentInfo:
    name: str
    version: str
    node_name: str
    api_version: str
    started_at: float
    pid: int
    runtime_version: str


@dataclass
class Capability:
    kind: str            # CapabilityKind name without prefix, lower case: "kvm", "storage_zfs"...
    available: bool
    reason: str


@dataclass
class Capabilities:
    capabilities: list[Capability]
    extensions: list[str]
    facilities: dict[str, Availability]


# A capability is decided from the facilities' probe results.
CapabilityRule = Callable[[dict[str, Availability]], Availability]


class IdentityService:
    """Answers identity, capabilities (from driver probes) and readiness."""

    def __init__(self, node_name: str, readiness: Readiness,
                 facilities: dict[str, Callable[[], Availability]],
                 capabilities: dict[str, CapabilityRule]) -> None:
        self._node_name = node_name
        self._readiness = readiness
        self._facilities = facilities
        self._capabilities = capabilities
        self._started = time.time()
        self._cache: tuple[float, dict[str, Availability]] | None = None
        self._cache_lock = threading.Lock()

    def info(self) -> AgentInfo:
        """Static identity. Idempotent; never raises."""
        return AgentInfo("devcloud-agent", __version__, self._node_name, API_VERSION,
                         self._started, os.getpid(), f"{platform.python_implementation()} {platform.python_version()}")

    def probe_facilities(self, *, fresh: bool = False) -> dict[str, Availability]:
        """Every driver's probe, reused for a couple of seconds. Never raises."""
        with self._cache_lock:
            now = time.monotonic()
            if not fresh and self._cache and now - self._cache[0] < _PROBE_TTL:
                return self._cache[1]
            results = {}
            for name, probe in self._facilities.items():
                try:
                    results[name] = probe()
                except Exception as exc:  # a probe must never break the answer
                    results[name] = Availability.missing(f"probe failed: {exc}")
            self._cache = (now, results)
            return results

    def capabilities(self) -> Capabilities:
        """Capabilities decided from fresh-enough probes. Idempotent; never raises."""
        facilities = self.probe_facilities()
        caps = []
        for kind, rule in self._capabilities.items():
            a = rule(facilities)
            caps.append(Capability(kind, a.available, a.reason))
        extensions = sorted(
            [f"{name}.{feat}" for name, a in facilities.items() if a.available for feat in a.features]
            + [f"{name}.version={a.version}" for name, a in facilities.items() if a.available and a.version])
        return Capabilities(caps, extensions, facilities)

    def probe(self) -> tuple[bool, list[str]]:
        """(ready, pending startup steps)."""
        pending = self._readiness.pending()
        return not pending, pending


def from_facility(name: str) -> CapabilityRule:
    """A capability that is exactly one facility's availability."""
    return lambda facilities: facilities.get(name, Availability.missing(f"{name} driver is not configured"))


def all_of(*names: str) -> CapabilityRule:
    """A capability that needs every named facility; the reason names the first missing one."""
    def rule(facilities: dict[str, Availability]) -> Availability:
        for n in names:
            a = facilities.get(n, Availability.missing(f"{n} driver is not configured"))
            if not a.available:
                return Availability.missing(f"{n}: {a.reason}")
        return Availability.ok()
    return rule
