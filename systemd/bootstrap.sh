#!/usr/bin/env bash
# Installs everything devcloud-agent needs on a Debian 12 node, idempotently:
#   apt packages (OVS/OVN, zfs-fuse, libsystemd headers, ...), a virtualenv at
#   ./.venv with the agent installed in editable mode.
# usage: systemd/bootstrap.sh            runtime dependencies only
#        systemd/bootstrap.sh --test     plus test/bench tools (pytest, buf, qemu...)
# Re-running is cheap: each step is skipped when already satisfied.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

log() { printf '[bootstrap] %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "must run as root (apt, netlink, cgroupfs)"; exit 1; }

runtime_pkgs=(openvswitch-switch openvswitch-common python3-openvswitch ovn-central ovn-host zfs-fuse
              iproute2 libsystemd-dev pkg-config python3-venv kmod procps)
test_pkgs=(ethtool iputils-ping qemu-system-x86 qemu-utils debootstrap e2fsprogs
           nodejs npm bc)
pkgs=("${runtime_pkgs[@]}")
((want_test)) && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  # nodejs/npm may come from nodesource or be preinstalled outside dpkg
  if [[ $p == npm || $p == nodejs ]] && command -v "$p" >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 -q update >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends install "${missing[@]}" >/dev/null
fi

# The Python that creates the venv: the first python3 on PATH (>= 3.11).
py=${PYTHON:-python3}
extras=""
((want_test)) && extras="[test]"
hash=$(sha256sum pyproject.toml | cut -c1-16)
stamp=".venv/.bootstrap-$hash${extras:+-test}"
# A test install is a superset of the runtime install.
if [[ ! -e $stamp && ! -e .venv/.bootstrap-$hash-test ]]; then
  log "venv: .venv with devcloud-agent$extras"
  [[ -x .venv/bin/python ]] || "$py" -m venv .venv
  # pip's output only matters when it fails
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >.venv/pip.log 2>&1 \
    && .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras" >>.venv/pip.log 2>&1 \
    || { cat .venv/pip.log >&2; log "pip install failed"; exit 1; }
  rm -f .venv/.bootstrap-*
  touch "$stamp"
fi

if ((want_test)); then
  # buf (protobuf linter) ships as an npm package with a native binary.
  if [[ ! -x .tools/node_modules/.bin/buf ]]; then
    log "npm: @bufbuild/buf into .tools/"
    mkdir -p .tools
    npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@1 >/dev/null
  fi
  # real runtimes for the runtime tests: lxc, busybox-static, squashfs-tools, a Debian guest kernel (cached)
  integration/runtimes/setup.sh >/dev/null
fi
log "ready: $(.venv/bin/python --version), $(.venv/bin/devcloud-agent --version 2>/dev/null || echo agent)"
