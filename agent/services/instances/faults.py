"""Step boundaries of Prepare and Release, and the test-only fault hook.

The boundaries are enumerated here from the planes' own step lists, so a new
step in a plane is announced (and crash-tested) without touching the tests:
tests/integration parametrize over PREPARE_STEPS and RELEASE_STEPS.

DEVCLOUD_AGENT_FAULT="prepare:<step>" or "release:<step>" makes the agent
process exit at once (os._exit(86): no cleanup, no flush, like a crash or
SIGKILL) the first time that boundary is reached. Never set in production.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from agent.services.compute import SCOPE_ENSURE_STEPS
from agent.services.network.ports import PORT_DELETE_STEPS, PORT_ENSURE_STEPS

log = logging.getLogger(__name__)

FAULT_ENV = "DEVCLOUD_AGENT_FAULT"
FAULT_EXIT_CODE = 86

PREPARE_STEPS: tuple[str, ...] = (
    "intent-recorded",                                   # the intent row (names) is on disk
    "storage.volume-created",                            # root dataset cloned/created
    *(f"network.{s}" for s in PORT_ENSURE_STEPS),        # per NIC: NB row, netdev, OVS binding
    *(f"compute.{s}" for s in SCOPE_ENSURE_STEPS),       # scope dir made and marked, limits not yet
    "planes-done",                                       # every plane finished, record not yet "prepared"
)
RELEASE_STEPS: tuple[str, ...] = (
    "intent-recorded",                                   # state "releasing" is on disk
    *(f"network.{s}" for s in PORT_DELETE_STEPS),        # OVS ports, netdevs, NB rows removed
    "storage.volume-destroyed",
    "compute.scope-removed",
    "planes-done",                                       # every plane finished, record not yet deleted
)
STEPS = {"prepare": PREPARE_STEPS, "release": RELEASE_STEPS}


class Faults:
    """Checkpoints of the instance plane; exits the process at the configured one."""

    def __init__(self, spec: str = "") -> None:
        """spec: "" (no fault) or "<prepare|release>:<step>". Raises ValueError for an unknown step."""
        self.target: tuple[str, str] | None = None
        if spec:
            op, _, step = spec.partition(":")
            if step not in STEPS.get(op, ()):
                raise ValueError(f"{FAULT_ENV}={spec!r}: expected prepare:<step> or release:<step> with a step of "
                                 f"{STEPS.get(op, PREPARE_STEPS + RELEASE_STEPS)}")
            self.target = (op, step)

    @classmethod
    def from_env(cls) -> "Faults":
        """From DEVCLOUD_AGENT_FAULT (unset: no fault). Raises ValueError for an unknown step."""
        return cls(os.environ.get(FAULT_ENV, ""))

    def hit(self, op: str, step: str) -> None:
        """A step boundary of `op` was reached."""
        if self.target == (op, step):
            log.critical("fault injection: exiting at %s:%s", op, step)
            sys.stderr.flush()
            os._exit(FAULT_EXIT_CODE)

    def checkpoint(self, op: str, prefix: str = "") -> Callable[[str], None] | None:
        """A callback for a plane's internal boundaries: step -> hit(op, prefix + step)."""
        if self.target is None or self.target[0] != op:
            return None
        return lambda step: self.hit(op, prefix + step)
