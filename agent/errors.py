"""The agent's one error hierarchy.

Every class carries its gRPC status code and a stable machine-readable
``reason`` (google.rpc.ErrorInfo.reason, UPPER_SNAKE_CASE). Drivers raise
these right where a library or errno fails; one interceptor
(agent/api/interceptors.py) turns them into statuses with details. Anything
that is not an AgentError becomes INTERNAL, logged with its traceback.
"""
from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field

import grpc

DOMAIN = "devcloud.agent.v1"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


class AgentError(Exception):
    """Base class: a failure with a gRPC code a client can act on."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason: str = "INTERNAL"

    def __init_subclass__(cls, code: grpc.StatusCode | None = None, reason: str = "", **kw: object) -> None:
        # the error table reads as one line per class: class X(AgentError, code=..., reason=...)
        super().__init_subclass__(**kw)
        if code is not None:
            cls.code = code
            cls.default_reason = reason or code.name

    def __init__(self, message: str, *, reason: str | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}


class InvalidArgument(AgentError, code=grpc.StatusCode.INVALID_ARGUMENT):
    """Malformed request: bad name, CIDR, size... Carries field violations."""

    def __init__(self, message: str, *, violations: list[FieldViolation] | None = None,
                 field: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.violations = list(violations or [])
        if field is not None:
            self.violations.append(FieldViolation(field, message))

    @classmethod
    def for_field(cls, field: str, description: str) -> "InvalidArgument":
        return cls(f"{field}: {description}", violations=[FieldViolation(field, description)])


class AlreadyExists(AgentError, code=grpc.StatusCode.ALREADY_EXISTS):
    """Exists with an incompatible immutable spec."""


class NotFound(AgentError, code=grpc.StatusCode.NOT_FOUND):
    """Get of a missing object (Delete of a missing object is OK, not this)."""


class Aborted(AgentError, code=grpc.StatusCode.ABORTED, reason="OPERATION_IN_FLIGHT"):
    """Another operation on the same key is in flight; retry later."""


class FailedPrecondition(AgentError, code=grpc.StatusCode.FAILED_PRECONDITION):
    """Facility missing on this host, object busy, or object not ours."""


class Unavailable(AgentError, code=grpc.StatusCode.UNAVAILABLE, reason="BACKEND_UNAVAILABLE"):
    """A backing daemon (OVSDB, ZFS) is unreachable or timed out: retryable."""


class DeadlineExceeded(AgentError, code=grpc.StatusCode.DEADLINE_EXCEEDED):
    """The call's deadline passed while waiting for a condition."""


class ResourceExhausted(AgentError, code=grpc.StatusCode.RESOURCE_EXHAUSTED):
    """Pool full, subnet exhausted, limits reached."""


class DataLoss(AgentError, code=grpc.StatusCode.DATA_LOSS):
    """Uploaded data is corrupt or truncated (checksum mismatch)."""


class PermissionDenied(AgentError, code=grpc.StatusCode.PERMISSION_DENIED):
    """Authenticated peer is not allowed to call the agent."""


class Internal(AgentError, code=grpc.StatusCode.INTERNAL):
    """A bug or an unexpected state; the message is safe to show a client."""


# errno -> (class, reason). Drivers call from_oserror() at the failing call.
_ERRNO_MAP: dict[int, tuple[type[AgentError], str]] = {
    _errno.ENOENT: (NotFound, "NOT_FOUND"),
    _errno.EEXIST: (AlreadyExists, "ALREADY_EXISTS"),
    _errno.EBUSY: (FailedPrecondition, "BUSY"),
    _errno.ENOTEMPTY: (FailedPrecondition, "NOT_EMPTY"),
    _errno.EPERM: (FailedPrecondition, "PERMISSION"),
    _errno.EACCES: (FailedPrecondition, "PERMISSION"),
    _errno.EROFS: (FailedPrecondition, "READ_ONLY"),
    _errno.EOPNOTSUPP: (FailedPrecondition, "NOT_SUPPORTED"),
    _errno.ENODEV: (FailedPrecondition, "NO_DEVICE"),
    _errno.ENOSPC: (ResourceExhausted, "NO_SPACE"),
    _errno.EDQUOT: (ResourceExhausted, "QUOTA_EXCEEDED"),
    _errno.ENOMEM: (ResourceExhausted, "NO_MEMORY"),
    _errno.EAGAIN: (Unavailable, "TRY_AGAIN"),
    _errno.ETIMEDOUT: (Unavailable, "TIMED_OUT"),
    _errno.ECONNREFUSED: (Unavailable, "CONNECTION_REFUSED"),
    _errno.EINVAL: (InvalidArgument, "KERNEL_EINVAL"),
    _errno.ERANGE: (InvalidArgument, "OUT_OF_RANGE"),
}


def from_oserror(exc: OSError, what: str, **metadata: str) -> AgentError:
    """Translate an OSError into the hierarchy; `what` names the object/action.

    The message keeps the errno text so an operator sees the kernel's words.
    """
    cls, reason = _ERRNO_MAP.get(exc.errno or 0, (Internal, "OS_ERROR"))
    text = f"{what}: {exc.strerror or exc}"
    meta = {"errno": _errno.errorcode.get(exc.errno or 0, str(exc.errno)), **metadata}
    return cls(text, reason=reason, metadata=meta)


@dataclass
class ErrorReport:
    """Collects several field violations before raising one InvalidArgument."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_name: str, description: str) -> None:
        self.violations.append(FieldViolation(field_name, description))

    def raise_if_any(self) -> None:
        if self.violations:
            first = self.violations[0]
            more = f" (+{len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
            raise InvalidArgument(f"{first.field}: {first.description}{more}",
                                  violations=self.violations)
