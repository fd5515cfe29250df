"""Fixtures for the integration tier (real agent process + real components).
Plane fixtures live in tests/support/<plane>.py and are imported here."""

from tests.support.cgroup import *  # noqa: E402,F401,F403
