#!/usr/bin/env bash
# Prints the compose stack's state and recent logs (for CI output). env: COMPOSE_PROJECT_NAME, CINDERBLOCK_HA.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/containers/env.sh
docker-compose ps
docker-compose logs --no-color --tail="${1:-40}"
