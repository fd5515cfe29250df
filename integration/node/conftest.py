"""Host side of the node tier: guest/ holds tests that only run INSIDE the VM."""
import os

# guest-run.sh sets DEVCLOUD_NODE_GUEST=1; everywhere else guest/ is not collected
collect_ignore = [] if os.environ.get("DEVCLOUD_NODE_GUEST") == "1" else ["guest"]
