"""WatchInstances: state changes of instances (preparing, prepared, releasing,
released, failed) published by the operations, readiness changes of their
NICs translated from the network plane's port watch, and drift events: a host
netdev of a prepared instance's NIC deleted behind the agent's back (e.g. a
runtime's failed start destroyed the veth pair) -> VETH_MISSING / TAP_MISSING,
as Diff reports it and Repair fixes it. Deletions while an instance is not
recorded as prepared (being prepared, rolled back, released) are the agent's
own and not reported.

The network subscriptions run only while someone watches (a pump thread
started by the first subscriber, stopped after the last one left).
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from agent.errors import Unavailable
from agent.services.drift import Drift
from agent.services.instances.model import PART_NETWORK, PREPARED, Event, NicNames
from agent.services.watch_queue import EventQueue, Subscribers

if TYPE_CHECKING:
    from agent.services.network.netdev_watch import NetdevGone
    from agent.services.network.service import NetworkService
    from agent.services.network.watch import ReadinessHub

log = logging.getLogger(__name__)


class Subscription(EventQueue[Event]):
    """Events of one watcher; filter by team and/or instance id. Close it."""

    OVERFLOW = "the instance watch fell too far behind; watch again and re-read"

    def __init__(self, hub: "WatchHub", team: str, instance: str, maxsize: int) -> None:
        super().__init__(hub, maxsize)
        self.team, self.instance = team, instance

    def wants(self, ev: Event) -> bool:
        """Whether `ev` passes this watcher's team/instance filter."""
        return (not self.team or ev.team == self.team) and (not self.instance or ev.id == self.instance)

    def offer(self, ev: Event) -> None:
        """Queue `ev` if wanted; never blocks (a full queue marks the watch overflowed)."""
        if not self.closed and self.wants(ev):
            self._put(ev)


class WatchHub:
    """Fan-out of instance events to subscriptions; NIC readiness from the network plane."""

    def __init__(self, network: NetworkService | None = None) -> None:
        self._network = network
        self._lock = threading.Lock()                 # the two indexes below
        self._subs: Subscribers[Subscription] = Subscribers("instance-watch")
        self._ports: dict[tuple[str, str], tuple[str, str, str]] = {}   # (network, port) -> (id, team, nic)
        self._states: dict[str, str] = {}

    # -- index of the NICs of recorded instances --------------------------------
    def index(self, instance: str, team: str, state: str, nics: tuple[NicNames, ...]) -> None:
        """Remember the instance's state and which ports are its NICs. Idempotent."""
        with self._lock:
            self._states[instance] = state
            for n in nics:
                self._ports[(n.network, n.port)] = (instance, team, n.nic)

    def unindex(self, instance: str, nics: tuple[NicNames, ...]) -> None:
        """Forget the instance and its NICs. Idempotent (unknown ones are fine)."""
        with self._lock:
            self._states.pop(instance, None)
            for n in nics:
                self._ports.pop((n.network, n.port), None)

    # -- publishing ------------------------------------------------------------------
    def publish(self, ev: Event) -> None:
        """Hand `ev` to every subscription that wants it (never blocks, never raises)."""
        with self._lock:
            if ev.state and not ev.nic:
                self._states[ev.id] = ev.state
        for s in self._subs.all():
            s.offer(ev)

    def subscribe(self, team: str = "", instance: str = "", maxsize: int = 10000) -> Subscription:
        """A new subscription (filters: "" = all); starts the port pump for the first one."""
        sub = Subscription(self, team, instance, maxsize)
        # subscribed to the network plane before the caller goes on (no event falls between)
        self._subs.add(sub, self._pump_ports if self._network is not None else None)
        return sub

    def _drop(self, sub: Subscription) -> None:
        self._subs.drop(sub)

    def close(self) -> None:
        """Stop the pump and close every subscription. Idempotent."""
        self._subs.close()

    def _pump_ports(self, ready: threading.Event) -> None:
        """Translate port readiness events and netdev deletions into instance events while
        anyone watches."""
        network = self._network
        hub = network.hub if network is not None else None
        sub = hub.subscribe() if hub is not None else None
        gone = network.watch_netdevs() if network is not None else None
        ready.set()
        try:
            while self._subs.keep_running():
                if gone is not None:
                    try:
                        nev = gone.next_event(0.0 if sub is not None else 0.25)
                    except Unavailable:
                        gone.close()
                        gone = network.watch_netdevs() if network is not None else None
                        nev = None
                    if nev is not None:
                        self._netdev_gone(nev)
                        continue
                if sub is None or hub is None:
                    continue
                try:
                    pev = sub.next_event(0.1 if gone is not None else 0.25)
                except Unavailable:              # fell behind: start over with a fresh subscription
                    sub.close()
                    sub = hub.subscribe()
                    continue
                if pev is None or pev.deleted:
                    continue
                with self._lock:
                    owner = self._ports.get((pev.network, pev.name))
                    state = self._states.get(owner[0], "") if owner else ""
                if owner is None:
                    continue
                st = pev.status
                self.publish(Event(owner[0], owner[1], state, nic=owner[2], nic_ready=st.ready,
                                   ovn_installed=st.ovn_installed, up=st.up))
        except Exception:                        # never let the pump die silently
            log.exception("instance watch pump failed")
            self._subs.ended()
        finally:
            if sub is not None:
                sub.close()
            if gone is not None:
                gone.close()

    def _netdev_gone(self, ev: NetdevGone) -> None:
        """A host netdev of a NIC vanished: a drift event when its instance is prepared (the
        agent's own deletes happen while it is preparing/releasing)."""
        with self._lock:
            owner = self._ports.get((ev.network, ev.port))
            state = self._states.get(owner[0], "") if owner else ""
        if owner is None or state != PREPARED:
            return
        reason = "TAP_MISSING" if ev.kind == "tap" else "VETH_MISSING"
        drift = Drift("network", ev.netdev, reason, f"netdev: {ev.netdev} was deleted (not by the agent); "
                                                    "Repair recreates it")
        self.publish(Event(owner[0], owner[1], state, drifts=((f"{PART_NETWORK}:{owner[2]}", drift),)))
