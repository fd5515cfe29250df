"""ZFS driver: one interface (backend.ZfsBackend), two backends chosen by probing.

- `lzc`: libzfs_core (python3-pyzfs) where /dev/zfs exists: in-process ioctls.
- `cli`: the zfs/zpool commands, against OpenZFS or zfs-fuse.

`open_backend(metrics, "auto")` picks lzc when /dev/zfs and libzfs_core are
both present, the CLI otherwise. The backend's probe() reports
`backend:<name>`, `flavor:<openzfs|zfs-fuse>` and capabilities (`zvol`,
`multi_set`, `multi_snapshot`) as data; pool features (lz4, encryption)
come from pool().features.
"""
from __future__ import annotations

import os
from pathlib import Path

from agent.metrics import Metrics

from .backend import BUSY_TIMEOUT, ZfsBackend, is_reason
from .cli import ZfsCommand, find_binary
from .cli_backend import CliBackend
from .lzc import LzcBackend, load_module
from .model import MAX_NAME_LEN, DatasetInfo, PoolInfo

__all__ = ["ZfsBackend", "CliBackend", "LzcBackend", "DatasetInfo", "PoolInfo", "open_backend",
           "detect_flavor", "flavor_features", "lzc_unavailable_reason", "is_reason", "MAX_NAME_LEN", "BUSY_TIMEOUT"]

DEV_ZFS = "/dev/zfs"
ZFS_FUSE_SOCKET = "/var/run/zfs/zfs_socket"


def detect_flavor() -> tuple[str, str]:
    """("openzfs", version) where /dev/zfs exists, ("zfs-fuse", "") where the zfs-fuse
    binary is installed, ("", reason) where neither is."""
    if os.path.exists(DEV_ZFS):
        try:
            version = Path("/sys/module/zfs/version").read_text().strip()
        except OSError:
            version = ""
        return "openzfs", version
    if os.path.exists(ZFS_FUSE_SOCKET) or find_binary("zfs-fuse"):
        return "zfs-fuse", "zfs-fuse"
    return "", ("no ZFS here: /dev/zfs is missing (load the zfs kernel module: apt install zfs-dkms "
                "zfsutils-linux) and zfs-fuse is not installed (apt install zfs-fuse)")


def flavor_features(flavor: str) -> tuple[str, ...]:
    """What the ZFS implementation itself can do (pool features are separate)."""
    if flavor == "openzfs":
        return ("zvol", "multi_set", "multi_snapshot")
    return ()        # zfs-fuse: no zvols, one property per set, one snapshot per command


def lzc_unavailable_reason() -> str:
    """'' when the lzc backend can run here, else why not."""
    if not os.path.exists(DEV_ZFS):
        return "needs /dev/zfs and libzfs_core (python3-pyzfs); runs in the real-kernel tier"
    _, reason = load_module()
    return reason


# zfs/zpool commands in flight against zfs-fuse. Measured (16 threads cloning and destroying
# under one parent, 150 s): 4 in flight leaks datasets that stay "busy" forever or wedges the
# daemon (a FUSE lookup never answered); 1 in flight did 4,035 cycles with no error at about
# the same rate (27/s against 32/s): the daemon serializes them anyway.
ZFS_FUSE_MAX_PARALLEL = 1


def open_backend(metrics: Metrics, preference: str = "auto", *,
                 busy_timeout: float = BUSY_TIMEOUT) -> ZfsBackend:
    """Build the backend for this host. Never raises: an unusable host gives a
    backend whose probe() says why and whose calls raise FailedPrecondition."""
    flavor, version_or_reason = detect_flavor()
    version = version_or_reason if flavor else ""
    features = flavor_features(flavor)
    if preference in ("auto", "lzc") and flavor == "openzfs":
        module, reason = load_module()
        if module is not None:
            return LzcBackend(metrics, lzc_module=module, flavor=flavor, features=features, version=version,
                              busy_timeout=busy_timeout, cmd=ZfsCommand(metrics, backend="lzc"))
        if preference == "lzc":
            return _disabled(metrics, flavor, f"backend lzc requested but {reason}")
    elif preference == "lzc":
        return _disabled(metrics, flavor, "backend lzc requested but " + lzc_unavailable_reason())
    if not flavor:
        return _disabled(metrics, flavor, version_or_reason)
    cmd = ZfsCommand(metrics, backend="cli", max_parallel=ZFS_FUSE_MAX_PARALLEL if flavor == "zfs-fuse" else 0)
    return CliBackend(metrics, flavor=flavor, features=features, version=version, busy_timeout=busy_timeout,
                      cmd=cmd)


def _disabled(metrics: Metrics, flavor: str, reason: str) -> ZfsBackend:
    cmd = ZfsCommand(metrics, backend="cli")
    cmd.disabled_reason = reason
    return CliBackend(metrics, flavor=flavor or "none", features=(), cmd=cmd)
