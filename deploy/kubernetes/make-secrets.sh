#!/usr/bin/env bash
# Makes the Secrets deploy/kubernetes needs, at deploy time (nothing secret is committed), and
# prints them as YAML:   deploy/kubernetes/make-secrets.sh [DIR] | kubectl apply -f -
# then `kubectl apply -k deploy/kubernetes`. Needs openssl and base64 only (no cluster access).
# DIR (default ./cinderblock-secrets, mode 0700) keeps what was made: the CA and its key (to issue
# more certificates; give ca.crt to the api's clients), every certificate and password. Running it
# again reuses what DIR holds and makes only what is missing, so it prints the same Secrets; delete
# a file to replace it (a certificate, to renew it: the api and volume hosts reload theirs).
#
#   cinderblock-api-tls          the api's public certificate (tls.crt, tls.key) and the CA (ca.crt)
#   cinderblock-api-host-client  the api's client certificate for the volume hosts (SAN cinderblock-api)
#   cinderblock-volume-tls       the volume hosts' certificate (*.cinderblock-volume.<ns>.svc.cluster.local:
#                                the addresses they advertise, which the api and the other hosts dial;
#                                also a client certificate, for each pod's own health probe)
#   cinderblock-volume-peer      the volume hosts' client certificate for each other (SAN cinderblock-volume,
#                                their CINDERBLOCK_VOLUME_TLS_ALLOWED_PEERS): a retype's migration
#   cinderblock-database         database-url (the DML-only role `cinderblock`), database-migration-url
#                                (the owner role `cinderblock_owner`), ca.crt (PostgreSQL's CA); both URLs
#                                name DATABASE_HOST, by default CloudNativePG's read-write Service of the
#                                cluster cinderblock-db (cloudnative-pg.yaml), which follows the primary
#   cinderblock-postgres         for whoever runs PostgreSQL: owner-password, service-password, roles.sql
#                                (creates both roles and the database), tls.crt/tls.key for the server
#   cinderblock-db-server        the same server certificate as a TLS Secret (with ca.crt), for
#                                CloudNativePG's certificates.serverTLSSecret/serverCASecret
#   cinderblock-db-owner         basic-auth (username, password) of `cinderblock_owner`: CloudNativePG's
#                                bootstrap.initdb.secret
#   cinderblock-db-service-role  service-role.sql: the role `cinderblock` and its grants, for
#                                CloudNativePG's bootstrap.initdb.postInitApplicationSQLRefs
#   cinderblock-nats             the NATS users' passwords (api-, scheduler-, volume-, compute-,
#                                operator-password: deploy/nats/nats-server.conf reads them from
#                                CINDERBLOCK_NATS_<ROLE>_PASSWORD), ca.crt, tls.crt/tls.key for the servers
#                                (NATS_HOST and every pod of a 3-node cluster's headless Service, for the
#                                clients and, as a client certificate too, for the routes between nodes)
#   cinderblock-keystone         password: the api's Keystone service user's (create that user with it,
#                                role `service`, or put yours in DIR/keystone-password first)
#   cinderblock-api-page-tokens  secret: the key every api replica signs page tokens with (so a token
#                                one replica gave out is good at the others)
#
# env: NAMESPACE (cinderblock); API_SANS (more names for the public certificate, e.g.
#      "DNS:cinderblock.example.com,IP:203.0.113.7"); DATABASE_CLUSTER (cinderblock-db: a CloudNativePG
#      cluster, whose Services <cluster>-rw, -ro and -r the server certificate names), DATABASE_HOST
#      (<cluster>-rw.<ns>.svc.cluster.local; your own PostgreSQL's name otherwise), DATABASE_PORT (5432),
#      DATABASE_NAME (cinderblock); DATABASE_CA_FILE (your PostgreSQL's CA, when its certificate is not
#      one this script made); NATS_HOST (nats.<ns>.svc.cluster.local), NATS_HEADLESS (nats-headless:
#      the NATS cluster's headless Service, whose pods are named in config.yaml's NATS_URL).
# Diagnostics go to stderr and name files, never values.
set -euo pipefail
DIR=${1:-./cinderblock-secrets}
NS=${NAMESPACE:-cinderblock}
DB_CLUSTER=${DATABASE_CLUSTER:-cinderblock-db}
DB_HOST=${DATABASE_HOST:-$DB_CLUSTER-rw.$NS.svc.cluster.local}
DB_PORT=${DATABASE_PORT:-5432}
DB_NAME=${DATABASE_NAME:-cinderblock}
NATS_HOST=${NATS_HOST:-nats.$NS.svc.cluster.local}
NATS_HEADLESS=${NATS_HEADLESS:-nats-headless}
command -v openssl >/dev/null || { echo "make-secrets.sh: openssl is required" >&2; exit 1; }
umask 077
mkdir -p "$DIR"
CNF=$(mktemp)
trap 'rm -f "$CNF"' EXIT
printf '[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n' >"$CNF"
made() { echo "make-secrets.sh: made $DIR/$1" >&2; }

