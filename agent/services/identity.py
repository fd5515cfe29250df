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
from agent.services.readiness import Readiness

API_VERSION = "devcloud.agent.v1"
_PROBE_TTL = 2.0   # seconds a facility probe result is reused; probes fork or open devices


@dataclass
class Problem:
    """A startup step that has not finished: failing (retried with backoff) or waiting."""

    step: str
    reason: str
    attempts: int


@dataclass
class Probe:
    ready: bool
    pending: list[str]            # startup steps not finished
    problems: list[Problem]       # why, for the failing or waiting ones


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
                 capabilities: dict[str, CapabilityRule], gates: dict[str, tuple[str, ...]] | None = None) -> None:
        """gates: startup step -> capability kinds that stay unavailable until the step succeeded."""
        self._node_name = node_name
        self._gates = gates or {}
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
        unfinished = self._unfinished_steps()
        for kind, rule in self._capabilities.items():
            a = rule(facilities)
            blocker = next((f"startup step {step!r} has not finished: {why}"
                            for step, why in unfinished if kind in self._gates.get(step, ())), "")
            if a.available and blocker:
                a = Availability.missing(blocker)
            caps.append(Capability(kind, a.available, a.reason))
        extensions = sorted(
            [f"{name}.{feat}" for name, a in facilities.items() if a.available for feat in a.features]
            + [f"{name}.version={a.version}" for name, a in facilities.items() if a.available and a.version])
        return Capabilities(caps, extensions, facilities)

    def probe(self) -> Probe:
        """Ready once every startup step succeeded; else which are pending and why."""
        pending = self._readiness.pending()
        return Probe(not pending, pending, [Problem(step, why, attempts)
                                            for step, why, attempts in self._readiness.problems()])

    def _unfinished_steps(self) -> list[tuple[str, str]]:
        out = []
        for step in self._readiness.pending():
            st = self._readiness.state(step)
            out.append((step, st.reason or ("running" if st.state == "running" else "not started yet")))
        return out


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
