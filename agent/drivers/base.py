"""What every driver shares: availability reported as data.

A driver wraps one kernel facility or local daemon. `probe()` never raises:
it reports whether the facility works here and, if not, why and what to do.
Calls against an unavailable facility raise FailedPrecondition with that
reason (see `require`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent.errors import FailedPrecondition


@dataclass(frozen=True)
class Availability:
    """The result of a driver probe."""

    available: bool
    reason: str = ""            # empty when available; else what is missing and what to do
    version: str = ""           # version of the facility (kernel module, daemon, library)
    features: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("zvol", "lz4")

    @classmethod
    def ok(cls, version: str = "", features: tuple[str, ...] | list[str] = ()) -> "Availability":
        """An available facility with its version and features. Pure; never raises."""
        return cls(True, "", version, tuple(features))

    @classmethod
    def missing(cls, reason: str, version: str = "") -> "Availability":
        """An unavailable facility; `reason` says what is missing and what to do. Pure; never raises."""
        return cls(False, reason, version, ())


def require(facility: str, availability: Availability) -> None:
    """Raise FailedPrecondition naming the facility if it is not available."""
    if not availability.available:
        raise FailedPrecondition(f"{facility} is not available on this host: {availability.reason}",
                                 reason="FACILITY_UNAVAILABLE", metadata={"facility": facility})
