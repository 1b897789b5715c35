#!/bin/bash
# up.sh RUN_DIR PORT [VG...] - boot the LVM test guest in the background, wait for its command
# agent on 127.0.0.1:PORT, and make one volume group per VG name (default: cinder-volumes), each
# on its own sparse disk (RUN_DIR/diskN.img). RUN_DIR holds this guest's disks, pid file, port and
# console log; parallel guests need their own RUN_DIR and PORT. Prints one line of timings.
# Env (optional): CINDERBLOCK_LVM_GUEST_DIR (artifacts of setup.sh, default
# /var/tmp/cinderblock-lvm-guest), LVM_GUEST_DISK_SIZE=8G, LVM_GUEST_SMP=2, LVM_GUEST_MEM=1024 (MiB),
# LVM_GUEST_BOOT_TIMEOUT=120 (s), LVM_GUEST_OWNER_PID (stop the guest when that process ends).
# Acceleration is TCG: this host's /dev/kvm does not run a stock kernel.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: up.sh RUN_DIR PORT [VG...]" >&2; exit 2; }
RUN=$1; PORT=$2; shift 2
VGS=("$@"); [ ${#VGS[@]} -gt 0 ] || VGS=(cinder-volumes)
GUEST=${CINDERBLOCK_LVM_GUEST_DIR:-/var/tmp/cinderblock-lvm-guest}; ART=$GUEST/artifacts
if [ ! -f "$ART/initrd.img" ]; then   # built once; concurrent first boots wait for one build
  mkdir -p "$GUEST"
  flock "$GUEST/.setup.lock" sh -c '[ -f "$1/initrd.img" ] || "$2/setup.sh"' sh "$ART" "$HERE" >&2 \
    || { echo "up: no guest in $ART and setup.sh failed" >&2; exit 1; }
fi
command -v qemu-system-x86_64 >/dev/null || { echo "up: qemu-system-x86_64 not found (apt-get install qemu-system-x86)" >&2; exit 1; }
mkdir -p "$RUN"
"$HERE/down.sh" "$RUN" >/dev/null 2>&1 || true
DRV=""; i=0
for _ in "${VGS[@]}"; do
  img=$RUN/disk$i.img
  rm -f "$img"; truncate -s "${LVM_GUEST_DISK_SIZE:-8G}" "$img"
  DRV="$DRV -drive file=$img,format=raw,if=virtio,cache=unsafe,discard=unmap"
  i=$((i + 1))
done
KERNEL=$ART/vmlinux; [ -f "$KERNEL" ] || KERNEL=$ART/vmlinuz
echo "$PORT" > "$RUN/port"; : > "$RUN/console.log"
t0=$(date +%s.%N)
# shellcheck disable=SC2086
qemu-system-x86_64 -name cinderblock-lvm-guest -nodefaults -no-user-config -display none -no-reboot \
  -machine q35 -accel tcg,thread=multi,tb-size=256 -cpu max -smp "${LVM_GUEST_SMP:-2}" -m "${LVM_GUEST_MEM:-1024}" \
  -kernel "$KERNEL" -initrd "$ART/initrd.img" -append "console=ttyS0 quiet mitigations=off panic=-1 rdinit=/init" \
  -serial "file:$RUN/console.log" $DRV \
  -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:7000" -device virtio-net-pci,netdev=n0 \
  -pidfile "$RUN/qemu.pid" -daemonize
ok=0; end=$(( $(date +%s) + ${LVM_GUEST_BOOT_TIMEOUT:-120} ))
while [ "$(date +%s)" -lt "$end" ]; do
  if grep -q LVMGUEST-READY "$RUN/console.log" && LVM_GUEST_TIMEOUT=10 "$HERE/run.sh" "$RUN" true 2>/dev/null; then ok=1; break; fi
  kill -0 "$(cat "$RUN/qemu.pid")" 2>/dev/null || { echo "up: qemu died" >&2; tail -30 "$RUN/console.log" >&2; exit 1; }
  sleep 0.1
done
[ $ok = 1 ] || { echo "up: guest not up after ${LVM_GUEST_BOOT_TIMEOUT:-120}s" >&2; tail -30 "$RUN/console.log" >&2; "$HERE/down.sh" "$RUN" >/dev/null; exit 1; }
t1=$(date +%s.%N)
script=""; i=0
for vg in "${VGS[@]}"; do
  dev=/dev/vd$(printf "\\x$(printf %x $((97 + i)))")
  script="$script pvcreate -q $dev && vgcreate -q $vg $dev &&"
  i=$((i + 1))
done
"$HERE/run.sh" "$RUN" sh -c "$script true" >/dev/null
t2=$(date +%s.%N)
if [ -n "${LVM_GUEST_OWNER_PID:-}" ]; then   # a test runner that dies without down.sh takes the guest along
  setsid sh -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; "$2/down.sh" "$3"' sh \
    "$LVM_GUEST_OWNER_PID" "$HERE" "$RUN" </dev/null >/dev/null 2>&1 &
fi
d() { awk -v a="$t0" -v b="$1" 'BEGIN{printf "%.2f", b-a}'; }
echo "up: agent ready after $(d "$t1")s, VGs ${VGS[*]} ready after $(d "$t2")s (qemu pid $(cat "$RUN/qemu.pid"), port $PORT)"
