"""Shared pieces of the runtime fixtures: the cache, command runner, throwaway
network namespaces, a busybox DHCP server, and the marker lines that the
container and VM scripts print.

Everything a fixture creates carries the `rtfx` prefix plus random hex (netns,
netdevs, cgroups, pools) and is removed by the object that created it; other
test runs (`dct*`, `devcloud*`) are never touched. Processes are stopped by
the PID we started, never by name.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

CACHE_DIR = Path(os.environ.get("DEVCLOUD_RUNTIMES_CACHE", "/var/tmp/devcloud-runtimes"))
PREFIX = "rtfx"
ENV = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class Unavailable(RuntimeError):
    """A runtime piece cannot run on this machine (missing package, kernel feature);
    the message says what is missing and how to get it (tests skip with it)."""


class CommandFailed(RuntimeError):
    def __init__(self, argv: list[str], rc: int, out: str, err: str) -> None:
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        super().__init__(f"{' '.join(argv)} exited {rc}: {(err or out).strip()[-2000:]}")


def unique(prefix: str = PREFIX, nbytes: int = 3) -> str:
    """`rtfx` + random hex: names for netns, netdevs (<= 15 chars), cgroups, pools."""
    return f"{prefix}{secrets.token_hex(nbytes)}"


def need(binary: str, package: str) -> str:
    """Absolute path of `binary` or Unavailable("... apt install <package>")."""
    path = shutil.which(binary, path=ENV["PATH"])
    if not path:
        raise Unavailable(f"{binary} not found: apt install {package} (integration/runtimes/setup.sh)")
    return path


def run(argv: list[str], *, timeout: float = 60, check: bool = True, input: str | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run argv (no shell), capture text output; CommandFailed when check and rc != 0."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                       env=env or ENV, stdin=None if input is not None else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise CommandFailed(argv, p.returncode, p.stdout, p.stderr)
    return p


def wait_for(cond: Callable[[], object], timeout: float, interval: float = 0.02, what: str = "condition"):
    """Poll `cond` until it returns a truthy value (returned) or raise TimeoutError."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def stop_pid(proc: subprocess.Popen | int, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a process WE started, by PID: `sig`, wait, SIGKILL after `timeout`."""
    pid = proc.pid if isinstance(proc, subprocess.Popen) else proc

    def gone() -> bool:
        if isinstance(proc, subprocess.Popen):
            return proc.poll() is not None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        return state == "Z"

    if gone():
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    try:
        wait_for(gone, timeout, 0.02, f"pid {pid} to exit")
    except TimeoutError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if isinstance(proc, subprocess.Popen):
            proc.wait(timeout=5)
    if isinstance(proc, subprocess.Popen):
        proc.wait(timeout=5)


# -- marker lines -------------------------------------------------------------------

MARK_RE = re.compile(r"(DEVCLOUD-[A-Z0-9-]+)((?: [a-z_]+=\S*)*)")


def parse_markers(text: str, tag: str) -> list[dict[str, str]]:
    """Every `<tag> k=v k=v ...` line in `text` (serial console, command output), as
    dicts. Values never contain spaces (lists are comma-joined by our scripts)."""
    out = []
    for m in MARK_RE.finditer(text):
        if m.group(1) != tag:
            continue
        out.append(dict(kv.split("=", 1) for kv in m.group(2).split()))
    return out


# The udhcpc hook shared by the container rootfs and the VM initramfs. busybox
# udhcpc exports ip, mask (prefix length), subnet, router, dns, domain,
# serverid, lease, interface; lists are space-separated, we comma-join them.
UDHCPC_SCRIPT = r"""#!/bin/sh
# devcloud runtime fixture: apply a DHCP lease and print it as one parsable line
join() { echo "$*" | tr ' ' ','; }
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface" 2>/dev/null
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    if [ -w /etc ] || [ -w /etc/resolv.conf ]; then
      : > /etc/resolv.conf
      [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
      for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    fi
    echo "DEVCLOUD-LEASE iface=$interface ip=$ip mask=${mask:-} router=$(join $router) dns=$(join $dns) domain=${domain:-} mtu=${mtu:-} serverid=${serverid:-} lease=${lease:-}"
    ;;
  leasefail|nak)
    echo "DEVCLOUD-DHCP-FAIL iface=$interface event=$1"
    ;;
esac
exit 0
"""


