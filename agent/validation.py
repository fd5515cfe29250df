"""Edge validators shared by all planes.

Each checks against the strictest consumer of the value (IFNAMSIZ for
netdevs, ZFS component rules, cgroup path components, OVN ACL match strings)
and raises InvalidArgument naming the request field. Servicers call these
before converting a request; services and drivers may assume valid input.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Container

from agent.errors import FieldViolation, InvalidArgument
from agent.model.compute import (CPU_PERIOD_MAX_US, CPU_PERIOD_MIN_US, CPU_QUOTA_MAX_US, CPU_QUOTA_MIN_US,
                                  IO_BOUND_MAX, IO_KEYS, MAX, MEMORY_MAX_BYTES, PIDS_MAX_LIMIT, WEIGHT_MAX,
                                  WEIGHT_MIN, HostFacts, Limits, format_cpulist, parse_cpulist)

# Our own resource names: lower-case DNS-label-like, safe in every consumer
# (ZFS component, cgroup dir, OVN name inside ACL match, netdev suffix).
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NETDEV_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGTP]i?B?|B)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
IFNAMSIZ = 15


def name(field: str, value: str, *, max_len: int = 63) -> str:
    """A resource name: 1..max_len chars of [a-z0-9-], not starting/ending with '-'."""
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    if len(value) > max_len:
        raise InvalidArgument.for_field(field, f"must be at most {max_len} characters, got {len(value)}")
    if not NAME_RE.fullmatch(value):
        raise InvalidArgument.for_field(
            field, f"{value!r} must be lower-case letters, digits and '-', starting and ending "
                   "with a letter or digit")
    return value


def optional_name(field: str, value: str, *, max_len: int = 63) -> str:
    """Like name() but empty is allowed (means: not set)."""
    return name(field, value, max_len=max_len) if value else ""


def netdev(field: str, value: str, *, prefix: str = "") -> str:
    """A Linux interface name: 1..15 bytes (IFNAMSIZ-1), no '/', ':' or spaces."""
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    if len(value.encode()) > IFNAMSIZ:
        raise InvalidArgument.for_field(field, f"{value!r} is longer than {IFNAMSIZ} bytes (IFNAMSIZ)")
    if not NETDEV_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidArgument.for_field(field, f"{value!r} may only hold letters, digits, '_', '.', '-'")
    if prefix and not value.startswith(prefix):
        raise InvalidArgument.for_field(field, f"{value!r} must start with {prefix!r}")
    return value


def path_component(field: str, value: str) -> str:
    """A single path component (cgroup dir, file name): no '/', NUL, '.', '..'."""
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    if "/" in value or "\0" in value or value in (".", "..") or len(value.encode()) > 255:
        raise InvalidArgument.for_field(field, f"{value!r} must be a single path component")
    return value


def mac(field: str, value: str) -> str:
    """A unicast MAC address, returned lower-case."""
    v = value.lower()
    if not MAC_RE.fullmatch(v):
        raise InvalidArgument.for_field(field, f"{value!r} is not a MAC address like 0a:58:0a:00:00:05")
    if int(v[:2], 16) & 1:
        raise InvalidArgument.for_field(field, f"{value!r} is a multicast MAC address")
    if v == "00:00:00:00:00:00":
        raise InvalidArgument.for_field(field, "the all-zero MAC address is not allowed")
    return v


def cidr(field: str, value: str, *, version: int | None = None,
         ) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network in CIDR notation with host bits zero (10.0.0.0/24)."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidArgument.for_field(field, f"{value!r} is not a network in CIDR notation: {exc}")
    if version and net.version != version:
        raise InvalidArgument.for_field(field, f"{value!r} is not an IPv{version} network")
    return net


def ip_in(field: str, value: str, network) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address inside `network`, not its network or broadcast address."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{value!r} is not an IP address")
    if addr not in network:
        raise InvalidArgument.for_field(field, f"{value} is outside the subnet {network}")
    if network.version == 4 and network.prefixlen < 31 and addr in (
            network.network_address, network.broadcast_address):
        raise InvalidArgument.for_field(field, f"{value} is the network or broadcast address of {network}")
    return addr


def size_bytes(field: str, value: str | int, *, minimum: int = 1,
               maximum: int | None = None) -> int:
    """A size as bytes (int) or a string with binary units: '512M', '10GiB'."""
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE_RE.fullmatch(value or "")
        if not m:
            raise InvalidArgument.for_field(field, f"{value!r} is not a size like 1073741824, 512M or 10GiB")
        unit = (m.group(2) or "").upper().replace("IB", "").replace("B", "") if m.group(2) else ""
        n = int(m.group(1)) * _SIZE_UNITS[unit]
    if n < minimum:
        raise InvalidArgument.for_field(field, f"must be at least {minimum} bytes, got {n}")
    if maximum is not None and n > maximum:
        raise InvalidArgument.for_field(field, f"must be at most {maximum} bytes, got {n}")
    return n


def ovn_safe(field: str, value: str) -> str:
    """A string that ends up inside an OVN ACL match: no quotes, operators or spaces."""
    if not value or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,63}", value):
        raise InvalidArgument.for_field(
            field, f"{value!r} may only hold letters, digits, '_', '.', ':', '-' (it is used in OVN match expressions)")
    return value


def labels(field: str, value: dict[str, str], *, max_items: int = 64) -> dict[str, str]:
    """Free-form key/value labels: bounded count and lengths, printable keys."""
    if len(value) > max_items:
        raise InvalidArgument.for_field(field, f"at most {max_items} labels, got {len(value)}")
    for k, v in value.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,62}", k):
            raise InvalidArgument.for_field(f"{field}[{k!r}]", "label keys are 1-63 chars of letters, digits, '_./-'")
        if len(v) > 253 or any(ord(c) < 32 for c in v):
            raise InvalidArgument.for_field(f"{field}[{k!r}]", "label values are at most 253 printable characters")
    return dict(value)


def enum(field: str, value: int, allowed: Container[int]) -> int:
    """A protobuf enum value: must be one of the known numbers (proto3 enums are open)."""
    if value not in allowed:
        raise InvalidArgument.for_field(field, f"unknown value {value}")
    return value


def ip_address(field: str, value: str, *, version: int | None = None):
    """A single IP address (no prefix), optionally of one version."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument.for_field(field, f"{value!r} is not an IP address")
    if version and addr.version != version:
        raise InvalidArgument.for_field(field, f"{value!r} is not an IPv{version} address")
    return addr


