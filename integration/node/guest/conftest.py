"""Fixtures for the guest suite: runs INSIDE the node VM as root, systemd PID 1.

Every test_*.py in this directory is collected by guest-run.sh; nothing else
needs registering. The host never collects this directory (../conftest.py).
"""
import os
import pathlib
import subprocess
import time
import uuid

import pytest

# Process start is ~40x slower under TCG than on the host: generous bounds.
CMD_TIMEOUT = 300


@pytest.fixture(scope="session")
def results_dir():
    """Directory on the 9p share the host reads back (JSON numbers, notes)."""
    path = pathlib.Path(os.environ.get("DEVCLOUD_NODE_RESULTS", "/tmp/devcloud-node-results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sh(*argv, check=True, timeout=CMD_TIMEOUT, **kw):
    """Run argv (never a shell string); on failure the error shows stdout/stderr."""
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} -> rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


@pytest.fixture(scope="session")
def sh():
    return _sh


@pytest.fixture
def unique():
    """Short random suffix: fits IFNAMSIZ-limited names, keeps tests independent."""
    return uuid.uuid4().hex[:6]


def wait_for(predicate, timeout=60.0, what="condition"):
    """Poll predicate() until truthy (returns its value) or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def poll():
    return wait_for


# ---------------------------------------------------------------- the agent as its systemd unit
# Modules driving devcloud-agent.service run after every other guest test, in this
# order (the clone latency test restarts the agent with backend=cli: last); they share
# one agent, one pool, one OVN and what they built through the agent (session scope).
AGENT_MODULES = ("test_agent_storage_openzfs.py", "test_agent_instances_openzfs.py", "test_network_kernel_datapath.py", "test_bridge_vlan.py",
                 "test_agent_service.py",
                 "test_agent_clone_latency.py")


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.node)
    rank = {name: i for i, name in enumerate(AGENT_MODULES)}
    items.sort(key=lambda it: rank.get(it.path.name, -1))   # stable: other modules keep their order, first


@pytest.fixture(scope="session")
def session_id():
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def zpool(session_id):
    """An OpenZFS pool for the agent: on the spare disk /dev/vdb when it is unused, else a file."""
    import agent_unit as au
    au.run("modprobe", "zfs")
    name = f"dcnode{session_id}"
    mnt = pathlib.Path(f"/var/tmp/{name}")
    disk = pathlib.Path("/dev/vdb")
    vdev, backing = None, None
    if disk.is_block_device() and not au.run("blkid", disk, check=False).stdout.strip() \
            and not any(p.name.startswith("vdb") and p.name != "vdb" for p in pathlib.Path("/sys/class/block").iterdir()):
        vdev = str(disk)
    else:
        backing = pathlib.Path(f"/var/tmp/{name}.img")
        with open(backing, "wb") as f:
            f.truncate(2 << 30)
        vdev = str(backing)
    au.run("zpool", "create", "-f", "-m", mnt, name, vdev)
    try:
        yield name
    finally:
        au.run("zpool", "destroy", "-f", name, check=False)
        if backing is not None:
            backing.unlink(missing_ok=True)
        else:
            au.run("wipefs", "-a", vdev, check=False)
        import shutil
        shutil.rmtree(mnt, ignore_errors=True)


@pytest.fixture(scope="session")
def ovn_services():
    import agent_unit as au
    svc = au.OvnServices()
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def agent(zpool, ovn_services, session_id, results_dir):
    """devcloud-agent.service started by systemctl with the node-tier config."""
    import agent_unit as au
    unit = au.AgentUnit(pool=zpool, node=f"node-{session_id}")
    unit.write_config("lzc")
    unit.install_dropin()
    try:
        took = unit.start()
        au.record(results_dir, "agent-service", event="first start", start_s=round(took, 2))
        yield unit
    finally:
        unit.restore()


@pytest.fixture(scope="session")
def storage_world(agent, session_id):
    import agent_world as aw
    world = aw.StorageWorld(session_id)
    try:
        aw.build_storage(agent, world)
        yield world
    finally:
        aw.teardown_storage(agent, world)


@pytest.fixture(scope="session")
def compute_world(agent, session_id):
    import agent_world as aw
    world = aw.ComputeWorld(session_id)
    try:
        aw.build_compute(agent, world)
        yield world
    finally:
        aw.teardown_compute(agent, world)


@pytest.fixture(scope="session")
def network_world(agent, ovn_services, session_id):
    import agent_unit as au
    import agent_world as aw
    world = aw.NetworkWorld(session_id)
    try:
        aw.build_network(agent, world, au.SB_REMOTE)
        yield world
    finally:
        aw.teardown_network(agent, world)
        aw.teardown_chassis(world)
