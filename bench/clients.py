"""Client processes driving the agent over gRPC, like controllers would.

A ClientPool starts N worker processes once (spawn: no gRPC state crosses a
fork); each keeps one channel to the agent and one to the echo server.
`run(batches)` hands batch i to worker i with a common start time
(CLOCK_MONOTONIC is system-wide), and returns every op's timing.

An op is a tuple: ("prepare", id, team, network, wait_ready), ("release", id),
("release_team", team), ("release_ids", [ids]), ("get", id), ("list", team),
("probe",), ("echo",). A result is (op, key, t_start, seconds, code, extra).
"""
from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass

CALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class Template:
    """What every prepared instance looks like besides its id/team/network."""

    image: str
    refquota_bytes: int = 1 << 30
    hugetlb: tuple[tuple[str, str], ...] = ()    # (page size, max) written into the scope, if available
    ready_timeout_ms: int = 60000
    nics: int = 1                                # NICs per instance (eth0, eth1, ...) on the team network


def _spec(pb, cpb, tpl: Template, iid: str, team: str, network: str):
    limits = cpb.Limits(hugetlb=[cpb.HugetlbLimit(page_size=p, max=m) for p, m in tpl.hugetlb])
    return pb.InstanceSpec(id=iid, team=team, kind=pb.INSTANCE_KIND_CONTAINER,
                           root=pb.RootVolumeSpec(image_id=tpl.image, refquota_bytes=tpl.refquota_bytes),
                           nics=[pb.NicSpec(name=f"eth{i}", network=network) for i in range(tpl.nics)],
                           limits=limits)


def _worker(idx: int, socket: str, echo_socket: str, tpl: Template, conn) -> None:
    import grpc

    from agent._proto.devcloud.agent.v1 import compute_pb2 as cpb
    from agent._proto.devcloud.agent.v1 import identity_pb2, identity_pb2_grpc
    from agent._proto.devcloud.agent.v1 import instance_pb2 as pb
    from agent._proto.devcloud.agent.v1 import instance_pb2_grpc
    from bench import echo

    ch = grpc.insecure_channel(f"unix:{socket}")
    ech = grpc.insecure_channel(f"unix:{echo_socket}") if echo_socket else None
    inst = instance_pb2_grpc.InstanceServiceStub(ch)
    ident = identity_pb2_grpc.IdentityServiceStub(ch)
    echo_call = echo.call(ech) if ech else None
    kw = {"timeout": CALL_TIMEOUT, "wait_for_ready": True}

    def do(op):
        kind = op[0]
        if kind == "prepare":
            _, iid, team, net, wait_ready = op
            r = inst.PrepareInstance(pb.PrepareInstanceRequest(
                spec=_spec(pb, cpb, tpl, iid, team, net), wait_ready=wait_ready,
                ready_timeout_ms=tpl.ready_timeout_ms), **kw)
            return iid, {"ready": r.instance.ready, "changed": r.changed}
        if kind == "release":
            r = inst.ReleaseInstance(pb.ReleaseInstanceRequest(id=op[1]), **kw)
            return op[1], {"released": r.released}
        if kind == "release_team":
            r = inst.ReleaseInstances(pb.ReleaseInstancesRequest(team=op[1]), **kw)
            return op[1], _bulk(r)
        if kind == "release_ids":
            r = inst.ReleaseInstances(pb.ReleaseInstancesRequest(ids=op[1]), **kw)
            return f"{len(op[1])} ids", _bulk(r)
        if kind == "get":
            r = inst.GetInstance(pb.GetInstanceRequest(id=op[1]), **kw)
            return op[1], {"ready": r.instance.ready}
        if kind == "list":
            r = inst.ListInstances(pb.ListInstancesRequest(team=op[1]), **kw)
            return op[1], {"count": len(r.instances)}
        if kind == "probe":
            r = ident.Probe(identity_pb2.ProbeRequest(), **kw)
            return "", {"ready": r.ready}
        if kind == "info":
            ident.GetAgentInfo(identity_pb2.GetAgentInfoRequest(), **kw)
            return "", {}
        if kind == "echo":
            echo_call(b"x" * 16, **kw)
            return "", {}
        raise ValueError(f"unknown op {kind!r}")

    def _bulk(r):
        return {"released": sum(x.released for x in r.results),
                "failed": [(x.id, x.code, x.message) for x in r.results if x.code][:5]}

    conn.send(("up", idx))
    while True:
        msg = conn.recv()
        if msg is None:
            break
        start_at, ops = msg
        delay = start_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        out = []
        for op in ops:
            t0 = time.monotonic()
            code, key, extra = "OK", str(op[1]) if len(op) > 1 else "", {}
            try:
                key, extra = do(op)
            except grpc.RpcError as exc:
                code, extra = exc.code().name, {"message": (exc.details() or "")[:300]}
            out.append((op[0], key, t0, time.monotonic() - t0, code, extra))
        conn.send(out)
    ch.close()
    if ech:
        ech.close()


class ClientPool:
    """N client processes; run() gives batch i to worker i, all starting together."""

    def __init__(self, n: int, socket: str, echo_socket: str, template: Template) -> None:
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(i, socket, echo_socket, template, child), daemon=True,
                            name=f"bench-client-{i}")
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        for c in self.conns:
            if not c.poll(120):
                raise RuntimeError("a bench client process did not come up within 120 s")
            c.recv()

    def __len__(self) -> int:
        return len(self.conns)

    def run(self, batches: list[list[tuple]], lead: float = 0.05) -> tuple[list[tuple], float]:
        """Run batch i on worker i; returns (all results, wall seconds from the common start
        to the last op's end)."""
        if len(batches) > len(self.conns):
            raise ValueError(f"{len(batches)} batches for {len(self.conns)} clients")
        start_at = time.monotonic() + lead
        used = [c for c, b in zip(self.conns, batches) if b]
        for c, b in zip(self.conns, batches):
            if b:
                c.send((start_at, b))
        results = []
        for c in used:
            results.extend(c.recv())
        end = max((r[2] + r[3] for r in results), default=start_at)
        return results, end - start_at

    def one(self, op: tuple, worker: int = 0) -> tuple:
        """One op on one worker, now; returns its result."""
        batches: list[list[tuple]] = [[] for _ in range(worker + 1)]
        batches[worker] = [op]
        return self.run(batches, lead=0.0)[0][0]

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except OSError:
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)


def split(ops: list[tuple], n: int) -> list[list[tuple]]:
    """Round-robin `ops` into n batches."""
    return [ops[i::n] for i in range(n)]
