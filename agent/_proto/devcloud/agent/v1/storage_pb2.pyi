from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_ROOTFS_TARBALL: _ClassVar[ImageFormat]
    IMAGE_FORMAT_LXD_UNIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_LXD_SPLIT: _ClassVar[ImageFormat]

class IdmapMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IDMAP_MODE_UNSPECIFIED: _ClassVar[IdmapMode]
    IDMAP_MODE_SHIFTED: _ClassVar[IdmapMode]
    IDMAP_MODE_MOUNT: _ClassVar[IdmapMode]

class ImageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_STATE_UNSPECIFIED: _ClassVar[ImageState]
    IMAGE_STATE_READY: _ClassVar[ImageState]
    IMAGE_STATE_PARKED: _ClassVar[ImageState]
    IMAGE_STATE_ABSENT: _ClassVar[ImageState]

class VolumeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOLUME_KIND_UNSPECIFIED: _ClassVar[VolumeKind]
    VOLUME_KIND_ROOT: _ClassVar[VolumeKind]
    VOLUME_KIND_FILESYSTEM: _ClassVar[VolumeKind]
    VOLUME_KIND_BLOCK: _ClassVar[VolumeKind]
    VOLUME_KIND_DISK_FILE: _ClassVar[VolumeKind]
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_ROOTFS_TARBALL: ImageFormat
IMAGE_FORMAT_LXD_UNIFIED: ImageFormat
IMAGE_FORMAT_LXD_SPLIT: ImageFormat
IDMAP_MODE_UNSPECIFIED: IdmapMode
IDMAP_MODE_SHIFTED: IdmapMode
IDMAP_MODE_MOUNT: IdmapMode
IMAGE_STATE_UNSPECIFIED: ImageState
IMAGE_STATE_READY: ImageState
IMAGE_STATE_PARKED: ImageState
IMAGE_STATE_ABSENT: ImageState
VOLUME_KIND_UNSPECIFIED: VolumeKind
VOLUME_KIND_ROOT: VolumeKind
VOLUME_KIND_FILESYSTEM: VolumeKind
VOLUME_KIND_BLOCK: VolumeKind
VOLUME_KIND_DISK_FILE: VolumeKind

class ImageHeader(_message.Message):
    __slots__ = ("image_id", "sha256", "size_bytes", "local_path", "format", "metadata_size_bytes", "rootfs_local_path")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOCAL_PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    METADATA_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ROOTFS_LOCAL_PATH_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    sha256: str
    size_bytes: int
    local_path: str
    format: ImageFormat
    metadata_size_bytes: int
    rootfs_local_path: str
    def __init__(self, image_id: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., local_path: _Optional[str] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., metadata_size_bytes: _Optional[int] = ..., rootfs_local_path: _Optional[str] = ...) -> None: ...

class ImageMetadata(_message.Message):
    __slots__ = ("architecture", "creation_unix", "expiry_unix", "os", "release", "variant", "description", "properties", "templates")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    CREATION_UNIX_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_UNIX_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    architecture: str
    creation_unix: int
    expiry_unix: int
    os: str
    release: str
    variant: str
    description: str
    properties: _containers.ScalarMap[str, str]
    templates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, architecture: _Optional[str] = ..., creation_unix: _Optional[int] = ..., expiry_unix: _Optional[int] = ..., os: _Optional[str] = ..., release: _Optional[str] = ..., variant: _Optional[str] = ..., description: _Optional[str] = ..., properties: _Optional[_Mapping[str, str]] = ..., templates: _Optional[_Iterable[str]] = ...) -> None: ...

