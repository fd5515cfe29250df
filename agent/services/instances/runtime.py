"""What a runtime needs from an observed instance, as data (proto Runtime): per NIC
the netdev it takes and the namespace that netdev is in now, MAC, MTU,
addresses, gateway and DNS (what the network's DHCP hands out); the rootfs or
the VM's disk; the cgroups below the scope where it puts its processes; the
uid/gid map. examples/runtimes.md maps every field to an LXC config line or a
QEMU argument; `devcloudctl instance lxc-config` / `qemu-args` render them.

Built from the observed parts plus cached reads (the network's marks in the NB
cache, the compute plane's pure placement): no extra kernel round trips.
"""
from __future__ import annotations

import ipaddress
import os

from agent.errors import AgentError
from agent.services.instances.model import (KIND_VM, PLACE_AGENT, PLACE_HOST, PLACE_NETNS, Instance, Runtime,
                                            RuntimeNic)
from agent.services.instances.planes import PlaneSet
from agent.services.network.model import BACKEND_OVN, KIND_TAP, KIND_VETH, Network
from agent.services.storage.model import VolumeKind

NETNS_DIR = "/run/netns"


def _with_prefix(ip: str, subnet: str) -> str:
    if not ip or not subnet:
        return ""
    return f"{ip}/{ipaddress.ip_network(subnet).prefixlen}"


def build(planes: PlaneSet, inst: Instance) -> Runtime:
    """The runtime view of an observed instance (parts that are missing, or a network whose
    NB rows cannot be read now, give empty fields). Read-only: caches and pure lookups; never
    raises for a plane."""
    spec, names = inst.spec, inst.names
    host_end, own = planes.network.netns_paths()
    nets: dict[str, Network | None] = {}
    observed = {n.nic: n.port for n in inst.nics}
    nics = []
    for nic, nn in zip(spec.nics, names.nics):
        if nic.network not in nets:
            try:
                nets[nic.network] = planes.network.find_network(nic.network)
            except AgentError:             # NB unreachable: the rest of the view still helps
                nets[nic.network] = None
        net = nets[nic.network]
        port = observed.get(nic.name)
        alloc = inst.allocations.get(nic.name)
        where = planes.placement(spec, nic)
        if spec.kind == KIND_VM:
            netdev, netns = nn.host, host_end
        elif where == PLACE_NETNS:
            netdev = nn.peer
            netns = nic.peer_netns if nic.peer_netns.startswith("/") else os.path.join(NETNS_DIR, nic.peer_netns)
        elif where == PLACE_HOST:
            netdev, netns = nn.peer, own
        else:
            netdev, netns = nn.peer, host_end
        ip4 = (port.ip4 if port else "") or (alloc.ip4 if alloc else "") or nic.ip4
        ip6 = (port.ip6 if port else "") or (alloc.ip6 if alloc else "") or nic.ip6
        nics.append(RuntimeNic(
            name=nic.name, kind=KIND_TAP if spec.kind == KIND_VM else KIND_VETH, netdev=netdev, netns=netns,
            host_netns=planes.network.is_host_netns(netns), placement=where or PLACE_AGENT,
            mac=(port.mac if port else "") or (alloc.mac if alloc else "") or nic.mac,
            mtu=(port.mtu if port else 0) or nic.mtu or (net.mtu if net else 0),
            ip4=_with_prefix(ip4, net.subnet4 if net else ""), ip6=_with_prefix(ip6, net.subnet6 if net else ""),
            gateway4=net.gateway4 if net else "", dns_servers=tuple(net.dns_servers) if net else (),
            dhcp=bool(net and net.backend == BACKEND_OVN and net.subnet4),
            configured=where == PLACE_NETNS and spec.kind != KIND_VM, queues=nic.queues, host_netdev=nn.host))
    v = inst.volume
    rootfs = v.rootfs if v is not None else ""
    disk = ""
    if v is not None and v.kind in (VolumeKind.BLOCK, VolumeKind.DISK_FILE):
        disk = v.device or v.disk_file
    cg = planes.compute.runtime_placement(spec.team, spec.id)
    return Runtime(nics=tuple(nics), rootfs=rootfs, disk=disk,
                   disk_is_file=bool(v is not None and v.kind == VolumeKind.DISK_FILE),
                   idmap_mode=v.idmap_mode if v is not None else "",
                   image_metadata_dir=v.mountpoint if v is not None and rootfs and rootfs != v.mountpoint else "",
                   cgroup=cg.cgroup, cgroup_path=cg.path, payload_cgroup=cg.payload, monitor_cgroup=cg.monitor,
                   idmap=spec.idmap)
