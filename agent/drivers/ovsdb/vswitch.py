"""The local Open_vSwitch database: chassis settings, br-int and the OVS
ports binding our netdevs to OVN logical ports (external_ids:iface-id).

Ownership: an Interface is ours when external_ids OWNER_KEY is our
owner. Before binding a port, any OTHER interface of ours that claims the
same iface-id is removed in the same transaction (a leftover of a crash or a
re-created NIC); an interface that is not ours and claims it is never
touched: FailedPrecondition names it. The contract (returns, idempotency,
errors) is agent/drivers/contracts/ovsdb.py's OvsDbContract.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from agent.drivers.contracts.ovsdb import OvsDbContract
from agent.drivers.ovsdb.client import Table, owned_by
from agent.drivers.ovsdb.database import Database
from agent.drivers.ovsdb.vswitch_commands import IFACE_ID, _BindPort, _Claims, _EnsureChassis, _root, _UnbindPorts
from agent.errors import NotFound
from agent.metrics import Metrics
from agent.model.marks import OWNER_KEY

OVN_INSTALLED = "ovn-installed"
VSWITCHD_WAIT = 5.0                # how long unbind(wait_vswitchd=True) waits for ovs-vswitchd at most
CHASSIS_KEYS = ("system-id", "ovn-remote", "ovn-encap-type", "ovn-encap-ip", "ovn-bridge-datapath-type",
                "ovn-bridge", "hostname", "ovn-cms-options", "ovn-bridge-mappings")
TUNNEL_TYPES = ("geneve", "vxlan", "stt")

TABLES = {
    "Open_vSwitch": Table(("bridges", "external_ids", "ovs_version", "datapath_types", "iface_types",
                           "cur_cfg", "next_cfg")),
    "Bridge": Table(("name", "ports", "datapath_type", "fail_mode", "external_ids", "other_config"), ("name",)),
    "Port": Table(("name", "interfaces", "external_ids"), ("name",)),
    "Interface": Table(("name", "type", "external_ids", "ofport", "error", "mac_in_use", "options", "bfd_status"),
                       ("name",)),
}


@dataclass
class TunnelInfo:
    """A tunnel interface (ovn-controller's, on the integration bridge) as the cache sees it."""

    name: str
    type: str                    # geneve | vxlan | stt
    remote_ip: str
    bfd_state: str               # bfd_status:state ("" = BFD off)


@dataclass
class InterfaceInfo:
    """An OVS interface as the cache sees it."""

    name: str
    bridge: str
    type: str
    external_ids: dict[str, str]
    ofport: int                  # -1 when vswitchd could not open it, 0 before it tried
    error: str
    ours: bool

    @property
    def iface_id(self) -> str:
        """external_ids iface-id: the OVN logical port it binds to ("" when unbound). Pure."""
        return self.external_ids.get(IFACE_ID, "")

    @property
    def ovn_installed(self) -> bool:
        """True once ovn-controller set external_ids ovn-installed=true (flows installed). Pure."""
        return self.external_ids.get(OVN_INSTALLED) == "true"


@dataclass
class ChassisInfo:
    """Observed chassis settings."""

    external_ids: dict[str, str]
    bridge: str
    bridge_exists: bool
    bridge_datapath_type: str
    bridge_ours: bool
    ovs_version: str
    datapath_types: list[str] = field(default_factory=list)


class OvsDb(Database, OvsDbContract):
    """OvsDbContract over the Open_vSwitch replica: its methods keep the contract documented
    there; their docstrings here say how."""

    def __init__(self, remote: str, *, metrics: Metrics, owner: str, timeout: float = 5.0,
                 probe_interval_ms: int = 5000) -> None:
        self._claims = _Claims()               # which interfaces claim each iface-id, from row events
        super().__init__(remote, "Open_vSwitch", TABLES, label="ovs", metrics=metrics, owner=owner,
                         timeout=timeout, probe_interval_ms=probe_interval_ms, on_event=self._claims.on_event)

    def ensure_chassis(self, settings: dict[str, str], bridge: str, datapath_type: str = "",
                       deadline: float | None = None, *, remove: dict[str, str] | None = None,
                       provider_bridges: tuple[str, ...] = ()) -> bool:
        """One _EnsureChassis command."""
        return self.db.transact([_EnsureChassis(settings, bridge, datapath_type, self.owner, remove or {},
                                                provider_bridges)], deadline)[0]

    def tunnels(self, deadline: float | None = None) -> list[TunnelInfo]:
        """A scan of Interface for the tunnel types."""
        out = []
        for i in self.db.rows("Interface", deadline):
            if i.type in TUNNEL_TYPES:
                out.append(TunnelInfo(i.name, i.type, i.options.get("remote_ip", ""),
                                      i.bfd_status.get("state", "") if i.bfd_status else ""))
        return sorted(out, key=lambda t: t.name)

    def bridge_ports(self, bridge: str, deadline: float | None = None) -> list[str] | None:
        """The bridge by its name index."""
        br = self.db.lookup("Bridge", "name", bridge, deadline)
        if br is None:
            return None
        return sorted(p.name for p in br.ports if p.name != bridge)

    def chassis(self, bridge: str, deadline: float | None = None) -> ChassisInfo:
        """The Open_vSwitch root row and the bridge by its name index."""
        idl = self.db.require_connected(deadline)
        root = _root(idl)
        br = self.db.lookup("Bridge", "name", bridge)
        return ChassisInfo(
            external_ids={k: v for k, v in root.external_ids.items() if k in CHASSIS_KEYS or k == OWNER_KEY},
            bridge=bridge, bridge_exists=br is not None,
            bridge_datapath_type=br.datapath_type if br is not None else "",
            bridge_ours=bool(br is not None and owned_by(br, self.owner)),
            ovs_version=(root.ovs_version[0] if root.ovs_version else ""),
            datapath_types=sorted(root.datapath_types))

    def system_id(self, deadline: float | None = None) -> str:
        """The Open_vSwitch root row's external_ids."""
        idl = self.db.require_connected(deadline)
        rows = list(idl.tables["Open_vSwitch"].rows.values())
        return rows[0].external_ids.get("system-id", "") if rows else ""

    def bind(self, bridge: str, name: str, external_ids: dict[str, str], *, iface_type: str = "",
             deadline: float | None = None) -> tuple[bool, list[str]]:
        """One _BindPort command (the _Claims index finds other claimants of the iface-id)."""
        ext = {**external_ids, OWNER_KEY: self.owner}
        return self.db.transact([_BindPort(bridge, name, iface_type, ext, self.owner, self._claims)], deadline)[0]

    def unbind(self, names: list[str], deadline: float | None = None, *, wait_vswitchd: bool = False) -> list[str]:
        """One _UnbindPorts command; with wait_vswitchd, then until ovs-vswitchd applied it."""
        if not names:
            return []
        cmd = _UnbindPorts(names, self.owner, bump_cfg=wait_vswitchd)
        removed: list[str] = self.db.transact([cmd], deadline)[0]
        if cmd.cfg_target:
            end = min(deadline, time.monotonic() + VSWITCHD_WAIT) if deadline else time.monotonic() + VSWITCHD_WAIT
            while time.monotonic() < end:
                rows = self.db.rows("Open_vSwitch")
                if rows and int(rows[0].cur_cfg) >= cmd.cfg_target:
                    break
                time.sleep(0.005)
        return removed

    def interface(self, name: str, deadline: float | None = None) -> InterfaceInfo | None:
        """The Interface by its name index."""
        iface = self.db.lookup("Interface", "name", name, deadline)
        return self._info(iface) if iface is not None else None

    def interface_cached(self, name: str) -> InterfaceInfo | None:
        """The Interface by its name index, only when connected."""
        if not self.db.connected:
            return None
        iface = self.db.lookup("Interface", "name", name, None)
        return self._info(iface) if iface is not None else None

    def _info(self, iface) -> InterfaceInfo:
        ofport = iface.ofport[0] if iface.ofport else 0
        return InterfaceInfo(name=iface.name, bridge="", type=iface.type, external_ids=dict(iface.external_ids),
                             ofport=ofport, error=(iface.error[0] if iface.error else ""),
                             ours=owned_by(iface, self.owner))

    def interface_names(self, key: str, value: str, deadline: float | None = None) -> list[str]:
        """A scan of Interface."""
        out = []
        for i in self.db.rows("Interface", deadline):
            ext = i.external_ids
            if ext.get(OWNER_KEY) == self.owner and ext.get(key) == value:
                out.append(i.name)
        return sorted(out)

    def interfaces(self, deadline: float | None = None) -> list[InterfaceInfo]:
        """A scan of Interface."""
        return sorted((self._info(i) for i in self.db.rows("Interface", deadline) if owned_by(i, self.owner)),
                      key=lambda i: i.name)

    def require_bridge(self, bridge: str, deadline: float | None = None) -> None:
        """The Bridge by its name index."""
        if self.db.lookup("Bridge", "name", bridge, deadline) is None:
            raise NotFound(f"OVS bridge {bridge} does not exist", reason="NO_INTEGRATION_BRIDGE")
