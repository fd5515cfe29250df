"""Fixtures for the fast tier. Plane fixtures live in tests/support/<plane>.py
and are imported here so tests/ and integration/ share one implementation."""

from tests.support.cgroup import *  # noqa: E402,F401,F403
from tests.support.ovn import netns_factory, ovn_stack, ovn_tools, private_ovn_stack  # noqa: E402,F401
from tests.support.zfs import *  # noqa: E402,F401,F403  (storage plane: zfs_pool, zfs_backend, ...)
from tests.support.instances import *  # noqa: E402,F401,F403  (instance plane: instance_agent)
