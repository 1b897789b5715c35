#!/usr/bin/env bash
# Runs podman's container health checks, which podman leaves to systemd timers (none here):
# every second for containers still `starting` or `unhealthy`, every 30 s for all of them.
# Started and stopped by up.sh / down.sh; expects env.sh's settings in the environment; only
# the containers of $COMPOSE_PROJECT_NAME.
set -u
n=0
while true; do
  if [ $((n % 30)) = 0 ]; then
    ids=$(podman ps -q --filter label=com.docker.compose.project="$COMPOSE_PROJECT_NAME" --filter health=healthy 2>/dev/null)
  else
    ids=""
  fi
  ids="$ids $(podman ps -q --filter label=com.docker.compose.project="$COMPOSE_PROJECT_NAME" --filter health=starting 2>/dev/null) $(podman ps -q --filter label=com.docker.compose.project="$COMPOSE_PROJECT_NAME" --filter health=unhealthy 2>/dev/null)"
  for id in $ids; do podman healthcheck run "$id" >/dev/null 2>&1 || true; done
  n=$((n + 1))
  sleep 1
done
