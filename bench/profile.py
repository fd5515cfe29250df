"""py-spy around a bench phase: where the agent's prepare/release time goes.

The targets say where a missed one's time goes; py-spy samples the agent from
outside (no change to the agent, --nonblocking so it is not paused). Samples of
threads inside the instance service are grouped two ways: by the innermost frame
in `agent/` (the step our code was in) and by the leaf (what that step waited in:
a child process, a socket, a lock). Idle pool workers have no instance frame and
the watch pump is dropped, so the shares are of time spent on calls.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

FOCUS = "/agent/services/instances/"
# threads of the instance service that wait for events, not for a step of a call
IDLE_FILES = ("agent/services/instances/watch.py",)


def py_spy() -> str:
    """Path of py-spy ('' when not installed: pip install py-spy)."""
    return shutil.which("py-spy") or next((str(p) for p in [Path(sys.executable).parent / "py-spy"] if p.exists()),
                                          "")


class Recording:
    """py-spy record on `pid` until stop(); raw collapsed stacks in `out`."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        self.out = out
        self.proc = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--idle",
                                      "--nonblocking", "--function", "--full-filenames", "--format", "raw",
                                      "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)

    def stop(self) -> str:
        """Stop sampling (SIGINT makes py-spy write its file); returns its error text ('' if fine)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return "" if self.out.exists() else (err or "py-spy wrote nothing").strip()[-300:]


def _short(frame: str) -> str:
    """'fn (/x/y/agent/drivers/zfs/cli.py)' -> 'fn (agent/drivers/zfs/cli.py)'; stdlib paths to their tail."""
    fn, _, path = frame.rpartition(" (")
    path = path[:-1] if path.endswith(")") else path
    if "/agent/" in path:
        path = "agent/" + path.split("/agent/", 1)[1]
    elif "/python3" in path:
        path = path.split("/python3", 1)[1].split("/", 1)[-1]
    return f"{fn} ({path})"


def _name(frame: str) -> str:
    return frame.partition(" (")[0]


def summarize(raw: Path, top: int = 8) -> dict:
    """{samples, by_step: [["caller > our innermost frame", share]], by_leaf: [["our innermost > leaf",
    share]]} over the instance service's busy threads."""
    steps: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or not any(FOCUS in f for f in frames):
            continue
        ours = [_short(f) for f in frames if "/agent/" in f]
        if any(f in ours[-1] for f in IDLE_FILES):
            continue
        n = int(count)
        total += n
        # "caller > callee": ZfsCommand.run alone would not say clone from get
        steps[" > ".join([_name(f) for f in ours[-2:-1]] + [ours[-1]])] += n
        leaves[f"{_name(ours[-1])} > {_short(frames[-1])}"] += n
    share = lambda c: [[k, round(v / total, 3)] for k, v in c.most_common(top)] if total else []  # noqa: E731
    return {"samples": total, "by_step": share(steps), "by_leaf": share(leaves)}
