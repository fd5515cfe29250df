"""The type checker over agent/ is clean: mypy with the project's config ([tool.mypy] in
pyproject.toml: check_untyped_defs, the generated code through its .pyi stubs). It is what checks
that a service calls only what a driver's declared contract (agent/drivers/*/contract.py) offers.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_over_agent_is_clean():
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "No module named mypy" not in proc.stderr, \
        "mypy is missing: it is a [test] extra (systemd/bootstrap.sh --test installs it)"
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert proc.returncode == 0 and not errors, \
        f"mypy found {len(errors)} error(s):\n{proc.stdout}{proc.stderr}"
