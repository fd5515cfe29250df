"""The NB write commands: each runs inside ONE transaction on the IDL thread
and is re-run from scratch when the transaction is retried (verify conflict),
so everything is derived from the current cache."""
from __future__ import annotations

import ipaddress
from typing import Union

from agent.drivers.ovsdb.client import Command, by_name, ours_by_name, owned_by
from agent.drivers.ovsdb.nb_router import sync_egress
from agent.drivers.ovsdb.nb_types import (
    ACL_KEY, ADDR_KEY, KIND_KEY, NETWORK_KEY, NODE_KEY, OWNER_KEY, PG_KEY, AclRule, NetworkRows, PortRow, _addresses, _one,
    mac_from_ip4)
from agent.errors import AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted
from agent.model.marks import KIND_ACL, KIND_DHCP4, KIND_NETWORK, KIND_PORT, KIND_PORT_GROUP

IpAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

REQUESTED_CHASSIS = "requested-chassis"      # LSP option: only this chassis (system-id) may bind the port


class _EnsureNetwork(Command):
    """OvnNb.ensure_network's one transaction: switch, DHCPv4 options, port group, ACLs."""

    def __init__(self, desired: NetworkRows, owner: str) -> None:
        super().__init__()
        self.desired, self.owner = desired, owner
        self.result = False                      # changed

    def run(self, txn, idl) -> None:
        """Measure the switch and port group, then create or update them; result = changed.

        Idempotent: everything matching -> result False, nothing staged. Absent rows
        are inserted; ours are brought to `desired` (marks, DHCP row, ACLs by key;
        duplicate DHCP rows of an older race are removed). Raises FailedPrecondition
        NOT_OURS (a same-named switch or port group without our mark), AlreadyExists
        IMMUTABLE_FIELD (an immutable mark of the existing switch differs)."""
        d = self.desired
        ls = by_name(idl, "Logical_Switch", d.switch)
        pg = by_name(idl, "Port_Group", d.port_group)
        for row, what in ((ls, "logical switch"), (pg, "port group")):
            if row is not None and not owned_by(row, self.owner):
                raise FailedPrecondition(f"{what} {row.name} exists but is not owned by {self.owner} "
                                         f"(external_ids {OWNER_KEY} is {row.external_ids.get(OWNER_KEY)!r}); "
                                         "rename or remove it", reason="NOT_OURS", metadata={"object": row.name})
        if ls is not None:
            for key, want in d.immutable.items():
                have = ls.external_ids.get(key, "")
                if have != want:
                    raise AlreadyExists(f"network exists with {key}={have!r}, requested {want!r}; "
                                        "delete it first to change it", reason="IMMUTABLE_FIELD",
                                        metadata={"field": key, "existing": have, "requested": want})
        ext = {**d.marks, **d.immutable, **d.mutable, KIND_KEY: KIND_NETWORK, PG_KEY: d.port_group}
        changed = False
        if ls is None:
            ls = txn.insert(idl.tables["Logical_Switch"])
            ls.name = d.switch
            ls.external_ids = ext
            changed = True
        elif dict(ls.external_ids) != ext:
            ls.external_ids = ext
            changed = True
        changed |= self._dhcp(txn, idl, ext)
        if pg is None:
            pg = txn.insert(idl.tables["Port_Group"])
            pg.name = d.port_group
            pg.external_ids = {**d.marks, KIND_KEY: KIND_PORT_GROUP}
            pg.acls = [self._new_acl(txn, idl, rule) for rule in sorted(d.acls, key=lambda r: r.key)]
            changed = True
        else:
            changed |= self._acls(txn, idl, pg)
        changed |= sync_egress(txn, idl, ls, d.egress, d.marks, self.owner)
        self.result = changed

    def _dhcp(self, txn, idl, ext) -> bool:
        d = self.desired
        mine = [r for r in idl.tables["DHCP_Options"].rows.values()
                if owned_by(r, self.owner) and r.external_ids.get(NETWORK_KEY) == d.marks[NETWORK_KEY]]
        if not d.dhcp4_cidr:
            for r in mine:
                r.delete()
            return bool(mine)
        want_ext = {**d.marks, KIND_KEY: KIND_DHCP4}
        changed = False
        row = mine[0] if mine else None
        for extra in mine[1:]:                   # duplicates from an older race: keep one
            extra.delete()
            changed = True
        if row is None:
            row = txn.insert(idl.tables["DHCP_Options"])
            row.cidr, row.options, row.external_ids = d.dhcp4_cidr, d.dhcp4_options, want_ext
            return True
        if row.cidr != d.dhcp4_cidr:
            row.cidr = d.dhcp4_cidr
            changed = True
        if dict(row.options) != d.dhcp4_options:
            row.options = d.dhcp4_options
            changed = True
        if dict(row.external_ids) != want_ext:
            row.external_ids = want_ext
            changed = True
        return changed

    def _acls(self, txn, idl, pg) -> bool:
        want = {a.key: a for a in self.desired.acls}
        changed = False
        for acl in list(pg.acls):
            key = acl.external_ids.get(ACL_KEY, "")
            rule = want.get(key)
            if rule and (acl.direction, acl.priority, acl.match, acl.action) == (
                    rule.direction, rule.priority, rule.match, rule.action) and owned_by(acl, self.owner):
                del want[key]
                continue
            pg.delvalue("acls", acl)
            acl.delete()
            changed = True
        for rule in sorted(want.values(), key=lambda r: r.key):
            pg.addvalue("acls", self._new_acl(txn, idl, rule))
            changed = True
        return changed

    def _new_acl(self, txn, idl, rule: AclRule):
        acl = txn.insert(idl.tables["ACL"])
        acl.direction, acl.priority, acl.match, acl.action = (
            rule.direction, rule.priority, rule.match, rule.action)
        acl.external_ids = {**self.desired.marks, KIND_KEY: KIND_ACL, ACL_KEY: rule.key}
        return acl


