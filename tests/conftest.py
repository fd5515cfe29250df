"""Fixtures for the fast tier. Plane fixtures live in tests/support/<plane>.py
and are imported here so tests/ and integration/ share one implementation."""
