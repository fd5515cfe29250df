"""The interceptor maps the error hierarchy to status codes with
google.rpc details, and never leaks a traceback."""
from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agent import errors
from agent.api.server import AgentServer, Registration
from agent.config import ServerConfig
from agent.metrics import Metrics

CASES = {
    "invalid": (errors.InvalidArgument.for_field("spec.subnet", "not a CIDR"), grpc.StatusCode.INVALID_ARGUMENT),
    "exists": (errors.AlreadyExists("volume v1 exists with another image"), grpc.StatusCode.ALREADY_EXISTS),
    "notfound": (errors.NotFound("no such port"), grpc.StatusCode.NOT_FOUND),
    "aborted": (errors.Aborted("instance i1 busy"), grpc.StatusCode.ABORTED),
    "precondition": (errors.FailedPrecondition("zvols need kernel ZFS", reason="ZVOL_UNSUPPORTED"),
                     grpc.StatusCode.FAILED_PRECONDITION),
    "unavailable": (errors.Unavailable("OVN NB unreachable"), grpc.StatusCode.UNAVAILABLE),
    "exhausted": (errors.ResourceExhausted("subnet exhausted"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    "dataloss": (errors.DataLoss("sha256 mismatch"), grpc.StatusCode.DATA_LOSS),
    "bug": (KeyError("secret-internal-detail"), grpc.StatusCode.INTERNAL),
}


def _handler(request: bytes, context):
    raise CASES[request.decode()][0]


def _stream_handler(request: bytes, context):
    yield b"first"
    raise CASES[request.decode()][0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sock = tmp_path_factory.mktemp("errors") / "s.sock"
    generic = grpc.method_handlers_generic_handler("test.Raise", {
        "Unary": grpc.unary_unary_rpc_method_handler(_handler),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream_handler)})
    metrics = Metrics()
    srv = AgentServer(ServerConfig(socket=str(sock)), metrics,
                      [Registration("test.Raise", lambda s: s.add_generic_rpc_handlers((generic,)))])
    srv.bind()
    srv.start()
    ch = grpc.insecure_channel(f"unix:{sock}")
    yield ch, metrics
    ch.close()
    srv.stop(1)


def _details(err):
    status = rpc_status.from_call(err)
    out = {}
    for d in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if d.Is(cls.DESCRIPTOR):
                m = cls()
                d.Unpack(m)
                out[cls.__name__] = m
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_unary_error_mapping(server, case, caplog):
    ch, metrics = server
    exc, code = CASES[case]
    with caplog.at_level(logging.ERROR, logger="devcloud.agent.api"):
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary("/test.Raise/Unary")(case.encode(), timeout=5)
    assert e.value.code() == code
    d = _details(e.value)
    assert d["ErrorInfo"].domain == "devcloud.agent.v1"
    if code == grpc.StatusCode.INTERNAL:
        assert "secret-internal-detail" not in e.value.details()
        assert "Traceback" not in e.value.details()
        incident = d["ErrorInfo"].metadata["incident"]
        assert incident in e.value.details()
        assert any(incident in r.getMessage() and r.exc_info for r in caplog.records), "traceback must be logged"
    else:
        assert e.value.details() == exc.message
        assert d["ErrorInfo"].reason == exc.reason
    if case == "invalid":
        assert d["BadRequest"].field_violations[0].field == "spec.subnet"
    if case == "precondition":
        assert d["ErrorInfo"].reason == "ZVOL_UNSUPPORTED"
    assert metrics.rpc_total.labels("/test.Raise/Unary", code.name)._value.get() >= 1


def test_stream_error_after_first_message(server):
    ch, _ = server
    stream = ch.unary_stream("/test.Raise/Stream")(b"aborted", timeout=5)
    assert next(stream) == b"first"
    with pytest.raises(grpc.RpcError) as e:
        next(stream)
    assert e.value.code() == grpc.StatusCode.ABORTED


def test_oserror_translation_keeps_errno():
    import errno as E
    err = errors.from_oserror(OSError(E.EBUSY, "Device or resource busy"), "destroy tank/x")
    assert isinstance(err, errors.FailedPrecondition) and err.reason == "BUSY"
    assert err.metadata["errno"] == "EBUSY" and "destroy tank/x" in err.message
    assert isinstance(errors.from_oserror(OSError(E.ENOSPC, "x"), "w"), errors.ResourceExhausted)
