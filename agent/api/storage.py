"""StorageService servicer: validate every field -> call StorageService -> convert."""
from __future__ import annotations

import queue
import threading

import grpc

from agent import validation
from agent._proto.devcloud.agent.v1 import storage_pb2 as pb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc as pb_grpc
from agent.errors import ErrorReport, InvalidArgument
from agent.model.idmap import MODE_MOUNT, MODE_SHIFTED, IdMap
from agent.services.storage.service import DEFAULT_WAIT, StorageService
from agent.services.storage.model import (Image, ImageFormat, ImageMetadata, ImageState, ImportProgress, PoolStatus,
                                          Snapshot, Volume, VolumeKind, VolumeSpec)

_KIND_FROM_PB = {pb.VOLUME_KIND_ROOT: VolumeKind.ROOT, pb.VOLUME_KIND_FILESYSTEM: VolumeKind.FILESYSTEM,
                 pb.VOLUME_KIND_BLOCK: VolumeKind.BLOCK, pb.VOLUME_KIND_DISK_FILE: VolumeKind.DISK_FILE}
_KIND_TO_PB = {v: k for k, v in _KIND_FROM_PB.items()}
_STATE_TO_PB = {ImageState.READY: pb.IMAGE_STATE_READY, ImageState.PARKED: pb.IMAGE_STATE_PARKED,
                ImageState.ABSENT: pb.IMAGE_STATE_ABSENT}
_FORMAT_FROM_PB = {pb.IMAGE_FORMAT_ROOTFS_TARBALL: ImageFormat.ROOTFS_TARBALL,
                   pb.IMAGE_FORMAT_LXD_UNIFIED: ImageFormat.LXD_UNIFIED,
                   pb.IMAGE_FORMAT_LXD_SPLIT: ImageFormat.LXD_SPLIT}
_FORMAT_TO_PB = {v: k for k, v in _FORMAT_FROM_PB.items()}
IDMAP_MODE_TO_PB: dict[str, pb.IdmapMode] = {MODE_SHIFTED: pb.IDMAP_MODE_SHIFTED,
                                            MODE_MOUNT: pb.IDMAP_MODE_MOUNT}
_DONE = object()


def idmap_to_pb(m: IdMap | None) -> pb.IdMap | None:
    """The proto form of a map (None stays None: the field is left unset)."""
    return None if m is None else pb.IdMap(host_uid=m.host_uid, host_gid=m.host_gid, count=m.count)


def idmap_from_pb(m: pb.IdMap, field: str, report: ErrorReport) -> IdMap:
    """A map from its proto form; every problem added to `report` under `field`."""
    out = IdMap(m.host_uid, m.host_gid, m.count)
    for f, why in out.problems():
        report.add(f"{field}.{f}", why)
    return out


def _metadata_to_pb(m: ImageMetadata) -> pb.ImageMetadata:
    return pb.ImageMetadata(architecture=m.architecture, creation_unix=m.creation_unix, expiry_unix=m.expiry_unix,
                            os=m.prop("os"), release=m.prop("release"), variant=m.prop("variant"),
                            description=m.prop("description"), properties=dict(m.properties),
                            templates=list(m.templates))


def image_to_pb(i: Image) -> pb.Image:
    out = pb.Image(image_id=i.image_id, dataset=i.dataset, state=_STATE_TO_PB[i.state], sha256=i.sha256,
                   base_snapshot=i.base_snapshot, mountpoint=i.mountpoint, used_bytes=i.used_bytes,
                   referenced_bytes=i.referenced_bytes, clones=i.clones, created_unix=i.created_unix,
                   format=_FORMAT_TO_PB[i.format], rootfs=i.rootfs,
                   variants=[pb.ImageVariant(idmap=idmap_to_pb(v.idmap), dataset=v.dataset,
                                             base_snapshot=v.base_snapshot, clones=v.clones) for v in i.variants])
    if i.metadata is not None:
        out.metadata.CopyFrom(_metadata_to_pb(i.metadata))
    return out


def snapshot_to_pb(s: Snapshot) -> pb.Snapshot:
    return pb.Snapshot(name=s.name, used_bytes=s.used_bytes, referenced_bytes=s.referenced_bytes,
                       created_unix=s.created_unix)


