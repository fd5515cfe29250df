"""The host drivers' contracts: KVM facts and kernel feature evidence (both read-only)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agent.drivers.base import Availability

if TYPE_CHECKING:           # kvm.py imports this module: its value type for annotations only
    from agent.drivers.kvm import KvmFacts


class KvmContract(Protocol):
    """KVM facts from the device itself (not only CPU flags). Touches nothing."""

    def probe(self) -> Availability:
        """Available when a VM can be created (features: vhost-net, vhost-vsock, tun); else
        missing with the reason (no /dev/kvm, no access, API version, ioctl failure).
        Read-only; idempotent; never raises."""

    def facts(self) -> KvmFacts:
        """Measure every fact now: the KVM device, CPU flags, nesting, vhost/tun devices,
        hugepages, IOMMU groups. Idempotent, read-only; never raises: a missing or unusable
        device is reported in device_error, absent files read as zero/empty."""


class KernelContract(Protocol):
    """'Is this kernel feature here?' with evidence. Answers are (state, evidence), state "ok" |
    "missing" | "unknown" (the kernel cannot tell, and we say so rather than guess). Read-only
    (writable() opens for write without writing); no method raises."""

    def module(self, name: str) -> tuple[str, str]:
        """Whether module `name` is loaded or built in: ("ok" | "missing" | "unknown", evidence);
        unreadable module lists give "unknown"."""

    def filesystem(self, fstype: str) -> bool:
        """Whether `fstype` is listed in /proc/filesystems (False when unreadable)."""

    def sysctl(self, name: str) -> str | None:
        """Value of sysctl `name` (dotted), or None when it does not exist ("" when unreadable)."""

    def writable(self, path: str) -> tuple[str, str]:
        """Whether `path` can be opened for writing (nothing is written): ("ok" | "missing",
        evidence); an absent path is "missing"."""

    def path_state(self, path: str, *, readable_dir: bool = False) -> tuple[str, str]:
        """Whether a device/file exists (and, with readable_dir, can be listed): ("ok" | "missing",
        evidence); an absent path is "missing"."""

    def forward_policy(self) -> tuple[str, str]:
        """The iptables FORWARD chain policy (filter table): "missing" when it is DROP, "ok"
        otherwise, "unknown" without iptables or when it cannot be read."""