class _DeleteNetwork(Command):
    """OvnNb.delete_network's one transaction."""

    def __init__(self, switch: str, port_group: str, network: str, owner: str, only_node: str | None = None) -> None:
        super().__init__()
        self.switch, self.port_group, self.network, self.owner = switch, port_group, network, owner
        self.only_node = only_node               # refuse when a port of ours belongs to another node
        self.result: list[str] = []              # deleted LSP names

    def run(self, txn, idl) -> None:
        """Delete the switch with its ports, the port group with its ACLs, and the network's DHCP
        rows; result = the deleted port names.

        Idempotent: absent rows are skipped (all absent -> result []). Raises
        FailedPrecondition NOT_OURS when the switch or port group is not ours, or the
        switch holds a port that is not ours, PORTS_ON_OTHER_NODES (only_node given and a
        port of ours belongs to another node); both verified by the server at commit: a
        port added meanwhile makes the transaction re-run and refuse."""
        ls = by_name(idl, "Logical_Switch", self.switch)
        pg = by_name(idl, "Port_Group", self.port_group)
        for row, what in ((ls, "logical switch"), (pg, "port group")):
            if row is not None and not owned_by(row, self.owner):
                raise FailedPrecondition(f"{what} {row.name} is not owned by {self.owner}; not deleting it",
                                         reason="NOT_OURS", metadata={"object": row.name})
        if ls is not None:
            # the server re-checks the ports we looked at: a port added by someone else since our
            # cache saw the switch makes the commit retry (and this check refuse), never deletes it
            ls.verify("ports")
            foreign = sorted(p.name for p in ls.ports if not owned_by(p, self.owner))
            if foreign:
                raise FailedPrecondition(
                    f"logical switch {ls.name} has ports that are not ours: {', '.join(foreign[:10])}"
                    f"{' ...' if len(foreign) > 10 else ''}; delete them first, the agent does not touch them",
                    reason="NOT_OURS", metadata={"object": ls.name, "ports": ",".join(foreign[:50])})
            if self.only_node is not None:
                refuse_other_nodes(ls, self.network, self.only_node)
        sync_egress(txn, idl, ls, None, {NETWORK_KEY: self.network}, self.owner)    # its gateway rows first
        if ls is not None:
            self.result = [p.name for p in ls.ports]
            for p in ls.ports:
                p.delete()
            ls.delete()
        if pg is not None:
            for acl in pg.acls:
                acl.delete()
            pg.delete()
        for r in list(idl.tables["DHCP_Options"].rows.values()):
            if owned_by(r, self.owner) and r.external_ids.get(NETWORK_KEY) == self.network:
                r.delete()


