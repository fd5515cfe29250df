"""devcloudctl network/port/chassis against the in-process agent: tables for
people, JSON for scripts, errors with field names."""
from __future__ import annotations

import json

from agent.cli import ctl
from tests.support.ovn import uniq


def test_ctl_network_and_port(net_agent, capsys, ovn_tools, netns_factory):
    s = ["--socket", net_agent.socket]
    name = uniq("cli")
    try:
        assert ctl.main(s + ["network", "ensure", name, "--subnet4", "10.64.0.0/24", "--allow", "10.1.0.0/16,tcp,22"]) == 0
        out = capsys.readouterr().out
        assert name in out and "changed" in out
        assert ovn_tools.nb_rows("Logical_Switch", f"name=dc-{name}")
        ns = netns_factory()
        assert ctl.main(s + ["--json", "port", "ensure", name, "p1", "--netns", ns, "--wait"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["port"]["status"]["ready"] is True and doc["changed"] is True
        assert ctl.main(s + ["port", "list", "--network", name]) == 0
        listing = capsys.readouterr().out
        assert "p1" in listing and "ready" in listing
        assert ctl.main(s + ["port", "watch", "--network", name, "--duration", "1"]) == 0
        assert f"{name}/p1: ready" in capsys.readouterr().out
        assert ctl.main(s + ["chassis", "get"]) == 0
        assert "system-id" in capsys.readouterr().out
        assert ctl.main(s + ["network", "ensure", "Bad_Name", "--subnet4", "10.0.0.0/24"]) == 1
        assert "field spec.name" in capsys.readouterr().err
    finally:
        assert ctl.main(s + ["network", "delete", name]) == 0
    assert "deleted" in capsys.readouterr().out
    assert not ovn_tools.nb_rows("Logical_Switch", f"name=dc-{name}")
