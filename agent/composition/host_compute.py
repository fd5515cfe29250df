"""Composition of the host and compute planes (drivers -> services -> servicers)."""
from __future__ import annotations

from agent._proto.devcloud.agent.v1 import compute_pb2_grpc, host_pb2_grpc
from agent.api.compute import ComputeServicer
from agent.api.host import HostServicer
from agent.api.server import Registration
from agent.composition import Planes, Step
from agent.config import Config
from agent.drivers.base import Availability
from agent.drivers.cgroup import CgroupDriver, resolve_root
from agent.drivers.kernel import KernelDriver
from agent.drivers.kvm import KvmDriver
from agent.metrics import Metrics
from agent.services.compute import ComputeService
from agent.services.host import HostService
from agent.services.identity import from_facility


def cgroup_subtree(cfg: Config) -> str:
    # The same resolution as the compute plane's driver (delegated own cgroup, or devcloud.slice).
    return resolve_root(cfg.compute.cgroup_root)


def build_host(cfg: Config, planes: Planes, metrics: Metrics) -> None:
    kvm, kernel = KvmDriver(), KernelDriver()
    host = HostService(kvm, kernel, cgroup_subtree=lambda: cgroup_subtree(cfg))
    planes.services.host = host
    planes.facilities["kvm"] = kvm.probe
    planes.capabilities["host_facts"] = lambda f: Availability.ok()
    planes.capabilities["kvm"] = from_facility("kvm")
    planes.registrations.append(Registration(
        "devcloud.agent.v1.HostService",
        lambda s: host_pb2_grpc.add_HostServiceServicer_to_server(HostServicer(host), s)))


def build_compute(cfg: Config, planes: Planes, metrics: Metrics) -> None:
    svc = ComputeService(CgroupDriver(metrics, root=cfg.compute.cgroup_root) if cfg.compute.enabled else None,
                         own_processes=planes.own_pids)
    planes.facilities["cgroup"] = svc.probe
    if cfg.compute.enabled:
        planes.services.compute = svc
    planes.capabilities["compute_cgroup_v2"] = from_facility("cgroup")
    if cfg.compute.enabled:
        planes.startup.append(Step("compute: sweep cgroup intents", svc.reconcile, plane="compute",
                                   gates=("compute_cgroup_v2",)))
    planes.registrations.append(Registration(
        "devcloud.agent.v1.ComputeService",
        lambda s: compute_pb2_grpc.add_ComputeServiceServicer_to_server(ComputeServicer(svc), s)))
