"""devcloudctl storage ...: images, volumes, snapshots, pool."""
from __future__ import annotations

import hashlib
import os
import sys

from agent._proto.devcloud.agent.v1 import storage_pb2 as pb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc as pb_grpc
from agent.cli import output

_KINDS = {"root": pb.VOLUME_KIND_ROOT, "filesystem": pb.VOLUME_KIND_FILESYSTEM, "block": pb.VOLUME_KIND_BLOCK,
          "disk-file": pb.VOLUME_KIND_DISK_FILE}
_FORMATS = {"auto": pb.IMAGE_FORMAT_UNSPECIFIED, "rootfs": pb.IMAGE_FORMAT_ROOTFS_TARBALL,
            "lxd-unified": pb.IMAGE_FORMAT_LXD_UNIFIED, "lxd-split": pb.IMAGE_FORMAT_LXD_SPLIT}
_FORMAT_NAMES = {v: k for k, v in _FORMATS.items()}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_STATES = {pb.IMAGE_STATE_READY: "ready", pb.IMAGE_STATE_PARKED: "parked", pb.IMAGE_STATE_ABSENT: "absent"}
CHUNK = 1 << 20


def _stub(ctx):
    return pb_grpc.StorageServiceStub(ctx.channel)


def _print_volumes(vols) -> None:
    output.table(["TEAM", "NAME", "KIND", "IMAGE", "REFQUOTA", "USED", "AVAIL", "MOUNTPOINT"],
                 [(v.team, v.name, _KIND_NAMES.get(v.kind, "?"), v.image_id or "-",
                   output.human_bytes(v.refquota_bytes) if v.refquota_bytes else "-", output.human_bytes(v.used_bytes),
                   output.human_bytes(v.available_bytes), v.mountpoint or v.device) for v in vols])


def _print_images(images) -> None:
    output.table(["IMAGE", "STATE", "CLONES", "REFERENCED", "SHA256"],
                 [(i.image_id, _STATES.get(i.state, "?"), i.clones, output.human_bytes(i.referenced_bytes),
                   i.sha256[:16]) for i in images])