# -- network namespaces ------------------------------------------------------------


class Netns:
    """A throwaway named network namespace (`ip netns add rtfx<hex>`), deleted by
    delete(). Commands run inside it with `nsenter --net=/run/netns/<name>`:
    only the network namespace is entered, never a private mount namespace (as
    `ip netns exec` would make, remounting /sys: LXC then finds no cgroup
    hierarchy and the runtime pins every mount it saw)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or unique()
        run(["ip", "netns", "add", self.name])
        self.path = f"/run/netns/{self.name}"
        self.alive = True
        run(self.wrap(["ip", "link", "set", "lo", "up"]))

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["ip", "-n", self.name, *args], check=check)

    def link_exists(self, name: str) -> bool:
        return self.ip("link", "show", "dev", name, check=False).returncode == 0

    def delete(self) -> None:
        if self.alive:
            run(["ip", "netns", "delete", self.name], check=False)
            self.alive = False


def host_link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def veth(a: str, b: str, *, a_ns: Netns | None = None, b_ns: Netns | None = None) -> None:
    """Create veth a<->b, `a` in a_ns (None: the host's namespace), `b` in b_ns."""
    argv = ["ip"] + (["-n", a_ns.name] if a_ns else []) + ["link", "add", a, "type", "veth", "peer", "name", b]
    if b_ns:
        argv += ["netns", b_ns.name]
    elif a_ns:
        argv += ["netns", "1"]           # the peer goes to PID 1's namespace: the host's
    run(argv)


def delete_host_link(name: str) -> None:
    run(["ip", "link", "del", "dev", name], check=False)


# -- DHCP server (busybox udhcpd) ----------------------------------------------------


@dataclass
class Udhcpd:
    """busybox udhcpd serving `iface` inside `netns`; started by start(), stopped by PID."""

    netns: Netns
    iface: str
    server_ip: str                    # e.g. 10.77.0.1 (assigned to iface with /24 by start())
    start_ip: str
    end_ip: str
    router: str | None = None
    dns: Iterable[str] = ()
    prefix: int = 24
    arp_ms: int = 100                 # udhcpd ARP-pings an address before offering it (default 2000 ms)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rtfx-udhcpd-")))
    proc: subprocess.Popen | None = None

    def start(self) -> "Udhcpd":
        busybox = need("busybox", "busybox-static")
        self.netns.ip("addr", "add", f"{self.server_ip}/{self.prefix}", "dev", self.iface)
        self.netns.ip("link", "set", self.iface, "up")
        mask = _prefix_to_mask(self.prefix)
        lines = [f"start {self.start_ip}", f"end {self.end_ip}", f"interface {self.iface}",
                 f"lease_file {self.workdir}/leases", f"pidfile {self.workdir}/pid",
                 f"option subnet {mask}", "option lease 3600", "max_leases 50"]
        if self.router:
            lines.append(f"option router {self.router}")
        if list(self.dns):
            lines.append(f"option dns {' '.join(self.dns)}")
        (self.workdir / "udhcpd.conf").write_text("\n".join(lines) + "\n")
        (self.workdir / "leases").touch()
        self.log = open(self.workdir / "udhcpd.log", "wb")
        self.proc = subprocess.Popen(self.netns.wrap([busybox, "udhcpd", "-f", "-a", str(self.arp_ms),
                                                     str(self.workdir / "udhcpd.conf")]),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=ENV)
        return self

    def output(self) -> str:
        try:
            return (self.workdir / "udhcpd.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None
            self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _prefix_to_mask(prefix: int) -> str:
    v = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((v >> s) & 0xFF) for s in (24, 16, 8, 0))
