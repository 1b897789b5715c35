#!/bin/bash
# setup.sh [--install-packages] - build the LVM test guest: Debian's own kernel (unpacked from
# its .deb, never installed on this host) and a small initramfs with busybox, lvm2,
# thin-provisioning-tools and a command agent. The host kernel needs no device-mapper: the guest
# runs under qemu (TCG) and brings its own.
#
# Artifacts go to $CINDERBLOCK_LVM_GUEST_DIR (default /var/tmp/cinderblock-lvm-guest): artifacts/
# (vmlinux or vmlinuz, initrd.img, kver) and cache/ (the kernel .deb). Safe to re-run: a guest
# built by this script for the current kernel package is kept (LVM_GUEST_REBUILD=1 rebuilds it).
# Host packages: qemu-system-x86 busybox-static lvm2 thin-provisioning-tools cpio xz-utils;
# with --install-packages missing ones are installed with apt-get (needs root), otherwise their
# absence is an error that names them.
# Derived from the team's LVM lab (shared/labs/lvm), trimmed to what the driver's tests need.
set -euo pipefail
GUEST=${CINDERBLOCK_LVM_GUEST_DIR:-/var/tmp/cinderblock-lvm-guest}
BUILD=$GUEST/build; ART=$GUEST/artifacts; CACHE=$GUEST/cache
mkdir -p "$BUILD" "$ART" "$CACHE"
t0=$(date +%s.%N)
el() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
APT="-q -o DPkg::Lock::Timeout=600"

# ---- 1. host packages -------------------------------------------------------------------
PKGS="qemu-system-x86 busybox-static lvm2 thin-provisioning-tools cpio xz-utils"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "${1:-}" != --install-packages ]; then
    echo "setup: missing host packages:$missing (apt-get install -y$missing, or run with --install-packages)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update $APT >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y $APT --no-install-recommends $missing >/dev/null
fi
echo "setup: packages ok ($(el "$t0")s)"

