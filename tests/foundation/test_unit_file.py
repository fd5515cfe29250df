"""systemd/devcloud-agent.service: verify (no warnings at all), the security
exposure score, and the rules we chose (notify + watchdog, no filesystem
namespacing that would hide /dev/zfs, /dev/kvm and our mounts)."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import REPO

UNIT = REPO / "systemd" / "devcloud-agent.service"
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (package systemd)")

# Options that create a private mount namespace for the service (LESSONS.md).
MOUNT_NAMESPACING = ["ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
                     "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                     "ProtectControlGroups", "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem",
                     "ProtectProc", "ProcSubset", "BindPaths", "RootDirectory", "RootImage"]


@pytest.fixture(scope="module")
def unit_copy(tmp_path_factory):
    """The unit with ExecStart pointing at this checkout's agent, so verify can stat it."""
    d = tmp_path_factory.mktemp("unit")
    exe = Path(sys.executable).parent / "devcloud-agent"
    text = UNIT.read_text().replace("/opt/devcloud-agent/bin/devcloud-agent", str(exe))
    (d / UNIT.name).write_text(text)
    return d / UNIT.name


def _directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_verify_has_no_warnings(unit_copy):
    r = subprocess.run(["systemd-analyze", "verify", str(unit_copy)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", f"systemd-analyze verify warned:\n{r.stderr}"


def test_security_exposure_score(unit_copy, capsys):
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit_copy)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    score = float(m.group(1))
    with capsys.disabled():
        print(f"\n[unit] systemd-analyze security exposure: {score} (goal <= 3.0; the rest needs a mount "
              "namespace, which would hide /dev/zfs, /dev/kvm and our mounts)")
    # Regression guard at the score we reached; loosening the hardening fails here.
    # 4.6 -> 4.8: RestrictSUIDSGID= is gone (image import must recreate setuid/setgid
    # binaries; under real systemd in the node tier it stripped them, see the unit).
    assert score <= 4.8


def test_notify_watchdog_restart_runtime_dir():
    d = _directives()
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"]
    assert d["WatchdogSec"] and d["RuntimeDirectory"] == ["devcloud-agent"]
    assert "Delegate" not in d   # workloads live outside the unit: a stop must not kill them
    assert d["NoNewPrivileges"] == ["yes"]
    assert "CAP_SYS_MODULE" not in " ".join(d["CapabilityBoundingSet"])


def test_no_filesystem_namespacing():
    d = _directives()
    present = [k for k in MOUNT_NAMESPACING if k in d and d[k] not in (["no"], ["false"], [""])]
    assert present == [], f"these options give the agent a private mount namespace: {present}"


def test_setuid_bits_stay_possible():
    # Image import recreates setuid/setgid binaries (su, passwd, mount ...): RestrictSUIDSGID=
    # made them land without the bits under real systemd (integration/node guest).
    assert _directives().get("RestrictSUIDSGID", ["no"]) in (["no"], ["false"])
    # and without CAP_FSETID the kernel silently clears setgid on files of another group
    assert "CAP_FSETID" in " ".join(_directives()["CapabilityBoundingSet"])
