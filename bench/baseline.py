"""The same work without the agent, on the same components, in the same run.

LxdBaseline: what LXD does today, one command-line tool per step
(`zfs clone`, `ip link add ... type veth`, `ip link set ... up`,
`ovs-vsctl add-port ... -- set Interface ... external_ids:iface-id=...`,
`ovn-nbctl lsp-add -- lsp-set-addresses -- lsp-set-port-security`, the
port-group membership, `mkdir` + limit writes in cgroupfs). Its release is
the reverse, instance by instance.

Floor: each single step alone, done the fastest way available on this node
(the `zfs` CLI: zfs-fuse has no libzfs_core; netlink for the veth; one OVSDB
transaction on a long-lived connection for the OVS port and the logical
port; mkdir(2)/rmdir(2) for the cgroup).

Its objects live in their own namespaces (<pool>/lxd, switch "lxd-<tag>",
netdevs "lxh*", cgroup <bench dir>/lxd) next to the agent's.
"""
from __future__ import annotations

import os
import time

from pyroute2 import IPRoute

from bench.env import ENV, Components, run

REFQUOTA = "1G"


def _t(fn, *a, **kw) -> float:
    t0 = time.monotonic()
    fn(*a, **kw)
    return time.monotonic() - t0


def zfs_destroy(name: str, timeout: float = 60.0) -> None:
    """What an operator has to type on zfs-fuse: `zfs umount` then `zfs destroy`,
    retrying "dataset is busy" (zfs-fuse releases a dataset asynchronously after its unmount)."""
    import subprocess
    subprocess.run(["zfs", "umount", name], capture_output=True, env=ENV)
    end = time.monotonic() + timeout
    while True:
        r = subprocess.run(["zfs", "destroy", name], capture_output=True, text=True, env=ENV)
        if r.returncode == 0 or "does not exist" in r.stderr:
            return
        if time.monotonic() > end:
            raise RuntimeError(f"zfs destroy {name}: {r.stderr.strip()}")
        time.sleep(0.02)


class LxdBaseline:
    """One LXD-style "team": a dataset directory, a logical switch with a port group."""

    def __init__(self, c: Components, subnet_octet: int = 250) -> None:
        self.c = c
        self.ns = c.stack.netns
        self.nb = ["ovn-nbctl", f"--db={c.stack.nb_remote}", "--timeout=60"]
        self.vs = ["ovs-vsctl", f"--db={c.stack.ovs_remote}", "--timeout=60"]
        self.switch = f"lxd-{c.tag}"
        self.pg = f"pg_lxd_{c.tag}"
        self.dsdir = f"{c.lxd_parent}/containers"
        self.octet = subnet_octet
        self.hugetlb: list[tuple[str, str]] = []
        self.live: set[int] = set()

    def setup(self, hugetlb: list[tuple[str, str]]) -> None:
        run(["zfs", "create", "-p", self.dsdir])
        run(self.nb + ["ls-add", self.switch, "--", "set", "Logical_Switch", self.switch,
                       f"other_config:subnet=10.{self.octet}.0.0/16"])
        run(self.nb + ["pg-add", self.pg])
        self.hugetlb = hugetlb

    def names(self, i: int) -> dict:
        a = i + 10
        return {"ds": f"{self.dsdir}/c{i}", "host": f"lxh{i}", "peer": f"lxp{i}", "lsp": f"lxd-{self.c.tag}-{i}",
                "mac": f"0a:5a:00:00:{a // 256 % 256:02x}:{a % 256:02x}",
                "ip": f"10.{self.octet}.{a // 250}.{a % 250 + 1}", "cg": os.path.join(self.c.lxd_cgroup, f"c{i}")}

    def prepare(self, i: int, wait_ready: bool = True) -> dict:
        """One container the LXD way; returns step times and "prepared"/"ready" totals (seconds)."""
        n = self.names(i)
        steps: dict[str, float] = {}
        t0 = time.monotonic()
        steps["zfs clone"] = _t(run, ["zfs", "clone", "-o", f"refquota={REFQUOTA}", self.c.image_base, n["ds"]])
        steps["mkdir + limit writes"] = _t(self._cgroup, n["cg"])
        addr = f"{n['mac']} {n['ip']}"
        steps["ovn-nbctl lsp-add/-set-addresses/-set-port-security"] = _t(
            run, self.nb + ["lsp-add", self.switch, n["lsp"], "--", "lsp-set-addresses", n["lsp"], addr,
                            "--", "lsp-set-port-security", n["lsp"], addr])
        steps["ovn-nbctl port group add"] = _t(self._pg_add, n["lsp"])
        steps["ip link add type veth"] = _t(run, ["ip", "-n", self.ns, "link", "add", n["host"], "type", "veth",
                                                  "peer", "name", n["peer"]])
        steps["ip link set up"] = _t(run, ["ip", "-n", self.ns, "link", "set", n["host"], "up"])
        steps["ovs-vsctl add-port + iface-id"] = _t(
            run, self.vs + ["add-port", "br-int", n["host"], "--", "set", "Interface", n["host"],
                            f"external_ids:iface-id={n['lsp']}"])
        self.live.add(i)
        out = {"steps": steps, "prepared": time.monotonic() - t0}
        if wait_ready:
            run(self.nb + ["wait-until", "Logical_Switch_Port", n["lsp"], "up=true"])
            out["ready"] = time.monotonic() - t0
        return out

    def _cgroup(self, path: str) -> None:
        run(["mkdir", path])
        for page, value in self.hugetlb:
            fd = os.open(os.path.join(path, f"hugetlb.{page}.max"), os.O_WRONLY)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)

    def _pg_add(self, lsp: str) -> None:
        uuid = run(self.nb + ["get", "Logical_Switch_Port", lsp, "_uuid"]).stdout.strip()
        run(self.nb + ["add", "Port_Group", self.pg, "ports", uuid])

    def release(self, i: int) -> dict:
        """Tear one container down the LXD way, step by step."""
        n = self.names(i)
        steps: dict[str, float] = {}
        t0 = time.monotonic()
        steps["ovs-vsctl del-port"] = _t(run, self.vs + ["--if-exists", "del-port", "br-int", n["host"]])
        steps["ip link del"] = _t(run, ["ip", "-n", self.ns, "link", "del", n["host"]])
        steps["ovn-nbctl lsp-del"] = _t(run, self.nb + ["--if-exists", "lsp-del", n["lsp"]])
        steps["zfs umount + destroy"] = _t(zfs_destroy, n["ds"])
        steps["rmdir"] = _t(run, ["rmdir", n["cg"]])
        self.live.discard(i)
        return {"steps": steps, "released": time.monotonic() - t0}

    def release_all(self) -> None:
        for i in sorted(self.live):
            self.release(i)


