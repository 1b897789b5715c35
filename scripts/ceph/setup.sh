#!/usr/bin/env bash
# Installs what the rbd driver and its tests need on Debian bookworm (Ceph 16.2.15), as root:
# the daemons for a throw-away test cluster (scripts/ceph/up.sh), the rbd/ceph CLIs, and the
# librbd/librados headers the native addon (packages/rbd-native) is compiled against.
# Idempotent; apt-get update only when the package lists are missing or older than a day.
# usage: scripts/ceph/setup.sh      env: APT_ARCHIVES=DIR  (a separate download cache)
set -euo pipefail
# --no-install-recommends keeps out the dashboard/cephadm/rgw extras.
PKGS=(ceph-mon ceph-mgr ceph-osd ceph-common librbd-dev librados-dev g++ make)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "ceph already installed: $(ceph --version)"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: installing ${missing[*]} needs root" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  apt-get update -q -o DPkg::Lock::Timeout=900
fi
extra=()
if [ -n "${APT_ARCHIVES:-}" ]; then mkdir -p "$APT_ARCHIVES/partial"; extra=(-o "Dir::Cache::archives=$APT_ARCHIVES"); fi
apt-get install -y -q -o DPkg::Lock::Timeout=900 --no-install-recommends "${extra[@]}" "${missing[@]}"
ceph --version
