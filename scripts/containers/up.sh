#!/usr/bin/env bash
# Starts deploy/compose.yaml on podman: podman's API socket (`podman system service`), a loop that
# runs the containers' health checks (podman needs systemd timers for that, absent here), then
# `docker-compose up -d` against the socket, and waits until the api is healthy.
# env: COMPOSE_PROJECT_NAME (default cinderblock), CINDERBLOCK_API_PORT (default 50051),
#      CINDERBLOCK_REST_PORT (default 8776); CINDERBLOCK_HA=1 for deploy/compose.ha.yaml on top
#      (then it waits for both apis, the second on CINDERBLOCK_API2_PORT, default 50061).
# Images come from scripts/containers/build.sh; stop everything with scripts/containers/down.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/containers/env.sh
SOCK=${DOCKER_HOST#unix://}

if ! curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
  rm -f "$SOCK"
  setsid podman system service --time=0 "$DOCKER_HOST" >"$RUN/service.log" 2>&1 </dev/null &
  echo $! >"$RUN/service.pid"
  for _ in $(seq 1 50); do
    curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null || { echo "podman system service did not start (see $RUN/service.log)" >&2; exit 1; }

if ! { [ -f "$RUN/healthchecks.pid" ] && kill -0 "$(cat "$RUN/healthchecks.pid")" 2>/dev/null; }; then
  setsid scripts/containers/healthchecks.sh >"$RUN/healthchecks.log" 2>&1 </dev/null &
  echo $! >"$RUN/healthchecks.pid"
fi

# docker-compose v1 starts a service only once the services it depends on report healthy.
# NOTE: podman's API may answer the inspect of a container that exits at that very moment (the
# secrets job does, at once) with "read /proc/<pid>/cgroup: no such process", and compose gives
# up. `up -d` is idempotent: on that error only, it runs again (3 times at most).
for attempt in 1 2 3; do
  if docker-compose up -d --no-build 2>"$RUN/up.err"; then
    cat "$RUN/up.err" >&2
    break
  fi
  cat "$RUN/up.err" >&2
  if [ "$attempt" -eq 3 ] || ! grep -q "no such process" "$RUN/up.err"; then exit 1; fi
  echo "compose up met podman's exited-container race; running it again" >&2
done
apis="api"
grpc="127.0.0.1:${CINDERBLOCK_API_PORT:-50051}"
if [ "${CINDERBLOCK_HA:-0}" = 1 ]; then
  apis="api api-2"
  grpc="$grpc and 127.0.0.1:${CINDERBLOCK_API2_PORT:-50061}"
fi
for _ in $(seq 1 60); do
  healthy=1
  for service in $apis; do
    podman healthcheck run "$(docker-compose ps -q "$service")" >/dev/null 2>&1 || healthy=0
  done
  if [ "$healthy" = 1 ]; then
    echo "cinderblock is up: gRPC on $grpc, Cinder REST on http://127.0.0.1:${CINDERBLOCK_REST_PORT:-8776}/v3"
    exit 0
  fi
  sleep 1
done
echo "the api ($apis) did not become healthy within 60 s:" >&2
docker-compose logs --tail=30 >&2 || true
exit 1
