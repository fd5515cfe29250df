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
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from agent import __version__
from agent._proto.devcloud.agent.v1 import identity_pb2_grpc
from agent.api.identity import IdentityServicer
from agent.api.server import AgentServer, Registration
from agent.composition import Planes
from agent.composition.startup import StartupRunner, Step
from agent.composition.host_compute import build_compute, build_host
from agent.composition.instances import build_instances
from agent.composition.network import build_network
from agent.composition.storage import build_storage
from agent.config import Config
from agent.drivers.systemd import Notifier
from agent.metrics import Metrics
from agent.services.identity import IdentityService
from agent.services.readiness import Readiness

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
                                        self.planes.capabilities, {s.name: s.gates for s in self.planes.startup})
        self.startup = StartupRunner(self.planes.startup, self.readiness, on_failure=self._step_failed,
                                     on_success=self._step_done)
        self.planes.registrations.insert(0, Registration(
            "devcloud.agent.v1.IdentityService",
            lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(self.identity), s)))
        self.server = AgentServer(cfg.server, self.metrics, self.planes.registrations)
        self._stopped = threading.Event()
        self._metrics_server: WSGIServer | None = None

    def start(self) -> None:
        """Bind, serve, run the startup steps, tell systemd we are up. Raises only on bind failure.

        READY=1 goes out once every startup step had its first attempt (so a node with a
        persistent problem is not restarted in a loop by systemd); steps that failed are
        retried with backoff, and Probe, health and GetCapabilities say "not ready" and why
        until every step succeeded."""
        self.notifier.status("binding listeners")
        self.server.bind()
        self.server.start()
        self._start_metrics()
        self.readiness.on_ready(self._ready)
        self.startup.run()
        for name, a in self.identity.probe_facilities(fresh=True).items():
            self.metrics.facility_up.labels(name).set(1 if a.available else 0)
            if not a.available:
                log.warning("facility %s unavailable: %s", name, a.reason)
        self.notifier.notify(READY="1", STATUS=self._status())
        self.notifier.start_watchdog(self._serving)

    def _ready(self) -> None:
        """Every startup step succeeded (called once, from the thread that finished the last)."""
        self.server.set_ready(True)
        self.metrics.ready.set(1)
        self.metrics.startup_unfinished.set(0)
        self.notifier.status(self._status())
        log.info("ready", extra={"fields": {"version": __version__, "addresses": ",".join(self.server.addresses)}})

    def _status(self) -> str:
        problems = self.readiness.problems()
        if not problems:
            return f"serving on {', '.join(self.server.addresses)}"
        return "serving, NOT ready: " + "; ".join(f"{step}: {why}" for step, why, _ in problems)[:400]

    def _step_failed(self, step: Step, exc: BaseException, attempt: int) -> None:
        self.metrics.startup_failures.labels(step.name).inc()
        self.metrics.startup_unfinished.set(len(self.readiness.pending()))
        # the first failure with its traceback when unexpected; retries in one line
        log.error("startup step %r failed (attempt %d, retried with backoff; not ready until it succeeds): %s",
                  step.name, attempt, getattr(exc, "message", exc), exc_info=attempt == 1 and not hasattr(exc, "code"))
        self.notifier.status(self._status())

    def _step_done(self, step: Step, took: float) -> None:
        self.metrics.startup_step.labels(step.name).set(took)
        self.metrics.startup_unfinished.set(len(self.readiness.pending()))
        log.info("startup step %r took %.2fs", step.name, took)

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

    def stop(self) -> None:
        """Drain RPCs, then stop what we supervise (reverse order). Idempotent."""
        self._stopped.set()
        self.startup.stop()
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
