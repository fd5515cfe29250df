"""Run a real agent for tests: in-process (fast tier) or as a process
(integration tier, bench), on a temp unix socket, stopped by PID.

Plane fixtures pass config overrides ("table.key=value") pointing the agent
at the components they started (OVN stack, zfs-fuse pool, cgroup subtree).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from agent import config as config_mod

REPO = Path(__file__).resolve().parents[2]


def base_overrides(tmp: Path) -> list[str]:
    """Isolate an agent in `tmp`: own socket and state dir, no metrics port, planes off.

    Plane fixtures switch their plane back on with their own overrides.
    """
    return [f"server.socket={tmp / 'agent.sock'}", "metrics.listen=", f"node.state_dir={tmp / 'state'}",
            "node.name=test-node", "storage.enabled=false", "network.enabled=false",
            "compute.enabled=false"]


@dataclass
class InProcessAgent:
    """An App started in this process; `channel` talks to it over its unix socket."""

    app: object
    socket: str
    channel: grpc.Channel

    def stop(self) -> None:
        self.channel.close()
        self.app.stop()


def start_inprocess(tmp: Path, overrides: list[str] | None = None, notifier=None) -> InProcessAgent:
    from agent.app import App
    cfg = config_mod.load(Path("/nonexistent"), base_overrides(tmp) + list(overrides or []))
    app = App(cfg, notifier=notifier)
    app.start()
    channel = grpc.insecure_channel(f"unix:{cfg.server.socket}")
    grpc.channel_ready_future(channel).result(timeout=10)
    return InProcessAgent(app, cfg.server.socket, channel)


def wait_ready(proc: subprocess.Popen, notify: "NotifySocket", timeout: float, log: Callable[[], str],
               who: str = "agent") -> None:
    """Until the agent process `proc` sent READY=1 to `notify`; RuntimeError with its log when it
    exits first, TimeoutError when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{who} exited with {proc.returncode}:\n{log()}")
        try:
            notify.wait_for("READY", "1", timeout=0.2)
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"{who} not READY within {timeout}s:\n{log()}")


def end(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    """Signal our PID and wait; when it does not exit in `timeout`, SIGUSR1 (the agent writes
    every thread's stack to its log), then SIGKILL our PID."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        proc.wait(10)


class NotifySocket:
    """A datagram socket playing systemd's NOTIFY_SOCKET; collects messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._cond:
                self.messages.append(fields)
                self._cond.notify_all()

    def wait_for(self, key: str, value: str | None = None, timeout: float = 60.0) -> dict[str, str]:
        """Block until a message with `key` (and `value`) arrives; return it."""
        def match():
            return next((m for m in self.messages if key in m and (value is None or m[key] == value)), None)
        with self._cond:
            if not self._cond.wait_for(lambda: match() is not None, timeout):
                raise TimeoutError(f"no {key}={value or '*'} on the notify socket within {timeout}s; "
                                   f"got {self.messages}")
            return match()

    def close(self) -> None:
        self.sock.close()


@dataclass
class AgentProcess:
    """The agent as a real process (devcloud-agent run), READY via sd_notify."""

    tmp: Path
    overrides: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    notify: NotifySocket | None = None
    log_path: Path | None = None

    @property
    def socket(self) -> str:
        return str(self.tmp / "agent.sock")

    def start(self, *, wait_ready: bool = True, timeout: float = 120.0) -> "AgentProcess":
        self.tmp.mkdir(parents=True, exist_ok=True)
        notify_path = self.tmp / f"notify-{os.getpid()}-{time.monotonic_ns()}.sock"
        self.notify = NotifySocket(notify_path)
        self.log_path = self.tmp / "agent.log"
        empty = self.tmp / "agent.toml"   # explicit empty config: never pick up /etc/devcloud-agent
        empty.touch()
        args = [sys.executable, "-m", "agent.cli.daemon", "run", "--config", str(empty)]
        for o in base_overrides(self.tmp) + self.overrides:
            args += ["--set", o]
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "PYTHONPATH": str(REPO), **self.env}
        env.pop("JOURNAL_STREAM", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        wait_ready(self.proc, self.notify, timeout, self.log)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix:{self.socket}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Signal our PID and wait; SIGKILL our PID if it does not exit."""
        if self.proc and self.proc.poll() is None:
            end(self.proc, sig, timeout)
            if self.proc.returncode not in (0, -sig):
                # shown with the failing test: a stop that hung dumps its threads' stacks in this log
                print(f"agent pid {self.proc.pid} exited {self.proc.returncode} after signal {sig}; "
                      f"last lines of {self.log_path}:\n{self.log_tail(80)}")
        if self.notify:
            self.notify.close()
        return self.proc.returncode if self.proc else None

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def kill(self) -> None:
        """SIGKILL (a crash, as far as the agent can tell)."""
        self.stop(signal.SIGKILL)


def temp_dir(prefix: str = "devcloud-test-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
