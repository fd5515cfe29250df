"""InstanceService servicer: validate every field at the edge -> convert ->
call InstanceService -> convert the observed state back. No business logic.

Field violations name the request field path, e.g. "spec.nics[1].ip4",
"spec.limits.memory.max", "spec.root.image_id".
"""
from __future__ import annotations

import ipaddress

from agent import validation as v
from agent._proto.devcloud.agent.v1 import instance_pb2 as pb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc as pb_grpc
from agent.api.compute import cgroup_to_pb, limits_from_pb, limits_to_pb
from agent._proto.devcloud.agent.v1 import network_pb2 as net_pb
from agent._proto.devcloud.agent.v1 import storage_pb2 as st_pb
from agent.api.network import deadline_of, port_pb
from agent.api.storage import IDMAP_MODE_TO_PB, idmap_from_pb, idmap_to_pb, volume_to_pb
from agent.errors import ErrorReport, InvalidArgument
from agent.services.drift import Drift
from agent.services.instances.service import InstanceService
from agent.services.instances.model import (KIND_CONTAINER, KIND_VM, MAX_ID_LEN, MAX_NIC_NAME_LEN, MAX_NICS,
                                           PART_COMPUTE, PART_NETWORK, PART_STORAGE, PLACE_AGENT, PLACE_HOST,
                                           PLACE_NETNS, Event, Instance, InstanceSpec, NicSpec, Orphan, RootSpec,
                                           Runtime)

_KINDS = {pb.INSTANCE_KIND_UNSPECIFIED: KIND_CONTAINER, pb.INSTANCE_KIND_CONTAINER: KIND_CONTAINER,
          pb.INSTANCE_KIND_VM: KIND_VM}
_KINDS_PB = {KIND_CONTAINER: pb.INSTANCE_KIND_CONTAINER, KIND_VM: pb.INSTANCE_KIND_VM}
_STATES_PB = {"preparing": pb.INSTANCE_STATE_PREPARING, "prepared": pb.INSTANCE_STATE_PREPARED,
              "releasing": pb.INSTANCE_STATE_RELEASING, "released": pb.INSTANCE_STATE_RELEASED,
              "failed": pb.INSTANCE_STATE_FAILED}
_STATES = {pb_value: name for name, pb_value in _STATES_PB.items()}
_PARTS_PB = {PART_STORAGE: pb.INSTANCE_PART_STORAGE, PART_NETWORK: pb.INSTANCE_PART_NETWORK,
             PART_COMPUTE: pb.INSTANCE_PART_COMPUTE}
_PLACEMENTS = {pb.PEER_PLACEMENT_UNSPECIFIED: "", pb.PEER_PLACEMENT_AGENT_NETNS: PLACE_AGENT,
               pb.PEER_PLACEMENT_HOST_NETNS: PLACE_HOST, pb.PEER_PLACEMENT_NETNS: PLACE_NETNS}
_PLACEMENTS_PB: dict[str, pb.PeerPlacement] = {v: k for k, v in _PLACEMENTS.items()}
_NIC_KINDS_PB: dict[str, net_pb.NicKind] = {"veth": net_pb.NIC_KIND_VETH, "tap": net_pb.NIC_KIND_TAP}
MAX_BYTES = (1 << 63) - 1
MAX_BULK = 10000
MAX_KEEP = 100000
MAX_READY_TIMEOUT_MS = 600_000
MAX_QUEUES = 256


# -- validation -------------------------------------------------------------------------
def _check(report: ErrorReport, fn, *args) -> None:
    try:
        fn(*args)
    except InvalidArgument as exc:
        for viol in exc.violations:
            report.add(viol.field, viol.description)


def _instance_id(field: str, value: str) -> str:
    v.name(field, value, max_len=MAX_ID_LEN)
    return v.cgroup_name(field, value)


def _size(report: ErrorReport, field: str, value: int) -> int:
    if value > MAX_BYTES:
        report.add(field, f"{value} is out of range")
        return 0
    return value


