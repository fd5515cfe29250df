"""The cgroup v2 driver's contract: a slice per team, a scope per instance, under the agent's subtree."""
from __future__ import annotations

import builtins
from typing import Callable, Iterator, Protocol

from agent.drivers.base import Availability
from agent.model.compute import SCOPE, CgroupInfo, HostFacts, LimitDrift, Limits, Mark, Stats


class CgroupContract(Protocol):
    """Slices and scopes with limits, stats, freeze/thaw/kill.

    Every method that touches the kernel first checks the facility: FailedPrecondition
    FACILITY_UNAVAILABLE when probe() says cgroup v2 is unusable here. A directory at our
    path without our mark is never changed or removed: FailedPrecondition NOT_OURS. Kernel
    errors come back translated (agent.errors.from_oserror: e.g. FailedPrecondition
    PERMISSION). Team and instance names that cannot be one directory of ours ('/', '.',
    space, '=', longer than 63...) -> InvalidArgument."""

    root: str                  # the agent's subtree ("" without cgroup2)
    mount: str                 # the cgroup2 mount point ("" without cgroup2)

    def probe(self) -> Availability:
        """Whether cgroup v2 is usable here; features = controllers available to the subtree.

        Read-only, never raises: no cgroup2 mount, a root outside the mount or an
        unreadable anchor come back as Availability.missing with the reason."""

    def host_facts(self) -> HostFacts:
        """Online CPUs and memory nodes, hugepage sizes and a block device lookup: what limits
        are checked against (agent.validation.limit_violations). Read-only; an unreadable
        online list counts as node 0 only. Raises ValueError on a malformed list."""

    # -- names (pure) ----------------------------------------------------------------
    def slice_path(self, team: str) -> str:
        """Deterministic path of a team's slice, whether it exists or not (pure, no I/O).
        Raises InvalidArgument when `team` cannot name a cgroup directory."""

    def scope_path(self, team: str, instance: str) -> str:
        """Deterministic path of an instance's scope, whether it exists or not (pure, no I/O).
        Raises InvalidArgument when a name cannot name a cgroup directory."""

    # -- create / update -------------------------------------------------------------
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

    def update(self, team: str, instance: str, limits: Limits) -> tuple[CgroupInfo, bool]:
        """Write only the requested limits of an existing slice/scope (others untouched).
        Returns (the group as the kernel reports it, changed).

        Idempotent: requested values already there -> changed=False, no write. Never
        creates: absent -> NotFound CGROUP_NOT_FOUND. Raises InvalidArgument,
        FailedPrecondition (NOT_OURS, CONTROLLER_UNAVAILABLE, LIMIT_FILE_MISSING,
        CGROUP_BUSY, FACILITY_UNAVAILABLE) as ensure().
        """

    def drift(self, team: str, instance: str, limits: Limits) -> builtins.list[LimitDrift]:
        """Kernel files that differ from `limits` (what ensure() would write; [] when in sync),
        including controllers not enabled on the parent and requested files the kernel lacks.

        Read-only, so idempotent. Absent -> NotFound CGROUP_NOT_FOUND. Raises
        InvalidArgument (bad name), FailedPrecondition NOT_OURS, FACILITY_UNAVAILABLE."""

    # -- read ------------------------------------------------------------------------
    def get(self, team: str, instance: str = "") -> CgroupInfo:
        """The slice (instance="") or scope as the kernel reports it: controllers, limits read
        back from the files, populated/frozen, pids (scopes), child count.

        Read-only. Absent -> NotFound CGROUP_NOT_FOUND. Raises InvalidArgument (bad name),
        FailedPrecondition NOT_OURS (exists without our mark), FACILITY_UNAVAILABLE."""

    def list(self, team: str = "", *, kind: str = SCOPE) -> builtins.list[CgroupInfo]:
        """Every slice (kind=SLICE) or scope (of `team`, or of all teams) carrying our mark,
        as get() reports them. Unmarked directories are skipped, never touched; a group
        removed during the scan is left out.

        Read-only. An absent subtree or team slice -> []. Raises InvalidArgument (bad team
        name), FailedPrecondition FACILITY_UNAVAILABLE."""

    def owned(self, team: str = "", *, kind: str = SCOPE) -> Iterator[tuple[str, Mark]]:
        """(path, mark) of every marked slice (kind=SLICE) or scope of ours (of `team`, or of
        all teams): a directory scan without reading limits, for GC and reconcile.

        Read-only; lazy (a generator). Unmarked directories and scopes whose mark names
        another team are skipped; an absent subtree yields nothing. Does not check the
        facility. Raises InvalidArgument (bad team name), translated OSError of the scan."""

    def stats(self, team: str, instance: str = "") -> Stats:
        """Usage counters and pressure (PSI) of a slice (instance="") or scope; counters whose
        file the kernel lacks stay None/empty.

        Read-only. Absent -> NotFound CGROUP_NOT_FOUND. Raises InvalidArgument (bad name),
        FailedPrecondition NOT_OURS, FACILITY_UNAVAILABLE."""

    # -- processes -------------------------------------------------------------------
    def attach(self, team: str, instance: str, pids: builtins.list[int]) -> tuple[int, ...]:
        """Move processes (whole thread groups) into a scope; returns the scope's pids.

        Idempotent (a pid already there is fine). Absent scope -> NotFound
        CGROUP_NOT_FOUND; a process that does not exist -> NotFound
        PROCESS_NOT_FOUND (earlier pids of the list stay moved). Raises
        InvalidArgument (instance "" - a team slice -, pid <= 1 or the agent
        itself, a bad name), FailedPrecondition NOT_OURS, FACILITY_UNAVAILABLE.
        """

    def freeze(self, team: str, instance: str, deadline: float | None) -> float:
        """Freeze every process of the slice/scope and wait until the kernel says frozen.

        Idempotent (already frozen: returns at once). Returns seconds waited.
        Absent -> NotFound CGROUP_NOT_FOUND. Raises DeadlineExceeded
        CGROUP_WAIT_TIMEOUT (the freeze stays requested), FailedPrecondition
        NOT_OURS (the group, or for a team slice any child cgroup, is not ours),
        FACILITY_UNAVAILABLE; InvalidArgument (bad name).
        """

    def thaw(self, team: str, instance: str, deadline: float | None) -> float:
        """Thaw and wait until the kernel says thawed; returns seconds waited.

        Idempotent (not frozen: returns at once). Absent -> NotFound
        CGROUP_NOT_FOUND. Raises FailedPrecondition PARENT_FROZEN when the
        scope's team slice is frozen (thaw that first), NOT_OURS,
        FACILITY_UNAVAILABLE; DeadlineExceeded CGROUP_WAIT_TIMEOUT; InvalidArgument.
        """

    def kill(self, team: str, instance: str, deadline: float | None) -> float:
        """SIGKILL every process of the slice/scope and wait until it is empty.

        Idempotent (an empty cgroup: nothing to do). Returns seconds waited.
        Absent -> NotFound CGROUP_NOT_FOUND. Raises DeadlineExceeded
        CGROUP_WAIT_TIMEOUT, FailedPrecondition NOT_OURS (the group, or for a
        team slice any child cgroup), KILL_UNSUPPORTED (no cgroup.kill: Linux
        < 5.14), FACILITY_UNAVAILABLE; InvalidArgument (bad name).
        """

    # -- delete ----------------------------------------------------------------------
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

    def delete_many(self, refs: builtins.list[tuple[str, str]], *, kill: bool = False,
                    deadline: float | None = None) -> builtins.list[tuple[str, str, bool, Exception | None]]:
        """Bulk scope removal: kill all first, wait for all, then remove them.

        Returns (team, instance, deleted, error) per ref, in order. Idempotent per
        item: an absent scope -> deleted=False, error None. Errors are per item,
        never raised: InvalidArgument (bad name, a ref without instance),
        FailedPrecondition NOT_OURS / SCOPE_POPULATED (populated and not kill),
        DeadlineExceeded and rmdir errors as delete(). Only FailedPrecondition
        FACILITY_UNAVAILABLE is raised for the whole call.
        """

    def sweep_pending(self) -> int:
        """Drop creation intents (recorded before a mkdir) whose directory never came to exist
        (a crash between the record and the mkdir). Returns how many.

        Idempotent: a second call finds none and returns 0. An absent subtree -> 0.
        Unreadable directories are skipped; raises a translated OSError when an intent
        cannot be removed."""
