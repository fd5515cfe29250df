"""Compute plane: a cgroup v2 slice per team, a scope per instance.

Use cases over the cgroup driver, with per-group locks (a second mutating
call on the same slice/scope while one is in flight -> ABORTED), validation
of limits against this node (online CPUs, block devices, hugepage sizes),
bounded waits (freeze, thaw, kill honour the caller's deadline, and never
wait longer than MAX_WAIT_SECONDS), and the API the instance plane composes
in-process: deterministic paths computable before creation, bulk delete,
enumeration of everything we own (GC), and desired-vs-live comparison
(Diff/Repair). Plain dataclasses in and out.
"""
from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

from agent import validation
from agent.drivers import procfs
from agent.drivers.base import Availability
from agent.drivers.contracts.cgroup import CgroupContract
from agent.errors import AgentError, FailedPrecondition, Internal, InvalidArgument, NotFound
from agent.model.compute import SCOPE, SLICE, CgroupInfo, LimitDrift, Limits, Stats
from agent.services.drift import Drift
from agent.services.locks import KeyedLocks

SCOPE_ENSURE_STEPS = ("scope-created",)   # boundaries announced to ensure_scope's checkpoint
MAX_WAIT_SECONDS = 30.0        # freeze/thaw/kill never wait longer, whatever the deadline
MAX_ATTACH = 1024              # pids per AttachProcesses
PID_MAX = 4_194_304            # kernel PID_MAX_LIMIT


@dataclass(frozen=True)
class EnsureResult:
    cgroup: CgroupInfo         # as the kernel reports it after the call
    changed: bool              # created, or a limit file written


@dataclass(frozen=True)
class RuntimePlacement:
    """Where a runtime puts its processes below an instance's scope (paths relative to the
    cgroup2 mount, what LXC's lxc.cgroup.dir.* take; the runtime creates payload/monitor)."""

    cgroup: str                # the scope
    path: str                  # the scope, absolute
    payload: str               # <scope>/payload: the workload (LXC container, QEMU)
    monitor: str               # <scope>/monitor: the runtime's own helpers (LXC monitor)


@dataclass(frozen=True)
class OwnedCgroup:
    """One group carrying our mark (for garbage collection)."""

    path: str
    kind: str                  # "slice" | "scope"
    team: str
    instance_id: str           # "" for slices


@dataclass(frozen=True)
class DeleteOutcome:
    team: str
    instance_id: str
    deleted: bool              # False: it was absent (or the error below)
    error: AgentError | None


