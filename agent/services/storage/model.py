"""Storage plane data: the plain dataclasses the StorageService takes and returns
(no protobuf), and the marks of our datasets. The dataset layout (names) and the
ownership rule are in layout.py.

The ZFS user properties are spelled once, in agent/model/marks.py; they are
re-exported here for the storage plane's callers.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from agent.model.idmap import IdMap
from agent.model.marks import (  # noqa: F401 - re-exported for callers
    OWNER, P_FORMAT, P_IDMAP, P_IDMAP_MODE, P_IMAGE, P_INSTANCE, P_KIND, P_METADATA, P_NAME, P_OWNER, P_ROOTFS,
    P_SHA256, P_TEAM, P_TYPE)

MARKS = (P_OWNER, P_TYPE, P_KIND, P_TEAM, P_NAME, P_INSTANCE, P_IMAGE, P_SHA256, P_ROOTFS, P_IDMAP,
         P_IDMAP_MODE)                                                  # what every read asks for
IMAGE_MARKS = (*MARKS, P_FORMAT, P_METADATA)                            # image reads add these
DISK_FILE = "disk.raw"              # the raw disk file of a DISK_FILE volume, at its mountpoint

BASE_SNAPSHOT = "base"


class VolumeKind(str, enum.Enum):
    """What a volume is (immutable once created)."""

    ROOT = "root"                   # clone of an image's @base (an instance root filesystem)
    FILESYSTEM = "filesystem"       # an empty filesystem
    BLOCK = "block"                 # a zvol (VM disk); needs a backend with zvols
    DISK_FILE = "disk_file"         # a filesystem holding one sparse raw disk file (VM disk without zvols)


class ImageFormat(str, enum.Enum):
    """How an image was imported (the P_FORMAT mark)."""

    ROOTFS_TARBALL = "rootfs-tarball"   # the image's root is the root filesystem
    LXD_UNIFIED = "lxd-unified"         # metadata.yaml + templates/ + rootfs/ (one tarball)
    LXD_SPLIT = "lxd-split"             # metadata tarball + squashfs/tarball rootfs, stored like unified


class ImageState(str, enum.Enum):
    """Where an image stands (DeleteImage answers ABSENT or PARKED)."""

    READY = "ready"                 # images/<id>@base exists: clones can be made
    PARKED = "parked"               # deleted while clones lived; destroyed with its last clone
    ABSENT = "absent"


@dataclass(frozen=True)
class VolumeSpec:
    """What a caller wants. Immutable once created: kind, image_id, instance.
    Convergent (Ensure sets them again): refquota/quota/reservation, size (BLOCK, grow only)."""

    team: str
    name: str
    kind: VolumeKind = VolumeKind.FILESYSTEM
    image_id: str = ""              # ROOT only
    instance: str = ""              # optional owner instance id (a mark for GC)
    refquota_bytes: int = 0         # limit of the volume's own data (snapshots excluded); 0 = none
    quota_bytes: int = 0            # limit including snapshots; 0 = none
    reservation_bytes: int = 0      # guaranteed space; 0 = none
    size_bytes: int = 0             # BLOCK / DISK_FILE: the disk size (required)
    idmap: IdMap | None = None      # ROOT: an unprivileged instance's map (immutable)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot of a volume as observed."""

    name: str                       # short name (after '@')
    used_bytes: int
    referenced_bytes: int
    created_unix: int


@dataclass(frozen=True)
class Volume:
    """A volume as observed on ZFS."""

    team: str
    name: str
    kind: VolumeKind
    dataset: str
    image_id: str
    instance: str
    mountpoint: str                 # "" for BLOCK
    mounted: bool
    device: str                     # BLOCK: /dev/zvol/<dataset>; "" otherwise
    refquota_bytes: int
    quota_bytes: int
    reservation_bytes: int
    size_bytes: int                 # BLOCK: volsize
    used_bytes: int
    available_bytes: int
    referenced_bytes: int
    origin: str                     # ROOT: the snapshot it was cloned from
    created_unix: int
    snapshots: tuple[Snapshot, ...] = ()
    rootfs: str = ""                # ROOT: the root filesystem directory (mountpoint[/rootfs])
    idmap: IdMap | None = None      # ROOT: the map it was made for
    idmap_mode: str = ""            # ROOT with a map: shifted | mount (agent.model.idmap)
    disk_file: str = ""             # DISK_FILE: the raw disk file


@dataclass(frozen=True)
class ImageMetadata:
    """What an LXD/Incus image's metadata.yaml says (the fields GetImage returns)."""

    architecture: str
    creation_unix: int
    expiry_unix: int = 0
    properties: tuple[tuple[str, str], ...] = ()     # sorted (key, value)
    templates: tuple[str, ...] = ()                  # paths the templates write, sorted

    def prop(self, key: str) -> str:
        """properties[key] or ""."""
        return dict(self.properties).get(key, "")


@dataclass(frozen=True)
class ImageVariant:
    """A shifted copy of an image for one map: volumes with that map clone its @base."""

    idmap: IdMap
    dataset: str
    base_snapshot: str
    clones: int


@dataclass(frozen=True)
class Image:
    """An image (READY or PARKED) as observed."""

    image_id: str
    dataset: str
    state: ImageState
    sha256: str
    base_snapshot: str              # full name of @base
    mountpoint: str
    used_bytes: int
    referenced_bytes: int
    clones: int                     # volumes under the parent cloned from it
    created_unix: int
    format: ImageFormat = ImageFormat.ROOTFS_TARBALL
    metadata: ImageMetadata | None = None            # LXD formats
    rootfs: str = ""                # the root filesystem directory (mountpoint[/rootfs])
    variants: tuple[ImageVariant, ...] = ()


@dataclass(frozen=True)
class ImportProgress:
    """Progress of an image import, reported while it streams."""

    bytes_received: int
    bytes_extracted: int            # file content bytes written so far
    entries: int                    # tar members processed
    total_bytes: int = 0            # expected size if the client said it, else 0


@dataclass(frozen=True)
class PoolStatus:
    """The pool and our parent dataset as observed."""

    name: str
    health: str
    size_bytes: int
    allocated_bytes: int
    free_bytes: int
    parent: str
    parent_used_bytes: int
    parent_available_bytes: int
    backend: str                    # lzc | cli
    flavor: str                     # openzfs | zfs-fuse
    capabilities: tuple[str, ...]   # zvol, lz4, encryption, ...
    embedded: bool = False          # a file-backed pool the agent manages itself


@dataclass(frozen=True)
class DeleteResult:
    """The outcome for one volume of a bulk delete."""

    team: str
    name: str
    deleted: bool                   # False: it did not exist (still OK)
    error: str = ""                 # bulk deletes: why this one failed ("" = fine)
    reason: str = ""


@dataclass(frozen=True)
class OwnedDataset:
    """An object of ours with its marks (for GarbageCollect / Diff)."""

    dataset: str
    marks: dict[str, str] = field(default_factory=dict)
