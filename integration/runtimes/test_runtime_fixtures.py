"""The runtime fixtures proven on this machine WITHOUT the agent: images (plain,
unified, split), LXC containers (privileged and unprivileged) on a directory
rootfs with a prepared NIC under a given cgroup, idmapped vs shifted roots
(ext4, tmpfs, zfs-fuse), and a QEMU VM (Debian kernel + busybox initramfs)
getting DHCP over a tap and reading a raw disk file.

Every test cleans up what it made (netns, netdevs, processes by PID, cgroups,
mounts, the zfs-fuse pool, temp dirs). Timings are printed (`-s`), never
asserted. Skips only when a package is missing (integration/runtimes/setup.sh).
"""
from __future__ import annotations

import os
import secrets
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from integration.runtimes import common, idshift, images, lxc, qemu
from integration.runtimes.common import Netns, Udhcpd, Unavailable, parse_markers, unique, veth

NUMBERS: list[str] = []


def report(line: str) -> None:
    NUMBERS.append(line)
    print(f"\n[runtimes] {line}")


@pytest.fixture(scope="module", autouse=True)
def _print_numbers():
    yield
    if NUMBERS:
        print("\n[runtimes] ---- numbers ----\n" + "\n".join(f"[runtimes] {n}" for n in NUMBERS))


def require(fn, *args):
    try:
        return fn(*args)
    except Unavailable as exc:
        pytest.skip(str(exc))


# -- fixtures --------------------------------------------------------------------------


