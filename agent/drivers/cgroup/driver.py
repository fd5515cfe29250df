"""cgroup v2 driver: a slice per team, a scope per instance, under the agent's subtree.

Layout (deterministic, computable before anything exists):

    <root>/<team>.slice                   team slice (limits shared by the team)
    <root>/<team>.slice/<instance>.scope  instance scope (limits, processes)
    <root>/supervisor                     the agent's own processes, in delegated mode only

Where <root> is and how controllers get enabled: hierarchy.py. Ownership
marks and creation intents: marks.py. Limit files: limits.py. Killing and
rmdir: removal.py. Value types: agent/model/compute.py.
"""
from __future__ import annotations

import builtins
import os
import re
from typing import Callable, Iterator

from agent.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.model.compute import LIMIT_CONTROLLERS, SCOPE, SLICE, CgroupInfo, LimitDrift, Limits, Mark, Stats

from . import fs, removal
from .hierarchy import Hierarchy, subdirs
from .limits import MissingFile, default_text, files_for, observed_limits, plan, required_controllers
from .marks import MARK_XATTR, claim, create, decode_mark, forget_intent, is_ours_or_pending, sweep_pending
from .stats import read_stats

# What a team/instance name must be to become one directory under the subtree and one
# word of the mark ("team=t instance=i"): no '/', '.', '..', space or '='.
_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _check_name(what: str, name: str) -> None:
    """InvalidArgument (plain message, no request field) for a name that cannot be a cgroup of ours."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidArgument(f"{what} name {name[:80]!r} cannot name a cgroup of the agent: 1-63 of a-z, "
                              "0-9 and '-', starting and ending with a letter or digit")


class CgroupDriver(Hierarchy):
    """Slices and scopes with limits, stats, freeze/thaw/kill, over cgroupfs v2.

    Construction: see Hierarchy (root, mount, own, plain). Every method that
    touches the kernel first checks the facility: FailedPrecondition
    FACILITY_UNAVAILABLE when probe() says cgroup v2 is unusable here. A
    directory at our path without our mark is never changed or removed:
    FailedPrecondition NOT_OURS. Kernel errors come back translated
    (agent.errors.from_oserror: e.g. FailedPrecondition PERMISSION)."""

    # ------------------------------------------------------------ names

    def slice_path(self, team: str) -> str:
        """Deterministic path of a team's slice, whether it exists or not (pure, no I/O).
        Raises InvalidArgument when `team` cannot name a cgroup directory."""
        _check_name("team", team)
        return f"{self.root}/{team}.slice"

    def scope_path(self, team: str, instance: str) -> str:
        """Deterministic path of an instance's scope, whether it exists or not (pure, no I/O).
        Raises InvalidArgument when a name cannot name a cgroup directory."""
        _check_name("instance", instance)
        return f"{self.slice_path(team)}/{instance}.scope"

    def path(self, team: str, instance: str = "") -> str:
        """scope_path() when `instance` is set, else slice_path(). Pure; raises InvalidArgument as they do."""
        return self.scope_path(team, instance) if instance else self.slice_path(team)

    # ------------------------------------------------------------ create / update

    def ensure(self, team: str, instance: str, limits: Limits,
               checkpoint: Callable[[str], None] | None = None) -> tuple[CgroupInfo, bool]:
        """Create the slice (instance="") or scope if missing and make its limit
        files say `limits` (limits not requested go back to kernel defaults).
        Returns (the group as the kernel reports it, changed).

        Idempotent: same limits again -> changed=False, no write. Absent: created
        with our mark (a directory a crash left unmarked after our recorded
        intent is adopted). Exists and ours: only differing files are written.
        Raises InvalidArgument (a name that cannot be a cgroup of ours; the
        kernel refused a value: KERNEL_EINVAL / OUT_OF_RANGE), FailedPrecondition
        CONTROLLER_UNAVAILABLE, SLICE_NOT_FOUND (a scope without its team slice),
        NOT_OURS (a cgroup at our path without our mark), LIMIT_FILE_MISSING
        (the kernel lacks a requested limit's file), CGROUP_BUSY (processes where
        controllers must be enabled), CGROUP_ROOT_MISSING, FACILITY_UNAVAILABLE;
        AlreadyExists INSTANCE_IN_OTHER_TEAM (the instance has a scope in another team).
        A new cgroup is removed again if anything fails: nothing half-created.
        Every check (controllers, kernel files) precedes the first write; if the
        kernel still refuses one, an existing group keeps the writes made before
        it and a retry converges. `checkpoint("scope-created")` runs between a new
        group's mkdir+mark and its limit writes (crash tests stop there).
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
            exists = os.path.isdir(path)
            if exists:
                claim(path, mark)              # never enable anything for a group that is not ours
            elif instance:
                self._check_unique_instance(team, instance)
            self._enable_chain(parent, need)
            created = False
            if not exists:
                create(path, mark, lambda p: removal.remove_dir(p, plain=self._plain))
                created = True
                if checkpoint is not None:
                    checkpoint("scope-created" if instance else "slice-created")
            try:
                changed = self._apply(path, parent, limits, full=True)
            except BaseException:
                if created:
                    removal.remove_dir(path, plain=self._plain)
                raise
            return self._info(path, mark), created or changed

    def update(self, team: str, instance: str, limits: Limits) -> tuple[CgroupInfo, bool]:
        """Write only the requested limits of an existing slice/scope (others untouched).
        Returns (the group as the kernel reports it, changed).

        Idempotent: requested values already there -> changed=False, no write. Never
        creates: absent -> NotFound CGROUP_NOT_FOUND. Raises InvalidArgument,
        FailedPrecondition (NOT_OURS, CONTROLLER_UNAVAILABLE, LIMIT_FILE_MISSING,
        CGROUP_BUSY, FACILITY_UNAVAILABLE) as ensure().
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
        """Kernel files that differ from `limits` (what ensure() would write; [] when in sync),
        including controllers not enabled on the parent and requested files the kernel lacks.

        Read-only, so idempotent. Absent -> NotFound CGROUP_NOT_FOUND. Raises
        InvalidArgument (bad name), FailedPrecondition NOT_OURS, FACILITY_UNAVAILABLE."""
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
        """The slice (instance="") or scope as the kernel reports it: controllers, limits read
        back from the files, populated/frozen, pids (scopes), child count.

        Read-only. Absent -> NotFound CGROUP_NOT_FOUND. Raises InvalidArgument (bad name),
        FailedPrecondition NOT_OURS (exists without our mark), FACILITY_UNAVAILABLE."""
        with self._time("get"):
            self._require()
            path, mark = self._existing(team, instance)
            return self._info(path, mark)

    def list(self, team: str = "", *, kind: str = SCOPE) -> list[CgroupInfo]:
        """Every slice (kind=SLICE) or scope (of `team`, or of all teams) carrying our mark,
        as get() reports them. Unmarked directories are skipped, never touched; a group
        removed during the scan is left out.

        Read-only. An absent subtree or team slice -> []. Raises InvalidArgument (bad team
        name), FailedPrecondition FACILITY_UNAVAILABLE."""
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
        """(path, mark) of every marked slice (kind=SLICE) or scope of ours (of `team`, or of
        all teams): a directory scan without reading limits, for GC and reconcile.

        Read-only; lazy (a generator). Unmarked directories and scopes whose mark names
        another team are skipped; an absent subtree yields nothing. Does not check the
        facility. Raises InvalidArgument (bad team name), translated OSError of the scan."""
        slices = [self.slice_path(team)] if team else [
            os.path.join(self.root, e) for e in subdirs(self.root) if e.endswith(".slice")]
        for s in slices:
            smark = decode_mark(fs.getxattr(s, MARK_XATTR)) if os.path.isdir(s) else None
            if smark is None or smark.kind != SLICE:
                continue
            if kind == SLICE:
                yield s, smark
                continue
            for e in subdirs(s):
                p = os.path.join(s, e)
                m = decode_mark(fs.getxattr(p, MARK_XATTR))
                if m is not None and m.kind == SCOPE and m.team == smark.team:
                    yield p, m

    def stats(self, team: str, instance: str = "") -> Stats:
        """Usage counters and pressure (PSI) of a slice (instance="") or scope; counters whose
        file the kernel lacks stay None/empty.

        Read-only. Absent -> NotFound CGROUP_NOT_FOUND. Raises InvalidArgument (bad name),
        FailedPrecondition NOT_OURS, FACILITY_UNAVAILABLE."""
        with self._time("stats"):
            self._require()
            path, _ = self._existing(team, instance)
            return read_stats(path, self.page_sizes())

    # ------------------------------------------------------------ processes

    def attach(self, team: str, instance: str, pids: builtins.list[int]) -> tuple[int, ...]:
        """Move processes (whole thread groups) into a scope; returns the scope's pids.

        Idempotent (a pid already there is fine). Absent scope -> NotFound
        CGROUP_NOT_FOUND; a process that does not exist -> NotFound
        PROCESS_NOT_FOUND (earlier pids of the list stay moved). Raises
        InvalidArgument (instance "" - a team slice -, pid <= 1 or the agent
        itself, a bad name), FailedPrecondition NOT_OURS, FACILITY_UNAVAILABLE.
        """
        with self._time("attach"):
            self._require()
            if not instance:
                raise InvalidArgument("processes go into an instance scope, not a team slice")
            path, _ = self._existing(team, instance)
            for pid in pids:
                if pid <= 1 or pid == os.getpid():
                    raise InvalidArgument(f"pid {pid} cannot be moved (init or the agent itself)")
            for pid in pids:
                fs.write(os.path.join(path, "cgroup.procs"), str(pid), create=self._plain)
            return fs.procs(path)

    def freeze(self, team: str, instance: str, deadline: float | None) -> float:
        """Freeze every process of the slice/scope and wait until cgroup.events says frozen 1.

        Idempotent (already frozen: returns at once). Returns seconds waited.
        Absent -> NotFound CGROUP_NOT_FOUND. Raises DeadlineExceeded
        CGROUP_WAIT_TIMEOUT (the freeze stays requested), FailedPrecondition
        NOT_OURS (the group, or for a team slice any child cgroup, is not ours),
        FACILITY_UNAVAILABLE; InvalidArgument (bad name).
        """
        with self._time("freeze"):
            self._require()
            path, _ = self._existing(team, instance)
            if not instance:
                self._refuse_foreign_children(path, "freeze")
            fs.write(os.path.join(path, "cgroup.freeze"), "1")
            return fs.wait_events(path, "frozen", 1, deadline, "freeze")

    def thaw(self, team: str, instance: str, deadline: float | None) -> float:
        """Thaw and wait until cgroup.events says frozen 0; returns seconds waited.

        Idempotent (not frozen: returns at once). Absent -> NotFound
        CGROUP_NOT_FOUND. Raises FailedPrecondition PARENT_FROZEN when the
        scope's team slice is frozen (thaw that first), NOT_OURS,
        FACILITY_UNAVAILABLE; DeadlineExceeded CGROUP_WAIT_TIMEOUT; InvalidArgument.
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
        Absent -> NotFound CGROUP_NOT_FOUND. Raises DeadlineExceeded
        CGROUP_WAIT_TIMEOUT, FailedPrecondition NOT_OURS (the group, or for a
        team slice any child cgroup), KILL_UNSUPPORTED (no cgroup.kill: Linux
        < 5.14), FACILITY_UNAVAILABLE; InvalidArgument (bad name).
        """
        with self._time("kill"):
            self._require()
            path, _ = self._existing(team, instance)
            if not instance:
                self._refuse_foreign_children(path, "kill")
            return removal.kill(path, deadline)

    def _refuse_foreign_children(self, slice_path: str, verb: str) -> None:
        """A team slice's freeze/kill reaches every child: refused (NOT_OURS) when one is not ours.
        (Inside a scope, nested groups are the workload's own: a scope's kill takes them along.)"""
        foreign = sorted(e for e in subdirs(slice_path) if not is_ours_or_pending(os.path.join(slice_path, e)))
        if foreign:
            raise FailedPrecondition(
                f"{slice_path} holds cgroups that are not ours ({', '.join(foreign[:10])}); the agent will not "
                f"{verb} their processes: move or remove them first", reason="NOT_OURS",
                metadata={"cgroup": slice_path, "foreign": ",".join(foreign[:50])})

    # ------------------------------------------------------------ delete

    def delete(self, team: str, instance: str = "", *, kill: bool = False,
               deadline: float | None = None) -> bool:
        """Remove a scope (instance set) or a team slice. Returns False if it was absent.

        Idempotent: absent -> False, no error. A populated scope is refused
        (FailedPrecondition SCOPE_POPULATED) unless kill=True, which kills its
        processes first. A slice with scopes is refused (SLICE_NOT_EMPTY)
        unless kill=True, which kills and removes them; a child without our
        mark always blocks (NOT_OURS) and is left alone. Also raises
        FailedPrecondition NOT_OURS (the group itself is not ours),
        KILL_UNSUPPORTED, FACILITY_UNAVAILABLE, a translated rmdir error (BUSY
        once the deadline passed); DeadlineExceeded CGROUP_WAIT_TIMEOUT;
        InvalidArgument (bad name).
        """
        with self._time("delete"):
            self._require()
            path = self.path(team, instance)
            if not os.path.isdir(path):
                return False
            mark = Mark(SCOPE if instance else SLICE, team, instance)
            claim(path, mark)
            if instance:
                removal.delete_scope(path, kill, deadline, plain=self._plain)
                return True
            scopes = []
            for e in subdirs(path):
                p = os.path.join(path, e)
                if not is_ours_or_pending(p):
                    raise FailedPrecondition(f"{p} is in the team slice but does not carry the agent's mark; "
                                             "it is left alone and blocks removing the slice",
                                             reason="NOT_OURS", metadata={"cgroup": p})
                scopes.append(p)
            if scopes and not kill:
                raise FailedPrecondition(f"team slice {path} still has {len(scopes)} scope(s) "
                                         f"({', '.join(os.path.basename(s) for s in scopes[:5])}); delete them "
                                         "or pass kill", reason="SLICE_NOT_EMPTY", metadata={"cgroup": path})
            if scopes and fs.populated(path):
                removal.kill(path, deadline)
            for s in scopes:
                removal.remove_tree(s, deadline, plain=self._plain)
                forget_intent(path, os.path.basename(s))
            removal.remove_tree(path, deadline, plain=self._plain)
            return True

    def delete_many(self, refs: builtins.list[tuple[str, str]], *, kill: bool = False,
                    deadline: float | None = None) -> builtins.list[tuple[str, str, bool, Exception | None]]:
        """Bulk scope removal: kill all first (one cgroup.kill each), wait for all, then rmdir.

        Returns (team, instance, deleted, error) per ref, in order. Idempotent per
        item: an absent scope -> deleted=False, error None. Errors are per item,
        never raised: InvalidArgument (bad name, a ref without instance),
        FailedPrecondition NOT_OURS / SCOPE_POPULATED (populated and not kill),
        DeadlineExceeded and rmdir errors as delete(). Only FailedPrecondition
        FACILITY_UNAVAILABLE is raised for the whole call.
        """
        with self._time("delete_many"):
            self._require()
            results: dict[tuple[str, str], Exception | None] = {}
            live = []
            for team, inst in refs:
                try:
                    path = self.path(team, inst)
                    if not inst:
                        raise InvalidArgument(f"delete_many removes scopes; team {team!r} came without an "
                                              "instance")
                    if not os.path.isdir(path):
                        results[(team, inst)] = None
                        continue
                    claim(path, Mark(SCOPE, team, inst))
                    if fs.populated(path):
                        if not kill:
                            raise FailedPrecondition(f"scope {path} holds processes; pass kill",
                                                     reason="SCOPE_POPULATED")
                        fs.write(os.path.join(path, "cgroup.kill"), "1")
                    live.append((team, inst, path))
                except Exception as exc:     # per-item outcome
                    results[(team, inst)] = exc
            for team, inst, path in live:
                try:
                    removal.delete_scope(path, kill, deadline, plain=self._plain)
                    results[(team, inst)] = None
                except Exception as exc:
                    results[(team, inst)] = exc
            done = {(t, i) for t, i, _ in live}
            return [(t, i, (t, i) in done and results[(t, i)] is None, results.get((t, i)))
                    for t, i in refs]

    def sweep_pending(self) -> int:
        """Drop intent records (pending xattrs on our root and slices) whose directory never
        came to exist (a crash between the record and the mkdir). Returns how many.

        Idempotent: a second call finds none and returns 0. An absent subtree -> 0.
        Unreadable directories are skipped; raises a translated OSError when an xattr
        cannot be removed."""
        return sweep_pending([self.root] + [os.path.join(self.root, e) for e in subdirs(self.root)
                                            if e.endswith(".slice")])

    # ------------------------------------------------------------ internals

    def _existing(self, team: str, instance: str) -> tuple[str, Mark]:
        path = self.path(team, instance)
        if not os.path.isdir(path):
            what = f"scope of instance {instance!r} in team {team!r}" if instance else f"slice of team {team!r}"
            raise NotFound(f"no {what} ({path})", reason="CGROUP_NOT_FOUND", metadata={"cgroup": path})
        mark = Mark(SCOPE if instance else SLICE, team, instance)
        claim(path, mark)
        return path, mark

    def _slice_for_scope(self, team: str) -> None:
        s = self.slice_path(team)
        if not os.path.isdir(s):
            raise FailedPrecondition(f"team {team!r} has no slice ({s}); EnsureSlice first",
                                     reason="SLICE_NOT_FOUND", metadata={"cgroup": s})
        claim(s, Mark(SLICE, team))

    def _check_unique_instance(self, team: str, instance: str) -> None:
        for e in subdirs(self.root):
            if e.endswith(".slice") and e != f"{team}.slice" and \
                    os.path.isdir(os.path.join(self.root, e, f"{instance}.scope")):
                raise AlreadyExists(f"instance {instance!r} already has a scope in team {e[:-6]!r}",
                                    reason="INSTANCE_IN_OTHER_TEAM", metadata={"team": e[:-6]})

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
            pids=fs.procs(path) if mark.kind == SCOPE else (),
            children=len(subdirs(path)))
