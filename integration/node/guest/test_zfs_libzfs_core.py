"""OpenZFS kernel module + libzfs_core (python3-pyzfs) on a file-backed pool."""
import json
import os
import pathlib
import shutil
import statistics
import time
import uuid

import pytest

CLONES = 20


@pytest.fixture(scope="module")
def pool(sh):
    """A throwaway pool on a sparse file, destroyed (file and mountpoint too) after."""
    sh("modprobe", "zfs")
    name = f"dctest{uuid.uuid4().hex[:6]}"
    vdev, mnt = pathlib.Path(f"/var/tmp/{name}.img"), pathlib.Path(f"/var/tmp/{name}-mnt")
    with open(vdev, "wb") as f:
        f.truncate(1 << 30)
    try:
        sh("zpool", "create", "-f", "-m", mnt, name, vdev)
        yield name
    finally:
        sh("zpool", "destroy", "-f", name, check=False)
        vdev.unlink()
        shutil.rmtree(mnt, ignore_errors=True)


def zfs_names(sh, pool, kind="filesystem,snapshot"):
    return set(sh("zfs", "list", "-H", "-o", "name", "-t", kind, "-r", pool).stdout.split())


def test_kernel_module_and_device(sh):
    sh("modprobe", "zfs")
    assert pathlib.Path("/dev/zfs").exists()
    kmod = pathlib.Path("/sys/module/zfs/version").read_text().strip()
    assert kmod.split("-")[0] in sh("zfs", "version").stdout


def test_lzc_snapshot_clone_exists_destroy(pool, sh):
    import libzfs_core as lzc   # Debian's python3-pyzfs, seen through --system-site-packages
    base, snap, clone = f"{pool}/base", f"{pool}/base@s1", f"{pool}/clone1"
    sh("zfs", "create", base)
    pathlib.Path(sh("zfs", "get", "-Hp", "-o", "value", "mountpoint", base).stdout.strip(), "data").write_bytes(b"x" * 4096)
    lzc.lzc_snapshot([snap.encode()])
    assert lzc.lzc_exists(snap.encode())
    lzc.lzc_clone(clone.encode(), snap.encode())
    assert lzc.lzc_exists(clone.encode())
    assert sh("zfs", "get", "-Hp", "-o", "value", "origin", clone).stdout.strip() == snap
    lzc.lzc_destroy(clone.encode())
    assert not lzc.lzc_exists(clone.encode())
    lzc.lzc_destroy_snaps([snap.encode()], defer=False)
    assert not lzc.lzc_exists(snap.encode())
    sh("zfs", "destroy", base)
    assert zfs_names(sh, pool) == {pool}


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_clone_latency_lzc_vs_cli(pool, sh, results_dir):
    """Records (never asserts) per-clone latency: libzfs_core vs forking `zfs`.

    The variants are interleaved so the growing dataset count weighs on each alike.
    lzc_clone does not mount; `zfs clone` mounts; canmount=noauto is the like-for-like CLI."""
    import libzfs_core as lzc
    base, snap = f"{pool}/img", f"{pool}/img@base"
    sh("zfs", "create", base)
    sh("zfs", "snapshot", snap)
    clone = {
        "lzc": lambda n: lzc.lzc_clone(n.encode(), snap.encode()),
        "cli": lambda n: sh("zfs", "clone", snap, n),
        "cli_noauto": lambda n: sh("zfs", "clone", "-o", "canmount=noauto", snap, n),
    }
    destroy = {
        "lzc": lambda n: lzc.lzc_destroy(n.encode()),
        "cli": lambda n: sh("zfs", "destroy", n),
        "cli_noauto": lambda n: sh("zfs", "destroy", n),
    }
    names = {v: [f"{pool}/{v.replace('_', '')}{i}" for i in range(CLONES)] for v in clone}
    t = {f"{v}_{op}": [] for v in clone for op in ("clone", "destroy")}
    for i in range(CLONES):
        for v, fn in clone.items():
            t[f"{v}_clone"].append(_timed(lambda: fn(names[v][i])))
    assert zfs_names(sh, pool, "filesystem") >= {n for ns in names.values() for n in ns}
    assert sh("zfs", "get", "-Hp", "-o", "value", "origin", names["lzc"][0]).stdout.strip() == snap
    for i in range(CLONES):
        for v, fn in destroy.items():
            t[f"{v}_destroy"].append(_timed(lambda: fn(names[v][i])))
    sh("zfs", "destroy", "-r", base)
    assert zfs_names(sh, pool) == {pool}
    mean = {k: statistics.fmean(v) for k, v in t.items()}
    report = {
        "clones": CLONES,
        **{f"{k}_mean_s": round(v, 5) for k, v in mean.items()},
        **{f"{k}_median_s": round(statistics.median(v), 5) for k, v in t.items()},
        "cli_over_lzc_clone": round(mean["cli_clone"] / mean["lzc_clone"], 2),
        "cli_noauto_over_lzc_clone": round(mean["cli_noauto_clone"] / mean["lzc_clone"], 2),
        "zfs_kmod": pathlib.Path("/sys/module/zfs/version").read_text().strip(),
        "cpus": os.cpu_count(),
    }
    (results_dir / "zfs-clone-latency.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
