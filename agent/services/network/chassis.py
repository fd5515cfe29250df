"""This node as an OVN chassis: its settings (EnsureChassis), its health
(GetChassis) and the cluster view (ListChassis).

A chassis is named by its system-id. Two hosts with the same system-id (a
cloned host image) make their ovn-controllers fight over one Southbound row;
EnsureChassis refuses to take a system-id the Southbound already has from
another host: a row whose tunnel endpoints are neither this node's current
nor its requested encap IP, or whose hostname is another's while this node
does not carry that system-id yet. A node that changes its encap IP keeps its
row (its own ovn-controller updates it).

Health is measured, never assumed: the SB row (ours, our encap), a tunnel
port to every other chassis, the largest team MTU against the underlay MTU
minus the encapsulation overhead, a gateway node's provider bridges and its
published mark, the NB connection. Each check says what to do when it fails.
"""
from __future__ import annotations

import ipaddress
import socket

from agent.drivers.contracts.netlink import NetlinkContract
from agent.drivers.contracts.ovsdb import OvnNbContract, OvnSbContract, OvsDbContract
from agent.drivers.ovsdb.sb import GATEWAY_OPTION, ChassisRow, cms_options, parse_mappings
from agent.drivers.ovsdb.vswitch import ChassisInfo
from agent.errors import AgentError, FailedPrecondition, InvalidArgument
from agent.model.marks import MTU_KEY, NETWORK_KEY, NODE_KEY
from agent.services.network.model import DEFAULT_MTU_OVN, Chassis, ChassisSpec
from agent.services.network.model_cluster import ChassisCheck, ChassisHealth, ClusterChassis

# outer Ethernet is not counted (the underlay MTU is an IP MTU); inner Ethernet + outer IP + UDP + header
ENCAP_OVERHEAD = {"geneve": 58, "vxlan": 50, "stt": 78}
IPV6_EXTRA = 20                               # an IPv6 underlay's header is 20 bytes longer


