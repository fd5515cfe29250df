"""systemd is PID 1 and journald records what the agent will log."""
import json
import os
import pathlib

from systemd import journal  # the host-built systemd-python wheel, installed in the guest venv


def test_systemd_is_pid1():
    assert pathlib.Path("/proc/1/comm").read_text().strip() == "systemd"
    assert os.path.basename(os.path.realpath("/proc/1/exe")) == "systemd"


def test_system_is_running(sh):
    state = sh("systemctl", "is-system-running", check=False).stdout.strip()
    failed = sh("systemctl", "--failed", "--no-legend", "--plain", check=False).stdout
    assert state in ("running", "degraded"), f"state={state}, failed units:\n{failed}"


def _journal_entries(sh, poll, ident, match):
    """Entries of SYSLOG_IDENTIFIER=ident, polled until one satisfies match()."""
    def find():
        sh("journalctl", "--sync")
        out = sh("journalctl", "-o", "json", "--no-pager", f"SYSLOG_IDENTIFIER={ident}").stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [e for e in entries if match(e)]
    return poll(find, timeout=60, what=f"journal entry for {ident}")


def test_systemd_cat_reaches_journal(sh, poll, unique):
    ident, msg = f"devcloud-test-{unique}", f"hello from systemd-cat {unique}"
    sh("systemd-cat", "-t", ident, "-p", "warning", input=msg)
    (entry,) = _journal_entries(sh, poll, ident, lambda e: e.get("MESSAGE") == msg)
    assert entry["PRIORITY"] == "4"
    assert entry["_TRANSPORT"] == "stdout"
    assert int(entry["_PID"]) > 1


def test_python_journal_send_keeps_custom_fields(sh, poll, unique):
    ident, msg = f"devcloud-test-{unique}", f"structured {unique}"
    journal.send(msg, SYSLOG_IDENTIFIER=ident, PRIORITY="6", DEVCLOUD_TEST_ID=unique)
    (entry,) = _journal_entries(sh, poll, ident, lambda e: e.get("MESSAGE") == msg)
    assert entry["DEVCLOUD_TEST_ID"] == unique
    assert entry["_TRANSPORT"] == "journal"
    assert entry["PRIORITY"] == "6"
    assert entry["_PID"] == str(os.getpid())
