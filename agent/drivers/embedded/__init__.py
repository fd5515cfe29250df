"""Launchers for local daemons the agent may supervise (embedded OVN stack,
zfs-fuse). The same code serves the agent's embedded defaults, the test
fixtures and bench: one implementation. Children are stopped by PID only."""