def _rm_tree_safely(path: Path) -> None:
    """Unmount anything still mounted below path (deepest first), then delete it."""
    with open("/proc/self/mountinfo") as f:
        mounts = [l.split()[4] for l in f]
    for m in sorted((m for m in mounts if m.startswith(str(path) + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def workdir():
    # under /var/tmp (ext4 here, like the agent's state dir); o+x so that an
    # unprivileged container's root (uid 100000) can traverse to its lxcpath
    d = Path(tempfile.mkdtemp(prefix="rtfx-", dir="/var/tmp"))
    os.chmod(d, 0o711)
    try:
        yield d
    finally:
        _rm_tree_safely(d)


@pytest.fixture(scope="module")
def base_rootfs():
    require(images.busybox_binary)
    d = Path(tempfile.mkdtemp(prefix="rtfx-base-", dir="/var/tmp"))
    try:
        t = time.monotonic()
        root = images.build_busybox_rootfs(d / "rootfs")
        report(f"busybox rootfs build: {time.monotonic() - t:.3f} s, {len(images.tree_summary(root))} entries")
        yield root
    finally:
        shutil.rmtree(d, ignore_errors=True)


def copy_rootfs(src: Path, dst: Path) -> Path:
    idshift.copy_tree(src, dst)
    os.chmod(dst, 0o755)
    return dst


@pytest.fixture
def scope():
    """A prepared instance cgroup, like the agent's: <cgroup2>/rtfx<hex>/inst.scope
    (relative path yielded). Removed in every hierarchy at the end (LXC mirrors it in
    the v1 hierarchies on this hybrid host)."""
    require(lxc.available)
    top = unique()
    rel = f"{top}/inst.scope"
    os.makedirs(os.path.join(lxc.cgroup2_mount(), rel))
    try:
        yield rel
    finally:
        lxc.remove_cgroup_tree_everywhere(top)


@pytest.fixture
def netns_factory():
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns()
        made.append(ns)
        return ns
    try:
        yield make
    finally:
        for ns in made:
            ns.delete()


@pytest.fixture
def host_links():
    """Names of netdevs a test creates in the HOST namespace; deleted at the end."""
    names: list[str] = []
    try:
        yield names
    finally:
        for n in names:
            common.delete_host_link(n)


@pytest.fixture
def servers():
    made: list[Udhcpd] = []
    try:
        yield made
    finally:
        for s in made:
            s.stop()


@pytest.fixture
def containers():
    made: list[lxc.Container] = []
    try:
        yield made
    finally:
        for c in made:
            c.destroy()


def dhcp_server(servers, ns: Netns, iface: str, net: str) -> Udhcpd:
    """udhcpd on `iface` in `ns` for 10.<net>.0.0/24, router .1, dns .53."""
    s = Udhcpd(ns, iface, f"10.{net}.0.1", f"10.{net}.0.100", f"10.{net}.0.150", router=f"10.{net}.0.1",
               dns=[f"10.{net}.0.53"])
    servers.append(s)
    require(s.start)
    return s


def assert_lease(lease: dict | None, net: str) -> None:
    assert lease is not None, "no DEVCLOUD-LEASE line"
    last = int(lease["ip"].split(".")[-1])
    assert lease["ip"].startswith(f"10.{net}.0.") and 100 <= last <= 150, lease
    assert lease["mask"] == "24" and lease["router"] == f"10.{net}.0.1" and lease["dns"] == f"10.{net}.0.53", lease


def wait_gone(exists, timeout: float = 10.0) -> float:
    """Seconds until exists() turns False (AssertionError after `timeout`)."""
    t = time.monotonic()
    try:
        common.wait_for(lambda: not exists(), timeout, 0.01, "netdevs to disappear")
    except TimeoutError:
        raise AssertionError(f"still present after {timeout} s") from None
    return time.monotonic() - t


def v2_cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:].lstrip("/")
    return ""


# -- images -------------------------------------------------------------------------------


def test_busybox_rootfs_and_plain_tarball(base_rootfs, workdir):
    root = base_rootfs
    st = os.lstat(root / "root")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o700)
    assert os.lstat(root / "tmp").st_mode & 0o7777 == 0o1777
    assert os.readlink(root / "bin/sh") == "/bin/busybox" and os.readlink(root / "sbin/udhcpc") == "/bin/busybox"
    assert (root / "etc/passwd").read_text().startswith("root:x:0:0:")
    assert os.stat(root / "home/user").st_uid == 1000
    tb = images.rootfs_tarball(root, workdir / "rootfs.tar.gz")
    info = images.inspect_image(tb)
    assert (info.kind, info.type, info.metadata) == ("rootfs", "container", None)
    names = subprocess.run(["tar", "-tzf", str(tb)], capture_output=True, text=True, check=True).stdout.split()
    assert "./bin/busybox" in names and "./etc/passwd" in names and "./root/" in names
    out = images.unpack_image(tb, workdir / "vol")
    assert images.tree_summary(out) == images.tree_summary(root)


def test_unified_image(base_rootfs, workdir):
    meta = images.ImageMetadata.busybox()
    t = time.monotonic()
    img = images.unified_image(base_rootfs, workdir / "busybox.tar.gz", meta)
    report(f"unified image build: {time.monotonic() - t:.3f} s, {img.stat().st_size} bytes")
    names = subprocess.run(["tar", "-tzf", str(img)], capture_output=True, text=True, check=True).stdout.split()
    assert names[0] == "metadata.yaml" and "templates/hostname.tpl" in names
    assert "rootfs/" in names and "rootfs/bin/busybox" in names and not any(n.startswith("./") for n in names)
    info = images.inspect_image(img)
    assert (info.kind, info.type, info.rootfs_format) == ("unified", "container", "tar")
    assert info.metadata == meta
    assert info.metadata.properties["os"] == "busybox" and info.metadata.architecture == "x86_64"
    assert info.fingerprint == images.fingerprint(img)
    vol = workdir / "vol"
    rootfs = images.unpack_image(img, vol)
    assert rootfs == vol / "rootfs" and (vol / "metadata.yaml").exists() and (vol / "templates/hosts.tpl").exists()
    assert images.tree_summary(rootfs) == images.tree_summary(base_rootfs)
    assert images.apply_templates(vol, "create", {"name": "c-unified"}) == ["/etc/hostname", "/etc/hosts"]
    assert (rootfs / "etc/hostname").read_text() == "c-unified\n"
    assert images.apply_templates(vol, "start", {"name": "x"}) == []


def test_split_image(base_rootfs, workdir):
    require(common.need, "mksquashfs", "squashfs-tools")
    meta = images.ImageMetadata.busybox(release="1.35-split")
    t = time.monotonic()
    m, r = images.split_image(base_rootfs, workdir / "meta.tar.gz", workdir / "rootfs.squashfs", meta)
    report(f"split image build (metadata tarball + squashfs): {time.monotonic() - t:.3f} s, "
           f"{m.stat().st_size} + {r.stat().st_size} bytes")
    names = subprocess.run(["tar", "-tzf", str(m)], capture_output=True, text=True, check=True).stdout.split()
    assert "metadata.yaml" in names and not any(n.startswith("rootfs") for n in names)
    assert r.read_bytes()[:4] == b"hsqs"
    with pytest.raises(ValueError, match="metadata only"):
        images.inspect_image(m)
    info = images.inspect_image(m, r)
    assert (info.kind, info.type, info.rootfs_format) == ("split", "container", "squashfs")
    assert info.metadata == meta
    assert info.fingerprint == images.fingerprint(m, r) != images.fingerprint(m)
    rootfs = images.unpack_image(m, workdir / "vol", r)
    assert images.tree_summary(rootfs) == images.tree_summary(base_rootfs)


def test_metadata_yaml_as_distrobuilder_writes_it():
    text = """architecture: x86_64
creation_date: 1700000000
expiry_date: 1702592000
properties:
  architecture: amd64
  description: Debian bookworm amd64 (20231114_05:24)
  os: debian
  release: bookworm
  serial: "20231114_05:24"
  variant: default
templates:
  /etc/hostname:
    when:
    - create
    - copy
    create_only: false
    template: hostname.tpl
    properties: {}
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
"""
    m = images.ImageMetadata.from_yaml(text)
    m.validate()
    assert m.properties["serial"] == "20231114_05:24" and m.properties["os"] == "debian"
    assert m.templates["/etc/hosts"].when == ["create", "copy"] and m.expiry_date == 1702592000
    assert images.ImageMetadata.from_yaml(m.to_yaml()) == m
    with pytest.raises(ValueError, match="creation date"):
        images.ImageMetadata(creation_date=0).validate()


# -- LXC: NICs, netns, cgroups ---------------------------------------------------------------


def start_and_dhcp(ct: lxc.Container, net: str, label: str) -> dict:
    t_start = ct.start()
    lease, t_dhcp, out = lxc.dhcp(ct)
    assert_lease(lease, net)
    report(f"LXC {label}: lxc-start -d {t_start:.3f} s; udhcpc lease {t_dhcp:.3f} s; "
           f"start -> address {t_start + t_dhcp:.3f} s")
    return lease


def test_lxc_privileged_phys_nic_from_host_netns(base_rootfs, workdir, scope, netns_factory, host_links, servers,
                                                  containers):
    """The NIC lxc-start is given lives in the host namespace (the veth's other end in a
    throwaway netns with udhcpd): type=phys moves it in, and back at stop."""
    sw = netns_factory()
    ctr_end, sw_end = unique(), unique()
    host_links.append(ctr_end)
    veth(ctr_end, sw_end, b_ns=sw)
    dhcp_server(servers, sw, sw_end, "77")
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    placement = lxc.CgroupPlacement(scope)
    ct = lxc.Container(lxc.ContainerConfig("c-host", rootfs, placement, [lxc.PhysNic(ctr_end)]), workdir / "c")
    containers.append(ct)
    lease = start_and_dhcp(ct, "77", "privileged, phys NIC from the host netns")
    assert not common.host_link_exists(ctr_end)                      # moved into the container
    assert v2_cgroup_of(ct.init_pid) == placement.container
    assert os.path.isdir(os.path.join(lxc.cgroup2_mount(), placement.monitor))
    out = ct.sh("ip -4 addr show dev eth0; ip route; cat /etc/resolv.conf; ping -c 1 -W 2 10.77.0.1; "
                "echo hi > /root/p && cat /root/p").stdout
    assert f"inet {lease['ip']}/24" in out and "default via 10.77.0.1" in out and "nameserver 10.77.0.53" in out
    assert "1 packets received" in out and out.rstrip().endswith("hi")
    print(ct.conf_path.read_text())
    ct.stop()
    assert common.host_link_exists(ctr_end)                          # back where it came from
    left = placement.leftovers()
    assert left and all(os.path.basename(d) == "lxc.pivot" for d in left), left
    ct.destroy()
    assert placement.leftovers() == []


def test_lxc_phys_nic_in_another_netns_needs_nsenter(base_rootfs, workdir, scope, netns_factory, servers,
                                                       containers):
    """The NIC lives in another namespace (as the agent's peer_netdev in its private
    netns): lxc-start in the host namespace cannot find it; under nsenter --net it works,
    and every lxc-* command must run there too (abstract command socket)."""
    agent_ns = netns_factory()
    ctr_end, sw_end = unique(), unique()
    veth(ctr_end, sw_end, a_ns=agent_ns, b_ns=agent_ns)
    dhcp_server(servers, agent_ns, sw_end, "78")
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    cfg = lxc.ContainerConfig("c-ns", rootfs, lxc.CgroupPlacement(scope), [lxc.PhysNic(ctr_end)])
    wrong = lxc.Container(cfg, workdir / "wrong")                      # no netns: runs in the host's
    with pytest.raises(lxc.StartFailed) as exc:
        wrong.start()
    assert "Failed to retrieve ifindex" in exc.value.log, exc.value.log
    wrong.destroy()
    assert agent_ns.link_exists(ctr_end)
    cfg.log_file = None
    ct = lxc.Container(cfg, workdir / "c", netns=agent_ns)
    containers.append(ct)
    start_and_dhcp(ct, "78", "privileged, phys NIC from another netns (nsenter --net)")
    assert v2_cgroup_of(ct.init_pid) == cfg.cgroup.container
    host_view = subprocess.run(["lxc-info", "-n", "c-ns", "-P", str(ct.lxcpath), "-sH"], capture_output=True,
                               text=True)
    assert host_view.returncode != 0 or "RUNNING" not in host_view.stdout    # not visible from the host netns
    ct.stop()
    assert agent_ns.link_exists(ctr_end)                               # returned to the agent's netns


def test_lxc_foreground_mode(base_rootfs, workdir, scope, netns_factory, servers, containers):
    """lxc-start -F (no -d): the lxc-start we spawn IS the monitor (its PID is ours); the
    container's console (init's stdout) goes to its stdout."""
    ns = netns_factory()
    ctr_end, sw_end = unique(), unique()
    veth(ctr_end, sw_end, a_ns=ns, b_ns=ns)
    dhcp_server(servers, ns, sw_end, "86")
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    ct = lxc.Container(lxc.ContainerConfig("c-fg", rootfs, lxc.CgroupPlacement(scope), [lxc.PhysNic(ctr_end)]),
                       workdir / "c", netns=ns)
    containers.append(ct)
    t = ct.start(foreground=True)
    fg = ct.fg
    assert fg is not None and ct.monitor_pid == fg.pid and fg.poll() is None
    lease, t_dhcp, _ = lxc.dhcp(ct)
    assert_lease(lease, "86")
    report(f"LXC foreground (-F): RUNNING after {t:.3f} s; udhcpc lease {t_dhcp:.3f} s")
    ct.stop()
    assert fg.poll() is not None and ns.link_exists(ctr_end)
    assert "DEVCLOUD-INIT pid=1" in (workdir / "c/console.log").read_text()


def test_lxc_ip_netns_exec_loses_the_cgroup(base_rootfs, workdir, scope, netns_factory, containers):
    """Why not `ip netns exec`: it remounts /sys in a private mount namespace, LXC finds
    no cgroup hierarchy and the container runs OUTSIDE the given scope, silently."""
    ns = netns_factory()
    ctr_end, sw_end = unique(), unique()
    veth(ctr_end, sw_end, a_ns=ns, b_ns=ns)
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    placement = lxc.CgroupPlacement(scope)
    ct = lxc.Container(lxc.ContainerConfig("c-ipx", rootfs, placement, [lxc.PhysNic(ctr_end)]), workdir / "c",
                       netns=ns)
    containers.append(ct)
    ct.conf_path.write_text(ct.config.render())
    argv = ["ip", "netns", "exec", ns.name, "lxc-start", "-n", ct.name, "-P", str(ct.lxcpath), "-f",
            str(ct.conf_path), "-d", "-p", str(ct.pidfile)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    ct.monitor_pid = int(ct.pidfile.read_text())
    ct.init_pid = int(ct._lxc("lxc-info", "-pH").stdout)
    assert ct.state() == "RUNNING"
    cg = v2_cgroup_of(ct.init_pid)
    report(f"`ip netns exec lxc-start`: container cgroup {cg!r} (asked: {placement.container!r}); "
           f"monitor mount ns {os.readlink(f'/proc/{ct.monitor_pid}/ns/mnt')} vs ours "
           f"{os.readlink('/proc/self/ns/mnt')}")
    assert cg != placement.container
    assert not os.path.exists(os.path.join(lxc.cgroup2_mount(), placement.container))
    assert os.readlink(f"/proc/{ct.monitor_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")


def test_lxc_cgroup_dir_must_be_a_child_of_the_scope(base_rootfs, workdir, scope, host_links, containers):
    """lxc.cgroup.dir.container = <the scope itself> fails (LXC must create the final
    cgroup: EEXIST, then ERANGE since an explicit dir gets no retry suffix)."""
    ctr_end, peer = unique(), unique()
    host_links.append(ctr_end)
    veth(ctr_end, peer)
    host_links.append(peer)
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    bad = lxc.CgroupPlacement(scope)
    cfg = lxc.ContainerConfig("c-cg", rootfs, bad, [lxc.PhysNic(ctr_end)],
                              extra=[f"lxc.cgroup.dir.container = {scope}"])          # overrides the child
    ct = lxc.Container(cfg, workdir / "c")
    containers.append(ct)
    with pytest.raises(lxc.StartFailed) as exc:
        ct.start()
    log = exc.value.log
    assert "File exists - Creating the final cgroup" in log, log
    assert "Numerical result out of range - Failed to create container cgroup" in log, log
    assert common.host_link_exists(ctr_end)        # failed before the network was touched


def test_lxc_failed_start_after_nic_move_destroys_the_veth(base_rootfs, workdir, scope, netns_factory,
                                                           host_links, servers, containers):
    """A start that fails AFTER the phys NIC moved into the container's netns (here: init
    cannot be exec'd) destroys the veth, both ends. Joining a prepared netns instead
    (lxc.namespace.share.net) loses nothing and DHCP works the same."""
    sw = netns_factory()
    ctr_end, sw_end = unique(), unique()
    host_links.append(ctr_end)
    veth(ctr_end, sw_end, b_ns=sw)
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    ct = lxc.Container(lxc.ContainerConfig("c-fail", rootfs, lxc.CgroupPlacement(scope), [lxc.PhysNic(ctr_end)],
                                           init_cmd="/sbin/no-such-init"), workdir / "c")
    containers.append(ct)
    with pytest.raises(lxc.StartFailed) as exc:
        ct.start()
    assert 'Failed to exec "/sbin/no-such-init"' in exc.value.log
    # the container's netns is torn down asynchronously (cleanup_net): wait for it
    gone = wait_gone(lambda: common.host_link_exists(ctr_end) or sw.link_exists(sw_end))
    report(f"failed start after the NIC moved: veth pair gone {gone:.3f} s after lxc-start returned")
    ct.destroy()
    # the alternative: the agent's NIC stays in a netns it owns; the container joins it
    inst = netns_factory()
    inst_end, sw_end2 = unique(), unique()
    veth(inst_end, sw_end2, a_ns=inst, b_ns=sw)
    inst.ip("link", "set", inst_end, "name", "eth0")
    dhcp_server(servers, sw, sw_end2, "79")
    for init, ok in (("/sbin/no-such-init", False), ("/sbin/devcloud-init", True)):
        c = lxc.Container(lxc.ContainerConfig("c-share", rootfs, lxc.CgroupPlacement(scope),
                                              share_netns=inst.path, init_cmd=init), workdir / f"s{int(ok)}")
        containers.append(c)
        if ok:
            start_and_dhcp(c, "79", "privileged, joins a prepared netns (lxc.namespace.share.net)")
            c.stop()
        else:
            with pytest.raises(lxc.StartFailed):
                c.start()
        assert inst.link_exists("eth0") and sw.link_exists(sw_end2)


# -- unprivileged -------------------------------------------------------------------------------


def unpriv_container(rootfs: Path, workdir: Path, scope: str, name: str, *, idmapped: bool,
                     containers: list, nics: list | None = None, **kw) -> lxc.Container:
    ct = lxc.Container(lxc.ContainerConfig(name, rootfs, lxc.CgroupPlacement(scope), nics or [],
                                           idmap=idshift.IdMap(), idmapped_rootfs=idmapped, **kw), workdir / name)
    containers.append(ct)
    return ct


def writes_root(ct: lxc.Container) -> tuple[bool, str]:
    p = ct.sh("cat /proc/self/uid_map; ls -lnd /root /bin/busybox; echo ok > /root/unpriv && cat /root/unpriv",
              check=False)
    return p.returncode == 0 and p.stdout.rstrip().endswith("ok"), p.stdout + p.stderr


def test_unprivileged_on_an_unshifted_root_cannot_write_root(base_rootfs, workdir, scope, containers):
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    ct = unpriv_container(rootfs, workdir, scope, "u-plain", idmapped=False, containers=containers)
    ct.start()
    ok, out = writes_root(ct)
    assert not ok
    assert out.split()[:3] == ["0", "100000", "65536"] and "65534" in out and "Permission denied" in out, out


@pytest.mark.parametrize("fs", ["ext4", "tmpfs"])
def test_unprivileged_idmapped_rootfs(base_rootfs, workdir, scope, containers, fs):
    """lxc.rootfs.options = idmap=container: no copy, no chown; files stay uid 0 on disk."""
    if fs == "tmpfs":
        mnt = workdir / "tmpfs"
        mnt.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=755", "rtfx-tmpfs", str(mnt)], check=True)
        rootfs = copy_rootfs(base_rootfs, mnt / "rootfs")
    else:
        rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    try:
        probe = idshift.probe_idmapped_mount(rootfs)
        report(f"idmapped mount probe: {probe}")
        assert probe.supported and probe.fstype == fs
        ct = unpriv_container(rootfs, workdir, scope, f"u-idmap-{fs}", idmapped=True, containers=containers)
        t = ct.start()
        ok, out = writes_root(ct)
        assert ok, out
        st = os.stat(rootfs / "root/unpriv")
        assert (st.st_uid, st.st_gid) == (0, 0)                       # stored unshifted
        report(f"LXC unprivileged, idmapped rootfs on {fs}: start {t:.3f} s, writes /root")
        ct.destroy()
    finally:
        if fs == "tmpfs":
            subprocess.run(["umount", str(workdir / "tmpfs")], check=False)


def test_unprivileged_shifted_copy(base_rootfs, workdir, scope, containers, netns_factory, host_links, servers):
    """Without idmapped mounts: a copy chowned by +100000 (setuid bits restored, ACLs and
    file caps shifted). The container then writes its own /root, and gets its address
    by DHCP over a phys NIC (moved into its own netns, which its userns owns)."""
    sw = netns_factory()
    ctr_end, sw_end = unique(), unique()
    host_links.append(ctr_end)
    veth(ctr_end, sw_end, b_ns=sw)
    dhcp_server(servers, sw, sw_end, "84")
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    (rootfs / "usr/bin/suid-marker").write_bytes(b"#!/bin/sh\n")
    os.chown(rootfs / "usr/bin/suid-marker", 0, 0)          # (a chown, even root's, clears setuid)
    os.chmod(rootfs / "usr/bin/suid-marker", 0o4755)
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in
                                         [(0x01, 6, 0xFFFFFFFF), (0x02, 4, 1000), (0x04, 4, 0xFFFFFFFF),
                                          (0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)])
    os.setxattr(rootfs / "etc/hosts", "system.posix_acl_access", acl)
    cap_v2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)      # cap_net_raw+ep, v2
    os.setxattr(rootfs / "bin/busybox", "security.capability", cap_v2)
    stats = idshift.shift_tree(rootfs)
    report(f"shift busybox rootfs on ext4: {stats.entries} entries in {stats.seconds:.3f} s "
           f"(suid restored {stats.suid_restored}, acls {stats.acls}, caps {stats.caps})")
    assert stats.suid_restored == 1 and stats.acls == 1 and stats.caps == 1
    assert os.stat(rootfs / "usr/bin/suid-marker").st_mode & 0o7777 == 0o4755
    assert os.stat(rootfs / "home/user").st_uid == 101000 and os.lstat(rootfs / "bin/sh").st_uid == 100000
    assert idshift.caps_rootid(os.getxattr(rootfs / "bin/busybox", "security.capability")) == 100000
    new_acl = os.getxattr(rootfs / "etc/hosts", "system.posix_acl_access")
    assert struct.unpack_from("<I", new_acl, 4 + 8 + 4)[0] == 101000
    ct = unpriv_container(rootfs, workdir, scope, "u-shift", idmapped=False, containers=containers,
                          nics=[lxc.PhysNic(ctr_end)])
    start_and_dhcp(ct, "84", "unprivileged (shifted rootfs), phys NIC")
    ok, out = writes_root(ct)
    assert ok, out
    assert os.stat(rootfs / "root/unpriv").st_uid == 100000
    perm = ct.sh("ls -ln /usr/bin/suid-marker /home/user -d").stdout
    assert "-rwsr-xr-x" in perm and " 1000 " in perm, perm
    ct.stop()
    assert common.host_link_exists(ctr_end)
    back = idshift.shift_tree(rootfs, unshift=True)
    assert back.entries == stats.entries + 1 and os.stat(rootfs / "root/unpriv").st_uid == 0


