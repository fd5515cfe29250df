#!/usr/bin/env bash
# Installs what integration/runtimes/ needs on a Debian 12 node, idempotently:
#   apt: lxc (lxc-start/-attach/-stop, liblxc 5.0.2), busybox-static (container
#        rootfs, VM initramfs, udhcpc/udhcpd), squashfs-tools (split images),
#        qemu-system-x86 (VMs), tar/util-linux/iproute2 (already on Debian).
#   a Debian kernel for QEMU guests, unpacked once with `apt-get download` +
#        `dpkg -x` (never installed on the host) into
#        $CACHE/kernel/<package>_<version>/ {vmlinuz, config, modules/*.ko,
#        modules.order (virtio_pci, virtio_net, virtio_blk and their deps, load
#        order)}; $CACHE/kernel/current -> that directory.
# Not installed on purpose: uidmap (with newuidmap present, root-run LXC insists
# on /etc/subuid ranges for root; without it LXC writes the maps itself),
# dnsmasq (busybox udhcpd serves DHCP in the tests), cpio (qemu.py writes the
# initramfs in Python), lxc-templates, debootstrap (rootfs built from busybox).
# usage (root): integration/runtimes/setup.sh
# env: DEVCLOUD_RUNTIMES_CACHE (default /var/tmp/devcloud-runtimes),
#      KERNEL_PKG (default: what linux-image-amd64 depends on), KERNEL_VERSION.
# Last line on success: RUNTIMES_KERNEL_DIR=<dir>
set -euo pipefail
CACHE=${DEVCLOUD_RUNTIMES_CACHE:-/var/tmp/devcloud-runtimes}
APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
MODULES=(virtio_pci virtio_net virtio_blk)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

log() { printf '[runtimes-setup] %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "must run as root (apt)"; exit 1; }

pkgs=(lxc busybox-static squashfs-tools qemu-system-x86 tar util-linux iproute2 kmod)
updated=0
apt_update() { ((updated)) || { log "apt-get update"; apt-get -o DPkg::Lock::Timeout=600 -q update >/dev/null; updated=1; }; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  apt_update
  log "apt: installing ${missing[*]}"
  "${APT[@]}" install "${missing[@]}" >/dev/null
fi

# -- guest kernel -----------------------------------------------------------------
mkdir -p "$CACHE/kernel"
exec 9>"$CACHE/kernel/.lock"
flock -w 600 9 || { log "timed out waiting for $CACHE/kernel/.lock"; exit 1; }

resolve() {   # prints "<package> <version>" of the kernel image to use
  local pkg=${KERNEL_PKG:-} ver=${KERNEL_VERSION:-}
  if [[ -z $pkg ]]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
  fi
  [[ -n $pkg ]] || return 1
  if [[ -z $ver ]]; then
    ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    [[ -n $ver && $ver != "(none)" ]] || return 1
  fi
  echo "$pkg $ver"
}

if ! pv=$(resolve); then
  apt_update
  pv=$(resolve) || pv=""
fi
if [[ -z $pv ]]; then
  # offline or no index: fall back to what is cached
  if [[ -e $CACHE/kernel/current/complete ]]; then
    log "cannot resolve linux-image-amd64 from apt; using cached $(readlink "$CACHE/kernel/current")"
    echo "RUNTIMES_KERNEL_DIR=$(readlink -f "$CACHE/kernel/current")"; exit 0
  fi
  log "cannot resolve a kernel package (apt-cache depends linux-image-amd64) and nothing is cached"; exit 1
fi
read -r kpkg kver <<<"$pv"
key="${kpkg}_${kver//[:\/]/_}"
out="$CACHE/kernel/$key"
if [[ ! -e $out/complete ]]; then
  log "kernel: $kpkg $kver -> $out"
  tmp=$(mktemp -d "$CACHE/kernel/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chown _apt "$tmp" 2>/dev/null || true          # apt-get download drops to _apt
  (cd "$tmp" && apt-get -q download "$kpkg=$kver" >/dev/null 2>"$tmp/download.err") || {
    apt_update
    (cd "$tmp" && apt-get -q download "$kpkg=$kver" >/dev/null) ; }
  deb=$(ls "$tmp"/*.deb)
  dpkg -x "$deb" "$tmp/x"
  abi=$(ls "$tmp/x/lib/modules")
  stage="$tmp/out"
  mkdir -p "$stage/modules"
  cp "$tmp/x/boot/vmlinuz-$abi" "$stage/vmlinuz"
  cp "$tmp/x/boot/config-$abi" "$stage/config"
  # the modules we need and their dependencies, in load order (deps first)
  declare -A seen=()
  order=()
  add() {
    local m=$1 f d
    [[ -n ${seen[$m]:-} ]] && return 0
    seen[$m]=1
    f=$(find "$tmp/x/lib/modules/$abi" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -1)
    if [[ -z $f ]]; then
      log "module $m: not shipped as a module by $kpkg (built in?)"; return 0
    fi
    for d in $(modinfo -F depends "$f" | tr ',' ' '); do add "$d"; done
    cp "$f" "$stage/modules/"
    order+=("$(basename "$f")")
  }
  for m in "${MODULES[@]}"; do add "$m"; done
  printf '%s\n' "${order[@]}" >"$stage/modules.order"
  printf 'package=%s\nversion=%s\nabi=%s\n' "$kpkg" "$kver" "$abi" >"$stage/kernel.info"
  date -u +%FT%TZ >"$stage/complete"
  rm -rf "$out"
  mv "$stage" "$out"
  rm -rf "$tmp"
  trap - EXIT
fi
ln -sfn "$key" "$CACHE/kernel/current"
log "kernel ready: $(tr '\n' ' ' <"$out/kernel.info")modules: $(tr '\n' ' ' <"$out/modules.order")"
echo "RUNTIMES_KERNEL_DIR=$out"