def instance_spec(s: pb.InstanceSpec) -> InstanceSpec:
    """Validate and convert (every violation reported at once, field paths under "spec")."""
    report = ErrorReport()
    _check(report, _instance_id, "spec.id", s.id)
    _check(report, v.cgroup_name, "spec.team", s.team)
    _check(report, v.enum, "spec.kind", s.kind, _KINDS)
    kind = _KINDS.get(s.kind, KIND_CONTAINER)
    vm = kind == KIND_VM
    r = s.root
    root = RootSpec(image_id=r.image_id, size_bytes=_size(report, "spec.root.size_bytes", r.size_bytes),
                    refquota_bytes=_size(report, "spec.root.refquota_bytes", r.refquota_bytes),
                    quota_bytes=_size(report, "spec.root.quota_bytes", r.quota_bytes),
                    reservation_bytes=_size(report, "spec.root.reservation_bytes", r.reservation_bytes))
    if vm:
        if r.image_id:
            report.add("spec.root.image_id", "a VM's root is an empty zvol: leave image_id empty")
        if not r.size_bytes:
            report.add("spec.root.size_bytes", "is required for a VM (the disk size)")
        if r.refquota_bytes:
            report.add("spec.root.refquota_bytes", "does not apply to a VM's zvol")
        if s.kubernetes_node:
            report.add("spec.kubernetes_node", "the nesting preflight applies to containers; a VM runs its own kernel")
    else:
        _check(report, v.image_id, "spec.root.image_id", r.image_id)
        if r.size_bytes:
            report.add("spec.root.size_bytes", "only VMs have a disk size; use refquota_bytes for a container")
    if len(s.nics) > MAX_NICS:
        report.add("spec.nics", f"at most {MAX_NICS} NICs, got {len(s.nics)}")
    nics, seen = [], set()
    for i, n in enumerate(s.nics[:MAX_NICS]):
        nics.append(_nic(report, f"spec.nics[{i}]", n, vm))
        if n.name in seen:
            report.add(f"spec.nics[{i}].name", f"{n.name!r} is used by another NIC")
        seen.add(n.name)
    limits = limits_from_pb(s.limits, report, "spec.limits")
    labels = {}
    try:
        labels = v.labels("spec.labels", dict(s.labels))
    except InvalidArgument as exc:
        for viol in exc.violations:
            report.add(viol.field, viol.description)
    idmap = None
    if s.HasField("idmap"):
        if vm:
            report.add("spec.idmap", "a VM runs its own kernel: uid/gid maps are for containers")
        idmap = idmap_from_pb(s.idmap, "spec.idmap", report)
    report.raise_if_any()
    return InstanceSpec(id=s.id, team=s.team, kind=kind, root=root, nics=tuple(nics), limits=limits,
                        labels=tuple(sorted(labels.items())), kubernetes_node=s.kubernetes_node, idmap=idmap)


def _nic(report: ErrorReport, f: str, n: pb.NicSpec, vm: bool) -> NicSpec:
    _check(report, lambda fld, val: v.name(fld, val, max_len=MAX_NIC_NAME_LEN), f"{f}.name", n.name)
    _check(report, lambda fld, val: v.name(fld, val, max_len=48), f"{f}.network", n.network)
    mac = n.mac
    if n.mac:
        try:
            mac = v.mac(f"{f}.mac", n.mac)
        except InvalidArgument as exc:
            report.add(exc.violations[0].field, exc.violations[0].description)
    if n.ip4:
        _check(report, lambda fld, val: v.ip_address(fld, val, version=4), f"{f}.ip4", n.ip4)
    if n.ip6:
        _check(report, lambda fld, val: v.ip_address(fld, val, version=6), f"{f}.ip6", n.ip6)
    _check(report, v.int_range, f"{f}.mtu", n.mtu, 576, 9000)
    _check(report, v.enum, f"{f}.peer_placement", n.peer_placement, _PLACEMENTS)
    placement = _PLACEMENTS.get(n.peer_placement, "")
    if vm:
        for fld, val in (("peer_netns", n.peer_netns), ("peer_name", n.peer_name)):
            if val:
                report.add(f"{f}.{fld}", "only applies to containers (a VM's NIC is a tap)")
        if placement:
            report.add(f"{f}.peer_placement", "only applies to containers (a VM's tap stays with the agent)")
        if n.queues > MAX_QUEUES:
            report.add(f"{f}.queues", f"at most {MAX_QUEUES} queues")
    else:
        if n.queues:
            report.add(f"{f}.queues", "only applies to VMs (taps)")
        if n.peer_netns:
            _check(report, v.netns_ref, f"{f}.peer_netns", n.peer_netns)
            if placement in (PLACE_AGENT, PLACE_HOST):
                report.add(f"{f}.peer_netns", "only applies with peer_placement NETNS (or UNSPECIFIED)")
        elif placement == PLACE_NETNS:
            report.add(f"{f}.peer_netns", "is required with peer_placement NETNS")
        if n.peer_name:
            _check(report, v.netdev, f"{f}.peer_name", n.peer_name)
            if not n.peer_netns and placement != PLACE_HOST:
                report.add(f"{f}.peer_name", "needs peer_netns or peer_placement HOST_NETNS (beside the host "
                                             "end the instance end keeps its hashed name)")
    ip4 = str(ipaddress.ip_address(n.ip4)) if n.ip4 and _is_ip(n.ip4, 4) else n.ip4
    ip6 = str(ipaddress.ip_address(n.ip6)) if n.ip6 and _is_ip(n.ip6, 6) else n.ip6
    return NicSpec(name=n.name, network=n.network, mac=mac, ip4=ip4, ip6=ip6, mtu=n.mtu, peer_netns=n.peer_netns,
                   peer_name=n.peer_name, queues=n.queues, peer_placement=placement)


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


