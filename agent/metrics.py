"""Prometheus metrics: one registry per agent, built by the composition root.

Names follow LESSONS.md: prefix `devcloud_agent_`, base units, `_total`
counters. Drivers receive a `Metrics` and time their own operations with
`metrics.time(histogram, op)`; tests pass `Metrics()` (a private registry).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Buckets from 100 µs to 30 s: kernel ops sit at the low end, image imports at the top.
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """All of the agent's metrics, registered in one CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info("devcloud_agent_build", "Agent build information", registry=r)
        self.rpc_total = Counter("devcloud_agent_rpc_total", "RPCs handled",
                                 ["method", "code"], registry=r)
        self.rpc_duration = Histogram("devcloud_agent_rpc_duration_seconds", "RPC handling time",
                                      ["method", "code"], buckets=_BUCKETS, registry=r)
        self.zfs_op = Histogram("devcloud_agent_zfs_operation_duration_seconds",
                                "ZFS operation time", ["op", "backend"], buckets=_BUCKETS, registry=r)
        self.netlink_op = Histogram("devcloud_agent_netlink_operation_duration_seconds",
                                    "Netlink operation time", ["op"], buckets=_BUCKETS, registry=r)
        self.ovsdb_txn = Histogram("devcloud_agent_ovsdb_transaction_duration_seconds",
                                   "OVSDB transaction time", ["db"], buckets=_BUCKETS, registry=r)
        self.cgroup_op = Histogram("devcloud_agent_cgroup_operation_duration_seconds",
                                   "cgroupfs operation time", ["op"], buckets=_BUCKETS, registry=r)
        self.port_ready_wait = Histogram("devcloud_agent_port_ready_wait_seconds",
                                         "Time from port binding to ovn-installed and up",
                                         buckets=_BUCKETS, registry=r)
        self.instance_op = Histogram("devcloud_agent_instance_operation_duration_seconds",
                                     "Instance plane operation time (prepare, release, bulk_release, repair, gc)",
                                     ["op", "result"], buckets=_BUCKETS, registry=r)
        self.reconcile_total = Counter("devcloud_agent_reconcile_total", "Reconcile runs",
                                       ["plane", "result"], registry=r)
        self.reconcile_unfinished = Gauge("devcloud_agent_reconcile_unfinished",
                                          "Interrupted operations the last reconcile pass could not finish "
                                          "(retried with backoff; the agent is not ready while > 0)", registry=r)
        self.orphans_total = Counter("devcloud_agent_orphans_removed_total",
                                     "Owned objects removed by garbage collection or reconcile",
                                     ["plane", "kind"], registry=r)
        self.ready = Gauge("devcloud_agent_ready", "1 once startup work finished", registry=r)
        self.startup_step = Gauge("devcloud_agent_startup_step_seconds", "How long each startup step took",
                                  ["step"], registry=r)
        self.startup_failures = Counter("devcloud_agent_startup_step_failures_total",
                                        "Failed attempts of a startup step (each is retried with backoff)",
                                        ["step"], registry=r)
        self.startup_unfinished = Gauge("devcloud_agent_startup_steps_unfinished",
                                        "Startup steps that have not succeeded yet (ready when 0)", registry=r)
        self.facility_up = Gauge("devcloud_agent_facility_available",
                                 "1 when a driver's facility is available", ["facility"], registry=r)

    @contextmanager
    def time(self, histogram: Histogram, **labels: str) -> Iterator[None]:
        """Observe the duration of the block into `histogram` with `labels`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            child = histogram.labels(**labels) if labels else histogram
            child.observe(time.perf_counter() - start)