def test_unprivileged_cannot_use_a_netns_the_host_owns(base_rootfs, workdir, scope, containers, netns_factory,
                                                      servers):
    """lxc.namespace.share.net with an UNPRIVILEGED container: the netns belongs to the
    host's user namespace, so the container's root has no CAP_NET_ADMIN/NET_RAW there:
    sysfs cannot be mounted (sys:mixed must go) and udhcpc cannot open its socket. The
    address must then be configured from outside (by the agent), not by DHCP inside."""
    inst, sw = netns_factory(), netns_factory()
    a, b = unique(), unique()
    veth(a, b, a_ns=inst, b_ns=sw)
    inst.ip("link", "set", a, "name", "eth0")
    dhcp_server(servers, sw, b, "85")
    rootfs = copy_rootfs(base_rootfs, workdir / "rootfs")
    idshift.shift_tree(rootfs)
    ct = unpriv_container(rootfs, workdir, scope, "u-share", idmapped=False, containers=containers,
                          share_netns=inst.path)
    with pytest.raises(lxc.StartFailed) as exc:
        ct.start()
    assert 'Operation not permitted - Failed to mount "sysfs"' in exc.value.log, exc.value.log
    ct.destroy()
    ct = unpriv_container(rootfs, workdir, scope, "u-share2", idmapped=False, containers=containers,
                          share_netns=inst.path, extra=["lxc.mount.auto =", "lxc.mount.auto = proc:mixed"])
    ct.start()
    lease, _, out = lxc.dhcp(ct, tries=2)
    assert lease is None and "socket: Operation not permitted" in out, out
    assert inst.link_exists("eth0")


