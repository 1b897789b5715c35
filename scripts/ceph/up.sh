#!/usr/bin/env bash
# Bootstrap a throw-away single-node Ceph cluster (1 mon, 1 mgr, 1 OSD) into DIR, for the rbd
# driver's tests and benchmark (install the packages first with scripts/ceph/setup.sh).
# Everything (conf, keyring, mon/mgr/osd data, logs, sockets, pid files) lives in DIR;
# binds to 127.0.0.1 only. Afterwards: `source DIR/env` (sets CEPH_CONF) and use ceph/rbd/rados;
# the client.admin key is in DIR/keyring. Stop and wipe it with scripts/ceph/down.sh DIR.
# Adapted from the Ceph lab (../shared/labs/ceph); this copy is the project's own.
#
# usage: scripts/ceph/up.sh DIR
# env:   OBJECTSTORE=bluestore|memstore (default bluestore, sparse 10G file DIR/osd.0/block)
#        AUTH=cephx|none (default cephx, keys in DIR/keyring)
#        WITH_MGR=1|0   (default 1)     POOL=rbd (pool created + `rbd pool init`)
#        WAIT_HEALTH=1|0 (default 1: after rbd works, also wait for HEALTH_OK, max 60s, warn only)
# Returns once rbd works and (with the mgr) `ceph df` lists the pool, so that capacity reads work.
#        MON_PORT=N     (default: a free port picked at random)
#        OSD_BLOCK=/dev/loopN  (optional: BlueStore on an existing block device instead of a file)
# Idempotent: if DIR already holds a running cluster whose rbd works, it just prints the env.
# A dead/half-built DIR is wiped via down.sh and rebuilt.
set -euo pipefail
# The daemons must not inherit the caller's open files: run as `flock LOCK up.sh DIR`, they would
# hold LOCK for as long as the cluster runs.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  case $fd in 0 | 1 | 2 | 255) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:?usage: up.sh DIR}
OBJECTSTORE=${OBJECTSTORE:-bluestore}
AUTH=${AUTH:-cephx}
WITH_MGR=${WITH_MGR:-1}
WAIT_HEALTH=${WAIT_HEALTH:-1}
POOL=${POOL:-rbd}
T0=$(date +%s.%N)
log() { awk -v t0="$T0" -v now="$(date +%s.%N)" -v m="$*" 'BEGIN{printf "[up %6.2fs] %s\n", now-t0, m}' >&2; }
die() { log "ERROR: $*"; [ -n "${MKFS_PID:-}" ] && wait "$MKFS_PID" 2>/dev/null; KEEP=1 "$HERE/down.sh" "$DIR"; for f in "$DIR"/log/*.log; do [ -f "$f" ] && { echo "== tail $f" >&2; tail -n 15 "$f" >&2; }; done; exit 1; }

mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
export CEPH_CONF="$DIR/ceph.conf"

alive() { # alive NAME -> pid file points to a live ceph daemon started with our conf
  local pf="$DIR/run/$1.pid" pid
  [ -s "$pf" ] || return 1; pid=$(cat "$pf")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/ceph.conf"
}

MARK=.made-by-cinderblock-ceph-up.sh   # down.sh only wipes directories carrying this marker
if [ -e "$DIR/$MARK" ]; then
  if alive mon.a && alive osd.0 && timeout 10 rbd -p "$POOL" ls >/dev/null 2>&1; then
    log "cluster in $DIR already up"; cat "$DIR/env"; exit 0
  fi
  log "stale cluster dir, wiping"; "$HERE/down.sh" "$DIR"; mkdir -p "$DIR"
elif [ -n "$(ls -A "$DIR")" ]; then
  echo "up.sh: $DIR is not empty and not a cluster dir made by up.sh; refusing" >&2; exit 2
fi
touch "$DIR/$MARK"
mkdir -p "$DIR"/{run,log,crash,mon.a,mgr.x,osd.0}

FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
MON_PORT=${MON_PORT:-$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')}

if [ "$AUTH" = cephx ]; then AUTHLINES="auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false"
else AUTHLINES="auth cluster required = none
auth service required = none
auth client required = none
auth supported = none"; fi

if [ -n "${OSD_BLOCK:-}" ]; then BLOCKLINES="bluestore block path = $OSD_BLOCK
bluestore block create = false"       # e.g. a loop device; it is overwritten by mkfs
else BLOCKLINES="bluestore block size = 10737418240
bluestore block create = true"; fi     # sparse 10 GiB file DIR/osd.0/block (~1 MB really used)

cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
ms bind ipv6 = false
$AUTHLINES
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon cluster log file = $DIR/log/cluster.log
mgr initial modules = iostat
[mon]
mon data = $DIR/\$name
# default 1 s batching of paxos proposals makes every snap create / pool op / OSD boot step
# wait ~1 s; 10 ms makes 'rbd snap create' ~45 ms instead of ~900 ms.
paxos propose interval = 0.01
paxos min wait = 0.01
[mgr]
mgr data = $DIR/\$name
[osd]
osd data = $DIR/\$name
osd objectstore = $OBJECTSTORE
$BLOCKLINES
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd memory target = 939524096
osd op num shards = 2
osd op num threads per shard = 1
memstore device bytes = 1073741824
[client]
# keep librados/librbd log noise off the CLI's stderr (the rbd CLI's own error lines still print)
log file = $DIR/log/client.log
log to stderr = false
err to stderr = false
admin socket =
EOF

if [ "$AUTH" = cephx ]; then
  K="$DIR/keyring"
  CEPH_CONF=/dev/null ceph-authtool --create-keyring "$K" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  CEPH_CONF=/dev/null ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  CEPH_CONF=/dev/null ceph-authtool "$K" --gen-key -n mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
  CEPH_CONF=/dev/null ceph-authtool "$K" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  chmod 600 "$K"; KEYARG=(--keyring "$K")
else KEYARG=(); fi

monmaptool --create --enable-all-features --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CEPH_CONF" -i a --mkfs --monmap "$DIR/monmap" "${KEYARG[@]}" || die "mon mkfs failed"
log "mon mkfs done (port $MON_PORT)"

# OSD mkfs needs no running mon (fsid comes from ceph.conf): run it in parallel with mon/mgr start.
( ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" --no-mon-config >"$DIR/log/osd.0.mkfs.out" 2>&1 \
  && touch "$DIR/osd.0/.mkfs-ok" ) &
MKFS_PID=$!

ceph-mon -c "$CEPH_CONF" -i a 2>>"$DIR/log/mon.a.out" || die "mon start failed"          # daemonizes, writes run/mon.a.pid
log "mon started pid $(cat "$DIR/run/mon.a.pid")"
if [ "$WITH_MGR" = 1 ]; then ceph-mgr -c "$CEPH_CONF" -i x 2>>"$DIR/log/mgr.x.out" || die "mgr start failed"; log "mgr started"; fi

# One python process for the mon commands (each `ceph` CLI call costs ~0.5 s of python startup).
/usr/bin/python3 - "$CEPH_CONF" "$OSD_UUID" "$POOL" <<'PY' || die "mon commands failed"
import json, sys, rados
conf, osd_uuid, pool = sys.argv[1:4]
c = rados.Rados(conffile=conf, name='client.admin')
c.connect(timeout=30)
def cmd(**kw):
    r, out, err = c.mon_command(json.dumps(kw), b'', timeout=30)
    if r != 0: raise SystemExit(f'{kw}: {r} {err}')
    return out
cmd(prefix='osd new', uuid=osd_uuid, id=0)
cmd(prefix='osd pool create', pool=pool, pg_num=8, pgp_num=8)
c.shutdown()
PY
log "osd.0 allocated, pool $POOL created"

wait $MKFS_PID || true
[ -f "$DIR/osd.0/.mkfs-ok" ] || { cat "$DIR/log/osd.0.mkfs.out" >&2; die "osd mkfs failed"; }
log "osd mkfs ($OBJECTSTORE) done"
ceph-osd -c "$CEPH_CONF" -i 0 2>>"$DIR/log/osd.0.out" || die "osd start failed"
log "osd started pid $(cat "$DIR/run/osd.0.pid")"

# rbd pool init blocks until the pool's PGs are active -> first successful rbd command.
timeout 120 rbd pool init "$POOL" || die "rbd pool init failed/timed out"
timeout 30 rbd -p "$POOL" ls >/dev/null || die "rbd ls failed"
log "rbd works"

# rbd answers before the mgr has reported the new pool: for about a second more `ceph df` (where
# the rbd driver's capacity comes from) does not list it. Wait for it, at most 30 s. Pool
# statistics come from the mgr: without one there is nothing to wait for.
pool_listed() {
  timeout 10 ceph df --format json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
sys.exit(0 if any(p.get("name") == sys.argv[1] for p in json.load(sys.stdin).get("pools", [])) else 1)
' "$POOL" 2>/dev/null
}
if [ "$WITH_MGR" = 1 ]; then
  deadline=$((SECONDS + 30))
  until pool_listed; do
    [ "$SECONDS" -lt "$deadline" ] || die "ceph df did not list pool $POOL within 30 s"
    sleep 0.2
  done
  log "ceph df lists pool $POOL"
fi

cat >"$DIR/env" <<EOF
export CEPH_CONF=$CEPH_CONF
EOF

if [ "$WAIT_HEALTH" = 1 ]; then
  for _ in $(seq 1 60); do
    h=$(timeout 10 ceph health 2>/dev/null || true)
    [ "$h" = HEALTH_OK ] && break; sleep 1
  done
  log "health: $(timeout 10 ceph health detail 2>&1 | head -5 | tr '\n' ' ')"
fi
cat "$DIR/env"
