"""Port readiness (ovn-installed on the OVS Interface + up in NB) from the IDL
caches, waits bounded by a deadline, WatchPorts subscriptions. (The gate that
keeps port operations and network deletion apart is a locks.SharedExclusive.)
"""
from __future__ import annotations

import threading
import time
from typing import Any

from agent.drivers.contracts.ovsdb import IFACE_ID, OvnNbContract, OvsDbContract
from agent.errors import Unavailable
from agent.model.marks import NETDEV_KEY, NETWORK_KEY, OWNER_KEY, PORT_KEY
from agent.services.network.model import PortEvent, PortStatus
from agent.services.watch_queue import EventQueue


class ReadinessHub:
    """Turns NB/OVS row events into readiness waits and PortEvent streams."""

    def __init__(self, nb: OvnNbContract, ovs: OvsDbContract, owner: str) -> None:
        self.nb, self.ovs, self.owner = nb, ovs, owner
        self._cond = threading.Condition()
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        nb.add_listener(self._on_nb)
        ovs.add_listener(self._on_ovs)

    def close(self) -> None:
        """Stop listening to both databases and close every subscription."""
        self.nb.remove_listener(self._on_nb)
        self.ovs.remove_listener(self._on_ovs)
        for sub in list(self._subs):
            sub.close()

    # -- state -------------------------------------------------------------
    def status(self, lsp: str, host: str) -> PortStatus:
        """Readiness from the caches right now (never waits)."""
        iface = self.ovs.interface_cached(host)
        up = self.nb.port_up(lsp)
        installed = bool(iface and iface.ovn_installed)
        missing = []
        if iface is None:
            missing.append("ovs-port")
        elif not installed:
            missing.append("ovn-installed")
        if not up:
            missing.append("up")
        return PortStatus(ovn_installed=installed, up=bool(up), missing=tuple(missing), ready=not missing)

    def wait(self, lsp: str, host: str, end: float) -> PortStatus:
        """Wait until the port is ready or `end` (monotonic) passes; the returned
        status names what is still missing. Raises Unavailable when a database
        connection is down at the end (the caches cannot be trusted)."""
        start = time.monotonic()
        with self._cond:
            while True:
                st = self.status(lsp, host)
                left = end - time.monotonic()
                if st.ready or left <= 0:
                    break
                self._cond.wait(min(left, 0.25))
        st.waited_seconds = time.monotonic() - start
        if not st.ready and not (self.nb.connected and self.ovs.connected):
            raise Unavailable("lost the OVSDB connection while waiting for the port to become ready",
                              reason="OVSDB_UNAVAILABLE")
        return st

    # -- events ------------------------------------------------------------
    def _on_nb(self, event: str, table: str, row: Any) -> None:
        if self._ours(event, table, row, "Logical_Switch_Port"):
            ext = row.external_ids
            self._changed(ext.get(NETWORK_KEY, ""), ext.get(PORT_KEY, ""), row.name, ext.get(NETDEV_KEY, ""),
                          deleted=(event == "delete"))

    def _on_ovs(self, event: str, table: str, row: Any) -> None:
        if self._ours(event, table, row, "Interface"):
            ext = row.external_ids
            self._changed(ext.get(NETWORK_KEY, ""), ext.get(PORT_KEY, ""), ext.get(IFACE_ID, ""), row.name,
                          deleted=False)

    def _ours(self, event: str, table: str, row: Any, want: str) -> bool:
        """True for an event on a row of ours in table `want`. A resync wakes every waiter and
        refreshes every subscription instead (False)."""
        if event == "resync":
            self._resync()
            return False
        return table == want and row.external_ids.get(OWNER_KEY) == self.owner

    def _changed(self, network: str, port: str, lsp: str, host: str, *, deleted: bool) -> None:
        with self._cond:
            self._cond.notify_all()
        if not self._subs or not network or not port:
            return
        st = PortStatus() if deleted else self.status(lsp, host)
        for sub in list(self._subs):
            sub.offer(PortEvent(network, port, st, deleted=deleted))

    def _resync(self) -> None:
        with self._cond:
            self._cond.notify_all()
        for sub in list(self._subs):
            sub.resynced()

    def subscribe(self, network: str = "", maxsize: int = 10000) -> "Subscription":
        """A stream of readiness changes of our ports (of one network, or all)."""
        sub = Subscription(self, network, maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _drop(self, sub: "Subscription") -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)


class Subscription(EventQueue[PortEvent]):
    """Deduplicated readiness events; iterate with next_event(timeout)."""

    OVERFLOW = "the port watch fell too far behind; reconnect and re-read"

    def __init__(self, hub: ReadinessHub, network: str, maxsize: int) -> None:
        super().__init__(hub, maxsize)
        self.network = network
        self._last: dict[tuple[str, str], tuple] = {}

    def offer(self, ev: PortEvent) -> None:
        """Queue `ev` unless it is for another network or repeats the port's last state."""
        if self.closed or (self.network and ev.network != self.network):
            return
        key = (ev.network, ev.name)
        sig = (ev.deleted, ev.status.ovn_installed, ev.status.up)
        if self._last.get(key) == sig:
            return
        self._last[key] = sig
        if ev.deleted:
            self._last.pop(key, None)
        self._put(ev)

    def prime(self, ev: PortEvent) -> None:
        """Record an initial snapshot entry (sent by the caller) for deduplication."""
        self._last[(ev.network, ev.name)] = (ev.deleted, ev.status.ovn_installed, ev.status.up)

    def resynced(self) -> None:
        """The caches were rebuilt after a reconnect: announce every port again."""
        self._last.clear()                  # after a reconnect every port is re-announced once
