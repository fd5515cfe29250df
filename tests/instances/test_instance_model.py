"""Pure parts of the instance plane: the step enumeration and fault hook, the
JSON forms kept in the intent store, and the immutability rules."""
from __future__ import annotations

import subprocess
import sys

import pytest

from agent.drivers.cgroup import Limits, MemoryLimits, PidsLimits
from agent.services.compute import SCOPE_ENSURE_STEPS
from agent.services.instances.faults import FAULT_ENV, FAULT_EXIT_CODE, PREPARE_STEPS, RELEASE_STEPS, Faults
from agent.services.instances.model import Allocation, InstanceSpec, NicSpec, RootSpec
from agent.services.instances.records import incompatible, keep_allocations, spec_from_dict, spec_to_dict
from agent.services.network.ports import PORT_DELETE_STEPS, PORT_ENSURE_STEPS
from tests.support.server import REPO


def test_steps_include_every_plane_boundary():
    assert [s for s in PREPARE_STEPS if s.startswith("network.")] == [f"network.{s}" for s in PORT_ENSURE_STEPS]
    assert [s for s in PREPARE_STEPS if s.startswith("compute.")] == [f"compute.{s}" for s in SCOPE_ENSURE_STEPS]
    assert [s for s in RELEASE_STEPS if s.startswith("network.")] == [f"network.{s}" for s in PORT_DELETE_STEPS]
    assert PREPARE_STEPS[0] == RELEASE_STEPS[0] == "intent-recorded"
    assert PREPARE_STEPS[-1] == RELEASE_STEPS[-1] == "planes-done"
    assert len(set(PREPARE_STEPS)) == len(PREPARE_STEPS) and len(set(RELEASE_STEPS)) == len(RELEASE_STEPS)


def test_fault_hook_parsing_and_exit():
    with pytest.raises(ValueError):
        Faults("prepare:no-such-step")
    with pytest.raises(ValueError):
        Faults("destroy:intent-recorded")
    f = Faults("release:planes-done")
    assert f.checkpoint("prepare") is None and f.checkpoint("release") is not None
    f.hit("prepare", "planes-done")           # another op: nothing happens
    code = ("from agent.services.instances.faults import Faults\n"
            "f = Faults.from_env()\nf.checkpoint('prepare', 'network.')('netdev-created')\nprint('not reached')")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                       env={FAULT_ENV: "prepare:network.netdev-created", "PYTHONPATH": str(REPO)})
    assert r.returncode == FAULT_EXIT_CODE and "not reached" not in r.stdout


def _spec(**kw) -> InstanceSpec:
    base = dict(id="web-1", team="t", root=RootSpec(image_id="img", refquota_bytes=1 << 30),
                nics=(NicSpec("eth0", "net-a"),), limits=Limits(memory=MemoryLimits(max=1 << 30),
                                                                   pids=PidsLimits(max="max")),
                labels=(("a", "b"),))
    base.update(kw)
    return InstanceSpec(**base)


def test_spec_json_round_trip():
    s = _spec()
    assert spec_from_dict(spec_to_dict(s)) == s
    assert spec_to_dict(s) == spec_to_dict(spec_from_dict(spec_to_dict(s)))


def test_immutable_fields():
    old = _spec()
    alloc = {"eth0": Allocation("0a:58:0a:00:00:05", "10.0.0.5")}
    assert incompatible(old, _spec(limits=Limits()), alloc) == []
    assert incompatible(old, _spec(root=RootSpec(image_id="img", refquota_bytes=5)), alloc) == []
    assert incompatible(old, _spec(nics=(NicSpec("eth0", "net-a", ip4="10.0.0.5"),)), alloc) == []
    assert incompatible(old, _spec(nics=(NicSpec("eth0", "net-a", mtu=1400, peer_netns="ns"),)), alloc) == []
    bad = {"team": _spec(team="u"), "kind": _spec(kind="vm"), "image": _spec(root=RootSpec(image_id="other")),
           "nics": _spec(nics=()), "network": _spec(nics=(NicSpec("eth0", "net-b"),)),
           "ip4": _spec(nics=(NicSpec("eth0", "net-a", ip4="10.0.0.6"),))}
    for what, new in bad.items():
        assert incompatible(old, new, alloc), what
    pinned = keep_allocations(old, alloc)
    assert pinned.nics[0].ip4 == "10.0.0.5" and pinned.nics[0].mac == "0a:58:0a:00:00:05"


def test_describe_plane_errors_joins_messages_of_any_exception():
    # regression: a rollback that left something behind (storage Unavailable) turned into INTERNAL
    # because the message join expected strings (seen in the bench under zfs-fuse load)
    from agent.errors import Unavailable
    from agent.services.instances.runner import describe
    errs = [Unavailable("zfs clone did not answer within 60s", reason="ZFS_UNAVAILABLE"), OSError(16, "busy"),
            RuntimeError()]
    assert describe(errs) == "zfs clone did not answer within 60s; [Errno 16] busy; RuntimeError"
