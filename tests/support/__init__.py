"""Test support shared by tests/, integration/ and bench/: fixtures that start
real components (agent server, OVN stack, zfs-fuse pool, cgroup subtree) and
stop them by PID."""
