"""devcloudctl and devcloud-agent check: tables for people, --json for scripts,
errors that say what to do."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from agent.cli import ctl, daemon
from tests.support.server import REPO


def test_ctl_host_facts_table_and_json(agent, capsys):
    assert ctl.main(["--socket", agent.socket, "host", "facts"]) == 0
    out = capsys.readouterr().out
    assert "kvm usable" in out and "cgroup" in out
    assert ctl.main(["--socket", agent.socket, "--json", "host", "facts"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kvm"]["device_present"] == os.path.exists("/dev/kvm")


def test_ctl_preflight_strict_exit_code(agent, capsys):
    rc = ctl.main(["--socket", agent.socket, "--json", "host", "preflight", "--profile", "vm-host", "--strict"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == (0 if doc["passed"] else 3)


def test_ctl_identity_commands(agent, capsys):
    assert ctl.main(["--socket", agent.socket, "probe"]) == 0
    assert capsys.readouterr().out.strip() == "ready"
    assert ctl.main(["--socket", agent.socket, "health", "devcloud.agent.v1.HostService"]) == 0
    assert "SERVING" in capsys.readouterr().out
    assert ctl.main(["--socket", agent.socket, "--json", "capabilities"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {c["kind"] for c in doc["capabilities"]} >= {"CAPABILITY_KIND_KVM", "CAPABILITY_KIND_HOST_FACTS"}


def test_ctl_without_agent_says_what_to_do(tmp_path, capsys):
    rc = ctl.main(["--socket", str(tmp_path / "none.sock"), "--timeout", "2", "info"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "no agent socket" in err and "devcloud-agent run" in err


def test_ctl_reports_field_violation(agent, capsys):
    import grpc
    from agent._proto.devcloud.agent.v1 import host_pb2, host_pb2_grpc
    try:
        host_pb2_grpc.HostServiceStub(agent.channel).Preflight(host_pb2.PreflightRequest(profile=42))
    except grpc.RpcError as e:
        text = ctl.format_rpc_error(e)
    assert "INVALID_ARGUMENT" in text and "field profile" in text and "reason: INVALID_ARGUMENT" in text


def test_agent_check_json_needs_no_daemon():
    r = subprocess.run([sys.executable, "-m", "agent.cli.daemon", "check", "--json", "--profile", "vm-host"],
                       cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["facts"]["kvm"]["device_present"] == os.path.exists("/dev/kvm")
    assert {c["id"] for c in doc["preflight"]["checks"]} >= {"kvm.device", "dev.tun"}


def test_help_texts_have_examples(capsys):
    for main in (daemon.main, ctl.main):
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0
        assert "examples:" in capsys.readouterr().out


def test_journal_is_used_only_when_stderr_is_the_journal(monkeypatch):
    from agent import logs
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert logs.setup("info") == "journal"
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
    assert logs.setup("info") == "stderr"
    monkeypatch.delenv("JOURNAL_STREAM")
    assert logs.setup("info") == "stderr"


def test_validators_reject_trailing_newline():
    import pytest
    from agent import errors, validation
    for fn, value in ((validation.name, "web-1\n"), (validation.netdev, "dc0\n"),
                      (validation.mac, "0a:58:0a:00:00:05\n"), (validation.ovn_safe, "team\n")):
        with pytest.raises(errors.InvalidArgument):
            fn("f", value)
    with pytest.raises(errors.InvalidArgument):
        validation.labels("labels", {"k\n": "v"})


def test_journal_handler_sends_structured_fields(monkeypatch):
    """The real python-systemd send() validates its arguments (CODE_LINE must be an
    int): found under real journald in the node tier, where every record failed."""
    import logging
    from agent.drivers import systemd as sd
    sent, errors = [], []
    real_send = sd._journal.send

    def send(message, **fields):
        sent.append((message, fields))
        return real_send(message, **fields)   # argument checks of the real library; no journald here: dropped
    monkeypatch.setattr(sd._journal, "send", send)
    handler = sd.journal_handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    monkeypatch.setattr(handler, "handleError", lambda record: errors.append(record))
    log = logging.getLogger("test.journal")
    log.addHandler(handler)
    try:
        log.warning("rpc %s", "x", extra={"fields": {"method": "/m", "code": "OK", "duration_ms": 1.5}})
    finally:
        log.removeHandler(handler)
    assert errors == [], "the journal handler failed to send"
    (message, fields), = sent
    assert message == "rpc x"
    assert fields["METHOD"] == "/m" and fields["CODE"] == "OK" and fields["DURATION_MS"] == "1.5"
    assert fields["PRIORITY"] == "4" and fields["SYSLOG_IDENTIFIER"] == "devcloud-agent"
    assert isinstance(fields["CODE_LINE"], int)


def test_output_into_a_closed_pipe_is_quiet(tmp_path):
    """`devcloud-agent config | head -0`: the reader is gone before a line is written; no traceback,
    exit 141 (what a SIGPIPE death reports)."""
    (tmp_path / "agent.toml").write_text("")
    read, write = os.pipe()
    os.close(read)                         # the reader went away
    p = subprocess.run([sys.executable, "-m", "agent.cli.daemon", "config", "--config", str(tmp_path / "agent.toml")],
                       cwd=REPO, stdout=write, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
                       timeout=60)
    os.close(write)
    assert p.returncode == 141 and "Traceback" not in p.stderr.decode(), p.stderr.decode()
