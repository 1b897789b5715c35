#!/bin/bash
# check.sh - can this machine run the LVM test guest? Exit 0 if so (up.sh builds a missing guest
# with setup.sh); otherwise exit 1 with the reason on stdout, for a test suite to report.
ART=${CINDERBLOCK_LVM_GUEST_DIR:-/var/tmp/cinderblock-lvm-guest}/artifacts
[ "$(id -u)" = 0 ] || { echo "not root: the guest's disks and qemu need root (CI runs as root)"; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "the guest is an x86_64 Debian kernel, this machine is $(uname -m)"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || {
  echo "qemu-system-x86_64 not found: apt-get install -y qemu-system-x86 busybox-static lvm2 thin-provisioning-tools cpio xz-utils, then scripts/lvm-guest/setup.sh"
  exit 1
}
if [ ! -f "$ART/initrd.img" ] || { [ ! -f "$ART/vmlinux" ] && [ ! -f "$ART/vmlinuz" ]; }; then
  for p in busybox-static lvm2 thin-provisioning-tools cpio xz-utils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || {
      echo "no guest kernel image in $ART and package $p (needed to build it) is missing: run scripts/lvm-guest/setup.sh --install-packages"
      exit 1
    }
  done
fi
exit 0
