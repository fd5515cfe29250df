"""Where the agent's cgroup subtree is and which controllers it may use.

<root> is [compute].cgroup_root; by default <cgroup2 mount>/devcloud.slice,
outside the agent's own unit so that stopping or restarting the agent (systemd
kills every process of a unit's cgroup) never kills the workloads (LXD's
lxc.payload.* lives at the root for the same reason). A root configured inside
the agent's own cgroup (systemd Delegate=yes) is "delegated mode". Controllers are enabled top-down from the
"anchor" (the mount root, or the delegated cgroup: never above it) only as
far as a request needs them. In delegated mode the agent's own processes are
first moved into <root>/supervisor (cgroup v2: no processes in inner nodes).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from agent.drivers import procfs
from agent.drivers.base import Availability, require
from agent.errors import FailedPrecondition, NotFound, from_oserror
from agent.metrics import Metrics
from agent.model.compute import HostFacts, parse_cpulist

from . import fs

SUPERVISOR = "supervisor"
DEFAULT_ROOT_NAME = "devcloud.slice"
DELEGATE_XATTRS = ("trusted.delegate", "user.delegate")
_V1_NAMES = {"io": "blkio"}          # v2 controller -> its v1 name


def is_delegated(path: str) -> bool:
    """systemd marks a cgroup it delegated (Delegate=yes) with trusted.delegate / user.delegate = 1."""
    for name in DELEGATE_XATTRS:
        try:
            if os.getxattr(path, name).strip() == b"1":
                return True
        except OSError:
            continue
    return False


def resolve_root(root: str = "", mount: str | None = None, own: str | None = None) -> str:
    """The agent's subtree: `root` if configured, else <cgroup2 mount>/devcloud.slice
    ("" without cgroup2). Never the agent's own unit cgroup by default: workloads
    there would die with every `systemctl stop`. `own` is kept for the signature."""
    if root:
        return os.path.normpath(root)
    mount = (procfs.cgroup2_mount() if mount is None else mount).rstrip("/")
    return f"{mount}/{DEFAULT_ROOT_NAME}" if mount else ""


def parse_controllers(text: str | None) -> set[str]:
    """'cpu memory' or '+cpu +memory' (cgroup.controllers / subtree_control) -> {'cpu', 'memory'};
    None -> set(). Pure."""
    # A plain directory tree keeps our "+cpu" words verbatim: accept both forms.
    return {w.lstrip("+") for w in (text or "").split()}


class Hierarchy:
    """The subtree: its place, its controllers, enabling them; the base of CgroupDriver."""

    def __init__(self, metrics: Metrics, *, root: str = "", mount: str | None = None,
                 own: str | None = None, plain: bool = False) -> None:
        """root: the agent's subtree ("" = automatic, see the module doc).
        mount/own: the cgroup2 mount point and this process's cgroup (default:
        read from /proc/self). plain=True: `mount` is a plain directory tree
        (formatting unit tests): files are created on write, absent files read
        as the kernel defaults, and nothing waits for kernel events.
        """
        self._metrics = metrics
        self._plain = plain
        self.mount = (procfs.cgroup2_mount() if mount is None else mount).rstrip("/")
        own_rel = procfs.own_cgroup_v2() if own is None else own
        self.own = f"{self.mount}{own_rel}" if self.mount and own_rel not in ("", "/") else ""
        self.root = resolve_root(root, self.mount, self.own)
        self.delegated = bool(self.own) and (self.root == self.own or self.root.startswith(self.own + "/"))
        self.anchor = self.own if self.delegated else self.mount
        self._lock = threading.Lock()
        self._page_sizes: tuple[str, ...] | None = None

    # ------------------------------------------------------------ facility

    def probe(self) -> Availability:
        """Reads the anchor's cgroup.controllers (and /proc/self/mountinfo for the mount)."""
        try:
            if not self.mount:
                v1 = procfs.cgroup_v1_controllers()
                return Availability.missing(
                    "no cgroup2 hierarchy is mounted" + (f" (controllers on cgroup v1: {', '.join(v1)})" if v1 else "")
                    + "; the compute plane supports cgroup v2 only: boot with systemd.unified_cgroup_hierarchy=1 "
                      "or mount cgroup2", version=os.uname().release)
            if not self.root.startswith(self.mount + "/"):
                return Availability.missing(f"[compute].cgroup_root {self.root!r} is not below the cgroup2 "
                                            f"mount {self.mount}")
            text = fs.read(os.path.join(self.anchor, "cgroup.controllers"))
            if text is None:
                return Availability.missing(f"{self.anchor}/cgroup.controllers is unreadable: is {self.anchor} "
                                            "a cgroup2 directory?")
            return Availability.ok(os.uname().release, sorted(parse_controllers(text)))
        except Exception as exc:      # probe never raises
            return Availability.missing(f"probing cgroup v2 failed: {exc}")

    def _require(self) -> None:
        require("cgroup v2", self.probe())

    def available_controllers(self) -> set[str]:
        """Controllers the subtree can use (the anchor's cgroup.controllers); an absent file -> set().
        Read-only. Raises a translated OSError when the file cannot be read."""
        return parse_controllers(fs.read(os.path.join(self.anchor, "cgroup.controllers")))

    def require_controllers(self, need: set[str]) -> None:
        """Return when every controller of `need` is available to the subtree; else raise
        FailedPrecondition CONTROLLER_UNAVAILABLE naming each missing one and why (bound to
        cgroup v1, not delegated, not offered by the anchor). Read-only, idempotent."""
        missing = sorted(need - self.available_controllers())
        if not missing:
            return
        v1 = set(procfs.cgroup_v1_controllers())
        why = []
        for c in missing:
            if _V1_NAMES.get(c, c) in v1:
                why.append(f"{c}: bound to cgroup v1 on this host")
            elif self.delegated:
                why.append(f"{c}: not delegated to {self.anchor} (add it to the unit's Delegate=)")
            else:
                why.append(f"{c}: not in {self.anchor}/cgroup.controllers")
        raise FailedPrecondition(
            f"cgroup v2 controller{'s' if len(missing) > 1 else ''} {', '.join(missing)} not available "
            f"for limits on this host ({'; '.join(why)}); a cgroup v2-only host "
            "(systemd.unified_cgroup_hierarchy=1) provides them",
            reason="CONTROLLER_UNAVAILABLE", metadata={"controllers": ",".join(missing)})

    def host_facts(self) -> HostFacts:
        """Reads /sys/devices/system/{cpu,node}/online and the hugepage sizes."""
        cpus = parse_cpulist(procfs.read_text("/sys/devices/system/cpu/online", "0"))
        mems = parse_cpulist(procfs.read_text("/sys/devices/system/node/online", "0"))
        return HostFacts(cpus, mems, self.page_sizes(), block_device)

    def page_sizes(self) -> tuple[str, ...]:
        """Hugepage sizes of this host as the kernel names them in hugetlb files ("2MB", "1GB"),
        smallest first; () without hugetlbfs support. Read once, then cached; never raises."""
        if self._page_sizes is None:
            sizes = []
            try:
                for name in os.listdir("/sys/kernel/mm/hugepages"):
                    kb = int(name.removeprefix("hugepages-").removesuffix("kB"))
                    sizes.append((kb, f"{kb >> 20}GB" if kb % (1 << 20) == 0 else
                                  f"{kb >> 10}MB" if kb % (1 << 10) == 0 else f"{kb}KB"))
            except (OSError, ValueError):
                pass
            self._page_sizes = tuple(s for _, s in sorted(sizes))
        return self._page_sizes

    @contextmanager
    def _time(self, op: str) -> Iterator[None]:
        with self._metrics.time(self._metrics.cgroup_op, op=op):
            yield

    def _ensure_root(self) -> None:
        if os.path.isdir(self.root):
            return
        with self._lock:
            if not os.path.isdir(os.path.dirname(self.root)):
                raise FailedPrecondition(f"the parent of [compute].cgroup_root {self.root} does not exist",
                                         reason="CGROUP_ROOT_MISSING")
            try:
                os.mkdir(self.root)
            except FileExistsError:
                pass
            except OSError as exc:
                raise from_oserror(exc, f"mkdir {self.root}") from None

    def _enabled(self, cgroup: str) -> set[str]:
        return parse_controllers(fs.read(os.path.join(cgroup, "cgroup.subtree_control")))

    def _enable_chain(self, parent: str, need: set[str]) -> None:
        """Enable `need` in cgroup.subtree_control from the anchor down to `parent`."""
        if not need:
            return
        rel = os.path.relpath(parent, self.anchor)
        chain = [self.anchor]
        for part in ([] if rel == "." else rel.split("/")):
            chain.append(os.path.join(chain[-1], part))
        for cg in chain:
            have = self._enabled(cg)
            if need <= have:
                continue
            if cg != self.mount and fs.procs(cg):
                if cg == self.anchor and self.delegated:
                    self._move_to_supervisor(cg)
                else:
                    raise FailedPrecondition(f"{cg} holds processes, so controllers cannot be enabled below it "
                                             "(cgroup v2 'no internal processes' rule)", reason="CGROUP_BUSY",
                                             metadata={"cgroup": cg})
            with self._time("enable_controllers"):
                fs.write(os.path.join(cg, "cgroup.subtree_control"),
                         " ".join(f"+{c}" for c in sorted(have | need)), create=self._plain)

    def _move_to_supervisor(self, cg: str) -> None:
        """Delegated mode: move the agent's processes out of its own cgroup into a leaf."""
        with self._lock:
            sup = os.path.join(cg, SUPERVISOR)
            try:
                os.mkdir(sup)
            except FileExistsError:
                pass
            except OSError as exc:
                raise from_oserror(exc, f"mkdir {sup}") from None
            for _ in range(10):
                pids = fs.procs(cg)
                if not pids:
                    return
                for pid in pids:
                    try:
                        fs.write(os.path.join(sup, "cgroup.procs"), str(pid))
                    except NotFound:          # exited meanwhile
                        pass
            raise FailedPrecondition(f"processes keep appearing in {cg}; cannot empty it into {sup}",
                                     reason="CGROUP_BUSY")




def subdirs(path: str) -> list[str]:
    """Names of the directories directly in `path` (symlinks not followed), sorted; [] when `path`
    is absent. Read-only. Raises the translated OSError otherwise."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise from_oserror(exc, f"scandir {path}") from None


def block_device(dev: str) -> str:
    """What block device "MAJ:MIN" is on this host: "disk", "partition" or "missing" (sysfs).
    Read-only; never raises."""
    base = f"/sys/dev/block/{dev}"
    if not os.path.exists(base):
        return "missing"
    return "partition" if os.path.exists(f"{base}/partition") else "disk"

