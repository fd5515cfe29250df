"""LXC (Debian `lxc` 5.0.2) containers on a prepared directory rootfs with a
prepared NIC, placed under a given cgroup: config, start, attach, stop, destroy.

What LXC needs, found on this machine (see test_runtime_fixtures.py):

* NIC: `lxc.net.N.type = phys` + `lxc.net.N.link = <netdev>` moves an existing
  netdev into the container (renamed to lxc.net.N.name) and back to the
  monitor's namespace at stop. LXC looks the netdev up in the network
  namespace lxc-start runs in: for a netdev in another namespace run
  `nsenter --net=/run/netns/<ns> lxc-start ...` (and lxc-attach/-info/-stop
  the same way: LXC's command socket is an abstract unix socket, which is
  per network namespace). NOT `ip netns exec`: it also unshares the mount
  namespace and remounts /sys, which hides /sys/fs/cgroup: LXC then silently
  places the container in NO cgroup (lxc.cgroup.dir.* ignored) and its
  monitor pins every mount it saw.

* cgroup: with `lxc.cgroup.dir.container = X`, LXC mkdir()s X itself and
  requires the LAST component to be new (src/lxc/cgroups/cgfsng.c
  __cgroup_tree_create: "The final cgroup must be succesfully creatd by us"):
  X = the prepared scope fails with EEXIST, and since an explicit dir gets no
  "-1, -2..." retry suffix, cgfsng_payload_create ends with ERANGE
  ("Numerical result out of range - Failed to create container cgroup").
  So the container dir (and the monitor dir, which must also be given) are
  children of the scope: <scope>/lxc.payload, <scope>/lxc.monitor. Paths are
  relative to the hierarchy root as seen by PID 1 (root-run LXC with
  lxc.cgroup.relative = 0 bases itself on /proc/1/cgroup, minus init.scope).
  At stop LXC removes its two dirs but leaves <pivot>/lxc.pivot (the monitor
  escapes there before pruning); set lxc.cgroup.dir.monitor.pivot = <scope>
  or it lands at the hierarchy root. On a hybrid host (cgroup v1 controllers
  + v2 unified, as here) LXC mirrors the same relative path in EVERY v1
  hierarchy too (and leaves those parents behind).

* or, instead of moving a NIC: `lxc.namespace.share.net = /run/netns/<ns>`
  makes the container JOIN a prepared network namespace (NIC, addresses,
  routes already there). Nothing is moved, so nothing is lost: a failed
  start (or a crash) leaves the netns and its NIC intact, whereas a phys
  veth/tap moved into the container's own netns is DESTROYED (with its
  peer) when a start fails after the move (e.g. init exec failure, refused
  idmapped rootfs): LXC cannot move it back and the kernel deletes virtual
  netdevs of a dying namespace.

* unprivileged: `lxc.idmap = u 0 100000 65536` / `g ...`. Root-run LXC
  writes the maps itself when newuidmap is absent (no /etc/subuid needed; if
  the `uidmap` package IS installed, LXC uses newuidmap and root then needs
  subuid/subgid ranges). The rootfs must look owned by 100000: either
  `lxc.rootfs.options = idmap=container` (idmapped mount: ext4, tmpfs, xfs,
  btrfs; OpenZFS >= 2.2; NOT zfs-fuse/FUSE: EINVAL) or a shifted rootfs
  (idshift.shift_tree).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from integration.runtimes.common import (ENV, CommandFailed, Netns, Unavailable, need, run, stop_pid,
                                         wait_for)
from integration.runtimes.idshift import IdMap


def available() -> None:
    """Unavailable with the reason unless lxc-start & co and a cgroup2 mount exist."""
    for b in ("lxc-start", "lxc-attach", "lxc-stop", "lxc-info", "lxc-wait"):
        need(b, "lxc")
    if not cgroup2_mount():
        raise Unavailable("no cgroup2 hierarchy mounted")


def version() -> str:
    return run([need("lxc-start", "lxc"), "--version"]).stdout.strip()


# -- cgroups ------------------------------------------------------------------------


def cgroup_mounts() -> dict[str, str]:
    """{mountpoint: fstype} of every cgroup/cgroup2 mount (v1 hierarchies + unified)."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype = post.split()[0]
            if fstype in ("cgroup", "cgroup2"):
                out[pre.split()[4]] = fstype
    return out


def cgroup2_mount() -> str | None:
    for mnt, fstype in cgroup_mounts().items():
        if fstype == "cgroup2":
            return mnt
    return None


