"""One OVSDB transaction bounded by a deadline, run on the IDL thread
(ovsdbapp's Transaction with its waits bounded). OvsdbClient.transact
(client.py) builds and commits it; see that module for the error contract."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ovs import poller as ovs_poller
from ovs.db import idl as ovs_idl
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.backend.ovs_idl import transaction as ovsdbapp_txn

from agent.errors import AgentError, Aborted, Internal, Unavailable

if TYPE_CHECKING:
    from agent.drivers.ovsdb.client import _Idl


class Api:
    """The minimal 'api' object ovsdbapp's Transaction/Command expect."""

    def __init__(self, idl: _Idl) -> None:
        self.idl = idl


class Transaction(ovsdbapp_txn.Transaction):
    """A transaction bounded by a deadline at every wait (ovsdbapp's own loop
    can wait unbounded for a change once its time is used up)."""

    def __init__(self, api, conn, timeout: float, db: str, clustered: bool = False,
                 patience: float | None = None) -> None:
        super().__init__(api, conn, timeout=timeout, check_error=True, log_errors=False)
        self.deadline = time.monotonic() + timeout
        # how long one attempt may wait for a server that does not answer (or a reconnect);
        # re-runs after a verify conflict (a busy switch, the server answering) go on until
        # the deadline: contention is no unavailability
        self.patience = timeout if patience is None else min(timeout, patience)
        self.abandoned = False
        self.db = db
        self.clustered = clustered          # several members: a timeout may be an election in progress

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def _unavailable(self, what: str) -> Unavailable:
        hint = (" (a clustered central may be electing a leader; the write may still commit: retry, it is "
                "idempotent)") if self.clustered else ""
        return Unavailable(f"OVSDB {self.db}: {what}{hint}", reason="OVSDB_UNAVAILABLE", metadata={"db": self.db})

    def _until(self, since: float) -> float:
        """Seconds left of an attempt that started at `since` (patience, within the deadline)."""
        return min(self.deadline, since + self.patience) - time.monotonic()

    def _wait_change(self, seqno: int) -> None:
        idl = self.api.idl
        since = time.monotonic()
        while True:
            idl.run()
            if idl.change_seqno != seqno and idl.state == idl.IDL_S_MONITORING:
                return
            left = self._until(since)
            if left <= 0:
                raise self._unavailable("not connected (deadline reached while waiting for the server)")
            p = ovs_poller.Poller()
            idl.wait(p)
            p.timer_wait(max(1, int(min(left, 0.5) * 1000)))
            p.block()

    def do_commit(self) -> list:
        """On the IDL thread: run the commands into one OVSDB transaction and commit it, waiting
        for the server; re-run them from scratch after a TRY_AGAIN (verify conflict) until the
        deadline. Returns each command's result.

        Raises Unavailable OVSDB_UNAVAILABLE (not connected, no reply, or the deadline reached;
        the caller gave up), Aborted OVSDB_CONFLICT (constraint violation or referential
        integrity: a concurrent writer), Internal OVSDB_ERROR (another server error), and any
        AgentError a command raised (the transaction is aborted, nothing written)."""
        idl = self.api.idl
        if self.abandoned:
            raise self._unavailable("caller gave up before the transaction started")
        while True:
            if self._left() <= 0:
                raise self._unavailable("transaction deadline reached")
            if idl.state != idl.IDL_S_MONITORING:
                self._wait_change(idl.change_seqno)
                continue
            seqno = idl.change_seqno
            txn = ovs_idl.Transaction(idl)
            try:
                for command in self.commands:
                    command.api = self.api
                    command.run_idl(txn)
            except BaseException:
                txn.abort()
                raise
            status = txn.commit()
            sent = time.monotonic()
            while status == txn.INCOMPLETE:
                left = self._until(sent)
                if left <= 0:
                    txn.abort()
                    raise self._unavailable("no reply from the server before the deadline")
                p = ovs_poller.Poller()
                idl.wait(p)
                txn.wait(p)
                p.timer_wait(max(1, int(min(left, 0.5) * 1000)))
                p.block()
                idl.run()
                status = txn.commit()
            if status == txn.TRY_AGAIN:
                self._wait_change(seqno)
                continue
            if status == txn.ERROR:
                err = txn.get_error() or "unknown error"
                if "constraint violation" in err or "referential integrity" in err:
                    raise Aborted(f"OVSDB {self.db}: concurrent change conflicts with this one: {err}",
                                  reason="OVSDB_CONFLICT", metadata={"db": self.db})
                raise Internal(f"OVSDB {self.db} transaction failed: {err}", reason="OVSDB_ERROR")
            if status in (txn.ABORTED, txn.NOT_LOCKED):
                raise self._unavailable(f"transaction {status}")
            if status == txn.SUCCESS:
                self.post_commit(txn)
            return [cmd.result for cmd in self.commands]

    def commit(self) -> list:
        """Hand the transaction to the IDL thread and wait for do_commit()'s outcome within the
        deadline. Returns the commands' results. Raises Unavailable OVSDB_UNAVAILABLE (queue
        stuck, or no outcome by the deadline: the transaction is then abandoned and never
        started later, but one already running may still commit), AgentErrors of do_commit()
        unchanged, Internal OVSDB_ERROR for anything else."""
        try:
            self.ovsdb_connection.txns.put(self, timeout=max(0.001, self._left()))
        except Exception:
            raise self._unavailable("another transaction is stuck; server slow or unreachable") from None
        try:
            result = self.results.get(timeout=max(0.001, self._left() + 0.05))
        except Exception:
            self.abandoned = True
            raise self._unavailable("transaction deadline reached (server slow or unreachable)") from None
        if isinstance(result, idlutils.ExceptionResult):
            if isinstance(result.ex, AgentError):
                raise result.ex
            raise Internal(f"OVSDB {self.db} transaction failed: {result.ex}", reason="OVSDB_ERROR") from result.ex
        return result
