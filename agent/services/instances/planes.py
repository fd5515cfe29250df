"""The instance plane's view of the three planes it composes: how an instance
spec maps to each plane's spec, names, ensure/delete/observe/drift per part,
and which plane failed (errors re-raised with the part named).

Only the plane services are called (in-process), never their drivers.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from agent.errors import AgentError, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from agent.model.compute import CgroupInfo
from agent.services.compute import ComputeService
from agent.services.drift import Drift
from agent.services.host import HostService, Profile
from agent.services.instances.model import (KIND_VM, PART_COMPUTE, PART_NETWORK, PART_STORAGE, PLACE_AGENT,
                                           PLACE_HOST, PLACE_NETNS, InstanceNames, InstanceSpec, NicNames, NicSpec,
                                           NicState, PartStatus)
from agent.services.network.service import NetworkService
from agent.services.network.model import KIND_TAP, KIND_VETH, Port, PortSpec
from agent.services.storage.service import StorageService
from agent.services.storage.model import VolumeKind, VolumeSpec, Volume

Checkpoint = Callable[[str], None] | None

_STORAGE_FIELDS = {"spec.name": "spec.id", "spec.image_id": "spec.root.image_id", "spec.idmap": "spec.idmap",
                   "spec.refquota_bytes": "spec.root.refquota_bytes", "spec.quota_bytes": "spec.root.quota_bytes",
                   "spec.reservation_bytes": "spec.root.reservation_bytes",
                   "spec.size_bytes": "spec.root.size_bytes", "spec.team": "spec.team"}


def tagged(exc: AgentError, part: str, obj: str, fields: Callable[[str], str] = lambda f: f) -> AgentError:
    """The same error class and reason, its message prefixed with the failed part and its
    metadata naming it (part, object); field violations renamed to the instance spec's paths."""
    meta = {**exc.metadata, "part": part, "object": obj}
    msg = f"{part} ({obj}): {exc.message}"
    if isinstance(exc, InvalidArgument):
        out: AgentError = InvalidArgument(msg, violations=[FieldViolation(fields(v.field), v.description)
                                                            for v in exc.violations], reason=exc.reason,
                                          metadata=meta)
    else:
        out = type(exc)(msg, reason=exc.reason, metadata=meta)
    return out


@contextmanager
def part(name: str, obj: str, fields: Callable[[str], str] = lambda f: f) -> Iterator[None]:
    """Re-raise AgentErrors of the block naming the part."""
    try:
        yield
    except AgentError as exc:
        if "part" in exc.metadata:
            raise
        raise tagged(exc, name, obj, fields) from exc


def _storage_fields(f: str) -> str:
    return _STORAGE_FIELDS.get(f, f)


def _nic_fields(i: int) -> Callable[[str], str]:
    def fields(f: str) -> str:
        if f == "spec.instance":
            return "spec.id"
        return f"spec.nics[{i}]." + f[len("spec."):] if f.startswith("spec.") else f
    return fields


def _limit_fields(f: str) -> str:
    if f.startswith("limits"):
        return "spec." + f
    return {"instance": "spec.id", "team": "spec.team"}.get(f, f)


