"""The README's run command, run literally: it must reach READY with no
config file and no daemons running beforehand, and answer devcloudctl and a
stock grpc.health.v1 client over the default unix socket."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.server import REPO, NotifySocket

DEFAULT_SOCKET = "/run/devcloud-agent/agent.sock"
STATE_DIR = "/var/lib/devcloud-agent"


def readme_command(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```\s*\n(.*?)\n```\s*<!-- /{marker} -->", text, re.S)
    assert block, f"README has no {marker} block"
    return block.group(1).strip()


def test_readme_has_exactly_two_setup_commands():
    text = (REPO / "README.md").read_text()
    assert len(re.findall(r"<!-- (run|test)-command -->", text)) == 2
    assert readme_command("test-command") in (REPO / ".ci" / "run").read_text() or \
        "test-command" in (REPO / ".ci" / "run").read_text()


def test_readme_run_command_reaches_ready(tmp_path, capsys):
    if os.path.exists(DEFAULT_SOCKET):
        pytest.skip(f"an agent already listens on {DEFAULT_SOCKET}; not starting a second one")
    had_state = os.path.exists(STATE_DIR)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
    env.pop("JOURNAL_STREAM", None)
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(["bash", "-c", readme_command("run-command")], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        start = time.monotonic()
        deadline = start + 600
        while True:
            try:
                notify.wait_for("READY", "1", timeout=0.5)
                break
            except TimeoutError:
                assert proc.poll() is None, (tmp_path / "run.log").read_text()
                assert time.monotonic() < deadline, "README run command did not reach READY in 600 s"
        with capsys.disabled():
            print(f"\n[readme-run] READY {time.monotonic() - start:.1f}s after the run command started")
        r = subprocess.run([str(REPO / ".venv/bin/devcloudctl"), "host", "facts"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "kvm usable" in r.stdout
        with grpc.insecure_channel(f"unix:{DEFAULT_SOCKET}") as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        # Our PID is the bash of the command; signal its process group (we started it).
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        notify.close()
        log.close()
        cleanup_embedded_state(had_state)
    assert not os.path.exists(DEFAULT_SOCKET), "the agent must remove its socket on stop"


def cleanup_embedded_state(had_state: bool) -> None:
    """Undo what the embedded defaults created, unless the state dir pre-existed."""
    if had_state:
        return
    shutil.rmtree(STATE_DIR, ignore_errors=True)
