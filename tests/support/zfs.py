"""ZFS fixtures: a real pool on a sparse file for the whole session.

On hosts with /dev/zfs (the real-kernel tier) the kernel module serves the
pool; elsewhere zfs-fuse does (TESTING.md). zfs-fuse is one daemon per host:
if another session's daemon runs, we use it and never stop it; if we started
it, we stop it (by PID) at the end only when no other session holds a lease
(agent/drivers/embedded/zfs_fuse.py). The pool name is unique per session
and the pool is destroyed at the end, whatever happened.

Fixtures:
  zfs_pool       session: SessionPool(name, mountpoint, path)
  zfs_cmd        session: a ZfsCommand for independent checks (`zfs get -Hp`)
  zfs_parent     per test: a unique dataset name "<pool>/t<N>" (not created)
  zfs_backend    per test, parametrized over "cli" and "lzc" (lzc skipped with the reason where absent)
"""
from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.drivers import zfs as zfsdrv
from agent.drivers.embedded import zfs_fuse
from agent.drivers.zfs.cli import ZfsCommand
from agent.metrics import Metrics

# Only fixtures are star-exported into the conftests; tests import helpers by name.
__all__ = ["zfs_pool", "zfs_cmd", "zfs_parent", "zfs_backend"]

POOL_SIZE = 2 << 30
# "lzc-shim": LzcBackend driven through tests/support/lzc_shim.py, a CLI-based stand-in for
# libzfs_core (which cannot run here): our backend's code runs on every machine; the real
# library runs the same tests as "lzc" where /dev/zfs exists (the real-kernel tier).
ZFS_BACKENDS = ["cli", "lzc", "lzc-shim"]
_counter = itertools.count()


@dataclass(frozen=True)
class SessionPool:
    name: str
    mountpoint: str
    path: Path
    flavor: str                       # "openzfs" | "zfs-fuse"


