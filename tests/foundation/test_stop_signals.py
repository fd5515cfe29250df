"""The daemon's stop signals (agent/cli/daemon.py _StopSignals), in a process of their own:
SIGTERM to the process stops it; a SIGTERM that a forked child (pyroute2's netns helpers fork)
receives does not, although the child shares the signal wakeup fd."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.server import REPO

SCRIPT = textwrap.dedent("""
    import os, signal, threading, time
    from agent.cli.daemon import _StopSignals

    stops = _StopSignals()
    done = threading.Event()
    threading.Thread(target=lambda: (stops.wait(), done.set()), daemon=True).start()
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)      # the child's own handler runs; nothing for the parent
        time.sleep(0.2)
        os._exit(0)
    os.waitpid(pid, 0)
    for _ in range(20):                           # 2 s; sleeping in slices lets handlers run here
        time.sleep(0.1)
    print("after-child", "stopped" if done.is_set() else "running", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(50):
        if done.is_set():
            break
        time.sleep(0.1)
    print("after-own", "stopped" if done.is_set() else "running", flush=True)
""")


def test_own_sigterm_stops_a_forked_childs_does_not():
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["after-child running", "after-own stopped"], r.stdout + r.stderr
