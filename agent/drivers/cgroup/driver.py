"""cgroup v2 driver: a slice per team, a scope per instance, under the agent's subtree.

Layout (deterministic, computable before anything exists):

    <root>/<team>.slice                 team slice (limits shared by the team)
    <root>/<team>.slice/<instance>.scope  instance scope (limits, processes)
    <root>/supervisor                   the agent's own processes, in delegated mode only

<root> is [compute].cgroup_root; by default the agent's own cgroup when
systemd delegated it (Delegate=yes: trusted.delegate / user.delegate xattr),
else <cgroup2 mount>/devcloud.slice. Controllers are enabled top-down from the
"anchor" (the mount root, or the delegated cgroup: never above it) only as
far as a request needs them. Every slice and scope carries our mark, one
xattr (user.devcloud.owner); a cgroup without it is never changed or removed.
Before a mkdir the parent records the intent (user.devcloud.pending.<name>),
so a directory left unmarked by a crash is recognised and adopted later.
"""
from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from agent import validation
from agent.drivers import procfs
from agent.drivers.base import Availability, require
from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, from_oserror
from agent.metrics import Metrics

from . import fs
from .limits import (HostFacts, MissingFile, files_for, default_text, observed_limits, parse_cpulist,
                     plan, required_controllers)
from .model import LIMIT_CONTROLLERS, SCOPE, SLICE, CgroupInfo, LimitDrift, Limits, Mark, Stats
from .stats import read_stats

MARK_XATTR = "user.devcloud.owner"
PENDING_XATTR = "user.devcloud.pending."
OWNER = "devcloud-agent"
SUPERVISOR = "supervisor"
DEFAULT_ROOT_NAME = "devcloud.slice"
DELEGATE_XATTRS = ("trusted.delegate", "user.delegate")
_V1_NAMES = {"io": "blkio"}          # v2 controller -> its v1 name


def encode_mark(mark: Mark) -> bytes:
    parts = [f"owner={OWNER}", f"kind={mark.kind}", f"team={mark.team}"]
    if mark.instance:
        parts.append(f"instance={mark.instance}")
    return " ".join(parts).encode()


def decode_mark(raw: bytes | None) -> Mark | None:
    """Our mark from the xattr value; None if absent or written by someone else."""
    if not raw:
        return None
    kv = dict(p.partition("=")[::2] for p in raw.decode(errors="replace").split())
    if kv.get("owner") != OWNER or kv.get("kind") not in (SLICE, SCOPE) or not kv.get("team"):
        return None
    return Mark(kv["kind"], kv["team"], kv.get("instance", ""))


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
    """The agent's subtree: `root` if configured; else the agent's own cgroup when
    systemd delegated it; else <cgroup2 mount>/devcloud.slice ("" without cgroup2).
    `own` is the absolute path of the agent's cgroup ("" at the root)."""
    if root:
        return os.path.normpath(root)
    mount = (procfs.cgroup2_mount() if mount is None else mount).rstrip("/")
    if own is None:
        rel = procfs.own_cgroup_v2()
        own = f"{mount}{rel}" if mount and rel not in ("", "/") else ""
    if own and is_delegated(own):
        return own
    return f"{mount}/{DEFAULT_ROOT_NAME}" if mount else ""


def parse_controllers(text: str | None) -> set[str]:
    # A plain directory tree keeps our "+cpu" words verbatim: accept both forms.
    return {w.lstrip("+") for w in (text or "").split()}


