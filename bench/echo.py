"""A bare gRPC echo server (the floor of a unary round trip on this machine).

Run as a process: `python -m bench.echo <unix socket path>`; it serves the
method /bench.Echo/Echo (bytes in, the same bytes out) with the agent's
server shape (sync grpc.server on a thread pool of the same size, unix
socket) but no interceptors, no protobuf, no work. Stopped by SIGTERM.
"""
from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures

import grpc

METHOD = "/bench.Echo/Echo"


def _handler():
    return grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)})


def serve(path: str, workers: int = 64) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_handler(),))
    server.add_insecure_port(f"unix:{path}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop(1).wait(2)


def call(channel: grpc.Channel):
    """A callable doing one echo round trip on `channel`."""
    return channel.unary_unary(METHOD)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64)