_NETNS_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NETNS_PATH_RE = re.compile(r"^/(proc/[0-9]+(/task/[0-9]+)?/ns/net|(var/)?run/netns/[A-Za-z0-9_.-]{1,64})$")


def netns_ref(field: str, value: str) -> str:
    """A network namespace: a name under /run/netns, or /proc/<pid>/ns/net, or /run/netns/<name>."""
    if value in (".", "..") or not (_NETNS_NAME_RE.fullmatch(value) or _NETNS_PATH_RE.fullmatch(value)):
        raise InvalidArgument.for_field(
            field, f"{value!r} must be a netns name (letters, digits, '_.-') or /proc/<pid>/ns/net or /run/netns/<name>")
    return value


def int_range(field: str, value: int, lo: int, hi: int, *, zero_ok: bool = True) -> int:
    """An integer within [lo, hi] (0 also allowed when zero_ok: 'not set')."""
    if (value == 0 and zero_ok) or lo <= value <= hi:
        return value
    raise InvalidArgument.for_field(field, f"must be between {lo} and {hi}{' (or 0)' if zero_ok else ''}, got {value}")


def cgroup_name(field: str, value: str) -> str:
    """A team/instance name that becomes a cgroup directory: name() rules, one path
    component, and matched in full (NAME_RE's '$' alone would let a trailing newline through)."""
    name(field, value)
    path_component(field, value)
    if not NAME_RE.fullmatch(value):
        raise InvalidArgument.for_field(field, f"{value!r} must be lower-case letters, digits and '-'")
    return value


# -- storage plane ---------------------------------------------------------------

IMAGE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def image_id(field: str, value: str) -> str:
    """An image id: 1-63 of [a-z0-9._-], starting with a letter or digit, no '..' (a ZFS dataset component)."""
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    if not IMAGE_ID_RE.fullmatch(value) or ".." in value:
        raise InvalidArgument.for_field(field, f"{value[:80]!r} must be 1-63 of a-z, 0-9, '.', '_', '-', "
                                               "starting with a letter or digit")
    return value


def sha256_hex(field: str, value: str, *, required: bool = True) -> str:
    """A sha256 digest as 64 hex digits (returned lower-case); '' allowed if not required."""
    if not value and not required:
        return ""
    v = value.strip().lower()
    if not SHA256_RE.fullmatch(v):
        raise InvalidArgument.for_field(field, "must be a sha256 digest of 64 hex digits")
    return v


