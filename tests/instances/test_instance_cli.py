"""devcloudctl instance ... against an in-process agent on real components:
tables for people, JSON for scripts, errors naming the field."""
from __future__ import annotations

import json
import secrets

from agent.cli import ctl


def test_ctl_instance_lifecycle(instance_agent, capsys):
    agent, env = instance_agent
    team = next(iter(env.teams))
    s = ["--socket", agent.socket]
    iid = f"cli{secrets.token_hex(2)}"
    try:
        assert ctl.main(s + ["instance", "prepare", iid, "--team", team, "--image", "img", "--refquota", "64M",
                             "--nic", f"eth0,network={team}", "--label", "owner=ci", "--wait-ready"]) == 0
        out = capsys.readouterr().out
        assert "eth0" in out and "changed: yes" in out and "ready" in out
        assert ctl.main(s + ["--json", "instance", "get", iid]) == 0
        doc = json.loads(capsys.readouterr().out)["instance"]
        assert doc["ready"] is True and doc["spec"]["labels"] == {"owner": "ci"}
        assert env.dataset(doc["names"]["dataset"], "refquota") == {"refquota": str(64 << 20)}
        assert ctl.main(s + ["instance", "list", "--team", team]) == 0
        assert iid in capsys.readouterr().out
        assert ctl.main(s + ["instance", "diff", iid]) == 0
        assert "0 difference(s)" in capsys.readouterr().out
        assert ctl.main(s + ["instance", "watch", "--id", iid, "--duration", "0.5"]) == 0
        assert f"{iid} ({team}): prepared [snapshot]" in capsys.readouterr().out
        assert ctl.main(s + ["instance", "gc", "--dry-run"]) == 0
        assert "0 orphan object(s) (dry run" in capsys.readouterr().out
        assert ctl.main(s + ["instance", "prepare", "Bad_Id", "--team", team, "--image", "img"]) == 1
        assert "field spec.id" in capsys.readouterr().err
    finally:
        assert ctl.main(s + ["instance", "release", iid]) == 0
    assert "released" in capsys.readouterr().out
    assert ctl.main(s + ["instance", "release", iid]) == 0
    assert "absent" in capsys.readouterr().out
