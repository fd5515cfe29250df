"""Storage plane data: dataset layout, ownership marks, and the plain
dataclasses the StorageService takes and returns (no protobuf).

Layout under the parent dataset (default `<pool>/devcloud`):

    <parent>                                  root of everything we own
    <parent>/images/<image_id>[@base]         imported images; @base is what clones come from
    <parent>/instances/<team>/<volume>        instance volumes (clones, filesystems, zvols)
    <parent>/deleted/images/<image_id>-<tag>  images deleted while clones lived ("parked")
    <parent>/tmp/<image_id>-<tag>             imports in progress (renamed into images/ when verified)

Names are deterministic: `Layout.volume(team, name)` is known before the
volume exists, so the instance plane can record its intent first.

Ownership is positive: a dataset is ours only if it carries the user
property devcloud:owner=devcloud-agent with source `local`. (User
properties are inherited by children: a foreign dataset created below ours
shows the mark as `inherited` and stays foreign.)
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

OWNER = "devcloud-agent"

P_OWNER = "devcloud:owner"          # always OWNER
P_TYPE = "devcloud:type"            # root | dir | image | volume | tmp | snapshot
P_KIND = "devcloud:kind"            # volumes: root | filesystem | block
P_TEAM = "devcloud:team"
P_NAME = "devcloud:name"            # volume name (within the team) / image id
P_INSTANCE = "devcloud:instance"    # optional instance id the volume belongs to
P_IMAGE = "devcloud:image"          # root volumes: the image id they were cloned from; images: their id
P_SHA256 = "devcloud:sha256"        # images: sha256 of the tarball they were imported from
MARKS = (P_OWNER, P_TYPE, P_KIND, P_TEAM, P_NAME, P_INSTANCE, P_IMAGE, P_SHA256)

BASE_SNAPSHOT = "base"


class VolumeKind(str, enum.Enum):
    ROOT = "root"                   # clone of an image's @base (an instance root filesystem)
    FILESYSTEM = "filesystem"       # an empty filesystem
    BLOCK = "block"                 # a zvol (VM disk); needs a backend with zvols


class ImageState(str, enum.Enum):
    READY = "ready"                 # images/<id>@base exists: clones can be made
    PARKED = "parked"               # deleted while clones lived; destroyed with its last clone
    ABSENT = "absent"


class Layout:
    """Dataset names under the parent. Pure string work, no I/O."""

    def __init__(self, parent: str) -> None:
        self.parent = parent.rstrip("/")
        self.images = f"{self.parent}/images"
        self.instances = f"{self.parent}/instances"
        self.deleted = f"{self.parent}/deleted"
        self.deleted_images = f"{self.parent}/deleted/images"
        self.tmp = f"{self.parent}/tmp"

    @property
    def pool(self) -> str:
        return self.parent.split("/", 1)[0]

    def dirs(self) -> list[str]:
        """Our directory datasets, parents first."""
        return [self.parent, self.images, self.instances, self.deleted, self.deleted_images, self.tmp]

    def image(self, image_id: str) -> str:
        return f"{self.images}/{image_id}"

    def image_base(self, image_id: str) -> str:
        return f"{self.images}/{image_id}@{BASE_SNAPSHOT}"

    def team(self, team: str) -> str:
        return f"{self.instances}/{team}"

    def volume(self, team: str, name: str) -> str:
        return f"{self.instances}/{team}/{name}"

    def parse_volume(self, dataset: str) -> tuple[str, str] | None:
        """(team, name) if `dataset` is a volume path, else None."""
        prefix = self.instances + "/"
        if not dataset.startswith(prefix) or "@" in dataset:
            return None
        parts = dataset[len(prefix):].split("/")
        return (parts[0], parts[1]) if len(parts) == 2 else None

    def is_parked(self, dataset: str) -> bool:
        return dataset.startswith(self.deleted_images + "/")

    def under(self, dataset: str) -> bool:
        return dataset == self.parent or dataset.startswith(self.parent + "/")


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
    size_bytes: int = 0             # BLOCK: the zvol size (required)


@dataclass(frozen=True)
class Snapshot:
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


@dataclass(frozen=True)
class Image:
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


@dataclass(frozen=True)
class ImportProgress:
    bytes_received: int
    bytes_extracted: int            # file content bytes written so far
    entries: int                    # tar members processed
    total_bytes: int = 0            # expected size if the client said it, else 0


@dataclass(frozen=True)
class PoolStatus:
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
