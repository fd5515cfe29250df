"""Host-side steps of the real-kernel node tier: preflight, image, wheelhouse,
9p share staging, VM run, JUnit parsing. Used by test_real_kernel_node.py."""
import dataclasses
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

NODE = pathlib.Path(__file__).resolve().parent
REPO = NODE.parents[1]
RUNS = pathlib.Path(os.environ.get("DEVCLOUD_NODE_RUNS", "/var/tmp/devcloud-node-runs"))
HOST_TOOLS = ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "flock", "findmnt", "chroot")
GUEST_PYTHON = (3, 11)   # Debian bookworm's python3: the wheelhouse must be cp311
RUN_FREE_GB = 3          # wheelhouse + overlay growth + file-backed pools in the guest
CANNOT_RUN_RC = 3        # build-image.sh: this machine cannot build the image
# what the guest needs from the tree besides the wheel (never agent/: tests use the installed one)
STAGED = ("pyproject.toml", "conftest.py", "tests", "integration", "systemd", "proto")
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".tools", "build", "dist", "*.egg-info",
                                    "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


class CannotRun(Exception):
    """This machine cannot run the tier; the message says why (for the loud skip)."""


def preflight():
    """Raise CannotRun unless root, host tools, a cp311 venv and disk are there."""
    if os.geteuid() != 0:
        raise CannotRun("needs root (debootstrap, chroot, bind mounts)")
    missing = [t for t in HOST_TOOLS if not shutil.which(t)]
    if missing:
        raise CannotRun(f"host tools missing: {' '.join(missing)} (systemd/bootstrap.sh --test installs them)")
    if sys.version_info[:2] != GUEST_PYTHON:
        raise CannotRun(f"host venv runs Python {sys.version.split()[0]}; the guest's python3 is 3.11, "
                        "so the wheelhouse must be built by a 3.11 venv")
    RUNS.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(RUNS).free / 2**30
    if free_gb < RUN_FREE_GB:
        raise CannotRun(f"only {free_gb:.1f} GB free under {RUNS}, a run needs {RUN_FREE_GB} GB")


def new_run_dir():
    """A fresh run directory; run dirs older than a week (kept failures) are dropped."""
    for old in RUNS.glob("run-*"):
        if time.time() - old.stat().st_mtime > 7 * 86400:
            shutil.rmtree(old, ignore_errors=True)
    run = RUNS / time.strftime(f"run-%Y%m%d-%H%M%S-{os.getpid()}")
    (run / "share" / "results").mkdir(parents=True)
    return run


def _stop_group(p):
    """SIGTERM the process group we started (its scripts clean up), SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 90), (signal.SIGKILL, 30)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


def run_bounded(argv, log, timeout, env=None, cwd=None):
    """Run argv in its own session with output appended to log; return its rc.

    On timeout or interruption (pytest-timeout, Ctrl-C) only the process
    group started here is stopped; TimeoutError names the log."""
    with open(log, "ab") as out:
        p = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             env={**os.environ, **(env or {})}, cwd=cwd)
        try:
            return p.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            _stop_group(p)
            raise TimeoutError(f"{pathlib.Path(log).stem} exceeded {timeout:.0f}s (log: {log})") from None
        except BaseException:
            _stop_group(p)
            raise


def tail(path, lines=40):
    try:
        return "\n".join(pathlib.Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} missing)"


@dataclasses.dataclass
class Image:
    dir: pathlib.Path
    cache_hit: bool
    seconds: float
    phases: list   # "TIMING ..." lines of a fresh build


def build_image(run, timeout):
    """Build the guest image, or reuse the cached one for the same inputs."""
    log = run / "build-image.log"
    start = time.monotonic()
    rc = run_bounded(["bash", NODE / "build-image.sh"], log, timeout, env={"LOCK_WAIT": str(int(timeout))})
    text = log.read_text(errors="replace")
    if rc == CANNOT_RUN_RC:
        raise CannotRun(re.findall(r"CANNOT-RUN: (.*)", text)[-1])
    assert rc == 0, f"build-image.sh rc={rc}, log {log}:\n{tail(log)}"
    dirs = re.findall(r"^IMAGE_DIR=(.*)$", text, re.M)
    assert dirs, f"build-image.sh printed no IMAGE_DIR=, log {log}:\n{tail(log)}"
    return Image(pathlib.Path(dirs[-1]), "cache hit" in text, time.monotonic() - start,
                 re.findall(r"^TIMING .*$", text, re.M))


def build_wheelhouse(run, timeout):
    """pip wheel the project + deps (cp311) from a clean copy of the tree into share/wheelhouse."""
    src, wheels, log = run / "wheel-src", run / "share" / "wheelhouse", run / "wheelhouse.log"
    # a copy, so setuptools' stale build/ in the worktree can never leak into the wheel
    shutil.copytree(REPO, src, ignore=NOT_COPIED, symlinks=True)
    start = time.monotonic()
    rc = run_bounded([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check",
                      "--wheel-dir", wheels, f"{src}[test]"], log, timeout)
    assert rc == 0, f"pip wheel rc={rc}, log {log}:\n{tail(log)}"
    shutil.rmtree(src)
    assert list(wheels.glob("devcloud_agent-*.whl")), f"no devcloud_agent wheel in {wheels}"
    return time.monotonic() - start


def stage_share(run, run_timeout, pytest_args=""):
    """run.sh, the test tree and the knobs the guest reads from the 9p share."""
    share = run / "share"
    shutil.copy(NODE / "guest-run.sh", share / "run.sh")
    (share / "run.sh").chmod(0o755)
    for name in STAGED:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, share / "src" / name, ignore=NOT_COPIED, symlinks=True)
        elif path.exists():
            (share / "src").mkdir(exist_ok=True)
            shutil.copy2(path, share / "src" / name)
    (share / "run-timeout").write_text(f"{int(run_timeout)}\n")
    (share / "pytest-args").write_text("".join(f"{a}\n" for a in shlex.split(pytest_args)))


def boot(image, run, timeout):
    """Boot the image with run/share, wait for power-off (bounded); rc of run.sh's wrapper."""
    start = time.monotonic()
    rc = run_bounded(["bash", NODE / "run-vm.sh", image.dir, run], run / "vm.log", timeout,
                     env={"TIMEOUT": str(int(timeout - 60))})
    return rc, time.monotonic() - start


@dataclasses.dataclass
class Junit:
    passed: list
    failed: list    # (name, first line of the failure)
    skipped: list   # (name, reason)


def parse_junit(path):
    cases = Junit([], [], [])
    for case in ET.parse(path).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            msg = (bad.get("message") or "").strip()
            cases.failed.append((name, msg.splitlines()[0][:200] if msg else ""))
        elif skip is not None:
            cases.skipped.append((name, skip.get("message") or ""))
        else:
            cases.passed.append(name)
    return cases


def suite_times(path):
    """Seconds per guest test module (setup + call + teardown of its tests), in run order."""
    out = {}
    for case in ET.parse(path).iter("testcase"):
        module = (case.get("classname") or "?").rsplit(".", 1)[-1]
        out[module] = out.get(module, 0.0) + float(case.get("time") or 0)
    return out
