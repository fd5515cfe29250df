"""The gRPC server: listeners (unix socket, mTLS TCP), health, reflection.

Servicers are registered by the composition root through `Registration`s;
this module knows nothing of any plane.
"""
from __future__ import annotations

import errno
import grp
import logging
import os
import socket
import stat
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agent.api.interceptors import AgentInterceptor
from agent.config import ServerConfig
from agent.errors import FailedPrecondition
from agent.metrics import Metrics

log = logging.getLogger("devcloud.agent.server")


@dataclass
class Registration:
    """One servicer: its full service name and how to add it to a server."""

    service_name: str                          # e.g. "devcloud.agent.v1.HostService"
    add: Callable[[grpc.Server], None]         # calls add_XServiceServicer_to_server
    serving: Callable[[], bool] = lambda: True  # per-service health (its facility available)


def _prepare_unix_socket(path: Path) -> None:
    """Create the directory; remove a stale socket, refuse a live one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise FailedPrecondition(f"{path} exists and is not a socket; remove it or set [server].socket",
                                 reason="SOCKET_PATH_IN_USE")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            path.unlink(missing_ok=True)  # stale: left by a process that died
            return
        raise
    finally:
        probe.close()
    raise FailedPrecondition(f"another process is listening on {path} (is an agent already running?)",
                             reason="SOCKET_IN_USE")


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


class AgentServer:
    """Owns the grpc.Server, its listeners and the health servicer."""

    def __init__(self, cfg: ServerConfig, metrics: Metrics, registrations: list[Registration]) -> None:
        self._cfg = cfg
        self._registrations = registrations
        self._executor = futures.ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="rpc")
        self.server = grpc.server(self._executor, interceptors=[AgentInterceptor(metrics, cfg.allowed_clients)],
                                  options=[("grpc.so_reuseport", 0),
                                           ("grpc.max_receive_message_length", 16 << 20)])
        self.health = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        for r in registrations:
            r.add(self.server)
            names.append(r.service_name)
        reflection.enable_server_reflection(names, self.server)
        self.set_ready(False)
        self.addresses: list[str] = []
        self._bound_socket: Path | None = None   # only a socket we bound is ours to remove

    def bind(self) -> list[str]:
        """Bind every configured listener. Raises FailedPrecondition if one is taken."""
        cfg = self._cfg
        if cfg.socket:
            path = Path(cfg.socket)
            _prepare_unix_socket(path)
            mode = int(cfg.socket_mode, 8)
            old = os.umask(0o777 & ~mode)  # the socket is created with `mode`, no window of wider access
            try:
                self.server.add_insecure_port(f"unix:{path}")
            finally:
                os.umask(old)
            os.chmod(path, mode)
            if cfg.socket_group:
                os.chown(path, -1, grp.getgrnam(cfg.socket_group).gr_gid)
            self.addresses.append(f"unix:{path}")
            self._bound_socket = path
        if cfg.tcp_listen:
            if cfg.insecure:
                port = self.server.add_insecure_port(cfg.tcp_listen)
            else:
                creds = grpc.ssl_server_credentials(
                    [(_read(cfg.tls_key), _read(cfg.tls_cert))],
                    root_certificates=_read(cfg.tls_client_ca), require_client_auth=True)
                port = self.server.add_secure_port(cfg.tcp_listen, creds)
            if port == 0:
                raise FailedPrecondition(f"cannot listen on {cfg.tcp_listen}: address in use or not local",
                                         reason="TCP_LISTEN_FAILED")
            host = cfg.tcp_listen.rpartition(":")[0]
            self.addresses.append(f"{host}:{port}")
        return self.addresses

    def start(self) -> None:
        self.server.start()
        log.info("listening on %s", ", ".join(self.addresses))

    def set_ready(self, ready: bool) -> None:
        """Overall health follows readiness; each service also its facility."""
        serving, not_serving = (health_pb2.HealthCheckResponse.SERVING,
                                health_pb2.HealthCheckResponse.NOT_SERVING)
        self.health.set("", serving if ready else not_serving)
        for r in self._registrations:
            self.health.set(r.service_name, serving if ready and r.serving() else not_serving)

    def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight RPCs finish within `grace` seconds."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait(grace + 1)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._bound_socket:
            self._bound_socket.unlink(missing_ok=True)
            self._bound_socket = None
