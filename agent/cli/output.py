"""Rendering for the CLIs: aligned tables for people, JSON for scripts."""
from __future__ import annotations

import json
import os
import sys
from typing import Iterable, Sequence

from google.protobuf import json_format
from google.protobuf.message import Message

from agent import validation
from agent.errors import InvalidArgument


def reader_went_away() -> int:
    """For a BrokenPipeError on stdout (`devcloudctl capabilities | head`): point stdout at
    /dev/null so the exit flush stays quiet, and return 141 (what a SIGPIPE death reports)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


def to_dict(msg: Message) -> dict:
    """A message as a dict with proto field names and default values kept."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def print_json(msg: Message | dict, out=None) -> None:
    out = out or sys.stdout
    print(json.dumps(to_dict(msg) if isinstance(msg, Message) else msg, indent=2), file=out)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], out=None) -> None:
    """Print an aligned table; cells are str()-ed, None shows as '-'."""
    out = out or sys.stdout
    cells = [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip(), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)


def kv(pairs: Iterable[tuple[str, object]], out=None) -> None:
    """Print key: value lines aligned on the colon."""
    out = out or sys.stdout
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        print(f"{k.ljust(width)}  {v}", file=out)


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def size_arg(text: str | None) -> int:
    """A size flag as people write it ("10G", "512MiB"; empty -> 0); exits naming the problem."""
    if not text:
        return 0
    try:
        return validation.size_bytes("size", text, minimum=0)
    except InvalidArgument as exc:
        raise SystemExit(f"devcloudctl: {exc.message}") from None


def print_host_facts(f, out=None) -> None:
    out = out or sys.stdout
    k, c, n = f.kvm, f.cgroup, f.node
    kv([("node", f"{n.hostname}: {n.os}, kernel {n.kernel_release} ({n.architecture})"),
        ("cpu", f"{n.cpus} x {n.cpu_model or 'unknown'}"),
        ("memory", f"{human_bytes(n.memory_bytes)} total, {human_bytes(n.memory_available_bytes)} available"),
        ("kvm usable", yes(k.usable) + ("" if k.usable else f" ({k.device_error})")),
        ("kvm device", f"present={yes(k.device_present)} openable={yes(k.device_openable)} "
                       f"api={k.api_version} create_vm={yes(k.create_vm_works)} "
                       f"vcpus recommended={k.recommended_vcpus} max={k.max_vcpus}"),
        ("cpu virt flag", k.cpu_virt_flag or "none (vmx/svm absent; the device check decides)"),
        ("nested", k.nested or "-"),
        ("devices", f"tun={yes(k.net_tun)} vhost-net={yes(k.vhost_net)} vhost-vsock={yes(k.vhost_vsock)}"),
        ("hugepages", f"{k.hugepages.total} x {human_bytes(k.hugepages.page_size_bytes)} ({k.hugepages.free} free)"),
        ("iommu groups", k.iommu_groups),
        ("cgroup", f"{c.mode} at {c.v2_mount or '-'}; v2 controllers: {' '.join(c.controllers_available) or '-'}"),
        ("cgroup subtree", f"{c.agent_subtree or '-'}; delegated: {' '.join(c.controllers_delegated) or '-'}"),
        ("cgroup v1", " ".join(c.v1_controllers) or "-")], out=out)


_STATUS_NAMES = {0: "?", 1: "ok", 2: "MISSING", 3: "unknown"}


def print_preflight(r, out=None) -> None:
    out = out or sys.stdout
    table(["check", "status", "reason", "remedy"],
          [(c.id, _STATUS_NAMES.get(c.status, "?"), c.reason, "" if c.status == 1 else c.remedy)
           for c in r.checks], out=out)
    missing = sum(1 for c in r.checks if c.status == 2)
    print(f"\npreflight {'passed' if r.passed else f'failed: {missing} missing'}", file=out)
