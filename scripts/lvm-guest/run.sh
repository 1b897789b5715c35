#!/bin/bash
# run.sh RUN_DIR CMD [ARGS...] - run CMD in the guest started in RUN_DIR with exactly this argv
# (like `docker exec`); `run.sh RUN_DIR sh -c '...'` for pipelines. Guest stdout -> stdout, guest
# stderr -> stderr, exit status = the command's; 255 = channel error. Guest stdin is /dev/null.
# Env: LVM_GUEST_TIMEOUT=300 (s; the guest command is killed after it).
# The same protocol as the driver's agent runner (services/volume/src/drivers/lvm/agent-runner.ts).
[ $# -ge 2 ] || { echo "usage: run.sh RUN_DIR CMD [ARGS...]" >&2; exit 2; }
RUN=$1; shift
PORT=$(cat "$RUN/port" 2>/dev/null) || { echo "run.sh: guest not up (no $RUN/port)" >&2; exit 255; }
export LC_ALL=C
T=${LVM_GUEST_TIMEOUT:-300}
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
s="exec timeout -s KILL $T"; for a in "$@"; do s+=" $(sq "$a")"; done
{ exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || { echo "run.sh: cannot connect to 127.0.0.1:$PORT" >&2; exit 255; }
{ printf '%s' "$s" | base64 -w0; echo; } >&3
IFS=' ' read -r -t $((T + 30)) tag rc elen <&3
[ "$tag" = RC ] || { echo "run.sh: no/bad reply from guest agent" >&2; exit 255; }
if [ "$elen" -gt 0 ]; then IFS= read -r -d '' -N "$elen" err <&3; printf '%s' "$err" >&2; fi
cat <&3
exec 3<&-
exit "$rc"
