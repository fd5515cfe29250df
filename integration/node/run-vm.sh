#!/bin/bash
# Boot the node image headless and run OUTDIR/share/run.sh inside it.
#   usage: run-vm.sh IMAGE_DIR OUTDIR
# OUTDIR/share is the 9p share "hostshare" (/mnt/host in the guest); the
# guest's harness.service waits for boot, runs run.sh, writes out.log / rc /
# boot-uptime / system-state back there and powers off. The base image is
# never written: each run boots a throwaway qcow2 overlay in OUTDIR.
# Env: ACCEL (tcg|kvm; tcg default: KVM here cannot boot a stock kernel),
#      SMP, MEM (MiB), ZDISK_SIZE (spare /dev/vdb), TIMEOUT (s, whole VM).
set -euo pipefail
IMG=$(readlink -f "${1:?usage: run-vm.sh IMAGE_DIR OUTDIR}")
OUT=${2:?usage: run-vm.sh IMAGE_DIR OUTDIR}
ACCEL=${ACCEL:-tcg}
SMP=${SMP:-$(nproc)}
MEM=${MEM:-4096}
ZDISK_SIZE=${ZDISK_SIZE:-2G}
TIMEOUT=${TIMEOUT:-1800}
[ -x "$OUT/share/run.sh" ] || { echo "no executable $OUT/share/run.sh" >&2; exit 2; }
[ -e "$IMG/complete" ] || { echo "no complete image in $IMG (run build-image.sh)" >&2; exit 2; }
rm -f "$OUT/share/rc" "$OUT/share/out.log" "$OUT/share/boot-uptime" "$OUT/share/system-state"
qemu-img create -q -f qcow2 -b "$IMG/root.img" -F raw "$OUT/overlay.qcow2"
qemu-img create -q -f raw "$OUT/zdisk.img" "$ZDISK_SIZE"
case "$ACCEL" in
  kvm) ACC=(-accel kvm -cpu host,-arch-capabilities) ;;
  *)   ACC=(-accel tcg,thread=multi,tb-size=512 -cpu max) ;;
esac
qemu-system-x86_64 "${ACC[@]}" -smp "$SMP" -m "$MEM" \
  -machine q35 -nographic -no-reboot -nic none \
  -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1 quiet systemd.show_status=false ${EXTRA_APPEND:-}" \
  -drive file="$OUT/overlay.qcow2",if=virtio,format=qcow2,cache=unsafe \
  -drive file="$OUT/zdisk.img",if=virtio,format=raw,cache=unsafe \
  -virtfs local,path="$OUT/share",mount_tag=hostshare,security_model=none,id=hs \
  </dev/null >"$OUT/console.log" 2>&1 &
qpid=$!
# asks bash's job table, so a PID reused after QEMU exited is never signalled
running() { jobs -rp | grep -qx "$qpid"; }
# whatever ends this script, the QEMU we started (and only it) goes too, with its disks
trap 'running && kill "$qpid"; rm -f "$OUT/overlay.qcow2" "$OUT/zdisk.img"' EXIT
trap 'exit 143' TERM INT HUP
start=$(date +%s)
while running && (( $(date +%s) - start < TIMEOUT )); do sleep 1; done
if running; then
  echo "VM still running after ${TIMEOUT}s: killing QEMU pid $qpid" >&2
  kill "$qpid"
  for _ in $(seq 30); do running || break; sleep 1; done
  if running; then kill -9 "$qpid"; fi
fi
qrc=0; wait "$qpid" || qrc=$?
trap - EXIT   # reaped: its PID may be reused from here on
rm -f "$OUT/overlay.qcow2" "$OUT/zdisk.img"
wall=$(( $(date +%s) - start ))
printf 'qemu rc=%s wall=%ss boot-complete(guest uptime)=%ss state=%s run.sh rc=%s\n' \
  "$qrc" "$wall" "$(cat "$OUT/share/boot-uptime" 2>/dev/null)" \
  "$(cat "$OUT/share/system-state" 2>/dev/null)" "$(cat "$OUT/share/rc" 2>/dev/null)" | tee "$OUT/summary"
echo "console: $OUT/console.log  output: $OUT/share/out.log"
[ "$(cat "$OUT/share/rc" 2>/dev/null)" = 0 ]