def synth_tree(root: Path, total_mb: int = 200, files: int = 10000, dirs: int = 500, links: int = 2000) -> float:
    """~total_mb of real data in `files` files (10% large, the rest 4 KiB) + symlinks."""
    t = time.monotonic()
    big = files // 10
    small_sz = 4096
    big_sz = (total_mb * 2**20 - (files - big) * small_sz) // big
    bs, bb = b"\0" * small_sz, b"\1" * big_sz
    for i in range(dirs):
        (root / f"d{i:03d}").mkdir(parents=True)
    for i in range(files):
        (root / f"d{i % dirs:03d}" / f"f{i}").write_bytes(bb if i % 10 == 0 else bs)
    for i in range(links):
        os.symlink(f"f{i}", root / f"d{i % dirs:03d}" / f"l{i}")
    return time.monotonic() - t


def test_shift_timing_200mb_on_ext4(workdir):
    src = workdir / "src"
    made = synth_tree(src)
    t_copy = idshift.copy_tree(src, workdir / "dst")
    s = idshift.shift_tree(workdir / "dst")
    assert s.entries == 10000 + 2000 + 500 + 1 and s.skipped == 0
    assert os.lstat(workdir / "dst/d007/l7").st_uid == 100000 and os.stat(workdir / "dst/d007/f7").st_uid == 100000
    s2 = idshift.shift_tree(workdir / "src")
    report(f"~200 MB rootfs ({s.entries} entries) on ext4: cp -a {t_copy:.2f} s + shift {s.seconds:.3f} s; "
           f"shift in place {s2.seconds:.3f} s (tree made in {made:.2f} s)")


