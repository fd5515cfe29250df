"""Network plane fixtures: the embedded OVN stack (the same launcher the agent
uses), throwaway network namespaces, and independent checking tools
(ovn-nbctl, ovn-sbctl, ovs-vsctl, ovn-trace, ip -j, ping).

Everything is unique per test session (pid in names) and removed in teardown,
processes stopped by PID.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from pyroute2 import netns as pr_netns

from agent.drivers.embedded.ovn_stack import OvnStack, probe as stack_probe

PID = os.getpid()
_counter = itertools.count(1)


def uniq(prefix: str = "t") -> str:
    """A name unique in this session, valid as network/port name (<= 20 chars)."""
    return f"{prefix}{PID % 100000}-{next(_counter)}"


def start_stack(tag: str = "") -> OvnStack:
    """A fresh OVN stack in a short temp dir with its own netns (caller stops it)."""
    tag = f"{tag}{next(_counter)}"                 # two stacks must never share a netns
    d = Path(tempfile.mkdtemp(prefix=f"dco{tag}", dir="/tmp"))
    stack = OvnStack(d, system_id=f"hv-{PID}-{tag}", netns=f"dcovs{PID}-{tag}", fresh=True)
    try:
        stack.start()
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return stack


def stop_stack(stack: OvnStack) -> None:
    stack.stop(remove_netns=True)
    shutil.rmtree(stack.dir, ignore_errors=True)


class Tools:
    """Independent views of the state (never the agent's own getters)."""

    def __init__(self, stack: OvnStack) -> None:
        self.stack = stack

    def _run(self, argv: list[str], check: bool = True) -> str:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr}")
        return r.stdout

    def nbctl(self, *args: str, check: bool = True) -> str:
        return self._run(["ovn-nbctl", f"--db={self.stack.nb_remote}", "--timeout=10", *args], check)

    def sbctl(self, *args: str) -> str:
        return self._run(["ovn-sbctl", f"--db={self.stack.sb_remote}", "--timeout=10", *args])

    def vsctl(self, *args: str, check: bool = True) -> str:
        return self._run(["ovs-vsctl", f"--db={self.stack.ovs_remote}", "--timeout=10", *args], check)

    def nb_rows(self, table: str, *conds: str) -> list[dict]:
        """Rows of an NB table as dicts (ovn-nbctl --format=json find/list)."""
        out = self.nbctl("--format=json", "find" if conds else "list", table, *conds)
        return _ovsdb_json(out)

    def ovs_rows(self, table: str, *conds: str) -> list[dict]:
        out = self.vsctl("--format=json", "find" if conds else "list", table, *conds)
        return _ovsdb_json(out)

    def trace(self, switch: str, microflow: str) -> str:
        return self._run(["ovn-trace", f"--db={self.stack.sb_remote}", "--minimal", switch, microflow])

    def links(self, netns: str | None = None) -> list[dict]:
        argv = ["ip", "-j", "-d"] + (["-n", netns] if netns else []) + ["link", "show"]
        return json.loads(self._run(argv) or "[]")

    def link(self, name: str, netns: str | None = None) -> dict | None:
        return next((l for l in self.links(netns) if l["ifname"] == name), None)

    def addrs(self, name: str, netns: str) -> list[str]:
        out = json.loads(self._run(["ip", "-j", "-n", netns, "addr", "show", "dev", name]) or "[]")
        return [f"{a['local']}/{a['prefixlen']}" for i in out for a in i.get("addr_info", [])]

    def sysctl(self, netns: str, key: str) -> str:
        return self._run(["ip", "netns", "exec", netns, "sysctl", "-n", key]).strip()

    def ping(self, netns: str, ip: str, count: int = 1, timeout: int = 1, source: str | None = None) -> bool:
        argv = ["ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", str(count), "-W", str(timeout)]
        if source:
            argv += ["-I", source]
        return subprocess.run(argv + [ip], capture_output=True, timeout=30).returncode == 0

    def ping_eventually(self, netns: str, ip: str, attempts: int = 20) -> bool:
        """Ping until one succeeds (first packets may race flow installation)."""
        return any(self.ping(netns, ip) for _ in range(attempts))

    def in_ns(self, netns: str, *argv: str, check: bool = True) -> str:
        return self._run(["ip", "netns", "exec", netns, *argv], check)


def _ovsdb_json(out: str) -> list[dict]:
    """ovsdb --format=json table -> list of {column: python value}."""
    data = json.loads(out)
    rows = []
    for values in data["data"]:
        rows.append({h: _atom(v) for h, v in zip(data["headings"], values)})
    return rows


def as_list(v) -> list:
    """A set column as a list (ovsdb JSON shows a one-element set as the bare value)."""
    if v is None or v == []:
        return []
    return v if isinstance(v, list) else [v]


def _atom(v):
    if isinstance(v, list) and len(v) == 2 and v[0] in ("set", "map", "uuid"):
        if v[0] == "map":
            return {k: _atom(x) for k, x in v[1]}
        if v[0] == "set":
            return [_atom(x) for x in v[1]]
        return v[1]
    return v


class NetnsFactory:
    """Throwaway network namespaces, removed at teardown (veth ends inside go too)."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def __call__(self, tag: str = "i") -> str:
        name = f"dc{tag}{PID % 100000}x{next(_counter)}"
        pr_netns.create(name)
        self.created.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.created:
            try:
                pr_netns.remove(name)
            except OSError:
                pass
        self.created.clear()


def _require_stack() -> None:
    a = stack_probe()
    if not a.available:
        pytest.skip(f"OVN stack unavailable here: {a.reason}")


_shared: dict = {"stack": None, "users": 0}


@pytest.fixture(scope="session")
def ovn_stack():
    """One OVN stack (NB, SB, northd, OVS db, ovs-vswitchd in its netns, ovn-controller) per
    session, shared by tests/ and integration/ (each conftest registers this fixture)."""
    _require_stack()
    if _shared["stack"] is None:
        _shared["stack"] = start_stack()
    _shared["users"] += 1
    yield _shared["stack"]
    _shared["users"] -= 1
    if not _shared["users"]:
        stop_stack(_shared["stack"])
        _shared["stack"] = None


@pytest.fixture(scope="session")
def ovn_tools(ovn_stack) -> Tools:
    return Tools(ovn_stack)


@pytest.fixture
def netns_factory():
    f = NetnsFactory()
    yield f
    f.cleanup()


@pytest.fixture
def private_ovn_stack():
    """A stack of its own for tests that stop and restart components."""
    _require_stack()
    stack = start_stack(tag=f"p{next(_counter)}")
    yield stack
    stop_stack(stack)


def wait_until(fn, timeout: float = 10.0, interval: float = 0.02):
    """Poll fn() until truthy (returned) or timeout (returns the last value)."""
    end = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < end:
        time.sleep(interval)
        value = fn()
    return value


def agent_overrides(stack: OvnStack) -> list[str]:
    """Config overrides pointing an agent at `stack` (it then starts no OVN itself)."""
    return ["network.enabled=true", f"network.ovn_nb={stack.nb_remote}", f"network.ovs_db={stack.ovs_remote}",
            f"network.host_netns={stack.netns}", "network.ovsdb_timeout=3", "network.ovsdb_probe_interval_ms=2000"]
