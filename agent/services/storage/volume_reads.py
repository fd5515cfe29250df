"""Reads of volumes: the observed Volume (one batched read with its snapshots), lists,
drift against a spec, the inventory for GC, and the ownership check every change of a
volume starts with. Nothing here writes."""
from __future__ import annotations

import os
from typing import Sequence

from agent.drivers import diskfile
from agent.drivers.zfs import DatasetInfo, ZfsBackend
from agent.errors import FailedPrecondition, NotFound
from agent.model.idmap import IdMap
from agent.model.marks import TYPE_VOLUME
from agent.services.drift import Drift

from .layout import Layout, is_ours
from .model import (DISK_FILE, MARKS, P_IDMAP, P_IDMAP_MODE, P_IMAGE, P_INSTANCE, P_KIND, P_NAME, P_ROOTFS, P_TEAM,
                    P_TYPE, OwnedDataset, Snapshot, Volume, VolumeKind, VolumeSpec)


class VolumeReads:
    """Read-only views of the volumes of one layout."""

    def __init__(self, zfs: ZfsBackend, layout: Layout) -> None:
        self.zfs = zfs
        self.layout = layout

    def observe(self, dataset: str) -> Volume:
        """The volume at `dataset` as it is now (after a change). NotFound VOLUME_NOT_FOUND."""
        tree = self.zfs.list(dataset, MARKS)
        if not tree:
            raise NotFound(f"volume dataset {dataset} not found", reason="VOLUME_NOT_FOUND")
        return _volume_of_tree(tree)

    def get_volume(self, team: str, name: str) -> Volume:
        """The observed volume. NotFound if absent or not ours. One batched read."""
        dataset = self.layout.volume(team, name)
        tree = self.zfs.list(dataset, MARKS)
        if not tree or not is_ours(tree[0]):
            raise NotFound(f"volume {team}/{name} not found", reason="VOLUME_NOT_FOUND",
                           metadata={"dataset": dataset})
        return _volume_of_tree(tree)

    def list_volumes(self, team: str = "", instance: str = "") -> list[Volume]:
        """Our volumes (of one team if given, of one instance if given): one `zfs get -r`."""
        root = self.layout.team(team) if team else self.layout.instances
        tree = self.zfs.list(root, MARKS)
        snaps: dict[str, list[DatasetInfo]] = {}
        for d in tree:
            if d.is_snapshot:
                snaps.setdefault(d.dataset, []).append(d)
        out = []
        for d in tree:
            if d.is_snapshot or not is_ours(d) or d.user_props.get(P_TYPE) != TYPE_VOLUME:
                continue
            if instance and d.user_props.get(P_INSTANCE) != instance:
                continue
            out.append(_volume(d, snaps.get(d.name, [])))
        return out

    def inventory(self) -> list[OwnedDataset]:
        """Every dataset of ours under the parent with its marks (for GarbageCollect). One read."""
        return [OwnedDataset(d.name, dict(d.user_props)) for d in self.zfs.list(self.layout.parent, MARKS)
                if not d.is_snapshot and is_ours(d)]

    def owned(self, team: str, name: str) -> DatasetInfo | None:
        """The volume's dataset, None when absent. FailedPrecondition NOT_OURS when it is not ours."""
        info = self.zfs.get(self.layout.volume(team, name), MARKS)
        if info is not None and not is_ours(info):
            raise FailedPrecondition(f"{info.name} is not ours; it is left alone", reason="NOT_OURS",
                                     metadata={"dataset": info.name})
        return info

    def required(self, team: str, name: str) -> DatasetInfo:
        """The volume's dataset. NotFound VOLUME_NOT_FOUND; FailedPrecondition NOT_OURS."""
        info = self.owned(team, name)
        if info is None:
            raise NotFound(f"volume {team}/{name} not found", reason="VOLUME_NOT_FOUND")
        return info

    def volume_drift(self, spec: VolumeSpec) -> list[Drift]:
        """Differences between `spec` and the live volume as Drift items with reason codes
        (VOLUME_MISSING, NOT_OURS, KIND/IMAGE/INSTANCE/IDMAP_MISMATCH (not repairable),
        REFQUOTA/QUOTA/RESERVATION/VOLSIZE_DRIFT, NOT_MOUNTED, DISK_FILE_MISSING). Read-only:
        one read (and a stat of a DISK_FILE's file).
        Repair = ensure_volume(spec)."""
        dataset = self.layout.volume(spec.team, spec.name)
        info = self.zfs.get(dataset, MARKS)
        if info is None:
            return [Drift("storage", dataset, "VOLUME_MISSING", "absent")]
        if not is_ours(info):
            return [Drift("storage", dataset, "NOT_OURS", "not ours", repairable=False)]
        out = []
        m = info.user_props
        for label, code, have, want, fix in (
                ("kind", "KIND_MISMATCH", m.get(P_KIND, ""), spec.kind.value, False),
                ("image_id", "IMAGE_MISMATCH", m.get(P_IMAGE, ""), spec.image_id, False),
                ("instance", "INSTANCE_MISMATCH", m.get(P_INSTANCE, ""), spec.instance, False),
                ("idmap", "IDMAP_MISMATCH", m.get(P_IDMAP, ""), spec.idmap.mark() if spec.idmap else "", False),
                ("quota_bytes", "QUOTA_DRIFT", info.quota, spec.quota_bytes, True),
                ("reservation_bytes", "RESERVATION_DRIFT", info.reservation, spec.reservation_bytes, True)):
            if have != want:
                out.append(Drift("storage", dataset, code, f"{label}: live {have!r}, wanted {want!r}",
                                 str(want), str(have), fix))
        if spec.kind != VolumeKind.BLOCK and info.refquota != spec.refquota_bytes:
            out.append(Drift("storage", dataset, "REFQUOTA_DRIFT",
                             f"refquota_bytes: live {info.refquota}, wanted {spec.refquota_bytes}",
                             str(spec.refquota_bytes), str(info.refquota)))
        if spec.kind == VolumeKind.BLOCK and info.volsize != spec.size_bytes:
            out.append(Drift("storage", dataset, "VOLSIZE_DRIFT",
                             f"size_bytes: live {info.volsize}, wanted {spec.size_bytes}",
                             str(spec.size_bytes), str(info.volsize), spec.size_bytes > info.volsize))
        if info.type == "filesystem" and not info.mounted and info.mountpoint.startswith("/"):
            out.append(Drift("storage", dataset, "NOT_MOUNTED", "not mounted", "mounted", "unmounted"))
        elif spec.kind == VolumeKind.DISK_FILE and m.get(P_KIND) == spec.kind.value:
            path = os.path.join(info.mountpoint, DISK_FILE)
            size = diskfile.size(path)
            if size is None:
                out.append(Drift("storage", path, "DISK_FILE_MISSING", "disk file: missing"))
            elif size != spec.size_bytes:
                out.append(Drift("storage", path, "VOLSIZE_DRIFT", f"size_bytes: live {size}, wanted {spec.size_bytes}",
                                 str(spec.size_bytes), str(size), spec.size_bytes > size))
        return out


