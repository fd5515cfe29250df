"""devcloud-agent as the systemd service it ships (systemd/devcloud-agent.service,
every hardening line as shipped; a drop-in only shortens WatchdogSec), under
real systemd 252 + journald in the node guest:

- Type=notify: active only after READY=1, which comes after the gRPC socket exists;
- the hardening leaves every facility the agent needs usable (capabilities,
  /dev/zfs + /dev/net/tun through DevicePolicy=closed, localhost metrics
  through IPAddressDeny=any);
- the watchdog is fed (two periods pass, no restart) and enforced (a stopped
  agent is restarted by systemd);
- access-log entries reach the journal with structured fields;
- `systemctl stop` exits 0 and leaves the data plane (datasets, mounts, zvol,
  veths, OVS ports, LSPs, cgroup scopes and their processes, packets flowing);
  the next start finds and keeps all of it.
Independent views: systemctl show, /proc, journalctl -o json, zfs get,
mountinfo, ip -j, ovs-vsctl, ovn-nbctl, cgroupfs, ping.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import time
import urllib.request

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import compute_pb2 as cpb
from agent._proto.devcloud.agent.v1 import compute_pb2_grpc
from agent._proto.devcloud.agent.v1 import identity_pb2 as ipb
from agent._proto.devcloud.agent.v1 import identity_pb2_grpc
from agent._proto.devcloud.agent.v1 import network_pb2 as npb
from agent._proto.devcloud.agent.v1 import network_pb2_grpc
from agent._proto.devcloud.agent.v1 import storage_pb2 as spb
from agent._proto.devcloud.agent.v1 import storage_pb2_grpc

import agent_unit as au

pytestmark = pytest.mark.skipif(os.environ.get("DEVCLOUD_NODE_GUEST") != "1", reason="runs inside the node guest")
UNIT_FILE = "/etc/systemd/system/devcloud-agent.service"
CAP_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
            "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
            "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14,
            "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
            "CAP_SYS_ADMIN": 21, "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24, "CAP_MKNOD": 27,
            "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31, "CAP_BPF": 39}


def _mono() -> float:
    """CLOCK_MONOTONIC seconds: the clock of systemd's *TimestampMonotonic properties."""
    return time.monotonic()


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _unit_directive(key: str) -> list[str]:
    with open(UNIT_FILE) as f:
        return [m.group(1) for m in (re.match(rf"^{key}=(.*)$", l.strip()) for l in f) if m]


# ------------------------------------------------------------------------ READY, hardening

