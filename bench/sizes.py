"""How big a run is. `full()` is what the published table uses; `smoke()` is the
tiny run CI does to keep the harness working (its numbers mean nothing)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class Sizes:
    levels: tuple[int, ...] = (10, 500, 2000)      # instances already on the node while sampling (scale)
    samples: int = 40                               # agent prepare/release samples per level (each: 2 prepares)
    baseline_samples: int = 20                      # LXD-style CLI instances per level
    floor_samples: int = 20                         # each-step-alone samples per level
    clients: tuple[int, ...] = (1, 4, 16)           # concurrent client processes for throughput
    throughput_ops: tuple[int, ...] = (50, 100, 200)  # prepares per throughput run; the last run's team is
                                                    # the bulk-release team (its size = the last value)
    read_samples: int = 1000                        # read-only RPC and echo round trips (each)
    team_size: int = 200                            # instances per team when filling the node
    fill_clients: int = 16                          # client processes filling the node up to a level
    pool_bytes: int = 8 << 30                       # sparse file of the ZFS pool
    restart: bool = True                            # restart the agent at the top level (READY time, RSS)
    profile_samples: int = 30                       # prepare+release pairs under py-spy at the first and top
                                                    # level (apart from the timed samples); 0: no profile

    @property
    def bulk(self) -> int:
        return self.throughput_ops[-1]

    def as_dict(self) -> dict:
        return asdict(self)


ZFS_FUSE_MAX_LEVEL = 800     # zfs-fuse mounts at most ~1,000 datasets (later mounts: EIO)


def for_flavor(s: Sizes, flavor: str) -> tuple[Sizes, str]:
    """Levels zfs-fuse can hold: above ZFS_FUSE_MAX_LEVEL they are replaced by it.
    Returns (sizes, a note for the report; "" when nothing changed)."""
    if flavor != "zfs-fuse" or max(s.levels) <= ZFS_FUSE_MAX_LEVEL:
        return s, ""
    levels = tuple(sorted({min(lv, ZFS_FUSE_MAX_LEVEL) for lv in s.levels}))
    note = (f"levels {','.join(map(str, s.levels))} capped to {','.join(map(str, levels))}: zfs-fuse cannot "
            f"keep more than ~1,000 datasets mounted (later mounts fail with EIO); OpenZFS has no such limit")
    return replace(s, levels=levels), note


def full() -> Sizes:
    return Sizes()


def smoke() -> Sizes:
    return Sizes(levels=(2, 4), samples=2, baseline_samples=2, floor_samples=2, clients=(1, 2),
                 throughput_ops=(2, 4), read_samples=20, team_size=3, fill_clients=2, pool_bytes=2 << 30,
                 profile_samples=2)


def override(s: Sizes, items: list[str]) -> Sizes:
    """Apply "key=value" items (tuples as comma lists), e.g. levels=10,100 samples=20."""
    types = {f.name: f.type for f in fields(Sizes)}
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise SystemExit(f"--size {item!r}: expected one of {', '.join(types)} as key=value")
        t = str(types[key])
        if "tuple" in t:
            changes[key] = tuple(int(v) for v in value.split(",") if v)
        elif "bool" in t:
            changes[key] = value.lower() in ("1", "true", "yes")
        else:
            changes[key] = int(value)
    s = replace(s, **changes)
    if len(s.clients) != len(s.throughput_ops):
        raise SystemExit("--size: clients and throughput_ops need the same number of entries")
    if sorted(s.levels) != list(s.levels) or not s.levels:
        raise SystemExit("--size: levels must be ascending")
    return s
