"""`devcloudctl`: a client for people and controller scripts.

Each plane adds a module agent/cli/ctl_<plane>.py with `register(sub)`;
commands get a `Ctx` (channel, --json, --timeout) and print a table or JSON.
Exit codes: 0 ok, 1 RPC error, 2 usage error, 3 a check/probe said no.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from agent import __version__
from agent.cli import output

DEFAULT_SOCKET = "/run/devcloud-agent/agent.sock"
COMMAND_MODULES = ["agent.cli.ctl_identity", "agent.cli.ctl_host", "agent.cli.ctl_compute", "agent.cli.ctl_network",
                   "agent.cli.ctl_storage", "agent.cli.ctl_instance"]


@dataclass
class Ctx:
    channel: grpc.Channel
    json: bool
    timeout: float


def open_channel(args) -> grpc.Channel:
    """Unix socket by default; TCP with mTLS (--cert/--key/--ca) or --insecure."""
    if args.addr:
        if args.insecure:
            return grpc.insecure_channel(args.addr)
        if not (args.cert and args.key and args.ca):
            raise SystemExit("devcloudctl: --addr needs --cert, --key and --ca (mutual TLS), or --insecure")
        creds = grpc.ssl_channel_credentials(root_certificates=Path(args.ca).read_bytes(),
                                             private_key=Path(args.key).read_bytes(),
                                             certificate_chain=Path(args.cert).read_bytes())
        opts = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
        return grpc.secure_channel(args.addr, creds, options=opts)
    return grpc.insecure_channel(f"unix:{args.socket}")


def format_rpc_error(err: grpc.RpcError) -> str:
    """CODE: message, plus reason and field violations from the rich status."""
    lines = [f"{err.code().name}: {err.details()}"]
    status: status_pb2.Status | None = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    for detail in status.details if status is not None else ():
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):             # False (nothing unpacked) when the detail is another type
            meta = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
            lines.append(f"  reason: {info.reason}" + (f" ({meta})" if meta else ""))
        elif detail.Unpack(bad):
            lines += [f"  field {v.field}: {v.description}" for v in bad.field_violations]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="devcloudctl", description="Talk to the devcloud-agent on this node.",
                                 epilog="examples:\n  devcloudctl host facts\n  devcloudctl --json capabilities\n"
                                        "  devcloudctl --addr node1:7443 --cert c.pem --key k.pem --ca ca.pem info",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"devcloudctl {__version__}")
    ap.add_argument("--socket", default=os.environ.get("DEVCLOUD_AGENT_SOCKET", DEFAULT_SOCKET),
                    help=f"agent unix socket (default {DEFAULT_SOCKET}, env DEVCLOUD_AGENT_SOCKET)")
    ap.add_argument("--addr", default=os.environ.get("DEVCLOUD_AGENT_ADDR"),
                    help="agent TCP host:port instead of the socket (env DEVCLOUD_AGENT_ADDR)")
    ap.add_argument("--cert", help="client certificate PEM (mTLS)")
    ap.add_argument("--key", help="client key PEM (mTLS)")
    ap.add_argument("--ca", help="CA certificate PEM that signed the agent's certificate")
    ap.add_argument("--server-name", help="expected name in the agent's certificate (TLS override)")
    ap.add_argument("--insecure", action="store_true", help="plaintext TCP (agent on loopback with --insecure)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-call deadline in seconds (default 30)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    channel = open_channel(args)
    try:
        return args.func(Ctx(channel, args.json, args.timeout), args) or 0
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNAVAILABLE and not args.addr and not Path(args.socket).exists():
            print(f"devcloudctl: no agent socket at {args.socket}; is devcloud-agent running? "
                  "(start it with `devcloud-agent run`, or pass --socket)", file=sys.stderr)
        else:
            print(f"devcloudctl: {format_rpc_error(err)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return output.reader_went_away()
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main())
