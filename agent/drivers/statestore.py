"""The agent's durable intent records: SQLite in WAL mode under the state dir.

Before the instance plane creates anything it commits an intent row naming
every object it will create (synchronous=FULL: the row is on disk before the
first object exists). A crash at any point leaves a record that startup
reconcile completes or rolls back. The contract (returns, absent/exists,
errors): agent/drivers/contracts/statestore.py.
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
from agent.drivers.contracts.statestore import StateStoreContract
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


class StateStore(StateStoreContract):
    """StateStoreContract over SQLite (one connection, one lock): its methods keep the contract
    documented there; their docstrings here say how."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._error = ""

    def open(self) -> None:
        """sqlite3 in WAL mode with synchronous=FULL (the intent is on disk before the objects exist); the
        schema is created if missing."""
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
        """Whether the connection is open."""
        if self._db is None:
            return Availability.missing(self._error or "state database not opened yet")
        return Availability.ok(version=f"sqlite {sqlite3.sqlite_version}", features=["wal"])

    def close(self) -> None:
        """Closes the SQLite connection."""
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
        """INSERT ... ON CONFLICT DO UPDATE of the instance row and an INSERT into operations, under BEGIN
        IMMEDIATE."""
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
        """One UPDATE and one INSERT per record under one BEGIN IMMEDIATE."""
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
        """Appends to the operation's JSON steps column, outside a transaction."""
        with self._lock:
            db = self._conn()
            row = db.execute("SELECT steps FROM operations WHERE id=?", (op_id,)).fetchone()
            if row:
                steps = json.loads(row[0]) + [step]
                db.execute("UPDATE operations SET steps=? WHERE id=?", (json.dumps(steps), op_id))

    def finish(self, op_id: int, status: str, *, instance_id: str, state: str | None,
               message: str = "", names: dict | None = None) -> None:
        """UPDATE operations, then UPDATE or DELETE the instance row, under BEGIN IMMEDIATE."""
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
        """One UPDATE of the instance row."""
        with self._lock:
            if names is None:
                self._conn().execute("UPDATE instances SET state=?, message=?, updated_at=? WHERE id=?",
                                     (state, message, time.time(), instance_id))
            else:
                self._conn().execute("UPDATE instances SET state=?, message=?, names=?, updated_at=? WHERE id=?",
                                     (state, message, json.dumps(names, sort_keys=True), time.time(), instance_id))

    def finish_many(self, op_ids: dict[str, int], status: str) -> None:
        """executemany UPDATE operations and DELETE instances under one BEGIN IMMEDIATE."""
        now = time.time()
        with self._lock:
            db = self._conn()
            with _txn(db):
                db.executemany("UPDATE operations SET status=?, finished_at=? WHERE id=?",
                               [(status, now, op) for op in op_ids.values()])
                db.executemany("DELETE FROM instances WHERE id=?", [(i,) for i in op_ids])

    # --- reads ------------------------------------------------------------------------

    def get(self, instance_id: str) -> InstanceRecord | None:
        """SELECT by primary key."""
        with self._lock:
            row = self._conn().execute("SELECT id, team, state, spec, names, generation, created_at,"
                                       " updated_at, message FROM instances WHERE id=?", (instance_id,)).fetchone()
        return _record(row) if row else None

    def list(self, team: str = "") -> list[InstanceRecord]:
        """SELECT ordered by id (the team index when given)."""
        q = "SELECT id, team, state, spec, names, generation, created_at, updated_at, message FROM instances"
        with self._lock:
            rows = self._conn().execute(q + (" WHERE team=? ORDER BY id" if team else " ORDER BY id"),
                                        (team,) if team else ()).fetchall()
        return [_record(r) for r in rows]

    def running_operations(self) -> builtins.list[Operation]:
        """SELECT through the partial index of running operations."""
        with self._lock:
            rows = self._conn().execute("SELECT id, instance_id, kind, status, steps, started_at FROM operations"
                                        " WHERE status='running' ORDER BY id").fetchall()
        return [Operation(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def prune_operations(self, keep_seconds: float = 86400.0) -> int:
        """DELETE of finished operations by finished_at."""
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
