"""Fixtures for the guest suite: runs INSIDE the node VM as root, systemd PID 1.

Every test_*.py in this directory is collected by guest-run.sh; nothing else
needs registering. The host never collects this directory (../conftest.py).
"""
import os
import pathlib
import subprocess
import time
import uuid

import pytest

# Process start is ~40x slower under TCG than on the host: generous bounds.
CMD_TIMEOUT = 300


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def results_dir():
    """Directory on the 9p share the host reads back (JSON numbers, notes)."""
    path = pathlib.Path(os.environ.get("DEVCLOUD_NODE_RESULTS", "/tmp/devcloud-node-results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sh(*argv, check=True, timeout=CMD_TIMEOUT, **kw):
    """Run argv (never a shell string); on failure the error shows stdout/stderr."""
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} -> rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


@pytest.fixture(scope="session")
def sh():
    return _sh


@pytest.fixture
def unique():
    """Short random suffix: fits IFNAMSIZ-limited names, keeps tests independent."""
    return uuid.uuid4().hex[:6]


def wait_for(predicate, timeout=60.0, what="condition"):
    """Poll predicate() until truthy (returns its value) or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def poll():
    return wait_for
