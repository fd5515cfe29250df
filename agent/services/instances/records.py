"""The instance plane's records: the JSON forms of specs and names kept in the
intent store (canonical: equal specs give equal dicts), and the rules of
which fields are immutable. Pure: no I/O.
"""
from __future__ import annotations

import dataclasses
import json
from typing import TypeVar

from agent.model.compute import (CpuLimits, CpusetLimits, HugetlbLimit, IoDeviceLimits, IoLimits, Limits, MemoryLimits,
                                 PidsLimits)
from agent.model.idmap import IdMap
from agent.services.instances.model import (KIND_CONTAINER, Allocation, InstanceNames, InstanceSpec, NicNames, NicSpec,
                                           RootSpec)

T = TypeVar("T")


# -- JSON forms (intent store) ---------------------------------------------------------
def _limits_to_dict(l: Limits) -> dict:
    return dataclasses.asdict(l)


def _limits_from_dict(d: dict | None) -> Limits:
    if not d:
        return Limits()

    def one(cls: type[T], key: str) -> T | None:
        v = d.get(key)
        return cls(**v) if v is not None else None
    io = d.get("io")
    return Limits(cpu=one(CpuLimits, "cpu"), memory=one(MemoryLimits, "memory"), pids=one(PidsLimits, "pids"),
                  io=IoLimits(io.get("weight"), tuple(IoDeviceLimits(**x) for x in io.get("devices", ())))
                  if io is not None else None,
                  cpuset=one(CpusetLimits, "cpuset"),
                  hugetlb=tuple(HugetlbLimit(**h) for h in d.get("hugetlb", ())))


def _nic_to_dict(n: NicSpec) -> dict:
    d = dataclasses.asdict(n)
    if not d.get("peer_placement"):
        d.pop("peer_placement", None)          # as records made before the field existed: no spurious update
    return d


def spec_to_dict(s: InstanceSpec) -> dict:
    """Canonical JSON-able form (what the store keeps; equal specs give equal dicts; fields
    added later are left out while they hold their default)."""
    d = {"id": s.id, "team": s.team, "kind": s.kind, "root": dataclasses.asdict(s.root),
         "nics": [_nic_to_dict(n) for n in s.nics], "limits": _limits_to_dict(s.limits),
         "labels": dict(s.labels), "kubernetes_node": s.kubernetes_node}
    if s.idmap is not None:
        d["idmap"] = dataclasses.asdict(s.idmap)
    return json.loads(json.dumps(d, sort_keys=True))


def spec_from_dict(d: dict) -> InstanceSpec:
    """The spec back from its stored form (absent optional keys take their defaults)."""
    return InstanceSpec(id=d["id"], team=d["team"], kind=d.get("kind", KIND_CONTAINER),
                        root=RootSpec(**d.get("root", {})), nics=tuple(NicSpec(**n) for n in d.get("nics", ())),
                        limits=_limits_from_dict(d.get("limits")),
                        labels=tuple(sorted(d.get("labels", {}).items())),
                        kubernetes_node=bool(d.get("kubernetes_node", False)),
                        idmap=IdMap(**d["idmap"]) if d.get("idmap") else None)


def names_to_dict(n: InstanceNames, allocations: dict[str, Allocation] | None = None) -> dict:
    """The stored form of the names, with the allocated addresses by NIC."""
    d = dataclasses.asdict(n)
    d["allocations"] = {k: dataclasses.asdict(v) for k, v in (allocations or {}).items()}
    return d


def names_from_dict(d: dict) -> tuple[InstanceNames, dict[str, Allocation]]:
    """(names, allocations by NIC) back from their stored form."""
    names = InstanceNames(dataset=d["dataset"], volume_team=d["volume_team"], volume_name=d["volume_name"],
                          scope=d["scope"], nics=tuple(NicNames(**n) for n in d.get("nics", ())))
    return names, {k: Allocation(**v) for k, v in d.get("allocations", {}).items()}


# -- compatibility -------------------------------------------------------------------
def incompatible(old: InstanceSpec, new: InstanceSpec, allocations: dict[str, Allocation]) -> list[str]:
    """Immutable fields that differ between the recorded spec and a new one (empty: compatible).
    A NIC address left empty in `new` keeps the recorded one; a given one must equal it or
    what was allocated."""
    out = []
    if old.team != new.team:
        out.append(f"spec.team: recorded {old.team!r}, requested {new.team!r}")
    if old.kind != new.kind:
        out.append(f"spec.kind: recorded {old.kind}, requested {new.kind}")
    if old.root.image_id != new.root.image_id:
        out.append(f"spec.root.image_id: recorded {old.root.image_id!r}, requested {new.root.image_id!r}")
    if old.idmap != new.idmap:
        out.append(f"spec.idmap: recorded {old.idmap.mark() if old.idmap else 'none'}, requested "
                   f"{new.idmap.mark() if new.idmap else 'none'}")
    if new.root.size_bytes < old.root.size_bytes:
        out.append(f"spec.root.size_bytes: {new.root.size_bytes} would shrink the recorded {old.root.size_bytes}")
    before = {n.name: n for n in old.nics}
    after = {n.name: n for n in new.nics}
    if sorted(before) != sorted(after):
        out.append(f"spec.nics: recorded NICs {sorted(before)}, requested {sorted(after)} (NICs are immutable)")
        return out
    for i, n in enumerate(new.nics):
        o, a = before[n.name], allocations.get(n.name, Allocation())
        if o.network != n.network:
            out.append(f"spec.nics[{i}].network: recorded {o.network!r}, requested {n.network!r}")
        if o.queues != n.queues:
            out.append(f"spec.nics[{i}].queues: recorded {o.queues}, requested {n.queues}")
        for fld in ("mac", "ip4", "ip6"):
            want = getattr(n, fld)
            if want and want not in (getattr(o, fld), getattr(a, fld)):
                out.append(f"spec.nics[{i}].{fld}: recorded {getattr(o, fld) or getattr(a, fld)!r}, "
                           f"requested {want!r}")
    return out


def keep_allocations(spec: InstanceSpec, allocations: dict[str, Allocation]) -> InstanceSpec:
    """The spec with empty NIC addresses filled from what was allocated (for converge and diff)."""
    nics = []
    for n in spec.nics:
        a = allocations.get(n.name)
        if a is not None:
            n = dataclasses.replace(n, mac=n.mac or a.mac, ip4=n.ip4 or a.ip4, ip6=n.ip6 or a.ip6)
        nics.append(n)
    return dataclasses.replace(spec, nics=tuple(nics))