def relative_cgroup(parent: str) -> str:
    """A cgroup path relative to the cgroup2 mount (what lxc.cgroup.dir.* takes), from an
    absolute path below the mount or an already relative one."""
    mnt = cgroup2_mount() or ""
    if parent.startswith("/"):
        if not (mnt and (parent == mnt or parent.startswith(mnt.rstrip("/") + "/"))):
            raise ValueError(f"{parent} is not below the cgroup2 mount {mnt}")
        parent = os.path.relpath(parent, mnt)
    parent = parent.strip("/")
    if not parent or parent == "." or ".." in parent.split("/"):
        raise ValueError(f"bad cgroup parent {parent!r}: give the instance's own cgroup, never the root")
    return parent


@dataclass(frozen=True)
class CgroupPlacement:
    """Where LXC puts the container and its monitor below a prepared cgroup `parent`."""

    parent: str                                    # relative to the cgroup2 mount
    container_leaf: str = "lxc.payload"
    monitor_leaf: str = "lxc.monitor"

    @property
    def container(self) -> str:
        return f"{self.parent}/{self.container_leaf}"

    @property
    def monitor(self) -> str:
        return f"{self.parent}/{self.monitor_leaf}"

    def lines(self) -> list[str]:
        return [f"lxc.cgroup.dir.container = {self.container}",
                f"lxc.cgroup.dir.monitor = {self.monitor}",
                f"lxc.cgroup.dir.monitor.pivot = {self.parent}"]

    def leftovers(self) -> list[str]:
        """Directories LXC left below parent (or mirrored in v1 hierarchies), absolute."""
        out = []
        for mnt in cgroup_mounts():
            base = os.path.join(mnt, self.parent)
            if not os.path.isdir(base):
                continue
            for dirpath, dirnames, _ in os.walk(base):
                out += [os.path.join(dirpath, d) for d in dirnames]
        return sorted(out)


def remove_cgroup_tree_everywhere(rel: str, timeout: float = 10.0, *, kill: bool = True) -> None:
    """rmdir `rel` (relative, OURS) bottom-up in every cgroup hierarchy where it exists.
    With kill, a populated v2 subtree (ours) is emptied with cgroup.kill first."""
    rel = rel.strip("/")
    if not rel or ".." in rel.split("/"):
        raise ValueError(f"refusing to remove {rel!r}")
    for mnt, fstype in cgroup_mounts().items():
        base = os.path.join(mnt, rel)
        if not os.path.isdir(base):
            continue
        if fstype == "cgroup2" and kill:
            try:
                populated = "populated 1" in Path(base, "cgroup.events").read_text()
            except OSError:
                populated = False
            if populated:
                fd = os.open(os.path.join(base, "cgroup.kill"), os.O_WRONLY)
                try:
                    os.write(fd, b"1")
                finally:
                    os.close(fd)
        end = time.monotonic() + timeout
        for dirpath, _, _ in os.walk(base, topdown=False):
            while True:
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.01)


# -- config ------------------------------------------------------------------------


@dataclass
class PhysNic:
    link: str                       # the netdev's name in the namespace lxc-start runs in
    name: str = "eth0"              # its name inside the container
    hwaddr: str | None = None       # None: keep the prepared MAC
    mtu: int | None = None          # None: keep the prepared MTU


@dataclass
class ContainerConfig:
    name: str
    rootfs: Path
    cgroup: CgroupPlacement
    nics: list[PhysNic] = field(default_factory=list)
    share_netns: str | None = None          # lxc.namespace.share.net = /run/netns/<ns>: join a prepared netns
    idmap: IdMap | None = None              # unprivileged when set
    idmapped_rootfs: bool = False           # lxc.rootfs.options = idmap=container
    init_cmd: str = "/sbin/devcloud-init"
    log_file: Path | None = None
    log_level: str = "INFO"
    extra: list[str] = field(default_factory=list)

    def render(self) -> str:
        L = ["# devcloud runtime fixture (integration/runtimes/lxc.py)",
             f"lxc.uts.name = {self.name}",
             f"lxc.rootfs.path = dir:{self.rootfs}"]
        if self.idmapped_rootfs:
            if not self.idmap:
                raise ValueError("idmapped_rootfs needs an idmap")
            L.append("lxc.rootfs.options = idmap=container")
        L += [f"lxc.init.cmd = {self.init_cmd}",
              "lxc.signal.halt = SIGTERM",          # our init traps TERM (LXC's default is SIGPWR)
              "lxc.autodev = 1",
              "lxc.mount.auto = proc:mixed sys:mixed",
              "lxc.tty.max = 0",
              "lxc.pty.max = 16",
              "lxc.console.path = none",
              "lxc.apparmor.profile = unconfined",   # hosts without AppArmor; set a profile where it runs
              "lxc.cap.drop = sys_module mac_admin mac_override sys_time sys_rawio"]
        L += self.cgroup.lines()
        if self.share_netns:
            if self.nics:
                raise ValueError("share_netns and phys nics exclude each other")
            L.append(f"lxc.namespace.share.net = {self.share_netns}")
        for i, nic in enumerate(self.nics):
            L += [f"lxc.net.{i}.type = phys", f"lxc.net.{i}.link = {nic.link}", f"lxc.net.{i}.name = {nic.name}",
                  f"lxc.net.{i}.flags = up"]
            if nic.hwaddr:
                L.append(f"lxc.net.{i}.hwaddr = {nic.hwaddr}")
            if nic.mtu:
                L.append(f"lxc.net.{i}.mtu = {nic.mtu}")
        if self.idmap:
            L += self.idmap.lxc_lines()
        if self.log_file:
            L += [f"lxc.log.file = {self.log_file}", f"lxc.log.level = {self.log_level}"]
        L += self.extra
        return "\n".join(L) + "\n"


