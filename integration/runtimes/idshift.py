"""Root filesystems for unprivileged containers (lxc.idmap u 0 100000 65536 ...).

An unprivileged container's root (uid 0 inside) is host uid <base> (100000).
Files owned by host uid 0 show up inside as the overflow id 65534 (nobody) and
root cannot write its own /root. Two ways to fix the ownership:

1. An idmapped mount of the rootfs (mount_setattr(MOUNT_ATTR_IDMAP), kernel
   >= 5.12, per filesystem support): the files stay owned by 0 on disk and are
   seen as <base> through the mount. LXC does it itself with
   `lxc.rootfs.options = idmap=container` (lxc 5.0 src/lxc/conf.c
   create_detached_idmapped_mount); Incus probes support per filesystem by
   creating a detached idmapped mount (shared/idmap/shift_linux.go
   CanIdmapMount, used by driver_lxc.go IdmappedStorage/handleIdmappedStorage)
   and falls back to shifting otherwise. util-linux 2.38 (bookworm) has no
   `mount --map-users` (2.39+), so this module does the syscalls with ctypes.

2. A shifted copy: chown every inode by +<base> (uid and gid), then restore
   the setuid/setgid bits chown cleared, shift the uids/gids inside POSIX ACL
   xattrs (system.posix_acl_access/default) and rewrite file capabilities as
   VFS v3 with rootid = <base> (chown drops security.capability; a v2 cap is
   not honoured inside a user namespace). The same steps as Incus's
   shared/idmap/set_linux.go doShiftIntoContainer + shift_linux.go
   (ShiftOwner, ShiftACL, SetCaps/set_vfs_ns_caps). Hard links are shifted once.
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from integration.runtimes.common import ENV, need, stop_pid, wait_for

# x86_64 syscall numbers and flags (linux/mount.h, fcntl.h)
SYS_open_tree = 428
SYS_move_mount = 429
SYS_mount_setattr = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


@dataclass(frozen=True)
class IdMap:
    """One contiguous map for uids and gids: container id 0..count-1 -> host base.."""

    host_uid: int = 100000
    host_gid: int = 100000
    count: int = 65536

    def lxc_lines(self) -> list[str]:
        return [f"lxc.idmap = u 0 {self.host_uid} {self.count}", f"lxc.idmap = g 0 {self.host_gid} {self.count}"]


class UserNs:
    """A user namespace with `idmap`, held by a `unshare --user sleep` process we start
    and stop by PID; `fd` is an O_RDONLY fd of /proc/<pid>/ns/user (for MOUNT_ATTR_IDMAP).
    Root writes the maps directly (no newuidmap/subuid needed)."""

    def __init__(self, idmap: IdMap) -> None:
        self.idmap = idmap
        own = os.readlink("/proc/self/ns/user")
        self.proc = subprocess.Popen([need("unshare", "util-linux"), "--user", "--", "sleep", "600"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=ENV)
        try:
            wait_for(lambda: _ns_of(self.proc.pid) not in (None, own), 5, 0.002, "unshare --user")
            pid = self.proc.pid
            _write(f"/proc/{pid}/uid_map", f"0 {idmap.host_uid} {idmap.count}\n")
            _write(f"/proc/{pid}/setgroups", "deny")
            _write(f"/proc/{pid}/gid_map", f"0 {idmap.host_gid} {idmap.count}\n")
            self.fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            stop_pid(self.proc, timeout=2)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        stop_pid(self.proc, timeout=2)

    def __enter__(self) -> "UserNs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None


def _write(path: str, data: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def detached_idmapped_mount(source: str | os.PathLike, userns: UserNs, *, recursive: bool = False) -> int:
    """open_tree(OPEN_TREE_CLONE) of `source` + mount_setattr(MOUNT_ATTR_IDMAP): returns the
    detached mount's fd (closing it frees the mount), or OSError with the kernel's errno
    (EINVAL: the filesystem does not support idmapped mounts, e.g. FUSE without
    FUSE_ALLOW_IDMAP; EPERM; ENOSYS: kernel < 5.12)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = _check(_libc.syscall(ctypes.c_long(SYS_open_tree), ctypes.c_int(AT_FDCWD),
                              ctypes.c_char_p(os.fsencode(str(source))), ctypes.c_uint(flags)), "open_tree")
    attr = _MountAttr(attr_set=MOUNT_ATTR_IDMAP, attr_clr=0, propagation=0, userns_fd=userns.fd)
    try:
        _check(_libc.syscall(ctypes.c_long(SYS_mount_setattr), ctypes.c_int(fd), ctypes.c_char_p(b""),
                             ctypes.c_uint(AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)),
                             ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
               "mount_setattr(MOUNT_ATTR_IDMAP)")
    except OSError:
        os.close(fd)
        raise
    return fd


