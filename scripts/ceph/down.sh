#!/usr/bin/env bash
# Stop the daemons that scripts/ceph/up.sh started in DIR, by their pid files only, and only if that pid
# still runs ceph-mon/mgr/osd with "-c DIR/ceph.conf" (so a recycled pid is never hit);
# then wipe DIR if it carries up.sh's marker. Idempotent.  usage: down.sh DIR  (KEEP=1 keeps DIR)
set -uo pipefail
DIR=${1:?usage: down.sh DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
ours() {
  local cmd
  cmd=$( { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null ) || return 1   # gone -> fail, zombie -> empty
  case "$cmd" in ceph-mon\ *|ceph-mgr\ *|ceph-osd\ *|/usr/bin/ceph-mon\ *|/usr/bin/ceph-mgr\ *|/usr/bin/ceph-osd\ *) ;; *) return 1;; esac
  [[ "$cmd" == *" -c $DIR/ceph.conf "* ]]
}
stop() { # stop PIDFILE... : SIGTERM, wait up to 10 s, then SIGKILL
  local pf pid p left pids=()
  for pf in "$@"; do
    [ -s "$pf" ] || continue; pid=$(cat "$pf")
    if ours "$pid"; then kill -TERM "$pid" 2>/dev/null && pids+=("$pid"); fi
  done
  for _ in $(seq 1 100); do
    left=0; for p in "${pids[@]}"; do ours "$p" && left=1; done
    [ $left = 0 ] && return 0; sleep 0.1
  done
  for p in "${pids[@]}"; do ours "$p" && { echo "down.sh: SIGKILL $p" >&2; kill -KILL "$p"; }; done
}
# OSD first and alone: it tells the mon it is going down and waits up to 5 s for the answer,
# so stopping the mon at the same time costs 5 s.
stop "$DIR"/run/osd.*.pid
stop "$DIR"/run/mgr.*.pid "$DIR"/run/mon.*.pid
if [ "${KEEP:-0}" != 1 ] && [ -e "$DIR/.made-by-cinderblock-ceph-up.sh" ]; then rm -rf "$DIR"; fi
exit 0
