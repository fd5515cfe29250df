"""Reads of /proc and /sys that several planes share (mounts, cgroups, meminfo).

Pure reads, no side effects; every function tolerates a missing file and
returns an empty result rather than raising.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str
    source: str
    options: tuple[str, ...]     # per-mount + super-block options


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal \040 etc.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every mount of this process's mount namespace, in mount order."""
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 6 or len(rf) < 2:
            continue
        opts = tuple(lf[5].split(",")) + (tuple(rf[2].split(",")) if len(rf) > 2 else ())
        out.append(Mount(_unescape(lf[4]), rf[0], _unescape(rf[1]), opts))
    return out


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str:
    """Mount point of the cgroup2 hierarchy ('' if none). Prefers /sys/fs/cgroup."""
    points = [m.mount_point for m in mounts(mountinfo) if m.fstype == "cgroup2"]
    if "/sys/fs/cgroup" in points:
        return "/sys/fs/cgroup"
    return points[0] if points else ""


def cgroup_v1_controllers(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Controllers bound to cgroup v1 hierarchies (e.g. ['cpu', 'memory'])."""
    known = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
             "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"}
    found: list[str] = []
    for m in mounts(mountinfo):
        if m.fstype == "cgroup":
            found.extend(o for o in m.options if o in known and o not in found)
    return sorted(found)


def own_cgroup_v2(proc_cgroup: str = "/proc/self/cgroup") -> str:
    """This process's cgroup v2 path relative to the cgroup2 root ('/' if at root)."""
    try:
        for line in Path(proc_cgroup).read_text().splitlines():
            if line.startswith("0::"):
                return line[3:] or "/"
    except OSError:
        pass
    return ""


def read_text(path: str | Path, default: str = "") -> str:
    """Contents of a small kernel file, stripped; `default` if unreadable."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """/proc/meminfo as bytes (values in kB are converted; counts kept as is)."""
    out: dict[str, int] = {}
    for line in read_text(path).splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def status_field(pid: int, key: str) -> str:
    """One field of /proc/<pid>/status ("" if the process or the field is missing)."""
    for line in read_text(f"/proc/{pid}/status").splitlines():
        k, _, v = line.partition(":")
        if k == key:
            return v.strip()
    return ""


def thread_group(tid: int) -> int:
    """The process (thread group id) a task id belongs to; 0 when there is no such task.
    /proc/<tid> resolves thread ids too, and cgroup.procs moves the whole group of a tid."""
    tgid = status_field(tid, "Tgid")
    return int(tgid) if tgid.isdigit() else 0


def ancestors(pid: int, limit: int = 64) -> list[int]:
    """Parent, grandparent, ... of a process up to init (bounded)."""
    out: list[int] = []
    while len(out) < limit:
        ppid = status_field(pid, "PPid")
        if not ppid.isdigit() or int(ppid) <= 0:
            break
        pid = int(ppid)
        out.append(pid)
        if pid == 1:
            break
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def mount_holders(mountpoint: str, limit: int = 5) -> list[str]:
    """Who keeps `mountpoint` busy, in words an operator can act on: processes with their
    working directory, root, an open file or a mapping under it, and other mount namespaces
    holding a copy of the mount (a process started with its own mount table, e.g. by
    `ip netns exec` or `unshare -m`, keeps every mount of that moment). Error path only:
    scans /proc. At most `limit` of each kind."""
    import os
    if not mountpoint.startswith("/"):
        return []
    mine = _ns(os.getpid())
    files: list[str] = []
    namespaces: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        comm = read_text(f"/proc/{pid}/comm", "?")
        if len(files) < limit:
            what = _uses(pid, mountpoint)
            if what:
                files.append(f"pid {pid} ({comm}) has {what} there")
        ns = _ns(pid)
        if ns and ns != mine and ns not in namespaces and len(namespaces) < limit:
            if any(_under(m.mount_point, mountpoint) for m in mounts(f"/proc/{pid}/mountinfo")):
                namespaces[ns] = f"the mount namespace of pid {pid} ({comm}) holds its own copy of the mount"
    return files + list(namespaces.values())


def _ns(pid: int) -> int:
    import os
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return 0


def _uses(pid: int, root: str) -> str:
    import os
    for link, what in (("cwd", "its working directory"), ("root", "its root directory"), ("exe", "its program")):
        try:
            if _under(os.readlink(f"/proc/{pid}/{link}"), root):
                return what
        except OSError:
            pass
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if _under(os.readlink(f"/proc/{pid}/fd/{fd}"), root):
                    return "a file open"
            except OSError:
                continue
    except OSError:
        pass
    for line in read_text(f"/proc/{pid}/maps").splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and _under(parts[5], root):
            return "a file mapped"
    return ""
