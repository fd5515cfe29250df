"""Plain data the ZFS backends return: datasets and pools as observed.

No protobuf, no service knowledge: the storage service interprets the
`user_props` (its devcloud:* marks) and maps these into its own types.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Native properties every listing fetches (one batched `zfs get`). All exist
# on OpenZFS and on zfs-fuse (pool version 23).
NATIVE_PROPS = ("type", "origin", "used", "available", "referenced", "quota", "refquota",
                "reservation", "refreservation", "volsize", "mountpoint", "mounted",
                "readonly", "canmount", "creation", "createtxg")

# ZFS dataset names are limited to 255 bytes (MAXNAMELEN 256 with the NUL).
MAX_NAME_LEN = 255


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset or snapshot as ZFS reports it (sizes in bytes)."""

    name: str
    type: str                          # filesystem | volume | snapshot
    origin: str = ""                   # origin snapshot of a clone, "" otherwise
    used: int = 0
    available: int = 0
    referenced: int = 0
    quota: int = 0                     # 0 = none
    refquota: int = 0                  # 0 = none
    reservation: int = 0
    refreservation: int = 0
    volsize: int = 0                   # zvols only
    mountpoint: str = ""               # "" for snapshots/zvols, "none"/"legacy" kept as is
    mounted: bool = False
    readonly: bool = False
    canmount: str = ""
    creation: int = 0                  # unix seconds
    createtxg: int = 0                 # transaction group of creation: orders snapshots (seconds do not)
    user_props: dict[str, str] = field(default_factory=dict)  # LOCAL user properties only
    inherited_props: dict[str, str] = field(default_factory=dict)  # user props inherited (snapshots)

    @property
    def is_snapshot(self) -> bool:
        """True for a snapshot ("ds@snap"). Pure."""
        return self.type == "snapshot"

    @property
    def dataset(self) -> str:
        """The filesystem/volume part of a snapshot name (the name itself otherwise)."""
        return self.name.split("@", 1)[0]

    @property
    def snapshot_name(self) -> str:
        """The part after '@' of a snapshot's name ("" for a filesystem or volume). Pure."""
        return self.name.split("@", 1)[1] if "@" in self.name else ""


@dataclass(frozen=True)
class PoolInfo:
    """A pool's health and capacity."""

    name: str
    health: str                        # ONLINE | DEGRADED | FAULTED | OFFLINE | UNAVAIL | REMOVED
    size: int                          # raw pool size in bytes (approximate on zfs-fuse: no -p)
    allocated: int
    free: int
    version: str = ""                  # "23" on zfs-fuse, "-" (feature flags) on OpenZFS
    # Exact numbers from the root dataset (what datasets can really use).
    root_used: int = 0
    root_available: int = 0
    features: tuple[str, ...] = ()     # enabled/active pool features (OpenZFS), e.g. "lz4_compress"


def parse_size(text: str) -> int:
    """Parse a ZFS size: exact bytes ('1048576') or human units ('1.98G', '556K').

    zfs-fuse's zpool has no -p, so pool sizes come rounded; datasets always use -p.
    """
    text = text.strip()
    if not text or text == "-":
        return 0
    try:
        return int(text)
    except ValueError:
        pass
    units = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6, "Z": 7}
    unit = text[-1].upper()
    if unit not in units:
        raise ValueError(f"not a ZFS size: {text!r}")
    return int(float(text[:-1]) * (1024 ** units[unit]))