class ComputeService:
    """Slices, scopes, limits, stats, freeze/thaw/kill. Thread-safe."""

    def __init__(self, driver: CgroupContract | None, *, disabled_reason: str = "",
                 own_processes: Callable[[], set[int]] = set, agent_pid: int | None = None) -> None:
        """driver=None: the plane is disabled; every call raises FailedPrecondition with disabled_reason.
        own_processes: PIDs of the daemons the agent runs (embedded OVN, zfs-fuse): never moved.
        agent_pid: the agent process whose threads and descendants are never moved (default: this
        process; 0 when the service is used as a library by a process that is no agent)."""
        self._driver = driver
        self._own_processes = own_processes
        self._agent_pid = os.getpid() if agent_pid is None else agent_pid
        self._disabled = disabled_reason or "the compute plane is disabled ([compute].enabled = false)"
        self._locks = KeyedLocks("cgroup")

    # ------------------------------------------------------------ facility

    @property
    def driver(self) -> CgroupContract:
        if self._driver is None:
            raise FailedPrecondition(self._disabled, reason="PLANE_DISABLED")
        return self._driver

    def probe(self) -> Availability:
        """The cgroup driver's probe (never raises)."""
        if self._driver is None:
            return Availability.missing(self._disabled)
        return self._driver.probe()

    @property
    def subtree(self) -> str:
        """The agent's cgroup subtree ("" when disabled)."""
        return self._driver.root if self._driver is not None else ""

    # ------------------------------------------------------------ names (pure)

    def slice_path(self, team: str) -> str:
        """Where the team's slice is or will be. Pure; raises InvalidArgument (field "team") for a bad name."""
        d = self.driver
        _check_names(team)
        return d.slice_path(team)

    def scope_path(self, team: str, instance_id: str) -> str:
        """Where the instance's scope is or will be. Pure; raises InvalidArgument (field "instance",
        then "team") for a bad name."""
        d = self.driver
        _check_names(team, instance_id, required=True)
        return d.scope_path(team, instance_id)

    def runtime_placement(self, team: str, instance_id: str) -> RuntimePlacement:
        """Where a runtime places the instance's processes: children of its scope (LXC must
        create its cgroups itself, below the one it is given, never in it). Everything below
        the scope counts against the scope's limits; DeleteScope kills and removes it all.
        Pure; raises InvalidArgument for a bad name."""
        path = self.scope_path(team, instance_id)
        rel = os.path.relpath(path, self.driver.mount) if self.driver.mount else path
        return RuntimePlacement(rel, path, f"{rel}/payload", f"{rel}/monitor")

    def check_limits(self, limits: Limits, prefix: str = "limits") -> None:
        """Ranges and this node's facts (CPUs, memory nodes, block devices, hugepage sizes).
        Raises InvalidArgument with every violation, field names as in the proto."""
        bad = validation.limit_violations(limits, self.driver.host_facts(), prefix)
        if bad:
            more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
            raise InvalidArgument(f"{bad[0].field}: {bad[0].description}{more}", violations=bad)

    # ------------------------------------------------------------ create / update

    def ensure_slice(self, team: str, limits: Limits) -> EnsureResult:
        """Create the team slice if missing; its limit files then say `limits`.
        Idempotent (changed=False when nothing was written). Raises
        InvalidArgument, FailedPrecondition, Aborted."""
        d = self.driver
        _check_names(team)
        self.check_limits(limits)
        with self._locks.hold((team, "")):
            info, changed = d.ensure(team, "", limits)
            return EnsureResult(info, changed)

    def ensure_scope(self, team: str, instance_id: str, limits: Limits,
                     checkpoint: Callable[[str], None] | None = None) -> EnsureResult:
        """Create the instance scope in its team slice if missing; limits as ensure_slice.
        Nothing is left behind when it fails. Raises InvalidArgument,
        FailedPrecondition (SLICE_NOT_FOUND, CONTROLLER_UNAVAILABLE, NOT_OURS),
        AlreadyExists (instance in another team), Aborted. `checkpoint` is called at
        SCOPE_ENSURE_STEPS."""
        d = self.driver
        _check_names(team, instance_id, required=True)
        self.check_limits(limits)
        with self._locks.hold((team, instance_id)):
            info, changed = d.ensure(team, instance_id, limits, checkpoint)
            return EnsureResult(info, changed)

    def update_limits(self, team: str, instance_id: str, limits: Limits) -> EnsureResult:
        """Write only the requested limits of an existing slice ("" instance) or scope.
        Idempotent. Raises NotFound, InvalidArgument, FailedPrecondition, Aborted."""
        d = self.driver
        _check_names(team, instance_id)
        self.check_limits(limits)
        with self._locks.hold((team, instance_id)):
            info, changed = d.update(team, instance_id, limits)
            return EnsureResult(info, changed)

    def attach(self, team: str, instance_id: str, pids: list[int]) -> tuple[int, ...]:
        """Move processes into a scope; returns the scope's pids. Idempotent.
        Raises NotFound, InvalidArgument, FailedPrecondition, Aborted."""
        d = self.driver
        _check_names(team, instance_id)
        if not pids:
            raise InvalidArgument.for_field("pids", "at least one pid is required")
        if len(pids) > MAX_ATTACH:
            raise InvalidArgument.for_field("pids", f"at most {MAX_ATTACH} pids per call, got {len(pids)}")
        for i, pid in enumerate(pids):
            if not 1 < pid <= PID_MAX:
                raise InvalidArgument.for_field(f"pids[{i}]", f"{pid} is not a process id that can be moved")
        for pid in pids:
            self._check_not_agent(pid)
        if not instance_id:
            raise InvalidArgument.for_field("instance", "processes go into an instance scope, not a team slice")
        with self._locks.hold((team, instance_id)):
            return d.attach(team, instance_id, list(pids))

    def _check_not_agent(self, pid: int) -> None:
        """A task of the agent (any thread id), a process it started (any descendant) or a daemon
        it runs is never moved: a later Kill of the scope would kill it. FailedPrecondition NOT_OURS."""
        me = self._agent_pid
        group = procfs.thread_group(pid)
        if not group:
            return                                    # no such task: the driver reports NotFound
        own = self._own_processes()
        why = ""
        if group == me:
            why = f"task {pid} is a thread of the agent itself (pid {me})"
        elif group in own:
            why = f"pid {group} is a daemon the agent runs"
        elif me in procfs.ancestors(group) or own & set(procfs.ancestors(group)):
            why = f"pid {group} was started by the agent"
        if why:
            raise FailedPrecondition(f"{why}; the agent never moves its own processes into a workload scope",
                                     reason="NOT_OURS", metadata={"pid": str(pid)})

    # ------------------------------------------------------------ read

    def get(self, team: str, instance_id: str = "") -> CgroupInfo:
        """A slice ("" instance) or scope as the kernel reports it. Raises InvalidArgument, NotFound,
        FailedPrecondition."""
        d = self.driver
        _check_names(team, instance_id)
        return d.get(team, instance_id)

    def list_slices(self) -> list[CgroupInfo]:
        """Every slice carrying our mark."""
        return self.driver.list(kind=SLICE)

    def list_scopes(self, team: str = "") -> list[CgroupInfo]:
        """Every scope carrying our mark, of `team` or of all teams."""
        d = self.driver
        if team:
            _check_names(team)
        return d.list(team, kind=SCOPE)

    def stats(self, team: str, instance_id: str = "") -> Stats:
        """Usage counters and PSI. Read-only. Raises InvalidArgument, NotFound, FailedPrecondition."""
        d = self.driver
        _check_names(team, instance_id)
        return d.stats(team, instance_id)

    def owned(self) -> list[OwnedCgroup]:
        """Every slice and scope carrying our mark, with the mark: input to GarbageCollect."""
        d = self.driver
        out = [OwnedCgroup(p, m.kind, m.team, "") for p, m in d.owned(kind=SLICE)]
        out += [OwnedCgroup(p, m.kind, m.team, m.instance) for p, m in d.owned(kind=SCOPE)]
        return out

    def diff(self, team: str, instance_id: str, limits: Limits) -> list[LimitDrift]:
        """Kernel files that differ from `limits` (empty: in sync). Read-only; repair = ensure_*.
        Raises InvalidArgument, NotFound."""
        d = self.driver
        _check_names(team, instance_id)
        return d.drift(team, instance_id, limits)

    def scope_drift(self, team: str, instance_id: str, limits: Limits) -> list[Drift]:
        """diff() as Drift items with reason codes: SCOPE_MISSING, NOT_OURS (not repairable),
        CONTROLLER_NOT_ENABLED, LIMIT_DRIFT (one per kernel file). Read-only; repair = ensure_scope."""
        path = self.scope_path(team, instance_id)
        try:
            drifts = self.driver.drift(team, instance_id, limits)
        except NotFound:
            return [Drift("compute", path, "SCOPE_MISSING", "scope: missing")]
        except FailedPrecondition as exc:
            if exc.reason != "NOT_OURS":
                raise
            return [Drift("compute", path, "NOT_OURS", exc.message, repairable=False)]
        out = []
        for d in drifts:
            if d.file.endswith("cgroup.subtree_control"):
                out.append(Drift("compute", d.file, "CONTROLLER_NOT_ENABLED", f"{d.file}: {d.desired} missing",
                                 d.desired, d.observed))
            else:
                out.append(Drift("compute", d.file, "LIMIT_DRIFT", f"{d.file}: {d.observed!r}, want {d.desired!r}",
                                 d.desired, d.observed))
        return out

    # ------------------------------------------------------------ freeze / thaw / kill

    def freeze(self, team: str, instance_id: str = "", deadline: float | None = None) -> float:
        """Freeze and wait for frozen; returns seconds waited. Idempotent.
        Raises NotFound, DeadlineExceeded, FailedPrecondition, Aborted."""
        return self._wait_for(team, instance_id, deadline, lambda d: d.freeze)

    def thaw(self, team: str, instance_id: str = "", deadline: float | None = None) -> float:
        """Thaw and wait for not frozen; returns seconds waited. Idempotent.
        Raises NotFound, DeadlineExceeded, FailedPrecondition (PARENT_FROZEN), Aborted."""
        return self._wait_for(team, instance_id, deadline, lambda d: d.thaw)

    def kill(self, team: str, instance_id: str = "", deadline: float | None = None) -> float:
        """SIGKILL every process and wait for unpopulated; returns seconds waited. Idempotent.
        Raises NotFound, DeadlineExceeded, FailedPrecondition, Aborted."""
        return self._wait_for(team, instance_id, deadline, lambda d: d.kill)

    def _wait_for(self, team: str, instance_id: str, deadline: float | None,
                  verb: Callable[[CgroupContract], Callable[[str, str, float | None], float]]) -> float:
        """The driver's freeze/thaw/kill (picked by `verb`) under the group's lock, deadline bounded."""
        d = self.driver
        _check_names(team, instance_id)
        with self._locks.hold((team, instance_id)):
            return verb(d)(team, instance_id, _bounded(deadline))

    # ------------------------------------------------------------ delete

    def delete_scope(self, team: str, instance_id: str, *, kill: bool = False,
                     deadline: float | None = None) -> bool:
        """Remove a scope; False if it was absent (idempotent). Populated without
        kill -> FailedPrecondition SCOPE_POPULATED. Raises InvalidArgument,
        FailedPrecondition, DeadlineExceeded, Aborted."""
        d = self.driver
        _check_names(team, instance_id, required=True)
        with self._locks.hold((team, instance_id)):
            return d.delete(team, instance_id, kill=kill, deadline=_bounded(deadline))

    def delete_slice(self, team: str, *, kill: bool = False, deadline: float | None = None) -> bool:
        """Remove a team slice; False if absent. With scopes and without kill ->
        FailedPrecondition SLICE_NOT_EMPTY; kill removes them first. Raises as delete_scope."""
        d = self.driver
        _check_names(team)
        with self._locks.hold((team, "")):
            return d.delete(team, "", kill=kill, deadline=_bounded(deadline))

    def delete_scopes(self, refs: list[tuple[str, str]], *, kill: bool = False,
                      deadline: float | None = None) -> list[DeleteOutcome]:
        """Bulk removal of many scopes: all kills are sent first, then each is
        awaited and removed. Per-item outcomes, never raises for one item; a
        scope with an operation in flight is reported ABORTED."""
        d = self.driver
        results: dict[tuple[str, str], DeleteOutcome] = {}
        with ExitStack() as stack:
            held: list[tuple[str, str]] = []
            seen: set[tuple[str, str]] = set()
            for team, inst in refs:
                if (team, inst) in seen:
                    continue
                seen.add((team, inst))
                try:
                    _check_names(team, inst, required=True)
                    stack.enter_context(self._locks.hold((team, inst)))
                    held.append((team, inst))
                except AgentError as exc:
                    results[(team, inst)] = DeleteOutcome(team, inst, False, exc)
            for team, inst, deleted, err in d.delete_many(held, kill=kill, deadline=_bounded(deadline)):
                if err is not None and not isinstance(err, AgentError):
                    err = Internal(f"deleting scope {inst!r} of team {team!r} failed: {err}")
                results[(team, inst)] = DeleteOutcome(team, inst, deleted, err)
        return [results[(t, i)] for t, i in refs]

    def reconcile(self) -> int:
        """Startup: drop intent records of groups that never came to exist. Returns how many."""
        if self._driver is None or not self._driver.probe().available or not self._driver.root:
            return 0
        return self._driver.sweep_pending()


def _check_names(team: str, instance_id: str = "", *, required: bool = False) -> None:
    """InvalidArgument naming the field ("instance" first, then "team") when a name cannot be a
    cgroup of ours; an empty instance is the team slice unless `required`."""
    if instance_id or required:
        validation.cgroup_name("instance", instance_id)
    validation.cgroup_name("team", team)


def _bounded(deadline: float | None) -> float:
    cap = time.monotonic() + MAX_WAIT_SECONDS
    return cap if deadline is None else min(deadline, cap)