def attach_mount(fd: int, target: str | os.PathLike) -> None:
    """move_mount() a detached mount fd onto `target` (then close fd yourself)."""
    _check(_libc.syscall(ctypes.c_long(SYS_move_mount), ctypes.c_int(fd), ctypes.c_char_p(b""),
                         ctypes.c_int(AT_FDCWD), ctypes.c_char_p(os.fsencode(str(target))),
                         ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount")


@dataclass(frozen=True)
class IdmapProbe:
    supported: bool
    errno: int = 0
    error: str = ""
    fstype: str = ""

    def __str__(self) -> str:
        if self.supported:
            return f"idmapped mounts supported on {self.fstype}"
        return f"idmapped mount refused on {self.fstype}: {errno.errorcode.get(self.errno, self.errno)} ({self.error})"


def fstype_of(path: str | os.PathLike) -> str:
    """The filesystem type of the mount holding `path` (longest mountinfo prefix)."""
    path = os.path.realpath(path)
    best, fstype = "", "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            mnt = pre.split()[4].encode().decode("unicode_escape")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, post.split()[0]
    return fstype


def probe_idmapped_mount(path: str | os.PathLike, idmap: IdMap = IdMap()) -> IdmapProbe:
    """Whether `path`'s filesystem accepts an idmapped mount: a detached one, freed at
    once (nothing stays mounted); the errno when refused."""
    fstype = fstype_of(path)
    with UserNs(idmap) as ns:
        try:
            fd = detached_idmapped_mount(path, ns)
        except OSError as exc:
            return IdmapProbe(False, exc.errno or 0, exc.strerror or str(exc), fstype)
        os.close(fd)
    return IdmapProbe(True, fstype=fstype)


def idmapped_bind(source: str | os.PathLike, target: str | os.PathLike, idmap: IdMap) -> None:
    """Mount `source` idmapped onto `target` (umount2(target) to undo)."""
    with UserNs(idmap) as ns:
        fd = detached_idmapped_mount(source, ns)
        try:
            attach_mount(fd, target)
        finally:
            os.close(fd)


# -- shifting ------------------------------------------------------------------------

ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")
CAP_XATTR = "security.capability"
ACL_USER, ACL_GROUP = 0x02, 0x08
VFS_CAP_REVISION_MASK = 0xFF000000
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_REVISION_3 = 0x03000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001


@dataclass
class ShiftStats:
    entries: int = 0
    skipped: int = 0                # outside the source range (left as they are)
    hardlinks: int = 0              # extra names of an inode already shifted
    suid_restored: int = 0
    acls: int = 0
    caps: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def _shift_id(i: int, delta: int, lo: int, count: int) -> int | None:
    return i + delta if lo <= i < lo + count else None


def shift_acl(value: bytes, delta_uid: int, delta_gid: int, lo_uid: int, lo_gid: int, count: int) -> bytes:
    """Shift ACL_USER/ACL_GROUP qualifiers in a posix_acl xattr value (v2: u32 version,
    then entries of u16 tag, u16 perm, u32 id)."""
    if len(value) < 4 or (len(value) - 4) % 8:
        return value
    out = bytearray(value)
    for off in range(4, len(value), 8):
        tag, _perm, qid = struct.unpack_from("<HHI", value, off)
        if tag == ACL_USER:
            new = _shift_id(qid, delta_uid, lo_uid, count)
        elif tag == ACL_GROUP:
            new = _shift_id(qid, delta_gid, lo_gid, count)
        else:
            continue
        if new is not None:
            struct.pack_into("<I", out, off + 4, new)
    return bytes(out)


def caps_v3(value: bytes, rootid: int) -> bytes:
    """security.capability as VFS v3 (20 + 4 bytes) with `rootid` (set_vfs_ns_caps)."""
    if len(value) < 20:
        return value
    magic = struct.unpack_from("<I", value, 0)[0]
    body = value[4:20]
    magic = (magic & ~VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_3
    return struct.pack("<I", magic) + body + struct.pack("<I", rootid)


def caps_rootid(value: bytes) -> int | None:
    if len(value) >= 24 and struct.unpack_from("<I", value, 0)[0] & VFS_CAP_REVISION_MASK == VFS_CAP_REVISION_3:
        return struct.unpack_from("<I", value, 20)[0]
    return None


def shift_tree(root: str | os.PathLike, idmap: IdMap = IdMap(), *, unshift: bool = False,
               on_error: str = "raise") -> ShiftStats:
    """Shift every inode below (and including) `root` into `idmap` (0.. -> host base..),
    or back with unshift=True. Ids outside the source range are left alone (counted in
    `skipped`). Symlinks are lchown'ed, never followed; mount points are not crossed."""
    t0 = time.monotonic()
    st_root = os.lstat(root)
    dev = st_root.st_dev
    du, dg = (idmap.host_uid, idmap.host_gid) if not unshift else (-idmap.host_uid, -idmap.host_gid)
    lo_u, lo_g = (0, 0) if not unshift else (idmap.host_uid, idmap.host_gid)
    new_rootid = idmap.host_uid if not unshift else 0
    stats = ShiftStats()
    seen: set[int] = set()

    def one(path: str, st: os.stat_result) -> None:
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if st.st_ino in seen:
                stats.hardlinks += 1
                return
            seen.add(st.st_ino)
        stats.entries += 1
        nu = _shift_id(st.st_uid, du, lo_u, idmap.count)
        ng = _shift_id(st.st_gid, dg, lo_g, idmap.count)
        if nu is None and ng is None:
            stats.skipped += 1
            return
        is_link = stat.S_ISLNK(st.st_mode)
        xattrs: list[str] = []
        caps = None
        if not is_link:
            try:
                xattrs = os.listxattr(path, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
            if CAP_XATTR in xattrs:
                caps = os.getxattr(path, CAP_XATTR, follow_symlinks=False)
        os.chown(path, -1 if nu is None else nu, -1 if ng is None else ng, follow_symlinks=False)
        if not is_link:
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISDIR(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode))        # chown cleared setuid/setgid
                stats.suid_restored += 1
            for name in ACL_XATTRS:
                if name in xattrs:
                    v = os.getxattr(path, name, follow_symlinks=False)
                    nv = shift_acl(v, du, dg, lo_u, lo_g, idmap.count)
                    if nv != v:
                        os.setxattr(path, name, nv, follow_symlinks=False)
                        stats.acls += 1
            if caps is not None:
                os.setxattr(path, CAP_XATTR, caps_v3(caps, new_rootid), follow_symlinks=False)
                stats.caps += 1

    def guarded(path: str, st: os.stat_result) -> None:
        try:
            one(path, st)
        except OSError as exc:
            if on_error == "raise":
                raise
            stats.errors.append(f"{path}: {exc}")

    guarded(str(root), st_root)
    stack = [str(root)]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                guarded(e.path, st)
                if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                    stack.append(e.path)
    stats.seconds = time.monotonic() - t0
    return stats


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> float:
    """`cp -a --reflink=auto src/. dst/` (owners, modes, xattrs, ACLs, hard links); seconds."""
    t0 = time.monotonic()
    os.makedirs(dst, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", f"{src}/.", f"{dst}/"], check=True, env=ENV,
                   capture_output=True)
    return time.monotonic() - t0
