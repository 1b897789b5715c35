#!/bin/sh
# The compose stack's secrets, made on its first start by the one-shot `secrets` service (and
# again for whatever file is missing; nothing present is replaced). Writes into /secrets, which
# deploy/compose.yaml binds to deploy/.secrets (CINDERBLOCK_SECRETS_DIR), gitignored:
#   ca.crt                     the CA every certificate below is signed by: give it to clients (0644)
#   demo-openrc, admin-openrc  Keystone credentials (OS_* variables) for the demo member and the admin
#   ca/                        the CA's key (root only: keep it to issue more certificates)
#   api/ scheduler/ volume/    what each service reads (uid 1000, mode 0700/0400), mounted alone into
#   volume2/ volume3/ nats/    its container at /run/secrets/cinderblock; PostgreSQL's (postgres/,
#   postgres-standby/          postgres-standby/) as uid 999
#   keystone/
# Certificates (EC P-256, 825 days): the api's public server certificate (localhost, 127.0.0.1,
# api), the api's client certificate for the volume hosts (cinderblock-api), each volume host's
# server certificate (volume, volume2: the names in the address it advertises, which the api and
# the other host dial; also usable as a client for its own health check), each volume host's peer
# client certificate (peer.crt, cinderblock-volume: the name the other host's
# CINDERBLOCK_VOLUME_TLS_ALLOWED_PEERS accepts, for a retype's migration), PostgreSQL's (postgres)
# and NATS' (nats). For deploy/compose.ha.yaml also: the third volume host's (volume3), the
# PostgreSQL standby's (postgres-standby), and the NATS cluster's (cluster.crt: nats, nats-2 and
# nats-3, server and client use, for the client port and the routes). Passwords ("p" and 48 hex digits: URL-safe, and a string to NATS'
# config parser, which reads a value like 1e5... as a number): PostgreSQL's owner role (migrations)
# and service role (DML only), the NATS users of deploy/nats/nats-server.conf (api, scheduler, the
# volume hosts vol1, vol2 and vol3, compute, operator: nats/operator-password is for people and tools),
# the NATS cluster's routes (nats/route-password), PostgreSQL's replication role `replicator`
# (postgres/replication-password), the Keystone users admin, demo and cinder (the api's service
# user), and the key the apis of deploy/compose.ha.yaml share for page tokens (api/page-token-secret). Each service gets database-url and database-migration-url, and ha-database-url and
# ha-database-migration-url: the same roles on both PostgreSQL servers of deploy/compose.ha.yaml
# (libpq's multi-host form with target_session_attrs=read-write: whichever is the primary). Logs name files, never values.
# env: KEYSTONE_PUBLIC_URL (for the openrc files), SECRETS_OWNER_REF (a file whose owner gets the
# top directory and the user-facing files: compose mounts compose.yaml there).
set -eu
umask 077
S=${SECRETS_DIR:-/secrets}
KEYSTONE_PUBLIC_URL=${KEYSTONE_PUBLIC_URL:-http://127.0.0.1:5000/v3}
OWNER=$(stat -c %u:%g "${SECRETS_OWNER_REF:-$S}" 2>/dev/null || echo 0:0)
SERVICE_UID=1000:1000   # user `node` in the Cinderblock, NATS and Keystone images
POSTGRES_UID=999:999    # user `postgres` in deploy/postgres/Dockerfile
CNF=$(mktemp)
printf '[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n' >"$CNF"
made=""
note() { made="$made $1"; }

mkdir -p "$S/ca" "$S/api" "$S/scheduler" "$S/volume" "$S/volume2" "$S/volume3" "$S/postgres" "$S/postgres-standby" \
  "$S/nats" "$S/keystone"

# --- the CA ------------------------------------------------------------------------------------
if [ ! -s "$S/ca/ca.key" ] || [ ! -s "$S/ca/ca.crt" ]; then
  openssl req -config "$CNF" -x509 -new -days 3650 -noenc -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$S/ca/ca.key" -out "$S/ca/ca.crt" -subj "/CN=Cinderblock compose CA $(date -u +%Y-%m-%d)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  # A new CA invalidates every certificate signed by the old one.
  for d in api volume volume2 volume3 postgres postgres-standby nats; do rm -f "$S/$d/"*.crt "$S/$d/"*.key; done
  note ca/ca.key
fi

# cert DIR NAME CN SAN EKU: a key and a certificate signed by the CA, unless both exist.
cert() {
  if [ -s "$S/$1/$2.key" ] && [ -s "$S/$1/$2.crt" ]; then return; fi
  openssl req -config "$CNF" -x509 -new -days 825 -CA "$S/ca/ca.crt" -CAkey "$S/ca/ca.key" -noenc \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$S/$1/$2.key" -out "$S/$1/$2.crt" \
    -subj "/CN=$3" -addext "subjectAltName=$4" -addext "extendedKeyUsage=$5" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" 2>/dev/null
  note "$1/$2.crt"
}
cert api tls api "DNS:localhost,IP:127.0.0.1,DNS:api" serverAuth
cert api host-client cinderblock-api "DNS:cinderblock-api" clientAuth
cert volume tls volume "DNS:volume,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
cert volume2 tls volume2 "DNS:volume2,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
cert volume3 tls volume3 "DNS:volume3,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
# A retype's migration: the target host reads the volume from the source host with this one.
cert volume peer cinderblock-volume "DNS:cinderblock-volume" clientAuth
cert volume2 peer cinderblock-volume "DNS:cinderblock-volume" clientAuth
cert volume3 peer cinderblock-volume "DNS:cinderblock-volume" clientAuth
cert postgres server postgres "DNS:postgres,DNS:localhost" serverAuth
cert postgres-standby server postgres-standby "DNS:postgres-standby,DNS:localhost" serverAuth
cert nats server nats "DNS:nats,DNS:localhost" serverAuth
cert nats cluster nats "DNS:nats,DNS:nats-2,DNS:nats-3,DNS:localhost" serverAuth,clientAuth
# The NATS nodes verify each other's route certificates, the standby the primary's.
for d in api scheduler volume volume2 volume3 nats postgres-standby; do cp "$S/ca/ca.crt" "$S/$d/ca.crt"; done
cp "$S/ca/ca.crt" "$S/ca.crt"

# secret FILE: "p" and 24 random bytes as hex, unless the file exists.
secret() { [ -s "$S/$1" ] || { echo "p$(openssl rand -hex 24)" >"$S/$1"; note "$1"; }; }
for f in postgres/owner-password postgres/service-password keystone/admin-password keystone/demo-password \
  keystone/cinder-password nats/api-password nats/scheduler-password nats/volume-password nats/volume2-password \
  nats/volume3-password nats/compute-password nats/operator-password nats/route-password postgres/replication-password \
  api/page-token-secret; do
  secret "$f"
done
PG_OWNER=$(cat "$S/postgres/owner-password")
PG_SERVICE=$(cat "$S/postgres/service-password")
cp "$S/postgres/replication-password" "$S/postgres-standby/replication-password"

# --- each service's own copy ---------------------------------------------------------------------
# Migrations run as the database's owner; the services' queries as the DML-only role.
HA_HOSTS=postgres:5432,postgres-standby:5432
for d in api scheduler volume volume2 volume3; do
  printf 'postgres://cinderblock:%s@postgres:5432/cinderblock?sslmode=verify-full\n' "$PG_SERVICE" >"$S/$d/database-url"
  printf 'postgres://cinderblock_owner:%s@postgres:5432/cinderblock?sslmode=verify-full\n' "$PG_OWNER" \
    >"$S/$d/database-migration-url"
  printf 'postgres://cinderblock:%s@%s/cinderblock?sslmode=verify-full&target_session_attrs=read-write\n' \
    "$PG_SERVICE" "$HA_HOSTS" >"$S/$d/ha-database-url"
  printf 'postgres://cinderblock_owner:%s@%s/cinderblock?sslmode=verify-full&target_session_attrs=read-write\n' \
    "$PG_OWNER" "$HA_HOSTS" >"$S/$d/ha-database-migration-url"
  cp "$S/nats/$d-password" "$S/$d/nats-password"
done
cp "$S/keystone/cinder-password" "$S/api/keystone-password"

openrc() { # openrc USER PASSWORD PROJECT
  printf '%s\n' "# Keystone credentials for the compose stack (source it; the openstack CLI reads these too)" \
    "export OS_AUTH_URL=$KEYSTONE_PUBLIC_URL OS_IDENTITY_API_VERSION=3" \
    "export OS_USERNAME=$1 OS_PASSWORD=$2 OS_PROJECT_NAME=$3" \
    "export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default"
}
openrc demo "$(cat "$S/keystone/demo-password")" demo >"$S/demo-openrc"
openrc admin "$(cat "$S/keystone/admin-password")" admin >"$S/admin-openrc"

# --- ownership and modes ---------------------------------------------------------------------------
chown -R 0:0 "$S/ca" && chmod 700 "$S/ca" && chmod 400 "$S"/ca/*
for d in api scheduler volume volume2 volume3 nats keystone; do chown -R "$SERVICE_UID" "$S/$d"; done
chown -R "$POSTGRES_UID" "$S/postgres" "$S/postgres-standby"
for d in api scheduler volume volume2 volume3 postgres postgres-standby nats keystone; do
  chmod 700 "$S/$d" && chmod 400 "$S/$d"/*
done
chown "$OWNER" "$S" "$S/ca.crt" "$S/demo-openrc" "$S/admin-openrc"
chmod 700 "$S" && chmod 644 "$S/ca.crt" && chmod 600 "$S/demo-openrc" "$S/admin-openrc"
rm -f "$CNF"
if [ -n "$made" ]; then echo "secrets: made$made"; else echo "secrets: all present, nothing made"; fi