# -- zfs-fuse --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zfs_pool():
    """A pool of our own (rtfx<hex>) on a sparse file under /var/tmp, through the
    project's zfs-fuse helpers (shared daemon, Lease, stop only what we started)."""
    from agent.drivers.embedded import zfs_fuse
    from agent.drivers.zfs.cli import ZfsCommand
    from agent.errors import AgentError
    from agent.metrics import Metrics
    avail = zfs_fuse.probe()
    if not avail.available:
        pytest.skip(f"zfs-fuse: {avail.reason}")
    state = Path(tempfile.mkdtemp(prefix="rtfx-zfs-state-", dir="/var/tmp"))
    try:
        daemon, lease = zfs_fuse.ensure_running(state)
    except AgentError as exc:
        shutil.rmtree(state, ignore_errors=True)
        pytest.skip(f"zfs-fuse does not start here: {exc}")
    cmd = ZfsCommand(Metrics())
    name = unique()
    path, mnt = Path(f"/var/tmp/{name}.img"), f"/var/tmp/{name}-mnt"
    try:
        zfs_fuse.ensure_file_pool(cmd, name, path, size=2 << 30, mountpoint=mnt, cachefile=False)
        yield name, Path(mnt)
    finally:
        try:
            for _ in range(50):
                r = subprocess.run(["zpool", "destroy", "-f", name], capture_output=True, text=True)
                if r.returncode == 0 or "no such pool" in r.stderr:
                    break
                time.sleep(0.2)
            path.unlink(missing_ok=True)
            if os.path.isdir(mnt):
                os.rmdir(mnt)
        finally:
            zfs_fuse.stop_if_unused(daemon, lease)
            shutil.rmtree(state, ignore_errors=True)


