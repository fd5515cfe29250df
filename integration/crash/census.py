"""Independent census of one agent's objects after a crash round: only `zfs get`,
`ip -j -d link`, `ovs-vsctl`, `ovn-nbctl` and cgroupfs, never the agent's getters.

Objects are grouped by the instance their mark names; an object whose name is
one of the agent's (our netdev prefix, our dataset parent, our LSP naming, a
scope in a team slice) but carries no mark is reported as unmarked.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field

PARTS = ("dataset", "netdev", "ovs", "lsp", "scope")


def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def ovsdb_rows(out: str) -> list[dict]:
    """ovsdb --format=json output -> [{column: value}] (maps as dicts)."""
    data = json.loads(out)
    rows = []
    for values in data["data"]:
        row = {}
        for h, v in zip(data["headings"], values):
            if isinstance(v, list) and v and v[0] == "map":
                v = {k: x for k, x in v[1]}
            row[h] = v
        rows.append(row)
    return rows


def alias_fields(alias: str) -> dict[str, str] | None:
    parts = (alias or "").split()
    if not parts or parts[0] != "devcloud":
        return None
    return dict(p.partition("=")[::2] for p in parts[1:] if "=" in p)


@dataclass
class Census:
    """What exists, by instance id, and what bears our names without our mark."""

    parts: dict[str, dict[str, object]] = field(default_factory=lambda: defaultdict(dict))
    unmarked: list[str] = field(default_factory=list)

    def whole(self, iid: str) -> bool:
        return all(p in self.parts.get(iid, {}) for p in PARTS)

    def partial(self) -> dict[str, list[str]]:
        """Instances with some but not all parts: {id: [missing parts]}."""
        return {i: [p for p in PARTS if p not in have] for i, have in self.parts.items()
                if 0 < len(have) < len(PARTS)}

    def ids(self) -> set[str]:
        return {i for i in self.parts if self.whole(i)}


@dataclass
class Where:
    """Where one agent keeps its objects."""

    parent: str                 # dataset parent (<pool>/...)
    netns: str                  # the agent's host netns (netdevs, ovs-vswitchd)
    prefix: str                 # netdev prefix
    nb: str                     # NB remote
    ovs: str                    # local Open_vSwitch remote
    cgroup_root: str
    node: str


def take(w: Where, foreign: set[str] = frozenset()) -> Census:
    """One census; `foreign` names objects placed by the test (skipped as unmarked)."""
    c = Census()
    # datasets: every volume under <parent>/instances; a volume is ours when devcloud:owner is set
    out = _run(["zfs", "get", "-H", "-p", "-r", "-o", "name,property,value",
                "devcloud:owner,devcloud:instance,devcloud:type,refquota", f"{w.parent}/instances"])
    props: dict[str, dict[str, str]] = defaultdict(dict)
    for line in out.splitlines():
        name, prop, value = line.split("\t")
        props[name][prop] = value
    base = w.parent + "/instances/"
    for name, p in props.items():
        if name.count("/") != base.count("/") + 1 or not name.startswith(base) or "@" in name:
            continue                                # the instances dir and team dirs themselves
        if name in foreign:
            continue
        if p.get("devcloud:owner", "-") == "-":
            c.unmarked.append(f"dataset {name}")
        elif p.get("devcloud:type") == "volume" and p.get("devcloud:instance", "-") != "-":
            c.parts[p["devcloud:instance"]]["dataset"] = {"name": name, "refquota": p.get("refquota")}
    # netdevs in the agent's host netns
    for link in json.loads(_run(["ip", "-j", "-d", "-n", w.netns, "link", "show"]) or "[]"):
        name = link["ifname"]
        if not name.startswith(w.prefix) or name in foreign:
            continue
        mark = alias_fields(link.get("ifalias", ""))
        if mark is None:
            c.unmarked.append(f"netdev {name} (group {link.get('group')})")
        elif mark.get("kind") == "port" and mark.get("inst"):
            c.parts[mark["inst"]]["netdev"] = name
    # OVS interfaces named with our prefix
    for row in ovsdb_rows(_run(["ovs-vsctl", f"--db={w.ovs}", "--timeout=20", "--format=json",
                                "--columns=name,external_ids", "list", "Interface"])):
        name, ext = row["name"], row["external_ids"]
        if not name.startswith(w.prefix) or name in foreign:
            continue
        if ext.get("devcloud-owner") != "devcloud-agent":
            c.unmarked.append(f"ovs {name}")
        elif ext.get("devcloud-node") == w.node and ext.get("devcloud-instance"):
            c.parts[ext["devcloud-instance"]]["ovs"] = name
    # logical switch ports named like ours (dc.<team>.<port>) or sitting in a team switch
    for row in ovsdb_rows(_run(["ovn-nbctl", f"--db={w.nb}", "--timeout=20", "--format=json",
                                "--columns=name,external_ids", "list", "Logical_Switch_Port"])):
        name, ext = row["name"], row["external_ids"]
        if name in foreign:
            continue
        if ext.get("devcloud-owner") != "devcloud-agent":
            if name.startswith("dc."):
                c.unmarked.append(f"lsp {name}")
        elif ext.get("devcloud-node") == w.node and ext.get("devcloud-instance"):
            c.parts[ext["devcloud-instance"]]["lsp"] = name
    # scopes in team slices
    if os.path.isdir(w.cgroup_root):
        for sl in os.listdir(w.cgroup_root):
            sp = os.path.join(w.cgroup_root, sl)
            if not sl.endswith(".slice") or not os.path.isdir(sp):
                continue
            for sc in os.listdir(sp):
                path = os.path.join(sp, sc)
                if not os.path.isdir(path) or path in foreign:
                    continue
                try:
                    mark = os.getxattr(path, "user.devcloud.owner").decode()
                except OSError:
                    mark = ""
                if "owner=devcloud-agent" not in mark:
                    c.unmarked.append(f"cgroup {path}")
                elif sc.endswith(".scope"):
                    c.parts[sc[:-len(".scope")]]["scope"] = path
    return c
