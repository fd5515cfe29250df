"""devcloudctl storage against a real in-process agent on the session pool."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from agent.cli import ctl
from tests.support.server import start_inprocess, temp_dir
from tests.support.zfs import make_tarball, storage_overrides, zfs_destroy_tree, zfs_get


@pytest.fixture(scope="module")
def agent(zfs_pool):
    parent = f"{zfs_pool.name}/ctl{os.getpid()}"
    tmp = temp_dir()
    a = start_inprocess(tmp, storage_overrides(zfs_pool, parent))
    yield a, parent
    a.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    zfs_destroy_tree(parent)


def run(agent, capsys, *argv):
    rc = ctl.main(["--socket", agent[0].socket, *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_ctl_image_volume_lifecycle(agent, capsys, tmp_path):
    _, parent = agent
    data, sha = make_tarball()
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(data)
    rc, out, _ = run(agent, capsys, "storage", "image", "import", "img", str(tarball))
    assert rc == 0 and "imported" in out
    rc, out, _ = run(agent, capsys, "storage", "image", "import", "img", str(tarball), "--on-node")
    assert rc == 0 and "already present" in out
    rc, out, _ = run(agent, capsys, "storage", "volume", "ensure", "t1", "v1", "--kind", "root", "--image", "img",
                     "--refquota", "64M")
    assert rc == 0 and "changed: yes" in out
    assert zfs_get(f"{parent}/instances/t1/v1", "refquota") == {"refquota": str(64 << 20)}
    rc, out, _ = run(agent, capsys, "--json", "storage", "volume", "list", "--team", "t1")
    vols = json.loads(out)["volumes"]
    assert rc == 0 and [v["name"] for v in vols] == ["v1"]
    rc, out, _ = run(agent, capsys, "storage", "volume", "resize", "t1", "v1", "--refquota", "128M")
    assert rc == 0 and zfs_get(f"{parent}/instances/t1/v1", "refquota") == {"refquota": str(128 << 20)}
    rc, out, _ = run(agent, capsys, "storage", "snapshot", "create", "t1", "v1", "s1")
    assert rc == 0 and zfs_get(f"{parent}/instances/t1/v1@s1", "type") == {"type": "snapshot"}
    rc, out, _ = run(agent, capsys, "storage", "pool")
    assert rc == 0 and "ONLINE" in out
    rc, out, err = run(agent, capsys, "storage", "volume", "ensure", "t1", "v1", "--kind", "filesystem")
    assert rc == 1 and "ALREADY_EXISTS" in err and "VOLUME_SPEC_MISMATCH" in err
    rc, out, _ = run(agent, capsys, "storage", "volume", "delete", "t1", "--all")
    assert rc == 0 and zfs_get(f"{parent}/instances/t1/v1", "type") == {}
    rc, out, _ = run(agent, capsys, "storage", "image", "delete", "img")
    assert rc == 0 and "absent" in out and zfs_get(f"{parent}/images/img", "type") == {}