def absolute_path(field: str, value: str) -> str:
    """An absolute, normalized file path on the node (no '..', NUL or '//')."""
    if not value.startswith("/") or "\0" in value or "/../" in value + "/" or "//" in value or len(value) > 4096:
        raise InvalidArgument.for_field(field, f"{value[:80]!r} must be an absolute path without '..'")
    return value


# -- compute plane ---------------------------------------------------------------

BLOCK_DEVICE_RE = re.compile(r"^(\d{1,10}):(\d{1,10})$")


def limit_violations(limits: Limits, host: HostFacts, prefix: str = "limits") -> list[FieldViolation]:
    """Every range and host check of cgroup limits that fails (kernel bounds, online
    CPUs and memory nodes, whole block devices, hugepage sizes); [] when all pass.
    Field names follow the proto below `prefix` (limits.cpu.quota_us, spec.limits.io.devices[0].rbps)."""
    bad: list[FieldViolation] = []

    def err(path: str, msg: str) -> None:
        bad.append(FieldViolation(f"{prefix}.{path}", msg))

    def bound(path: str, v: object, lo: int, hi: int, allow_max: bool = True) -> None:
        if v is None:
            return
        if v == MAX:
            if not allow_max:
                err(path, "\"max\" is not allowed here")
            return
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            alt = ' or "max"' if allow_max else ""
            err(path, f"must be between {lo} and {hi}{alt}, got {v!r}")

    if limits.cpu:
        c = limits.cpu
        bound("cpu.quota_us", c.quota_us, CPU_QUOTA_MIN_US, CPU_QUOTA_MAX_US)
        bound("cpu.period_us", c.period_us, CPU_PERIOD_MIN_US, CPU_PERIOD_MAX_US, allow_max=False)
        bound("cpu.weight", c.weight, WEIGHT_MIN, WEIGHT_MAX, allow_max=False)
    if limits.memory:
        for f in ("max", "high", "low", "swap_max"):
            bound(f"memory.{f}", getattr(limits.memory, f), 0, MEMORY_MAX_BYTES)
    if limits.pids:
        bound("pids.max", limits.pids.max, 0, PIDS_MAX_LIMIT)
    if limits.io:
        bound("io.weight", limits.io.weight, WEIGHT_MIN, WEIGHT_MAX, allow_max=False)
        seen = set()
        for i, d in enumerate(limits.io.devices):
            p = f"io.devices[{i}]"
            if not BLOCK_DEVICE_RE.match(d.device or ""):
                err(f"{p}.device", f"{d.device!r} is not a block device number like 8:0")
            elif d.device in seen:
                err(f"{p}.device", f"device {d.device} is listed twice")
            else:
                seen.add(d.device)
                kind = host.block_device(d.device)
                if kind == "missing":
                    err(f"{p}.device", f"no block device {d.device} on this node (/sys/dev/block/{d.device})")
                elif kind == "partition":
                    err(f"{p}.device", f"{d.device} is a partition; io limits apply to whole disks")
            for k in IO_KEYS:
                bound(f"{p}.{k}", getattr(d, k), 1, IO_BOUND_MAX)
            bound(f"{p}.weight", d.weight, WEIGHT_MIN, WEIGHT_MAX, allow_max=False)
    if limits.cpuset:
        for f, online, what in (("cpus", host.online_cpus, "CPUs"), ("mems", host.online_mems, "memory nodes")):
            v = getattr(limits.cpuset, f)
            if v is None:
                continue
            try:
                ids = parse_cpulist(v)
            except ValueError as exc:
                err(f"cpuset.{f}", str(exc))
                continue
            extra = ids - online
            if extra:
                err(f"cpuset.{f}", f"{format_cpulist(extra)} not among this node's online {what} "
                                   f"({format_cpulist(online)})")
    seen_sizes = set()
    for i, h in enumerate(limits.hugetlb):
        p = f"hugetlb[{i}]"
        if h.page_size not in host.hugepage_sizes:
            err(f"{p}.page_size", f"{h.page_size!r} is not a hugepage size of this node "
                                  f"({', '.join(host.hugepage_sizes) or 'none'})")
        elif h.page_size in seen_sizes:
            err(f"{p}.page_size", f"{h.page_size} is listed twice")
        seen_sizes.add(h.page_size)
        bound(f"{p}.max", h.max, 0, MEMORY_MAX_BYTES)
    return bad