# -- lifecycle -------------------------------------------------------------------------


class StartFailed(RuntimeError):
    def __init__(self, message: str, log: str) -> None:
        self.log = log
        super().__init__(message)


class Container:
    """One container: `workdir` holds its config, lxcpath (-P) and log. Runs every lxc-*
    command inside `netns` (nsenter --net) when given. Processes we own: the monitor
    (pid from `lxc-start -p`, or the foreground lxc-start) and the container's init."""

    def __init__(self, config: ContainerConfig, workdir: str | os.PathLike, netns: Netns | None = None) -> None:
        available()
        self.config = config
        self.name = config.name
        self.workdir = Path(workdir)
        self.lxcpath = self.workdir / "lxcpath"
        self.conf_path = self.workdir / f"{self.name}.conf"
        self.pidfile = self.workdir / f"{self.name}.monitor.pid"
        if config.log_file is None:
            config.log_file = self.workdir / f"{self.name}.log"
        self.netns = netns
        self.monitor_pid = 0
        self.init_pid = 0
        self.destroyed = False
        self.fg: subprocess.Popen | None = None
        self.lxcpath.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)                  # unprivileged roots traverse it

    def _wrap(self, argv: list[str]) -> list[str]:
        return self.netns.wrap(argv) if self.netns else argv

    def _lxc(self, tool: str, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return run(self._wrap([need(tool, "lxc"), "-n", self.name, "-P", str(self.lxcpath), *args]),
                   timeout=timeout, check=check)

    def start_argv(self, foreground: bool = False) -> list[str]:
        base = ["lxc-start", "-n", self.name, "-P", str(self.lxcpath), "-f", str(self.conf_path)]
        return self._wrap(base + (["-F"] if foreground else ["-d", "-p", str(self.pidfile)]))

    def log(self) -> str:
        try:
            return Path(self.config.log_file).read_text(errors="replace")
        except OSError:
            return ""

    def start(self, *, foreground: bool = False, timeout: float = 30) -> float:
        """Write the config and start; returns seconds until RUNNING. StartFailed (with the
        LXC log's ERROR lines) when it does not come up."""
        self.conf_path.write_text(self.config.render())
        t0 = time.monotonic()
        if foreground:
            self.fg = subprocess.Popen(self.start_argv(True), stdin=subprocess.DEVNULL,
                                       stdout=open(self.workdir / "console.log", "wb"), stderr=subprocess.STDOUT,
                                       env=ENV)
            self.monitor_pid = self.fg.pid
            try:
                wait_for(lambda: self.fg.poll() is not None or self.state() == "RUNNING", timeout, 0.02,
                         f"container {self.name} RUNNING")
            except TimeoutError:
                pass
            if self.fg.poll() is not None or self.state() != "RUNNING":
                self._wait_failed_monitor()
                raise StartFailed(f"lxc-start -F {self.name} did not reach RUNNING (rc={self.fg.poll()})",
                                  self.error_lines())
        else:
            p = run(self.start_argv(False), timeout=timeout, check=False)
            if self.pidfile.exists():
                try:
                    self.monitor_pid = int(self.pidfile.read_text().strip() or 0)
                except ValueError:
                    self.monitor_pid = 0
            if p.returncode != 0:
                self._wait_failed_monitor()
                raise StartFailed(f"lxc-start {self.name} exited {p.returncode}: {p.stderr.strip()[-500:]}",
                                  self.error_lines())
        took = time.monotonic() - t0
        self.init_pid = int(self._lxc("lxc-info", "-pH").stdout.strip() or 0)
        return took

    def _wait_failed_monitor(self, timeout: float = 15.0) -> None:
        """After a failed `lxc-start -d`: lxc-start returns as soon as the monitor reports
        ABORTING/STOPPED, while the monitor still cleans up. On this hybrid host it also
        leaves <parent>/lxc.monitor behind in some v1 hierarchies (seen: systemd, blkio,
        pids...). A next start with the same placement then fails: "File exists - Creating
        the final cgroup N(<parent>/lxc.monitor)" -> ERANGE -> "Received container state
        ABORTING instead of RUNNING" (the flaky share.net test, under load). So: wait for our
        monitor (by PID) to exit, then remove the EMPTY container/monitor dirs it left in
        every hierarchy (never killing anything)."""
        if self.monitor_pid:
            try:
                wait_for(lambda: not _alive(self.monitor_pid), timeout, 0.01, "failed lxc monitor to exit")
            except TimeoutError:
                stop_pid(self.monitor_pid, timeout=5)
        self.monitor_pid = 0
        for leaf in (self.config.cgroup.container, self.config.cgroup.monitor):
            try:
                remove_cgroup_tree_everywhere(leaf, timeout=5, kill=False)
            except OSError:
                pass                     # still busy: the next start's log says so

    def error_lines(self) -> str:
        return "\n".join(l for l in self.log().splitlines() if " ERROR " in l or " WARN " in l)

    def state(self) -> str:
        p = self._lxc("lxc-info", "-sH", check=False, timeout=15)
        return p.stdout.strip() if p.returncode == 0 else "STOPPED"

    def attach(self, argv: list[str], *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run argv inside the container (its namespaces and cgroup) as its root."""
        return run(self._wrap([need("lxc-attach", "lxc"), "-n", self.name, "-P", str(self.lxcpath), "--", *argv]),
                   timeout=timeout, check=check)

    def sh(self, script: str, *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return self.attach(["/bin/sh", "-c", script], timeout=timeout, check=check)

    def stop(self, timeout: float = 10) -> None:
        """lxc-stop (SIGTERM to init, SIGKILL after `timeout`); then make sure the processes
        we own are gone (by PID)."""
        if self.monitor_pid or self.fg:
            try:
                self._lxc("lxc-stop", "-t", str(int(timeout)), timeout=timeout + 20, check=False)
            except subprocess.TimeoutExpired:
                pass
        for pid in (self.init_pid,):
            if pid:
                stop_pid(pid, signal.SIGKILL, timeout=5)
        if self.fg is not None:
            stop_pid(self.fg, timeout=10)
            self.fg = None
        elif self.monitor_pid:
            try:
                wait_for(lambda: not _alive(self.monitor_pid), 10, 0.02, "lxc monitor exit")
            except TimeoutError:
                stop_pid(self.monitor_pid, timeout=5)
        self.monitor_pid = self.init_pid = 0

    def destroy(self) -> None:
        """Stop, remove the empty cgroups LXC left below the placement's parent (lxc.pivot,
        v1 mirrors of its dirs) and the workdir. Idempotent. The parent itself stays (it
        is the caller's); nothing is killed here (a busy dir raises)."""
        if self.destroyed:
            return
        self.stop()
        for d in reversed(self.config.cgroup.leftovers()):
            if os.path.basename(d) in ("lxc.pivot", self.config.cgroup.container_leaf,
                                       self.config.cgroup.monitor_leaf):
                remove_cgroup_tree_everywhere(os.path.relpath(d, _mount_of(d)), kill=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.destroyed = True


def _mount_of(path: str) -> str:
    best = "/"
    for mnt in cgroup_mounts():
        if path.startswith(mnt.rstrip("/") + "/") and len(mnt) > len(best):
            best = mnt
    return best


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def dhcp(container: Container, iface: str = "eth0", *, tries: int = 10, timeout_s: int = 1,
         check: bool = True) -> tuple[dict[str, str] | None, float, str]:
    """busybox udhcpc inside the container (our hook prints DEVCLOUD-LEASE and applies the
    lease); returns (lease or None, seconds, output). Without a server it gives up after
    about tries * timeout_s seconds."""
    from integration.runtimes.common import parse_markers
    t0 = time.monotonic()
    p = container.attach(["udhcpc", "-i", iface, "-n", "-q", "-f", "-t", str(tries), "-T", str(timeout_s),
                          "-s", "/usr/share/udhcpc/default.script"], timeout=tries * timeout_s + 30, check=False)
    took = time.monotonic() - t0
    out = p.stdout + p.stderr
    leases = parse_markers(out, "DEVCLOUD-LEASE")
    if check and p.returncode not in (0, 1):
        raise CommandFailed(p.args, p.returncode, p.stdout, p.stderr)
    return (leases[-1] if leases else None), took, out
