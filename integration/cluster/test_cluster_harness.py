"""Self-tests of the cluster harness: the simulated cloud carries real packets between nodes over
geneve, isolates teams, survives a Raft NB leader kill, and leaves nothing behind.

Everything is checked with independent tools (ovn-sbctl, ovn-nbctl, ovs-vsctl, ovs-appctl,
ping, a raw AF_PACKET socket on the underlay, `ip netns list`, /proc), never with the harness's
own bookkeeping alone. Traffic stays inside the namespaces the harness created.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from integration.cluster.procs import alive, pids_mentioning

TEAMS = {"team-a": ("10.20.0", "0a:00:00:20:00"), "team-b": ("10.21.0", "0a:00:00:21:00")}


def _ovsdb_rows(out: str) -> list[dict]:
    data = json.loads(out)
    return [dict(zip(data["headings"], row)) for row in data["data"]]


@pytest.fixture(scope="module")
def teams(standalone_cluster):
    """team-a and team-b switches joined by router lr0 (so only ACLs keep them apart), port groups
    with drop ACLs between the teams, one instance per team per node (aN = 10.20.0.1N, bN = 10.21.0.1N)."""
    c = standalone_cluster
    args = ["--may-exist", "lr-add", "lr0"]
    for team, (net, mac) in TEAMS.items():
        s = team[-1]
        args += ["--", "--may-exist", "ls-add", team,
                 "--", "lrp-add", "lr0", f"lr0-{s}", f"{mac}:01", f"{net}.1/24",
                 "--", "lsp-add", team, f"{s}-lr0", "--", "lsp-set-type", f"{s}-lr0", "router",
                 "--", "lsp-set-addresses", f"{s}-lr0", "router", "--", "lsp-set-options", f"{s}-lr0",
                 f"router-port=lr0-{s}"]
    c.nbctl(*args)
    insts = {}
    for i in range(1, c.n + 1):
        for team, (net, mac) in TEAMS.items():
            name = f"{team[-1]}{i}"
            insts[name] = c.add_instance_port(i, team, name, f"{mac}:{10 + i:02x}", f"{net}.{10 + i}/24",
                                              gateway=f"{net}.1")
    a = " ".join(n for n in insts if n.startswith("a"))
    b = " ".join(n for n in insts if n.startswith("b"))
    c.nbctl("pg-add", "pg_team_a", *a.split(), "--", "pg-add", "pg_team_b", *b.split())
    _isolate(c, True)
    c.wait_ports_up(*insts)
    return insts


def _isolate(c, on: bool) -> None:
    if on:
        c.nbctl("--wait=hv",
                "--", "acl-add", "pg_team_a", "to-lport", "1001", "outport == @pg_team_a && ip4.src == $pg_team_b_ip4", "drop",
                "--", "acl-add", "pg_team_b", "to-lport", "1001", "outport == @pg_team_b && ip4.src == $pg_team_a_ip4", "drop")
    else:
        c.nbctl("--wait=hv", "acl-del", "pg_team_a", "--", "acl-del", "pg_team_b")


def test_three_chassis_with_geneve_encaps(standalone_cluster, teams):
    c = standalone_cluster
    chassis = {r["name"]: r for r in _ovsdb_rows(c.sbctl("--format=json", "list", "Chassis"))}
    encaps = _ovsdb_rows(c.sbctl("--format=json", "--columns=chassis_name,type,ip", "list", "Encap"))
    assert sorted(chassis) == ["node1", "node2", "node3"]
    assert sorted((e["chassis_name"], e["type"], e["ip"]) for e in encaps) == [
        (f"node{i}", "geneve", f"192.168.50.{10 + i}") for i in (1, 2, 3)]
    for n in c.nodes:        # each node's own OVS: a geneve port to each other node's encap IP
        rows = _ovsdb_rows(n.vsctl("--format=json", "--columns=options", "find", "Interface", "type=geneve"))
        remotes = sorted(dict(r["options"][1])["remote_ip"] for r in rows)
        assert remotes == sorted(m.encap_ip for m in c.nodes if m is not n)
    # every instance port is bound on the node that plugged it
    binding = {r["logical_port"]: r["chassis"] for r in _ovsdb_rows(
        c.sbctl("--format=json", "--columns=logical_port,chassis", "find", "Port_Binding", "type=\"\""))}
    uuid_of = {r["_uuid"][1]: name for name, r in chassis.items()}
    for name, inst in teams.items():
        assert uuid_of[binding[name][1]] == inst.node.system_id


def test_same_team_across_nodes(standalone_cluster, teams, measure):
    pairs = [("a1", "a2"), ("a1", "a3"), ("a3", "a2"), ("b2", "b1"), ("b2", "b3"), ("b3", "b1")]
    with ThreadPoolExecutor(6) as ex:
        res = dict(zip(pairs, ex.map(lambda p: teams[p[0]].ping(teams[p[1]].ip, count=3, interval=0.1), pairs)))
    bad = {p: r.output for p, r in res.items() if not r.ok}
    assert not bad
    rtt = teams["a1"].ping(teams["a2"].ip, count=50, interval=0.02)
    assert rtt.ok
    measure("overlay ping RTT a1(node1)->a2(node2), 50 x 20 ms",
            f"min/avg/max {rtt.rtt_min}/{rtt.rtt_avg}/{rtt.rtt_max} ms")
    installed = sorted(i.installed_seconds for i in teams.values())
    measure("add-port -> ovn-installed (6 ports at setup, LSP created just before)",
            f"median {statistics.median(installed) * 1000:.0f} ms, max {installed[-1] * 1000:.0f} ms")


def test_across_teams_blocked_by_acl(standalone_cluster, teams):
    c = standalone_cluster
    blocked = [("a1", "b2"), ("a1", "b3"), ("b1", "a2"), ("b3", "a1")]
    with ThreadPoolExecutor(4) as ex:
        res = list(ex.map(lambda p: teams[p[0]].ping(teams[p[1]].ip, count=2, interval=0.2, wait=1), blocked))
    assert all(r.none for r in res), [r.output for r in res]
    assert teams["b1"].ping("10.21.0.1", count=1).ok          # the router is there
    _isolate(c, False)      # without the ACLs the same routed path works: the drop is the ACL
    try:
        r = teams["a1"].ping(teams["b2"].ip, count=3, interval=0.1)
        assert r.ok, r.output
    finally:
        _isolate(c, True)
    assert teams["b1"].ping(teams["a2"].ip, count=2, interval=0.2).none


SNIFF = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.bind((sys.argv[1], 0))
s.settimeout(0.1); print("ready", flush=True); end = time.time() + float(sys.argv[2]); seen = set()
while time.time() < end:
    try: f = s.recv(65535)
    except socket.timeout: continue
    if f[12:14] != b'\x08\x00' or f[23] != 17: continue
    u = 14 + (f[14] & 15) * 4
    if struct.unpack('!H', f[u+2:u+4])[0] != 6081: continue
    g = u + 8; ip = g + 8 + (f[g] & 63) * 4 + 14
    seen.add((socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34]), int.from_bytes(f[g+4:g+7], 'big'),
              socket.inet_ntoa(f[ip+12:ip+16]), socket.inet_ntoa(f[ip+16:ip+20])))
for t in sorted(seen): print(*t)
"""


