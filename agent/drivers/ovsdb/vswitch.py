"""The local Open_vSwitch database: chassis settings, br-int and the OVS
ports binding our netdevs to OVN logical ports (external_ids:iface-id).

Ownership: an Interface is ours when external_ids OWNER_KEY is our
owner. Before binding a port, any OTHER interface of ours that claims the
same iface-id is removed in the same transaction (a leftover of a crash or a
re-created NIC); an interface that is not ours and claims it is never
touched: FailedPrecondition names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent.drivers.base import Availability
from agent.drivers.ovsdb.client import Command, OvsdbClient, Table
from agent.errors import FailedPrecondition, NotFound
from agent.metrics import Metrics
from agent.model.marks import EXTERNAL_IDS_PREFIX, OWNER_KEY

IFACE_ID = "iface-id"
OVN_INSTALLED = "ovn-installed"
CHASSIS_KEYS = ("system-id", "ovn-remote", "ovn-encap-type", "ovn-encap-ip", "ovn-bridge-datapath-type",
                "ovn-bridge")

TABLES = {
    "Open_vSwitch": Table(("bridges", "external_ids", "ovs_version", "datapath_types", "iface_types",
                           "cur_cfg", "next_cfg")),
    "Bridge": Table(("name", "ports", "datapath_type", "fail_mode", "external_ids", "other_config"), ("name",)),
    "Port": Table(("name", "interfaces", "external_ids"), ("name",)),
    "Interface": Table(("name", "type", "external_ids", "ofport", "error", "mac_in_use"), ("name",)),
}


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


def _ours(row, owner: str) -> bool:
    return row.external_ids.get(OWNER_KEY) == owner


def _lookup(idl, table: str, name: str):
    from ovsdbapp.backend.ovs_idl import idlutils
    return next(idlutils.index_lookup_all(idl.tables[table], name=name), None)


def _root(idl):
    rows = list(idl.tables["Open_vSwitch"].rows.values())
    if not rows:
        raise FailedPrecondition("the Open_vSwitch database is not initialised (no Open_vSwitch row): "
                                 "run `ovs-vsctl init` or start openvswitch-switch", reason="OVS_NOT_INITIALISED")
    return rows[0]


class _EnsureChassis(Command):
    """OvsDb.ensure_chassis's one transaction."""

    def __init__(self, settings: dict[str, str], bridge: str, datapath_type: str, owner: str) -> None:
        super().__init__()
        self.settings, self.bridge, self.datapath_type, self.owner = settings, bridge, datapath_type, owner
        self.result = False

    def run(self, txn, idl) -> None:
        """Set the Open_vSwitch external_ids `settings` and create the integration bridge when
        absent; result = changed.

        Idempotent: keys already holding the value and an existing bridge of the
        right datapath type -> False. Setting system-id on a root that is not ours
        puts our owner mark on it. Raises FailedPrecondition OVS_NOT_INITIALISED (no
        Open_vSwitch row), NOT_OURS (a key holds another value set by someone else,
        or a bridge that is not ours has another datapath type)."""
        root = _root(idl)
        ext = dict(root.external_ids)
        ours = _ours(root, self.owner)
        changed = False
        for key, want in self.settings.items():
            have = ext.get(key)
            if have == want:
                continue
            if have is not None and not ours:
                raise FailedPrecondition(
                    f"Open_vSwitch external_ids:{key} is {have!r} (set by someone else), requested {want!r}; "
                    f"the agent does not override another tool's chassis settings", reason="NOT_OURS",
                    metadata={"key": key, "existing": have})
            root.setkey("external_ids", key, want)
            changed = True
        if changed and not ours and "system-id" in self.settings:
            root.setkey("external_ids", OWNER_KEY, self.owner)
        br = _lookup(idl, "Bridge", self.bridge)
        if br is None:
            iface = txn.insert(idl.tables["Interface"])
            iface.name, iface.type = self.bridge, "internal"
            port = txn.insert(idl.tables["Port"])
            port.name, port.interfaces = self.bridge, [iface]
            br = txn.insert(idl.tables["Bridge"])
            br.name, br.ports, br.fail_mode = self.bridge, [port], ["secure"]
            br.other_config = {"disable-in-band": "true"}
            br.external_ids = {OWNER_KEY: self.owner}
            if self.datapath_type:
                br.datapath_type = self.datapath_type
            root.addvalue("bridges", br)
            changed = True
        elif self.datapath_type and br.datapath_type != self.datapath_type:
            if not _ours(br, self.owner):
                raise FailedPrecondition(
                    f"bridge {self.bridge} exists with datapath_type {br.datapath_type!r} and is not ours; "
                    f"requested {self.datapath_type!r}", reason="NOT_OURS", metadata={"object": self.bridge})
            br.datapath_type = self.datapath_type
            changed = True
        self.result = changed