def zfs(*args: str) -> str:
    return subprocess.run(["zfs", *args], check=True, capture_output=True, text=True).stdout


def zfs_destroy(ds: str) -> None:
    """Unmount `ds` and its children (zfs-fuse: a mounted dataset is "busy"), destroy -r,
    retrying while zfs-fuse still holds it; what stays goes with the pool at module end."""
    names = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", ds], capture_output=True,
                           text=True).stdout.split()
    for n in sorted(names, key=len, reverse=True):
        subprocess.run(["zfs", "umount", n], capture_output=True)
    for _ in range(100):
        r = subprocess.run(["zfs", "destroy", "-r", ds], capture_output=True, text=True)
        if r.returncode == 0 or "does not exist" in r.stderr:
            return
        time.sleep(0.2)
    print(f"[runtimes] left {ds} to the pool's destroy: {r.stderr.strip()}")


def test_zfs_fuse_refuses_idmapped_mounts(zfs_pool, workdir, scope, host_links, netns_factory, containers):
    """zfs-fuse (FUSE without FUSE_ALLOW_IDMAP) refuses MOUNT_ATTR_IDMAP with EINVAL; LXC
    with idmap=container then fails after moving the phys NIC in: the veth is gone."""
    pool, mnt = zfs_pool
    ds = f"{pool}/{unique()}"
    zfs("create", ds)
    root = images.build_busybox_rootfs(mnt / ds.split("/", 1)[1] / "rootfs")
    probe = idshift.probe_idmapped_mount(root)
    report(f"idmapped mount probe: {probe} (errno {probe.errno})")
    assert not probe.supported and probe.errno == 22 and probe.fstype == "fuse.zfs"
    sw = netns_factory()
    ctr_end, sw_end = unique(), unique()
    host_links.append(ctr_end)
    veth(ctr_end, sw_end, b_ns=sw)
    ct = lxc.Container(lxc.ContainerConfig("u-zfs-idmap", root, lxc.CgroupPlacement(scope), [lxc.PhysNic(ctr_end)],
                                           idmap=idshift.IdMap(), idmapped_rootfs=True), workdir / "c")
    containers.append(ct)
    with pytest.raises(lxc.StartFailed) as exc:
        ct.start()
    assert "Invalid argument - Failed to create detached idmapped mount" in exc.value.log, exc.value.log
    wait_gone(lambda: common.host_link_exists(ctr_end) or sw.link_exists(sw_end))
    ct.destroy()
    zfs_destroy(ds)


