"""One way to undo a multi-step creation: register the undo right after each
create, call success() at the end; leaving the block without success() runs
the undos in reverse order (like lxc/incus shared/revert).

    with Reverter(f"port {net}/{name}") as revert:
        nb.ensure_ports(...)
        revert.add(lambda: nb.delete_ports(...))
        nl.create_veth(...)
        revert.add(lambda: nl.delete(host))
        ...
        revert.success()

An undo that fails is logged and the others still run; the original error
propagates unchanged.
"""
from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger(__name__)


class Reverter:
    """Undo steps of one operation, run in reverse unless success() was called."""

    def __init__(self, what: str = "") -> None:
        self.what = what
        self._undo: list[Callable[[], object]] = []
        self._done = False

    def add(self, undo: Callable[[], object]) -> None:
        """Register the undo of something just created."""
        self._undo.append(undo)

    def success(self) -> None:
        """Keep everything: the undos will not run."""
        self._done = True

    def fail(self) -> list[BaseException]:
        """Run the undos now (reverse order); returns the errors of those that failed."""
        errors: list[BaseException] = []
        while self._undo:
            step = self._undo.pop()
            try:
                step()
            except Exception as exc:              # keep undoing; the caller reports the original error
                log.warning("undo of %s failed: %s", self.what or "an operation", exc)
                errors.append(exc)
        return errors

    def __enter__(self) -> "Reverter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._done:
            self.fail()
