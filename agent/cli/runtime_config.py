"""The runtime configs built from a prepared instance's `runtime` (proto Runtime):
an LXC container config and a QEMU command line. Pure functions of the reply
and a few runtime choices (init command, kernel, memory...): what
`devcloudctl instance lxc-config` / `qemu-args` print and the integration tests
run verbatim. examples/runtimes.md maps every line to the reply's fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent._proto.devcloud.agent.v1 import instance_pb2 as pb
from agent._proto.devcloud.agent.v1 import network_pb2 as net_pb
from agent._proto.devcloud.agent.v1 import storage_pb2 as st_pb

# Capabilities a system container should not have (LXD's default drop list, minus what
# busybox/systemd inits need).
CAP_DROP = "sys_module mac_admin mac_override sys_time sys_rawio"


class NotRunnable(ValueError):
    """The reply cannot be turned into this runtime's config (the message says why)."""


@dataclass
class LxcOptions:
    """Choices of the caller, not of the agent."""

    init_cmd: str = "/sbin/init"
    halt_signal: str = ""              # "" = LXC's default (SIGPWR); busybox init wants SIGUSR1, ours SIGTERM
    apparmor: str = ""                 # "" = LXC's default for the host; e.g. "unconfined" where there is none
    log_file: str = ""
    log_level: str = "INFO"
    extra: list[str] = field(default_factory=list)


@dataclass
class LxcConfig:
    """A rendered LXC config and how to run lxc-* for it."""

    name: str
    text: str
    netns: str                         # where lxc-start must run ("" = the host's namespace: anywhere)
    wrap: list[str]                    # ["nsenter", "--net=<netns>", "--"] or []

    def start_argv(self, lxcpath: str, config_file: str, *, foreground: bool = False,
                   pidfile: str = "") -> list[str]:
        """The lxc-start command (lxc-attach/-stop/-info need the same wrap: LXC's command
        socket is an abstract unix socket, one per network namespace)."""
        tail = ["-F"] if foreground else ["-d"] + (["-p", pidfile] if pidfile else [])
        return [*self.wrap, "lxc-start", "-n", self.name, "-P", lxcpath, "-f", config_file, *tail]


def _wrap(netns: str, host: bool) -> list[str]:
    return [] if host or not netns else ["nsenter", f"--net={netns}", "--"]


def lxc_config(inst: pb.Instance, opts: LxcOptions | None = None) -> LxcConfig:
    """The LXC config of a prepared container. Raises NotRunnable for a VM, a missing rootfs,
    NICs in different namespaces, or a shared netns for an unprivileged container."""
    opts = opts or LxcOptions()
    rt = inst.runtime
    if inst.kind == pb.INSTANCE_KIND_VM:
        raise NotRunnable(f"{inst.id} is a VM: use qemu-args")
    if not rt.storage.rootfs:
        raise NotRunnable(f"{inst.id} has no rootfs (volume missing? see `devcloudctl instance get {inst.id}`)")
    unpriv = rt.HasField("idmap")
    lines = [f"# devcloud-agent: instance {inst.id} of team {inst.team} (devcloudctl instance lxc-config {inst.id})",
             f"lxc.uts.name = {inst.id}",
             f"lxc.rootfs.path = dir:{rt.storage.rootfs}"]
    if rt.storage.idmap_mode == st_pb.IDMAP_MODE_MOUNT:
        lines.append("lxc.rootfs.options = idmap=container")
    lines += [f"lxc.init.cmd = {opts.init_cmd}"]
    if opts.halt_signal:
        lines.append(f"lxc.signal.halt = {opts.halt_signal}")
    lines += ["lxc.autodev = 1", "lxc.mount.auto = proc:mixed sys:mixed", "lxc.tty.max = 0", "lxc.pty.max = 16",
              "lxc.console.path = none"]
    if opts.apparmor:
        lines.append(f"lxc.apparmor.profile = {opts.apparmor}")
    lines += [f"lxc.cap.drop = {CAP_DROP}",
              f"lxc.cgroup.dir.container = {rt.compute.payload_cgroup}",
              f"lxc.cgroup.dir.monitor = {rt.compute.monitor_cgroup}",
              f"lxc.cgroup.dir.monitor.pivot = {rt.compute.cgroup}"]
    shared = [n for n in rt.nics if n.placement == pb.PEER_PLACEMENT_NETNS]
    phys = [n for n in rt.nics if n.placement != pb.PEER_PLACEMENT_NETNS]
    netns, host = "", True
    if shared:
        if phys or len({n.netns for n in shared}) > 1:
            raise NotRunnable("a container joins one prepared netns (lxc.namespace.share.net): every NIC must be "
                              "placed in the same netns (peer_placement NETNS), or none")
        if unpriv:
            raise NotRunnable("an unprivileged container cannot use a netns the host owns (no sysfs, no DHCP "
                              "socket): place its NICs with AGENT_NETNS or HOST_NETNS (lxc.net.N.type = phys)")
        lines.append(f"lxc.namespace.share.net = {shared[0].netns}")
    else:
        where = {(n.netns, n.host_netns) for n in phys}
        if len(where) > 1:
            raise NotRunnable("the NICs' netdevs are in different namespaces (" + ", ".join(sorted(w for w, _ in where))
                              + "); lxc-start finds them only in the one it runs in")
        if where:
            netns, host = next(iter(where))
        for i, n in enumerate(phys):
            lines += [f"lxc.net.{i}.type = phys", f"lxc.net.{i}.link = {n.netdev}", f"lxc.net.{i}.name = {n.name}",
                      f"lxc.net.{i}.flags = up"]
            if n.mac:
                lines.append(f"lxc.net.{i}.hwaddr = {n.mac}")
            if n.mtu:
                lines.append(f"lxc.net.{i}.mtu = {n.mtu}")
    if unpriv:
        m = rt.idmap
        lines += [f"lxc.idmap = u 0 {m.host_uid} {m.count}", f"lxc.idmap = g 0 {m.host_gid} {m.count}"]
    if opts.log_file:
        lines += [f"lxc.log.file = {opts.log_file}", f"lxc.log.level = {opts.log_level}"]
    lines += opts.extra
    return LxcConfig(inst.id, "\n".join(lines) + "\n", "" if host else netns, _wrap(netns, host))