def volume_to_pb(v: Volume) -> pb.Volume:
    return pb.Volume(team=v.team, name=v.name, kind=_KIND_TO_PB[v.kind], dataset=v.dataset, image_id=v.image_id,
                     instance=v.instance, mountpoint=v.mountpoint, mounted=v.mounted, device=v.device,
                     refquota_bytes=v.refquota_bytes, quota_bytes=v.quota_bytes,
                     reservation_bytes=v.reservation_bytes, size_bytes=v.size_bytes, used_bytes=v.used_bytes,
                     available_bytes=v.available_bytes, referenced_bytes=v.referenced_bytes, origin=v.origin,
                     created_unix=v.created_unix, snapshots=[snapshot_to_pb(s) for s in v.snapshots],
                     rootfs=v.rootfs, idmap=idmap_to_pb(v.idmap),
                     idmap_mode=IDMAP_MODE_TO_PB.get(v.idmap_mode, pb.IDMAP_MODE_UNSPECIFIED),
                     disk_file=v.disk_file)


def pool_to_pb(p: PoolStatus) -> pb.Pool:
    return pb.Pool(name=p.name, health=p.health, size_bytes=p.size_bytes, allocated_bytes=p.allocated_bytes,
                   free_bytes=p.free_bytes, parent=p.parent, parent_used_bytes=p.parent_used_bytes,
                   parent_available_bytes=p.parent_available_bytes, backend=p.backend, flavor=p.flavor,
                   capabilities=list(p.capabilities), embedded=p.embedded)


def _size(report: ErrorReport, field: str, value: int) -> int:
    if value > (1 << 63) - 1:
        report.add(field, f"{value} is out of range")
    return value


def spec_from_pb(s: pb.VolumeSpec, prefix: str = "spec") -> VolumeSpec:
    report = ErrorReport()
    for field, fn in (("team", validation.name), ("name", validation.name)):
        try:
            fn(f"{prefix}.{field}", getattr(s, field))
        except InvalidArgument as exc:
            report.violations.extend(exc.violations)
    if s.kind not in _KIND_FROM_PB:
        report.add(f"{prefix}.kind", "is required: ROOT, FILESYSTEM, BLOCK or DISK_FILE" if s.kind == 0
                   else f"unknown value {s.kind}")
    kind = _KIND_FROM_PB.get(s.kind)
    if kind == VolumeKind.ROOT:
        try:
            validation.image_id(f"{prefix}.image_id", s.image_id)
        except InvalidArgument as exc:
            report.violations.extend(exc.violations)
    elif s.image_id:
        report.add(f"{prefix}.image_id", "is only allowed for ROOT volumes")
    try:
        validation.optional_name(f"{prefix}.instance", s.instance)
    except InvalidArgument as exc:
        report.violations.extend(exc.violations)
    if kind == VolumeKind.BLOCK:
        if not s.size_bytes:
            report.add(f"{prefix}.size_bytes", "is required for BLOCK volumes")
        if s.refquota_bytes:
            report.add(f"{prefix}.refquota_bytes", "does not apply to BLOCK volumes (use size_bytes)")
    elif kind == VolumeKind.DISK_FILE:
        if not s.size_bytes:
            report.add(f"{prefix}.size_bytes", "is required for DISK_FILE volumes")
    elif s.size_bytes:
        report.add(f"{prefix}.size_bytes", "only applies to BLOCK and DISK_FILE volumes (use refquota_bytes)")
    idmap = None
    if s.HasField("idmap"):
        if kind != VolumeKind.ROOT:
            report.add(f"{prefix}.idmap", "only ROOT volumes take a uid/gid map")
        idmap = idmap_from_pb(s.idmap, f"{prefix}.idmap", report)
    for f in ("refquota_bytes", "quota_bytes", "reservation_bytes", "size_bytes"):
        _size(report, f"{prefix}.{f}", getattr(s, f))
    report.raise_if_any()
    assert kind is not None                 # an unknown kind is a violation reported above
    return VolumeSpec(team=s.team, name=s.name, kind=kind, image_id=s.image_id, instance=s.instance,
                      refquota_bytes=s.refquota_bytes, quota_bytes=s.quota_bytes,
                      reservation_bytes=s.reservation_bytes, size_bytes=s.size_bytes, idmap=idmap)


