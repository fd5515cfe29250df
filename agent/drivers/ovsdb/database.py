"""What OvnNb and OvsDb share: one OvsdbClient connection, the owner mark, row listeners."""
from __future__ import annotations

from agent.drivers.base import Availability
from agent.drivers.contracts.ovsdb import OvsdbConnectionContract
from agent.drivers.ovsdb.client import Listener, OvsdbClient, Table
from agent.metrics import Metrics


class Database(OvsdbConnectionContract):
    """One replicated database: `db` (the OvsdbClient) and `owner` (the mark of our rows)."""

    def __init__(self, remote: str, schema: str, tables: dict[str, Table], *, label: str, metrics: Metrics,
                 owner: str, timeout: float, probe_interval_ms: int, on_event: Listener) -> None:
        """on_event: the driver's own listener (its caches), registered before anything connects."""
        self.owner = owner
        self.db = OvsdbClient(remote, schema, tables, metrics=metrics, label=label, timeout=timeout,
                              probe_interval_ms=probe_interval_ms)
        self.db.add_listener(on_event)

    def probe(self) -> Availability:
        """OvsdbClient.probe(): connects for at most 2 s."""
        return self.db.probe()

    def close(self) -> None:
        """Stops the IDL thread and the connection."""
        self.db.close()

    @property
    def connected(self) -> bool:
        """The session is up and the IDL is monitoring."""
        return self.db.connected

    @property
    def remote(self) -> str:
        """OvsdbClient.remote."""
        return self.db.remote

    @property
    def server(self) -> str:
        """The IDL session's name."""
        return self.db.server

    def add_listener(self, fn: Listener) -> None:
        """Runs on the IDL thread."""
        self.db.add_listener(fn)

    def remove_listener(self, fn: Listener) -> None:
        """Idempotent."""
        self.db.remove_listener(fn)
