"""Drift between a desired spec and the live system, as data.

Every plane's diff returns Drift items with a stable `reason` code (what a
controller or the instance plane's Repair switches on) and a `detail` text
for people. Reading drift never changes anything; repairing it is the
plane's Ensure with the same spec.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Drift:
    plane: str                 # storage | network | compute
    object: str                # the object that differs: dataset, netdev, logical port, cgroup path...
    reason: str                # stable code, e.g. VETH_MISSING, REFQUOTA_DRIFT, SCOPE_MISSING
    detail: str                # what differs, for people
    desired: str = ""
    observed: str = ""
    repairable: bool = True    # False: an immutable property differs (Ensure would answer ALREADY_EXISTS)
