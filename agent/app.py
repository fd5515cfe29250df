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
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from agent import __version__
from agent._proto.devcloud.agent.v1 import identity_pb2_grpc
from agent.api.identity import IdentityServicer
from agent.api.server import AgentServer, Registration
from agent.composition import Planes, Step, run_steps
from agent.composition.host_compute import build_compute, build_host
from agent.composition.instances import build_instances
from agent.composition.network import build_network
from agent.composition.storage import build_storage
from agent.config import Config
from agent.drivers.systemd import Notifier
from agent.metrics import Metrics
from agent.services.identity import IdentityService, Readiness

log = logging.getLogger("devcloud.agent")


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
        for build in (build_host, build_compute, build_network, build_storage, build_instances):
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
        run_steps(self.planes.startup, self._run_step)
        for name, a in self.identity.probe_facilities(fresh=True).items():
            self.metrics.facility_up.labels(name).set(1 if a.available else 0)
            if not a.available:
                log.warning("facility %s unavailable: %s", name, a.reason)
        self.server.set_ready(True)
        self.metrics.ready.set(1)
        self.notifier.notify(READY="1", STATUS=f"serving on {', '.join(self.server.addresses)}")
        self.notifier.start_watchdog(self._serving)
        log.info("ready", extra={"fields": {"version": __version__, "addresses": ",".join(self.server.addresses)}})

    def _run_step(self, step: Step) -> None:
        self.notifier.status(f"startup: {step.name}")
        started = time.monotonic()
        try:
            step.run()
        except Exception as exc:  # a missing facility never crashes the daemon
            log.error("startup step %r failed; its plane stays unavailable: %s", step.name, exc,
                      exc_info=not hasattr(exc, "code"))
        took = time.monotonic() - started
        self.metrics.startup_step.labels(step.name).set(took)
        log.info("startup step %r took %.2fs", step.name, took)
        self.readiness.done(step.name)

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
