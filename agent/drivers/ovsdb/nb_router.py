"""NB rows of a team network's egress gateway, written inside the network's own
transaction (_EnsureNetwork calls sync_egress) so every node ensuring the same
spec converges:

    team switch --[lan_lsp]--(lan_port  gateway4)  router  (wan_port external_ip4)--[wan_lsp]-- uplink switch --[localnet]--> provider bridge
                                                  SNAT team subnet -> external_ip4, 0.0.0.0/0 via uplink_gateway4
    wan_port.ha_chassis_group = HA_Chassis_Group(router name): the gateway chassis, by priority

Concurrent creators conflict on unique names (LRP, LSP, HA_Chassis_Group): the
loser re-reads and converges. Gateway chassis are only added here (a chassis
another node knows and we do not see yet is never removed); a node removes
only itself (_GatewayMembership). Router, its ports, NAT and routes are
children of the Logical_Router (non-root rows: deleting the router takes them
along); the HA chassis are children of their group.
"""
from __future__ import annotations

from agent.drivers.ovsdb.client import Command, by_name, owned_by
from agent.drivers.ovsdb.nb_types import KIND_KEY, NETWORK_KEY, OWNER_KEY, EgressObserved, EgressRows
from agent.errors import FailedPrecondition
from agent.model.marks import (KIND_HA_CHASSIS, KIND_HA_GROUP, KIND_LOCALNET, KIND_ROUTE, KIND_ROUTER, KIND_ROUTER_LSP,
                               KIND_ROUTER_PORT, KIND_SNAT, KIND_UPLINK_SWITCH)

PRIORITY_TOP = 100                   # the first gateway of a new group
PRIORITY_STEP = 10                   # between gateways; a late one gets the lowest minus this


def _not_ours(row, what: str, owner: str) -> FailedPrecondition:
    return FailedPrecondition(f"{what} {row.name} exists but is not owned by {owner} (external_ids {OWNER_KEY} "
                              f"is {row.external_ids.get(OWNER_KEY)!r}); rename or remove it", reason="NOT_OURS",
                              metadata={"object": row.name})


def _ours_or_none(idl, table: str, name: str, what: str, owner: str):
    row = by_name(idl, table, name)
    if row is not None and not owned_by(row, owner):
        raise _not_ours(row, what, owner)
    return row


def _col(row, column: str) -> list:
    """A set column's members; [] for a row inserted in this transaction that has none yet."""
    try:
        return list(getattr(row, column))
    except AttributeError:
        return []


def _set(row, column: str, value) -> bool:
    """row.column = value when it differs (or is unset on a new row); returns whether it was written."""
    try:
        have = getattr(row, column)
    except AttributeError:                         # inserted in this transaction, column not set yet
        setattr(row, column, value)
        return True
    if isinstance(value, dict):
        same = dict(have) == value
    elif isinstance(value, list):
        same = sorted(have) == sorted(value)
    else:
        same = have == value
    if not same:
        setattr(row, column, value)
    return not same


