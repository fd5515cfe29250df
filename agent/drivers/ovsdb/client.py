"""One persistent OVSDB connection (ovsdbapp + the OVS Python IDL).

The IDL keeps a local replica of the tables we register; reads come from that
cache (no round trip), writes are transactions with a deadline. The
connection has an inactivity probe (a half-open TCP connection is detected
and re-established instead of hanging writes forever) and reconnects on its
own; on reconnect the IDL re-downloads the monitored tables (resync) and
listeners get a "resync" event.

Clustered databases (several remotes, "tcp:a:6641,tcp:b:6641,..."): the IDL
stays on (or moves to) ANY member that is connected to its cluster, not only
the leader: a follower forwards our writes to the leader, and while the
cluster elects a new one it holds them (the server retries "cluster errors"
itself), so a leader change costs a write about the election (measured here
1.1-1.6 s; ovn-controller does the same). The stock python IDL instead only
accepts the leader and backs off 1, 2, 4, 8 s between rounds of "not cluster
leader" (2-4 s measured, up to 15 s seen by ovn-northd); its reconnect FSM
also clamps the backoff to >= 1 s, so we set the FSM's bounds ourselves
(RECONNECT_MIN_MS/RECONNECT_MAX_MS). A write in flight when a member dies
either fails (the IDL aborts it: TRY_AGAIN, our transaction re-runs its
commands on the fresh replica) or is held by the member; it may have
committed although the reply was lost: every command measures before acting,
so a re-run finds its own rows and writes nothing. The replica never goes
back in time (the IDL refuses a member with an older log index than it saw).

Errors: a server that is down, slow or unreachable -> Unavailable within the
caller's deadline. Exceptions raised by commands inside a transaction
(AgentError) propagate unchanged; an OVSDB constraint violation (e.g. a
duplicate indexed name) -> Aborted (reason OVSDB_CONFLICT) so the caller can
re-read and retry.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ovs.db import idl as ovs_idl
from ovsdbapp.backend.ovs_idl import command as ovsdbapp_command
from ovsdbapp.backend.ovs_idl import connection as ovsdbapp_connection
from ovsdbapp.backend.ovs_idl import idlutils

from agent.drivers.base import Availability
from agent.drivers.ovsdb import fastjson
from agent.drivers.ovsdb.txn import Api, Transaction
from agent.errors import FailedPrecondition, Unavailable
from agent.metrics import Metrics
from agent.model.marks import OWNER_KEY

log = logging.getLogger(__name__)

Listener = Callable[[str, str, Any], None]       # (event, table, row) ; event in create|update|delete|resync


@dataclass(frozen=True)
class Table:
    """A table to replicate: its columns (None = all) and the columns to index."""

    columns: tuple[str, ...] | None = None
    indexes: tuple[str, ...] = ()


class Command(ovsdbapp_command.BaseCommand):
    """A write step run inside a transaction on the IDL thread.

    Subclasses implement run(txn, idl) and may set self.result. They may raise
    AgentError to abort the whole transaction. They run again from scratch when
    the transaction is retried (TRY_AGAIN after a verify() conflict), so they
    must derive everything from the current cache.
    """

    def __init__(self) -> None:
        super().__init__(api=None)

    def run_idl(self, txn: ovs_idl.Transaction) -> None:  # ovsdbapp entry point
        """ovsdbapp's hook: run(txn, idl) with the connection's IDL. Raises what run() raises."""
        self.run(txn, self.api.idl)

    def run(self, txn: ovs_idl.Transaction, idl: ovs_idl.Idl) -> None:  # pragma: no cover - abstract
        """Stage this command's row changes in `txn`, reading rows from the `idl` cache; set
        self.result. Must be idempotent over retries (it runs again from scratch on TRY_AGAIN).
        Raise an AgentError to abort the whole transaction: it reaches the caller unchanged."""
        raise NotImplementedError


RECONNECT_MIN_MS = 100                 # first retry after a lost connection (the FSM's own floor is 1 s)
RECONNECT_MAX_MS = 1000                # retries double up to this while no member answers


class _Idl(ovsdbapp_connection.OvsdbIdl):
    """IDL that reports row changes and reconnections to the client."""

    def __init__(self, remote, helper, *, probe_interval: int, on_event: Listener) -> None:
        # any cluster member that is connected to its cluster will do (see the module doc)
        super().__init__(remote, helper, probe_interval=probe_interval, leader_only=False)
        self._on_event = on_event
        self._session_seqno = None
        self.resyncs = 0
        # reconnect quickly after a server restart or a member's death: the FSM's set_backoff()
        # clamps to >= 1000 ms (defaults back off up to 8 s), so its bounds are set directly
        fsm = self._session.reconnect
        fsm.set_backoff(RECONNECT_MIN_MS, RECONNECT_MAX_MS)
        fsm.min_backoff, fsm.max_backoff = RECONNECT_MIN_MS, RECONNECT_MAX_MS

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        """IDL hook, on the IDL thread: report a row change ("create" | "update" | "delete") to the
        client. Never raises (the client's listeners are guarded)."""
        self._on_event(event, row._table.name, row)

    def run(self) -> bool:
        """One IDL iteration (process messages); after a reconnect that reached the monitoring
        state again, report "resync" to the client. Returns whether the replica changed."""
        changed = super().run()
        if not (self._session.is_connected() and self.state == self.IDL_S_MONITORING):
            return changed
        seqno = self._session.get_seqno()
        if seqno != self._session_seqno:          # a new session reached the monitoring state
            first = self._session_seqno is None
            self._session_seqno = seqno
            if not first:
                self.resyncs += 1
                self._on_event("resync", "", self)      # the tables are already reloaded: row = the IDL
        return changed


class OvsdbClient:
    """A persistent, lazily connected IDL connection to one OVSDB database.

    Thread-safe: any thread may read, transact or wait. Reads never block on a
    transaction in flight.
    """

    def __init__(self, remote: str, schema: str, tables: dict[str, Table], *,
                 metrics: Metrics, label: str, timeout: float = 5.0, probe_interval_ms: int = 5000) -> None:
        """tables: what to replicate (a small set keeps the cache and the update traffic small)."""
        self.remote = remote
        self.schema = schema
        self.tables = tables
        self.label = label                     # metrics label and error text ("nb", "ovs")
        self.timeout = timeout
        self.probe_interval_ms = probe_interval_ms
        self._metrics = metrics
        self._conn: ovsdbapp_connection.Connection | None = None
        self._idl: _Idl | None = None
        self._connect_lock = threading.Lock()
        self._cond = threading.Condition()
        self._version = 0                      # bumped on every row event
        self._listeners: list[Listener] = []
        self._last_error = ""
        self.json_parser = fastjson.enable()  # "C" halves the sync of a big table (see fastjson.py)

    # -- connection --------------------------------------------------------
    def connect(self, deadline: float | None = None) -> None:
        """Connect and download the monitored tables if not done yet.

        Idempotent: connected already -> returns at once (a lost connection is
        re-established by the IDL itself, not here). Raises Unavailable
        OVSDB_UNAVAILABLE when the server cannot be reached, or the initial sync
        does not finish, before the deadline (default: now + timeout)."""
        if self._conn is not None:
            return
        deadline = deadline if deadline is not None else time.monotonic() + self.timeout
        if not self._connect_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise Unavailable(f"OVSDB {self.label}: connection attempt in progress", reason="OVSDB_UNAVAILABLE")
        try:
            if self._conn is not None:
                return
            helper = self._fetch_schema(deadline)
            for name, spec in self.tables.items():
                if spec.columns is None:
                    helper.register_table(name)
                else:
                    helper.register_columns(name, list(spec.columns))
            idl = _Idl(self.remote, helper, probe_interval=self.probe_interval_ms, on_event=self._on_event)
            for name, spec in self.tables.items():
                for column in spec.indexes:
                    idl.tables[name].rows.index_create(column).add_column(column)
            conn = ovsdbapp_connection.Connection(idl, timeout=max(0.05, deadline - time.monotonic()))
            try:
                conn.start()
            except Exception as exc:
                idl.close()
                self._last_error = str(exc)
                raise Unavailable(f"OVSDB {self.label} at {self.remote}: initial sync failed: {exc}",
                                  reason="OVSDB_UNAVAILABLE") from None
            conn.timeout = self.timeout
            self._idl, self._conn = idl, conn
            self._last_error = ""
        finally:
            self._connect_lock.release()

    def _fetch_schema(self, deadline: float):
        """The schema from the first cluster member that answers: one thread per remote, since
        the OVS library blocks without timeout on a member that accepts but does not answer (or
        whose address drops packets), and such a member must not hide the others."""
        cond = threading.Condition()
        box: dict[str, Any] = {"errors": []}
        remotes = idlutils.parse_connection(self.remote)

        def fetch(remote: str) -> None:
            try:
                helper = idlutils.get_schema_helper(remote, self.schema)
            except Exception as exc:
                with cond:
                    box["errors"].append(f"{remote}: {exc}")
                    cond.notify_all()
                return
            with cond:
                box.setdefault("helper", helper)
                cond.notify_all()

        for remote in remotes:
            threading.Thread(target=fetch, args=(remote,), name=f"ovsdb-schema-{self.label}", daemon=True).start()
        with cond:
            cond.wait_for(lambda: "helper" in box or len(box["errors"]) == len(remotes),
                          max(0.0, deadline - time.monotonic()))
            if "helper" in box:
                return box["helper"]
            self._last_error = "; ".join(box["errors"]) or "timed out"
        raise Unavailable(f"OVSDB {self.label} at {self.remote} is unreachable: {self._last_error}",
                          reason="OVSDB_UNAVAILABLE", metadata={"remote": self.remote})

    @property
    def connected(self) -> bool:
        """True while the session is up and the replica is in sync (monitoring). Never raises."""
        return self._in_sync() is not None

    def _in_sync(self) -> _Idl | None:
        """The IDL while connected and in sync, else None."""
        idl = self._idl
        return idl if idl and idl._session.is_connected() and idl.state == idl.IDL_S_MONITORING else None

    @property
    def server(self) -> str:
        """The remote (cluster member) the session uses now ("" before connecting). Never raises."""
        idl = self._idl
        return idl.session_name() if idl is not None else ""

    @property
    def resyncs(self) -> int:
        """How many times the replica was re-downloaded after a reconnect (0 before connecting)."""
        return self._idl.resyncs if self._idl else 0

    def probe(self) -> Availability:
        """Available when connected, with the schema version (tries to connect once, for at most
        2 s). Never raises: unreachable or reconnecting -> missing with the reason."""
        try:
            self.connect(time.monotonic() + min(self.timeout, 2.0))
        except Unavailable as exc:
            return Availability.missing(exc.message)
        if not self.connected:
            return Availability.missing(f"OVSDB {self.label} at {self.remote}: connection lost, reconnecting")
        return Availability.ok(self._idl._db.version if self._idl else "")

    def close(self) -> None:
        """Stop the IDL thread and close the connection. Idempotent (closed or never connected:
        nothing to do); a later call that needs the server connects again. Never raises."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.stop(timeout=2)
        self._idl = None

    def require_connected(self, deadline: float | None) -> _Idl:
        """The IDL, connected and in sync; connects first if needed and waits for a reconnect up
        to the deadline (default now + timeout), else Unavailable OVSDB_UNAVAILABLE (a read must
        not silently serve a stale cache). Read-only."""
        self.connect(deadline)
        idl = self._in_sync()
        if idl is not None:
            return idl
        end = deadline if deadline is not None else time.monotonic() + self.timeout
        with self._cond:
            while (idl := self._in_sync()) is None:
                left = end - time.monotonic()
                if left <= 0:
                    raise Unavailable(f"OVSDB {self.label} at {self.remote}: not connected (reconnecting)",
                                      reason="OVSDB_UNAVAILABLE", metadata={"remote": self.remote})
                self._cond.wait(min(left, 0.05))
        return idl

    # -- writes ------------------------------------------------------------
    def transact(self, commands: Iterable[Command], deadline: float | None = None) -> list:
        """Run `commands` in ONE transaction, retried on verify conflicts until
        the deadline (default now + timeout); waiting for a server that does not answer
        (or a reconnect) is bounded by `timeout` per attempt. Returns each command's result.

        Not idempotent by itself: each command decides (ours are: they measure the
        cache, then act). No commands -> [] without a round trip. Raises Unavailable
        OVSDB_UNAVAILABLE (server down/slow), Aborted OVSDB_CONFLICT (constraint
        conflict: re-read and retry), Internal OVSDB_ERROR, or whatever AgentError a
        command raised (then nothing was written)."""
        commands = list(commands)
        if not commands:
            return []
        now = time.monotonic()
        patient = min(deadline, now + self.timeout) if deadline else now + self.timeout
        end = deadline if deadline else patient      # re-runs after verify conflicts: the caller's whole deadline
        idl = self.require_connected(patient)
        txn = Transaction(Api(idl), self._conn, max(0.001, end - time.monotonic()), self.label,
                          clustered="," in self.remote, patience=self.timeout)
        for c in commands:
            txn.add(c)
        with self._metrics.time(self._metrics.ovsdb_txn, db=self.label):
            return txn.commit()

    # -- cached reads ------------------------------------------------------
    def rows(self, table: str, deadline: float | None = None) -> list:
        """A snapshot list of every cached row of `table` ([] when empty; startup/GC use).
        Read-only. Raises Unavailable OVSDB_UNAVAILABLE (not connected by the deadline)."""
        idl = self.require_connected(deadline)
        return _retry(lambda: list(idl.tables[table].rows.values()))

    def lookup(self, table: str, column: str, value, deadline: float | None = None):
        """The first cached row with column == value via the index, or None when absent.
        Read-only. Raises Unavailable OVSDB_UNAVAILABLE (not connected by the deadline)."""
        idl = self.require_connected(deadline)
        return _retry(lambda: next(idlutils.index_lookup_all(idl.tables[table], **{column: value}), None))

    def lookup_all(self, table: str, column: str, value, deadline: float | None = None) -> list:
        """Every cached row with column == value (indexed); [] when none. Read-only. Raises
        Unavailable OVSDB_UNAVAILABLE (not connected by the deadline)."""
        idl = self.require_connected(deadline)
        return _retry(lambda: list(idlutils.index_lookup_all(idl.tables[table], **{column: value})))

    def get(self, table: str, row_uuid: uuid.UUID):
        """The cached row with this UUID, or None (absent, or never connected: never waits).
        Read-only; never raises."""
        idl = self._idl
        return idl.tables[table].rows.get(row_uuid) if idl else None

    # -- change notification ----------------------------------------------
    def _on_event(self, event: str, table: str, row) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()
        for fn in list(self._listeners):
            try:
                fn(event, table, row)
            except Exception:  # a listener bug must not kill the IDL thread
                log.exception("OVSDB %s listener failed", self.label)

    def add_listener(self, fn: Listener) -> None:
        """Call fn(event, table, row) on the IDL thread for every change and "resync" (row = the
        IDL) after a reconnect; fn must be quick, its exceptions are logged, never raised. Not
        idempotent: the same fn added twice is called twice."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        """Stop calling fn. Idempotent: a listener that is not registered is no error."""
        try:
            self._listeners.remove(fn)
        except ValueError:
            pass

    def wait_for(self, predicate: Callable[[], Any], deadline: float | None) -> Any:
        """Re-evaluate predicate() on every change until it returns a truthy value
        (returned) or the deadline passes (returns the last falsy value; None: wait
        forever). Read-only; never raises a timeout: the caller decides what a falsy
        value means. Exceptions of predicate() propagate."""
        with self._cond:
            while True:
                value = _retry(predicate)
                if value:
                    return value
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return value
                self._cond.wait(0.5 if left is None else min(left, 0.5))


def _retry(fn: Callable[[], Any], attempts: int = 5) -> Any:
    """Run a cache read; retry when the IDL thread changed the cache under it: a dict
    mutated mid-iteration (RuntimeError), or an index entry whose row was just removed
    (KeyError from ovs.db.custom_index; seen with 16 concurrent prepares in the bench)."""
    for i in range(attempts):
        try:
            return fn()
        except (RuntimeError, KeyError):
            if i == attempts - 1:
                raise
            time.sleep(0)


def ext(row, key: str, default: str = "") -> str:
    """external_ids[key] of a row (default when absent)."""
    return row.external_ids.get(key, default)


def owned_by(row, owner: str) -> bool:
    """True when the row carries our mark: external_ids OWNER_KEY == owner."""
    return row.external_ids.get(OWNER_KEY) == owner


def by_name(idl, table: str, name: str):
    """The row of `table` whose indexed name column is `name`, or None (inside a command, on the IDL thread)."""
    return next(idlutils.index_lookup_all(idl.tables[table], name=name), None)


def ours_by_name(idl, table: str, names: list[str], owner: str, *, what: str, verb: str, key: str) -> list:
    """The rows of `table` named `names` that exist (inside a command, on the IDL thread), for a
    command about to remove them. Raises FailedPrecondition NOT_OURS (metadata {key: name}) when
    one is not ours, so the whole transaction is aborted."""
    rows = []
    for name in names:
        row = by_name(idl, table, name)
        if row is None:
            continue
        if not owned_by(row, owner):
            raise FailedPrecondition(f"{what} {name} is not ours; not {verb} it", reason="NOT_OURS",
                                     metadata={key: name})
        rows.append(row)
    return rows