class _Claims:
    """iface-id -> UUIDs of the Interfaces claiming it, kept current from IDL
    events on the IDL thread (where the commands reading it run too)."""

    def __init__(self) -> None:
        self.by_id: dict[str, set] = {}
        self.of_row: dict = {}

    def on_event(self, event: str, table: str, row) -> None:
        """OvsdbClient listener (IDL thread): keep iface-id -> claiming Interface UUIDs current;
        "resync" rebuilds it from the reloaded table. Never raises for a well-formed row."""
        if event == "resync":                        # rebuild from the reloaded table
            self.by_id.clear()
            self.of_row.clear()
            for iface in list(row.tables["Interface"].rows.values()):
                self.on_event("create", "Interface", iface)
            return
        if table != "Interface":
            return
        old = self.of_row.pop(row.uuid, None)
        if old is not None:
            self.by_id.get(old, set()).discard(row.uuid)
        if event != "delete":
            iid = row.external_ids.get(IFACE_ID)
            if iid:
                self.of_row[row.uuid] = iid
                self.by_id.setdefault(iid, set()).add(row.uuid)

    def claimants(self, idl, iface_id: str) -> list:
        """The cached Interface rows whose external_ids claim `iface_id` ([] when none). Read-only."""
        rows = idl.tables["Interface"].rows
        return [rows[u] for u in list(self.by_id.get(iface_id, ())) if u in rows]


def _in_set(row, column: str, member) -> bool:
    """member in row.<column> without materialising every referenced Row."""
    return any(a.value == member.uuid for a in row._data[column].values)


class _BindPort(Command):
    """OvsDb.bind's one transaction."""

    def __init__(self, bridge: str, name: str, iface_type: str, external_ids: dict[str, str], owner: str,
                 claims: _Claims) -> None:
        super().__init__()
        self.bridge, self.name, self.iface_type, self.ext, self.owner = bridge, name, iface_type, external_ids, owner
        self.claims = claims
        self.result: tuple[bool, list[str]] = (False, [])    # changed, removed stale interface names

    def run(self, txn, idl) -> None:
        """Create the Port+Interface on the bridge, or reconcile ours (external_ids key by key, our
        stale keys removed, type); remove other interfaces of ours claiming the same iface-id.
        result = (changed, removed interface names).

        Idempotent: a matching port -> (False, []). Raises FailedPrecondition
        NO_INTEGRATION_BRIDGE (bridge absent), IFACE_ID_CLAIMED (an interface that is
        not ours claims the iface-id), NOT_OURS (the port exists and is not ours),
        WRONG_BRIDGE (ours, on another bridge)."""
        br = _lookup(idl, "Bridge", self.bridge)
        if br is None:
            raise FailedPrecondition(f"OVS bridge {self.bridge} does not exist: call EnsureChassis first",
                                     reason="NO_INTEGRATION_BRIDGE", metadata={"bridge": self.bridge})
        iface_id = self.ext[IFACE_ID]
        removed = []
        for iface in self.claims.claimants(idl, iface_id):
            if iface.name == self.name or iface.external_ids.get(IFACE_ID) != iface_id:
                continue
            if not _ours(iface, self.owner):
                raise FailedPrecondition(
                    f"OVS interface {iface.name} already claims iface-id {iface_id} and is not ours "
                    f"(external_ids {OWNER_KEY}={iface.external_ids.get(OWNER_KEY)!r}); remove it or change "
                    "its iface-id", reason="IFACE_ID_CLAIMED", metadata={"interface": iface.name})
            _remove_port_of(idl, iface)
            removed.append(iface.name)
        changed = bool(removed)
        port = _lookup(idl, "Port", self.name)
        if port is None:
            iface = txn.insert(idl.tables["Interface"])
            iface.name, iface.type, iface.external_ids = self.name, self.iface_type, self.ext
            port = txn.insert(idl.tables["Port"])
            port.name, port.interfaces = self.name, [iface]
            port.external_ids = {OWNER_KEY: self.owner}
            br.addvalue("ports", port)
            self.result = (True, removed)
            return
        ifaces = list(port.interfaces)
        if not ifaces or not all(_ours(i, self.owner) for i in ifaces):
            raise FailedPrecondition(f"OVS port {self.name} exists and is not ours; not touching it",
                                     reason="NOT_OURS", metadata={"port": self.name})
        if not _in_set(br, "ports", port):
            raise FailedPrecondition(f"OVS port {self.name} is ours but on another bridge", reason="WRONG_BRIDGE")
        iface = ifaces[0]
        # key by key (mutations): ovn-controller writes ovn-installed into the same column
        have = dict(iface.external_ids)
        for k, v in self.ext.items():
            if have.get(k) != v:
                iface.setkey("external_ids", k, v)
                changed = True
        for k in have:
            if k.startswith(EXTERNAL_IDS_PREFIX) and k not in self.ext:
                iface.delkey("external_ids", k)
                changed = True
        if iface.type != self.iface_type:
            iface.type = self.iface_type
            changed = True
        self.result = (changed, removed)