# -- conversion back -------------------------------------------------------------------
def spec_pb(s: InstanceSpec) -> pb.InstanceSpec:
    r = s.root
    return pb.InstanceSpec(
        id=s.id, team=s.team, kind=_KINDS_PB[s.kind],
        root=pb.RootVolumeSpec(image_id=r.image_id, size_bytes=r.size_bytes, refquota_bytes=r.refquota_bytes,
                               quota_bytes=r.quota_bytes, reservation_bytes=r.reservation_bytes),
        nics=[pb.NicSpec(name=n.name, network=n.network, mac=n.mac, ip4=n.ip4, ip6=n.ip6, mtu=n.mtu,
                         peer_netns=n.peer_netns, peer_name=n.peer_name, queues=n.queues,
                         peer_placement=_PLACEMENTS_PB.get(n.peer_placement, pb.PEER_PLACEMENT_UNSPECIFIED))
              for n in s.nics],
        limits=limits_to_pb(s.limits), labels=dict(s.labels), kubernetes_node=s.kubernetes_node,
        idmap=idmap_to_pb(s.idmap))


def runtime_pb(r: Runtime) -> pb.Runtime:
    """The proto form of what a runtime needs."""
    return pb.Runtime(
        nics=[pb.RuntimeNic(name=n.name, kind=_NIC_KINDS_PB.get(n.kind, net_pb.NIC_KIND_UNSPECIFIED), netdev=n.netdev,
                            netns=n.netns, host_netns=n.host_netns,
                            placement=_PLACEMENTS_PB.get(n.placement, pb.PEER_PLACEMENT_UNSPECIFIED), mac=n.mac,
                            mtu=n.mtu, ip4=n.ip4, gateway4=n.gateway4, ip6=n.ip6, dns_servers=list(n.dns_servers),
                            dhcp=n.dhcp, configured=n.configured, queues=n.queues, host_netdev=n.host_netdev)
              for n in r.nics],
        storage=pb.RuntimeStorage(rootfs=r.rootfs, disk=r.disk, disk_is_file=r.disk_is_file,
                                  disk_format="raw" if r.disk else "",
                                  idmap_mode=IDMAP_MODE_TO_PB.get(r.idmap_mode, st_pb.IDMAP_MODE_UNSPECIFIED),
                                  image_metadata_dir=r.image_metadata_dir),
        compute=pb.RuntimeCompute(cgroup=r.cgroup, cgroup_path=r.cgroup_path, payload_cgroup=r.payload_cgroup,
                                  monitor_cgroup=r.monitor_cgroup),
        idmap=idmap_to_pb(r.idmap))


def instance_pb(i: Instance) -> pb.Instance:
    names = pb.InstanceNames(dataset=i.names.dataset, scope=i.names.scope, nics=[
        pb.NicNames(nic=n.nic, network=n.network, port=n.port, lsp=n.lsp, host_netdev=n.host, peer_netdev=n.peer)
        for n in i.names.nics])
    out = pb.Instance(id=i.id, team=i.team, kind=_KINDS_PB[i.kind], state=_STATES_PB.get(i.state, pb.INSTANCE_STATE_UNSPECIFIED),
                      spec=spec_pb(i.spec), names=names, ready=i.ready, message=i.message, generation=i.generation,
                      created_unix=i.created_at, updated_unix=i.updated_at,
                      parts=[pb.PartStatus(part=_PARTS_PB[p.part], object=p.object, present=p.present,
                                           ready=p.ready, detail=p.detail) for p in i.parts])
    if i.volume is not None:
        out.volume.CopyFrom(volume_to_pb(i.volume))
    if i.scope is not None:
        out.scope.CopyFrom(cgroup_to_pb(i.scope))
    if i.runtime is not None:
        out.runtime.CopyFrom(runtime_pb(i.runtime))
    for n in i.nics:
        nic = out.nics.add(name=n.nic)
        if n.port is not None:
            nic.port.CopyFrom(port_pb(n.port))
    return out


def drift_pb(part: str, d: Drift) -> pb.Drift:
    return pb.Drift(part=part, object=d.object, reason=d.reason, detail=d.detail, desired=d.desired,
                    observed=d.observed, repairable=d.repairable)