@dataclass
class QemuOptions:
    """Choices of the caller, not of the agent."""

    binary: str = "qemu-system-x86_64"
    accel: str = "kvm"                 # kvm | tcg
    memory_mb: int = 1024
    cpus: int = 1
    kernel: str = ""                   # direct kernel boot (else the disk boots)
    initrd: str = ""
    append: str = ""
    serial: str = "stdio"              # e.g. file:/var/log/vm1.serial
    no_reboot: bool = False
    extra: list[str] = field(default_factory=list)


@dataclass
class QemuCommand:
    """A QEMU command line and where it must run."""

    argv: list[str]                    # includes the nsenter wrap when the taps are not in the host's netns
    netns: str
    payload_cgroup: str                # absolute: create it and put QEMU's pid into it (cgroup.procs)


def qemu_argv(inst: pb.Instance, opts: QemuOptions | None = None) -> QemuCommand:
    """The QEMU command line of a prepared VM: its taps (virtio-net, MAC, MTU, queues) and
    its disk (virtio-blk, raw). Raises NotRunnable for a container, a missing disk or taps in
    different namespaces."""
    opts = opts or QemuOptions()
    rt = inst.runtime
    if inst.kind != pb.INSTANCE_KIND_VM:
        raise NotRunnable(f"{inst.id} is a container: use lxc-config")
    if not rt.storage.disk:
        raise NotRunnable(f"{inst.id} has no disk (volume missing? see `devcloudctl instance get {inst.id}`)")
    where = {(n.netns, n.host_netns) for n in rt.nics}
    if len(where) > 1:
        raise NotRunnable("the taps are in different namespaces; QEMU opens them by name in the one it runs in")
    netns, host = next(iter(where)) if where else ("", True)
    a = [opts.binary, "-name", inst.id, "-nodefaults", "-no-user-config", "-nographic", "-monitor", "none",
         "-accel", opts.accel, "-m", str(opts.memory_mb), "-smp", str(opts.cpus)]
    if opts.accel == "kvm":
        a += ["-cpu", "host"]
    if opts.kernel:
        a += ["-kernel", opts.kernel]
        if opts.initrd:
            a += ["-initrd", opts.initrd]
        if opts.append:
            a += ["-append", opts.append]
    if opts.no_reboot:
        a.append("-no-reboot")
    a += ["-serial", opts.serial]
    for i, n in enumerate(rt.nics):
        if n.kind != net_pb.NIC_KIND_TAP:
            raise NotRunnable(f"NIC {n.name} is not a tap")
        tap = f"tap,id=net{i},ifname={n.netdev},script=no,downscript=no"
        dev = f"virtio-net-pci,netdev=net{i},mac={n.mac},romfile="
        if n.queues > 1:
            tap += f",queues={n.queues}"
            dev += f",mq=on,vectors={2 * n.queues + 2}"
        if n.mtu:
            dev += f",host_mtu={n.mtu}"
        a += ["-netdev", tap, "-device", dev]
    cache = "writeback" if rt.storage.disk_is_file else "none"     # FUSE (zfs-fuse) has no O_DIRECT
    a += ["-drive", f"file={rt.storage.disk},format={rt.storage.disk_format or 'raw'},if=none,id=disk0,cache={cache}",
          "-device", "virtio-blk-pci,drive=disk0"]
    a += opts.extra
    mount = rt.compute.cgroup_path[: -len(rt.compute.cgroup)].rstrip("/") if rt.compute.cgroup else ""
    return QemuCommand([*_wrap(netns, host), *a], "" if host else netns,
                       f"{mount}/{rt.compute.payload_cgroup}" if mount else "")