def _port_of(idl, iface):
    """The Port holding `iface`: by name first (ours share the name), else a scan."""
    port = _lookup(idl, "Port", iface.name)
    if port is not None and _in_set(port, "interfaces", iface):
        return port
    return next((p for p in idl.tables["Port"].rows.values() if _in_set(p, "interfaces", iface)), None)


def _remove_port_of(idl, iface) -> None:
    port = _port_of(idl, iface)
    if port is None:
        return
    for br in idl.tables["Bridge"].rows.values():
        if _in_set(br, "ports", port):
            br.delvalue("ports", port)
    port.delete()


class _UnbindPorts(Command):
    """OvsDb.unbind's one transaction."""

    def __init__(self, names: list[str], owner: str) -> None:
        super().__init__()
        self.names, self.owner = names, owner
        self.result: list[str] = []

    def run(self, txn, idl) -> None:
        """Delete the Ports holding our interfaces named `names` (and detach them from their
        bridges); result = the removed names. Idempotent: absent names are skipped. Raises
        FailedPrecondition NOT_OURS when one is not ours (the transaction is aborted)."""
        doomed = []
        for name in self.names:
            iface = _lookup(idl, "Interface", name)
            if iface is None:
                continue
            if not _ours(iface, self.owner):
                raise FailedPrecondition(f"OVS interface {name} is not ours; not removing it", reason="NOT_OURS",
                                         metadata={"interface": name})
            doomed.append(iface)
        if not doomed:
            return
        names = [i.name for i in doomed]
        ports = [p for p in (_port_of(idl, i) for i in doomed) if p is not None]
        for br in idl.tables["Bridge"].rows.values():
            members = {a.value for a in br._data["ports"].values}
            for p in ports:
                if p.uuid in members:
                    br.delvalue("ports", p)
        for p in ports:
            p.delete()
        self.result = names


