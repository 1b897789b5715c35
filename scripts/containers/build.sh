#!/usr/bin/env bash
# Builds the Cinderblock images with podman (no Docker engine, no registry needed): the local
# stand-in for node:24-bookworm-slim (once), then secrets, postgres, nats, keystone, api, scheduler
# and volume, tagged
# as deploy/compose.yaml names them (localhost/cinderblock-<name>:dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/containers/env.sh
BASE=docker.io/library/node:24-bookworm-slim
if ! podman image exists "$BASE"; then
  echo "building the base image $BASE (debootstrap + Node 24)"
  scripts/containers/make-node-base.sh "$CINDERBLOCK_PODMAN_DIR/base" >/dev/null
fi
# docker format keeps each Dockerfile's HEALTHCHECK in the image (OCI has no field for it).
build() { podman build -q --format docker --pull=never "$@" >/dev/null; }
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
for image in secrets postgres nats keystone; do
  build -t "localhost/cinderblock-$image:dev" -f "deploy/$image/Dockerfile" deploy
done
for target in api scheduler volume; do
  build --ignorefile deploy/Dockerfile.dockerignore --build-arg REVISION="$REVISION" \
    --target "$target" -t "localhost/cinderblock-$target:dev" -f deploy/Dockerfile .
done
podman images --filter reference='localhost/cinderblock-*' --format '{{.Repository}}:{{.Tag}} {{.Size}}'