def test_ready_comes_after_the_socket(agent, results_dir):
    p = agent.show("ActiveState", "SubState", "Type", "NRestarts", "MainPID", "NotifyAccess",
                   "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "InvocationID")
    assert (p["ActiveState"], p["SubState"], p["Type"], p["NotifyAccess"]) == ("active", "running", "notify", "main")
    assert p["NRestarts"] == "0"
    st = os.stat(au.SOCKET)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    # bind() set the socket's mtime (realtime); convert it to the monotonic clock systemd stamps with
    sock_mono = st.st_mtime - (time.time() - _mono())
    exec_start, ready = int(p["ExecMainStartTimestampMonotonic"]) / 1e6, int(p["ActiveEnterTimestampMonotonic"]) / 1e6
    assert exec_start - 0.5 < sock_mono < ready, (exec_start, sock_mono, ready)
    # the unit's main process is the agent itself (NotifyAccess=main), and it says it is ready
    info = agent.stub(identity_pb2_grpc).GetAgentInfo(ipb.GetAgentInfoRequest(), timeout=au.RPC)
    assert info.pid == int(p["MainPID"]) and info.node_name == agent.node
    probe = agent.stub(identity_pb2_grpc).Probe(ipb.ProbeRequest(), timeout=au.RPC)
    assert probe.ready and not probe.pending
    # the agent's own "ready" record of this invocation, and no logging failure in its journal
    entries = agent.journal(f"_SYSTEMD_INVOCATION_ID={p['InvocationID']}")
    assert any(e.get("MESSAGE") == "ready" and e.get("_TRANSPORT") == "journal" for e in entries)
    assert not [e for e in entries if "Logging error" in str(e.get("MESSAGE"))], "the journal handler failed"
    au.record(results_dir, "agent-service", event="READY", exec_to_socket_s=round(sock_mono - exec_start, 2),
              socket_to_ready_s=round(ready - sock_mono, 2), exec_to_ready_s=round(ready - exec_start, 2))


def test_hardening_is_in_force_and_leaves_the_facilities(agent, results_dir):
    pid = agent.main_pid()
    s = _proc_status(pid)
    assert s["NoNewPrivs"] == "1" and s["Seccomp"] == "2"   # NoNewPrivileges=, SystemCallFilter=
    want = sum(1 << CAP_BITS[c] for line in _unit_directive("CapabilityBoundingSet") for c in line.split())
    assert int(s["CapBnd"], 16) == want and int(s["CapEff"], 16) == want
    p = agent.show("DevicePolicy", "DeviceAllow", "IPAddressDeny", "MemoryDenyWriteExecute", "RestrictNamespaces")
    assert p["DevicePolicy"] == "closed" and "char-misc rw" in p["DeviceAllow"]
    assert p["MemoryDenyWriteExecute"] == "yes"
    for dev in ("/dev/zfs", "/dev/net/tun"):   # both live in the misc class DeviceAllow=char-misc opens
        assert os.major(os.stat(dev).st_rdev) == 10, dev
    caps = agent.stub(identity_pb2_grpc).GetCapabilities(ipb.GetCapabilitiesRequest(), timeout=au.RPC)
    by_kind = {ipb.CapabilityKind.Name(c.kind): c for c in caps.capabilities}
    for kind in ("CAPABILITY_KIND_STORAGE_ZFS", "CAPABILITY_KIND_STORAGE_ZVOL", "CAPABILITY_KIND_NETWORK_OVN",
                 "CAPABILITY_KIND_NETWORK_BRIDGE", "CAPABILITY_KIND_COMPUTE_CGROUP_V2"):
        assert by_kind[kind].available, f"{kind}: {by_kind[kind].reason}"
    # IPAddressDeny=any + IPAddressAllow=localhost: the loopback metrics endpoint answers
    with urllib.request.urlopen(f"http://{au.METRICS}/metrics", timeout=60) as r:
        body = r.read().decode()
    assert "devcloud_agent_build_info" in body and 'devcloud_agent_facility_available{facility="zfs"} 1.0' in body
    au.record(results_dir, "agent-service", event="hardening", cap_eff=s["CapEff"],
              unavailable={k: c.reason for k, c in by_kind.items() if not c.available},
              exposure=au.run("systemd-analyze", "security", "--no-pager", "devcloud-agent.service",
                              check=False).stdout.strip().splitlines()[-1:])


# ------------------------------------------------------------------------ journal, watchdog

def test_access_log_reaches_the_journal_with_fields(agent, storage_world, compute_world, network_world, session_id):
    missing = f"nope-{session_id}"
    storage = agent.stub(storage_pb2_grpc)
    storage.GetVolume(spb.GetVolumeRequest(team=storage_world.team, name="c0"), timeout=au.RPC)
    with pytest.raises(grpc.RpcError) as e:
        storage.GetVolume(spb.GetVolumeRequest(team=storage_world.team, name=missing), timeout=au.RPC)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    agent.stub(compute_pb2_grpc).GetScope(cpb.GetScopeRequest(team=compute_world.team,
                                                              instance_id=compute_world.instance), timeout=au.RPC)
    port = network_world.instances[0].spec
    agent.stub(network_pb2_grpc).GetPort(npb.GetPortRequest(network=port.network, name=port.name), timeout=au.RPC)
    expect = {("/devcloud.agent.v1.StorageService/GetVolume", "OK", "c0"),
              ("/devcloud.agent.v1.StorageService/GetVolume", "NOT_FOUND", missing),
              ("/devcloud.agent.v1.ComputeService/GetScope", "OK", compute_world.instance),
              ("/devcloud.agent.v1.NetworkService/GetPort", "OK", port.name)}
    pid = str(agent.main_pid())

    def found():
        got = {}
        for e in agent.journal(f"_PID={pid}", "MESSAGE=rpc"):
            key = (e.get("METHOD"), e.get("CODE"), e.get("RESOURCE"))
            if key in expect:
                got[key] = e
        return got if len(got) == len(expect) else None
    got = au.until(found, "the four access-log entries in the journal", timeout=120)
    for e in got.values():
        assert float(e["DURATION_MS"]) >= 0 and e["PEER"]
        assert (e["PRIORITY"], e["SYSLOG_IDENTIFIER"], e["_TRANSPORT"]) == ("6", "devcloud-agent", "journal")
        assert e["_SYSTEMD_UNIT"] == au.UNIT and e["LOGGER"] == "devcloud.agent.access"


def test_watchdog_is_fed(agent, results_dir):
    props = ("ActiveState", "NRestarts", "MainPID", "WatchdogUSec", "WatchdogTimestampMonotonic")
    before = agent.show(*props)
    assert before["WatchdogUSec"] == f"{au.WATCHDOG_SEC}s"
    pings = set()
    end = _mono() + 2.5 * au.WATCHDOG_SEC
    while _mono() < end:
        pings.add(int(agent.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]))
        time.sleep(1)
    after = agent.show(*props)
    assert after["ActiveState"] == "active"
    assert (after["NRestarts"], after["MainPID"]) == (before["NRestarts"], before["MainPID"])
    # systemd stamps every WATCHDOG=1; the agent pings every half period
    assert len(pings) >= 3, f"watchdog stamps seen over {2.5 * au.WATCHDOG_SEC:.0f}s: {sorted(pings)}"
    assert _mono() - int(after["WatchdogTimestampMonotonic"]) / 1e6 < au.WATCHDOG_SEC
    au.record(results_dir, "agent-service", event="watchdog fed", stamps=len(pings),
              window_s=2.5 * au.WATCHDOG_SEC, watchdog_s=au.WATCHDOG_SEC)


