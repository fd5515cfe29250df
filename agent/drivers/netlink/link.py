"""A netdev as rtnetlink reports it, and the link group every netdev of ours is born in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IFF_UP = 0x1
# Every netdev the agent creates is born in a link group with "dc" in the high half, set in the
# very RTM_NEWLINK that creates it (the kernel ignores IFLA_IFALIAS there, so the ifalias mark
# needs a second request). A crash between the two leaves a netdev that is still recognisably
# ours: our name prefix + this group + no ifalias. Bulk deletes move netdevs to a temporary
# group of the same range, so a crash in the middle of one leaves them recognisable too.
GROUP_MASK = 0xFFFF0000
BIRTH_GROUP = 0x64630000


@dataclass(frozen=True)
class Link:
    """A netdev as the kernel reports it."""

    name: str
    index: int
    kind: str                # veth | tun | bridge | ... ("" for physical)
    mac: str
    mtu: int
    alias: str               # ifalias ("" when unset): our ownership mark lives here
    group: int
    master: int              # ifindex of the bridge it is enslaved to (0 = none)
    up: bool                 # administratively up (IFF_UP)
    operstate: str
    peer_index: int          # veth: IFLA_LINK (peer ifindex, maybe in another namespace)
    peer_netnsid: int        # -1 when the peer is in the same namespace
    multiqueue: bool         # tun/tap created with IFF_MULTI_QUEUE

    @property
    def born_ours(self) -> bool:
        """Created by the agent (its birth group), whether or not the ifalias mark was set yet."""
        return self.group & GROUP_MASK == BIRTH_GROUP


def link_of(msg: Any) -> Link:
    """A Link from a pyroute2 RTM_NEWLINK message (a get or dump answer). Pure."""
    data = msg.get(("linkinfo", "data"))
    mq = False
    if data is not None and hasattr(data, "get_attr"):
        mq = bool(data.get_attr("IFLA_TUN_MULTI_QUEUE"))
    nsid = msg.get("link_netnsid")
    return Link(name=msg.get("ifname"), index=msg["index"], kind=msg.get(("linkinfo", "kind")) or "",
                mac=msg.get("address") or "", mtu=msg.get("mtu") or 0, alias=msg.get("ifalias") or "",
                group=msg.get("group") or 0, master=msg.get("master") or 0, up=bool(msg["flags"] & IFF_UP),
                operstate=msg.get("operstate") or "", peer_index=msg.get("link") or 0,
                peer_netnsid=-1 if nsid is None else nsid, multiqueue=mq)
