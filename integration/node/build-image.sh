#!/bin/bash
# Build (or reuse) the real-kernel node guest image: Debian bookworm, systemd
# PID 1, Debian kernel, OpenZFS (zfs-dkms compiled in a chroot against the
# guest kernel headers) + python3-pyzfs, OVS/OVN. Output: root.img (raw ext4),
# vmlinuz, initrd.img under $CACHE/<key>, key = sha256 of this script,
# image/* and the knobs below. Prints "IMAGE_DIR=<dir>" as its last line.
#   usage (root): integration/node/build-image.sh
# Env: DEVCLOUD_NODE_CACHE, ZFS_SUITE, IMG_SIZE, KVER, MIRROR, LOCK_WAIT.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${DEVCLOUD_NODE_CACHE:-/var/tmp/devcloud-node-image}
ZFS_SUITE=${ZFS_SUITE:-bookworm-backports}
IMG_SIZE=${IMG_SIZE:-6G}
KVER=${KVER:-}   # empty: the ABI linux-image-amd64 points to (resolved in the chroot)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
NEED_GB=${NEED_GB:-8}   # rootfs (~1.6 GB) + sparse image (~1.4 GB used) + dkms build, with margin
APT=(apt-get -o DPkg::Lock::Timeout=900 -y -q --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() { echo "=== [$(date +%T)] $*"; }
# exit 3 = this machine cannot build the image (the pytest entry skips loudly on it)
cannot() { echo "CANNOT-RUN: $*" >&2; exit 3; }
pkgs() { sed -n "s/^$1:[[:space:]]*//p" "$HERE/image/packages.txt"; }

[ "$(id -u)" = 0 ] || cannot "build-image.sh needs root (debootstrap, chroot, bind mounts)"
for t in debootstrap mkfs.ext4 flock findmnt chroot; do
  command -v "$t" >/dev/null || cannot "host tool '$t' missing (systemd/bootstrap.sh --test installs it)"
done

key=$( { cd "$HERE" && sha256sum build-image.sh image/*; echo "$ZFS_SUITE $IMG_SIZE $KVER"; } | sha256sum | cut -c1-16)
OUT=$CACHE/$key
BUILD=$CACHE/$key.build
mkdir -p "$CACHE"
# one builder per key at a time; others wait, then reuse its result
exec 9>"$CACHE/$key.lock"
flock -w "${LOCK_WAIT:-3600}" 9 || { echo "timed out waiting for $CACHE/$key.lock" >&2; exit 1; }
if [ -e "$OUT/complete" ]; then
  touch "$OUT/last-used"
  log "cache hit: $OUT (built $(cat "$OUT/complete"))"
  echo "IMAGE_DIR=$OUT"; exit 0
fi
avail_gb=$(( $(df -Pk "$CACHE" | awk 'NR==2{print $4}') / 1024 / 1024 ))
[ "$avail_gb" -ge "$NEED_GB" ] || cannot "only ${avail_gb} GB free under $CACHE, the image build needs ${NEED_GB} GB"

# Unmount whatever is left below $BUILD (deepest first), then delete it; never
# rm across a mount (a live /dev bind would take the host's /dev with it).
remove_build() {
  local m left
  findmnt -rn -o TARGET | awk -v p="$BUILD/" 'index($0 "/", p) == 1' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  left=$(findmnt -rn -o TARGET | awk -v p="$BUILD/" 'index($0 "/", p) == 1')
  [ -z "$left" ] || { echo "still mounted, NOT removing $BUILD: $left" >&2; return 1; }
  rm -rf --one-file-system "$BUILD"
}
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -d "$BUILD/out/logs" ]; then
    rm -rf "$CACHE/$key.failed-logs"; cp -a "$BUILD/out/logs" "$CACHE/$key.failed-logs"
    echo "build failed (rc=$rc); logs kept in $CACHE/$key.failed-logs" >&2
  fi
  remove_build || true
}
trap on_exit EXIT
trap 'exit 143' TERM INT HUP
remove_build   # leftovers of a build that was SIGKILLed
ROOT=$BUILD/rootfs
LOGS=$BUILD/out/logs
mkdir -p "$ROOT" "$LOGS"
run_logged() {   # run_logged NAME CMD...: full output to logs/NAME.log, its tail on failure
  "${@:2}" >"$LOGS/$1.log" 2>&1 || { local rc=$?; tail -40 "$LOGS/$1.log" >&2; return "$rc"; }
}
PHASES=(); STAMPS=("$(date +%s.%N)")
phase_done() { PHASES+=("$1"); STAMPS+=("$(date +%s.%N)"); }

log "1. debootstrap (key $key)"
run_logged debootstrap debootstrap --variant=minbase --include="$(pkgs base | tr ' ' ,)" bookworm "$ROOT" "$MIRROR"
phase_done debootstrap

log "2. configure guest"
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main contrib
deb $MIRROR bookworm-updates main contrib
deb http://deb.debian.org/debian-security bookworm-security main contrib
deb $MIRROR bookworm-backports main contrib
EOF
# apt in the chroot must never start services on the build host
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
echo devcloud-node >"$ROOT/etc/hostname"
printf '/dev/vda / ext4 defaults,noatime 0 1\n' >"$ROOT/etc/fstab"
# small initramfs: only what mounts an ext4 root on virtio-blk
mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
echo 'MODULES=list' >"$ROOT/etc/initramfs-tools/conf.d/harness.conf"
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' >>"$ROOT/etc/initramfs-tools/modules"
# root login on the serial console without password (throwaway test VM)
chroot "$ROOT" passwd -d root >/dev/null
mkdir -p "$ROOT/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$ROOT/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM
EOF
install -m 0755 "$HERE/image/harness-run" "$ROOT/usr/local/sbin/harness-run"
install -m 0644 "$HERE/image/harness.service" "$ROOT/etc/systemd/system/harness.service"
chroot "$ROOT" systemctl enable harness.service >/dev/null 2>&1
phase_done configure

for d in proc sys dev dev/pts; do mount --bind "/$d" "$ROOT/$d"; done
run_logged apt-update chroot "$ROOT" apt-get -o DPkg::Lock::Timeout=900 -q update
[ -n "$KVER" ] || KVER=$(chroot "$ROOT" apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{sub("linux-image-","",$2);print $2;exit}')
log "3. kernel $KVER + headers"
run_logged kernel chroot "$ROOT" "${APT[@]}" install "linux-image-$KVER" "linux-headers-$KVER"
phase_done kernel+headers

log "4. $(pkgs backports) from $ZFS_SUITE (dkms compiles zfs.ko here)"
# shellcheck disable=SC2046 # word splitting of the package list is intended
run_logged zfs chroot "$ROOT" "${APT[@]}" -t "$ZFS_SUITE" install $(pkgs backports)
ls "$ROOT/lib/modules/$KVER/updates/dkms/"zfs.ko* >/dev/null 2>&1 \
  || { echo "zfs.ko was not built for $KVER" >&2; tail -40 "$LOGS/zfs.log" >&2; exit 1; }
phase_done zfs-dkms

log "5. $(pkgs extra)"
# shellcheck disable=SC2046
run_logged extra chroot "$ROOT" "${APT[@]}" install $(pkgs extra)
chroot "$ROOT" depmod -a "$KVER"
run_logged initramfs chroot "$ROOT" update-initramfs -u -k "$KVER"
chroot "$ROOT" apt-get clean
# Faster, quieter boot under TCG: no periodic jobs, no ZFS auto-load/import
# (zfs-load-module waits on udev-settle, ~6 s): tests `modprobe zfs` themselves.
# OVN daemons stay off until a test starts them; openvswitch-switch boots as on a real node.
chroot "$ROOT" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service >/dev/null 2>&1
chroot "$ROOT" systemctl disable zfs.target zfs-import-cache.service zfs-mount.service \
  zfs-share.service zfs-volume-wait.service zfs-load-module.service zfs-zed.service \
  ovn-central.service ovn-northd.service ovn-ovsdb-server-nb.service ovn-ovsdb-server-sb.service \
  ovn-host.service ovn-controller.service >/dev/null 2>&1 || true
{ echo "key=$key kernel=$KVER zfs_suite=$ZFS_SUITE"
  chroot "$ROOT" dkms status
  chroot "$ROOT" dpkg-query -W -f='${Package} ${Version}\n' $(pkgs backports) $(pkgs extra) "linux-image-$KVER"
} >"$BUILD/out/manifest.txt"
phase_done ovs+ovn+initramfs

log "6. export kernel/initrd + mkfs.ext4 root.img ($IMG_SIZE)"
cp "$ROOT/boot/vmlinuz-$KVER" "$BUILD/out/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$BUILD/out/initrd.img"
for d in dev/pts dev sys proc; do umount "$ROOT/$d"; done
mkfs.ext4 -q -F -L root -d "$ROOT" "$BUILD/out/root.img" "$IMG_SIZE"
phase_done export+mkfs

for i in "${!PHASES[@]}"; do
  awk -v n="${PHASES[$i]}" -v a="${STAMPS[$i]}" -v b="${STAMPS[$((i+1))]}" 'BEGIN{printf "TIMING %-22s %7.1fs\n", n, b-a}'
done | tee "$BUILD/out/timings.txt"
awk -v a="${STAMPS[0]}" -v b="${STAMPS[-1]}" 'BEGIN{printf "TIMING %-22s %7.1fs\n", "image-build-total", b-a}' | tee -a "$BUILD/out/timings.txt"
date -u +%FT%TZ >"$BUILD/out/complete"
touch "$BUILD/out/last-used"
rm -rf "$OUT"; mv "$BUILD/out" "$OUT"
# drop images of other keys unused for a week (their own lock must be free)
for d in "$CACHE"/*/; do
  d=${d%/}; k=${d##*/}
  [[ $k =~ ^[0-9a-f]{16}$ && $k != "$key" ]] || continue
  [ -n "$(find "$d" -maxdepth 1 -name last-used -mtime +7)" ] || continue
  flock -n "$CACHE/$k.lock" rm -rf "$d" && log "pruned stale image $d"
done
echo "IMAGE_DIR=$OUT"
