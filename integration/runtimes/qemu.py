"""QEMU VMs for the runtime fixtures: a Debian kernel + a tiny busybox initramfs,
a tap NIC (virtio-net-pci) and a raw disk file (virtio-blk-pci).

The initramfs's /init (INIT below) loads the kernel's virtio modules
(virtio_pci, virtio_net + failover/net_failover, virtio_blk and their deps,
listed by setup.sh in load order), brings eth0 up, runs busybox udhcpc (the
shared hook prints `DEVCLOUD-LEASE ip=... router=... dns=...`), optionally
pings `devcloud_ping=<addr>`, reads the marker the host wrote at offset 0 of
/dev/vda and writes `DEVCLOUD-GUEST-WROTE <token>` at offset 512, prints
`DEVCLOUD-DONE` and powers off. Every marker line carries the guest's uptime.
Parameters come from the kernel command line: unknown `key=value` words are
passed to /init as environment variables (devcloud_ping, devcloud_token).

Command line (see qemu_argv):
  qemu-system-x86_64 -nodefaults -no-user-config -nographic -monitor none
    -accel tcg -m 256 -smp 1 -kernel vmlinuz -initrd initramfs.cpio.gz
    -append "console=ttyS0 panic=-1 ..." -no-reboot -serial file:<log>
    -netdev tap,id=n0,ifname=<tap>,script=no,downscript=no
    -device virtio-net-pci,netdev=n0,mac=<mac>
    -drive file=<disk.raw>,format=raw,if=none,id=d0,cache=writeback
    -device virtio-blk-pci,drive=d0
QEMU opens the tap by name in the network namespace it runs in: run it with
`nsenter --net=/run/netns/<ns>` when the tap lives there.
"""
from __future__ import annotations

import gzip
import os
import re
import secrets
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from integration.runtimes.common import (CACHE_DIR, ENV, UDHCPC_SCRIPT, Netns, Unavailable, need,
                                         parse_markers, stop_pid)
from integration.runtimes.images import busybox_applets, busybox_binary

INIT = r"""#!/bin/sh
# devcloud runtime fixture: VM /init (initramfs)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
echo "DEVCLOUD-BOOT uptime=$(up) kernel=$(uname -r)"
for m in $(cat /etc/modules.order); do
  insmod "/lib/modules/$m" || echo "DEVCLOUD-ERROR what=insmod module=$m"
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
echo "DEVCLOUD-DHCP-START uptime=$(up) iface=eth0 mac=$(cat /sys/class/net/eth0/address 2>/dev/null)"
udhcpc -i eth0 -n -q -f -t ${devcloud_dhcp_tries:-10} -T 1 -s /etc/udhcpc/default.script
echo "DEVCLOUD-DHCP-END uptime=$(up) rc=$?"
if [ -n "$devcloud_ping" ]; then
  if ping -c 3 -W 2 "$devcloud_ping" > /tmp/ping 2>&1; then ok=1; else ok=0; fi
  rx=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping)
  echo "DEVCLOUD-PING uptime=$(up) target=$devcloud_ping ok=$ok received=${rx:-0}"
fi
if [ -b /dev/vda ]; then
  marker=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1 | tr -c 'A-Za-z0-9_.:\n-' '_')
  echo "DEVCLOUD-DISK uptime=$(up) dev=vda sectors=$(cat /sys/block/vda/size) marker=$marker"
  printf 'DEVCLOUD-GUEST-WROTE %s\n' "${devcloud_token:-none}" | dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null
  sync
else
  echo "DEVCLOUD-DISK uptime=$(up) dev=none"
fi
echo "DEVCLOUD-DONE uptime=$(up)"
poweroff -f
"""


# -- kernel ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestKernel:
    dir: Path
    vmlinuz: Path
    modules: list[Path]                 # in load order
    package: str
    version: str
    abi: str


def find_kernel(cache: Path = CACHE_DIR) -> GuestKernel:
    """The Debian kernel setup.sh unpacked (cache/kernel/current)."""
    d = cache / "kernel" / "current"
    if not (d / "complete").exists():
        raise Unavailable(f"no guest kernel in {d}: run integration/runtimes/setup.sh "
                          "(apt-get download linux-image-<abi>-amd64 + dpkg -x)")
    d = d.resolve()
    info = dict(l.split("=", 1) for l in (d / "kernel.info").read_text().split())
    mods = [d / "modules" / m for m in (d / "modules.order").read_text().split()]
    return GuestKernel(d, d / "vmlinuz", mods, info.get("package", "?"), info.get("version", "?"), info.get("abi", "?"))


# -- initramfs (newc cpio, written here: no cpio binary needed) ---------------------


class _Cpio:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nameb = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0]
        self.ino += 1
        self.buf += b"070701" + b"".join(b"%08X" % f for f in fields) + nameb
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)


def build_initramfs(out: str | os.PathLike, kernel: GuestKernel, *, init: str = INIT) -> Path:
    """gzip'ed newc cpio: /init, static busybox + applet symlinks, /dev/console (the kernel
    opens it for init's stdio before devtmpfs is mounted), the virtio modules in
    /lib/modules with /etc/modules.order, the udhcpc hook."""
    busybox = busybox_binary()
    c = _Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/udhcpc", "lib", "lib/modules", "proc",
              "sys", "dev", "tmp", "run", "root"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    for rel in busybox_applets(busybox):
        if rel != "bin/busybox":
            c.symlink(rel, "/bin/busybox")
    c.file("init", init.encode(), 0o755)
    c.file("etc/udhcpc/default.script", UDHCPC_SCRIPT.encode(), 0o755)
    c.file("etc/modules.order", "".join(f"{m.name}\n" for m in kernel.modules).encode())
    c.file("etc/resolv.conf", b"")
    for m in kernel.modules:
        c.file(f"lib/modules/{m.name}", m.read_bytes())
    out = Path(out)
    out.write_bytes(gzip.compress(c.finish(), compresslevel=1))
    return out


