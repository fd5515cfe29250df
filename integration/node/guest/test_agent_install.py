"""The agent as guest-run.sh installed it: venv from the wheelhouse, unit file, config."""
import configparser
import os
import pathlib
import shlex
import subprocess

import pytest

VENV = pathlib.Path("/opt/devcloud-agent")
TREE_UNIT = pathlib.Path("/opt/devcloud-src/systemd/devcloud-agent.service")


def test_agent_installed_in_venv(sh):
    out = sh(VENV / "bin" / "devcloud-agent", "--version").stdout
    assert out.strip(), "devcloud-agent --version printed nothing"
    assert os.path.realpath("/usr/local/bin/devcloud-agent") == str(VENV / "bin" / "devcloud-agent")


def test_venv_sees_debian_pyzfs():
    # --system-site-packages: the lzc backend imports Debian's python3-pyzfs
    r = subprocess.run([VENV / "bin" / "python", "-c", "import libzfs_core, agent; print(libzfs_core.__file__)"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("/usr/lib/python3/dist-packages/")


@pytest.mark.skipif(not TREE_UNIT.exists(), reason="no systemd/devcloud-agent.service in this tree")
def test_unit_installed_from_the_tree(sh):
    installed = pathlib.Path("/etc/systemd/system/devcloud-agent.service")
    assert installed.read_text() == TREE_UNIT.read_text()
    assert sh("systemctl", "show", "-p", "FragmentPath", "--value", "devcloud-agent").stdout.strip() == str(installed)
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(installed.read_text())
    exe = shlex.split(unit["Service"]["ExecStart"])[0].lstrip("-@:+!")
    assert os.access(exe, os.X_OK), f"ExecStart binary {exe} is not installed in the guest"
    config = shlex.split(unit["Service"]["ExecStart"])
    if "--config" in config:
        assert pathlib.Path(config[config.index("--config") + 1]).is_file()
