"""cgroup v2 driver: a slice per team, a scope per instance, under the agent's subtree.

Layout (deterministic, computable before anything exists):

    <root>/<team>.slice                   team slice (limits shared by the team)
    <root>/<team>.slice/<instance>.scope  instance scope (limits, processes)
    <root>/supervisor                     the agent's own processes, in delegated mode only

Where <root> is and how controllers get enabled: hierarchy.py. Ownership
marks and creation intents: marks.py. Limit files: limits.py. Killing and
rmdir: removal.py. Value types: agent/model/compute.py. The contract
(returns, absent/exists, errors): agent/drivers/contracts/cgroup.py.
"""
from __future__ import annotations

import builtins
import os
import re
from typing import Callable, Iterator

from agent.drivers.contracts.cgroup import CgroupContract
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


class CgroupDriver(Hierarchy, CgroupContract):
    """CgroupContract over cgroupfs v2: its methods keep the contract documented there; their
    docstrings here say how. Construction: see Hierarchy (root, mount, own, plain)."""

    # ------------------------------------------------------------ names

    def slice_path(self, team: str) -> str:
        """<root>/<team>.slice."""
        _check_name("team", team)
        return f"{self.root}/{team}.slice"

    def scope_path(self, team: str, instance: str) -> str:
        """<root>/<team>.slice/<instance>.scope."""
        _check_name("instance", instance)
        return f"{self.slice_path(team)}/{instance}.scope"

    def path(self, team: str, instance: str = "") -> str:
        """scope_path() when `instance` is set, else slice_path(). Pure; raises InvalidArgument as they do."""
        return self.scope_path(team, instance) if instance else self.slice_path(team)

    # ------------------------------------------------------------ create / update

    def ensure(self, team: str, instance: str, limits: Limits,
               checkpoint: Callable[[str], None] | None = None) -> tuple[CgroupInfo, bool]:
        """Checks the controllers and the team slice (or makes the root), claims an existing directory by its
        mark xattr or creates it (intent xattr on the parent, mkdir, mark), enables controllers
        down the chain, then writes only the limit files plan() says differ."""
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
        """As ensure() for an existing group, with plan(full=False): only requested files."""
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
        """plan() against the files read now, plus controllers missing from the parent's
        cgroup.subtree_control."""
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
        """Reads cgroup.events, cgroup.procs, the parent's subtree_control and the limit files."""
        with self._time("get"):
            self._require()
            path, mark = self._existing(team, instance)
            return self._info(path, mark)

    def list(self, team: str = "", *, kind: str = SCOPE) -> list[CgroupInfo]:
        """owned(), then get()'s read of each."""
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
        """Scans <root>/*.slice and their *.scope directories for our mark xattr."""
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
        """Reads the stat and pressure files (stats.py)."""
        with self._time("stats"):
            self._require()
            path, _ = self._existing(team, instance)
            return read_stats(path, self.page_sizes())

    # ------------------------------------------------------------ processes

    def attach(self, team: str, instance: str, pids: builtins.list[int]) -> tuple[int, ...]:
        """Writes each pid to cgroup.procs."""
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
        """Writes cgroup.freeze=1 and waits on cgroup.events."""
        with self._time("freeze"):
            path = self._reaching_ours_only(team, instance, "freeze")
            fs.write(os.path.join(path, "cgroup.freeze"), "1")
            return fs.wait_events(path, "frozen", 1, deadline, "freeze")

    def thaw(self, team: str, instance: str, deadline: float | None) -> float:
        """Writes cgroup.freeze=0 and waits on cgroup.events."""
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
        """cgroup.kill=1 and waits for populated 0 (removal.kill)."""
        with self._time("kill"):
            return removal.kill(self._reaching_ours_only(team, instance, "kill"), deadline)

    def _reaching_ours_only(self, team: str, instance: str, verb: str) -> str:
        """The path of an existing group of ours that freeze/kill may act on. A team slice's
        freeze/kill reaches every child: refused (NOT_OURS) when one is not ours. (Inside a
        scope, nested groups are the workload's own: a scope's kill takes them along.)"""
        self._require()
        path, _ = self._existing(team, instance)
        if instance:
            return path
        foreign = sorted(e for e in subdirs(path) if not is_ours_or_pending(os.path.join(path, e)))
        if foreign:
            raise FailedPrecondition(
                f"{path} holds cgroups that are not ours ({', '.join(foreign[:10])}); the agent will not "
                f"{verb} their processes: move or remove them first", reason="NOT_OURS",
                metadata={"cgroup": path, "foreign": ",".join(foreign[:50])})
        return path

    # ------------------------------------------------------------ delete

    def delete(self, team: str, instance: str = "", *, kill: bool = False,
               deadline: float | None = None) -> bool:
        """Claims the group, then removal.delete_scope, or for a slice: kill if asked, remove each scope and
        its intent, rmdir the slice."""
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
        """cgroup.kill for every populated scope first, then removal.delete_scope each."""
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
        """marks.sweep_pending over the root and every slice."""
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