def test_zfs_fuse_shifted_image_clone(zfs_pool, base_rootfs, workdir, scope, containers):
    """What works on zfs-fuse: the image's dataset cloned ONCE per idmap and shifted, then
    snapshotted; instances are clones of that snapshot (instant) and an unprivileged
    container on one writes its own /root."""
    pool, mnt = zfs_pool
    base = f"{pool}/{unique()}"
    img, shifted, inst = f"{base}/img", f"{base}/img-100000", f"{base}/inst1"
    zfs("create", base)
    zfs("create", img)
    copy_rootfs(base_rootfs, mnt / img.split("/", 1)[1] / "rootfs")
    zfs("snapshot", f"{img}@ready")
    t = time.monotonic()
    zfs("clone", f"{img}@ready", shifted)
    s = idshift.shift_tree(mnt / shifted.split("/", 1)[1] / "rootfs")
    zfs("snapshot", f"{shifted}@ready")
    t_variant = time.monotonic() - t
    t = time.monotonic()
    zfs("clone", f"{shifted}@ready", inst)
    t_clone = time.monotonic() - t
    rootfs = mnt / inst.split("/", 1)[1] / "rootfs"
    assert os.stat(rootfs / "root").st_uid == 100000
    ct = unpriv_container(rootfs, workdir, scope, "u-zfs-shift", idmapped=False, containers=containers)
    t_start = ct.start()
    ok, out = writes_root(ct)
    assert ok, out
    report(f"zfs-fuse shifted variant (clone + shift {s.entries} entries + snapshot): {t_variant:.3f} s "
           f"(shift {s.seconds:.3f} s); instance clone {t_clone:.3f} s; unprivileged start {t_start:.3f} s, "
           "writes /root")
    ct.destroy()
    zfs_destroy(base)


def test_zfs_fuse_shift_timing_200mb(zfs_pool):
    pool, mnt = zfs_pool
    base = f"{pool}/{unique()}"
    zfs("create", base)
    zfs("create", f"{base}/img")
    made = synth_tree(mnt / base.split("/", 1)[1] / "img")
    zfs("snapshot", f"{base}/img@ready")
    t = time.monotonic()
    zfs("clone", f"{base}/img@ready", f"{base}/img-100000")
    s = idshift.shift_tree(mnt / base.split("/", 1)[1] / "img-100000")
    t_all = time.monotonic() - t
    assert s.entries == 10000 + 2000 + 500 + 1
    report(f"~200 MB tree ({s.entries} entries) on zfs-fuse: written in {made:.2f} s; clone + shift "
           f"{t_all:.2f} s (shift {s.seconds:.2f} s)")
    zfs_destroy(base)


