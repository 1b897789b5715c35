#!/bin/sh
# Starts nats-server with deploy/nats/nats-server.conf (the users api, scheduler, vol1, vol2, compute and
# operator, each allowed only its own subjects), whose passwords the config reads from the
# environment: CINDERBLOCK_NATS_<ROLE>_PASSWORD, set here from the files the `secrets` service made.
# TLS on the client port with the stack's certificate (clients verify it against the stack's CA).
set -eu
SECRETS=${SECRETS:-/run/secrets/cinderblock}
for user in api scheduler volume volume2 compute operator; do
  name=$(echo "$user" | tr a-z A-Z)
  export "CINDERBLOCK_NATS_${name}_PASSWORD=$(cat "$SECRETS/$user-password")"
done
exec nats-server -c /etc/nats/nats-server.conf -js -sd /data -p 4222 -m 8222 \
  --tls --tlscert "$SECRETS/server.crt" --tlskey "$SECRETS/server.key" "$@"