def _volume_of_tree(tree: list[DatasetInfo]) -> Volume:
    """The Volume of a `zfs get -r` listing rooted at the volume (its own snapshots only)."""
    root = tree[0]
    return _volume(root, [d for d in tree[1:] if d.is_snapshot and d.dataset == root.name])


def _volume(ds: DatasetInfo, snaps: Sequence[DatasetInfo]) -> Volume:
    m = ds.user_props
    kind = VolumeKind(m.get(P_KIND, "filesystem"))
    mnt = ds.mountpoint if ds.type == "filesystem" else ""
    sub = m.get(P_ROOTFS, "")
    disk = os.path.join(mnt, DISK_FILE) if kind == VolumeKind.DISK_FILE and mnt.startswith("/") else ""
    size = ds.volsize
    if disk:
        size = (diskfile.size(disk) or 0) if ds.mounted else 0
    return Volume(team=m.get(P_TEAM, ""), name=m.get(P_NAME, ""), kind=kind, dataset=ds.name,
                  image_id=m.get(P_IMAGE, ""), instance=m.get(P_INSTANCE, ""),
                  mountpoint=mnt, mounted=ds.mounted,
                  device=f"/dev/zvol/{ds.name}" if ds.type == "volume" else "",
                  rootfs=(f"{mnt}/{sub}" if sub else mnt) if kind == VolumeKind.ROOT and mnt.startswith("/") else "",
                  idmap=IdMap.from_mark(m.get(P_IDMAP, "")), idmap_mode=m.get(P_IDMAP_MODE, ""), disk_file=disk,
                  refquota_bytes=ds.refquota, quota_bytes=ds.quota, reservation_bytes=ds.reservation,
                  size_bytes=size, used_bytes=ds.used, available_bytes=ds.available,
                  referenced_bytes=ds.referenced, origin=ds.origin, created_unix=ds.creation,
                  snapshots=tuple(Snapshot(s.snapshot_name, s.used, s.referenced, s.creation)
                                  for s in sorted(snaps, key=lambda s: s.createtxg)))
