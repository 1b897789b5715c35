#!/usr/bin/env bash
# Exits 0 when this machine can run a test cluster with up.sh; otherwise prints why and exits 1.
# The RBD suites call it to decide between running, skipping (a developer's machine) and failing (CI).
set -uo pipefail
missing=()
for cmd in ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool ceph rbd; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
# up.sh talks to the monitor through Debian's python3-rados (not whatever python3 is first on PATH).
/usr/bin/python3 -c 'import rados' >/dev/null 2>&1 || missing+=("python3-rados")
if [ ${#missing[@]} -gt 0 ]; then
  echo "Ceph is not installed here (missing: ${missing[*]}); as root, run scripts/ceph/setup.sh"
  exit 1
fi
exit 0