# ---- 2. Debian kernel: download the .deb, unpack it under build/ ---------------------------
kpkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
KPKG=$(kpkg); [ -n "$KPKG" ] || { apt-get update $APT >/dev/null; KPKG=$(kpkg); }
[ -n "$KPKG" ] || { echo "setup: apt knows no linux-image-amd64" >&2; exit 1; }
KVER=${KPKG#linux-image-}
if [ "${LVM_GUEST_REBUILD:-0}" != 1 ] && [ -f "$ART/initrd.img" ] && [ "$ART/initrd.img" -nt "$0" ] \
   && [ "$(cat "$ART/kver" 2>/dev/null)" = "$KVER" ]; then
  echo "setup: guest up to date in $ART (kernel $KVER; LVM_GUEST_REBUILD=1 rebuilds it)"
  exit 0
fi
DEB=$(ls "$CACHE/${KPKG}"_*.deb 2>/dev/null | tail -1 || true)
if [ -z "$DEB" ]; then
  (cd "$CACHE" && apt-get download -q "$KPKG" 2>&1 | grep -v 'unsandboxed' || true)
  DEB=$(ls "$CACHE/${KPKG}"_*.deb | tail -1)
fi
KX=$BUILD/kx; MD=$KX/lib/modules/$KVER
rm -rf "$KX"; mkdir -p "$KX"
# all modules, so that depmod sees every dependency; removed again below
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$KX" --wildcards "./boot/vmlinuz-$KVER" "./lib/modules/$KVER/*"
busybox depmod -b "$KX" "$KVER"
echo "setup: kernel $KVER unpacked ($(el "$t0")s)"

# ---- 3. initramfs tree ----------------------------------------------------------------------
R=$BUILD/root
rm -rf "$R"; mkdir -p "$R"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64}
for d in bin sbin lib lib64; do ln -s usr/$d "$R/$d"; done        # usr-merged like Debian 12
mkdir -p "$R"/{dev,proc,sys,run,tmp,mnt,root,etc/lvm/archive,etc/lvm/backup}

copy_lib() {  # copy a lib to its real path and add the soname link ld.so looks for
  local real; real=$(readlink -f "$1")
  local dst="$R/usr${real#/usr}"
  [ -e "$dst" ] || install -D -m 0755 "$real" "$dst"
  [ "$(basename "$1")" = "$(basename "$real")" ] || ln -sf "$(basename "$real")" "$(dirname "$dst")/$(basename "$1")"
}
copy_bin() {  # copy binaries + all shared libs they need
  local f lib
  for f in "$@"; do
    [ -e "$f" ] || { echo "setup: warning: $f missing, skipped"; continue; }
    local real; real=$(readlink -f "$f")
    [ -e "$R/usr${real#/usr}" ] || install -D -m 0755 "$real" "$R/usr${real#/usr}"
    for lib in $(ldd "$real" 2>/dev/null | awk '/=> \//{print $3}'); do copy_lib "$lib"; done
  done
}
install -m 0755 /bin/busybox "$R/usr/bin/busybox"
for a in $(busybox --list); do [ -e "$R/usr/bin/$a" ] || ln -s busybox "$R/usr/bin/$a"; done
ln -s ../bin/busybox "$R/usr/sbin/modprobe"          # kernel request_module() runs /sbin/modprobe
copy_bin /usr/sbin/lvm /usr/sbin/dmsetup /usr/sbin/pdata_tools
copy_lib /lib64/ld-linux-x86-64.so.2
ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/usr/lib64/ld-linux-x86-64.so.2"
for c in $(LVM_SUPPRESS_FD_WARNINGS=1 /usr/sbin/lvm help 2>&1 | awk '/^  (pv|vg|lv)[a-z]+ /{print $1}'); do
  rm -f "$R/usr/bin/$c"; ln -sf lvm "$R/usr/sbin/$c"
done
for c in thin_check thin_dump thin_repair thin_restore thin_rmap thin_metadata_size thin_ls \
         thin_delta thin_trim cache_check cache_dump cache_repair cache_restore era_check; do
  ln -sf pdata_tools "$R/usr/sbin/$c"
done

# kernel modules: closure over modules.dep
WANT="dm-mod dm-snapshot dm-thin-pool dm-zero virtio_pci virtio_mmio virtio_blk virtio_net
      crc32c_generic crc32c-intel"
norm() { echo "$1" | tr '_' '-'; }
need=""
for m in $WANT; do
  p=$(awk -F: -v m="$(norm "$m")" '{n=$1; sub(/.*\//,"",n); sub(/\.ko.*$/,"",n); gsub(/_/,"-",n); if(n==m){print $1; exit}}' "$MD/modules.dep")
  [ -n "$p" ] && need="$need $p"                     # empty = built into this kernel
done
while :; do
  more=$(for p in $need; do awk -F: -v p="$p" '$1==p{print $2}' "$MD/modules.dep"; done)
  new=$(printf '%s\n' $need $more | sort -u)
  [ "$new" = "$(printf '%s\n' $need | sort -u)" ] && break
  need=$new
done
for p in $need; do install -D -m 0644 "$MD/$p" "$R/lib/modules/$KVER/$p"; done
cp "$MD/modules.builtin" "$MD/modules.order" "$R/lib/modules/$KVER/"
busybox depmod -b "$R" "$KVER"

cat > "$R/etc/lvm/lvm.conf" <<'CONF'
# The guest has no udev, no lvmpolld and no dmeventd (so thin pools never auto-extend).
devices {
    obtain_device_list_from_udev = 0
    external_device_info_source = "none"
    use_devicesfile = 0
    scan = [ "/dev" ]
    filter = [ "a|^/dev/vd|", "r|.*|" ]
}
activation {
    udev_sync = 0
    udev_rules = 0
    verify_udev_operations = 0
    monitoring = 0
}
global {
    use_lvmpolld = 0
    event_activation = 0
}
backup {
    backup = 1
    archive = 0
}
CONF
echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
echo "root:x:0:" > "$R/etc/group"

cat > "$R/init" <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/lock/lvm; mount -t tmpfs -o mode=1777 tmpfs /tmp
modprobe -a crc32c_intel crc32c_generic virtio_pci virtio_mmio virtio_blk virtio_net \
  dm_mod dm_snapshot dm_thin_pool dm_zero 2>/dev/null
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
setsid nc -ll -p 7000 -e /agent </dev/null >/dev/null 2>&1 &
echo "LVMGUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console
while :; do sleep 3600; done
INIT
cat > "$R/agent" <<'AGENT'
#!/bin/sh
# One TCP connection = one request. In: one line = base64 of a shell script, optionally followed
# by a space and a byte count N; then N bytes, the script's stdin (no count: an empty stdin).
# Out: "RC <exit code> <stderr bytes>\n", the stderr bytes, then stdout until EOF.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LVM_SUPPRESS_FD_WARNINGS=1 LC_ALL=C
t=/tmp/.agent.$$
IFS= read -r line || exit 0
n=0; case $line in *" "*) n=${line#* }; line=${line%% *} ;; esac
printf '%s' "$line" | base64 -d > $t.sh 2>/dev/null
dd bs=1M count="$n" iflag=count_bytes,fullblock of=$t.in 2>/dev/null
cd /root; sh $t.sh <$t.in >$t.out 2>$t.err; rc=$?
printf 'RC %d %d\n' $rc $(wc -c < $t.err)
cat $t.err $t.out
rm -f $t.sh $t.in $t.out $t.err
AGENT
chmod 0755 "$R/init" "$R/agent"

(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$ART/initrd.img.tmp"
mv "$ART/initrd.img.tmp" "$ART/initrd.img"
cp "$KX/boot/vmlinuz-$KVER" "$ART/vmlinuz"
# Uncompressed ELF vmlinux: qemu boots it through its PVH note, which skips the in-guest xz
# decompression of the bzImage (about 2 s under TCG). up.sh falls back to vmlinuz.
rm -f "$ART/vmlinux" "$ART/vmlinux.tmp"
off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$ART/vmlinuz" | head -1 | cut -d: -f1 || true)
if [ -n "$off" ]; then
  tail -c +$((off + 1)) "$ART/vmlinuz" | xz -dc --single-stream > "$ART/vmlinux.tmp" 2>/dev/null || true
  if [ "$(head -c 4 "$ART/vmlinux.tmp" | tail -c 3)" = ELF ]; then mv "$ART/vmlinux.tmp" "$ART/vmlinux"; else rm -f "$ART/vmlinux.tmp"; fi
fi
echo "$KVER" > "$ART/kver"
rm -rf "$KX" "$R"
echo "setup: done in $(el "$t0")s; initrd $(du -h "$ART/initrd.img" | cut -f1), kernel $KVER, in $ART"
