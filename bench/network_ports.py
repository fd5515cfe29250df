#!/usr/bin/env python3
"""Network plane bench: EnsurePort latency to `up` and team-network teardown,
through the agent's gRPC API (agent as a process, real OVN stack with the
userspace datapath), against the bare CLI doing the same work in the same run.

usage: .venv/bin/python bench/network_ports.py [--ports 200] [--baseline 50]
Prints tables; asserts nothing about timing.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent._proto.devcloud.agent.v1 import network_pb2 as pb  # noqa: E402
from agent._proto.devcloud.agent.v1 import network_pb2_grpc as pb_grpc  # noqa: E402
from tests.support.ovn import Tools, agent_overrides, start_stack, stop_stack  # noqa: E402
from tests.support.server import AgentProcess, temp_dir  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def row(label: str, ms: list[float]) -> str:
    return (f"{label:<44} n={len(ms):<4} p50={statistics.median(ms):7.1f} ms  p95={pct(ms, 95):7.1f} ms  "
            f"max={max(ms):7.1f} ms")


def bench_agent(stub, tools: Tools, stack, n: int, in_netns: bool) -> dict:
    net = "bench-a" if not in_netns else "bench-b"
    stub.EnsureNetwork(pb.EnsureNetworkRequest(spec=pb.NetworkSpec(name=net, subnet4="10.100.0.0/16")), timeout=30)
    ns = None
    if in_netns:
        ns = f"dcbench{int(time.time()) % 100000}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
    lat, waited, not_ready = [], [], 0
    try:
        for i in range(n):
            spec = pb.PortSpec(network=net, name=f"p{i}", instance=f"i{i}")
            if ns:
                spec.peer_netns, spec.peer_name = ns, f"eth{i}"
            start = time.perf_counter()
            r = stub.EnsurePort(pb.EnsurePortRequest(spec=spec, wait_ready=True), timeout=30)
            lat.append((time.perf_counter() - start) * 1000)
            waited.append(r.port.status.waited_seconds * 1000)
            not_ready += not r.port.status.ready
        before = len(tools.links(stack.netns))
        start = time.perf_counter()
        stub.DeleteNetwork(pb.DeleteNetworkRequest(name=net), timeout=120)
        teardown = (time.perf_counter() - start) * 1000
        after = len(tools.links(stack.netns))
        left = len(tools.nb_rows("Logical_Switch_Port", f"external_ids:devcloud-network={net}"))
    finally:
        if ns:
            subprocess.run(["ip", "netns", "del", ns])
    return {"lat": lat, "waited": waited, "not_ready": not_ready, "teardown": teardown,
            "netdevs_removed": before - after, "lsps_left": left}


def bench_cli(tools: Tools, stack, n: int) -> dict:
    """The same per-port work with the bare CLIs: ovn-nbctl, ip, ovs-vsctl, then
    ovn-nbctl wait-until up; teardown veth by veth + ls-del."""
    nb, ovs = f"--db={stack.nb_remote}", f"--db={stack.ovs_remote}"
    subprocess.run(["ovn-nbctl", nb, "ls-add", "cli-net"], check=True)
    lat = []
    for i in range(n):
        name, dev, mac, ip = f"cli-p{i}", f"clv{i}", f"0a:59:00:00:{i // 256:02x}:{i % 256:02x}", f"10.101.{i // 250}.{i % 250 + 2}"
        start = time.perf_counter()
        subprocess.run(["ovn-nbctl", nb, "lsp-add", "cli-net", name, "--", "lsp-set-addresses", name, f"{mac} {ip}",
                        "--", "lsp-set-port-security", name, f"{mac} {ip}"], check=True)
        subprocess.run(["ip", "-n", stack.netns, "link", "add", dev, "type", "veth", "peer", "name", dev + "p"],
                       check=True)
        subprocess.run(["ip", "-n", stack.netns, "link", "set", dev, "up"], check=True)
        subprocess.run(["ovs-vsctl", ovs, "add-port", "br-int", dev, "--", "set", "Interface", dev,
                        f"external_ids:iface-id={name}"], check=True)
        subprocess.run(["ovn-nbctl", nb, "--timeout=30", "wait-until", "Logical_Switch_Port", name, "up=true"],
                       check=True)
        lat.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    for i in range(n):
        subprocess.run(["ovs-vsctl", ovs, "del-port", "br-int", f"clv{i}"], check=True)
        subprocess.run(["ip", "-n", stack.netns, "link", "del", f"clv{i}"], check=True)
    subprocess.run(["ovn-nbctl", nb, "ls-del", "cli-net"], check=True)
    return {"lat": lat, "teardown": (time.perf_counter() - start) * 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, default=200)
    ap.add_argument("--baseline", type=int, default=-1, help="ports for the bare-CLI baseline (-1 = --ports, 0 = skip)")
    args = ap.parse_args()
    if args.baseline < 0:
        args.baseline = args.ports
    stack = start_stack(tag="bn")
    tools = Tools(stack)
    agent = AgentProcess(temp_dir(), overrides=agent_overrides(stack) + ["network.ovsdb_timeout=10"]).start()
    ch = agent.channel()
    stub = pb_grpc.NetworkServiceStub(ch)
    try:
        a = bench_agent(stub, tools, stack, args.ports, in_netns=False)
        b = bench_agent(stub, tools, stack, args.ports, in_netns=True)
        cli = bench_cli(tools, stack, args.baseline) if args.baseline else None
    finally:
        ch.close()
        agent.stop()
        stop_stack(stack)
    print(f"\nnetwork plane bench: {args.ports} ports per team network, agent over gRPC (unix socket)\n")
    print(row("EnsurePort(wait_ready) to up, peer in place", a["lat"]))
    print(row("  of which readiness wait (server side)", a["waited"]))
    buckets = [a["lat"][i:i + 50] for i in range(0, len(a["lat"]), 50)]
    print(f"{'  p50 by 50-port slice (peer in place)':<44} " +
          "  ".join(f"{i * 50}-{i * 50 + len(bk)}: {statistics.median(bk):.1f}" for i, bk in enumerate(buckets)))
    print(row("EnsurePort(wait_ready) to up, peer in netns", b["lat"]))
    print(row("  of which readiness wait (server side)", b["waited"]))
    if cli:
        print(row("bare CLI (nbctl+ip+vsctl+wait-until up)", cli["lat"]))
        print(f"{'ratio CLI p50 / agent p50':<44} {statistics.median(cli['lat']) / statistics.median(a['lat']):.1f}x")
    print()
    for label, r in (("peer in place", a), ("peer in netns", b)):
        print(f"DeleteNetwork, {args.ports} ports ({label}): {r['teardown']:.0f} ms "
              f"({r['teardown'] / args.ports:.2f} ms/port; netdevs removed {r['netdevs_removed']}, "
              f"NB ports left {r['lsps_left']}, not ready {r['not_ready']})")
    if cli:
        per = cli["teardown"] / args.baseline
        print(f"bare CLI teardown, {args.baseline} ports one by one: {cli['teardown']:.0f} ms ({per:.2f} ms/port; "
              f"~{per * args.ports:.0f} ms for {args.ports})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