class ChassisManager:
    """EnsureChassis / GetChassis / ListChassis of the network plane."""

    def __init__(self, ovs: OvsDbContract | None, sb: OvnSbContract | None, nb: OvnNbContract | None,
                 netlink: NetlinkContract, *, node: str, integration_bridge: str, default_remote: str = "") -> None:
        self.ovs, self.sb, self.nb, self.nl = ovs, sb, nb, netlink
        self.node = node                            # also the hostname a chassis reports
        self.integration_bridge = integration_bridge
        self.default_remote = default_remote        # [network].ovn_sb: every SB member

    def _ovs(self) -> OvsDbContract:
        if self.ovs is None:
            raise FailedPrecondition("no local Open_vSwitch database configured", reason="NO_OVS")
        return self.ovs

    # -- EnsureChassis ---------------------------------------------------------
    def ensure(self, spec: ChassisSpec, deadline: float | None) -> Chassis:
        """Set the Open_vSwitch external_ids a chassis needs (system-id, hostname, ovn-remote,
        encap, datapath type; a gateway: ovn-cms-options and ovn-bridge-mappings) and create the
        integration and provider bridges when absent; a gateway joins (or leaves) the gateway
        chassis of every egress network. Idempotent (changed=False the second time).

        Raises InvalidArgument (spec.ovn_remote missing and no [network].ovn_sb, spec.encap_ip
        missing), FailedPrecondition NO_OVS, NOT_OURS (values set by someone else differ),
        DUPLICATE_SYSTEM_ID (another host holds the system-id in SB), Unavailable."""
        ovs = self._ovs()
        remote = spec.ovn_remote or self.default_remote
        if not remote:
            raise InvalidArgument.for_field("spec.ovn_remote", "is required ([network].ovn_sb is not set)")
        if not spec.encap_ip:
            raise InvalidArgument.for_field("spec.encap_ip", "is required")
        system_id = spec.system_id or self.node
        bridge = spec.bridge or self.integration_bridge
        local = ovs.chassis(bridge, deadline).external_ids
        if self.sb is not None:
            row = self.sb.chassis(system_id, deadline)
            if row is not None and self._duplicate(row, local, system_id, spec.encap_ip, self._hostnames(local)):
                raise FailedPrecondition(
                    f"system-id {system_id} is already a chassis of another host in the OVN Southbound (hostname "
                    f"{row.hostname!r}, tunnel endpoints {', '.join(ip for _, ip in row.encaps) or 'none'}); two "
                    "hosts with one system-id (a cloned host image?) would fight over it. Give this node its own "
                    f"system-id, or if that host is gone remove its row: ovn-sbctl chassis-del {system_id}",
                    reason="DUPLICATE_SYSTEM_ID",
                    metadata={"system_id": system_id, "hostname": row.hostname,
                              "encap_ips": ",".join(ip for _, ip in row.encaps)})
        settings = {"system-id": system_id, "ovn-remote": remote,
                    "ovn-encap-type": spec.encap_type or "geneve", "ovn-encap-ip": spec.encap_ip}
        if local.get("system-id") != system_id:
            # a chassis (re)named here reports this node's name, not the OS hostname (nodes sharing a
            # host in tests, clones sharing a hostname): the SB row then names the node
            settings["hostname"] = self.node
        if bridge != "br-int":
            settings["ovn-bridge"] = bridge
        if spec.bridge_datapath_type:
            settings["ovn-bridge-datapath-type"] = spec.bridge_datapath_type
        if spec.bridge_mappings:
            settings["ovn-bridge-mappings"] = ",".join(f"{n}:{b}" for n, b in spec.bridge_mappings)
        remove = {}
        if spec.gateway:
            settings["ovn-cms-options"] = GATEWAY_OPTION
        else:
            remove["ovn-cms-options"] = GATEWAY_OPTION
        changed = ovs.ensure_chassis(settings, bridge, spec.bridge_datapath_type, deadline, remove=remove,
                                     provider_bridges=tuple(b for _, b in spec.bridge_mappings))
        if self.nb is not None and (spec.gateway or local.get("ovn-cms-options") == GATEWAY_OPTION):
            changed |= bool(self.nb.gateway_membership(system_id, spec.gateway, deadline))
        chassis = self.get(bridge, deadline)
        chassis.changed = changed
        return chassis

    def _hostnames(self, local: dict[str, str]) -> set[str]:
        """The names this host's chassis may report: its external_ids hostname, the node name,
        the OS hostname."""
        return {h for h in (local.get("hostname", ""), self.node, socket.gethostname()) if h}

    @staticmethod
    def _duplicate(row: ChassisRow, local: dict[str, str], system_id: str, encap_ip: str,
                   hostnames: set[str]) -> bool:
        """True when SB row `row` (named system_id) belongs to another host than this one: its
        tunnel endpoints are neither this node's current nor the requested one, or it reports
        another hostname while this node does not carry the system-id yet. Pure."""
        theirs = {ip for _, ip in row.encaps}
        mine = {ip for ip in (local.get("ovn-encap-ip", ""), encap_ip) if ip}
        ips_match = not theirs or bool(theirs & mine)
        already = local.get("system-id") == system_id
        host_ok = not row.hostname or row.hostname in hostnames or already
        return not (ips_match and host_ok)

    # -- GetChassis --------------------------------------------------------------
    def get(self, bridge: str, deadline: float | None) -> Chassis:
        """Observed chassis settings and their health. Raises FailedPrecondition NO_OVS,
        Unavailable (local Open_vSwitch)."""
        info = self._ovs().chassis(bridge or self.integration_bridge, deadline)
        e = info.external_ids
        return Chassis(system_id=e.get("system-id", ""), ovn_remote=e.get("ovn-remote", ""),
                       encap_type=e.get("ovn-encap-type", ""), encap_ip=e.get("ovn-encap-ip", ""),
                       bridge_datapath_type=info.bridge_datapath_type, bridge=info.bridge,
                       bridge_exists=info.bridge_exists, ovs_version=info.ovs_version,
                       hostname=e.get("hostname", ""),
                       gateway=GATEWAY_OPTION in cms_options(e.get("ovn-cms-options", "")),
                       bridge_mappings=parse_mappings(e.get("ovn-bridge-mappings", "")),
                       health=self.health(info, deadline))

    def health(self, info: ChassisInfo, deadline: float | None) -> ChassisHealth:
        """Every check (see the module doc). Never raises: a check that cannot be made fails
        with the reason."""
        e = info.external_ids
        sid, encap_ip, encap_type = e.get("system-id", ""), e.get("ovn-encap-ip", ""), e.get("ovn-encap-type", "")
        checks = [ChassisCheck("ovs", bool(sid and info.bridge_exists),
                               f"system-id {sid!r}, integration bridge {info.bridge} "
                               f"{'present' if info.bridge_exists else 'missing'}"
                               + ("" if sid and info.bridge_exists else ": call EnsureChassis"))]
        rows: list[ChassisRow] | None = None
        if self.sb is None:
            checks.append(ChassisCheck("sb-chassis", False, "no OVN Southbound configured ([network].ovn_sb): "
                                                            "the chassis cannot be checked"))
        else:
            try:
                rows = self.sb.chassis_list(deadline)
            except AgentError as exc:
                checks.append(ChassisCheck("sb-chassis", False, f"OVN Southbound unreadable: {exc.message}"))
        if rows is not None:
            checks += self._sb_checks(rows, e, sid, encap_ip, encap_type, deadline)
        checks.append(self._mtu_check(encap_ip, encap_type, deadline))
        if e.get("ovn-cms-options", "") == GATEWAY_OPTION or e.get("ovn-bridge-mappings"):
            checks.append(self._gateway_check(e, [r for r in rows or [] if r.name == sid], deadline))
        if self.nb is not None:
            ok = self.nb.connected
            checks.append(ChassisCheck("nb", ok, f"connected to {self.nb.server}" if ok else
                                       f"not connected to the OVN Northbound ({self.nb.remote}): reconnecting"))
        return ChassisHealth(checks)

    def _sb_checks(self, rows: list[ChassisRow], e: dict[str, str], sid: str, encap_ip: str, encap_type: str,
                   deadline: float | None) -> list[ChassisCheck]:
        me = next((r for r in rows if r.name == sid), None)
        if me is None:
            return [ChassisCheck("sb-chassis", False, f"no chassis {sid!r} in the OVN Southbound: is ovn-controller "
                                                      "running with this ovn-remote?")]
        out = [ChassisCheck("sb-chassis", (encap_type, encap_ip) in me.encaps,
                            f"chassis {sid} hostname {me.hostname!r}, encaps "
                            f"{', '.join(f'{t} {ip}' for t, ip in me.encaps) or 'none'}"
                            + ("" if (encap_type, encap_ip) in me.encaps else
                               f"; want {encap_type} {encap_ip} (ovn-controller not caught up, or another host?)"))]
        dup = self._duplicate(me, e, sid, encap_ip, self._hostnames(e))
        out.append(ChassisCheck("system-id", not dup,
                                f"the SB row of {sid} shows hostname {me.hostname!r}, "
                                f"{', '.join(ip for _, ip in me.encaps)}: another host uses this system-id (give "
                                "one of them another), or ovn-controller has not caught up with a new encap IP"
                                if dup else f"system-id {sid} is this host's only"))
        peers = {ip: r.name for r in rows if r.name != sid for t, ip in r.encaps if t == encap_type}
        try:
            have = {t.remote_ip for t in self._ovs().tunnels(deadline)}
        except AgentError as exc:
            return out + [ChassisCheck("tunnels", False, f"local Open_vSwitch unreadable: {exc.message}")]
        missing = sorted(f"{name} ({ip})" for ip, name in peers.items() if ip not in have)
        out.append(ChassisCheck("tunnels", not missing,
                                f"{encap_type} tunnel to every other chassis ({len(peers)})" if not missing else
                                f"no tunnel port to {', '.join(missing)}: ovn-controller has not created it yet, "
                                "or the encap types differ"))
        return out

    def _mtu_check(self, encap_ip: str, encap_type: str, deadline: float | None) -> ChassisCheck:
        if not encap_ip:
            return ChassisCheck("mtu", False, "no ovn-encap-ip: the underlay is unknown")
        try:
            link = self.nl.link_with_address(encap_ip)
        except AgentError as exc:
            return ChassisCheck("mtu", False, f"cannot read the underlay: {exc.message}")
        if link is None:
            return ChassisCheck("mtu", False, f"no netdev holds the encap IP {encap_ip} in this node's network "
                                              "namespace: tunnels cannot leave")
        overhead = ENCAP_OVERHEAD.get(encap_type, ENCAP_OVERHEAD["geneve"])
        overhead += IPV6_EXTRA if ipaddress.ip_address(encap_ip).version == 6 else 0
        fits = link.mtu - overhead
        biggest, names = DEFAULT_MTU_OVN, []
        if self.nb is not None:
            try:
                mtus = {n.marks.get(NETWORK_KEY, n.switch): int(n.marks.get(MTU_KEY, "0") or 0)
                        or DEFAULT_MTU_OVN for n in self.nb.networks(deadline)}
            except AgentError as exc:
                return ChassisCheck("mtu", False, f"cannot read the team networks: {exc.message}")
            biggest = max(mtus.values(), default=DEFAULT_MTU_OVN)
            names = sorted(n for n, m in mtus.items() if m > fits)
        ok = biggest <= fits
        detail = (f"underlay {link.name} mtu {link.mtu} - {encap_type or 'geneve'} {overhead} = {fits} "
                  f"{'>=' if ok else '<'} largest team MTU {biggest}")
        if not ok:
            detail += (f"; too big: {', '.join(names) or 'the default'}: lower their MTU to {fits} or raise the "
                       "underlay MTU (large packets would be dropped silently)")
        return ChassisCheck("mtu", ok, detail)

    def _gateway_check(self, e: dict[str, str], me: list[ChassisRow], deadline: float | None) -> ChassisCheck:
        problems = []
        maps = parse_mappings(e.get("ovn-bridge-mappings", ""))
        if not maps:
            problems.append("no ovn-bridge-mappings: the node cannot reach any uplink")
        for net, bridge in sorted(maps.items()):
            try:
                ports = self._ovs().bridge_ports(bridge, deadline)
            except AgentError as exc:
                problems.append(f"bridge {bridge}: {exc.message}")
                continue
            if ports is None:
                problems.append(f"provider bridge {bridge} ({net}) is missing")
            elif not [p for p in ports if not p.startswith("patch-")]:
                problems.append(f"provider bridge {bridge} ({net}) has no uplink port: attach the uplink NIC "
                                f"(ovs-vsctl add-port {bridge} <nic>)")
        if e.get("ovn-cms-options", "") == GATEWAY_OPTION and me and not me[0].gateway:
            problems.append("the Southbound does not show the gateway mark yet (ovn-controller has not published it)")
        return ChassisCheck("gateway", not problems, "; ".join(problems) or
                            "provider bridges " + ", ".join(f"{n}:{b}" for n, b in sorted(maps.items())) + " ready")

    # -- ListChassis ---------------------------------------------------------------
    def cluster(self, deadline: float | None) -> tuple[list[ClusterChassis], dict[str, int]]:
        """Every SB chassis as this node sees it, and our logical ports per agent node.
        Read-only. Raises FailedPrecondition NO_SB, Unavailable."""
        if self.sb is None:
            raise FailedPrecondition("no OVN Southbound configured: set [network].ovn_sb", reason="NO_SB")
        rows = self.sb.chassis_list(deadline)
        bound = self.sb.bindings_per_chassis(deadline)
        sid, tunnels = "", {}
        if self.ovs is not None:
            sid = self.ovs.system_id(deadline)
            tunnels = {t.remote_ip: t for t in self.ovs.tunnels(deadline)}
        ours: dict[str, list[str]] = {}
        per_node: dict[str, int] = {}
        for p in (self.nb.ports(deadline=deadline) if self.nb is not None else []):
            node = p.marks.get(NODE_KEY, "")
            per_node[node] = per_node.get(node, 0) + 1
            if p.chassis:
                ours.setdefault(p.chassis, []).append(node)
        out = []
        for r in rows:
            tun = next((tunnels[ip] for _, ip in r.encaps if ip in tunnels), None)
            out.append(ClusterChassis(
                name=r.name, hostname=r.hostname, encaps=r.encaps, gateway=r.gateway, bridge_mappings=r.bridge_mappings,
                local=r.name == sid, tunnel=tun is not None, bfd=tun.bfd_state if tun else "",
                bound_ports=bound.get(r.name, 0), ports=len(ours.get(r.name, [])),
                nodes=sorted(set(ours.get(r.name, []))), nb_cfg=r.nb_cfg))
        return out, per_node