class Floor:
    """Each step alone, the fastest way this node offers; long-lived connections."""

    def __init__(self, c: Components) -> None:
        from ovsdbapp.backend.ovs_idl import connection
        from ovsdbapp.schema.open_vswitch import impl_idl as ovs_impl
        from ovsdbapp.schema.ovn_northbound import impl_idl as nb_impl
        self.c = c
        self.ns = c.stack.netns
        self.ipr = IPRoute(netns=self.ns)
        self.ovs = ovs_impl.OvsdbIdl(connection.Connection(
            connection.OvsdbIdl.from_server(c.stack.ovs_remote, "Open_vSwitch"), timeout=60))
        self.nbapi = nb_impl.OvnNbApiIdlImpl(connection.Connection(
            connection.OvsdbIdl.from_server(c.stack.nb_remote, "OVN_Northbound"), timeout=60))
        self.switch = f"floor-{c.tag}"
        self.nbapi.ls_add(self.switch).execute(check_error=True)
        self.dsdir = f"{c.lxd_parent}/floor"
        run(["zfs", "create", "-p", self.dsdir])
        self.cgdir = os.path.join(c.cgroup_dir, "floor")
        os.makedirs(self.cgdir, exist_ok=True)

    def prepare_steps(self, i: int, marks: dict[str, str]) -> dict[str, float]:
        """Every creation step alone; returns seconds per step."""
        ds, ds_m = f"{self.dsdir}/f{i}", f"{self.dsdir}/m{i}"
        host, lsp = f"flh{i}", f"floor-{self.c.tag}-{i}"
        a = i + 10
        mac, ip = f"0a:5b:00:00:{a // 256 % 256:02x}:{a % 256:02x}", f"10.251.{a // 250}.{a % 250 + 1}"
        props = [x for k, v in marks.items() for x in ("-o", f"{k}={v}")]
        return {
            "zfs clone": _t(run, ["zfs", "clone", "-o", f"refquota={REFQUOTA}", self.c.image_base, ds]),
            "zfs clone + the agent's marks": _t(run, ["zfs", "clone", "-o", f"refquota={REFQUOTA}", *props,
                                                      self.c.image_base, ds_m]),
            "veth create (netlink)": _t(self.ipr.link, "add", ifname=host, kind="veth", peer=f"flp{i}"),
            "OVS port + iface-id (1 OVSDB txn)": _t(self._ovs_add, host, lsp),
            "logical port + addresses (1 NB txn)": _t(
                lambda: self.nbapi.lsp_add(self.switch, lsp, addresses=[f"{mac} {ip}"],
                                           port_security=[f"{mac} {ip}"]).execute(check_error=True)),
            "cgroup mkdir(2)": _t(os.mkdir, os.path.join(self.cgdir, f"f{i}")),
        }

    def _ovs_add(self, host: str, lsp: str) -> None:
        with self.ovs.transaction(check_error=True) as txn:
            txn.add(self.ovs.add_port("br-int", host))
            txn.add(self.ovs.db_set("Interface", host, ("external_ids", {"iface-id": lsp})))

    def release_steps(self, i: int) -> dict[str, float]:
        host, lsp = f"flh{i}", f"floor-{self.c.tag}-{i}"
        return {
            "zfs umount + destroy": _t(zfs_destroy, f"{self.dsdir}/f{i}"),
            "veth delete (netlink)": _t(self.ipr.link, "del", ifname=host),
            "OVS port delete (1 OVSDB txn)": _t(lambda: self.ovs.del_port(host, "br-int").execute(check_error=True)),
            "logical port delete (1 NB txn)": _t(lambda: self.nbapi.lsp_del(lsp).execute(check_error=True)),
            "cgroup rmdir(2)": _t(os.rmdir, os.path.join(self.cgdir, f"f{i}")),
            "_cleanup": _t(zfs_destroy, f"{self.dsdir}/m{i}"),
        }

    def close(self) -> None:
        self.ipr.close()
        for api in (self.ovs, self.nbapi):
            try:
                api.ovsdb_connection.stop()
            except Exception:
                pass
