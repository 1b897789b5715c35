#!/bin/sh
# Keystone for the compose stack, on 0.0.0.0:5000 inside its container. First start (an empty
# /var/lib/keystone): db_sync, fernet and credential keys, bootstrap (user admin, role admin on
# project admin, region RegionOne, the identity endpoint), then project demo with user demo (role
# member) and project service with user cinder (role service: validates other users' tokens for
# the api, as keystonemiddleware does). Passwords from the `secrets` service's files.
# What shared/labs/keystone found and this keeps: one uWSGI process and thread (SQLite; the
# in-memory cache stays coherent), the database in WAL mode, `Connection: close` on every
# response (uWSGI's --http-socket closes the connection anyway, and a client that reuses it gets a reset).
# env: KEYSTONE_PUBLIC_URL (the endpoint users reach, default http://127.0.0.1:5000/v3),
#      KEYSTONE_INTERNAL_URL (default http://keystone:5000/v3), TOKEN_TTL (seconds, default 3600).
set -eu
SECRETS=${SECRETS:-/run/secrets/cinderblock}
D=/var/lib/keystone
PUBLIC=${KEYSTONE_PUBLIC_URL:-http://127.0.0.1:5000/v3}
INTERNAL=${KEYSTONE_INTERNAL_URL:-http://keystone:5000/v3}
LOCAL=http://127.0.0.1:5000/v3
mkdir -p "$D/etc"
cat >"$D/etc/keystone.conf" <<CONF
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///$D/keystone.db
[token]
provider = fernet
expiration = ${TOKEN_TTL:-3600}
[fernet_tokens]
key_repository = $D/fernet-keys
[fernet_receipts]
key_repository = $D/fernet-keys
[credential]
key_repository = $D/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memory
CONF
km() { keystone-manage --config-file "$D/etc/keystone.conf" "$@"; }
if [ ! -s "$D/keystone.db" ]; then
  km fernet_setup --keystone-user node --keystone-group node
  km credential_setup --keystone-user node --keystone-group node
  km db_sync
  # WAL: Keystone leaves a read transaction open after some requests, which in SQLite's default
  # journal mode makes every other write fail with "database is locked".
  sqlite3 "$D/keystone.db" 'PRAGMA journal_mode = WAL;' >/dev/null
fi
if [ ! -e "$D/.bootstrapped" ]; then
  km bootstrap --bootstrap-password "$(cat "$SECRETS/admin-password")" --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$INTERNAL" --bootstrap-internal-url "$INTERNAL" --bootstrap-public-url "$PUBLIC"
fi
/usr/bin/uwsgi_python3 --http-socket 0.0.0.0:5000 --wsgi-file /usr/bin/keystone-wsgi-public \
  --env "OS_KEYSTONE_CONFIG_DIR=$D/etc" --master --lazy-apps --die-on-term --enable-threads \
  --processes 1 --threads 1 --buffer-size 65535 --add-header 'Connection: close' \
  --disable-logging --log-4xx --log-5xx &
pid=$!
trap 'kill -TERM $pid' TERM INT
for _ in $(seq 1 300); do curl -sf -o /dev/null "$LOCAL" && break; sleep 0.2; done

# The demo and service users (idempotent: a start interrupted half-way does it again).
if [ ! -e "$D/.bootstrapped" ]; then
  token() { # token USER PASSWORD PROJECT -> a project-scoped token
    curl -sf -D - -o /dev/null -H 'Content-Type: application/json' "$LOCAL/auth/tokens" -d "$(jq -nc \
      --arg u "$1" --arg p "$2" --arg pr "$3" '{auth: {identity: {methods: ["password"], password: {user:
      {name: $u, domain: {id: "default"}, password: $p}}}, scope: {project: {name: $pr, domain: {id: "default"}}}}}')" |
      tr -d '\r' | awk -F': ' 'tolower($1) == "x-subject-token" {print $2}'
  }
  ADMIN_TOKEN=$(token admin "$(cat "$SECRETS/admin-password")" admin)
  api() { curl -sf -X "$1" -H "X-Auth-Token: $ADMIN_TOKEN" -H 'Content-Type: application/json' "$LOCAL$2" ${3:+-d "$3"}; }
  ensure() { # ensure COLLECTION NAME BODY: the id of the entity with that name, created if missing
    id=$(api GET "/$1?name=$2" | jq -r ".$1[0].id // empty")
    [ -n "$id" ] || id=$(api POST "/$1" "$3" | jq -r '.[].id')
    echo "$id"
  }
  user() { jq -nc --arg n "$1" --arg p "$(cat "$2")" --arg pr "$3" \
    '{user: {name: $n, password: $p, default_project_id: $pr, domain_id: "default"}}'; }
  MEMBER=$(ensure roles member '{"role": {"name": "member"}}')
  SERVICE=$(ensure roles service '{"role": {"name": "service"}}')
  DEMO_P=$(ensure projects demo '{"project": {"name": "demo", "domain_id": "default"}}')
  SVC_P=$(ensure projects service '{"project": {"name": "service", "domain_id": "default"}}')
  DEMO_U=$(ensure users demo "$(user demo "$SECRETS/demo-password" "$DEMO_P")")
  SVC_U=$(ensure users cinder "$(user cinder "$SECRETS/cinder-password" "$SVC_P")")
  api PUT "/projects/$DEMO_P/users/$DEMO_U/roles/$MEMBER"
  api PUT "/projects/$SVC_P/users/$SVC_U/roles/$SERVICE"
  touch "$D/.bootstrapped"
  echo "keystone: bootstrapped (admin on admin, demo on demo as member, cinder on service as service)"
fi
wait $pid || wait $pid
