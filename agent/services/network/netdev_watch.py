"""Netdevs of ours that vanish: the host netdevs of ports removed by someone else
(a runtime whose start failed after it moved a veth's instance end into its
own namespace: the kernel destroys the pair with that namespace). Diff and
Repair find it by looking; this tells watchers when it happens.

A link monitor of the host namespace runs on a thread only while someone
subscribes; a deleted netdev carrying our port mark becomes a NetdevGone. The
agent's own deletes are reported too: subscribers decide what is theirs (the
instance plane ignores instances it is releasing).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from agent.drivers.contracts.netlink import NetlinkContract
from agent.errors import AgentError
from agent.services.network.model import mark_is, parse_mark
from agent.services.watch_queue import EventQueue

log = logging.getLogger(__name__)
_POLL = 0.25


@dataclass(frozen=True)
class NetdevGone:
    """A host netdev of one of our ports was deleted."""

    network: str
    port: str
    netdev: str
    instance: str
    kind: str                       # veth | tap (the port's NIC kind)


class NetdevSubscription(EventQueue["NetdevGone"]):
    """NetdevGone events for one watcher; read with next_event(timeout). Close it."""

    OVERFLOW = "the netdev watch fell too far behind; watch again and re-read (Diff)"


class NetdevWatch:
    """Fan-out of NetdevGone events from a link monitor of the host namespace."""

    def __init__(self, nl: NetlinkContract, owner: str) -> None:
        self.nl, self.owner = nl, owner
        self._lock = threading.Lock()
        self._subs: list[NetdevSubscription] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def subscribe(self, maxsize: int = 10000) -> NetdevSubscription:
        """A new subscription; the monitor starts with the first one. Never raises (a monitor
        that cannot start is logged; the subscription then stays silent)."""
        sub = NetdevSubscription(self, maxsize)
        with self._lock:
            self._subs.append(sub)
            if self._thread is None:
                self._stop.clear()
                ready = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(ready,), name="netdev-watch", daemon=True)
                self._thread.start()
                ready.wait(5)                   # listening before the caller goes on: nothing falls between
        return sub

    def _drop(self, sub: NetdevSubscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            if not self._subs:
                self._stop.set()

    def close(self) -> None:
        """Stop the monitor and close every subscription. Idempotent."""
        self._stop.set()
        for s in list(self._subs):
            s.close()

    def _run(self, ready: threading.Event) -> None:
        try:
            mon = self.nl.link_monitor()
        except AgentError as exc:
            log.warning("netdev watch unavailable: %s", exc.message)
            ready.set()
            with self._lock:
                self._thread = None
            return
        ready.set()
        try:
            while True:
                if self._stop.is_set():
                    with self._lock:
                        if not self._subs:
                            self._thread = None
                            return
                        self._stop.clear()          # someone subscribed again meanwhile
                for ev in mon.events(_POLL):
                    if ev.deleted:
                        self._deleted(ev.name, ev.alias)
        except Exception:                           # never let the watch die silently
            log.exception("netdev watch failed; subscribe again to restart it")
            with self._lock:
                self._thread = None
        finally:
            mon.close()

    def _deleted(self, name: str, alias: str) -> None:
        mark = parse_mark(alias)
        if not mark_is(mark, owner=self.owner, kind="port"):
            return
        ev = NetdevGone(mark.get("net", ""), mark.get("port", ""), name, mark.get("inst", ""), mark.get("nic", ""))
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            if not s.closed:
                s._put(ev)
