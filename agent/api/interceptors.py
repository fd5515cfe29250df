"""The one place where exceptions become gRPC statuses, plus access log,
metrics and peer authorization.

AgentError -> its code, message, google.rpc.ErrorInfo (stable reason) and,
for InvalidArgument, google.rpc.BadRequest field violations. Anything else
-> INTERNAL with an incident id; the traceback goes to the log, never to
the client.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from typing import Iterator, Mapping, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from agent.errors import DOMAIN, AgentError, InvalidArgument, PermissionDenied
from agent.metrics import Metrics

log = logging.getLogger("devcloud.agent.api")
access = logging.getLogger("devcloud.agent.access")

# Request fields that name the resource an RPC acts on, in preference order.
_RESOURCE_FIELDS = ("instance_id", "id", "name", "network", "team", "image_id", "volume")


def to_status(exc: AgentError) -> grpc.Status:
    """Build the rich status (google.rpc.Status with details) for `exc`."""
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=exc.metadata))
    details.append(info)
    if isinstance(exc, InvalidArgument) and exc.violations:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in exc.violations]))
        details.append(bad)
    return rpc_status.to_status(status_pb2.Status(code=exc.code.value[0], message=exc.message,
                                                  details=details))


def _resource(request) -> str:
    """Best-effort name of the object a request is about, for the access log."""
    for holder in (request, getattr(request, "spec", None)):
        if holder is None:
            continue
        for f in _RESOURCE_FIELDS:
            value = getattr(holder, f, None)
            if isinstance(value, str) and value:
                return value[:128]
    return ""


def _cancelled(exc: Exception, context: grpc.ServicerContext) -> bool:
    """The client went away (cancelled, deadline passed, channel closed) and gRPC's request
    iterator said so: the RPC ends, nothing failed (not an error, no traceback)."""
    return isinstance(exc, grpc.RpcError) and not context.is_active()


def _peer_identities(context: grpc.ServicerContext) -> list[str]:
    # grpc-stubs says Mapping[str, bytes]; grpc returns a list of bytes per key
    auth = cast(Mapping[str, list[bytes]], context.auth_context() or {})
    names = auth.get("x509_common_name", []) + auth.get("x509_subject_alternative_name", [])
    return [n.decode(errors="replace") for n in names]


class AgentInterceptor(grpc.ServerInterceptor):
    """Wraps every handler: authorize, time, map errors, log, count."""

    def __init__(self, metrics: Metrics, allowed_clients: list[str] | None = None) -> None:
        self._metrics = metrics
        self._allowed = set(allowed_clients or [])

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream),
            handler.request_deserializer, handler.response_serializer)

    def _authorize(self, context: grpc.ServicerContext) -> None:
        # Unix-socket peers are authorized by the socket's file mode; TCP peers
        # passed mTLS (CA check in the handshake) and must be on the allowlist.
        if not self._allowed or context.peer().startswith("unix:"):
            return
        ids = _peer_identities(context)
        if not self._allowed.intersection(ids):
            raise PermissionDenied(f"client certificate identity {ids or ['<none>']} is not in "
                                   "[server].allowed_clients", reason="CLIENT_NOT_ALLOWED")

    @contextmanager
    def _handling(self, method: str, request, context: grpc.ServicerContext) -> Iterator[None]:
        """Around one handler: authorize first; a client that went away ends the RPC quietly (the
        exception is swallowed), any other exception aborts with its status; log and count always."""
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            self._authorize(context)
            yield
        except Exception as exc:
            if _cancelled(exc, context):
                code = grpc.StatusCode.CANCELLED
                return
            status, code = self._translate(method, exc, context)
            context.abort_with_status(status)
        finally:
            self._finish(method, code, start, request, context)

    def _wrap_unary(self, method: str, behavior):
        def wrapper(request, context):
            with self._handling(method, request, context):
                return behavior(request, context)
            return None                                  # cancelled
        return wrapper

    def _wrap_stream(self, method: str, behavior):
        def wrapper(request, context):
            with self._handling(method, request, context):
                yield from behavior(request, context)
        return wrapper

    def _translate(self, method: str, exc: Exception, context) -> tuple[grpc.Status, grpc.StatusCode]:
        """The status to abort with for `exc` (INTERNAL + incident id if unexpected)."""
        if isinstance(exc, AgentError):
            return to_status(exc), exc.code
        if context.code() not in (None, grpc.StatusCode.OK):
            raise exc  # the servicer already aborted (context.abort raises); keep its status
        incident = uuid.uuid4().hex[:12]
        log.error("unexpected error in %s (incident %s)", method, incident, exc_info=exc,
                  extra={"fields": {"method": method, "incident": incident}})
        status = to_status(AgentError(f"internal error; the agent log has the details under "
                                      f"incident {incident}", reason="INTERNAL",
                                      metadata={"incident": incident}))
        return status, grpc.StatusCode.INTERNAL

    def _finish(self, method: str, code, start: float, request, context) -> None:
        if code == grpc.StatusCode.OK and context.code() not in (None, grpc.StatusCode.OK):
            code = context.code()
        elif code == grpc.StatusCode.OK and not context.is_active():
            code = grpc.StatusCode.CANCELLED            # the client left before the handler ended
        elapsed = time.perf_counter() - start
        name = code.name
        self._metrics.rpc_total.labels(method, name).inc()
        self._metrics.rpc_duration.labels(method, name).observe(elapsed)
        if access.isEnabledFor(logging.INFO):
            access.info("rpc", extra={"fields": {
                "method": method, "code": name, "duration_ms": round(elapsed * 1e3, 3),
                "resource": _resource(request) if not hasattr(request, "__next__") else "",
                "peer": context.peer()}})