def sync_egress(txn, idl, team_ls, desired: EgressRows | None, marks: dict[str, str], owner: str) -> bool:
    """Bring a network's gateway rows to `desired` (None: remove ours, found by the network
    mark in `marks`). `team_ls` is the team switch row (may be inserted in this transaction).
    Returns changed. Raises FailedPrecondition NOT_OURS when a same-named row is not ours."""
    if desired is None:
        return _remove(idl, team_ls, marks[NETWORK_KEY], owner)
    d = desired
    changed = False
    kind = lambda k: {**marks, KIND_KEY: k}            # noqa: E731
    group = _ours_or_none(idl, "HA_Chassis_Group", d.router, "HA chassis group", owner)
    if group is None:
        group = txn.insert(idl.tables["HA_Chassis_Group"])
        group.name, group.external_ids = d.router, kind(KIND_HA_GROUP)
        group.ha_chassis = [_ha_chassis(txn, idl, c, p, kind(KIND_HA_CHASSIS)) for c, p in d.gateways]
        changed = True
    else:
        changed |= add_gateways(txn, idl, group, d.chassis_names, kind(KIND_HA_CHASSIS))
    lr = _ours_or_none(idl, "Logical_Router", d.router, "logical router", owner)
    if lr is None:
        lr = txn.insert(idl.tables["Logical_Router"])
        lr.name, lr.external_ids = d.router, kind(KIND_ROUTER)
        changed = True
    elif dict(lr.external_ids) != kind(KIND_ROUTER):
        lr.external_ids = kind(KIND_ROUTER)
        changed = True
    for name, mac, networks, gw in ((d.lan_port, d.lan_mac, d.lan_networks, False),
                                    (d.wan_port, d.wan_mac, d.wan_networks, True)):
        lrp = _ours_or_none(idl, "Logical_Router_Port", name, "logical router port", owner)
        if lrp is None:
            lrp = txn.insert(idl.tables["Logical_Router_Port"])
            lrp.name, lrp.external_ids = name, kind(KIND_ROUTER_PORT)
            lr.addvalue("ports", lrp)
            changed = True
        changed |= _set(lrp, "mac", mac) | _set(lrp, "networks", networks)
        if gw:
            hcg = _col(lrp, "ha_chassis_group")
            have = hcg[0] if hcg else None
            if have is None or have.uuid != group.uuid:
                lrp.ha_chassis_group = group
                changed = True
            changed |= _set(lrp, "options", {"gateway_mtu": str(d.gateway_mtu)} if d.gateway_mtu else {})
    changed |= _one_nat(txn, idl, lr, d, kind(KIND_SNAT), owner)
    changed |= _one_route(txn, idl, lr, d, kind(KIND_ROUTE), owner)
    # the uplink switch: a router port towards the router and a localnet port to the provider bridge
    up = _ours_or_none(idl, "Logical_Switch", d.uplink_switch, "logical switch", owner)
    if up is None:
        up = txn.insert(idl.tables["Logical_Switch"])
        up.name, up.external_ids = d.uplink_switch, kind(KIND_UPLINK_SWITCH)
        changed = True
    changed |= _lsp(txn, idl, up, d.wan_lsp, "router", ["router"],
                    {"router-port": d.wan_port, "nat-addresses": "router"}, kind(KIND_ROUTER_LSP), owner)
    changed |= _lsp(txn, idl, up, d.localnet_lsp, "localnet", ["unknown"], {"network_name": d.uplink},
                    kind(KIND_LOCALNET), owner)
    changed |= _lsp(txn, idl, team_ls, d.lan_lsp, "router", ["router"], {"router-port": d.lan_port},
                    kind(KIND_ROUTER_LSP), owner)
    return changed


def _ha_chassis(txn, idl, chassis: str, priority: int, ext: dict[str, str]):
    row = txn.insert(idl.tables["HA_Chassis"])
    row.chassis_name, row.priority, row.external_ids = chassis, priority, ext
    return row


def add_gateways(txn, idl, group, chassis: list[str], ext: dict[str, str]) -> bool:
    """Add each chassis missing from `group`, below the lowest priority there. Never removes."""
    have = {h.chassis_name for h in group.ha_chassis}
    low = min((h.priority for h in group.ha_chassis), default=PRIORITY_TOP + PRIORITY_STEP)
    changed = False
    for name in chassis:
        if name in have:
            continue
        low = max(1, low - PRIORITY_STEP)
        group.addvalue("ha_chassis", _ha_chassis(txn, idl, name, low, ext))
        have.add(name)
        changed = True
    return changed


def _one_nat(txn, idl, lr, d: EgressRows, ext: dict[str, str], owner: str) -> bool:
    want = ("snat", d.snat_external_ip, d.snat_logical_ip)
    mine = [n for n in _col(lr, "nat") if owned_by(n, owner)]
    keep = next((n for n in mine if (n.type, n.external_ip, n.logical_ip) == want), None)
    changed = False
    for n in mine:
        if n is not keep:
            lr.delvalue("nat", n)
            changed = True
    if keep is None:
        nat = txn.insert(idl.tables["NAT"])
        nat.type, nat.external_ip, nat.logical_ip, nat.external_ids = (*want, ext)
        lr.addvalue("nat", nat)
        changed = True
    return changed


def _one_route(txn, idl, lr, d: EgressRows, ext: dict[str, str], owner: str) -> bool:
    want = ("0.0.0.0/0", d.default_nexthop)
    mine = [r for r in _col(lr, "static_routes") if owned_by(r, owner)]
    keep = next((r for r in mine if (r.ip_prefix, r.nexthop) == want), None)
    changed = False
    for r in mine:
        if r is not keep:
            lr.delvalue("static_routes", r)
            changed = True
    if keep is None:
        route = txn.insert(idl.tables["Logical_Router_Static_Route"])
        route.ip_prefix, route.nexthop, route.external_ids = (*want, ext)
        lr.addvalue("static_routes", route)
        changed = True
    return changed