class PlaneSet:
    """The storage, network and compute services as one instance sees them."""

    def __init__(self, storage: StorageService, network: NetworkService, compute: ComputeService,
                 host: HostService | None = None) -> None:
        self.storage, self.network, self.compute, self.host = storage, network, compute, host

    # -- specs and names (pure) ------------------------------------------------------
    def volume_spec(self, spec: InstanceSpec) -> VolumeSpec:
        """The root volume's spec (a VM: a BLOCK zvol, or a DISK_FILE where this node has no
        zvols; a container: a clone of its image, with its uid/gid map). Pure (one capability
        lookup)."""
        r = spec.root
        if spec.kind == KIND_VM:
            kind = VolumeKind.BLOCK if self.storage.supports("zvol") else VolumeKind.DISK_FILE
            return VolumeSpec(team=spec.team, name=spec.id, kind=kind, instance=spec.id,
                              quota_bytes=r.quota_bytes, reservation_bytes=r.reservation_bytes,
                              size_bytes=r.size_bytes)
        return VolumeSpec(team=spec.team, name=spec.id, kind=VolumeKind.ROOT, image_id=r.image_id, instance=spec.id,
                          refquota_bytes=r.refquota_bytes, quota_bytes=r.quota_bytes,
                          reservation_bytes=r.reservation_bytes, idmap=spec.idmap)

    @staticmethod
    def placement(spec: InstanceSpec, nic: NicSpec) -> str:
        """Where the NIC's runtime-side netdev goes: PLACE_NETNS (peer_netns given), PLACE_HOST,
        PLACE_AGENT (the default; a VM's tap is always there). Pure."""
        if spec.kind == KIND_VM:
            return PLACE_AGENT
        return nic.peer_placement or (PLACE_NETNS if nic.peer_netns else PLACE_AGENT)

    def port_spec(self, spec: InstanceSpec, nic: NicSpec) -> PortSpec:
        """The NIC's port spec (a VM: a tap, multiqueue when asked; a container: a veth whose
        instance end goes where its placement says: into peer_netns, configured; into the
        host's namespace under its hashed name (or peer_name), not configured; or left next to
        the host end). Pure (the host namespace's path is looked up)."""
        vm = spec.kind == KIND_VM
        where = self.placement(spec, nic)
        netns, name, configure = "", "", True
        if where == PLACE_NETNS:
            netns, name = nic.peer_netns, nic.peer_name or nic.name
        elif where == PLACE_HOST:
            netns = self.network.netns_paths()[1]
            name, configure = nic.peer_name or self.network.port_names(nic.network, spec.port_name(nic)).peer, False
        return PortSpec(network=nic.network, name=spec.port_name(nic), instance=spec.id,
                        kind=KIND_TAP if vm else KIND_VETH, mac=nic.mac, ip4=nic.ip4, ip6=nic.ip6, mtu=nic.mtu,
                        peer_netns=netns, peer_name=name, multiqueue=vm and nic.queues > 1, peer_configure=configure)

    def names_for(self, spec: InstanceSpec) -> InstanceNames:
        """Every object name Prepare will create, before anything exists. Raises InvalidArgument
        for names a plane refuses (too long for ZFS, not a cgroup name)."""
        with part(PART_STORAGE, spec.id, _storage_fields):
            dataset = self.storage.volume_dataset(spec.team, spec.id)
            self.storage.check_dataset_name(dataset, "spec.name")
        with part(PART_COMPUTE, spec.id, _limit_fields):
            scope = self.compute.scope_path(spec.team, spec.id)
        nics = []
        for n in spec.nics:
            ps = self.port_spec(spec, n)
            pn = self.network.port_names(n.network, ps.name)
            peer = "" if ps.kind == KIND_TAP else (ps.peer_name or "eth0") if ps.peer_netns else pn.peer
            nics.append(NicNames(n.name, n.network, ps.name, pn.lsp, pn.host, peer))
        return InstanceNames(dataset=dataset, volume_team=spec.team, volume_name=spec.id, scope=scope,
                             nics=tuple(nics))

    # -- preconditions of the kind ---------------------------------------------------------
    def kind_problems(self, spec: InstanceSpec) -> list[str]:
        """What this node lacks for `spec` (empty: fine): a VM needs usable KVM and /dev/net/tun
        (its disk is a zvol, or a raw disk file where there are no zvols); a Kubernetes node
        container needs every KUBERNETES_IN_LXD preflight item."""
        problems = []
        if spec.kind == KIND_VM:
            if self.host is not None:
                for c in self.host.preflight(Profile.VM_HOST).checks:
                    if c.id in ("kvm.device", "dev.tun") and c.status == "missing":
                        problems.append(f"{c.id}: {c.reason} (remedy: {c.remedy})")
        if spec.kubernetes_node and self.host is not None:
            for c in self.host.preflight(Profile.KUBERNETES_IN_LXD).checks:
                if c.status == "missing":
                    problems.append(f"{c.id}: {c.reason}")
        return problems

    # -- ensure (each converges; returns (observed, changed)) --------------------------------
    def ensure_storage(self, spec: InstanceSpec, wait_timeout: float | None) -> tuple[Volume, bool]:
        """Create or converge the root volume; (observed, changed). Idempotent. Raises the
        storage plane's errors with the part named (AlreadyExists for an immutable field,
        FailedPrecondition IMAGE_NOT_FOUND / NOT_OURS / NOT_SUPPORTED, DeadlineExceeded when
        another operation holds the volume past `wait_timeout`, InvalidArgument on the
        instance spec's field paths)."""
        with part(PART_STORAGE, spec.id, _storage_fields):
            volume, changed = self.storage.ensure_volume(self.volume_spec(spec), wait_timeout=wait_timeout)
            blocked = self.storage.rootfs_unreachable(volume)
            if blocked:
                raise FailedPrecondition(
                    f"the rootfs {volume.rootfs} cannot be reached by the instance's root (host uid "
                    f"{volume.idmap.host_uid if volume.idmap else '?'}): {blocked} is in the way; give it o+x "
                    "(or put the pool's mountpoint elsewhere)", reason="ROOTFS_NOT_TRAVERSABLE",
                    metadata={"dir": blocked.split(" (", 1)[0]})
            return volume, changed

    def ensure_nic(self, spec: InstanceSpec, i: int, deadline: float | None, *, wait_ready: bool,
                   ready_timeout: float | None, checkpoint: Checkpoint = None) -> Port:
        """Create or converge the port of NIC `i` (changed=False when in sync). Raises the
        network plane's errors with the part named (NotFound network missing, AlreadyExists
        address in use, ResourceExhausted subnet full, FailedPrecondition NOT_OURS,
        Unavailable; field violations on spec.nics[i])."""
        nic = spec.nics[i]
        with part(PART_NETWORK, nic.name, _nic_fields(i)):
            return self.network.ensure_port(self.port_spec(spec, nic), deadline, wait_ready=wait_ready,
                                            ready_timeout=ready_timeout, checkpoint=checkpoint)

    def ensure_scope(self, spec: InstanceSpec, checkpoint: Checkpoint = None) -> tuple[CgroupInfo, bool]:
        """Create the scope in the team's slice or converge its limits; (observed, changed).
        Idempotent. Raises the compute plane's errors with the part named (FailedPrecondition
        SLICE_NOT_FOUND / CONTROLLER_UNAVAILABLE / NOT_OURS, AlreadyExists instance in another
        team, Aborted, InvalidArgument on spec.limits)."""
        with part(PART_COMPUTE, spec.id, _limit_fields):
            self.compute.check_limits(spec.limits, "spec.limits")
            r = self.compute.ensure_scope(spec.team, spec.id, spec.limits, checkpoint)
            return r.cgroup, r.changed

    # -- delete by recorded names (objects without our mark are left alone) ----------------
    def delete_storage(self, names: InstanceNames, wait_timeout: float | None = None) -> bool:
        """Destroy the recorded root volume; False when absent (OK). Raises with the part
        named: FailedPrecondition NOT_OURS (left alone), DATASET_BUSY, HAS_DEPENDENTS."""
        with part(PART_STORAGE, names.dataset):
            return self.storage.delete_volume(names.volume_team, names.volume_name, wait_timeout=wait_timeout)

    def delete_nics(self, ports: list[tuple[str, str]], deadline: float | None,
                    checkpoint: Checkpoint = None) -> int:
        """Delete the (network, port) pairs in bulk; absent ones are skipped (OK), objects
        without our mark untouched. Returns how many had something deleted. Raises with the
        part named: FailedPrecondition NOT_OURS / OTHER_NODE (nothing deleted), Unavailable."""
        with part(PART_NETWORK, ",".join(p for _, p in ports[:3]) + ("..." if len(ports) > 3 else "")):
            return self.network.delete_ports(ports, deadline, checkpoint=checkpoint)

    def delete_scope(self, team: str, instance: str, deadline: float | None) -> bool:
        """Kill what runs in the scope and remove it; False when absent (OK). Raises with
        the part named: FailedPrecondition (NOT_OURS: left alone), DeadlineExceeded, Aborted."""
        with part(PART_COMPUTE, instance):
            return self.compute.delete_scope(team, instance, kill=True, deadline=deadline)

    # -- observe ------------------------------------------------------------------------------
    def observe_storage(self, names: InstanceNames) -> Volume | None:
        """The root volume, None when absent or not ours."""
        try:
            return self.storage.get_volume(names.volume_team, names.volume_name)
        except NotFound:
            return None

    def observe_nic(self, n: NicNames) -> Port | None:
        """The NIC's port, None when absent. Raises Unavailable (OVSDB down)."""
        try:
            port = self.network.get_port(n.network, n.port)
        except NotFound:
            return None
        return port

    def observe_scope(self, team: str, instance: str) -> CgroupInfo | None:
        """The scope, None when absent or not ours."""
        try:
            return self.compute.get(team, instance)
        except NotFound:
            return None
        except FailedPrecondition as exc:
            if exc.reason == "NOT_OURS":
                return None
            raise

    @staticmethod
    def parts(names: InstanceNames, volume: Volume | None, nics: list[NicState],
              scope: CgroupInfo | None) -> list[PartStatus]:
        """Readiness per part from observed objects."""
        out = []
        if volume is None:
            out.append(PartStatus(PART_STORAGE, names.dataset, False, False, "volume missing"))
        else:
            ready = volume.mounted if volume.kind != VolumeKind.BLOCK else bool(volume.device)
            out.append(PartStatus(PART_STORAGE, names.dataset, True, ready, "" if ready else "not mounted"))
        for st in nics:
            p = st.port
            if p is None or not p.host_netdev:
                out.append(PartStatus(PART_NETWORK, st.nic, False, False, "port missing"))
            else:
                s = p.status
                out.append(PartStatus(PART_NETWORK, st.nic, True, s.ready,
                                      "" if s.ready else "waiting for " + ", ".join(s.missing)))
        out.append(PartStatus(PART_COMPUTE, names.scope, scope is not None, scope is not None,
                              "" if scope is not None else "scope missing"))
        return out

    # -- drift -----------------------------------------------------------------------------------
    def drift(self, spec: InstanceSpec, deadline: float | None) -> dict[str, list[Drift]]:
        """Every difference between the recorded spec (addresses pinned to what was allocated)
        and the live objects, by part key ("storage", "network:<nic>", "compute"); parts in
        sync are left out. Read-only."""
        out: dict[str, list[Drift]] = {}
        with part(PART_STORAGE, spec.id):
            found = self.storage.volume_drift(self.volume_spec(spec))
        if found:
            out[PART_STORAGE] = found
        for i, n in enumerate(spec.nics):
            with part(PART_NETWORK, n.name):
                found = self.network.port_drift(self.port_spec(spec, n), deadline)
            if found:
                out[f"{PART_NETWORK}:{n.name}"] = found
        with part(PART_COMPUTE, spec.id):
            found = self.compute.scope_drift(spec.team, spec.id, spec.limits)
        if found:
            out[PART_COMPUTE] = found
        return out