def test_tunnel_is_used(standalone_cluster, teams):
    c = standalone_cluster
    sniff = c.popen([sys.executable, "-c", SNIFF, "ul-n2", "1.5"], netns=c.ul_ns, stdout=subprocess.PIPE,
                    text=True)
    assert sniff.stdout.readline().strip() == "ready"
    assert teams["a1"].ping(teams["a2"].ip, count=3, interval=0.1).ok
    flows = c.node(1).appctl("dpctl/dump-flows")
    out, _ = sniff.communicate(timeout=10)
    assert "tnl_push(" in flows and "tnl_pop(" in flows, flows
    assert "dst=6081" in flows
    frames = {tuple(line.split()) for line in out.splitlines()}
    # on the wire between node1 and node2: geneve, the inner addresses of the instances
    assert any(f[:2] == ("192.168.50.11", "192.168.50.12") and f[3:] == ("10.20.0.11", "10.20.0.12")
               for f in frames), frames
    assert any(f[:2] == ("192.168.50.12", "192.168.50.11") and f[3:] == ("10.20.0.12", "10.20.0.11")
               for f in frames), frames


def test_tcp_and_mtu_across_nodes(standalone_cluster, teams):
    c = standalone_cluster
    a1, a3 = teams["a1"], teams["a3"]
    payload = c.instance_mtu - 28
    assert a1.ping(a3.ip, count=2, interval=0.1, size=payload, df=True).ok        # instance MTU fits
    assert a1.ping(a3.ip, count=2, interval=0.1, size=payload + 1, df=True).none  # one more does not
    server = c.popen([sys.executable, "-c",
                      "import socket;s=socket.create_server(('%s',7000));print('ready',flush=True);"
                      "c,_=s.accept();n=0\nwhile (b:=c.recv(65536)): n+=len(b)\nc.sendall(str(n).encode());c.close()"
                      % a3.ip], netns=a3.netns, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    r = a1.run([sys.executable, "-c",
                "import socket;c=socket.create_connection(('%s',7000),timeout=5);c.sendall(b'x'*2000000);"
                "c.shutdown(socket.SHUT_WR);print(c.recv(64).decode())" % a3.ip], timeout=20)
    assert r.stdout.strip() == "2000000"
    server.wait(timeout=5)


def test_port_plug_latency_remote(standalone_cluster, teams, measure):
    """A port plugged on node3 (LSP already in NB/SB): add-port -> ovn-installed, and first reply
    to a 10 ms ping from a1 on node1."""
    c = standalone_cluster
    inst, first = [], []
    for k in range(3):
        name = f"p{k}"
        ip = f"10.20.0.{40 + k}"
        c.nbctl("--wait=sb", "lsp-add", "team-a", name, "--", "lsp-set-addresses", name, f"0a:00:00:20:00:{40 + k:02x} {ip}")
        pinger = subprocess.Popen(["nsenter", f"--net=/run/netns/{teams['a1'].netns}", "--", "ping", "-n", "-D",
                                   "-i", "0.01", "-W", "0.01", "-w", "5", ip], stdout=subprocess.PIPE, text=True)
        try:
            t0 = time.time()
            i = c.add_instance_port(3, "team-a", name, f"0a:00:00:20:00:{40 + k:02x}", ip, lsp=False)
            inst.append(i.installed_seconds)
            line = ""
            for line in pinger.stdout:
                if "bytes from" in line:
                    break
            first.append(float(line.split("]")[0].lstrip("[")) - t0 if "bytes from" in line else float("nan"))
        finally:
            pinger.kill()
            pinger.wait()
        c.remove_instance_port(name)
    measure("remote port plug: add-port -> ovn-installed", ", ".join(f"{x * 1000:.0f}" for x in inst) + " ms")
    measure("remote port plug: add-port -> first ping reply from node1", ", ".join(f"{x * 1000:.0f}" for x in first) + " ms")
    assert all(x == x for x in first), "a plugged port never answered"


def test_stop_start_chassis(standalone_cluster, teams):
    c = standalone_cluster
    n3 = c.node(3)
    old = n3.daemons["controller"].pid
    c.stop_chassis(3)
    assert not alive(old)
    assert "node3" in c.sbctl("--bare", "--columns=name", "list", "Chassis").split()  # SIGTERM: row stays
    assert teams["a1"].ping(teams["a3"].ip, count=2, interval=0.1).ok        # flows stay in vswitchd
    c.start_chassis(3)
    assert n3.daemons["controller"].pid != old
    deadline = time.monotonic() + 10
    while n3.appctl("connection-status", target="controller").strip() != "connected":
        assert time.monotonic() < deadline, "ovn-controller did not reconnect to the SB"
        time.sleep(0.05)
    c.nbctl("--wait=hv", "sync")
    assert teams["a3"].ping(teams["a1"].ip, count=2, interval=0.1).ok


# ------------------------------------------------------------------------ an agent on a node
def test_network_only_agent_on_standalone_central(standalone_cluster, teams, measure):
    """agents.py on the standalone central, storage and compute off (no pool needed): the agent
    in node2's netns sees its chassis healthy (the harness configured it) and the cluster."""
    from agent._proto.devcloud.agent.v1 import network_pb2 as npb
    from integration.cluster.agents import NodeAgent
    c = standalone_cluster
    a = NodeAgent(c, c.node(2))
    t = time.monotonic()
    a.start()
    try:
        ready = time.monotonic() - t
        health = a.network.GetChassis(npb.GetChassisRequest(), timeout=20).chassis.health
        assert health.healthy, [(k.name, k.detail) for k in health.checks if not k.ok]
        view = a.network.ListChassis(npb.ListChassisRequest(), timeout=20)
        assert [(x.name, x.local, x.tunnel) for x in view.chassis] == [
            ("node1", False, True), ("node2", True, False), ("node3", False, True)]
        assert {x.name: x.bound_ports for x in view.chassis}["node2"] >= 2          # a2 and b2
        measure("network-only agent in node2's netns (standalone central): READY", f"{ready:.2f}s")
    finally:
        assert a.stop() == 0, a.log_tail()


def test_down_leaves_nothing(standalone_cluster, teams, measure):
    """Runs last on this cluster: brings it down and checks with `ip netns list` and /proc."""
    c = standalone_cluster
    pids = [p for p in c.all_pids() if alive(p)]        # (the chassis test left a stopped PID)
    state_dir, prefix = str(c.dir), c.prefix
    extra = c.node(2).popen(["sleep", "60"])             # a user process inside a node netns
    assert os.stat(f"/proc/{extra.pid}/ns/net").st_ino == os.stat(f"/run/netns/{c.node(2).netns}").st_ino
    for p in pids + [extra.pid]:                         # nsenter --net: the host's mount namespace
        assert os.stat(f"/proc/{p}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino, p
    ours = [n for n in _netns_list() if n.startswith(prefix + "-")]
    assert len(ours) == 1 + 1 + c.n + len(teams)          # ul, c1, nodes, instances
    report = c.down()
    measure("down (standalone, 3 nodes, 6 instances)", f"{report['seconds']:.3f}s, SIGKILLed: {report['killed']}")
    assert [n for n in _netns_list() if n.startswith(prefix + "-")] == []
    assert [p for p in pids + [extra.pid] if alive(p)] == []
    assert pids_mentioning(state_dir) == []
    assert not os.path.exists(state_dir)


def _netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------- raft
def test_raft_three_members(raft_cluster):
    c = raft_cluster
    for db in ("nb", "sb"):
        st = [c.cluster_status(db, k) for k in (1, 2, 3)]
        assert all(len(s["servers"]) == 3 for s in st), [s["raw"] for s in st]
        assert sorted(s["role"] for s in st) == ["follower", "follower", "leader"]
        assert len({s["cluster_id"] for s in st}) == 1
    def northd_status():
        return sorted(subprocess.run(["ovn-appctl", "-t", f"{c.dir}/c{k}/northd.ctl", "status"], capture_output=True,
                                     text=True).stdout.strip() for k in (1, 2, 3))
    deadline = time.monotonic() + 10               # one northd holds the SB lock, the others wait
    while (status := northd_status()) != ["Status: active", "Status: standby", "Status: standby"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_nb_leader_failover(raft_cluster, measure):
    """SIGKILL the NB leader while two writers (ovn-nbctl in node1's netns, all 3 remotes,
    --timeout=5 per call, retried, idempotent --may-exist) keep writing: writes resume on the new
    leader. Prints the gap and the longest call."""
    c = raft_cluster
    c.nbctl("--may-exist", "ls-add", "fo")
    before = {s: c.cluster_status("nb", s) for s in (1, 2, 3)}
    old = c.leader("nb")
    calls: list[tuple[float, float, int, str, str]] = []       # start, end, rc, port, stderr tail
    kill = {"at": None}
    stop = threading.Event()

    def writer(tag: str) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            t = time.monotonic()
            r = c.node(1).run(["ovn-nbctl", f"--db={c.nb_remotes}", "--timeout=5", "--may-exist", "lsp-add", "fo",
                               f"fo-{tag}{i}"], check=False, timeout=10)
            calls.append((t, time.monotonic(), r.returncode, f"fo-{tag}{i}", r.stderr.strip()[-120:]))
            if kill["at"] and sum(1 for x in calls if x[2] == 0 and x[0] > kill["at"]) >= 5:
                return
            if r.returncode:
                time.sleep(0.01)

    ws = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for w in ws:
        w.start()
    try:
        time.sleep(0.5)
        pid = c.member("nb", old).pid
        kill["at"] = time.monotonic()
        c.kill_member("nb", old)
        for w in ws:
            w.join(timeout=20)
    finally:
        stop.set()
        for w in ws:
            w.join()
    k = kill["at"]
    assert not alive(pid)
    c.nbctl("--wait=sb", "sync", timeout=30, retry=10)        # northd translated the NB again (it reconnects too)
    northd_back = time.monotonic() - k
    ok_after = sorted(end for start, end, rc, _, _ in calls if rc == 0 and start > k)
    assert ok_after, f"no write succeeded after the leader kill; errors: {[x[4] for x in calls[-3:]]}"
    last_before = max((end for start, end, rc, _, _ in calls if rc == 0 and end <= k), default=k)
    failed = [x for x in calls if x[2] != 0]
    longest = max(calls, key=lambda x: x[1] - x[0])
    new = c.leader("nb")
    assert new is not None and new != old
    st = c.cluster_status("nb", new)
    assert int(st["term"]) > int(before[new]["term"])
    # every acknowledged write is in the NB (read through the new leader)
    names = set(c.nbctl("--bare", "--columns=name", "find", "Logical_Switch_Port").split())
    assert {x[3] for x in calls if x[2] == 0} <= names
    measure("NB leader SIGKILL -> first write committed after it (election timer 1000 ms)",
            f"{ok_after[0] - k:.3f}s (gap since the last write before: {ok_after[0] - last_before:.3f}s), "
            f"{len(failed)} failed calls meanwhile, longest call {longest[1] - longest[0]:.3f}s "
            f"(rc {longest[2]}), leader c{old} -> c{new}, term {before[new]['term']} -> {st['term']}")
    measure("NB leader SIGKILL -> northd wrote the SB again (nbctl --wait=sb sync returned)", f"{northd_back:.3f}s")
    rejoin = c.restart_member("nb", old)
    assert c.cluster_status("nb", old)["role"] == "follower"
    measure("killed NB member restarted -> rejoined as follower", f"{rejoin:.3f}s")


def test_sb_leader_kill_ports_still_bind(raft_cluster, measure):
    """SIGKILL the SB leader. A port whose LSP is already in the SB binds and carries packets at
    once; one whose LSP is created after the kill waits for northd to reach the new SB leader."""
    c = raft_cluster
    c.nbctl("--may-exist", "ls-add", "sbfo")
    x1 = c.add_instance_port(1, "sbfo", "x1", "0a:00:00:30:00:11", "10.30.0.11")
    c.nbctl("--wait=sb", "lsp-add", "sbfo", "x2", "--", "lsp-set-addresses", "x2", "0a:00:00:30:00:12 10.30.0.12")
    old = c.leader("sb")
    t = time.monotonic()
    c.kill_member("sb", old)
    x2 = c.add_instance_port(2, "sbfo", "x2", "0a:00:00:30:00:12", "10.30.0.12", lsp=False)
    deadline = time.monotonic() + 15
    while not (r := x1.ping(x2.ip, count=1, wait=0.5)).ok:
        assert time.monotonic() < deadline, r.output
    reach = time.monotonic() - t
    x3 = c.add_instance_port(3, "sbfo", "x3", "0a:00:00:30:00:13", "10.30.0.13", timeout=30)
    late = time.monotonic() - t
    new = c.leader("sb")
    assert new not in (None, old)
    c.wait_ports_up("x1", "x2", "x3")
    nb_up = time.monotonic() - t
    assert x3.ping(x1.ip, count=2, interval=0.1).ok
    measure("SB leader SIGKILL, LSP already in SB, plugged on node2 right after",
            f"ovn-installed {x2.installed_seconds * 1000:.0f} ms, ping from node1 answered {reach:.3f}s after the kill")
    measure("SB leader SIGKILL, LSP created after the kill (northd must reach the new leader)",
            f"ovn-installed {x3.installed_seconds:.3f}s after add-port, {late:.3f}s after the kill; "
            f"NB up=true for x1..x3 + hv sync {nb_up:.3f}s after the kill")
    rejoin = c.restart_member("sb", old)
    measure("killed SB member restarted -> rejoined", f"{rejoin:.3f}s")


# ------------------------------------------------------------------------ chassis left to an agent
def test_unconfigured_chassis_then_configured(cluster_factory, measure):
    """Cluster(chassis=False): OVS, bridges and the encap IP are ready, no chassis exists; setting
    the external_ids (as an agent's EnsureChassis would) makes the nodes chassis with tunnels."""
    c = cluster_factory(nodes=2, chassis=False)
    assert c.sbctl("--bare", "--columns=name", "list", "Chassis").split() == []
    for n in c.nodes:
        ids = _ovsdb_rows(n.vsctl("--format=json", "--columns=external_ids", "list", "Open_vSwitch"))[0]
        assert "system-id" not in dict(ids["external_ids"][1])
        bridges = {r["name"]: r["datapath_type"] for r in _ovsdb_rows(
            n.vsctl("--format=json", "--columns=name,datapath_type", "list", "Bridge"))}
        assert bridges == {"br-int": "netdev", "br-phy": "netdev"}
        addrs = json.loads(n.run(["ip", "-j", "addr", "show", "dev", "br-phy"]).stdout)
        assert f"{n.encap_ip}/24" in {f"{a['local']}/{a['prefixlen']}" for a in addrs[0]["addr_info"]}
        assert n.daemons["controller"].running()                  # waiting for its system-id
    t = time.monotonic()
    for i in (1, 2):
        c.configure_chassis(i)
    names = lambda: sorted(c.sbctl("--bare", "--columns=name", "list", "Chassis").split())  # noqa: E731
    deadline = time.monotonic() + 20
    while names() != ["node1", "node2"]:
        assert time.monotonic() < deadline, names()
        time.sleep(0.02)
    chassis_s = time.monotonic() - t
    c.prime_tunnels()
    measure("chassis=False: external_ids set -> both chassis in SB", f"{chassis_s:.3f}s, + tunnels {time.monotonic() - t:.3f}s")
    c.nbctl("ls-add", "t")
    y1 = c.add_instance_port(1, "t", "y1", "0a:00:00:40:00:11", "10.40.0.11")
    y2 = c.add_instance_port(2, "t", "y2", "0a:00:00:40:00:12", "10.40.0.12")
    c.wait_ports_up("y1", "y2")
    assert y1.ping(y2.ip, count=3, interval=0.1).ok

