"""The declared contract of every driver a service uses, one module per driver.

Each contract is a typing.Protocol whose method docstrings ARE the contract:
what comes back, idempotency, what happens when the object is absent or
exists, and which error (agent.errors class + reason) is raised. Services and
the instance plane annotate their collaborators with these Protocols, so
mypy (tests/foundation/test_types.py) checks that a service calls only what a
contract offers. Each driver class subclasses its contract: mypy checks the
implementation against it at the class, help() shows the contract's
docstrings, and the driver's own docstrings say only how it does it.

- netlink.NetlinkContract      drivers/netlink (Netlink)
- ovsdb.OvnNbContract          drivers/ovsdb/nb.py (OvnNb)
- ovsdb.OvsDbContract          drivers/ovsdb/vswitch.py (OvsDb)
- cgroup.CgroupContract        drivers/cgroup (CgroupDriver)
- statestore.StateStoreContract drivers/statestore.py (StateStore)
- host.KvmContract, host.KernelContract   drivers/kvm.py, drivers/kernel.py
- the ZFS backend's contract is drivers/zfs/backend.py's ZfsBackend (a base class
  shared by its two backends, lzc and cli).

Value types a contract speaks in stay where they are (drivers/netlink/link.py,
drivers/ovsdb/nb_types.py, agent/model/compute.py, or the driver module);
where importing them would import the driver (which imports its contract),
the contract imports them for annotations only (TYPE_CHECKING).
"""