def _image_format(h: pb.ImageHeader, local_path: str) -> ImageFormat | None:
    """The header's format (None: detect), its split fields checked against it."""
    validation.enum("header.format", h.format, [0, *_FORMAT_FROM_PB])
    fmt = _FORMAT_FROM_PB.get(h.format)
    split = fmt == ImageFormat.LXD_SPLIT or bool(h.metadata_size_bytes or h.rootfs_local_path)
    if fmt is not None and fmt != ImageFormat.LXD_SPLIT and (h.metadata_size_bytes or h.rootfs_local_path):
        raise InvalidArgument.for_field("header.format", "metadata_size_bytes and rootfs_local_path are for "
                                                         "LXD_SPLIT images")
    if h.rootfs_local_path:
        validation.absolute_path("header.rootfs_local_path", h.rootfs_local_path)
        if not local_path:
            raise InvalidArgument.for_field("header.local_path", "a split image from files on the node needs the "
                                                                 "metadata tarball here too")
        if h.metadata_size_bytes:
            raise InvalidArgument.for_field("header.metadata_size_bytes", "is for a split image sent as chunks")
    elif split:
        if local_path:
            raise InvalidArgument.for_field("header.rootfs_local_path", "a split image from files on the node needs "
                                                                        "its rootfs file here")
        if not h.metadata_size_bytes:
            raise InvalidArgument.for_field("header.metadata_size_bytes", "a split image sent as chunks needs the "
                                                                          "metadata tarball's length")
        if h.size_bytes and h.metadata_size_bytes >= h.size_bytes:
            raise InvalidArgument.for_field("header.metadata_size_bytes", "must be smaller than size_bytes (the "
                                                                          "rootfs file follows)")
    return ImageFormat.LXD_SPLIT if split else fmt


def _team_name(request) -> tuple[str, str]:
    report = ErrorReport()
    for field in ("team", "name"):
        try:
            validation.name(field, getattr(request, field))
        except InvalidArgument as exc:
            report.violations.extend(exc.violations)
    report.raise_if_any()
    return request.team, request.name


def _wait(context) -> float:
    """How long a volume operation may wait for one in flight: the call deadline, at most DEFAULT_WAIT."""
    remaining = context.time_remaining()
    return DEFAULT_WAIT if remaining is None else max(0.0, min(DEFAULT_WAIT, remaining - 0.5))


