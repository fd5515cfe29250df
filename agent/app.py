"""The composition root: builds drivers from the config, passes them into
services by constructor, registers servicers, and runs the lifecycle.

Lifecycle: bind listeners -> serve (Probe says not ready) -> startup steps
(embedded components, reconcile) -> ready: health SERVING, sd_notify
READY=1, watchdog -> ... -> SIGTERM: STOPPING=1, drain RPCs, stop what we
supervise (never the data plane we built).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from agent import __version__
from agent._proto.devcloud.agent.v1 import compute_pb2_grpc, host_pb2_grpc, identity_pb2_grpc
from agent.api.compute import ComputeServicer
from agent.api.host import HostServicer
from agent.api.identity import IdentityServicer
from agent.api.server import AgentServer, Registration
from agent.app_instances import build_instances
from agent.app_network import build_network
from agent.config import Config
from agent.drivers.base import Availability
from agent.drivers.cgroup import CgroupDriver, resolve_root
from agent.drivers.kernel import KernelDriver
from agent.drivers.kvm import KvmDriver
from agent.drivers.systemd import Notifier
from agent.metrics import Metrics
from agent.services.compute import ComputeService
from agent.services.host import HostService
from agent.services.identity import IdentityService, Readiness, from_facility

log = logging.getLogger("devcloud.agent")


@dataclass
class Step:
    """A named startup step; failure makes its plane unavailable, never the agent."""

    name: str
    run: Callable[[], None]


@dataclass
class Planes:
    """What the composition collects from each plane while building."""

    registrations: list[Registration] = field(default_factory=list)
    facilities: dict[str, Callable[[], Availability]] = field(default_factory=dict)
    capabilities: dict = field(default_factory=dict)
    startup: list[Step] = field(default_factory=list)
    shutdown: list[Callable[[], None]] = field(default_factory=list)   # run in reverse order
    services: dict[str, object] = field(default_factory=dict)   # built services, for planes composing others


def _cgroup_subtree(cfg: Config) -> str:
    # The same resolution as the compute plane's driver (delegated own cgroup, or devcloud.slice).
    return resolve_root(cfg.compute.cgroup_root)


def _build_host(cfg: Config, planes: Planes, metrics: Metrics) -> None:
    kvm, kernel = KvmDriver(), KernelDriver()
    host = HostService(kvm, kernel, cgroup_subtree=lambda: _cgroup_subtree(cfg))
    planes.services["host"] = host
    planes.facilities["kvm"] = kvm.probe
    planes.capabilities["host_facts"] = lambda f: Availability.ok()
    planes.capabilities["kvm"] = from_facility("kvm")
    planes.registrations.append(Registration(
        "devcloud.agent.v1.HostService",
        lambda s: host_pb2_grpc.add_HostServiceServicer_to_server(HostServicer(host), s)))


def _build_compute(cfg: Config, planes: Planes, metrics: Metrics) -> None:
    svc = ComputeService(CgroupDriver(metrics, root=cfg.compute.cgroup_root) if cfg.compute.enabled else None)
    planes.facilities["cgroup"] = svc.probe
    if cfg.compute.enabled:
        planes.services["compute"] = svc
    planes.capabilities["compute_cgroup_v2"] = from_facility("cgroup")
    if cfg.compute.enabled:
        planes.startup.append(Step("compute: sweep cgroup intents", svc.reconcile))
    planes.registrations.append(Registration(
        "devcloud.agent.v1.ComputeService",
        lambda s: compute_pb2_grpc.add_ComputeServiceServicer_to_server(ComputeServicer(svc), s)))


def _build_storage(cfg: Config, planes: Planes, metrics: Metrics) -> None:
    if not cfg.storage.enabled:
        return
    from agent.api.storage import register
    from agent.services import storage_setup
    plane = storage_setup.build(cfg, metrics)
    planes.services["storage"] = plane
    planes.facilities["zfs"] = plane.probe
    planes.capabilities["storage_zfs"] = from_facility("zfs")
    planes.capabilities["storage_zvol"] = plane.zvol
    planes.startup.append(Step("storage", plane.start))
    planes.shutdown.append(plane.release)       # zfs-fuse and every mount stay: they are the data plane
    planes.registrations.append(Registration("devcloud.agent.v1.StorageService",
                                             lambda s: register(s, plane.service)))


class App:
    """One agent process: build once, start, wait, stop."""

    def __init__(self, cfg: Config, *, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.metrics.build_info.info({"version": __version__, "api": "devcloud.agent.v1"})
        self.notifier = notifier or Notifier()
        self.planes = Planes()
        # One builder per plane: drivers from the config, services by constructor,
        # then facilities, capabilities, startup/shutdown steps and the servicer.
        for build in (_build_host, _build_compute, build_network, _build_storage, build_instances):
            build(cfg, self.planes, self.metrics)
        self.readiness = Readiness([s.name for s in self.planes.startup])
        self.identity = IdentityService(cfg.node_name, self.readiness, self.planes.facilities,
                                        self.planes.capabilities)
        self.planes.registrations.insert(0, Registration(
            "devcloud.agent.v1.IdentityService",
            lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(self.identity), s)))
        self.server = AgentServer(cfg.server, self.metrics, self.planes.registrations)
        self._stopped = threading.Event()
        self._metrics_server = None

    def start(self) -> None:
        """Bind, serve, run startup steps, then report ready. Raises only on bind failure."""
        self.notifier.status("binding listeners")
        self.server.bind()
        self.server.start()
        self._start_metrics()
        for step in self.planes.startup:
            self.notifier.status(f"startup: {step.name}")
            try:
                step.run()
            except Exception as exc:  # a missing facility never crashes the daemon
                log.error("startup step %r failed; its plane stays unavailable: %s", step.name, exc,
                          exc_info=not hasattr(exc, "code"))
            self.readiness.done(step.name)
        for name, a in self.identity.probe_facilities(fresh=True).items():
            self.metrics.facility_up.labels(name).set(1 if a.available else 0)
            if not a.available:
                log.warning("facility %s unavailable: %s", name, a.reason)
        self.server.set_ready(True)
        self.metrics.ready.set(1)
        self.notifier.notify(READY="1", STATUS=f"serving on {', '.join(self.server.addresses)}")
        self.notifier.start_watchdog(self._serving)
        log.info("ready", extra={"fields": {"version": __version__, "addresses": ",".join(self.server.addresses)}})

    def _start_metrics(self) -> None:
        listen = self.cfg.metrics.listen
        if listen:
            host, _, port = listen.rpartition(":")
            self._metrics_server, _ = start_http_server(int(port), addr=host.strip("[]"),
                                                        registry=self.metrics.registry)

    def _serving(self) -> bool:
        """Watchdog check: the server answers a health Check over its own socket."""
        if not self.cfg.server.socket:
            return not self._stopped.is_set()
        try:
            with grpc.insecure_channel(f"unix:{self.cfg.server.socket}") as ch:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return True
        except grpc.RpcError:
            return False

    def wait(self) -> None:
        self._stopped.wait()

    def request_stop(self) -> None:
        self._stopped.set()

    def stop(self) -> None:
        """Drain RPCs, then stop what we supervise (reverse order). Idempotent."""
        self._stopped.set()
        self.notifier.stop()
        self.server.stop(self.cfg.server.grace_seconds)
        for fn in reversed(self.planes.shutdown):
            try:
                fn()
            except Exception:
                log.exception("shutdown step failed")
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None