def make_disk(path: str | os.PathLike, marker: str, size: int = 8 << 20) -> Path:
    """A raw disk file (sparse, `size` bytes) with `marker` + newline at offset 0."""
    path = Path(path)
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(marker.encode() + b"\n")
    return path


def read_guest_write(path: str | os.PathLike) -> str:
    """What the guest wrote at offset 512 (`DEVCLOUD-GUEST-WROTE <token>`), or ''."""
    with open(path, "rb") as f:
        f.seek(512)
        return f.read(512).split(b"\n", 1)[0].rstrip(b"\0").decode(errors="replace")


# -- VM ------------------------------------------------------------------------------------


def kvm_usable() -> tuple[bool, str]:
    """/dev/kvm exists and opens read-write (which says nothing about booting a stock
    kernel with it: TESTING.md, KVM here is PVM)."""
    if not os.path.exists("/dev/kvm"):
        return False, "/dev/kvm missing"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return False, f"/dev/kvm: {exc.strerror}"
    return True, "/dev/kvm opens"


def random_mac() -> str:
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFE) | 0x02                     # unicast, locally administered
    return ":".join(f"{x:02x}" for x in b)


@dataclass
class VmSpec:
    kernel: GuestKernel
    initramfs: Path
    serial_log: Path
    tap: str | None = None
    mac: str = field(default_factory=random_mac)
    disk: Path | None = None
    accel: str = "tcg"                  # "tcg" | "kvm"
    memory_mb: int = 256
    cpus: int = 1
    ping: str | None = None
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    dhcp_tries: int = 10
    extra_append: str = ""

    def argv(self) -> list[str]:
        append = f"console=ttyS0 panic=-1 loglevel=4 devcloud_token={self.token} devcloud_dhcp_tries={self.dhcp_tries}"
        if self.ping:
            append += f" devcloud_ping={self.ping}"
        if self.extra_append:
            append += " " + self.extra_append
        a = [need("qemu-system-x86_64", "qemu-system-x86"), "-nodefaults", "-no-user-config", "-nographic",
             "-monitor", "none", "-accel", self.accel, "-m", str(self.memory_mb), "-smp", str(self.cpus),
             "-kernel", str(self.kernel.vmlinuz), "-initrd", str(self.initramfs), "-append", append,
             "-no-reboot", "-serial", f"file:{self.serial_log}"]
        if self.accel == "kvm":
            a += ["-cpu", "host"]
        if self.tap:
            a += ["-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
                  "-device", f"virtio-net-pci,netdev=n0,mac={self.mac},romfile="]
        if self.disk:
            a += ["-drive", f"file={self.disk},format=raw,if=none,id=d0,cache=writeback",
                  "-device", "virtio-blk-pci,drive=d0"]
        return a


class Vm:
    """A QEMU process we start (inside `netns` when given) and stop by PID. Marker lines
    of the serial log are timestamped on the host as they appear (poll)."""

    def __init__(self, spec: VmSpec, netns: Netns | None = None) -> None:
        self.spec = spec
        self.netns = netns
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0
        self.seen: dict[str, float] = {}      # marker tag -> host seconds since start (first time)
        self.stderr_path = spec.serial_log.with_suffix(".stderr")

    def start(self) -> "Vm":
        argv = self.spec.argv()
        if self.netns:
            argv = self.netns.wrap(argv)
        self.spec.serial_log.write_bytes(b"")
        self._err = open(self.stderr_path, "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._err, stderr=subprocess.STDOUT,
                                     env=ENV)
        return self

    def serial(self) -> str:
        try:
            return self.spec.serial_log.read_text(errors="replace")
        except OSError:
            return ""

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def _scan(self) -> str:
        text = self.serial()
        now = time.monotonic() - self.t0
        for tag in set(re.findall(r"DEVCLOUD-[A-Z0-9-]+", text)):
            self.seen.setdefault(tag, now)
        return text

    def wait_for(self, tag: str, timeout: float) -> dict[str, str] | None:
        """Wait until a `tag` line appears (returns its fields) or QEMU exits / times out
        (returns None)."""
        end = time.monotonic() + timeout
        while True:
            text = self._scan()
            found = parse_markers(text, tag)
            if found:
                return found[-1]
            if self.proc.poll() is not None:
                text = self._scan()
                found = parse_markers(text, tag)
                return found[-1] if found else None
            if time.monotonic() > end:
                return None
            time.sleep(0.02)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc, signal.SIGTERM, timeout=5)
            self._scan()
            self._err.close()

    def result(self) -> dict:
        """Everything the serial console said, parsed."""
        text = self.serial()
        first = lambda tag: (parse_markers(text, tag) or [None])[-1]  # noqa: E731
        return {"boot": first("DEVCLOUD-BOOT"), "dhcp_start": first("DEVCLOUD-DHCP-START"),
                "lease": first("DEVCLOUD-LEASE"), "dhcp_end": first("DEVCLOUD-DHCP-END"),
                "ping": first("DEVCLOUD-PING"), "disk": first("DEVCLOUD-DISK"), "done": first("DEVCLOUD-DONE"),
                "errors": parse_markers(text, "DEVCLOUD-ERROR"), "host_seen": dict(self.seen)}
