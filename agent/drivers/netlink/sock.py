"""One long-lived rtnetlink socket served by its own thread (pyroute2 0.9's
sync IPRoute keeps its transport per thread and is not thread-safe)."""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

from pyroute2 import IPRoute

class Sock:
    """One long-lived rtnetlink socket served by its own thread: pyroute2 0.9
    keeps its transport per thread, so every request for this namespace runs
    on this thread (the kernel serialises RTNL work anyway)."""

    def __init__(self, opener: Callable[[], IPRoute]) -> None:
        """Open the socket with opener() on a new thread; re-raises what opener() raised."""
        self._q: queue.Queue = queue.Queue()
        ready = threading.Event()
        box: dict = {}

        def loop() -> None:
            try:
                box["ipr"] = opener()
            except BaseException as exc:
                box["error"] = exc
            ready.set()
            if "error" in box:
                return
            ipr = box["ipr"]
            while True:
                item = self._q.get()
                if item is None:
                    ipr.close()
                    return
                fn, out, done = item
                try:
                    out["value"] = fn(ipr)
                except BaseException as exc:  # handed back to the caller's thread
                    out["error"] = exc
                done.set()

        self._thread = threading.Thread(target=loop, name="netlink", daemon=True)
        self._thread.start()
        ready.wait()
        if "error" in box:
            raise box["error"]

    def call(self, fn: Callable[[IPRoute], Any]) -> Any:
        """fn(ipr) on the socket's thread; returns its value, re-raises its exception (NetlinkError
        untranslated: the caller maps it). Blocks until done."""
        out: dict = {}
        done = threading.Event()
        self._q.put((fn, out, done))
        done.wait()
        if "error" in out:
            raise out["error"]
        return out.get("value")

    def close(self) -> None:
        """Close the socket and end its thread (waits up to 2 s). Call once; never raises."""
        self._q.put(None)
        self._thread.join(2)