if [ ! -s "$DIR/ca.key" ] || [ ! -s "$DIR/ca.crt" ]; then
  openssl req -config "$CNF" -x509 -new -days 3650 -noenc -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$DIR/ca.key" -out "$DIR/ca.crt" -subj "/CN=Cinderblock $NS CA $(date -u +%Y-%m-%d)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  rm -f "$DIR"/*-tls.crt "$DIR"/*-tls.key   # signed by a CA that is gone
  made ca.crt
fi

# cert NAME CN SAN EKU: NAME.crt and NAME.key signed by the CA (825 days), unless both exist.
cert() {
  if [ -s "$DIR/$1.key" ] && [ -s "$DIR/$1.crt" ]; then return; fi
  openssl req -config "$CNF" -x509 -new -days 825 -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -noenc \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$DIR/$1.key" -out "$DIR/$1.crt" \
    -subj "/CN=$2" -addext "subjectAltName=$3" -addext "extendedKeyUsage=$4" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" 2>/dev/null
  made "$1.crt"
}
API=cinderblock-api
cert api-tls "$API" "DNS:$API,DNS:$API.$NS,DNS:$API.$NS.svc,DNS:$API.$NS.svc.cluster.local,DNS:localhost,IP:127.0.0.1${API_SANS:+,$API_SANS}" serverAuth
cert api-host-client-tls cinderblock-api "DNS:cinderblock-api" clientAuth
cert volume-tls cinderblock-volume "DNS:*.cinderblock-volume.$NS.svc.cluster.local,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
cert volume-peer-tls cinderblock-volume "DNS:cinderblock-volume" clientAuth
# sans HOST...: DNS:HOST,DNS:HOST.<ns>,DNS:HOST.<ns>.svc,DNS:HOST.<ns>.svc.cluster.local for each.
sans() { local h; for h in "$@"; do printf 'DNS:%s,DNS:%s.%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local,' "$h" "$h" "$NS" "$h" "$NS" "$h" "$NS"; done; }
DB_SANS=$(sans "$DB_CLUSTER-rw" "$DB_CLUSTER-ro" "$DB_CLUSTER-r")
cert postgres-tls "$DB_HOST" "DNS:$DB_HOST,${DB_SANS%,}" serverAuth
cert nats-tls "$NATS_HOST" "DNS:$NATS_HOST,DNS:*.$NATS_HEADLESS.$NS.svc.cluster.local" serverAuth,clientAuth

# secret NAME: "p" and 24 random bytes as hex (URL-safe, and a string to NATS' config parser,
# which reads 1e5... as a number), unless DIR/NAME exists.
secret() { [ -s "$DIR/$1" ] || { echo "p$(openssl rand -hex 24)" >"$DIR/$1"; made "$1"; }; }
for name in postgres-owner-password postgres-service-password keystone-password api-page-token-secret \
  nats-api-password nats-scheduler-password nats-volume-password nats-compute-password nats-operator-password; do
  secret "$name"
done
OWNER=$(cat "$DIR/postgres-owner-password")
SERVICE=$(cat "$DIR/postgres-service-password")
DB_CA=${DATABASE_CA_FILE:-$DIR/ca.crt}
DB="$DB_HOST:$DB_PORT/$DB_NAME?sslmode=verify-full"

# The DML-only role and its grants, run as a superuser in the database once it and its owner exist:
# the second half of roles.sql, and on its own CloudNativePG's bootstrap.initdb.postInitApplicationSQLRefs
# (its initdb makes the database and the owner).
cat >"$DIR/service-role.sql" <<SQL
SET password_encryption = 'scram-sha-256';
CREATE ROLE cinderblock LOGIN PASSWORD '$SERVICE';
REVOKE ALL ON DATABASE "$DB_NAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE "$DB_NAME" TO cinderblock;
ALTER SCHEMA public OWNER TO cinderblock_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO cinderblock;
ALTER DEFAULT PRIVILEGES FOR ROLE cinderblock_owner GRANT USAGE ON SCHEMAS TO cinderblock;
ALTER DEFAULT PRIVILEGES FOR ROLE cinderblock_owner GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cinderblock;
ALTER DEFAULT PRIVILEGES FOR ROLE cinderblock_owner GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO cinderblock;
SQL
cat - "$DIR/service-role.sql" >"$DIR/roles.sql" <<SQL
-- Cinderblock's PostgreSQL roles (run as a superuser; then require hostssl + scram-sha-256 in pg_hba.conf).
SET password_encryption = 'scram-sha-256';
CREATE ROLE cinderblock_owner LOGIN PASSWORD '$OWNER';
CREATE DATABASE "$DB_NAME" OWNER cinderblock_owner;
\\connect "$DB_NAME"
SQL

b64() { base64 -w0 <"$1"; }
b64s() { printf '%s' "$1" | base64 -w0; }
# secret_yaml NAME TYPE KEY=FILE...: one Secret, its values base64-encoded from the files.
secret_yaml() {
  local name=$1 type=$2 pair
  shift 2
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$name" "$NS"
  printf '  labels:\n    app.kubernetes.io/part-of: cinderblock\ntype: %s\ndata:\n' "$type"
  for pair in "$@"; do
    case $pair in
      *=@*) printf '  %s: %s\n' "${pair%%=@*}" "$(b64s "${pair#*=@}")" ;;
      *) printf '  %s: %s\n' "${pair%%=*}" "$(b64 "${pair#*=}")" ;;
    esac
  done
}
echo "# Made by deploy/kubernetes/make-secrets.sh from $DIR: apply it, never commit it."
secret_yaml cinderblock-api-tls kubernetes.io/tls \
  tls.crt="$DIR/api-tls.crt" tls.key="$DIR/api-tls.key" ca.crt="$DIR/ca.crt"
secret_yaml cinderblock-api-host-client kubernetes.io/tls \
  tls.crt="$DIR/api-host-client-tls.crt" tls.key="$DIR/api-host-client-tls.key" ca.crt="$DIR/ca.crt"
secret_yaml cinderblock-volume-tls kubernetes.io/tls \
  tls.crt="$DIR/volume-tls.crt" tls.key="$DIR/volume-tls.key" ca.crt="$DIR/ca.crt"
secret_yaml cinderblock-volume-peer kubernetes.io/tls \
  tls.crt="$DIR/volume-peer-tls.crt" tls.key="$DIR/volume-peer-tls.key" ca.crt="$DIR/ca.crt"
secret_yaml cinderblock-database Opaque \
  database-url="@postgres://cinderblock:$SERVICE@$DB" \
  database-migration-url="@postgres://cinderblock_owner:$OWNER@$DB" ca.crt="$DB_CA"
secret_yaml cinderblock-postgres Opaque \
  owner-password="$DIR/postgres-owner-password" service-password="$DIR/postgres-service-password" \
  roles.sql="$DIR/roles.sql" tls.crt="$DIR/postgres-tls.crt" tls.key="$DIR/postgres-tls.key"
secret_yaml cinderblock-db-server kubernetes.io/tls \
  tls.crt="$DIR/postgres-tls.crt" tls.key="$DIR/postgres-tls.key" ca.crt="$DIR/ca.crt"
secret_yaml cinderblock-db-owner kubernetes.io/basic-auth \
  username=@cinderblock_owner password="@$OWNER"
secret_yaml cinderblock-db-service-role Opaque service-role.sql="$DIR/service-role.sql"
secret_yaml cinderblock-nats Opaque \
  api-password="$DIR/nats-api-password" scheduler-password="$DIR/nats-scheduler-password" \
  volume-password="$DIR/nats-volume-password" compute-password="$DIR/nats-compute-password" \
  operator-password="$DIR/nats-operator-password" \
  ca.crt="$DIR/ca.crt" tls.crt="$DIR/nats-tls.crt" tls.key="$DIR/nats-tls.key"
secret_yaml cinderblock-keystone Opaque password="$DIR/keystone-password"
secret_yaml cinderblock-api-page-tokens Opaque secret="$DIR/api-page-token-secret"
