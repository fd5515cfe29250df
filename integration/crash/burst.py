"""The random-kill harness's client: a separate process that fires one burst of
instance operations at the agent, all at once, and writes one JSON line per
acknowledged answer (flushed at once, so a line exists iff the agent answered).

    python -m integration.crash.burst <socket> <plan.json> <results.jsonl>

plan.json: {"image": "...", "ops": [{"op": "prepare", "id", "team", "refquota"},
{"op": "release", "id"}, {"op": "converge", "id", "team", "refquota"},
{"op": "release_team", "team"}]}. The first line written is {"start": <monotonic>}.
Only gRPC, like a controller; the agent may be killed at any moment.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import grpc

from agent._proto.devcloud.agent.v1 import instance_pb2 as ipb
from agent._proto.devcloud.agent.v1 import instance_pb2_grpc as ipb_grpc

CALL_TIMEOUT = 60.0


def instance_spec(op: dict, image: str) -> ipb.InstanceSpec:
    return ipb.InstanceSpec(id=op["id"], team=op["team"], kind=ipb.INSTANCE_KIND_CONTAINER,
                            root=ipb.RootVolumeSpec(image_id=image, refquota_bytes=op["refquota"]),
                            nics=[ipb.NicSpec(name="eth0", network=op["team"])])


def run_op(stub: ipb_grpc.InstanceServiceStub, op: dict, image: str) -> dict:
    """One operation; returns its acknowledged outcome (raises grpc.RpcError when unanswered)."""
    kind = op["op"]
    if kind in ("prepare", "converge"):
        stub.PrepareInstance(ipb.PrepareInstanceRequest(spec=instance_spec(op, image), wait=True),
                             timeout=CALL_TIMEOUT)
        return {"ok": True}
    if kind == "release":
        r = stub.ReleaseInstance(ipb.ReleaseInstanceRequest(id=op["id"], wait=True), timeout=CALL_TIMEOUT)
        return {"ok": True, "released": r.released}
    if kind == "release_team":
        r = stub.ReleaseInstances(ipb.ReleaseInstancesRequest(team=op["team"]), timeout=CALL_TIMEOUT)
        return {"ok": True, "results": [{"id": x.id, "released": x.released, "code": x.code} for x in r.results]}
    raise ValueError(f"unknown op {kind!r}")


def main(argv: list[str]) -> int:
    sock, plan_path, out_path = argv
    plan = json.loads(open(plan_path).read())
    out = open(out_path, "a", buffering=1)
    lock = threading.Lock()

    def write(obj: dict) -> None:
        with lock:
            out.write(json.dumps(obj) + "\n")
            out.flush()

    channel = grpc.insecure_channel(f"unix:{sock}")
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = ipb_grpc.InstanceServiceStub(channel)

    def worker(op: dict) -> None:
        try:
            res = run_op(stub, op, plan["image"])
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return                              # the agent died under it: not acknowledged
            res = {"ok": False, "code": exc.code().name, "detail": exc.details()}
        write({**op, **res, "at": time.monotonic()})

    threads = [threading.Thread(target=worker, args=(op,), daemon=True) for op in plan["ops"]]
    write({"start": time.monotonic()})
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write({"end": time.monotonic()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
