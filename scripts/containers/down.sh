#!/usr/bin/env bash
# Stops what up.sh started: the compose stack (with its named volumes when given -v), the
# health-check loop and podman's API service.
# env: COMPOSE_PROJECT_NAME (default cinderblock), CINDERBLOCK_HA (as up.sh was given).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/containers/env.sh
docker-compose down --remove-orphans "$@"
for name in healthchecks service; do
  if [ -f "$RUN/$name.pid" ]; then
    pid=$(cat "$RUN/$name.pid")
    kill "$pid" 2>/dev/null && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$RUN/$name.pid"
  fi
done
rm -f "${DOCKER_HOST#unix://}"
