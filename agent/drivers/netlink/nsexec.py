"""Running small steps inside another network namespace without forking.

setns(CLONE_NEWNET) changes the namespace of the calling THREAD only, so one
helper thread hops into a namespace, runs a step (open a netlink socket, write
a sysctl, create a tap with ioctl), and hops back. Steps are microseconds;
they are serialised through that one thread. A step for the agent's own
namespace runs directly in the caller's thread.
"""
from __future__ import annotations

import fcntl
import os
import queue
import socket
import struct
import threading
from typing import Any, Callable

from pyroute2 import netns as pr_netns

NETNS_DIR = "/run/netns"
_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_IFF_VNET_HDR = 0x4000
_IFF_MULTI_QUEUE = 0x0100
_NETLINK_ROUTE = 0


def netns_path(target: str) -> str:
    """A namespace given by name (under /run/netns) or by absolute path."""
    return target if target.startswith("/") else os.path.join(NETNS_DIR, target)


def own_netns_path() -> str:
    """This process's network namespace as a path a runtime can enter: /proc/1/ns/net when it
    is PID 1's (the host's) and that can be read, else /proc/<our pid>/ns/net. Never raises."""
    try:
        a, b = os.stat("/proc/self/ns/net"), os.stat("/proc/1/ns/net")
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
            return "/proc/1/ns/net"
    except OSError:
        pass                  # PID 1's namespace links can be unreadable (a sandbox's init): use ours
    return f"/proc/{os.getpid()}/ns/net"


def is_host_netns(path: str) -> bool:
    """True when `path` is the host's network namespace: PID 1's, or this process's own where
    PID 1's cannot be read (the agent runs in the host's). Never raises."""
    try:
        a = os.stat(path)
    except OSError:
        return False
    for ref in ("/proc/1/ns/net", "/proc/self/ns/net"):
        try:
            b = os.stat(ref)
        except OSError:
            continue
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    return False


class NsExec:
    """A helper thread that runs callables inside a given network namespace."""

    def __init__(self) -> None:
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._home_ino = os.fstat(self._home).st_ino
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="netns-exec", daemon=True)
        self._thread.start()

    def is_home(self, target: str) -> bool:
        """True when `target` is the agent's own namespace (or empty); False for another one or one
        that does not exist. Read-only; never raises."""
        if not target:
            return True
        try:
            return os.stat(netns_path(target)).st_ino == self._home_ino
        except OSError:
            return False

    def run(self, target: str, fn: Callable[[], Any]) -> Any:
        """fn() inside namespace `target` ("" = ours: runs in the caller's thread), returning
        its value. Re-raises fn's exception; OSError(ENOENT) when the namespace does not exist
        (fn is not run). The helper thread always hops back home, even when fn fails."""
        if self.is_home(target):
            return fn()
        done = threading.Event()
        box: dict[str, Any] = {}
        self._q.put((netns_path(target), fn, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            path, fn, box, done = item
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    pr_netns.setns(fd, flags=0)
                finally:
                    os.close(fd)
                try:
                    box["value"] = fn()
                finally:
                    pr_netns.setns(self._home, flags=0)
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            finally:
                done.set()

    def close(self) -> None:
        """End the helper thread (waits up to 2 s) and close the home namespace fd. Idempotent;
        never raises. Steps for another namespace must not be run afterwards."""
        self._q.put(None)
        self._thread.join(2)
        try:
            os.close(self._home)
        except OSError:
            pass

    # -- steps -------------------------------------------------------------
    def netlink_socket(self, target: str) -> socket.socket:
        """A new rtnetlink socket bound to namespace `target` for its whole life (the caller closes
        it). Raises OSError (ENOENT: no such namespace)."""
        return self.run(target, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE))

    def write_sysctl(self, target: str, path: str, value: str) -> None:
        """Write a /proc/sys file as seen from namespace `target` (one unbuffered write). Idempotent
        for sysctls (same value again). Raises the OSError: FileNotFoundError when the file (or the
        namespace) does not exist, PermissionError, the kernel's EINVAL for a bad value."""
        def write() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        self.run(target, write)

    def read_sysctl(self, target: str, path: str) -> str:
        """Contents of a /proc/sys file as seen from namespace `target`, stripped. Read-only.
        Raises the OSError (FileNotFoundError when the file or the namespace does not exist)."""
        def read() -> str:
            with open(path) as f:
                return f.read().strip()
        return self.run(target, read)

    def create_tap(self, target: str, name: str, *, multiqueue: bool,
                   configure: Callable[[], None] | None = None) -> None:
        """A persistent tap (no packet info, vnet header) like `ip tuntap add mode tap`.
        `configure()` runs while the tap still depends on our descriptor (not yet
        persistent): a crash before TUNSETPERSIST leaves nothing behind.

        Not idempotent by itself: TUNSETIFF on the name of an existing tap attaches to
        it, so the caller checks the name first. Raises the OSError (no /dev/net/tun,
        EPERM, the kernel's error when the name belongs to another kind of netdev) and
        whatever configure() raises; in both cases nothing persistent is left."""
        flags = _IFF_TAP | _IFF_NO_PI | _IFF_VNET_HDR | (_IFF_MULTI_QUEUE if multiqueue else 0)
        ifr = struct.pack("16sH", name.encode(), flags)
        fd = self.run(target, lambda: os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC))
        try:
            # the tap is created in the namespace of the thread calling TUNSETIFF
            self.run(target, lambda: fcntl.ioctl(fd, _TUNSETIFF, ifr))
            if configure is not None:
                configure()
            fcntl.ioctl(fd, _TUNSETPERSIST, 1)
        finally:
            os.close(fd)
