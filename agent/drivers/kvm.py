"""KVM facts from the device itself: ioctls on /dev/kvm, not only CPU flags.

kvm-ok and virt-host-validate look at vmx/svm flags; on PVM hosts (ours)
the flags are absent while /dev/kvm works. We report both facts separately
and decide usability from the device.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from agent.drivers import procfs
from agent.drivers.base import Availability
from agent.drivers.contracts.host import KvmContract

# ioctl numbers: _IO(KVMIO=0xAE, nr) == 0xAE00 | nr (no size, no direction).
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_NR_VCPUS = 9
KVM_CAP_MAX_VCPUS = 66
KVM_API_VERSION = 12   # stable since Linux 2.6.22


@dataclass
class KvmFacts:
    device_present: bool = False
    device_openable: bool = False
    api_version: int = 0
    recommended_vcpus: int = 0
    max_vcpus: int = 0
    create_vm_works: bool = False
    device_error: str = ""
    cpu_virt_flag: str = ""
    nested: str = ""
    vhost_net: bool = False
    vhost_vsock: bool = False
    net_tun: bool = False
    hugepage_size_bytes: int = 0
    hugepages_total: int = 0
    hugepages_free: int = 0
    iommu_groups: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """True when KVM_CREATE_VM worked with the expected API version: VMs can run here. Pure."""
        return self.create_vm_works and self.api_version == KVM_API_VERSION


class KvmDriver(KvmContract):
    """KvmContract over /dev/kvm ioctls and /proc, /sys (CREATE_VM makes a VM fd and closes it);
    the contract's docstrings are in agent/drivers/contracts/host.py."""

    def __init__(self, dev: str = "/dev/kvm", sys_root: str = "/sys", proc_root: str = "/proc",
                 dev_root: str = "/dev") -> None:
        self._dev = dev
        self._sys = Path(sys_root)
        self._proc = Path(proc_root)
        self._devroot = Path(dev_root)

    def probe(self) -> Availability:
        """facts(), then usable and the device features."""
        f = self.facts()
        if f.usable:
            return Availability.ok(version=f"api {f.api_version}",
                                   features=[n for n, ok in (("vhost-net", f.vhost_net),
                                                             ("vhost-vsock", f.vhost_vsock),
                                                             ("tun", f.net_tun)) if ok])
        return Availability.missing(f.device_error or "KVM_CREATE_VM failed")

    def facts(self) -> KvmFacts:
        """KVM_GET_API_VERSION, KVM_CHECK_EXTENSION and KVM_CREATE_VM ioctls on /dev/kvm (the VM fd is closed
        at once), /proc/cpuinfo flags, /sys/module/kvm_*/parameters/nested, /dev nodes,
        /proc/meminfo hugepages, /sys/kernel/iommu_groups."""
        f = KvmFacts()
        self._device_facts(f)
        f.cpu_virt_flag = self._cpu_virt_flag()
        f.nested = self._nested()
        f.vhost_net = (self._devroot / "vhost-net").exists()
        f.vhost_vsock = (self._devroot / "vhost-vsock").exists()
        f.net_tun = (self._devroot / "net" / "tun").exists()
        mem = procfs.meminfo(str(self._proc / "meminfo"))
        f.hugepage_size_bytes = mem.get("Hugepagesize", 0)
        f.hugepages_total = mem.get("HugePages_Total", 0)
        f.hugepages_free = mem.get("HugePages_Free", 0)
        try:
            f.iommu_groups = len(os.listdir(self._sys / "kernel" / "iommu_groups"))
        except OSError:
            f.iommu_groups = 0
        return f

    def _device_facts(self, f: KvmFacts) -> None:
        f.device_present = os.path.exists(self._dev)
        if not f.device_present:
            f.device_error = (f"{self._dev} does not exist: load kvm_intel or kvm_amd, enable "
                              "virtualization in the firmware, or give the node a KVM-capable CPU")
            return
        try:
            fd = os.open(self._dev, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            f.device_error = f"cannot open {self._dev}: {exc.strerror}; the agent needs read-write access (group kvm)"
            return
        f.device_openable = True
        try:
            f.api_version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
            if f.api_version != KVM_API_VERSION:
                f.device_error = f"KVM API version {f.api_version}, expected {KVM_API_VERSION}"
                return
            f.recommended_vcpus = max(fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS), 0)
            f.max_vcpus = max(fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS), 0)
            # Per the KVM API doc: if MAX_VCPUS is not supported, the max is NR_VCPUS.
            f.max_vcpus = f.max_vcpus or f.recommended_vcpus
            try:
                vm_fd = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
            except OSError as exc:
                f.device_error = f"KVM_CREATE_VM failed: {exc.strerror}"
                return
            os.close(vm_fd)
            f.create_vm_works = True
        except OSError as exc:
            f.device_error = f"ioctl on {self._dev} failed: {exc.strerror}"
        finally:
            os.close(fd)

    def _cpu_virt_flag(self) -> str:
        flags: set[str] = set()
        for line in procfs.read_text(self._proc / "cpuinfo").splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
                break
        return "vmx" if "vmx" in flags else "svm" if "svm" in flags else ""

    def _nested(self) -> str:
        for mod in ("kvm_intel", "kvm_amd"):
            value = procfs.read_text(self._sys / "module" / mod / "parameters" / "nested")
            if value:
                return value
        return ""
