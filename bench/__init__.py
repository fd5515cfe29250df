"""devcloud-agent benchmarks: `python -m bench --help` (see bench/README.md).

The harness starts the real components (zfs-fuse pool, OVN stack with the
userspace datapath, a cgroup v2 subtree) with the same launchers the tests
use, runs the agent as a real process, drives it over gRPC from several
client processes, and measures the same work done the LXD way (one CLI per
step) and each step alone (the floor) in the same run. Numbers only:
nothing here asserts a timing.
"""