# -- QEMU --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guest():
    require(common.need, "qemu-system-x86_64", "qemu-system-x86")
    kernel = require(qemu.find_kernel)
    d = Path(tempfile.mkdtemp(prefix="rtfx-initramfs-", dir="/var/tmp"))
    try:
        t = time.monotonic()
        ird = qemu.build_initramfs(d / "initramfs.cpio.gz", kernel)
        report(f"initramfs: {ird.stat().st_size} bytes in {time.monotonic() - t:.3f} s; kernel {kernel.package} "
               f"{kernel.version}; modules {' '.join(m.name for m in kernel.modules)}")
        yield kernel, ird
    finally:
        shutil.rmtree(d, ignore_errors=True)


def boot(guest, workdir, netns_factory, servers, *, accel: str, disk_dir: Path, net: str,
         boot_timeout: float = 90) -> tuple[qemu.Vm, dict, str]:
    kernel, ird = guest
    ns = netns_factory()
    tap = unique()
    ns.ip("tuntap", "add", "dev", tap, "mode", "tap")
    dhcp_server(servers, ns, tap, net)
    marker = f"devcloud-disk-{secrets.token_hex(4)}"
    disk = qemu.make_disk(disk_dir / "disk.raw", marker)
    spec = qemu.VmSpec(kernel, ird, workdir / "serial.log", tap=tap, disk=disk, accel=accel, ping=f"10.{net}.0.1")
    vm = qemu.Vm(spec, ns).start()
    try:
        if vm.wait_for("DEVCLOUD-BOOT", boot_timeout) is not None:
            vm.wait_for("DEVCLOUD-DONE", 60)
            vm.wait_exit(15)
    finally:
        vm.stop()
    return vm, vm.result(), marker


def test_vm_tcg_dhcp_over_tap_and_raw_disk(guest, workdir, netns_factory, servers):
    vm, r, marker = boot(guest, workdir, netns_factory, servers, accel="tcg", disk_dir=workdir, net="81")
    print(" ".join(vm.spec.argv()))
    assert r["boot"] is not None, vm.serial()[-3000:] + vm.stderr()
    assert not r["errors"], r["errors"]
    assert_lease(r["lease"], "81")
    assert r["ping"] and r["ping"]["ok"] == "1", r["ping"]
    assert r["disk"] and r["disk"]["marker"] == marker, r["disk"]
    assert qemu.read_guest_write(vm.spec.disk) == f"DEVCLOUD-GUEST-WROTE {vm.spec.token}"
    assert r["done"] is not None and vm.proc.returncode == 0
    h = r["host_seen"]
    report(f"QEMU TCG: spawn -> /init {h['DEVCLOUD-BOOT']:.2f} s (guest uptime {r['boot']['uptime']} s); "
           f"-> DHCP discover {h['DEVCLOUD-DHCP-START']:.2f} s (uptime {r['dhcp_start']['uptime']} s); "
           f"-> lease {h['DEVCLOUD-LEASE']:.2f} s (uptime {r['dhcp_end']['uptime']} s); "
           f"ping done uptime {r['ping']['uptime']} s; poweroff {h['DEVCLOUD-DONE']:.2f} s")


def test_vm_tcg_disk_file_on_zfs_fuse_dataset(zfs_pool, guest, workdir, netns_factory, servers):
    """Where zvols are absent (zfs-fuse), the VM's disk is a raw file on the volume's
    dataset (cache=writeback: FUSE has no O_DIRECT)."""
    pool, mnt = zfs_pool
    ds = f"{pool}/{unique()}"
    zfs("create", ds)
    try:
        vm, r, marker = boot(guest, workdir, netns_factory, servers, accel="tcg",
                             disk_dir=mnt / ds.split("/", 1)[1], net="82")
        assert r["disk"] and r["disk"]["marker"] == marker, vm.serial()[-2000:] + vm.stderr()
        assert_lease(r["lease"], "82")
        assert qemu.read_guest_write(vm.spec.disk) == f"DEVCLOUD-GUEST-WROTE {vm.spec.token}"
        report(f"QEMU TCG, disk file on zfs-fuse: lease at {r['host_seen']['DEVCLOUD-LEASE']:.2f} s, "
               f"disk read + write ok")
    finally:
        zfs_destroy(ds)


def test_vm_kvm(guest, workdir, netns_factory, servers):
    """-accel kvm: reported, not required (KVM here is PVM: it cannot boot a stock kernel)."""
    ok, why = qemu.kvm_usable()
    if not ok:
        pytest.skip(f"KVM: {why}")
    vm, r, _ = boot(guest, workdir, netns_factory, servers, accel="kvm", disk_dir=workdir, net="83",
                    boot_timeout=12)
    if r["boot"] is None:
        tail = vm.serial().replace("\x1b", "")[-300:]
        report(f"QEMU KVM: no output from the guest kernel within 12 s after the boot loader "
               f"(serial tail {tail!r}); TCG is what boots here")
        pytest.xfail("KVM (PVM) on this machine does not boot a stock Debian kernel; TCG does")
    assert_lease(r["lease"], "83")
    report(f"QEMU KVM: lease at {r['host_seen']['DEVCLOUD-LEASE']:.2f} s")