# ------------------------------------------------------------------------ stop / restart keep the data plane

def _observe(storage, compute, network) -> dict:
    """Identity of everything built, read with independent tools (never the agent)."""
    facts, mi = {}, au.mounts()
    for name, vol in storage.volumes.items():
        p = au.zget(vol.dataset, "guid", "mounted", "refquota", "origin")
        facts[f"zfs:{name}"] = (p, mi.get(vol.mountpoint), os.path.exists(f"{vol.mountpoint}/etc/os-release"))
    z = storage.zvol
    facts["zvol"] = (au.zget(z.dataset, "guid", "volsize"), os.path.realpath(f"/dev/zvol/{z.dataset}"))
    for inst in network.instances:
        p = inst.port
        host, peer = au.link(p.host_netdev), au.link(p.peer_netdev or "eth0", inst.netns)
        (iface,) = au.vsctl_rows("Interface", f"name={p.host_netdev}")
        (lsp,) = au.nb_rows("Logical_Switch_Port", f"name={p.iface_id}")
        facts[f"port:{inst.team}/{inst.index}"] = (
            host["ifindex"], host["operstate"], host.get("master"), peer["ifindex"], peer["address"],
            iface["_uuid"], iface["external_ids"].get("ovn-installed"), iface["external_ids"].get("iface-id"),
            lsp["_uuid"], lsp["up"])
    tap = au.link(network.tap.host_netdev)
    facts["tap"] = (tap["ifindex"], au.vsctl_rows("Interface", f"name={network.tap.host_netdev}")[0]["_uuid"])
    facts["br-int"] = au.vsctl_rows("Bridge", "name=br-int")[0]["_uuid"]
    scope = compute.scope.path
    with open(f"{scope}/cgroup.procs") as f:
        procs = sorted(int(x) for x in f.read().split())
    with open(f"{scope}/memory.max") as f, open(f"{scope}/cpu.max") as g:
        limits = (f.read().strip(), g.read().strip())
    facts["scope"] = (os.stat(scope).st_ino, procs, limits, au.alive(compute.proc.pid),
                      au.cgroup_of(compute.proc.pid))
    return facts


