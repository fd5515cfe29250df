"""uid/gid maps on files: whether a filesystem takes idmapped mounts, and shifting
a tree's owners into a map (the shifted image variants of unprivileged roots).

Idmapped mounts (Linux >= 5.12, per filesystem): a detached `open_tree` clone of
a path + `mount_setattr(MOUNT_ATTR_IDMAP)` with a user namespace holding the
map; refused with EINVAL where the filesystem lacks FS_ALLOW_IDMAP (zfs-fuse
and FUSE in general here; OpenZFS supports it from 2.2, openzfs/zfs 2a068a1394).
The probe makes such a mount and frees it at once: nothing stays mounted. The
user namespace is held by an `unshare --user sleep` child we start and stop by
PID; root writes its maps directly (no newuidmap, no /etc/subuid).

Shifting (Incus shared/idmap doShiftIntoContainer): chown every inode by the
map's base (uid and gid), restore the setuid/setgid bits chown cleared, shift
the ids in POSIX ACL xattrs, rewrite file capabilities as VFS v3 with
rootid = the map's base (a v2 cap is not honoured inside a user namespace).
Symlinks are lchown'ed, never followed; mount points are not crossed; hard
links are shifted once; ids outside 0..count-1 are left as they are.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import time
from dataclasses import dataclass

from agent.drivers.base import Availability
from agent.errors import AgentError, FailedPrecondition, Internal, from_oserror
from agent.model.idmap import IdMap

_SYS_OPEN_TREE = 428                 # x86_64 / aarch64 share these (asm-generic numbering)
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = 0o2000000
_MOUNT_ATTR_IDMAP = 0x00100000
IDMAP_MIN_OPENZFS = (2, 2)
IDMAP_MIN_LINUX = (5, 12)
_ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")
CAP_XATTR = "security.capability"
_ACL_USER, _ACL_GROUP = 0x02, 0x08
_VFS_CAP_REVISION_MASK = 0xFF000000
_VFS_CAP_REVISION_3 = 0x03000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


@dataclass(frozen=True)
class ShiftStats:
    """What a shift did."""

    entries: int
    skipped: int                    # owners outside the source range, left alone
    suid_restored: int
    acls: int
    caps: int
    seconds: float


def fstype_of(path: str) -> str:
    """The filesystem type of the mount holding `path` (longest mountinfo prefix); "?" when
    unknown. Read-only; never raises."""
    path = os.path.realpath(path)
    best, fstype = "", "?"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                mnt = pre.split()[4].encode().decode("unicode_escape")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, fstype = mnt, post.split()[0]
    except OSError:
        pass
    return fstype


class _UserNs:
    """A user namespace with `idmap`, held by an `unshare --user sleep` child (stopped by PID);
    `fd` opens its /proc/<pid>/ns/user."""

    def __init__(self, idmap: IdMap) -> None:
        unshare = shutil.which("unshare", path=_ENV["PATH"])
        if not unshare:
            raise FailedPrecondition("unshare is not installed (apt install util-linux)", reason="NOT_SUPPORTED")
        own = os.readlink("/proc/self/ns/user")
        self.proc = subprocess.Popen([unshare, "--user", "--", "sleep", "60"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV)
        self.fd = -1
        try:
            end = time.monotonic() + 5
            while _userns_of(self.proc.pid) in (None, own):
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise Internal("unshare --user did not make a user namespace", reason="USERNS_FAILED")
                time.sleep(0.002)
            pid = self.proc.pid
            _write(f"/proc/{pid}/uid_map", f"0 {idmap.host_uid} {idmap.count}\n")
            _write(f"/proc/{pid}/setgroups", "deny")
            _write(f"/proc/{pid}/gid_map", f"0 {idmap.host_gid} {idmap.count}\n")
            self.fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)


def _userns_of(pid: int) -> str | None:
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


def probe_idmapped_mount(path: str, idmap: IdMap = IdMap(100000, 100000, 65536), *,
                         zfs_flavor: str = "", zfs_version: str = "") -> Availability:
    """Whether the filesystem holding `path` takes idmapped mounts: a detached one is made and
    freed at once. Available with the fstype as version; missing with the kernel's errno and
    words (EINVAL: the filesystem does not support them; ENOSYS: kernel < 5.12). Where no user
    namespace can be made to probe with (the shipped unit's RestrictNamespaces=net), the answer
    comes from the versions (`by_version`, feature "by-version"). Never raises."""
    fstype = fstype_of(path)
    try:
        ns = _UserNs(idmap)
    except (AgentError, OSError) as exc:
        return by_version(fstype, zfs_flavor, zfs_version, f"cannot make a user namespace to probe with: {exc}")
    try:
        fd = _libc.syscall(ctypes.c_long(_SYS_OPEN_TREE), ctypes.c_int(_AT_FDCWD),
                           ctypes.c_char_p(os.fsencode(path)), ctypes.c_uint(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC))
        if fd < 0:
            e = ctypes.get_errno()
            return Availability.missing(f"open_tree({path}): {errno.errorcode.get(e, e)} ({os.strerror(e)})", fstype)
        try:
            attr = _MountAttr(attr_set=_MOUNT_ATTR_IDMAP, attr_clr=0, propagation=0, userns_fd=ns.fd)
            rc = _libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(fd), ctypes.c_char_p(b""),
                               ctypes.c_uint(_AT_EMPTY_PATH), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
            if rc < 0:
                e = ctypes.get_errno()
                return Availability.missing(f"{fstype} refuses idmapped mounts: mount_setattr(MOUNT_ATTR_IDMAP): "
                                            f"{errno.errorcode.get(e, e)} ({os.strerror(e)})", fstype)
        finally:
            os.close(fd)
    finally:
        ns.close()
    return Availability.ok(fstype, ("idmapped-mount",))


def by_version(fstype: str, zfs_flavor: str, zfs_version: str, why_not_probed: str) -> Availability:
    """What the versions promise where the probe cannot run: OpenZFS >= 2.2 (FS_ALLOW_IDMAP,
    openzfs/zfs 2a068a1394) on Linux >= 5.12 takes idmapped mounts; anything else is reported
    missing with `why_not_probed`. Pure; never raises."""
    kernel = os.uname().release
    if fstype == "zfs" and zfs_flavor == "openzfs" and _release(zfs_version) >= IDMAP_MIN_OPENZFS \
            and _release(kernel) >= IDMAP_MIN_LINUX:
        return Availability.ok(fstype, ("idmapped-mount", "by-version"))
    return Availability.missing(f"{why_not_probed} (and by version: {fstype} {zfs_flavor} {zfs_version or '?'} "
                                f"on Linux {kernel} needs OpenZFS >= 2.2 on Linux >= 5.12)", fstype)


def _release(version: str) -> tuple[int, ...]:
    """(major, minor) of "2.3.2-1" or "6.1.0-57-amd64"; () when there is none."""
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2])


# -- shifting ---------------------------------------------------------------------------


def _in(i: int, lo: int, count: int) -> bool:
    return lo <= i < lo + count


def _shift_acl(value: bytes, idmap: IdMap) -> bytes:
    """ACL_USER/ACL_GROUP qualifiers of a posix_acl xattr shifted into the map (v2 layout:
    u32 version, then u16 tag, u16 perm, u32 id per entry)."""
    if len(value) < 4 or (len(value) - 4) % 8:
        return value
    out = bytearray(value)
    for off in range(4, len(value), 8):
        tag, _perm, qid = struct.unpack_from("<HHI", value, off)
        if tag == _ACL_USER and _in(qid, 0, idmap.count):
            struct.pack_into("<I", out, off + 4, qid + idmap.host_uid)
        elif tag == _ACL_GROUP and _in(qid, 0, idmap.count):
            struct.pack_into("<I", out, off + 4, qid + idmap.host_gid)
    return bytes(out)


def _caps_v3(value: bytes, rootid: int) -> bytes:
    """security.capability as VFS v3 (24 bytes) with `rootid`."""
    if len(value) < 20:
        return value
    magic = (struct.unpack_from("<I", value, 0)[0] & ~_VFS_CAP_REVISION_MASK) | _VFS_CAP_REVISION_3
    return struct.pack("<I", magic) + value[4:20] + struct.pack("<I", rootid)


def shift_tree(root: str, idmap: IdMap) -> ShiftStats:
    """Shift every inode below (and including) `root` from ids 0.. into the map. Not
    idempotent (a second shift moves ids again): run it once, on a fresh clone. Raises the
    translated OSError of the first inode that cannot be changed (e.g. FailedPrecondition
    PERMISSION: the agent lacks CAP_CHOWN/CAP_FOWNER/CAP_SETFCAP)."""
    t0 = time.monotonic()
    st_root = os.lstat(root)
    dev = st_root.st_dev
    seen: set[int] = set()
    n = dict(entries=0, skipped=0, suid_restored=0, acls=0, caps=0)

    def one(path: str, st: os.stat_result) -> None:
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if st.st_ino in seen:
                return
            seen.add(st.st_ino)
        n["entries"] += 1
        uid_in, gid_in = _in(st.st_uid, 0, idmap.count), _in(st.st_gid, 0, idmap.count)
        if not (uid_in or gid_in):
            n["skipped"] += 1
            return
        link = stat.S_ISLNK(st.st_mode)
        xattrs: list[str] = []
        caps = None
        if not link:
            try:
                xattrs = os.listxattr(path, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
            if CAP_XATTR in xattrs:
                caps = os.getxattr(path, CAP_XATTR, follow_symlinks=False)
        os.chown(path, st.st_uid + idmap.host_uid if uid_in else -1, st.st_gid + idmap.host_gid if gid_in else -1,
                 follow_symlinks=False)
        if link:
            return
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISDIR(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))            # chown cleared setuid/setgid
            n["suid_restored"] += 1
        for name in ACL_XATTRS:
            if name in xattrs:
                v = os.getxattr(path, name, follow_symlinks=False)
                nv = _shift_acl(v, idmap)
                if nv != v:
                    os.setxattr(path, name, nv, follow_symlinks=False)
                    n["acls"] += 1
        if caps is not None:
            os.setxattr(path, CAP_XATTR, _caps_v3(caps, idmap.host_uid), follow_symlinks=False)
            n["caps"] += 1

    try:
        one(root, st_root)
        stack = [root]
        while stack:
            d = stack.pop()
            with os.scandir(d) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    one(e.path, st)
                    if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                        stack.append(e.path)
    except OSError as exc:
        raise from_oserror(exc, f"shift {getattr(exc, 'filename', None) or root} into {idmap.mark()}") from None
    return ShiftStats(seconds=time.monotonic() - t0, **n)


def untraversable(path: str, uid: int, gid: int) -> str:
    """The first directory on the way to `path` (itself included) that host uid/gid cannot
    enter (no x for them by owner, group or other bits), as "<dir> (mode 0700, owner 0:0)";
    "" when every one can be entered. Read-only; a missing component is reported too."""
    parts = os.path.abspath(path).split("/")
    cur = "/"
    for p in [""] + parts[1:]:
        cur = os.path.join(cur, p) if p else cur
        try:
            st = os.stat(cur)
        except OSError as exc:
            return f"{cur} ({exc.strerror})"
        mode = st.st_mode
        ok = (st.st_uid == uid and mode & stat.S_IXUSR) or (st.st_gid == gid and mode & stat.S_IXGRP) \
            or mode & stat.S_IXOTH
        if not ok:
            return f"{cur} (mode {stat.S_IMODE(mode):04o}, owner {st.st_uid}:{st.st_gid})"
    return ""
