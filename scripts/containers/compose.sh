#!/usr/bin/env bash
# docker-compose on deploy/compose.yaml (and deploy/compose.ha.yaml with CINDERBLOCK_HA=1) through
# podman's API socket that up.sh started, e.g.
#   scripts/containers/compose.sh ps        scripts/containers/compose.sh port api 50051
# env: COMPOSE_PROJECT_NAME (default cinderblock), CINDERBLOCK_HA.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/containers/env.sh
exec docker-compose "$@"