class StorageServicer(pb_grpc.StorageServiceServicer):
    def __init__(self, service: StorageService) -> None:
        self._svc = service

    # -- images ----------------------------------------------------------------

    def EnsureImage(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("msg") != "header":
            raise InvalidArgument.for_field("header", "the first message must be the header")
        h = first.header
        image_id = validation.image_id("header.image_id", h.image_id)
        local_path = validation.absolute_path("header.local_path", h.local_path) if h.local_path else ""
        sha = validation.sha256_hex("header.sha256", h.sha256, required=not local_path)
        if h.size_bytes > (1 << 63) - 1:
            raise InvalidArgument.for_field("header.size_bytes", "is out of range")
        fmt = _image_format(h, local_path)

        def chunks():
            for msg in request_iterator:
                if msg.WhichOneof("msg") != "chunk":
                    raise InvalidArgument.for_field("chunk", "only chunk messages may follow the header")
                yield msg.chunk

        # The import runs in a worker thread so progress can be streamed while it reads.
        progress: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work():
            try:
                outcome["result"] = self._svc.ensure_image(
                    image_id, sha, None if local_path else chunks(), local_path=local_path,
                    size_bytes=h.size_bytes, progress=progress.put, fmt=fmt,
                    metadata_size=h.metadata_size_bytes,
                    rootfs_local_path=h.rootfs_local_path)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the RPC thread
                outcome["error"] = exc
            finally:
                progress.put(_DONE)

        worker = threading.Thread(target=work, name=f"import-{image_id}", daemon=True)
        worker.start()
        while (item := progress.get()) is not _DONE:
            p: ImportProgress = item
            yield pb.EnsureImageResponse(progress=pb.ImageImportProgress(
                bytes_received=p.bytes_received, bytes_extracted=p.bytes_extracted, entries=p.entries,
                total_bytes=p.total_bytes))
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        image, changed = outcome["result"]
        yield pb.EnsureImageResponse(result=pb.EnsureImageResult(image=image_to_pb(image), changed=changed))

    def GetImage(self, request, context):
        return pb.GetImageResponse(image=image_to_pb(self._svc.get_image(
            validation.image_id("image_id", request.image_id))))

    def ListImages(self, request, context):
        return pb.ListImagesResponse(images=[image_to_pb(i) for i in
                                             self._svc.list_images(include_parked=request.include_parked)])

    def DeleteImage(self, request, context):
        state = self._svc.delete_image(validation.image_id("image_id", request.image_id))
        return pb.DeleteImageResponse(state=_STATE_TO_PB[state])

    # -- volumes ------------------------------------------------------------------

    def EnsureVolume(self, request, context):
        spec = spec_from_pb(request.spec)
        volume, changed = self._svc.ensure_volume(spec, wait_timeout=_wait(context))
        return pb.EnsureVolumeResponse(volume=volume_to_pb(volume), changed=changed)

    def GetVolume(self, request, context):
        return pb.GetVolumeResponse(volume=volume_to_pb(self._svc.get_volume(*_team_name(request))))

    def ListVolumes(self, request, context):
        team = validation.optional_name("team", request.team)
        instance = validation.optional_name("instance", request.instance)
        return pb.ListVolumesResponse(volumes=[volume_to_pb(v) for v in
                                               self._svc.list_volumes(team=team, instance=instance)])

    def ResizeVolume(self, request, context):
        team, name = _team_name(request)
        report = ErrorReport()
        args = {}
        for f in ("refquota_bytes", "quota_bytes", "reservation_bytes", "size_bytes"):
            if request.HasField(f):
                args[f] = _size(report, f, getattr(request, f))
        report.raise_if_any()
        if not args:
            raise InvalidArgument.for_field("refquota_bytes", "set at least one of refquota_bytes, quota_bytes, "
                                                              "reservation_bytes, size_bytes")
        volume, changed = self._svc.resize_volume(team, name, wait_timeout=_wait(context), **args)
        return pb.ResizeVolumeResponse(volume=volume_to_pb(volume), changed=changed)

    def DeleteVolume(self, request, context):
        team, name = _team_name(request)
        return pb.DeleteVolumeResponse(deleted=self._svc.delete_volume(team, name, wait_timeout=_wait(context)))

    def DeleteVolumes(self, request, context):
        team = validation.name("team", request.team)
        if request.all and request.names:
            raise InvalidArgument.for_field("names", "give names or all, not both")
        if not request.all and not request.names:
            raise InvalidArgument.for_field("names", "name the volumes to delete, or set all")
        if len(request.names) > 10000:
            raise InvalidArgument.for_field("names", "at most 10000 names per call")
        names = None if request.all else [validation.name(f"names[{i}]", n) for i, n in enumerate(request.names)]
        results = self._svc.delete_volumes(team, names)
        return pb.DeleteVolumesResponse(results=[
            pb.VolumeDeleteResult(name=r.name, deleted=r.deleted, error_reason=r.reason, error_message=r.error)
            for r in results])

    # -- snapshots ------------------------------------------------------------------

    def SnapshotVolume(self, request, context):
        team, name = _team_name(request)
        snap, changed = self._svc.snapshot_volume(team, name, validation.name("snapshot", request.snapshot))
        return pb.SnapshotVolumeResponse(snapshot=snapshot_to_pb(snap), changed=changed)

    def RollbackVolume(self, request, context):
        team, name = _team_name(request)
        volume = self._svc.rollback_volume(team, name, validation.name("snapshot", request.snapshot),
                                           destroy_newer=request.destroy_newer)
        return pb.RollbackVolumeResponse(volume=volume_to_pb(volume))

    def DeleteSnapshot(self, request, context):
        team, name = _team_name(request)
        return pb.DeleteSnapshotResponse(deleted=self._svc.delete_snapshot(
            team, name, validation.name("snapshot", request.snapshot)))

    # -- pool --------------------------------------------------------------------------

    def GetPool(self, request, context):
        return pb.GetPoolResponse(pool=pool_to_pb(self._svc.pool_status()))


def register(server: grpc.Server, service: StorageService) -> None:
    pb_grpc.add_StorageServiceServicer_to_server(StorageServicer(service), server)