class IdMap(_message.Message):
    __slots__ = ("host_uid", "host_gid", "count")
    HOST_UID_FIELD_NUMBER: _ClassVar[int]
    HOST_GID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    host_uid: int
    host_gid: int
    count: int
    def __init__(self, host_uid: _Optional[int] = ..., host_gid: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class ImageVariant(_message.Message):
    __slots__ = ("idmap", "dataset", "base_snapshot", "clones")
    IDMAP_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BASE_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CLONES_FIELD_NUMBER: _ClassVar[int]
    idmap: IdMap
    dataset: str
    base_snapshot: str
    clones: int
    def __init__(self, idmap: _Optional[_Union[IdMap, _Mapping]] = ..., dataset: _Optional[str] = ..., base_snapshot: _Optional[str] = ..., clones: _Optional[int] = ...) -> None: ...

class EnsureImageRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ImageHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[ImageHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ImageImportProgress(_message.Message):
    __slots__ = ("bytes_received", "bytes_extracted", "entries", "total_bytes")
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_EXTRACTED_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    bytes_received: int
    bytes_extracted: int
    entries: int
    total_bytes: int
    def __init__(self, bytes_received: _Optional[int] = ..., bytes_extracted: _Optional[int] = ..., entries: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class EnsureImageResult(_message.Message):
    __slots__ = ("image", "changed")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    image: Image
    changed: bool
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class EnsureImageResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: ImageImportProgress
    result: EnsureImageResult
    def __init__(self, progress: _Optional[_Union[ImageImportProgress, _Mapping]] = ..., result: _Optional[_Union[EnsureImageResult, _Mapping]] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("image_id", "dataset", "state", "sha256", "base_snapshot", "mountpoint", "used_bytes", "referenced_bytes", "clones", "created_unix", "format", "metadata", "rootfs", "variants")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BASE_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CLONES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ROOTFS_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    dataset: str
    state: ImageState
    sha256: str
    base_snapshot: str
    mountpoint: str
    used_bytes: int
    referenced_bytes: int
    clones: int
    created_unix: int
    format: ImageFormat
    metadata: ImageMetadata
    rootfs: str
    variants: _containers.RepeatedCompositeFieldContainer[ImageVariant]
    def __init__(self, image_id: _Optional[str] = ..., dataset: _Optional[str] = ..., state: _Optional[_Union[ImageState, str]] = ..., sha256: _Optional[str] = ..., base_snapshot: _Optional[str] = ..., mountpoint: _Optional[str] = ..., used_bytes: _Optional[int] = ..., referenced_bytes: _Optional[int] = ..., clones: _Optional[int] = ..., created_unix: _Optional[int] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., metadata: _Optional[_Union[ImageMetadata, _Mapping]] = ..., rootfs: _Optional[str] = ..., variants: _Optional[_Iterable[_Union[ImageVariant, _Mapping]]] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("image_id",)
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    def __init__(self, image_id: _Optional[str] = ...) -> None: ...

class GetImageResponse(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("include_parked",)
    INCLUDE_PARKED_FIELD_NUMBER: _ClassVar[int]
    include_parked: bool
    def __init__(self, include_parked: _Optional[bool] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class DeleteImageRequest(_message.Message):
    __slots__ = ("image_id",)
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    def __init__(self, image_id: _Optional[str] = ...) -> None: ...

class DeleteImageResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: ImageState
    def __init__(self, state: _Optional[_Union[ImageState, str]] = ...) -> None: ...

class VolumeSpec(_message.Message):
    __slots__ = ("team", "name", "kind", "image_id", "instance", "refquota_bytes", "quota_bytes", "reservation_bytes", "size_bytes", "idmap")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REFQUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IDMAP_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    kind: VolumeKind
    image_id: str
    instance: str
    refquota_bytes: int
    quota_bytes: int
    reservation_bytes: int
    size_bytes: int
    idmap: IdMap
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[VolumeKind, str]] = ..., image_id: _Optional[str] = ..., instance: _Optional[str] = ..., refquota_bytes: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., reservation_bytes: _Optional[int] = ..., size_bytes: _Optional[int] = ..., idmap: _Optional[_Union[IdMap, _Mapping]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("name", "used_bytes", "referenced_bytes", "created_unix")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    name: str
    used_bytes: int
    referenced_bytes: int
    created_unix: int
    def __init__(self, name: _Optional[str] = ..., used_bytes: _Optional[int] = ..., referenced_bytes: _Optional[int] = ..., created_unix: _Optional[int] = ...) -> None: ...

class Volume(_message.Message):
    __slots__ = ("team", "name", "kind", "dataset", "image_id", "instance", "mountpoint", "mounted", "device", "refquota_bytes", "quota_bytes", "reservation_bytes", "size_bytes", "used_bytes", "available_bytes", "referenced_bytes", "origin", "created_unix", "snapshots", "rootfs", "idmap", "idmap_mode", "disk_file")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    MOUNTED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REFQUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_BYTES_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    ROOTFS_FIELD_NUMBER: _ClassVar[int]
    IDMAP_FIELD_NUMBER: _ClassVar[int]
    IDMAP_MODE_FIELD_NUMBER: _ClassVar[int]
    DISK_FILE_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    kind: VolumeKind
    dataset: str
    image_id: str
    instance: str
    mountpoint: str
    mounted: bool
    device: str
    refquota_bytes: int
    quota_bytes: int
    reservation_bytes: int
    size_bytes: int
    used_bytes: int
    available_bytes: int
    referenced_bytes: int
    origin: str
    created_unix: int
    snapshots: _containers.RepeatedCompositeFieldContainer[Snapshot]
    rootfs: str
    idmap: IdMap
    idmap_mode: IdmapMode
    disk_file: str
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[VolumeKind, str]] = ..., dataset: _Optional[str] = ..., image_id: _Optional[str] = ..., instance: _Optional[str] = ..., mountpoint: _Optional[str] = ..., mounted: _Optional[bool] = ..., device: _Optional[str] = ..., refquota_bytes: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., reservation_bytes: _Optional[int] = ..., size_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., available_bytes: _Optional[int] = ..., referenced_bytes: _Optional[int] = ..., origin: _Optional[str] = ..., created_unix: _Optional[int] = ..., snapshots: _Optional[_Iterable[_Union[Snapshot, _Mapping]]] = ..., rootfs: _Optional[str] = ..., idmap: _Optional[_Union[IdMap, _Mapping]] = ..., idmap_mode: _Optional[_Union[IdmapMode, str]] = ..., disk_file: _Optional[str] = ...) -> None: ...

class EnsureVolumeRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: VolumeSpec
    def __init__(self, spec: _Optional[_Union[VolumeSpec, _Mapping]] = ...) -> None: ...

class EnsureVolumeResponse(_message.Message):
    __slots__ = ("volume", "changed")
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    changed: bool
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class GetVolumeRequest(_message.Message):
    __slots__ = ("team", "name")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ("team", "instance")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    team: str
    instance: str
    def __init__(self, team: _Optional[str] = ..., instance: _Optional[str] = ...) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes",)
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    def __init__(self, volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ...) -> None: ...

class ResizeVolumeRequest(_message.Message):
    __slots__ = ("team", "name", "refquota_bytes", "quota_bytes", "reservation_bytes", "size_bytes")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REFQUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    refquota_bytes: int
    quota_bytes: int
    reservation_bytes: int
    size_bytes: int
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ..., refquota_bytes: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., reservation_bytes: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ResizeVolumeResponse(_message.Message):
    __slots__ = ("volume", "changed")
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    changed: bool
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class DeleteVolumeRequest(_message.Message):
    __slots__ = ("team", "name")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteVolumeResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class DeleteVolumesRequest(_message.Message):
    __slots__ = ("team", "names", "all")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    team: str
    names: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    def __init__(self, team: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ...) -> None: ...

class VolumeDeleteResult(_message.Message):
    __slots__ = ("name", "deleted", "error_reason", "error_message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    deleted: bool
    error_reason: str
    error_message: str
    def __init__(self, name: _Optional[str] = ..., deleted: _Optional[bool] = ..., error_reason: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class DeleteVolumesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VolumeDeleteResult]
    def __init__(self, results: _Optional[_Iterable[_Union[VolumeDeleteResult, _Mapping]]] = ...) -> None: ...

class SnapshotVolumeRequest(_message.Message):
    __slots__ = ("team", "name", "snapshot")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    snapshot: str
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ..., snapshot: _Optional[str] = ...) -> None: ...

class SnapshotVolumeResponse(_message.Message):
    __slots__ = ("snapshot", "changed")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    changed: bool
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class RollbackVolumeRequest(_message.Message):
    __slots__ = ("team", "name", "snapshot", "destroy_newer")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DESTROY_NEWER_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    snapshot: str
    destroy_newer: bool
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ..., snapshot: _Optional[str] = ..., destroy_newer: _Optional[bool] = ...) -> None: ...

class RollbackVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: Volume
    def __init__(self, volume: _Optional[_Union[Volume, _Mapping]] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("team", "name", "snapshot")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    team: str
    name: str
    snapshot: str
    def __init__(self, team: _Optional[str] = ..., name: _Optional[str] = ..., snapshot: _Optional[str] = ...) -> None: ...

class DeleteSnapshotResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Pool(_message.Message):
    __slots__ = ("name", "health", "size_bytes", "allocated_bytes", "free_bytes", "parent", "parent_used_bytes", "parent_available_bytes", "backend", "flavor", "capabilities", "embedded")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PARENT_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PARENT_AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    name: str
    health: str
    size_bytes: int
    allocated_bytes: int
    free_bytes: int
    parent: str
    parent_used_bytes: int
    parent_available_bytes: int
    backend: str
    flavor: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    embedded: bool
    def __init__(self, name: _Optional[str] = ..., health: _Optional[str] = ..., size_bytes: _Optional[int] = ..., allocated_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., parent: _Optional[str] = ..., parent_used_bytes: _Optional[int] = ..., parent_available_bytes: _Optional[int] = ..., backend: _Optional[str] = ..., flavor: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., embedded: _Optional[bool] = ...) -> None: ...

class GetPoolResponse(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...
