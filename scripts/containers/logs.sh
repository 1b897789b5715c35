#!/usr/bin/env bash
# Prints the compose stack's state and recent logs (for CI output). env: COMPOSE_PROJECT_NAME.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/containers/env.sh
docker-compose -f deploy/compose.yaml ps
docker-compose -f deploy/compose.yaml logs --no-color --tail="${1:-40}"
