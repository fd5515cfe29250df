"""Storage plane on real OpenZFS inside the node guest: the same suites that run on
zfs-fuse elsewhere, here with the `lzc` backend (libzfs_core, python3-pyzfs) active and
the `cli` backend against OpenZFS, on Debian's python3 (3.11.2).

Runs tests/storage (driver contract tests for every backend, the service, the gRPC API)
as one pytest subprocess from the staged source tree; its JUnit report lands in
$DEVCLOUD_NODE_RESULTS/storage-junit.xml and the names of failed tests in the assertion.
The lzc-shim parameter is left out here: the real libzfs_core runs instead.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

SUITES = ["tests/storage/test_zfs_driver.py", "tests/storage/test_storage_service.py",
          "tests/storage/test_storage_grpc.py"]


@pytest.mark.timeout(2500)          # the suite's own bound is 2400 s (TCG); pytest's default 600 s cut it short
def test_storage_suites_on_openzfs(results_dir):
    assert os.path.exists("/dev/zfs") or subprocess.run(["modprobe", "zfs"]).returncode == 0
    junit = results_dir / "storage-junit.xml"
    r = subprocess.run([sys.executable, "-m", "pytest", *SUITES, "-p", "no:cacheprovider", "-q",
                        "-k", "not lzc-shim", f"--junitxml={junit}", "-o", "junit_family=xunit2"],
                       cwd=os.environ.get("DEVCLOUD_NODE_SRC", "/opt/devcloud-src"), capture_output=True,
                       text=True, timeout=2400)
    print(r.stdout[-4000:], r.stderr[-2000:])
    failed, lzc_passed = [], 0
    for case in ET.parse(junit).iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            failed.append(f"{case.get('name')}: {(bad.get('message') or '').splitlines()[0][:160]}")
        elif case.find("skipped") is None and "[lzc]" in case.get("name", ""):
            lzc_passed += 1
    assert not failed, "storage tests failed on OpenZFS:\n  " + "\n  ".join(failed)
    assert r.returncode == 0, r.stdout[-2000:]
    assert lzc_passed > 10, "the lzc backend did not run (libzfs_core missing in the guest?)"
