"""The agent's durable intent records: SQLite in WAL mode under the state dir.

Before the instance plane creates anything it commits an intent row naming
every object it will create (synchronous=FULL: the row is on disk before the
first object exists). A crash at any point leaves a record that startup
reconcile completes or rolls back.
"""
from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.drivers.base import Availability
from agent.errors import FailedPrecondition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id          TEXT PRIMARY KEY,
    team        TEXT NOT NULL,
    state       TEXT NOT NULL,        -- preparing | prepared | releasing | failed
    spec        TEXT NOT NULL,        -- desired spec (JSON)
    names       TEXT NOT NULL,        -- exact object names per plane (JSON), recorded before creation
    generation  INTEGER NOT NULL DEFAULT 1,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    message     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS instances_team ON instances(team);
CREATE TABLE IF NOT EXISTS operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    kind        TEXT NOT NULL,        -- prepare | release
    status      TEXT NOT NULL,        -- running | done | failed
    steps       TEXT NOT NULL DEFAULT '[]',
    started_at  REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS operations_running ON operations(status) WHERE status = 'running';
"""


@dataclass
class InstanceRecord:
    id: str
    team: str
    state: str
    spec: dict
    names: dict
    generation: int
    created_at: float
    updated_at: float
    message: str = ""


@dataclass
class Operation:
    id: int
    instance_id: str
    kind: str
    status: str
    steps: list[str]
    started_at: float


class StateStore:
    """Thread-safe access to the intent database (one connection, one lock).

    Every method but open/probe/close raises FailedPrecondition
    STATE_STORE_UNAVAILABLE while the database is not open. SQLite errors of a
    read or write on an open database (disk full, I/O error) propagate as
    sqlite3.Error, untranslated; a failed write transaction is rolled back."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._error = ""

    def open(self) -> None:
        """Create or open the database (WAL, synchronous=FULL) and its tables. Idempotent: open
        already -> nothing to do; an existing file keeps its rows. Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE when the directory or the file is unusable."""
        with self._lock:
            if self._db is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")   # intent must be on disk before the objects exist
                db.executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                self._error = f"cannot open the state database {self.path}: {exc}"
                raise FailedPrecondition(self._error, reason="STATE_STORE_UNAVAILABLE") from None
            self._db = db

    def probe(self) -> Availability:
        """Available once open() succeeded; else missing with open()'s error. Never raises."""
        if self._db is None:
            return Availability.missing(self._error or "state database not opened yet")
        return Availability.ok(version=f"sqlite {sqlite3.sqlite_version}", features=["wal"])

    def close(self) -> None:
        """Close the connection. Idempotent (closed already: nothing to do); open() may follow."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise FailedPrecondition(self._error or "state database is not open", reason="STATE_STORE_UNAVAILABLE")
        return self._db

    # --- writes (each one transaction) -------------------------------------------------

    def begin(self, record: InstanceRecord, kind: str) -> int:
        """Record intent: upsert the instance row and start an operation (status running), in one
        transaction on disk before it returns. Returns the op id. Not idempotent: each call
        starts a new operation; an existing row is overwritten but keeps its created_at.
        Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        now = time.time()
        with self._lock:
            db = self._conn()
            with _txn(db):
                db.execute(
                    "INSERT INTO instances(id, team, state, spec, names, generation, created_at, updated_at, message)"
                    " VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET team=excluded.team,"
                    " state=excluded.state, spec=excluded.spec, names=excluded.names,"
                    " generation=excluded.generation, updated_at=excluded.updated_at, message=excluded.message",
                    (record.id, record.team, record.state, json.dumps(record.spec, sort_keys=True),
                     json.dumps(record.names, sort_keys=True), record.generation, record.created_at or now, now,
                     record.message))
                cur = db.execute("INSERT INTO operations(instance_id, kind, status, started_at) VALUES(?,?,?,?)",
                                 (record.id, kind, "running", now))
                return _inserted_id(cur)

    def begin_many(self, records: list[InstanceRecord], kind: str) -> dict[str, int]:
        """begin() for many existing instances in ONE transaction (bulk release): sets their state
        and starts one operation each. Returns id -> op id. An absent instance row is not
        created (its operation is started anyway). Raises as begin()."""
        now = time.time()
        out = {}
        with self._lock:
            db = self._conn()
            with _txn(db):
                for r in records:
                    db.execute("UPDATE instances SET state=?, updated_at=? WHERE id=?", (r.state, now, r.id))
                    cur = db.execute("INSERT INTO operations(instance_id, kind, status, started_at)"
                                     " VALUES(?,?,?,?)", (r.id, kind, "running", now))
                    out[r.id] = _inserted_id(cur)
        return out

    def step_done(self, op_id: int, step: str) -> None:
        """Journal a finished step of a running operation (not fsync-critical: outside a
        transaction). An unknown op id is ignored. Not idempotent: a step given twice is
        journalled twice. Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        with self._lock:
            db = self._conn()
            row = db.execute("SELECT steps FROM operations WHERE id=?", (op_id,)).fetchone()
            if row:
                steps = json.loads(row[0]) + [step]
                db.execute("UPDATE operations SET steps=? WHERE id=?", (json.dumps(steps), op_id))

    def finish(self, op_id: int, status: str, *, instance_id: str, state: str | None,
               message: str = "", names: dict | None = None) -> None:
        """Close an operation; set the instance state (and `names`, when given: e.g. what was
        allocated), or delete the row when state is None; one transaction. Idempotent (same
        arguments again give the same rows); an unknown op id or instance is no error.
        Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        now = time.time()
        with self._lock:
            db = self._conn()
            with _txn(db):
                db.execute("UPDATE operations SET status=?, finished_at=? WHERE id=?", (status, now, op_id))
                if state is None:
                    db.execute("DELETE FROM instances WHERE id=?", (instance_id,))
                elif names is not None:
                    db.execute("UPDATE instances SET state=?, message=?, names=?, updated_at=? WHERE id=?",
                               (state, message, json.dumps(names, sort_keys=True), now, instance_id))
                else:
                    db.execute("UPDATE instances SET state=?, message=?, updated_at=? WHERE id=?",
                               (state, message, now, instance_id))

    def set_state(self, instance_id: str, state: str, message: str = "", names: dict | None = None) -> None:
        """Set an instance's state (and names, when given) outside an operation (e.g. after a Repair).
        Idempotent; an absent instance is no error (nothing changes). Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        with self._lock:
            if names is None:
                self._conn().execute("UPDATE instances SET state=?, message=?, updated_at=? WHERE id=?",
                                     (state, message, time.time(), instance_id))
            else:
                self._conn().execute("UPDATE instances SET state=?, message=?, names=?, updated_at=? WHERE id=?",
                                     (state, message, json.dumps(names, sort_keys=True), time.time(), instance_id))

    def finish_many(self, op_ids: dict[str, int], status: str) -> None:
        """Close many release operations (instance id -> op id) and delete their instances, in one
        transaction. Idempotent; absent rows are no error. Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        now = time.time()
        with self._lock:
            db = self._conn()
            with _txn(db):
                db.executemany("UPDATE operations SET status=?, finished_at=? WHERE id=?",
                               [(status, now, op) for op in op_ids.values()])
                db.executemany("DELETE FROM instances WHERE id=?", [(i,) for i in op_ids])

    # --- reads ------------------------------------------------------------------------

    def get(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None when absent. Read-only. Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        with self._lock:
            row = self._conn().execute("SELECT id, team, state, spec, names, generation, created_at,"
                                       " updated_at, message FROM instances WHERE id=?", (instance_id,)).fetchone()
        return _record(row) if row else None

    def list(self, team: str = "") -> list[InstanceRecord]:
        """Every instance record (of `team` when given), by id; [] when none. Read-only.
        Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        q = "SELECT id, team, state, spec, names, generation, created_at, updated_at, message FROM instances"
        with self._lock:
            rows = self._conn().execute(q + (" WHERE team=? ORDER BY id" if team else " ORDER BY id"),
                                        (team,) if team else ()).fetchall()
        return [_record(r) for r in rows]

    def running_operations(self) -> builtins.list[Operation]:
        """Operations still marked running (a crash interrupted them, or in flight now), oldest
        first. Read-only. Raises FailedPrecondition STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        with self._lock:
            rows = self._conn().execute("SELECT id, instance_id, kind, status, steps, started_at FROM operations"
                                        " WHERE status='running' ORDER BY id").fetchall()
        return [Operation(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def prune_operations(self, keep_seconds: float = 86400.0) -> int:
        """Drop finished operations older than `keep_seconds`; returns how many (0 when none).
        Idempotent; running operations are never dropped. Raises FailedPrecondition
        STATE_STORE_UNAVAILABLE, sqlite3.Error."""
        with self._lock:
            cur = self._conn().execute("DELETE FROM operations WHERE status != 'running' AND finished_at < ?",
                                       (time.time() - keep_seconds,))
            return cur.rowcount


class _txn:
    """BEGIN IMMEDIATE ... COMMIT / ROLLBACK on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid an INSERT just gave (sqlite3 types it Optional: None only before any insert)."""
    if cur.lastrowid is None:
        raise sqlite3.InterfaceError("INSERT returned no rowid")
    return cur.lastrowid


def _record(row: tuple) -> InstanceRecord:
    return InstanceRecord(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]), row[5], row[6],
                          row[7], row[8])