def refuse_other_nodes(ls, network: str, node: str) -> None:
    """Raise FailedPrecondition PORTS_ON_OTHER_NODES naming the nodes (with their port counts)
    that have ports of ours on switch `ls`, other than `node`."""
    counts: dict[str, int] = {}
    for p in ls.ports:
        ext = p.external_ids
        if ext.get(KIND_KEY) == KIND_PORT and ext.get(NODE_KEY, node) != node:
            counts[ext[NODE_KEY]] = counts.get(ext[NODE_KEY], 0) + 1
    if counts:
        shown = ", ".join(f"{n} ({c} port{'s' if c > 1 else ''})" for n, c in sorted(counts.items()))
        raise FailedPrecondition(
            f"network {network} still has ports on other nodes: {shown}; release those instances (or delete "
            "the ports) on their nodes first, or delete with force (their netdevs then stay until released there)",
            reason="PORTS_ON_OTHER_NODES", metadata={"network": network, "nodes": ",".join(sorted(counts))})


class _AddressBook:
    """Parsed addresses of every LSP by row UUID, kept current from IDL events
    (on the IDL thread, like the commands that read it), so allocation does not
    re-parse every port of a switch per request."""

    def __init__(self) -> None:
        self.by_uuid: dict[object, tuple[str, frozenset[IpAddress]]] = {}
        # id(txn) -> {switch: (macs, ips)} inserted in that txn
        self.pending: dict[int, dict[str, tuple[set[str], set[IpAddress]]]] = {}

    def on_event(self, event: str, table: str, row) -> None:
        """OvsdbClient listener (IDL thread): keep the parsed addresses of every LSP current;
        "resync" drops them all (re-parsed lazily). Never raises for a well-formed row."""
        if event == "resync":
            self.by_uuid.clear()
        elif table == "Logical_Switch_Port":
            if event == "delete":
                self.by_uuid.pop(row.uuid, None)
            else:
                self.by_uuid[row.uuid] = _parsed(row)

    def used(self, idl, txn, ls) -> tuple[set[str], set[IpAddress]]:
        """(MACs, IP addresses) in use on switch `ls`: its committed ports plus the ones staged
        earlier in the same transaction `txn`. Read-only apart from caching; forgets pending
        entries of finished transactions. Never raises."""
        macs: set[str] = set()
        ips: set[IpAddress] = set()
        rows = idl.tables["Logical_Switch_Port"].rows
        for atom in ls._data["ports"].values:      # the committed set, without Row objects
            entry = self.by_uuid.get(atom.value)
            if entry is None:
                row = rows.get(atom.value)
                if row is None:
                    continue
                entry = self.by_uuid[atom.value] = _parsed(row)
            if entry[0]:
                macs.add(entry[0])
            ips.update(entry[1])
        for k in [k for k in self.pending if k != id(txn)]:
            del self.pending[k]                  # earlier transactions are over
        pm, pi = self.pending.setdefault(id(txn), {}).get(ls.name, (set(), set()))
        return macs | pm, ips | pi

    def add_pending(self, txn, switch: str, mac: str, ips: list[str]) -> None:
        """Record addresses handed out inside transaction `txn` (not committed yet), so a second
        port of the same transaction never gets them. Raises ValueError for a malformed IP."""
        pm, pi = self.pending.setdefault(id(txn), {}).setdefault(switch, (set(), set()))
        pm.add(mac)
        pi.update(ipaddress.ip_address(a) for a in ips)


def _parsed(row) -> tuple[str, frozenset[IpAddress]]:
    mac, addrs = _addresses(row)
    return mac.lower(), frozenset(ipaddress.ip_address(a.split("/")[0]) for a in addrs)


