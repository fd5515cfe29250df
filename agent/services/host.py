"""Host plane: facts about the node and preflight checks per profile.

Read-only and idempotent: every call measures again (facts change when an
operator loads a module or flips a sysctl).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.drivers import procfs
from agent.drivers.inventory import NodeInventory, read_inventory
from agent.drivers.contracts.host import KernelContract, KvmContract
from agent.drivers.kvm import KvmFacts

# Kernel modules a Kubernetes node inside an LXD container needs from the host
# (LESSONS.md #6; LXD's linux.kernel_modules list for k8s-in-LXD).
K8S_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_tables", "ip6_tables",
               "iptable_raw", "netlink_diag", "nf_nat", "overlay", "br_netfilter", "xt_socket")


class Profile(enum.Enum):
    ALL = "all"
    KUBERNETES_IN_LXD = "kubernetes-in-lxd"
    VM_HOST = "vm-host"


@dataclass
class CgroupFacts:
    mode: str
    v2_mount: str
    controllers_available: list[str]
    controllers_delegated: list[str]
    agent_subtree: str
    v1_controllers: list[str]


@dataclass
class HostFacts:
    kvm: KvmFacts
    cgroup: CgroupFacts
    node: NodeInventory


@dataclass
class Check:
    id: str
    category: str
    status: str          # ok | missing | unknown
    reason: str
    remedy: str = ""


@dataclass
class PreflightResult:
    profile: Profile
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.status != "missing" for c in self.checks)


class HostService:
    """Composes the KVM, kernel and inventory drivers into facts and preflight."""

    def __init__(self, kvm: KvmContract, kernel: KernelContract, cgroup_subtree: Callable[[], str]) -> None:
        self._kvm = kvm
        self._kernel = kernel
        self._cgroup_subtree = cgroup_subtree   # the compute plane's root, resolved lazily

    def facts(self) -> HostFacts:
        """Measure all host facts now. Idempotent, read-only; never raises."""
        return HostFacts(kvm=self._kvm.facts(), cgroup=self.cgroup_facts(), node=read_inventory())

    def cgroup_facts(self) -> CgroupFacts:
        mount = procfs.cgroup2_mount()
        v1 = procfs.cgroup_v1_controllers()
        mode = "none" if not mount and not v1 else "v1" if not mount else "hybrid" if v1 else "v2"
        available = procfs.read_text(Path(mount) / "cgroup.controllers").split() if mount else []
        subtree = self._cgroup_subtree() if mount else ""
        delegated = procfs.read_text(Path(subtree) / "cgroup.subtree_control").split() if subtree else []
        return CgroupFacts(mode, mount, available, delegated, subtree, v1)

    def preflight(self, profile: Profile) -> PreflightResult:
        """Run the checks of `profile`. Idempotent, read-only; never raises."""
        result = PreflightResult(profile)
        if profile in (Profile.ALL, Profile.KUBERNETES_IN_LXD):
            result.checks += self._kubernetes_checks()
        if profile in (Profile.ALL, Profile.VM_HOST):
            result.checks += self._vm_checks()
        return result

    def _kubernetes_checks(self) -> list[Check]:
        k = self._kernel
        checks = []
        for mod in K8S_MODULES:
            status, reason = k.module(mod)
            checks.append(Check(f"module.{mod}", "kernel-module", status, reason,
                                f"modprobe {mod} on the host, list it in /etc/modules-load.d/devcloud.conf "
                                "and in the LXD profile's linux.kernel_modules"))
        status, reason = k.path_state("/dev/kmsg")
        checks.append(Check("dev.kmsg", "device", status, reason,
                            "kubelet reads /dev/kmsg: pass it into the container (LXD: raw.lxc "
                            "'lxc.mount.entry = /dev/kmsg dev/kmsg none defaults,bind,create=file')"))
        status, reason = k.path_state("/boot", readable_dir=True)
        checks.append(Check("fs.boot", "filesystem", status, reason,
                            "kubeadm preflight reads the kernel config under /boot: mount it read-only "
                            "into the container"))
        ok = k.filesystem("overlay")
        checks.append(Check("fs.overlay", "filesystem", "ok" if ok else "missing",
                            "overlay is in /proc/filesystems" if ok else "overlay is not in /proc/filesystems",
                            "modprobe overlay (containerd's overlayfs snapshotter needs it)"))
        for name, want in (("net.bridge.bridge-nf-call-iptables", "1"),
                           ("net.bridge.bridge-nf-call-ip6tables", "1"),
                           ("net.ipv4.ip_forward", "1")):
            value = k.sysctl(name)
            if value is None:
                checks.append(Check(f"sysctl.{name}", "sysctl", "missing", f"{name} does not exist",
                                    "modprobe br_netfilter" if "bridge" in name else f"sysctl -w {name}={want}"))
            else:
                checks.append(Check(f"sysctl.{name}", "sysctl", "ok" if value == want else "missing",
                                    f"{name} = {value}", f"sysctl -w {name}={want} and persist it in /etc/sysctl.d/"))
        status, reason = k.writable("/sys/module/nf_conntrack/parameters/hashsize")
        checks.append(Check("conntrack.hashsize", "netfilter", status, reason,
                            "kube-proxy writes the conntrack hashsize: make it writable, or set "
                            "conntrack.maxPerCore=0 in the kube-proxy config"))
        status, reason = k.forward_policy()
        checks.append(Check("iptables.forward-policy", "netfilter", status, reason,
                            "iptables -P FORWARD ACCEPT (Docker sets DROP), or allow the pod CIDRs explicitly"))
        value = k.sysctl("user.max_user_namespaces")
        ok = value is not None and value.isdigit() and int(value) > 0
        checks.append(Check("userns", "kernel", "ok" if ok else "missing",
                            f"user.max_user_namespaces = {value}" if value is not None else "user namespaces are not supported",
                            "sysctl -w user.max_user_namespaces=15000 (unprivileged LXD containers need user namespaces)"))
        checks += self._cgroup_checks()
        return checks

    def _cgroup_checks(self) -> list[Check]:
        cg = self.cgroup_facts()
        ok = cg.mode == "v2"
        checks = [Check("cgroup.v2", "cgroup", "ok" if ok else "missing", f"cgroup mode is {cg.mode}",
                        "boot with systemd.unified_cgroup_hierarchy=1 (Kubernetes 1.35 refuses cgroup v1)")]
        for ctrl in ("cpu", "memory", "pids"):
            have = ctrl in cg.controllers_available
            checks.append(Check(f"cgroup.controller.{ctrl}", "cgroup", "ok" if have else "missing",
                                f"{ctrl} is {'' if have else 'not '}in the cgroup2 root's cgroup.controllers"
                                + (" (bound to cgroup v1)" if ctrl in cg.v1_controllers else ""),
                                f"unbind {ctrl} from cgroup v1 (pure cgroup v2 host) so containers can limit it"))
        return checks

    def _vm_checks(self) -> list[Check]:
        f = self._kvm.facts()
        checks = [Check("kvm.device", "kvm", "ok" if f.usable else "missing",
                        f"KVM_CREATE_VM works (API {f.api_version}, up to {f.max_vcpus} vCPUs)" if f.usable
                        else f.device_error,
                        "load kvm_intel/kvm_amd and enable virtualization in the firmware; give the agent rw on /dev/kvm"),
                  Check("kvm.cpu-flags", "kvm", "ok" if f.cpu_virt_flag else "unknown",
                        f"CPU flag {f.cpu_virt_flag}" if f.cpu_virt_flag else
                        "no vmx/svm flag in /proc/cpuinfo" + (" (but the KVM device works: "
                                                              "paravirtualized KVM such as PVM)" if f.usable else ""),
                        "informational: the device check decides whether VMs can run")]
        for dev, have, why in (("/dev/net/tun", f.net_tun, "VM NICs are taps"),
                               ("/dev/vhost-net", f.vhost_net, "virtio-net acceleration"),
                               ("/dev/vhost-vsock", f.vhost_vsock, "the LXD agent talks to VMs over vsock")):
            mod = {"/dev/net/tun": "tun", "/dev/vhost-net": "vhost_net", "/dev/vhost-vsock": "vhost_vsock"}[dev]
            checks.append(Check(f"dev.{dev.rsplit('/', 1)[-1]}", "device", "ok" if have else "missing",
                                f"{dev} {'exists' if have else 'does not exist'} ({why})", f"modprobe {mod}"))
        return checks
