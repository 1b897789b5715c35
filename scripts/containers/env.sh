# Sourced by the scripts here: podman/buildah settings this kind of host needs, with all of podman's
# storage and state under one directory of the project's (CINDERBLOCK_PODMAN_DIR).
#   runc (crun refuses hybrid cgroups), ulimits root can actually set, cgroupfs and a file events
#   logger (no systemd), overlay storage (vfs works but is ~6x slower).
CINDERBLOCK_PODMAN_DIR=${CINDERBLOCK_PODMAN_DIR:-/var/tmp/cinderblock-podman}
export CINDERBLOCK_PODMAN_DIR
mkdir -p "$CINDERBLOCK_PODMAN_DIR"/{storage,run/libpod,networks}
export CONTAINERS_CONF=$CINDERBLOCK_PODMAN_DIR/containers.conf
export CONTAINERS_STORAGE_CONF=$CINDERBLOCK_PODMAN_DIR/storage.conf
# One API socket (and health-check loop) per compose project, so a test stack and a developer's
# stack share the images but not their lifecycles.
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-cinderblock}
# The compose files every script here runs (docker-compose reads COMPOSE_FILE): deploy/compose.yaml,
# and with CINDERBLOCK_HA=1 deploy/compose.ha.yaml on top (three NATS nodes, a PostgreSQL standby,
# two apis, two schedulers, a volume cluster). Give up.sh, down.sh, ... the same CINDERBLOCK_HA.
if [ "${CINDERBLOCK_HA:-0}" = 1 ]; then
  export COMPOSE_FILE=deploy/compose.yaml:deploy/compose.ha.yaml
else
  export COMPOSE_FILE=deploy/compose.yaml
fi
RUN=$CINDERBLOCK_PODMAN_DIR/run/$COMPOSE_PROJECT_NAME
mkdir -p "$RUN"
export DOCKER_HOST=unix://$RUN/podman.sock
cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
tmp_dir = "$CINDERBLOCK_PODMAN_DIR/run/libpod"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CINDERBLOCK_PODMAN_DIR/run/events.log"
[network]
network_config_dir = "$CINDERBLOCK_PODMAN_DIR/networks"
network_backend = "netavark"
CONF
cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$CINDERBLOCK_PODMAN_DIR/storage"
runroot = "$CINDERBLOCK_PODMAN_DIR/run/storage"
CONF
