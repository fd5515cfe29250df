"""Link change notifications (RTNLGRP_LINK) of one network namespace: what the
agent hears when something else removes one of its netdevs (a runtime's
failed start destroys the veth pair it was given).

A raw NETLINK_ROUTE socket created inside the namespace (the socket's namespace
is fixed at creation) and bound to RTMGRP_LINK; messages parsed with
pyroute2's marshal. The kernel's RTM_DELLINK carries the netdev's ifalias, so
a deleted netdev is recognised by our mark without a lookup.
"""
from __future__ import annotations

import select
import socket
from dataclasses import dataclass

from pyroute2.netlink.rtnl import RTMGRP_LINK
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from agent.errors import from_oserror

_RCVBUF = 1 << 20


@dataclass(frozen=True)
class LinkEvent:
    """One link notification."""

    name: str
    index: int
    deleted: bool                  # RTM_DELLINK
    alias: str                     # ifalias at that moment ("" = none)


class LinkMonitor:
    """Link notifications of one namespace; read them with events(timeout). Close it."""

    def __init__(self, sock: socket.socket) -> None:
        """`sock`: a NETLINK_ROUTE socket created inside the namespace to watch (the
        Netlink driver's link_monitor() makes one)."""
        self._sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind((0, RTMGRP_LINK))
        except OSError as exc:
            sock.close()
            raise from_oserror(exc, "link monitor socket") from None
        self._marshal = MarshalRtnl()
        self.overflowed = False        # ENOBUFS: notifications were lost (the caller re-reads)

    def events(self, timeout: float) -> list[LinkEvent]:
        """The notifications that arrived within `timeout` seconds ([] when none). Never raises
        for a lost batch (ENOBUFS sets `overflowed`); raises translated OSErrors otherwise."""
        try:
            ready, _, _ = select.select([self._sock], [], [], timeout)
            if not ready:
                return []
            data = self._sock.recv(1 << 16)
        except OSError as exc:
            if exc.errno == 105:                   # ENOBUFS: the kernel dropped notifications
                self.overflowed = True
                return []
            raise from_oserror(exc, "link monitor") from None
        out = []
        for msg in self._marshal.parse(data):
            ev = msg.get("event")
            if ev not in ("RTM_NEWLINK", "RTM_DELLINK"):
                continue
            out.append(LinkEvent(msg.get_attr("IFLA_IFNAME") or "", int(msg.get("index", 0)),
                                 ev == "RTM_DELLINK", msg.get_attr("IFLA_IFALIAS") or ""))
        return out

    def close(self) -> None:
        """Close the socket. Idempotent; never raises."""
        try:
            self._sock.close()
        except OSError:
            pass


def raw_route_socket() -> socket.socket:
    """A raw NETLINK_ROUTE socket in the calling thread's network namespace."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