def _lsp(txn, idl, ls, name: str, type_: str, addresses: list[str], options: dict[str, str],
         ext: dict[str, str], owner: str) -> bool:
    lsp = _ours_or_none(idl, "Logical_Switch_Port", name, "logical switch port", owner)
    if lsp is None:
        lsp = txn.insert(idl.tables["Logical_Switch_Port"])
        lsp.name, lsp.type, lsp.addresses, lsp.options, lsp.external_ids = name, type_, addresses, options, ext
        ls.addvalue("ports", lsp)
        return True
    changed = _set(lsp, "type", type_) | _set(lsp, "addresses", addresses) | _set(lsp, "options", options)
    changed |= _set(lsp, "external_ids", ext)
    return changed


def _remove(idl, team_ls, network: str, owner: str) -> bool:
    """Delete a network's gateway rows of ours, found by their marks (none: False)."""
    def mine(table: str, kind: str) -> list:
        return [r for r in idl.tables[table].rows.values() if owned_by(r, owner)
                and r.external_ids.get(NETWORK_KEY) == network and r.external_ids.get(KIND_KEY) == kind]
    changed = False
    for up in mine("Logical_Switch", KIND_UPLINK_SWITCH):
        for p in _col(up, "ports"):
            if not owned_by(p, owner):
                raise _not_ours(p, f"a port of {up.name}:", owner)
        up.delete()                                     # its ports are its children
        changed = True
    for lr in mine("Logical_Router", KIND_ROUTER):
        # its ports, NAT and routes go with it (non-root rows: the server collects them), but the
        # server checks the HA chassis group's references before that: drop the port's first
        for lrp in _col(lr, "ports"):
            if _col(lrp, "ha_chassis_group"):
                lrp.ha_chassis_group = []
        lr.delete()
        changed = True
    for group in mine("HA_Chassis_Group", KIND_HA_GROUP):
        group.delete()                                  # its HA chassis are its children
        changed = True
    if team_ls is not None:
        for p in _col(team_ls, "ports"):
            if owned_by(p, owner) and p.external_ids.get(KIND_KEY) == KIND_ROUTER_LSP:
                team_ls.delvalue("ports", p)
                changed = True
    return changed


def observed_egress(idl, router: str, owner: str) -> EgressObserved | None:
    """The gateway rows of ours named `router` (None when the router is absent)."""
    lr = by_name(idl, "Logical_Router", router)
    if lr is None or not owned_by(lr, owner):
        return None
    group = by_name(idl, "HA_Chassis_Group", router)
    gws = sorted(((h.chassis_name, h.priority) for h in group.ha_chassis), key=lambda g: (-g[1], g[0])) \
        if group is not None and owned_by(group, owner) else []
    return EgressObserved(router=router, gateways=gws)


class _GatewayMembership(Command):
    """OvnNb.gateway_membership's one transaction: add `chassis` to every HA chassis group of
    ours (gateway=True; lowest priority) or remove it from all of them (False)."""

    def __init__(self, chassis: str, gateway: bool, owner: str) -> None:
        super().__init__()
        self.chassis, self.gateway, self.owner = chassis, gateway, owner
        self.result: list[str] = []               # groups changed

    def run(self, txn, idl) -> None:
        """result = the names of the groups changed. Idempotent (nothing to do -> []). Never raises."""
        changed = []
        for group in list(idl.tables["HA_Chassis_Group"].rows.values()):
            if not owned_by(group, self.owner) or group.external_ids.get(KIND_KEY) != KIND_HA_GROUP:
                continue
            mine = [h for h in group.ha_chassis if h.chassis_name == self.chassis]
            if self.gateway and not mine:
                ext = {OWNER_KEY: self.owner, NETWORK_KEY: group.external_ids.get(NETWORK_KEY, ""),
                       KIND_KEY: KIND_HA_CHASSIS}
                add_gateways(txn, idl, group, [self.chassis], ext)
                changed.append(group.name)
            elif not self.gateway and mine:
                for h in mine:
                    group.delvalue("ha_chassis", h)
                changed.append(group.name)
        self.result = changed
