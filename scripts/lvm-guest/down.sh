#!/bin/bash
# down.sh RUN_DIR - stop the guest that up.sh started in RUN_DIR (by its pid file only) and
# remove its disks. Idempotent.
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${1:?usage: down.sh RUN_DIR}
if [ -f "$RUN/qemu.pid" ]; then
  pid=$(cat "$RUN/qemu.pid")
  if kill -0 "$pid" 2>/dev/null && grep -q qemu "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$RUN/qemu.pid"
fi
rm -f "$RUN/port" "$RUN"/disk*.img
echo "down: stopped"
