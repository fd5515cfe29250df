"""The Open_vSwitch write commands: each runs inside ONE transaction on the IDL
thread and is re-run from scratch when the transaction is retried (verify
conflict), so everything is derived from the current cache. OvsDb (vswitch.py)
is their facade; _Claims keeps the iface-id index they read."""
from __future__ import annotations

from agent.drivers.contracts.ovsdb import IFACE_ID
from agent.drivers.ovsdb.client import Command, by_name, ours_by_name, owned_by
from agent.errors import FailedPrecondition
from agent.model.marks import EXTERNAL_IDS_PREFIX, OWNER_KEY


def _root(idl):
    rows = list(idl.tables["Open_vSwitch"].rows.values())
    if not rows:
        raise FailedPrecondition("the Open_vSwitch database is not initialised (no Open_vSwitch row): "
                                 "run `ovs-vsctl init` or start openvswitch-switch", reason="OVS_NOT_INITIALISED")
    return rows[0]


class _EnsureChassis(Command):
    """OvsDb.ensure_chassis's one transaction."""

    def __init__(self, settings: dict[str, str], bridge: str, datapath_type: str, owner: str,
                 remove: dict[str, str] | None = None, provider_bridges: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.settings, self.bridge, self.datapath_type, self.owner = settings, bridge, datapath_type, owner
        self.remove, self.provider_bridges = remove or {}, provider_bridges
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
        ours = owned_by(root, self.owner)
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
        for key, value in self.remove.items():
            if ours and ext.get(key) == value:   # only a value we set
                root.delkey("external_ids", key)
                changed = True
        if changed and not ours and "system-id" in self.settings:
            root.setkey("external_ids", OWNER_KEY, self.owner)
        for name in self.provider_bridges:       # standalone: a plain switch until OVN patches it
            if by_name(idl, "Bridge", name) is None:
                self._new_bridge(txn, idl, root, name, secure=False)
                changed = True
        br = by_name(idl, "Bridge", self.bridge)
        if br is None:
            self._new_bridge(txn, idl, root, self.bridge, secure=True)
            changed = True
        elif self.datapath_type and br.datapath_type != self.datapath_type:
            if not owned_by(br, self.owner):
                raise FailedPrecondition(
                    f"bridge {self.bridge} exists with datapath_type {br.datapath_type!r} and is not ours; "
                    f"requested {self.datapath_type!r}", reason="NOT_OURS", metadata={"object": self.bridge})
            br.datapath_type = self.datapath_type
            changed = True
        self.result = changed

    def _new_bridge(self, txn, idl, root, name: str, *, secure: bool) -> None:
        iface = txn.insert(idl.tables["Interface"])
        iface.name, iface.type = name, "internal"
        port = txn.insert(idl.tables["Port"])
        port.name, port.interfaces = name, [iface]
        br = txn.insert(idl.tables["Bridge"])
        br.name, br.ports = name, [port]
        if secure:
            br.fail_mode = ["secure"]
        br.other_config = {"disable-in-band": "true"}
        br.external_ids = {OWNER_KEY: self.owner}
        if self.datapath_type:
            br.datapath_type = self.datapath_type
        root.addvalue("bridges", br)


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
        br = by_name(idl, "Bridge", self.bridge)
        if br is None:
            raise FailedPrecondition(f"OVS bridge {self.bridge} does not exist: call EnsureChassis first",
                                     reason="NO_INTEGRATION_BRIDGE", metadata={"bridge": self.bridge})
        iface_id = self.ext[IFACE_ID]
        removed = []
        for iface in self.claims.claimants(idl, iface_id):
            if iface.name == self.name or iface.external_ids.get(IFACE_ID) != iface_id:
                continue
            if not owned_by(iface, self.owner):
                raise FailedPrecondition(
                    f"OVS interface {iface.name} already claims iface-id {iface_id} and is not ours "
                    f"(external_ids {OWNER_KEY}={iface.external_ids.get(OWNER_KEY)!r}); remove it or change "
                    "its iface-id", reason="IFACE_ID_CLAIMED", metadata={"interface": iface.name})
            _remove_port_of(idl, iface)
            removed.append(iface.name)
        changed = bool(removed)
        port = by_name(idl, "Port", self.name)
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
        if not ifaces or not all(owned_by(i, self.owner) for i in ifaces):
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
    port = by_name(idl, "Port", iface.name)
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

    def __init__(self, names: list[str], owner: str, *, bump_cfg: bool = False) -> None:
        super().__init__()
        self.names, self.owner = names, owner
        self.bump_cfg = bump_cfg            # ask ovs-vswitchd to report when it applied this (next_cfg)
        self.cfg_target = 0                 # the cur_cfg that says so (0: nothing asked)
        self.result: list[str] = []

    def run(self, txn, idl) -> None:
        """Delete the Ports holding our interfaces named `names` (and detach them from their
        bridges); result = the removed names. Idempotent: absent names are skipped. Raises
        FailedPrecondition NOT_OURS when one is not ours (the transaction is aborted)."""
        doomed = ours_by_name(idl, "Interface", self.names, self.owner, what="OVS interface", verb="removing",
                              key="interface")
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
        if self.bump_cfg:                   # as ovs-vsctl --wait=vswitchd does
            root = _root(idl)
            self.cfg_target = int(root.next_cfg) + 1
            root.increment("next_cfg")
        self.result = names
