#!/usr/bin/env bash
# Exits 0 when this machine can run a private Keystone with up.sh; otherwise prints why and exits 1.
# The Keystone suites call it to decide between running, skipping (a developer's machine) and failing (CI).
set -uo pipefail
missing=()
for cmd in keystone-manage /usr/bin/uwsgi_python3 sqlite3 curl jq; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || missing+=("uwsgi-plugin-python3")
if [ ${#missing[@]} -gt 0 ]; then
  echo "Keystone is not installed here (missing: ${missing[*]}); as root, run scripts/keystone/setup.sh"
  exit 1
fi
exit 0
