"""The `zfs`/`zpool` command line: argv lists, `-H -p` parsing, error translation.

Works against OpenZFS and zfs-fuse (pool version 23). zfs-fuse gaps handled
here: no `zfs list -p` (we read with `zfs get -H -p -o name,property,value,source`),
no `zpool list -p` / `zpool get -H` (pool sizes come rounded), one property
per `zfs set`. Every call is bounded by a timeout so a hung daemon becomes
UNAVAILABLE instead of a hung RPC.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from typing import Iterable, Iterator, Sequence

from agent.errors import (AgentError, AlreadyExists, FailedPrecondition, Internal, InvalidArgument,
                          NotFound, ResourceExhausted, Unavailable)
from agent.metrics import Metrics

from .model import NATIVE_PROPS, DatasetInfo, PoolInfo, parse_size

DEFAULT_TIMEOUT = 60.0           # seconds; a destroy of a big tree can take a while
_ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

# stderr fragment -> (error class, reason). First match wins; order matters
# ("dataset is busy" before the generic "cannot destroy").
_STDERR_MAP: list[tuple[re.Pattern, type[AgentError], str]] = [
    (re.compile(r"Please make sure that the zfs-fuse daemon is running|failed to initialize ZFS library|"
                r"The ZFS modules are not loaded|Failed to initialize the libzfs library|/dev/zfs"),
     Unavailable, "ZFS_UNAVAILABLE"),
    (re.compile(r"dataset is busy|target is busy|pool or dataset is busy|device is busy|umount failed"),
     FailedPrecondition, "DATASET_BUSY"),
    (re.compile(r"has dependent clones|has children|filesystem has dependent"), FailedPrecondition,
     "HAS_DEPENDENTS"),
    (re.compile(r"more recent snapshots exist|more recent snapshots or bookmarks exist"), FailedPrecondition,
     "SNAPSHOT_NOT_LATEST"),
    (re.compile(r"size is less than current used or reserved space"), FailedPrecondition, "BELOW_USED"),
    (re.compile(r"parent does not exist"), NotFound, "PARENT_NOT_FOUND"),
    (re.compile(r"dataset does not exist|no such pool|could not find any snapshots|"
                r"no datasets available|not found"), NotFound, "DATASET_NOT_FOUND"),
    (re.compile(r"dataset already exists|pool already exists|already exists"), AlreadyExists, "DATASET_EXISTS"),
    (re.compile(r"out of space|size is greater than available space|no space left|"
                r"insufficient replicas|not enough space"), ResourceExhausted, "NO_SPACE"),
    (re.compile(r"quota exceeded"), ResourceExhausted, "QUOTA_EXCEEDED"),
    (re.compile(r"Function not implemented|not supported|operation not applicable|must be one of|"
                r"invalid property|pool must be upgraded|unsupported version"),
     FailedPrecondition, "NOT_SUPPORTED"),
    (re.compile(r"permission denied", re.I), FailedPrecondition, "PERMISSION"),
    (re.compile(r"not currently mounted"), FailedPrecondition, "NOT_MOUNTED"),
    (re.compile(r"invalid character|name is too long|invalid dataset name|invalid name|"
                r"bad property list|trailing slash|empty component"), InvalidArgument, "INVALID_ZFS_NAME"),
]


def translate(stderr: str, what: str, argv: Sequence[str]) -> AgentError:
    """Turn a failed command's stderr into the agent's error hierarchy."""
    text = " ".join(stderr.strip().split()) or "no error output"
    for pattern, cls, reason in _STDERR_MAP:
        if pattern.search(text):
            return cls(f"{what}: {text}", reason=reason, metadata={"command": " ".join(argv[:3])})
    return Internal(f"{what}: {text}", reason="ZFS_COMMAND_FAILED", metadata={"command": " ".join(argv[:3])})


def find_binary(name: str) -> str:
    """Absolute path of the zfs/zpool binary ('' if not installed)."""
    return shutil.which(name, path=_ENV["PATH"]) or ""


class ZfsCommand:
    """Runs `zfs`/`zpool` with argv lists, a timeout, and translated errors."""

    def __init__(self, metrics: Metrics, backend: str = "cli", timeout: float = DEFAULT_TIMEOUT,
                 max_parallel: int = 0) -> None:
        """max_parallel > 0 bounds the commands in flight (zfs-fuse wedges under overlap)."""
        self.metrics = metrics
        self.backend = backend
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(max_parallel) if max_parallel > 0 else None
        self.zfs = find_binary("zfs")
        self.zpool = find_binary("zpool")
        self.disabled_reason = ""          # set when the host cannot run this backend at all

    def run(self, tool: str, args: Sequence[str], *, what: str, op: str,
            timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run `tool args...` ("zfs" or "zpool") with a timeout; returns the finished process.

        Idempotent as far as the command is. With check, a failure raises the error
        translate() maps its stderr to (reasons as in _STDERR_MAP; FailedPrecondition
        NOT_SUPPORTED when zfs-fuse's CLI aborts); without, the caller reads the
        returncode. Always raises FailedPrecondition FACILITY_UNAVAILABLE (disabled here)
        / ZFS_NOT_INSTALLED, Unavailable ZFS_TIMEOUT (no answer, or no slot in time) /
        ZFS_UNAVAILABLE (cannot run the binary)."""
        if self.disabled_reason:
            raise FailedPrecondition(f"{what}: ZFS is not available on this host: {self.disabled_reason}",
                                     reason="FACILITY_UNAVAILABLE", metadata={"facility": "zfs"})
        binary = self.zfs if tool == "zfs" else self.zpool
        if not binary:
            raise FailedPrecondition(f"{what}: the {tool} command is not installed (apt install zfsutils-linux "
                                     "or zfs-fuse)", reason="ZFS_NOT_INSTALLED")
        argv = [binary, *args]
        limit = timeout or self.timeout
        started = time.monotonic()
        try:
            with self.slot(what, limit):
                with self.metrics.time(self.metrics.zfs_op, op=op, backend=self.backend):
                    proc = subprocess.run(argv, capture_output=True, text=True, env=_ENV,
                                          stdin=subprocess.DEVNULL,
                                          timeout=max(1.0, limit - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{what}: `{tool} {' '.join(args[:2])}` did not answer within "
                              f"{timeout or self.timeout:.0f}s; the ZFS daemon or module may be hung",
                              reason="ZFS_TIMEOUT") from None
        except OSError as exc:
            raise Unavailable(f"{what}: cannot run {binary}: {exc}", reason="ZFS_UNAVAILABLE") from None
        if check and proc.returncode != 0:
            if proc.returncode < 0 or proc.returncode == 134:
                # zfs-fuse's CLI aborts (SIGABRT) on operations it does not implement (zvols).
                if "Function not implemented" in proc.stderr or proc.returncode == 134:
                    raise FailedPrecondition(f"{what}: not implemented by this ZFS ({proc.stderr.strip()})",
                                             reason="NOT_SUPPORTED")
            raise translate(proc.stderr or proc.stdout, what, argv[1:])
        return proc

    @contextlib.contextmanager
    def slot(self, what: str, timeout: float | None = None) -> Iterator[None]:
        """Hold a command slot while a command (or the backend's own umount2(2)) runs; a no-op
        without max_parallel. Unavailable(ZFS_TIMEOUT) when none frees within the timeout."""
        if self._slots is None:
            yield
            return
        limit = timeout or self.timeout
        if not self._slots.acquire(timeout=limit):
            raise Unavailable(f"{what}: no ZFS command slot within {limit:.0f}s (all busy); the ZFS daemon "
                              "may be hung", reason="ZFS_TIMEOUT")
        try:
            yield
        finally:
            self._slots.release()

    # -- reads -----------------------------------------------------------------

    def get(self, names: Iterable[str], *, recursive: bool = False, depth: int | None = None,
            user_props: Sequence[str] = (), what: str = "zfs get") -> tuple[dict[str, DatasetInfo], str]:
        """One `zfs get -H -p` over `names`; returns ({name: info}, stderr).

        Read-only. Missing names are simply absent from the result (the command
        still prints the others); no names -> ({}, "") without a command. Raises only
        for daemon/transport failures (the translated error when nothing was printed).
        """
        names = list(names)
        if not names:
            return {}, ""
        props = ",".join((*NATIVE_PROPS, *user_props))
        args = ["get", "-H", "-p", "-o", "name,property,value,source"]
        if depth is not None:
            args += ["-d", str(depth)]
        elif recursive:
            args.append("-r")
        args += [props, *names]
        proc = self.run("zfs", args, what=what, op="get", check=False)
        if proc.returncode != 0 and not proc.stdout:
            err = translate(proc.stderr, what, args)
            if not isinstance(err, NotFound):
                raise err
        return parse_get(proc.stdout, user_props), proc.stderr

    def pool(self, name: str, *, parsable: bool) -> PoolInfo | None:
        """Health and capacity of pool `name` (None if no such pool is imported). Read-only.
        Raises Internal on unexpected `zpool list` output, daemon/transport failures."""
        cols = "name,size,allocated,free,health,version"
        args = ["list", "-H", *(["-p"] if parsable else []), "-o", cols, name]
        proc = self.run("zpool", args, what=f"pool {name}", op="pool_list", check=False)
        if proc.returncode != 0:
            err = translate(proc.stderr, f"pool {name}", args)
            if isinstance(err, NotFound):
                return None
            raise err
        fields = proc.stdout.strip().split("\t")
        if len(fields) < 6:
            raise Internal(f"pool {name}: unexpected zpool list output {proc.stdout!r}")
        root, _ = self.get([name], what=f"pool {name} root dataset")
        r = root.get(name)
        features: tuple[str, ...] = ()
        if parsable:
            features = self.pool_features(name)
        return PoolInfo(name=fields[0], size=parse_size(fields[1]), allocated=parse_size(fields[2]),
                        free=parse_size(fields[3]), health=fields[4], version=fields[5],
                        root_used=r.used if r else 0, root_available=r.available if r else 0,
                        features=features)

    def pool_features(self, name: str) -> tuple[str, ...]:
        """OpenZFS feature flags that are enabled or active on `name` (() when the pool is absent
        or the ZFS has none). Read-only; raises only when the command cannot run."""
        proc = self.run("zpool", ["get", "-H", "-p", "-o", "property,value", "all", name],
                        what=f"pool {name} features", op="pool_get", check=False)
        out = []
        for line in proc.stdout.splitlines():
            prop, _, value = line.partition("\t")
            if prop.startswith("feature@") and value in ("enabled", "active"):
                out.append(prop[len("feature@"):])
        return tuple(sorted(out))


def _int(value: str) -> int:
    if value in ("-", "", "none"):
        return 0
    try:
        return int(value)
    except ValueError:
        return parse_size(value)


def parse_get(stdout: str, user_props: Sequence[str] = ()) -> dict[str, DatasetInfo]:
    """Parse `zfs get -H -p -o name,property,value,source` into DatasetInfo per name (order kept)."""
    raw: dict[str, dict[str, tuple[str, str]]] = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        name, prop, source = parts[0], parts[1], parts[-1]
        value = "\t".join(parts[2:-1])
        raw.setdefault(name, {})[prop] = (value, source)
    out: dict[str, DatasetInfo] = {}
    for name, props in raw.items():
        def v(p: str) -> str:
            return props.get(p, ("-", "-"))[0]
        local, inherited = {}, {}
        for p in user_props:
            value, source = props.get(p, ("-", "-"))
            if source == "local":
                local[p] = value
            elif source.startswith("inherited") or (source not in ("-", "") and value != "-"):
                inherited[p] = value
        mountpoint = v("mountpoint")
        out[name] = DatasetInfo(
            name=name, type=v("type"), origin="" if v("origin") == "-" else v("origin"),
            used=_int(v("used")), available=_int(v("available")), referenced=_int(v("referenced")),
            quota=_int(v("quota")), refquota=_int(v("refquota")), reservation=_int(v("reservation")),
            refreservation=_int(v("refreservation")), volsize=_int(v("volsize")),
            mountpoint="" if mountpoint == "-" else mountpoint, mounted=v("mounted") == "yes",
            readonly=v("readonly") == "on", canmount="" if v("canmount") == "-" else v("canmount"),
            creation=_int(v("creation")), createtxg=_int(v("createtxg")), user_props=local,
            inherited_props=inherited)
    return out