def _agent_answers_and_keeps(agent, storage, compute, network) -> None:
    """Get* answer for everything, and Ensure* with the same specs change nothing."""
    st, co, ne = agent.stub(storage_pb2_grpc), agent.stub(compute_pb2_grpc), agent.stub(network_pb2_grpc)
    for name, spec in storage.specs.items():
        v = st.GetVolume(spb.GetVolumeRequest(team=storage.team, name=name), timeout=au.RPC).volume
        assert v.dataset == (storage.zvol.dataset if name == "disk0" else storage.volumes[name].dataset)
        assert v.kind == spb.VOLUME_KIND_BLOCK or v.mounted
        r = st.EnsureVolume(spb.EnsureVolumeRequest(spec=spec), timeout=au.RPC)
        assert r.changed is False, f"EnsureVolume {name} after restart changed something"
    scope = co.GetScope(cpb.GetScopeRequest(team=compute.team, instance_id=compute.instance), timeout=au.RPC).scope
    assert scope.path == compute.scope.path and compute.proc.pid in scope.pids
    r = co.EnsureScope(cpb.EnsureScopeRequest(team=compute.team, instance_id=compute.instance, limits=compute.limits),
                       timeout=au.RPC)
    assert r.changed is False
    for inst in network.instances:
        got = ne.GetPort(npb.GetPortRequest(network=inst.spec.network, name=inst.spec.name), timeout=au.RPC).port
        assert got.host_netdev == inst.port.host_netdev and got.ip4 == inst.port.ip4 and got.mac == inst.port.mac
        r = ne.EnsurePort(npb.EnsurePortRequest(spec=inst.spec, wait_ready=True, ready_timeout_ms=170_000),
                          timeout=au.RPC)
        assert r.changed is False and r.port.status.ready, (inst.spec.name, r.port.status)
    assert ne.EnsurePort(npb.EnsurePortRequest(spec=network.tap_spec), timeout=au.RPC).changed is False
    for team, subnet in network.teams.items():
        r = ne.EnsureNetwork(npb.EnsureNetworkRequest(spec=npb.NetworkSpec(name=team, subnet4=subnet)), timeout=au.RPC)
        assert r.changed is False


def _team_pings(network) -> None:
    by_team: dict[str, list] = {}
    for inst in network.instances:
        by_team.setdefault(inst.team, []).append(inst)
    for a, b in by_team.values():
        assert au.ping_eventually(a.netns, b.port.ip4, attempts=10), f"{a.netns} -> {b.port.ip4} failed"


def test_stop_keeps_the_data_plane_and_a_restart_adopts_it(agent, storage_world, compute_world, network_world,
                                                           results_dir):
    before = _observe(storage_world, compute_world, network_world)
    invocation = agent.show("InvocationID")["InvocationID"]
    stop_s = agent.stop()
    p = agent.show("ActiveState", "SubState", "Result", "ExecMainStatus", "ExecMainCode")
    assert (p["ActiveState"], p["SubState"], p["Result"], p["ExecMainStatus"]) == ("inactive", "dead", "success", "0"), p
    assert not os.path.exists(au.SOCKET)      # RuntimeDirectory= went with the unit
    errors = [e["MESSAGE"] for e in agent.journal(f"_SYSTEMD_INVOCATION_ID={invocation}", "PRIORITY=0..3")]
    assert not errors, f"errors logged by the stopped invocation: {errors[:5]}"
    # the agent is gone; the data plane it built is all there and still carries packets
    assert _observe(storage_world, compute_world, network_world) == before
    _team_pings(network_world)
    start_s = agent.start()
    assert agent.show("ActiveState")["ActiveState"] == "active"
    _agent_answers_and_keeps(agent, storage_world, compute_world, network_world)
    assert _observe(storage_world, compute_world, network_world) == before
    _team_pings(network_world)
    au.record(results_dir, "agent-service", event="stop + start", stop_s=round(stop_s, 2), start_s=round(start_s, 2))


def test_watchdog_restarts_a_hung_agent_which_keeps_the_data_plane(agent, storage_world, compute_world,
                                                                     network_world, results_dir):
    before = _observe(storage_world, compute_world, network_world)
    p = agent.show("NRestarts", "MainPID")
    pid, restarts = int(p["MainPID"]), int(p["NRestarts"])
    agent.close_channel()
    t = _mono()
    os.kill(pid, signal.SIGSTOP)     # the unit's main process: it stops feeding the watchdog
    try:
        au.until(lambda: (lambda q: q["ActiveState"] == "active" and int(q["NRestarts"]) == restarts + 1
                          and q["MainPID"] not in ("0", str(pid)))(agent.show("ActiveState", "NRestarts", "MainPID")),
                 "systemd to restart the hung agent (watchdog)", timeout=400, interval=1)
    finally:
        if au.alive(pid):
            os.kill(pid, signal.SIGCONT)
    took = _mono() - t
    assert not au.alive(pid)
    msgs = [str(e.get("MESSAGE", "")) for e in agent.journal() if e.get("_PID") == "1"]
    assert any("Watchdog timeout" in m for m in msgs), "systemd logged no watchdog timeout"
    _agent_answers_and_keeps(agent, storage_world, compute_world, network_world)
    assert _observe(storage_world, compute_world, network_world) == before
    au.record(results_dir, "agent-service", event="watchdog restart", sigstop_to_active_again_s=round(took, 1))
