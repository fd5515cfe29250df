"""The storage plane's dataset layout and ownership rule. Pure, no I/O.

Layout under the parent dataset (default `<pool>/devcloud`):

    <parent>                                  root of everything we own
    <parent>/images/<image_id>[@base]         imported images; @base is what clones come from
    <parent>/variants/<image_id>_u<uid>_g<gid>_n<count>[@base]
                                              an image shifted into a uid/gid map (a clone of its @base);
                                              roots of unprivileged instances clone its @base
    <parent>/instances/<team>/<volume>        instance volumes (clones, filesystems, zvols)
    <parent>/deleted/images/<image_id>-<tag>  images deleted while clones lived ("parked")
    <parent>/deleted/variants/<variant>-<tag> variants of deleted images, parked while clones live
    <parent>/tmp/<image_id>-<tag>             imports in progress (renamed into images/ when verified)

Names are deterministic: `Layout.volume(team, name)` is known before the
volume exists, so the instance plane can record its intent first.

Ownership is positive: a dataset is ours only if it carries the user
property devcloud:owner=devcloud-agent with source `local`. (User
properties are inherited by children: a foreign dataset created below ours
shows the mark as `inherited` and stays foreign.)
"""
from __future__ import annotations

from typing import TypeGuard

from agent.drivers.zfs import MAX_NAME_LEN, DatasetInfo
from agent.errors import InvalidArgument

from agent.model.idmap import IdMap

from .model import BASE_SNAPSHOT, OWNER, P_OWNER


def is_ours(info: DatasetInfo | None) -> TypeGuard[DatasetInfo]:
    """Ours = devcloud:owner=devcloud-agent set LOCALLY (inherited marks do not count)."""
    return info is not None and info.user_props.get(P_OWNER) == OWNER


def check_name_length(dataset: str, field: str) -> None:
    """Raise InvalidArgument on `field` when `dataset` leaves no room for "@<snapshot>"
    (64 bytes) within ZFS's MAXNAMELEN, so every snapshot of it fits too."""
    if len(dataset.encode()) + 65 > MAX_NAME_LEN:
        raise InvalidArgument.for_field(field, f"the dataset name {dataset!r} would exceed ZFS's "
                                               f"{MAX_NAME_LEN}-byte limit; use a shorter name")


class Layout:
    """Dataset names under the parent. Pure string work, no I/O."""

    def __init__(self, parent: str) -> None:
        self.parent = parent.rstrip("/")
        self.images = f"{self.parent}/images"
        self.instances = f"{self.parent}/instances"
        self.deleted = f"{self.parent}/deleted"
        self.deleted_images = f"{self.parent}/deleted/images"
        self.variants = f"{self.parent}/variants"
        self.deleted_variants = f"{self.parent}/deleted/variants"
        self.tmp = f"{self.parent}/tmp"

    @property
    def pool(self) -> str:
        """The pool the parent lives in."""
        return self.parent.split("/", 1)[0]

    def dirs(self) -> list[str]:
        """Our directory datasets, parents first."""
        return [self.parent, self.images, self.instances, self.deleted, self.deleted_images, self.tmp,
                self.variants, self.deleted_variants]

    def image(self, image_id: str) -> str:
        """The dataset of a READY image."""
        return f"{self.images}/{image_id}"

    def image_base(self, image_id: str) -> str:
        """The snapshot a ROOT volume of that image is cloned from."""
        return f"{self.images}/{image_id}@{BASE_SNAPSHOT}"

    def variant(self, image_id: str, idmap: IdMap) -> str:
        """The dataset of an image's variant shifted into `idmap` ('_' never occurs in image ids,
        so no two (image, map) pairs share a name)."""
        return f"{self.variants}/{image_id}_{idmap.suffix()}"

    def variant_base(self, image_id: str, idmap: IdMap) -> str:
        """The snapshot a ROOT volume with that map is cloned from (where roots are shifted)."""
        return f"{self.variant(image_id, idmap)}@{BASE_SNAPSHOT}"

    def team(self, team: str) -> str:
        """The directory dataset of a team's volumes."""
        return f"{self.instances}/{team}"

    def volume(self, team: str, name: str) -> str:
        """The dataset of a volume."""
        return f"{self.instances}/{team}/{name}"

    def parse_volume(self, dataset: str) -> tuple[str, str] | None:
        """(team, name) if `dataset` is a volume path, else None."""
        prefix = self.instances + "/"
        if not dataset.startswith(prefix) or "@" in dataset:
            return None
        parts = dataset[len(prefix):].split("/")
        return (parts[0], parts[1]) if len(parts) == 2 else None

    def is_parked(self, dataset: str) -> bool:
        """True for a dataset (or snapshot) under deleted/images/ or deleted/variants/."""
        return dataset.startswith((self.deleted_images + "/", self.deleted_variants + "/"))

    def under(self, dataset: str) -> bool:
        """True for the parent and everything below it."""
        return dataset == self.parent or dataset.startswith(self.parent + "/")

