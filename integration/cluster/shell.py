"""Bring a cluster up by hand, look around, bring it down (Enter, Ctrl-C or SIGTERM).

    cd /work/main && .venv/bin/python -m integration.cluster.shell [--raft] [--nodes 3] [--no-chassis] [--agents]

Prints the namespaces, sockets and remotes; e.g. in another shell:
    nsenter --net=/run/netns/<prefix>-c1 -- ovn-sbctl --db=<sb remotes> show
    ovs-appctl -t <state dir>/n1/vswitchd.ctl dpctl/dump-flows
Everything it started is stopped by PID when it exits.
"""
from __future__ import annotations

import argparse
import signal
import sys

from integration.cluster.harness import Cluster


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m integration.cluster.shell")
    ap.add_argument("--raft", action="store_true", help="NB/SB as 3-member Raft clusters")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--no-chassis", action="store_true", help="leave the chassis external_ids to an agent")
    ap.add_argument("--keep-dir", action="store_true", help="keep the state dir (logs) after down")
    ap.add_argument("--agents", action="store_true", help="a network-only devcloud-agent in every node's netns")
    a = ap.parse_args(argv)
    c = Cluster(nodes=a.nodes, raft=a.raft, chassis=not a.no_chassis, keep_dir=a.keep_dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))        # -> finally: down()
    agents: list = []
    try:
        c.up()
        if a.agents:
            from integration.cluster.agents import NodeAgent, start_all
            agents = [NodeAgent(c, n) for n in c.nodes]
            start_all(agents)
            for ag in agents:
                print(f"agent       {ag.node.name}: devcloudctl --socket {ag.socket} chassis   (log {ag.log_path})")
        print(f"state dir   {c.dir}\nprefix      {c.prefix}\nNB          {c.nb_remotes}\nSB          {c.sb_remotes}")
        print(f"central ns  {', '.join(c.central_ns(k) for k in c.members)}   (run TCP clients there)")
        for n in c.nodes:
            print(f"{n.name:<11} netns {n.netns}  ovs {n.ovs_remote}  encap {n.encap_ip}  mgmt {n.mgmt_ip}")
        print("timings     " + ", ".join(f"{k} {v:.3f}s" for k, v in c.timings.items()))
        print("Enter (or Ctrl-C) brings it down.", flush=True)
        try:
            sys.stdin.readline()
        except KeyboardInterrupt:
            pass
    finally:
        if agents:
            from integration.cluster.agents import stop_all
            stop_all(agents)
        r = c.down()
        print(f"down in {r.get('seconds', 0):.3f}s" + (f", SIGKILLed {r['killed']}" if r.get("killed") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
