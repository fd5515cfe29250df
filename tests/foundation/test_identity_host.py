"""Identity and host facts over a real gRPC channel (unix socket), checked
against independent reads of /dev/kvm, /proc and /sys."""
from __future__ import annotations

import fcntl
import os
import platform
import stat

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agent._proto.devcloud.agent.v1 import host_pb2, host_pb2_grpc, identity_pb2, identity_pb2_grpc


def test_socket_is_0660(agent):
    st = os.stat(agent.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_agent_info(agent):
    r = identity_pb2_grpc.IdentityServiceStub(agent.channel).GetAgentInfo(identity_pb2.GetAgentInfoRequest())
    assert r.name == "devcloud-agent"
    assert r.api_version == "devcloud.agent.v1"
    assert r.node_name == "test-node"
    assert r.pid == os.getpid()
    assert r.started_at.seconds > 0


def test_probe_ready_after_start(agent):
    r = identity_pb2_grpc.IdentityServiceStub(agent.channel).Probe(identity_pb2.ProbeRequest())
    assert r.ready and list(r.pending) == []


def _independent_kvm_api() -> int:
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        return fcntl.ioctl(fd, 0xAE00, 0)
    finally:
        os.close(fd)


def test_capabilities_report_kvm_from_device(agent):
    r = identity_pb2_grpc.IdentityServiceStub(agent.channel).GetCapabilities(identity_pb2.GetCapabilitiesRequest())
    caps = {c.kind: c for c in r.capabilities}
    kvm = caps[identity_pb2.CAPABILITY_KIND_KVM]
    expected = os.path.exists("/dev/kvm") and _independent_kvm_api() == 12
    assert kvm.available == expected
    facility = {f.name: f for f in r.facilities}["kvm"]
    assert facility.available == expected
    if not expected:
        assert kvm.reason


def test_host_facts_match_independent_reads(agent):
    f = host_pb2_grpc.HostServiceStub(agent.channel).GetHostFacts(host_pb2.GetHostFactsRequest())
    assert f.kvm.device_present == os.path.exists("/dev/kvm")
    if f.kvm.device_present:
        assert f.kvm.api_version == _independent_kvm_api()
    flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    assert f.kvm.cpu_virt_flag == ("vmx" if "vmx" in flags else "svm" if "svm" in flags else "")
    assert f.kvm.net_tun == os.path.exists("/dev/net/tun")
    assert f.kvm.vhost_net == os.path.exists("/dev/vhost-net")
    assert f.node.cpus == len(os.sched_getaffinity(0)) or f.node.cpus == os.cpu_count()
    memtotal = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]) * 1024
    assert f.node.memory_bytes == memtotal
    assert f.node.kernel_release == platform.release()
    mounts = [l.split() for l in open("/proc/self/mounts")]
    cg2 = [m[1] for m in mounts if m[2] == "cgroup2"]
    assert (f.cgroup.v2_mount in cg2) if cg2 else f.cgroup.v2_mount == ""
    if cg2:
        assert list(f.cgroup.controllers_available) == open(f"{f.cgroup.v2_mount}/cgroup.controllers").read().split()


def test_kvm_usable_without_cpu_flags_is_reported_separately(agent):
    """On PVM hosts the device works while vmx/svm are absent: both facts are kept."""
    f = host_pb2_grpc.HostServiceStub(agent.channel).GetHostFacts(host_pb2.GetHostFactsRequest()).kvm
    assert f.usable == (f.create_vm_works and f.api_version == 12)
    if f.usable and not f.cpu_virt_flag:
        pre = host_pb2_grpc.HostServiceStub(agent.channel).Preflight(
            host_pb2.PreflightRequest(profile=host_pb2.PREFLIGHT_PROFILE_VM_HOST))
        checks = {c.id: c for c in pre.checks}
        assert checks["kvm.device"].status == host_pb2.CHECK_STATUS_OK
        assert checks["kvm.cpu-flags"].status == host_pb2.CHECK_STATUS_UNKNOWN
        assert "device works" in checks["kvm.cpu-flags"].reason


def test_preflight_kubernetes_items(agent):
    r = host_pb2_grpc.HostServiceStub(agent.channel).Preflight(
        host_pb2.PreflightRequest(profile=host_pb2.PREFLIGHT_PROFILE_KUBERNETES_IN_LXD))
    checks = {c.id: c for c in r.checks}
    for mod in ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_tables", "ip6_tables", "iptable_raw",
                "netlink_diag", "nf_nat", "overlay", "br_netfilter", "xt_socket"):
        assert f"module.{mod}" in checks
    for c in r.checks:
        assert c.status != host_pb2.CHECK_STATUS_UNSPECIFIED and c.reason
        if c.status != host_pb2.CHECK_STATUS_OK:
            assert c.remedy, c.id
    # Independent: /dev/kmsg and the overlay filesystem.
    assert (checks["dev.kmsg"].status == host_pb2.CHECK_STATUS_OK) == os.path.exists("/dev/kmsg")
    has_overlay = any(l.split()[-1] == "overlay" for l in open("/proc/filesystems"))
    assert (checks["fs.overlay"].status == host_pb2.CHECK_STATUS_OK) == has_overlay
    fwd = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    assert (checks["sysctl.net.ipv4.ip_forward"].status == host_pb2.CHECK_STATUS_OK) == (fwd == "1")
    assert r.passed == all(c.status != host_pb2.CHECK_STATUS_MISSING for c in r.checks)


def test_preflight_unknown_profile_is_invalid_argument_with_field(agent):
    with pytest.raises(grpc.RpcError) as e:
        host_pb2_grpc.HostServiceStub(agent.channel).Preflight(host_pb2.PreflightRequest(profile=77))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(e.value)
    infos, bad = [], []
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            infos.append(error_details_pb2.ErrorInfo())
            d.Unpack(infos[-1])
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad.append(error_details_pb2.BadRequest())
            d.Unpack(bad[-1])
    assert infos and infos[0].reason == "INVALID_ARGUMENT" and infos[0].domain == "devcloud.agent.v1"
    assert bad and bad[0].field_violations[0].field == "profile"
