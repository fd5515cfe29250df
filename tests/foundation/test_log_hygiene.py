"""Log hygiene: a request field cannot forge log lines (control characters are escaped),
and a client that cancels a stream is not an error (no ERROR, no traceback)."""
from __future__ import annotations

import io
import logging
import threading
import time

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agent import logs
from agent._proto.devcloud.agent.v1 import compute_pb2, compute_pb2_grpc


@pytest.fixture
def text_log():
    """The agent's own text formatter on a buffer, for the api and access loggers."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logs._TextFormatter("%(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger("devcloud.agent.access"), logging.getLogger("devcloud.agent.api")]
    old = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield buf
    for lg, level in old:
        lg.removeHandler(handler)
        lg.setLevel(level)


def test_control_characters_in_request_fields_are_escaped(agent, text_log):
    forged = "x\n2026-01-01 00:00:00 ERROR devcloud.agent: forged\r\nmore"
    stub = compute_pb2_grpc.ComputeServiceStub(agent.channel)
    with pytest.raises(grpc.RpcError):
        stub.GetSlice(compute_pb2.GetSliceRequest(team=forged), timeout=5)
    out = text_log.getvalue()
    lines = [l for l in out.splitlines() if "GetSlice" in l]
    assert lines, out
    assert "forged" in lines[0] and "\\n2026" in lines[0] and "\\r\\nmore" in lines[0], lines
    assert not any(l.startswith("2026-01-01") for l in out.splitlines()), out


def test_escape_keeps_text_on_one_line():
    assert logs.escape("a\nb\r\tc\x00\x1b[31m") == "a\\nb\\r\\tc\\x00\\x1b[31m"
    assert logs.escape("plain text: ok") == "plain text: ok"


@pytest.mark.parametrize("how", ["cancel", "close-channel"])
def test_cancelled_reflection_stream_is_not_an_error(agent, text_log, how):
    release = threading.Event()

    def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        release.wait(5)                       # keep the stream open: the server waits for more

    channel = grpc.insecure_channel(f"unix:{agent.socket}")
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(requests())
    assert next(call).list_services_response.service
    if how == "cancel":
        call.cancel()
    else:
        channel.close()
    deadline = time.monotonic() + 10
    while "ServerReflectionInfo" not in text_log.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    release.set()
    channel.close()
    out = text_log.getvalue()
    # CANCELLED when gRPC told the handler, OK when the cancel raced the end of the request stream
    assert "ServerReflectionInfo code=CANCELLED" in out or "ServerReflectionInfo code=OK" in out, out
    assert "ERROR" not in out and "Traceback" not in out and "INTERNAL" not in out, out
