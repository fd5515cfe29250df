"""The agent as a real process: sd_notify protocol (READY after bind, STATUS,
WATCHDOG, STOPPING) against a datagram socket the test binds, graceful stop,
stale and live sockets, configuration errors."""
from __future__ import annotations

import ctypes
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent._proto.devcloud.agent.v1 import identity_pb2, identity_pb2_grpc
from tests.support.server import REPO, AgentProcess, temp_dir

SYS_TGKILL = {"x86_64": 234, "aarch64": 131}[platform.machine()]     # os has no tgkill


@pytest.fixture
def tmp():
    d = temp_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_ready_only_after_bind_then_serving(tmp):
    agent = AgentProcess(tmp).start(wait_ready=False)
    try:
        agent.wait_ready(60)
        # READY=1 implies: socket bound, startup work done, health SERVING.
        assert os.path.exists(agent.socket)
        with agent.channel() as ch:
            probe = identity_pb2_grpc.IdentityServiceStub(ch).Probe(identity_pb2.ProbeRequest(), timeout=5)
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert probe.ready
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        statuses = [m["STATUS"] for m in agent.notify.messages if "STATUS" in m]
        assert statuses and statuses[0].startswith("binding")
        assert any(s.startswith("serving on unix:") for s in statuses)
    finally:
        assert agent.stop() == 0


def test_watchdog_is_fed_while_serving(tmp):
    agent = AgentProcess(tmp, env={"WATCHDOG_USEC": "300000"}).start()
    try:
        agent.notify.wait_for("WATCHDOG", "1", timeout=10)
        n1 = sum(1 for m in agent.notify.messages if "WATCHDOG" in m)
        agent.notify.wait_for("WATCHDOG", "1", timeout=10)
        deadline = time.monotonic() + 10
        while sum(1 for m in agent.notify.messages if "WATCHDOG" in m) <= n1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(1 for m in agent.notify.messages if "WATCHDOG" in m) > n1
    finally:
        agent.stop()


def test_watchdog_for_another_pid_is_ignored(tmp):
    agent = AgentProcess(tmp, env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}).start()
    try:
        time.sleep(0.5)  # several intervals: a wrong pid must never ping
        assert not any("WATCHDOG" in m for m in agent.notify.messages)
    finally:
        agent.stop()


def test_sigterm_stops_gracefully(tmp):
    agent = AgentProcess(tmp).start()
    rc = agent.stop(signal.SIGTERM)
    assert rc == 0
    assert any(m.get("STOPPING") == "1" for m in agent.notify.messages)
    assert not os.path.exists(agent.socket)


def test_sigterm_caught_by_another_thread_still_stops(tmp):
    """The kernel may deliver a process signal to any thread; tgkill(2) aims it at a gRPC
    thread, as happened by chance (main then slept in a lock wait until SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    agent = AgentProcess(tmp).start()
    try:
        pid = agent.proc.pid
        others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
        assert others, "the agent runs gRPC threads besides its main thread"
        assert libc.syscall(SYS_TGKILL, pid, others[0], signal.SIGTERM) == 0, ctypes.get_errno()
        agent.proc.wait(30)         # raises TimeoutExpired when it slept through the signal
        assert agent.proc.returncode == 0, agent.log()
        assert any(m.get("STOPPING") == "1" for m in agent.notify.messages)
    finally:
        agent.stop()


def test_stale_socket_is_replaced_live_socket_refused(tmp):
    first = AgentProcess(tmp).start()
    try:
        second = AgentProcess(tmp)
        second.start(wait_ready=False)
        assert second.proc.wait(60) == 1
        assert "another process is listening" in second.log()
    finally:
        first.kill()  # SIGKILL leaves a stale socket behind
    assert os.path.exists(first.socket)
    third = AgentProcess(tmp).start()
    try:
        with third.channel() as ch:
            assert identity_pb2_grpc.IdentityServiceStub(ch).Probe(identity_pb2.ProbeRequest(), timeout=5).ready
    finally:
        third.stop()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.daemon", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("content, needle", [
    ("[server]\nbogus = 1\n", "unknown key [server].bogus"),
    ("[sever]\nsocket = ''\n", "unknown table [sever]"),
    ("[server]\nworkers = 'many'\n", "[server].workers: expected an integer"),
    ("[server]\ntcp_listen = '0.0.0.0:7443'\n", "[server].tcp_listen requires mutual TLS"),
    ("[server]\ntcp_listen = '10.1.2.3:7443'\ninsecure = true\n", "only allowed on loopback"),
    ("[metrics]\nlisten = '0.0.0.0:9464'\n", "[metrics].listen: the metrics endpoint must be on loopback"),
    ("[server]\nsocket_mode = '999'\n", "[server].socket_mode"),
    ("[log]\nlevel = 'loud'\n", "[log].level"),
    ("not toml [", "not valid TOML"),
])
def test_config_errors_name_the_key(tmp, content, needle):
    path = tmp / "agent.toml"
    path.write_text(content)
    r = _run_cli("run", "--config", str(path))
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr


def test_missing_explicit_config_and_bad_set(tmp):
    r = _run_cli("run", "--config", str(tmp / "nope.toml"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = _run_cli("config", "--config", str(tmp / "nope.toml"), "--set", "server.workers")
    assert r.returncode == 2


def test_example_config_documents_every_key_and_loads(tmp):
    import dataclasses
    import tomllib
    from agent import config
    example = REPO / "systemd" / "agent.toml.example"
    data = tomllib.loads(example.read_text())
    for section in dataclasses.fields(config.Config):
        keys = {f.name for f in dataclasses.fields(section.type if isinstance(section.type, type)
                                                   else getattr(config, section.type))}
        assert set(data[section.name]) == keys, f"[{section.name}] in the example differs from the schema"
    r = _run_cli("config", "--config", str(example), "--json")
    assert r.returncode == 0, r.stderr
