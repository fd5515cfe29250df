"""`devcloud-agent`: run the daemon, check the host, show the effective config."""
from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from agent import __version__, config as config_mod, logs
from agent.cli import output

log = logging.getLogger("agent.daemon")     # __name__ is __main__ under python -m
STOP_MARGIN = 15.0      # seconds past server.grace_seconds before a wedged stop is dumped and ended

EPILOG = """examples:
  devcloud-agent run                          embedded defaults, /run/devcloud-agent/agent.sock
  devcloud-agent run --config /etc/devcloud-agent/agent.toml --set server.workers=32
  devcloud-agent run --listen 127.0.0.1:7443 --insecure     plaintext TCP (loopback only)
  devcloud-agent check --profile kubernetes-in-lxd --json
  devcloud-agent config --json                print the effective configuration
"""


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help=f"TOML config file (default {config_mod.DEFAULT_PATH} if present)")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override one config key, e.g. --set storage.pool=tank (repeatable)")
    p.add_argument("--socket", help="unix socket path ([server].socket); '' disables it")
    p.add_argument("--listen", help="TCP host:port ([server].tcp_listen); needs mTLS or --insecure")
    p.add_argument("--insecure", action="store_true", help="plaintext TCP, loopback only ([server].insecure)")
    p.add_argument("--tls-cert", help="server certificate PEM ([server].tls_cert)")
    p.add_argument("--tls-key", help="server key PEM ([server].tls_key)")
    p.add_argument("--tls-client-ca", help="CA of allowed client certificates ([server].tls_client_ca)")
    p.add_argument("--allow-client", action="append", default=None, metavar="NAME",
                   help="allowed client certificate CN/SAN (repeatable; [server].allowed_clients)")
    p.add_argument("--metrics-listen", help="Prometheus endpoint host:port on loopback; '' disables")
    p.add_argument("--state-dir", help="state directory ([node].state_dir)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="[log].level")


def _load_config(args) -> config_mod.Config:
    overrides = list(args.set)
    for flag, key in (("socket", "server.socket"), ("listen", "server.tcp_listen"),
                      ("tls_cert", "server.tls_cert"), ("tls_key", "server.tls_key"),
                      ("tls_client_ca", "server.tls_client_ca"), ("metrics_listen", "metrics.listen"),
                      ("state_dir", "node.state_dir"), ("log_level", "log.level")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "insecure", False):
        overrides.append("server.insecure=true")
    if getattr(args, "allow_client", None):
        overrides.append(f"server.allowed_clients={','.join(args.allow_client)}")
    return config_mod.load(args.config, overrides, explicit=args.config is not None)


def cmd_run(args) -> int:
    from agent.app import App   # heavy imports only for the daemon
    cfg = _load_config(args)
    logs.setup(cfg.log.level, cfg.log.format)
    app = App(cfg)
    # `kill -USR1 <pid>` writes every thread's stack to the log (C-level: works while Python is wedged)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    stop_signals = _StopSignals()
    try:
        app.start()
    except Exception as exc:
        print(f"devcloud-agent: cannot start: {exc}", file=sys.stderr)
        app.stop()
        return 1
    stop_signals.wait()
    # A stop that outlives its grace dumps every thread's stack to the log and exits 1,
    # so a wedged shutdown is bounded and says where it hung.
    faulthandler.dump_traceback_later(cfg.server.grace_seconds + STOP_MARGIN, exit=True)
    app.stop()
    log.info("stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # RPCs are drained and the planes closed; threads we do not own (gRPC's, pools') must not
    # hold the exit. Unfinished instance work is safe by design (intents + startup reconcile).
    os._exit(0)


class _StopSignals:
    """SIGTERM/SIGINT ask the app to stop; `wait()` returns once one arrived.

    The kernel may hand a process-directed signal to any thread (gRPC's threads do not block
    it), and a lock wait in the main thread is only interrupted when the signal lands there:
    the main thread then slept through SIGTERM (about 1 stop in 10 hung until SIGKILL). So the
    main thread waits on the signal wakeup fd, which the C-level handler writes on any thread.
    Only this process's own handler decides: a forked child (pyroute2's netns helpers) shares
    the fd, and its signals once stopped the agent right after READY."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    RECHECK_SECONDS = 1.0       # the handler can run just after a check: look again this soon

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._read, write = socket.socketpair()
        write.setblocking(False)
        self._write = write         # kept open for the life of the process
        self._read.settimeout(self.RECHECK_SECONDS)
        signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
        os.register_at_fork(after_in_child=lambda: signal.set_wakeup_fd(-1))
        for sig in self.SIGNALS:
            signal.signal(sig, lambda *_: self._requested.set())

    def wait(self) -> None:
        """Block until SIGTERM or SIGINT reached this process."""
        while not self._requested.is_set():
            try:
                self._read.recv(64)
            except TimeoutError:
                pass


def cmd_check(args) -> int:
    from agent.api.host import facts_to_pb, preflight_to_pb
    from agent.composition.host_compute import cgroup_subtree
    from agent.drivers.kernel import KernelDriver
    from agent.drivers.kvm import KvmDriver
    from agent.services.host import HostService, Profile
    cfg = _load_config(args)
    svc = HostService(KvmDriver(), KernelDriver(), cgroup_subtree=lambda: cgroup_subtree(cfg))
    facts, result = svc.facts(), svc.preflight(Profile(args.profile))
    if args.json:
        print(json.dumps({"facts": output.to_dict(facts_to_pb(facts)),
                          "preflight": output.to_dict(preflight_to_pb(result))}, indent=2))
    else:
        output.print_host_facts(facts_to_pb(facts))
        print()
        output.print_preflight(preflight_to_pb(result))
    return 0 if result.passed or not args.strict else 3


def cmd_config(args) -> int:
    cfg = _load_config(args)
    doc = dataclasses.asdict(cfg)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for table, values in doc.items():
            print(f"[{table}]")
            for k, v in values.items():
                print(f"{k} = {json.dumps(v)}")
            print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="devcloud-agent", description="Node-local data plane agent for "
                                 "LXD/Kubernetes developer clouds (ZFS, OVN, cgroup v2, KVM).",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"devcloud-agent {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon in the foreground (default)")
    _add_config_args(run)
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="print host facts and preflight checks (no daemon needed)")
    _add_config_args(check)
    check.add_argument("--profile", default="all", choices=["all", "kubernetes-in-lxd", "vm-host"])
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--strict", action="store_true", help="exit 3 when a check is missing")
    check.set_defaults(func=cmd_check)
    conf = sub.add_parser("config", help="validate and print the effective configuration")
    _add_config_args(conf)
    conf.add_argument("--json", action="store_true", help="machine-readable output")
    conf.set_defaults(func=cmd_config)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv.insert(0, "run")  # `devcloud-agent` alone runs the daemon
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except config_mod.ConfigError as exc:
        print(f"devcloud-agent: configuration error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return output.reader_went_away()


if __name__ == "__main__":
    sys.exit(main())
