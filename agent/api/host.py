"""HostService servicer: validate -> call HostService -> convert."""
from __future__ import annotations

from agent import validation
from agent._proto.devcloud.agent.v1 import host_pb2 as pb
from agent._proto.devcloud.agent.v1 import host_pb2_grpc as pb_grpc
from agent.services.host import HostFacts, HostService, PreflightResult, Profile

_PROFILES = {pb.PREFLIGHT_PROFILE_UNSPECIFIED: Profile.ALL, pb.PREFLIGHT_PROFILE_ALL: Profile.ALL,
             pb.PREFLIGHT_PROFILE_KUBERNETES_IN_LXD: Profile.KUBERNETES_IN_LXD,
             pb.PREFLIGHT_PROFILE_VM_HOST: Profile.VM_HOST}
_PROFILE_TO_PB = {Profile.ALL: pb.PREFLIGHT_PROFILE_ALL,
                  Profile.KUBERNETES_IN_LXD: pb.PREFLIGHT_PROFILE_KUBERNETES_IN_LXD,
                  Profile.VM_HOST: pb.PREFLIGHT_PROFILE_VM_HOST}
_STATUS = {"ok": pb.CHECK_STATUS_OK, "missing": pb.CHECK_STATUS_MISSING, "unknown": pb.CHECK_STATUS_UNKNOWN}


def facts_to_pb(f: HostFacts) -> pb.GetHostFactsResponse:
    k, c, n = f.kvm, f.cgroup, f.node
    return pb.GetHostFactsResponse(
        kvm=pb.KvmFacts(
            device_present=k.device_present, device_openable=k.device_openable, api_version=k.api_version,
            recommended_vcpus=k.recommended_vcpus, max_vcpus=k.max_vcpus, create_vm_works=k.create_vm_works,
            device_error=k.device_error, cpu_virt_flag=k.cpu_virt_flag, nested=k.nested,
            vhost_net=k.vhost_net, vhost_vsock=k.vhost_vsock, net_tun=k.net_tun,
            hugepages=pb.Hugepages(page_size_bytes=k.hugepage_size_bytes, total=k.hugepages_total,
                                   free=k.hugepages_free),
            iommu_groups=k.iommu_groups, usable=k.usable),
        cgroup=pb.CgroupFacts(mode=c.mode, v2_mount=c.v2_mount, controllers_available=c.controllers_available,
                              controllers_delegated=c.controllers_delegated, agent_subtree=c.agent_subtree,
                              v1_controllers=c.v1_controllers),
        node=pb.NodeInventory(hostname=n.hostname, cpus=n.cpus, cpu_model=n.cpu_model,
                              memory_bytes=n.memory_bytes, memory_available_bytes=n.memory_available_bytes,
                              kernel_release=n.kernel_release, os=n.os, architecture=n.architecture,
                              uptime_seconds=n.uptime_seconds))


def preflight_to_pb(r: PreflightResult) -> pb.PreflightResponse:
    return pb.PreflightResponse(
        profile=_PROFILE_TO_PB[r.profile], passed=r.passed,
        checks=[pb.PreflightCheck(id=c.id, category=c.category, status=_STATUS[c.status],
                                  reason=c.reason, remedy=c.remedy) for c in r.checks])


class HostServicer(pb_grpc.HostServiceServicer):
    def __init__(self, service: HostService) -> None:
        self._svc = service

    def GetHostFacts(self, request, context):
        return facts_to_pb(self._svc.facts())

    def Preflight(self, request, context):
        validation.enum("profile", request.profile, _PROFILES)
        return preflight_to_pb(self._svc.preflight(_PROFILES[request.profile]))
