#!/bin/bash
# Runs INSIDE the node guest as /mnt/host/run.sh (root, systemd PID 1, no
# network): installs the agent from the host-built wheelhouse into a venv,
# installs its unit file, runs the guest pytest suite. rc = pytest's rc.
# Share layout (staged by node_harness.py): wheelhouse/ src/ results/ pytest-args run-timeout
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
SHARE=/mnt/host
RES=$SHARE/results
VENV=/opt/devcloud-agent
SRC=/opt/devcloud-src
mkdir -p "$RES"
up() { cut -d' ' -f1 /proc/uptime; }
loud() { echo "!!!!! $*"; echo "$*" >>"$RES/notes.txt"; echo "GUEST NOTE: $*" >/dev/console; }

echo "## guest $(uname -r), systemd $(systemctl --version | awk 'NR==1{print $2}'), $(python3 --version), state $(systemctl is-system-running || true)"
# where boot time went (it varies 2-3x with the host's load under TCG)
systemd-analyze time || true
systemd-analyze blame --no-pager | head -8 || true
t0=$(up)
# system site packages: Debian's python3-pyzfs (libzfs_core) must be importable.
# --without-pip + pip run from Debian's bundled wheel: ensurepip byte-compiles
# pip and setuptools, ~45 s under TCG; this installs pip alongside, uncompiled.
python3 -m venv --without-pip --system-site-packages "$VENV"
tv=$(up)
pipwhl=$(ls /usr/share/python-wheels/pip-*.whl | tail -1)
"$VENV/bin/python" "$pipwhl/pip" install -q --no-index --no-compile --disable-pip-version-check \
  --find-links "$SHARE/wheelhouse" --find-links /usr/share/python-wheels pip 'devcloud-agent[test]'
for b in devcloud-agent devcloudctl; do
  [ -x "$VENV/bin/$b" ] && ln -sf "$VENV/bin/$b" "/usr/local/bin/$b"
done
t1=$(up)
echo "## devcloud-agent in $VENV: venv $(awk -v a="$t0" -v b="$tv" 'BEGIN{print b-a}')s, pip install $(awk -v a="$tv" -v b="$t1" 'BEGIN{print b-a}')s"

# a local copy: tests may write beside themselves; the share stays as staged
rm -rf "$SRC"; cp -a "$SHARE/src" "$SRC"
unit=$SRC/systemd/devcloud-agent.service
if [ -f "$unit" ]; then
  install -m 0644 "$unit" /etc/systemd/system/devcloud-agent.service
  systemctl daemon-reload
  echo "## installed unit $(systemctl show -p FragmentPath --value devcloud-agent.service)"
else
  loud "systemd/devcloud-agent.service is not in this tree: unit install SKIPPED (merge main once it has the unit)"
fi
# the unit passes --config /etc/devcloud-agent/agent.toml: ship the example (all defaults), as a package would
conf=$SRC/systemd/agent.toml.example
if [ -f "$conf" ]; then
  install -D -m 0644 "$conf" /etc/devcloud-agent/agent.toml
else
  loud "systemd/agent.toml.example is not in this tree: /etc/devcloud-agent/agent.toml NOT installed"
fi

args=()
# extra pytest arguments from the host (DEVCLOUD_NODE_PYTEST_ARGS), one per line
[ -s "$SHARE/pytest-args" ] && mapfile -t args <"$SHARE/pytest-args"
cd "$SRC"
rc=0
DEVCLOUD_NODE_GUEST=1 DEVCLOUD_NODE_RESULTS=$RES \
  "$VENV/bin/python" -m pytest integration/node/guest -p no:cacheprovider -v \
  --junitxml="$RES/junit.xml" -o junit_family=xunit2 "${args[@]}" || rc=$?
t2=$(up)
printf '{"install_s": %s, "venv_s": %s, "suite_s": %s, "boot_complete_uptime_s": %s}\n' \
  "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$(awk -v a="$t0" -v b="$tv" 'BEGIN{print b-a}')" \
  "$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}')" \
  "$(cat "$SHARE/boot-uptime" 2>/dev/null || echo null)" >"$RES/guest-timings.json"
exit "$rc"