class _EnsurePort(Command):
    """One logical switch port of OvnNb.ensure_ports (several share one transaction)."""

    def __init__(self, desired: PortRow, owner: str, book: _AddressBook) -> None:
        super().__init__()
        self.desired, self.owner, self.book = desired, owner, book
        self.result: tuple[bool, str, list[str]] = (False, "", [])   # changed, mac, ips

    def run(self, txn, idl) -> None:
        """Create the LSP (allocating addresses not given) or reconcile ours; result = (changed,
        mac, ips). The switch's port list is verified, so a concurrent writer makes it re-run.

        Idempotent: a matching port of ours -> changed False. Raises NotFound
        NETWORK_NOT_FOUND / NETWORK_INCOMPLETE, FailedPrecondition NOT_OURS / NO_MAC,
        AlreadyExists ADDRESS_IN_USE / MAC_IN_USE / IMMUTABLE_FIELD / PORT_ON_OTHER_SWITCH,
        ResourceExhausted SUBNET_EXHAUSTED."""
        d = self.desired
        ls = by_name(idl, "Logical_Switch", d.switch)
        if ls is None or not owned_by(ls, self.owner):
            raise NotFound(f"network switch {d.switch} does not exist; EnsureNetwork first",
                           reason="NETWORK_NOT_FOUND", metadata={"switch": d.switch})
        pg = by_name(idl, "Port_Group", d.port_group)
        if pg is None:
            raise NotFound(f"port group {d.port_group} is missing; EnsureNetwork again to repair it",
                           reason="NETWORK_INCOMPLETE")
        ls.verify("ports")                       # another writer adding a port -> TRY_AGAIN, re-run
        lsp = by_name(idl, "Logical_Switch_Port", d.name)
        if lsp is not None:
            self._update(txn, idl, ls, pg, lsp)
        else:
            self._create(txn, idl, ls, pg)

    def _dhcp_row(self, idl):
        d = self.desired
        if not d.dhcp4 or not d.subnet4:
            return None
        from ovsdbapp.backend.ovs_idl import idlutils
        net = d.marks.get(NETWORK_KEY)
        return _one([r for r in idlutils.index_lookup_all(idl.tables["DHCP_Options"], cidr=d.subnet4)
                     if owned_by(r, self.owner) and r.external_ids.get(NETWORK_KEY) == net])

    def _create(self, txn, idl, ls, pg) -> None:
        d = self.desired
        macs, ips = self.book.used(idl, txn, ls)
        reserved = {ipaddress.ip_address(r) for r in d.reserved}
        ip4 = self._pick(d.ip4, d.subnet4, ips | reserved, "ip4")
        ip6 = self._pick(d.ip6, d.subnet6, ips | reserved, "ip6") if d.subnet6 else ""
        mac = d.mac or (mac_from_ip4(ip4) if ip4 else "")
        if not mac:
            raise FailedPrecondition("a port needs a MAC address or an IPv4 subnet to derive one from",
                                     reason="NO_MAC")
        if mac in macs:
            raise AlreadyExists(f"MAC {mac} is already used by another port of {d.switch}",
                                reason="MAC_IN_USE", metadata={"mac": mac})
        addrs = [a for a in (ip4, ip6) if a]
        lsp = txn.insert(idl.tables["Logical_Switch_Port"])
        lsp.name = d.name
        lsp.addresses = [" ".join([mac, *addrs])]
        lsp.port_security = [" ".join([mac, *addrs])] if d.port_security else []
        lsp.external_ids = {**d.marks, KIND_KEY: KIND_PORT, ADDR_KEY: " ".join([mac, *addrs])}
        if d.chassis:                            # bound only there, from its first instant
            lsp.options = {REQUESTED_CHASSIS: d.chassis}
        dhcp = self._dhcp_row(idl)
        if dhcp is not None:
            lsp.dhcpv4_options = dhcp
        ls.addvalue("ports", lsp)
        pg.addvalue("ports", lsp)
        self.book.add_pending(txn, d.switch, mac, addrs)
        self.result = (True, mac, addrs)

    def _pick(self, given: str, subnet: str, used: set, field: str) -> str:
        if given:
            if ipaddress.ip_address(given) in used:
                raise AlreadyExists(f"address {given} is already used by another port or reserved",
                                    reason="ADDRESS_IN_USE", metadata={"field": field, "address": given})
            return given
        if not subnet:
            return ""
        net = ipaddress.ip_network(subnet)
        first = 1
        last = net.num_addresses - (2 if net.version == 4 and net.prefixlen < 31 else 1)
        for offset in range(first, last + 1):
            candidate = net.network_address + offset
            if candidate not in used:
                return str(candidate)
            if offset > 1 << 20:                 # huge v6 subnets: never scan further
                break
        raise ResourceExhausted(f"no free address left in {subnet}", reason="SUBNET_EXHAUSTED",
                                metadata={"subnet": subnet})

    def _update(self, txn, idl, ls, pg, lsp) -> None:
        d = self.desired
        if not owned_by(lsp, self.owner):
            raise FailedPrecondition(f"logical switch port {lsp.name} exists but is not ours; not touching it",
                                     reason="NOT_OURS", metadata={"object": lsp.name})
        if lsp not in ls.ports:
            raise AlreadyExists(f"port {lsp.name} exists on another logical switch", reason="PORT_ON_OTHER_SWITCH")
        for key in d.immutable:
            have, want = lsp.external_ids.get(key, ""), d.marks.get(key, "")
            if have != want:
                raise AlreadyExists(f"port exists with {key}={have!r}, requested {want!r}",
                                    reason="IMMUTABLE_FIELD", metadata={"field": key, "existing": have})
        live_mac, live_addrs = _addresses(lsp)
        recorded = lsp.external_ids.get(ADDR_KEY, "").split()
        # the addresses given at creation are the spec; a changed addresses column is drift put back
        mac, addrs = (recorded[0], recorded[1:]) if recorded else (live_mac, live_addrs)
        for given, kind in ((d.mac, "mac"), (d.ip4, "ip4"), (d.ip6, "ip6")):
            if given and given not in ([mac] if kind == "mac" else addrs):
                raise AlreadyExists(f"port exists with {kind} {mac if kind == 'mac' else ' '.join(addrs)}, "
                                    f"requested {given}", reason="IMMUTABLE_FIELD", metadata={"field": kind})
        changed = False
        if (live_mac.lower(), sorted(live_addrs)) != (mac.lower(), sorted(addrs)):
            lsp.addresses = [" ".join([mac, *addrs])]
            changed = True
        want_sec = [" ".join([mac, *addrs])] if d.port_security else []
        if list(lsp.port_security) != want_sec:
            lsp.port_security = want_sec
            changed = True
        want_ext = {**d.marks, KIND_KEY: KIND_PORT, ADDR_KEY: " ".join([mac, *addrs])}
        if dict(lsp.external_ids) != want_ext:
            lsp.external_ids = want_ext
            changed = True
        if d.chassis and lsp.options.get(REQUESTED_CHASSIS) != d.chassis:
            lsp.setkey("options", REQUESTED_CHASSIS, d.chassis)
            changed = True
        dhcp = self._dhcp_row(idl)
        have_dhcp = lsp.dhcpv4_options[0] if lsp.dhcpv4_options else None
        if (dhcp and (have_dhcp is None or have_dhcp.uuid != dhcp.uuid)) or (not dhcp and have_dhcp):
            lsp.dhcpv4_options = dhcp if dhcp is not None else []
            changed = True
        if lsp not in pg.ports:
            pg.addvalue("ports", lsp)
            changed = True
        self.result = (changed, mac, addrs)


class _DeletePorts(Command):
    """OvnNb.delete_ports's one transaction."""

    def __init__(self, names: list[str], owner: str) -> None:
        super().__init__()
        self.names, self.owner = names, owner
        self.result: list[str] = []              # deleted names

    def run(self, txn, idl) -> None:
        """Remove our LSPs named `names` from their switches and delete them; result = deleted names.
        Idempotent: absent names are skipped. Raises FailedPrecondition NOT_OURS when one is not
        ours (the whole transaction is aborted: nothing deleted)."""
        rows = ours_by_name(idl, "Logical_Switch_Port", self.names, self.owner, what="logical switch port",
                            verb="deleting", key="object")
        if not rows:
            return
        doomed = {r.uuid for r in rows}
        for ls in idl.tables["Logical_Switch"].rows.values():
            if any(p.uuid in doomed for p in ls.ports):
                for r in rows:
                    ls.delvalue("ports", r)
        names = [r.name for r in rows]
        for r in rows:
            r.delete()
        self.result = names