def _image_import(ctx, args):
    header = pb.ImageHeader(image_id=args.image_id, format=_FORMATS[args.format])
    files = [args.tarball] + ([args.rootfs] if args.rootfs else [])     # a split image: metadata, then rootfs
    if args.on_node:
        header.local_path = os.path.abspath(args.tarball)
        header.rootfs_local_path = os.path.abspath(args.rootfs) if args.rootfs else ""
        header.sha256 = args.sha256 or ""
        requests = iter([pb.EnsureImageRequest(header=header)])
    else:
        size = sum(os.path.getsize(f) for f in files)
        sha = args.sha256
        if not sha:
            h = hashlib.sha256()
            for name in files:
                with open(name, "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
            sha = h.hexdigest()
        header.sha256, header.size_bytes = sha, size
        if args.rootfs:
            header.metadata_size_bytes = os.path.getsize(args.tarball)

        def gen():
            yield pb.EnsureImageRequest(header=header)
            for name in files:
                with open(name, "rb") as f:
                    while chunk := f.read(CHUNK):
                        yield pb.EnsureImageRequest(chunk=chunk)
        requests = gen()
    result = None
    for msg in _stub(ctx).EnsureImage(requests, timeout=args.import_timeout):
        if msg.WhichOneof("msg") == "progress" and not ctx.json and sys.stderr.isatty():
            p = msg.progress
            total = f"/{output.human_bytes(p.total_bytes)}" if p.total_bytes else ""
            print(f"\r  received {output.human_bytes(p.bytes_received)}{total}, extracted "
                  f"{output.human_bytes(p.bytes_extracted)} in {p.entries} entries", end="", file=sys.stderr)
        elif msg.WhichOneof("msg") == "result":
            result = msg.result
    if sys.stderr.isatty() and not ctx.json:
        print(file=sys.stderr)
    if result is None:
        raise SystemExit("devcloudctl: the agent ended the import without a result")
    if ctx.json:
        output.print_json(result)
    else:
        print(f"image {result.image.image_id}: {'imported' if result.changed else 'already present'} "
              f"({result.image.base_snapshot})")


def _image_get(ctx, args):
    r = _stub(ctx).GetImage(pb.GetImageRequest(image_id=args.image_id), timeout=ctx.timeout)
    if ctx.json:
        return output.print_json(r)
    i, m = r.image, r.image.metadata
    rows = [("image", i.image_id), ("state", _STATES.get(i.state, "?")), ("format", _FORMAT_NAMES.get(i.format, "?")),
            ("dataset", i.dataset), ("rootfs", i.rootfs), ("sha256", i.sha256), ("clones", i.clones)]
    if i.HasField("metadata"):
        rows += [("architecture", m.architecture), ("os", m.os), ("release", m.release), ("variant", m.variant),
                 ("description", m.description), ("created", m.creation_unix)]
    output.kv(rows)
    if i.variants:
        print()
        output.table(["variant", "uid", "gid", "count", "clones"],
                     [(v.dataset, v.idmap.host_uid, v.idmap.host_gid, v.idmap.count, v.clones) for v in i.variants])


def _image_list(ctx, args):
    r = _stub(ctx).ListImages(pb.ListImagesRequest(include_parked=args.all), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_images(r.images)


def _image_delete(ctx, args):
    r = _stub(ctx).DeleteImage(pb.DeleteImageRequest(image_id=args.image_id), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print(f"image {args.image_id}: {_STATES.get(r.state, '?')}")


def _vol_ensure(ctx, args):
    spec = pb.VolumeSpec(team=args.team, name=args.name, kind=_KINDS[args.kind], image_id=args.image or "",
                         instance=args.instance or "", refquota_bytes=output.size_arg(args.refquota),
                         quota_bytes=output.size_arg(args.quota), reservation_bytes=output.size_arg(args.reservation),
                         size_bytes=output.size_arg(args.size))
    r = _stub(ctx).EnsureVolume(pb.EnsureVolumeRequest(spec=spec), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
    else:
        _print_volumes([r.volume])
        print(f"changed: {output.yes(r.changed)}")


def _vol_list(ctx, args):
    r = _stub(ctx).ListVolumes(pb.ListVolumesRequest(team=args.team or "", instance=args.instance or ""),
                               timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_volumes(r.volumes)


def _vol_get(ctx, args):
    r = _stub(ctx).GetVolume(pb.GetVolumeRequest(team=args.team, name=args.name), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
        return
    _print_volumes([r.volume])
    if r.volume.snapshots:
        output.table(["SNAPSHOT", "USED", "REFERENCED"], [(s.name, output.human_bytes(s.used_bytes),
                                                          output.human_bytes(s.referenced_bytes))
                                                         for s in r.volume.snapshots])


def _vol_resize(ctx, args):
    req = pb.ResizeVolumeRequest(team=args.team, name=args.name)
    for field, value in (("refquota_bytes", args.refquota), ("quota_bytes", args.quota),
                         ("reservation_bytes", args.reservation), ("size_bytes", args.size)):
        if value is not None:
            setattr(req, field, output.size_arg(value))
    r = _stub(ctx).ResizeVolume(req, timeout=ctx.timeout)
    output.print_json(r) if ctx.json else _print_volumes([r.volume])


def _vol_delete(ctx, args):
    stub = _stub(ctx)
    if args.all or len(args.names) > 1:
        r = stub.DeleteVolumes(pb.DeleteVolumesRequest(team=args.team, names=[] if args.all else args.names,
                                                       all=args.all), timeout=ctx.timeout)
        if ctx.json:
            output.print_json(r)
        else:
            output.table(["NAME", "DELETED", "ERROR"], [(x.name, output.yes(x.deleted),
                                                        f"{x.error_reason}: {x.error_message}" if x.error_reason
                                                        else "") for x in r.results])
        return 1 if any(x.error_reason for x in r.results) else 0
    if not args.names:
        raise SystemExit("devcloudctl: name a volume or pass --all")
    r = stub.DeleteVolume(pb.DeleteVolumeRequest(team=args.team, name=args.names[0]), timeout=ctx.timeout)
    output.print_json(r) if ctx.json else print(f"{args.team}/{args.names[0]}: "
                                                f"{'deleted' if r.deleted else 'absent'}")


def _snap(ctx, args):
    stub = _stub(ctx)
    if args.snap_command == "create":
        r = stub.SnapshotVolume(pb.SnapshotVolumeRequest(team=args.team, name=args.name, snapshot=args.snapshot),
                                timeout=ctx.timeout)
    elif args.snap_command == "rollback":
        r = stub.RollbackVolume(pb.RollbackVolumeRequest(team=args.team, name=args.name, snapshot=args.snapshot,
                                                         destroy_newer=args.destroy_newer), timeout=ctx.timeout)
    else:
        r = stub.DeleteSnapshot(pb.DeleteSnapshotRequest(team=args.team, name=args.name, snapshot=args.snapshot),
                                timeout=ctx.timeout)
    output.print_json(r)


def _pool(ctx, args):
    r = _stub(ctx).GetPool(pb.GetPoolRequest(), timeout=ctx.timeout)
    if ctx.json:
        output.print_json(r)
        return
    p = r.pool
    output.kv([("pool", p.name), ("health", p.health), ("size", output.human_bytes(p.size_bytes)),
               ("allocated", output.human_bytes(p.allocated_bytes)), ("free", output.human_bytes(p.free_bytes)),
               ("parent", p.parent), ("parent used", output.human_bytes(p.parent_used_bytes)),
               ("parent available", output.human_bytes(p.parent_available_bytes)),
               ("backend", f"{p.backend} ({p.flavor})"), ("capabilities", ", ".join(p.capabilities)),
               ("embedded", output.yes(p.embedded))])


def register(sub) -> None:
    st = sub.add_parser("storage", help="ZFS images, volumes, snapshots and the pool")
    ss = st.add_subparsers(dest="storage_command", metavar="COMMAND", required=True)
    ss.add_parser("pool", help="pool health, capacity and backend capabilities").set_defaults(func=_pool)

    img = ss.add_parser("image", help="import, list, delete images").add_subparsers(
        dest="image_command", metavar="COMMAND", required=True)
    p = img.add_parser("import", help="import a rootfs tarball (uploaded, or read on the node with --on-node)")
    p.add_argument("image_id")
    p.add_argument("tarball")
    p.add_argument("--sha256", help="expected sha256 (computed from the file when omitted)")
    p.add_argument("--on-node", action="store_true", help="the path is on the agent's node; do not upload")
    p.add_argument("--import-timeout", type=float, default=3600.0, help="deadline of the import in seconds")
    p.add_argument("--rootfs", metavar="FILE", help="an LXD/Incus split image: TARBALL is its metadata tarball, "
                                                    "FILE its rootfs (squashfs or tarball)")
    p.add_argument("--format", choices=sorted(_FORMATS), default="auto",
                   help="what TARBALL is (auto: detected; LXD unified images have metadata.yaml and rootfs/)")
    p.set_defaults(func=_image_import)
    p = img.add_parser("get", help="one image with its metadata (LXD formats) and shifted variants")
    p.add_argument("image_id")
    p.set_defaults(func=_image_get)
    p = img.add_parser("list", help="list images")
    p.add_argument("--all", action="store_true", help="include parked images")
    p.set_defaults(func=_image_list)
    p = img.add_parser("delete", help="delete an image (parked while clones live)")
    p.add_argument("image_id")
    p.set_defaults(func=_image_delete)

    vol = ss.add_parser("volume", help="create, list, resize, delete volumes").add_subparsers(
        dest="volume_command", metavar="COMMAND", required=True)
    p = vol.add_parser("ensure", help="create a volume or converge it to the spec")
    p.add_argument("team")
    p.add_argument("name")
    p.add_argument("--kind", choices=sorted(_KINDS), default="filesystem")
    p.add_argument("--image", help="image to clone (kind root)")
    p.add_argument("--instance", help="instance id mark")
    p.add_argument("--refquota", help="size limit of the volume's own data, e.g. 10G (the default limit)")
    p.add_argument("--quota", help="limit including snapshots")
    p.add_argument("--reservation", help="guaranteed space")
    p.add_argument("--size", help="disk size (kind block: the zvol; kind disk-file: the raw file)")
    p.set_defaults(func=_vol_ensure)
    p = vol.add_parser("list", help="list volumes")
    p.add_argument("--team")
    p.add_argument("--instance")
    p.set_defaults(func=_vol_list)
    p = vol.add_parser("get", help="one volume with its snapshots")
    p.add_argument("team")
    p.add_argument("name")
    p.set_defaults(func=_vol_get)
    p = vol.add_parser("resize", help="change limits (0 removes one)")
    p.add_argument("team")
    p.add_argument("name")
    for opt in ("--refquota", "--quota", "--reservation", "--size"):
        p.add_argument(opt)
    p.set_defaults(func=_vol_resize)
    p = vol.add_parser("delete", help="delete volumes (several at once, or --all of a team)")
    p.add_argument("team")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true", help="every volume of the team")
    p.set_defaults(func=_vol_delete)

    snap = ss.add_parser("snapshot", help="create, rollback, delete volume snapshots").add_subparsers(
        dest="snap_command", metavar="COMMAND", required=True)
    for cmd, helptext in (("create", "snapshot a volume"), ("rollback", "roll a volume back"),
                          ("delete", "delete a snapshot")):
        p = snap.add_parser(cmd, help=helptext)
        p.add_argument("team")
        p.add_argument("name")
        p.add_argument("snapshot")
        if cmd == "rollback":
            p.add_argument("--destroy-newer", action="store_true", help="destroy newer snapshots first")
        p.set_defaults(func=_snap)
