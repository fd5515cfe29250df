"""Datasets built under <parent>/tmp and renamed into place when whole (image imports,
image variants): a failure removes the half-built one; a crash leaves it for the
startup reconcile, which destroys whatever of ours it finds under tmp/."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from agent.drivers.zfs import ZfsBackend
from agent.errors import AgentError

log = logging.getLogger(__name__)


@contextmanager
def building(zfs: ZfsBackend, tmp: str, what: str) -> Iterator[None]:
    """Run the block that builds `tmp`; if it raises, destroy `tmp` (recursively) and re-raise.
    A destroy that fails is logged, not raised: the original error is the one that matters."""
    try:
        yield
    except BaseException:
        try:
            zfs.destroy(tmp, recursive=True)
        except AgentError as exc:
            log.warning("could not remove the failed %s %s: %s (removed at next start)", what, tmp, exc)
        raise
