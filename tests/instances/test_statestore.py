"""The intent store survives a process that dies right after recording."""
from __future__ import annotations

import subprocess
import sys

from agent.drivers.statestore import InstanceRecord, StateStore
from tests.support.server import REPO

CHILD = """
import os, sys
from pathlib import Path
from agent.drivers.statestore import StateStore, InstanceRecord
s = StateStore(Path(sys.argv[1])); s.open()
op = s.begin(InstanceRecord('web-1', 'team-a', 'preparing', {'image': 'deb12'}, {'dataset': 'p/devcloud/instances/team-a/web-1'}, 1, 0, 0), 'prepare')
s.step_done(op, 'storage.volume')
os._exit(86)   # crash: no close, no finish
"""


def test_intent_is_durable_across_a_crash(tmp_path):
    db = tmp_path / "agent.db"
    r = subprocess.run([sys.executable, "-c", CHILD, str(db)], cwd=REPO, timeout=60)
    assert r.returncode == 86
    s = StateStore(db)
    s.open()
    rec = s.get("web-1")
    assert rec and rec.state == "preparing" and rec.names["dataset"].endswith("team-a/web-1")
    ops = s.running_operations()
    assert [(o.instance_id, o.kind, o.steps) for o in ops] == [("web-1", "prepare", ["storage.volume"])]
    s.close()


def test_finish_deletes_or_updates(tmp_path):
    s = StateStore(tmp_path / "agent.db")
    s.open()
    for name in ("a", "b"):
        op = s.begin(InstanceRecord(name, "t", "preparing", {}, {}, 1, 0, 0), "prepare")
        s.finish(op, "done", instance_id=name, state="prepared")
    assert [r.state for r in s.list("t")] == ["prepared", "prepared"]
    ops = s.begin_many([InstanceRecord(n, "t", "releasing", {}, {}, 1, 0, 0) for n in ("a", "b")], "release")
    assert {r.state for r in s.list()} == {"releasing"} and len(s.running_operations()) == 2
    s.finish_many(ops, "done")
    assert s.list() == [] and s.running_operations() == []
