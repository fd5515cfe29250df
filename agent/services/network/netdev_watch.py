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
from agent.services.watch_queue import EventQueue, Subscribers

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
        self._subs: Subscribers[NetdevSubscription] = Subscribers("netdev-watch")

    def subscribe(self, maxsize: int = 10000) -> NetdevSubscription:
        """A new subscription; the monitor starts with the first one. Never raises (a monitor
        that cannot start is logged; the subscription then stays silent)."""
        sub = NetdevSubscription(self, maxsize)
        self._subs.add(sub, self._run)
        return sub

    def _drop(self, sub: NetdevSubscription) -> None:
        self._subs.drop(sub)

    def close(self) -> None:
        """Stop the monitor and close every subscription. Idempotent."""
        self._subs.close()

    def _run(self, ready: threading.Event) -> None:
        try:
            mon = self.nl.link_monitor()
        except AgentError as exc:
            log.warning("netdev watch unavailable: %s", exc.message)
            ready.set()
            self._subs.ended()
            return
        ready.set()
        try:
            while self._subs.keep_running():
                for ev in mon.events(_POLL):
                    if ev.deleted:
                        self._deleted(ev.name, ev.alias)
        except Exception:                           # never let the watch die silently
            log.exception("netdev watch failed; subscribe again to restart it")
            self._subs.ended()
        finally:
            mon.close()

    def _deleted(self, name: str, alias: str) -> None:
        mark = parse_mark(alias)
        if not mark_is(mark, owner=self.owner, kind="port"):
            return
        ev = NetdevGone(mark.get("net", ""), mark.get("port", ""), name, mark.get("inst", ""), mark.get("nic", ""))
        for s in self._subs.all():
            if not s.closed:
                s._put(ev)