def event_pb(e: Event) -> pb.WatchInstancesResponse:
    return pb.WatchInstancesResponse(id=e.id, team=e.team, state=_STATES_PB.get(e.state, pb.INSTANCE_STATE_UNSPECIFIED), snapshot=e.snapshot,
                                     nic=e.nic, nic_ready=e.nic_ready, ovn_installed=e.ovn_installed, up=e.up,
                                     message=e.message, ready=e.ready,
                                     drifts=[drift_pb(p, d) for p, d in e.drifts])


def orphan_pb(o: Orphan) -> pb.OrphanObject:
    return pb.OrphanObject(part=_PARTS_PB[o.plane], kind=o.kind, name=o.name, instance=o.instance, team=o.team,
                           port=o.network, removed=o.removed, error=o.error)


class InstanceServicer(pb_grpc.InstanceServiceServicer):
    def __init__(self, service: InstanceService) -> None:
        self._svc = service

    def PrepareInstance(self, request, context):
        spec = instance_spec(request.spec)
        v.int_range("ready_timeout_ms", request.ready_timeout_ms, 1, MAX_READY_TIMEOUT_MS)
        inst = self._svc.prepare(spec, wait=request.wait, deadline=deadline_of(context), wait_ready=request.wait_ready,
                                 ready_timeout=request.ready_timeout_ms / 1000 or None)
        return pb.PrepareInstanceResponse(instance=instance_pb(inst), changed=inst.changed)

    def ReleaseInstance(self, request, context):
        _instance_id("id", request.id)
        released = self._svc.release(request.id, wait=request.wait, deadline=deadline_of(context))
        return pb.ReleaseInstanceResponse(released=released)

    def ReleaseInstances(self, request, context):
        if bool(request.ids) == bool(request.team):
            raise InvalidArgument.for_field("ids", "give either ids or team")
        if len(request.ids) > MAX_BULK:
            raise InvalidArgument.for_field("ids", f"at most {MAX_BULK} ids per call")
        report = ErrorReport()
        for i, x in enumerate(request.ids):
            _check(report, _instance_id, f"ids[{i}]", x)
        if request.team:
            _check(report, v.cgroup_name, "team", request.team)
        report.raise_if_any()
        results = self._svc.release_many(list(request.ids) or None, request.team, deadline=deadline_of(context))
        return pb.ReleaseInstancesResponse(results=[
            pb.ReleaseResult(id=r.id, released=r.released, code=r.code, reason=r.reason, message=r.error)
            for r in results])

    def GetInstance(self, request, context):
        _instance_id("id", request.id)
        return pb.GetInstanceResponse(instance=instance_pb(self._svc.get(request.id)))

    def ListInstances(self, request, context):
        if request.team:
            v.cgroup_name("team", request.team)
        v.enum("state", request.state, [0, *_STATES])
        insts = self._svc.list(request.team, _STATES.get(request.state, ""))
        return pb.ListInstancesResponse(instances=[instance_pb(i) for i in insts])

    def WatchInstances(self, request, context):
        if request.team:
            v.cgroup_name("team", request.team)
        if request.id:
            _instance_id("id", request.id)
        snapshot, sub = self._svc.watch(request.team, request.id, snapshot=not request.skip_snapshot)
        try:
            for ev in snapshot:
                yield event_pb(ev)
            while context.is_active():
                change = sub.next_event(0.25)
                if change is not None:
                    yield event_pb(change)
        finally:
            sub.close()

    def Diff(self, request, context):
        if request.id:
            _instance_id("id", request.id)
        out = self._svc.diff(request.id, deadline_of(context))
        return pb.DiffResponse(instances=[pb.InstanceDiff(id=d.id, team=d.team, error=d.error,
                                                          drifts=[drift_pb(p, x) for p, x in d.drifts]) for d in out])

    def Repair(self, request, context):
        if request.id:
            _instance_id("id", request.id)
        out = self._svc.repair(request.id, wait=request.wait, deadline=deadline_of(context))
        return pb.RepairResponse(instances=[pb.InstanceRepair(
            id=r.id, team=r.team, planned=[drift_pb(p, x) for p, x in r.planned], repaired=list(r.repaired),
            remaining=[drift_pb(p, x) for p, x in r.remaining], error=r.error, reason=r.reason) for r in out])

    def GarbageCollect(self, request, context):
        if len(request.keep) > MAX_KEEP:
            raise InvalidArgument.for_field("keep", f"at most {MAX_KEEP} ids")
        out = self._svc.garbage_collect(dry_run=request.dry_run, keep=list(request.keep),
                                        deadline=deadline_of(context))
        return pb.GarbageCollectResponse(objects=[orphan_pb(o) for o in out])
