"""The committed generated code matches the protos; the protos pass buf's
STANDARD lint rules; every RPC is documented."""
from __future__ import annotations

import filecmp
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import REPO

BUF = REPO / ".tools" / "node_modules" / ".bin" / "buf"


def test_regeneration_changes_nothing(tmp_path):
    out = tmp_path / "_proto"
    subprocess.run([sys.executable, str(REPO / "proto" / "generate.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=120)
    committed = REPO / "agent" / "_proto"
    diffs = []

    def walk(cmp: filecmp.dircmp, rel: str = "") -> None:
        diffs.extend(f"{rel}{n}" for n in cmp.left_only + cmp.right_only + cmp.diff_files if n != "__pycache__")
        for name, sub in cmp.subdirs.items():
            if name != "__pycache__":
                walk(sub, f"{rel}{name}/")
    walk(filecmp.dircmp(out, committed, ignore=["__pycache__"]))
    assert diffs == [], f"agent/_proto is stale; run proto/generate.py: {diffs}"


@pytest.mark.skipif(not BUF.exists(), reason="buf is not installed: run systemd/bootstrap.sh --test")
def test_buf_lint_standard():
    r = subprocess.run([str(BUF), "lint"], cwd=REPO / "proto", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_rpc_states_idempotency_or_errors():
    for proto in sorted((REPO / "proto" / "devcloud" / "agent" / "v1").glob("*.proto")):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*rpc \w+", line):
                comment = []
                j = i - 1
                while j >= 0 and lines[j].strip().startswith("//"):
                    comment.insert(0, lines[j])
                    j -= 1
                text = " ".join(comment)
                assert comment, f"{proto.name}: {line.strip()} has no comment"
                assert re.search(r"Errors?:|Idempotent|idempotent", text), \
                    f"{proto.name}: {line.strip()} must state idempotency and errors"
