#!/bin/sh
# Starts nats-server with deploy/nats/nats-server.conf (the users api, scheduler, vol1, vol2, vol3,
# compute and operator, each allowed only its own subjects), whose passwords the config reads from
# the environment: CINDERBLOCK_NATS_<ROLE>_PASSWORD, set here from the files the `secrets` service made.
# TLS on the client port with the stack's certificate (clients verify it against the stack's CA).
# With NATS_CLUSTER_PEERS (host names, comma-separated, this node's own among them) and
# NATS_SERVER_NAME, it is one node of a JetStream cluster instead (deploy/compose.ha.yaml):
# nats-cluster.conf, routes to every peer on port 6222, and the cluster certificate, whose names
# cover every node, on the client port too (a client may be handed any node).
set -eu
SECRETS=${SECRETS:-/run/secrets/cinderblock}
for user in api scheduler volume volume2 volume3 compute operator; do
  name=$(echo "$user" | tr a-z A-Z)
  export "CINDERBLOCK_NATS_${name}_PASSWORD=$(cat "$SECRETS/$user-password")"
done
if [ -z "${NATS_CLUSTER_PEERS:-}" ]; then
  exec nats-server -c /etc/nats/nats-server.conf -js -sd /data -p 4222 -m 8222 \
    --tls --tlscert "$SECRETS/server.crt" --tlskey "$SECRETS/server.key" "$@"
fi
route_password=$(cat "$SECRETS/route-password")
routes=""
for peer in $(echo "$NATS_CLUSTER_PEERS" | tr , ' '); do
  routes="$routes${routes:+, }\"nats-route://route:$route_password@$peer:6222\""
done
# NOTE: nats-server parses an environment variable's value as a config value, so this one is a list.
export CINDERBLOCK_NATS_ROUTE_PASSWORD="$route_password" CINDERBLOCK_NATS_ROUTES="[$routes]"
exec nats-server -c /etc/nats/nats-cluster.conf -js -sd /data -p 4222 -m 8222 -n "${NATS_SERVER_NAME:?}" \
  --tls --tlscert "$SECRETS/cluster.crt" --tlskey "$SECRETS/cluster.key" "$@"