class OvsDb:
    """The local Open_vSwitch database.

    Every method that reads or writes can raise Unavailable OVSDB_UNAVAILABLE
    (the database down, slow or reconnecting past the deadline; retryable)."""

    def __init__(self, remote: str, *, metrics: Metrics, owner: str, timeout: float = 5.0,
                 probe_interval_ms: int = 5000) -> None:
        self.owner = owner
        self.db = OvsdbClient(remote, "Open_vSwitch", TABLES, metrics=metrics, label="ovs",
                              timeout=timeout, probe_interval_ms=probe_interval_ms)
        self._claims = _Claims()
        self.db.add_listener(self._claims.on_event)

    def probe(self) -> Availability:
        """Connected to the local Open_vSwitch database (tries once, briefly). Never raises:
        unreachable -> missing with the reason."""
        return self.db.probe()

    def close(self) -> None:
        """Close the connection. Idempotent; never raises."""
        self.db.close()

    def ensure_chassis(self, settings: dict[str, str], bridge: str, datapath_type: str = "",
                       deadline: float | None = None) -> bool:
        """Set Open_vSwitch external_ids `settings` and create `bridge` (secure fail
        mode, our mark) when absent, in one transaction. Returns changed.

        Idempotent: all set and the bridge there -> False, nothing written. Raises
        FailedPrecondition NOT_OURS when a key already holds another value set by
        someone else, or the bridge is not ours and has another datapath type;
        OVS_NOT_INITIALISED (no Open_vSwitch row); Unavailable OVSDB_UNAVAILABLE."""
        return self.db.transact([_EnsureChassis(settings, bridge, datapath_type, self.owner)], deadline)[0]

    def chassis(self, bridge: str, deadline: float | None = None) -> ChassisInfo:
        """Observed chassis settings from the cache (bridge_exists False when the bridge is absent).
        Read-only. Raises FailedPrecondition OVS_NOT_INITIALISED, Unavailable OVSDB_UNAVAILABLE."""
        idl = self.db.require_connected(deadline)
        root = _root(idl)
        br = self.db.lookup("Bridge", "name", bridge)
        return ChassisInfo(
            external_ids={k: v for k, v in root.external_ids.items() if k in CHASSIS_KEYS or k == OWNER_KEY},
            bridge=bridge, bridge_exists=br is not None,
            bridge_datapath_type=br.datapath_type if br is not None else "",
            bridge_ours=bool(br is not None and _ours(br, self.owner)),
            ovs_version=(root.ovs_version[0] if root.ovs_version else ""),
            datapath_types=sorted(root.datapath_types))

    def bind(self, bridge: str, name: str, external_ids: dict[str, str], *, iface_type: str = "",
             deadline: float | None = None) -> tuple[bool, list[str]]:
        """Attach netdev `name` to `bridge` with `external_ids` (must hold iface-id and
        our owner mark), removing other interfaces of ours claiming the same
        iface-id, in one transaction. Returns (changed, removed names).

        Idempotent: a port of ours already so -> (False, []); our stale keys are
        removed, ovn-controller's keys (ovn-installed) are kept. Raises
        FailedPrecondition IFACE_ID_CLAIMED (another owner's interface claims the
        iface-id), NOT_OURS (the port exists and is not ours), WRONG_BRIDGE,
        NO_INTEGRATION_BRIDGE (the bridge is missing); Unavailable OVSDB_UNAVAILABLE."""
        ext = {**external_ids, OWNER_KEY: self.owner}
        return self.db.transact([_BindPort(bridge, name, iface_type, ext, self.owner, self._claims)], deadline)[0]

    def unbind(self, names: list[str], deadline: float | None = None) -> list[str]:
        """Remove our OVS ports named `names` in one transaction; returns the removed names.
        Idempotent: absent ones are skipped; [] -> [] without a round trip. Raises
        FailedPrecondition NOT_OURS when one is not ours (nothing removed), Unavailable."""
        if not names:
            return []
        return self.db.transact([_UnbindPorts(names, self.owner)], deadline)[0]

    def interface(self, name: str, deadline: float | None = None) -> InterfaceInfo | None:
        """An interface from the cache, ours or not (`ours` says); None when absent. Read-only.
        Raises Unavailable OVSDB_UNAVAILABLE."""
        iface = self.db.lookup("Interface", "name", name, deadline)
        return self._info(iface) if iface is not None else None

    def interface_cached(self, name: str) -> InterfaceInfo | None:
        """Like interface() but never waits: None when absent or disconnected. Read-only."""
        if not self.db.connected:
            return None
        iface = self.db.lookup("Interface", "name", name, None)
        return self._info(iface) if iface is not None else None

    def _info(self, iface) -> InterfaceInfo:
        ofport = iface.ofport[0] if iface.ofport else 0
        return InterfaceInfo(name=iface.name, bridge="", type=iface.type, external_ids=dict(iface.external_ids),
                             ofport=ofport, error=(iface.error[0] if iface.error else ""),
                             ours=_ours(iface, self.owner))

    def interface_names(self, key: str, value: str, deadline: float | None = None) -> list[str]:
        """Names of our interfaces whose external_ids[key] == value, sorted (one read per row); []
        when none. Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""
        out = []
        for i in self.db.rows("Interface", deadline):
            ext = i.external_ids
            if ext.get(OWNER_KEY) == self.owner and ext.get(key) == value:
                out.append(i.name)
        return sorted(out)

    def interfaces(self, deadline: float | None = None) -> list[InterfaceInfo]:
        """Every interface of ours, by name (cache scan, for reconcile and GC); [] when none.
        Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""
        return sorted((self._info(i) for i in self.db.rows("Interface", deadline) if _ours(i, self.owner)),
                      key=lambda i: i.name)

    def require_bridge(self, bridge: str, deadline: float | None = None) -> None:
        """Return when `bridge` exists (ours or not); else raise NotFound NO_INTEGRATION_BRIDGE.
        Read-only. Raises Unavailable OVSDB_UNAVAILABLE."""
        if self.db.lookup("Bridge", "name", bridge, deadline) is None:
            raise NotFound(f"OVS bridge {bridge} does not exist", reason="NO_INTEGRATION_BRIDGE")