def zfs_run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the zfs command directly (independent of the agent's code)."""
    return subprocess.run(["zfs", *args], capture_output=True, text=True, check=check,
                          env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


# zfs-fuse releases a dataset asynchronously after its FUSE mount goes away; on a loaded
# 2-core machine "dataset is busy" can last seconds. Tests give the agent this much
# retry time (config [storage].busy_timeout); tests of the busy path set their own.
TEST_BUSY_TIMEOUT = 20.0


def zfs_destroy_tree(name: str) -> None:
    """Test teardown: destroy `name` recursively with the driver's unmount-then-destroy and
    busy retries. A tree zfs-fuse still holds after a minute is left to the pool's destroy
    at the end of the session (with a warning), not turned into a test error."""
    import warnings

    from agent.errors import AgentError
    backend = zfsdrv.open_backend(Metrics(), "cli", busy_timeout=60.0)
    try:
        backend.destroy(name, recursive=True)
    except AgentError as exc:
        warnings.warn(f"teardown left {name} behind: {exc.message}")


def zfs_get(name: str, *props: str) -> dict[str, str]:
    """`zfs get -H -p -o property,value` for one dataset: {prop: value}; {} if it does not exist."""
    proc = zfs_run("get", "-H", "-p", "-o", "property,value", ",".join(props), name, check=False)
    if proc.returncode != 0:
        return {}
    return dict(line.split("\t", 1) for line in proc.stdout.splitlines())


@pytest.fixture(scope="session")
def zfs_pool(tmp_path_factory) -> SessionPool:
    flavor, reason = zfsdrv.detect_flavor()
    if not flavor:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("zfs")
    daemon = lease = None
    if flavor == "zfs-fuse":
        daemon, lease = zfs_fuse.ensure_running(base / "state")
    cmd = ZfsCommand(Metrics())
    name = f"dct{os.getpid()}{secrets.token_hex(2)}"
    # The vdev file lives on a disk-backed directory (/var/tmp): OpenZFS file vdevs on tmpfs misbehave.
    disks = Path(tempfile.mkdtemp(prefix=f"devcloud-zfs-{os.getpid()}-", dir="/var/tmp"))
    pool = zfs_fuse.ensure_file_pool(cmd, name, disks / f"{name}.img", size=POOL_SIZE,
                                     mountpoint=str(base / "mnt"), cachefile=False)
    try:
        yield SessionPool(name, str(base / "mnt"), pool.path, flavor)
    finally:
        try:
            zfs_fuse.destroy_file_pool(cmd, name, pool.path)
            disks.rmdir()
        finally:
            if daemon is not None:
                zfs_fuse.stop_if_unused(daemon, lease)


@pytest.fixture(scope="session")
def zfs_cmd(zfs_pool) -> ZfsCommand:
    return ZfsCommand(Metrics())


@pytest.fixture
def zfs_parent(zfs_pool) -> str:
    """A dataset name unique to this test under the session pool (not created)."""
    return f"{zfs_pool.name}/t{next(_counter)}"


@pytest.fixture(params=ZFS_BACKENDS)
def zfs_backend(request, zfs_pool) -> zfsdrv.ZfsBackend:
    """The same test body against each backend; lzc only where /dev/zfs and libzfs_core exist."""
    if request.param == "lzc-shim":
        from tests.support import lzc_shim
        flavor, version = zfsdrv.detect_flavor()
        return zfsdrv.LzcBackend(Metrics(), lzc_module=lzc_shim, flavor=flavor,
                                 features=zfsdrv.flavor_features(flavor), version=version,
                                 busy_timeout=TEST_BUSY_TIMEOUT)
    if request.param == "lzc":
        reason = zfsdrv.lzc_unavailable_reason()
        if reason:
            pytest.skip(reason)
    backend = zfsdrv.open_backend(Metrics(), request.param, busy_timeout=TEST_BUSY_TIMEOUT)
    assert backend.name == request.param
    return backend


def make_tarball(members: list[tuple] | None = None, *, compression: str = "gz") -> tuple[bytes, str]:
    """Build a small rootfs tarball in memory; returns (bytes, sha256 hex).

    members: (name, kind, payload) with kind in file|dir|symlink|hardlink|chardev;
    payload is the content (file), the target (links) or None. Default: a tiny rootfs.
    """
    import hashlib
    import io
    import tarfile

    if members is None:
        members = [("./", "dir", None), ("./etc", "dir", None), ("./etc/os-release", "file", b"ID=devcloud\n"),
                   ("./bin", "dir", None), ("./bin/tool", "file", b"#!/bin/sh\necho hi\n"),
                   ("./usr", "dir", None), ("./usr/lib", "dir", None),
                   ("./usr/lib/big.bin", "file", bytes(range(256)) * 4096),
                   ("./lib", "symlink", "usr/lib"), ("./etc/alt", "symlink", "/usr/lib/big.bin"),
                   ("./bin/tool2", "hardlink", "bin/tool")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                ti.size = len(payload)
                ti.mode = 0o4755 if name.endswith("tool") else 0o644
                tar.addfile(ti, io.BytesIO(payload))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":       # tar records the target's mode on the link member too
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, payload, 0o4755
            elif kind == "chardev":
                ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 1, 3, 0o666
            tar.addfile(ti)
    data = buf.getvalue()
    if compression == "gz":            # deterministic: same members -> same bytes -> same sha256
        import gzip
        data = gzip.compress(data, mtime=0)
    elif compression == "bz2":
        import bz2
        data = bz2.compress(data)
    elif compression == "xz":
        import lzma
        data = lzma.compress(data)
    return data, hashlib.sha256(data).hexdigest()


def chunked(data: bytes, size: int = 64 << 10):
    """Split bytes into an iterator of chunks (like a client stream)."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def storage_overrides(pool: SessionPool, parent: str) -> list[str]:
    """Agent config overrides that enable the storage plane on the session pool under `parent`."""
    return ["storage.enabled=true", f"storage.pool={pool.name}", f"storage.parent={parent}",
            f"storage.busy_timeout={TEST_BUSY_TIMEOUT}"]


def error_reason(err) -> str:
    """google.rpc.ErrorInfo.reason of a grpc.RpcError ('' if none)."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    status = rpc_status.from_call(err)
    for d in status.details if status else []:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info.reason
    return ""


def upload(stub, image_id: str, data: bytes, sha: str, *, size: int = 0, chunk: int = 256 << 10,
           timeout: float = 120):
    """EnsureImage over the stream: header then chunks. Returns (progress list, result)."""
    from agent._proto.devcloud.agent.v1 import storage_pb2 as pb

    def requests():
        yield pb.EnsureImageRequest(header=pb.ImageHeader(image_id=image_id, sha256=sha, size_bytes=size))
        for i in range(0, len(data), chunk):
            yield pb.EnsureImageRequest(chunk=data[i:i + chunk])
    progress, result = [], None
    for msg in stub.EnsureImage(requests(), timeout=timeout):
        if msg.WhichOneof("msg") == "progress":
            progress.append(msg.progress)
        else:
            result = msg.result
    return progress, result


def cleanup_embedded_storage(state_dir: str | os.PathLike) -> None:
    """Undo what an agent's embedded storage default created in `state_dir` (after the agent
    stopped): destroy each pool whose file is in <state_dir>/disks (pool name = file stem),
    then stop the zfs-fuse that agent started, if it did and nobody else uses it."""
    state = Path(state_dir)
    cmd = ZfsCommand(Metrics())
    for img in sorted((state / "disks").glob("*.img")):
        if cmd.zpool and zfs_fuse.answers(cmd, timeout=5):
            status = subprocess.run(["zpool", "status", img.stem], capture_output=True, text=True).stdout
            if str(img) in status:          # only the pool that lives on this very file
                zfs_fuse.destroy_file_pool(cmd, img.stem, img)
        else:
            img.unlink(missing_ok=True)
    zfs_fuse.stop_recorded(state)