class CgroupDriver:
    """Slices and scopes with limits, stats, freeze/thaw/kill, over cgroupfs v2."""

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
        """Whether cgroup v2 is usable here; features = controllers available to the subtree.
        Never raises."""
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
        """Controllers the subtree can use (the anchor's cgroup.controllers)."""
        return parse_controllers(fs.read(os.path.join(self.anchor, "cgroup.controllers")))

    def require_controllers(self, need: set[str]) -> None:
        """FailedPrecondition naming every controller of `need` this host cannot give us."""
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
        """Online CPUs and memory nodes, hugepage sizes, block devices: what limits are checked against."""
        cpus = parse_cpulist(procfs.read_text("/sys/devices/system/cpu/online", "0"))
        mems = parse_cpulist(procfs.read_text("/sys/devices/system/node/online", "0"))
        return HostFacts(cpus, mems, self.page_sizes(), _block_device)

    def page_sizes(self) -> tuple[str, ...]:
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

    # ------------------------------------------------------------ names

    def slice_path(self, team: str) -> str:
        """Deterministic path of a team's slice (pure; validates the name)."""
        validation.cgroup_name("team", team)
        return f"{self.root}/{team}.slice"

    def scope_path(self, team: str, instance: str) -> str:
        """Deterministic path of an instance's scope (pure; validates the names)."""
        validation.cgroup_name("instance", instance)
        return f"{self.slice_path(team)}/{instance}.scope"

    def path(self, team: str, instance: str = "") -> str:
        return self.scope_path(team, instance) if instance else self.slice_path(team)

    # ------------------------------------------------------------ create / update

    def ensure(self, team: str, instance: str, limits: Limits) -> tuple[CgroupInfo, bool]:
        """Create the slice (instance="") or scope if missing and make its limit
        files say `limits` (limits not requested go back to kernel defaults).

        Idempotent: same limits again -> changed=False, no write. Raises
        FailedPrecondition (controller unavailable, slice missing for a scope,
        a cgroup at our path without our mark), AlreadyExists (the instance has
        a scope in another team), InvalidArgument (kernel refused a value).
        A new cgroup is removed again if anything fails: nothing half-created.
        """
        with self._time("ensure"):
            self._require()
            path = self.path(team, instance)
            mark = Mark(SCOPE if instance else SLICE, team, instance)
            need = required_controllers(limits)
            self.require_controllers(need)
            parent = os.path.dirname(path)
            if instance:
                self._slice_for_scope(team)
            else:
                self._ensure_root()
            self._enable_chain(parent, need)
            created = False
            if os.path.isdir(path):
                self._claim(path, mark)
            else:
                if instance:
                    self._check_unique_instance(team, instance)
                self._create(path, mark)
                created = True
            try:
                changed = self._apply(path, parent, limits, full=True)
            except BaseException:
                if created:
                    self._remove_dir(path)
                raise
            return self._info(path, mark), created or changed

    def update(self, team: str, instance: str, limits: Limits) -> tuple[CgroupInfo, bool]:
        """Write only the requested limits of an existing slice/scope (others untouched).

        Idempotent. Raises NotFound if it does not exist, FailedPrecondition as ensure().
        """
        with self._time("update"):
            self._require()
            path, mark = self._existing(team, instance)
            need = required_controllers(limits)
            self.require_controllers(need)
            parent = os.path.dirname(path)
            self._enable_chain(parent, need)
            changed = self._apply(path, parent, limits, full=False)
            return self._info(path, mark), changed

    def drift(self, team: str, instance: str, limits: Limits) -> list[LimitDrift]:
        """Kernel files that differ from `limits` (what ensure() would write). Read-only.
        Raises NotFound if the cgroup does not exist."""
        with self._time("drift"):
            self._require()
            path, _ = self._existing(team, instance)
            parent = os.path.dirname(path)
            out = [LimitDrift(f"{parent}/cgroup.subtree_control", f"+{c}", "")
                   for c in sorted(required_controllers(limits) - self._enabled(parent))]
            observed = self._observed(path, parent)
            try:
                writes = plan(limits, observed, full=True)
            except MissingFile as exc:
                return out + [LimitDrift(exc.file, "(requested)", "")]
            return out + [LimitDrift(w.file, w.payload, (observed.get(w.file) or "").strip()) for w in writes]

    # ------------------------------------------------------------ read

    def get(self, team: str, instance: str = "") -> CgroupInfo:
        """The slice/scope as the kernel reports it. Raises NotFound, FailedPrecondition (not ours)."""
        with self._time("get"):
            self._require()
            path, mark = self._existing(team, instance)
            return self._info(path, mark)

    def list(self, team: str = "", *, kind: str = SCOPE) -> list[CgroupInfo]:
        """Every slice (kind=SLICE) or scope (of `team`, or of all teams) carrying our mark.
        Unmarked directories are skipped, never touched."""
        with self._time("list"):
            self._require()
            out = []
            for path, mark in self.owned(team, kind=kind):
                try:
                    out.append(self._info(path, mark))
                except NotFound:          # removed meanwhile
                    continue
            return out

    def owned(self, team: str = "", *, kind: str = SCOPE) -> Iterator[tuple[str, Mark]]:
        """(path, mark) of every marked slice or scope: a directory scan, for GC and reconcile."""
        slices = [self.slice_path(team)] if team else [
            os.path.join(self.root, e) for e in _subdirs(self.root) if e.endswith(".slice")]
        for s in slices:
            smark = decode_mark(fs.getxattr(s, MARK_XATTR)) if os.path.isdir(s) else None
            if smark is None or smark.kind != SLICE:
                continue
            if kind == SLICE:
                yield s, smark
                continue
            for e in _subdirs(s):
                p = os.path.join(s, e)
                m = decode_mark(fs.getxattr(p, MARK_XATTR))
                if m is not None and m.kind == SCOPE and m.team == smark.team:
                    yield p, m

    def stats(self, team: str, instance: str = "") -> Stats:
        """Usage counters and pressure of a slice/scope. Read-only. Raises NotFound."""
        with self._time("stats"):
            self._require()
            path, _ = self._existing(team, instance)
            return read_stats(path, self.page_sizes())

    # ------------------------------------------------------------ processes

    def attach(self, team: str, instance: str, pids: list[int]) -> tuple[int, ...]:
        """Move processes (whole thread groups) into a scope; returns the scope's pids.

        Idempotent (a pid already there is fine). Raises NotFound (scope or
        process missing), InvalidArgument (pid <= 1 or the agent itself),
        FailedPrecondition (scope not ours).
        """
        with self._time("attach"):
            self._require()
            if not instance:
                raise InvalidArgument.for_field("instance", "processes go into an instance scope, not a team slice")
            path, _ = self._existing(team, instance)
            for i, pid in enumerate(pids):
                if pid <= 1 or pid == os.getpid():
                    raise InvalidArgument.for_field(f"pids[{i}]", f"pid {pid} cannot be moved (init or the agent itself)")
            for pid in pids:
                fs.write(os.path.join(path, "cgroup.procs"), str(pid), create=self._plain)
            return self._pids(path)

    def freeze(self, team: str, instance: str, deadline: float | None) -> float:
        """Freeze every process of the slice/scope and wait until cgroup.events says frozen 1.

        Idempotent. Returns seconds waited. Raises NotFound, DeadlineExceeded
        (the freeze stays requested), FailedPrecondition (not ours).
        """
        with self._time("freeze"):
            self._require()
            path, _ = self._existing(team, instance)
            fs.write(os.path.join(path, "cgroup.freeze"), "1")
            return fs.wait_events(path, "frozen", 1, deadline, "freeze")

    def thaw(self, team: str, instance: str, deadline: float | None) -> float:
        """Thaw and wait until cgroup.events says frozen 0. Idempotent.

        Raises FailedPrecondition if an ancestor (the team slice) is frozen:
        thaw that first. NotFound, DeadlineExceeded as freeze().
        """
        with self._time("thaw"):
            self._require()
            path, _ = self._existing(team, instance)
            parent = os.path.dirname(path)
            if instance and (fs.read(os.path.join(parent, "cgroup.freeze")) or "0").strip() == "1":
                raise FailedPrecondition(f"the team slice {parent} is frozen; thaw the team first",
                                         reason="PARENT_FROZEN")
            fs.write(os.path.join(path, "cgroup.freeze"), "0")
            return fs.wait_events(path, "frozen", 0, deadline, "thaw")

    def kill(self, team: str, instance: str, deadline: float | None) -> float:
        """SIGKILL every process of the slice/scope (cgroup.kill) and wait for populated 0.

        Idempotent (an empty cgroup: nothing to do). Returns seconds waited.
        Raises NotFound, DeadlineExceeded, FailedPrecondition (not ours, or a
        kernel without cgroup.kill: Linux < 5.14).
        """
        with self._time("kill"):
            self._require()
            path, _ = self._existing(team, instance)
            return self._kill(path, deadline)

    # ------------------------------------------------------------ delete

    def delete(self, team: str, instance: str = "", *, kill: bool = False,
               deadline: float | None = None) -> bool:
        """Remove a scope (instance set) or a team slice. Returns False if it was absent.

        Idempotent: absent -> False, no error. A populated scope is refused
        (FailedPrecondition SCOPE_POPULATED) unless kill=True, which kills its
        processes first. A slice with scopes is refused (SLICE_NOT_EMPTY)
        unless kill=True, which kills and removes them; a child without our
        mark always blocks (NOT_OURS) and is left alone.
        """
        with self._time("delete"):
            self._require()
            path = self.path(team, instance)
            if not os.path.isdir(path):
                return False
            mark = Mark(SCOPE if instance else SLICE, team, instance)
            self._claim(path, mark)
            if instance:
                self._delete_scope(path, kill, deadline)
                return True
            scopes = []
            for e in _subdirs(path):
                p = os.path.join(path, e)
                m = decode_mark(fs.getxattr(p, MARK_XATTR))
                if m is None and fs.getxattr(path, PENDING_XATTR + e) is None:
                    raise FailedPrecondition(f"{p} is in the team slice but does not carry the agent's mark; "
                                             "it is left alone and blocks removing the slice",
                                             reason="NOT_OURS", metadata={"cgroup": p})
                scopes.append(p)
            if scopes and not kill:
                raise FailedPrecondition(f"team slice {path} still has {len(scopes)} scope(s) "
                                         f"({', '.join(os.path.basename(s) for s in scopes[:5])}); delete them "
                                         "or pass kill", reason="SLICE_NOT_EMPTY", metadata={"cgroup": path})
            if scopes and self._populated(path):
                self._kill(path, deadline)
            for s in scopes:
                self._remove_tree(s, deadline)
                fs.removexattr(path, PENDING_XATTR + os.path.basename(s))
            self._remove_tree(path, deadline)
            return True

    def delete_many(self, refs: list[tuple[str, str]], *, kill: bool = False,
                    deadline: float | None = None) -> list[tuple[str, str, bool, Exception | None]]:
        """Bulk scope removal: kill all first (one cgroup.kill each), wait for all, then rmdir.

        Returns (team, instance, deleted, error) per ref; errors are per item, never raised.
        """
        with self._time("delete_many"):
            self._require()
            results: dict[tuple[str, str], Exception | None] = {}
            live = []
            for team, inst in refs:
                try:
                    path = self.path(team, inst)
                    if not inst:
                        raise InvalidArgument.for_field("instance", "delete_many removes scopes")
                    if not os.path.isdir(path):
                        results[(team, inst)] = None
                        continue
                    self._claim(path, Mark(SCOPE, team, inst))
                    if self._populated(path):
                        if not kill:
                            raise FailedPrecondition(f"scope {path} holds processes; pass kill",
                                                     reason="SCOPE_POPULATED")
                        fs.write(os.path.join(path, "cgroup.kill"), "1")
                    live.append((team, inst, path))
                except Exception as exc:     # per-item outcome
                    results[(team, inst)] = exc
            for team, inst, path in live:
                try:
                    self._delete_scope(path, kill, deadline)
                    results[(team, inst)] = None
                except Exception as exc:
                    results[(team, inst)] = exc
            done = {(t, i) for t, i, _ in live}
            return [(t, i, (t, i) in done and results[(t, i)] is None, results.get((t, i)))
                    for t, i in refs]

    def sweep_pending(self) -> int:
        """Drop intent records (pending xattrs) whose directory never came to exist. Returns how many."""
        n = 0
        for parent in [self.root] + [os.path.join(self.root, e) for e in _subdirs(self.root) if e.endswith(".slice")]:
            try:
                names = os.listxattr(parent)
            except OSError:
                continue
            for x in names:
                if x.startswith(PENDING_XATTR) and not os.path.isdir(os.path.join(parent, x[len(PENDING_XATTR):])):
                    fs.removexattr(parent, x)
                    n += 1
        return n

    # ------------------------------------------------------------ internals

    @contextmanager
    def _time(self, op: str) -> Iterator[None]:
        with self._metrics.time(self._metrics.cgroup_op, op=op):
            yield

    def _existing(self, team: str, instance: str) -> tuple[str, Mark]:
        path = self.path(team, instance)
        if not os.path.isdir(path):
            what = f"scope of instance {instance!r} in team {team!r}" if instance else f"slice of team {team!r}"
            raise NotFound(f"no {what} ({path})", reason="CGROUP_NOT_FOUND", metadata={"cgroup": path})
        mark = Mark(SCOPE if instance else SLICE, team, instance)
        self._claim(path, mark)
        return path, mark

    def _slice_for_scope(self, team: str) -> None:
        s = self.slice_path(team)
        if not os.path.isdir(s):
            raise FailedPrecondition(f"team {team!r} has no slice ({s}); EnsureSlice first",
                                     reason="SLICE_NOT_FOUND", metadata={"cgroup": s})
        self._claim(s, Mark(SLICE, team))

    def _claim(self, path: str, mark: Mark) -> None:
        """Check `path` carries `mark`; adopt it if a crash left it unmarked after our recorded intent."""
        parent, name = os.path.split(path)
        found = decode_mark(fs.getxattr(path, MARK_XATTR))
        if found is None:
            if fs.getxattr(parent, PENDING_XATTR + name) is None:
                raise FailedPrecondition(f"{path} exists but does not carry the agent's mark: it is not ours "
                                         "and is left alone (remove it, or use another name)",
                                         reason="NOT_OURS", metadata={"cgroup": path})
            fs.setxattr(path, MARK_XATTR, encode_mark(mark))
            fs.removexattr(parent, PENDING_XATTR + name)
        elif found != mark:
            raise FailedPrecondition(f"{path} carries the mark of {found}, not {mark}", reason="NOT_OURS",
                                     metadata={"cgroup": path})

    def _create(self, path: str, mark: Mark) -> None:
        parent, name = os.path.split(path)
        fs.setxattr(parent, PENDING_XATTR + name, b"1")          # intent before action
        try:
            try:
                os.mkdir(path)
            except OSError as exc:
                raise from_oserror(exc, f"mkdir {path}") from None
            try:
                fs.setxattr(path, MARK_XATTR, encode_mark(mark))
            except BaseException:
                self._remove_dir(path)
                raise
        finally:
            fs.removexattr(parent, PENDING_XATTR + name)

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

    def _check_unique_instance(self, team: str, instance: str) -> None:
        for e in _subdirs(self.root):
            if e.endswith(".slice") and e != f"{team}.slice" and \
                    os.path.isdir(os.path.join(self.root, e, f"{instance}.scope")):
                raise AlreadyExists(f"instance {instance!r} already has a scope in team {e[:-6]!r}",
                                    reason="INSTANCE_IN_OTHER_TEAM", metadata={"team": e[:-6]})

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
            if cg != self.mount and self._pids(cg):
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
                pids = self._pids(cg)
                if not pids:
                    return
                for pid in pids:
                    try:
                        fs.write(os.path.join(sup, "cgroup.procs"), str(pid))
                    except NotFound:          # exited meanwhile
                        pass
            raise FailedPrecondition(f"processes keep appearing in {cg}; cannot empty it into {sup}",
                                     reason="CGROUP_BUSY")

    def _observed(self, path: str, parent: str) -> dict[str, str | None]:
        enabled = self._enabled(parent) & set(LIMIT_CONTROLLERS)
        out = {}
        for f in files_for(enabled, self.page_sizes()):
            text = fs.read(os.path.join(path, f))
            out[f] = default_text(f) if text is None and self._plain else text
        return out

    def _apply(self, path: str, parent: str, limits: Limits, *, full: bool) -> bool:
        observed = self._observed(path, parent)
        try:
            writes = plan(limits, observed, full=full)
        except MissingFile as exc:
            raise FailedPrecondition(
                f"{exc.file} does not exist in {path} although its controller is enabled: this kernel lacks the "
                "feature (swap accounting for memory.swap.max, CFS bandwidth for cpu.max, blk-iocost or BFQ "
                "for io.weight)", reason="LIMIT_FILE_MISSING", metadata={"file": exc.file}) from None
        for w in writes:
            # (a plain tree keeps only the last line written to io.max / io.weight)
            fs.write(os.path.join(path, w.file), w.payload, create=self._plain)
        return bool(writes)

    def _info(self, path: str, mark: Mark) -> CgroupInfo:
        parent = os.path.dirname(path)
        events = fs.parse_events(fs.read(os.path.join(path, "cgroup.events")) or "")
        return CgroupInfo(
            path=path, mark=mark,
            controllers=tuple(sorted(self._enabled(parent))),
            limits=observed_limits(self._observed(path, parent)),
            populated=bool(events.get("populated", 0)), frozen=bool(events.get("frozen", 0)),
            pids=self._pids(path) if mark.kind == SCOPE else (),
            children=len(_subdirs(path)))

    def _pids(self, path: str) -> tuple[int, ...]:
        text = fs.read(os.path.join(path, "cgroup.procs")) or ""
        return tuple(int(p) for p in text.split())

    def _populated(self, path: str) -> bool:
        return fs.parse_events(fs.read(os.path.join(path, "cgroup.events")) or "").get("populated", 0) == 1

    def _kill(self, path: str, deadline: float | None) -> float:
        if not self._populated(path):
            return 0.0
        if not os.path.exists(os.path.join(path, "cgroup.kill")):
            raise FailedPrecondition("this kernel has no cgroup.kill (Linux >= 5.14 needed)",
                                     reason="KILL_UNSUPPORTED")
        fs.write(os.path.join(path, "cgroup.kill"), "1")
        return fs.wait_events(path, "populated", 0, deadline, "kill")

    def _delete_scope(self, path: str, kill: bool, deadline: float | None) -> None:
        if self._populated(path):
            if not kill:
                n = len(self._pids(path))
                raise FailedPrecondition(f"scope {path} holds processes ({n} in the scope itself); "
                                         "pass kill to kill them first", reason="SCOPE_POPULATED",
                                         metadata={"cgroup": path})
            self._kill(path, deadline)
        self._remove_tree(path, deadline)

    def _remove_tree(self, path: str, deadline: float | None) -> None:
        """rmdir bottom-up (a workload may have made nested cgroups inside its scope)."""
        if self._plain:
            shutil.rmtree(path, ignore_errors=False)
            return
        for dirpath, _, _ in os.walk(path, topdown=False):
            while True:
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # A just-killed cgroup can stay busy for a moment while its tasks finish exiting.
                    if exc.errno == errno.EBUSY and deadline is not None and time.monotonic() < deadline \
                            and not self._populated(dirpath):
                        time.sleep(0.001)
                        continue
                    raise from_oserror(exc, f"rmdir {dirpath}") from None

    def _remove_dir(self, path: str) -> None:
        try:
            if self._plain:
                shutil.rmtree(path)
            else:
                os.rmdir(path)
        except OSError:
            pass


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise from_oserror(exc, f"scandir {path}") from None


def _block_device(dev: str) -> str:
    base = f"/sys/dev/block/{dev}"
    if not os.path.exists(base):
        return "missing"
    return "partition" if os.path.exists(f"{base}/partition") else "disk"

