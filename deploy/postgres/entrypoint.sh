#!/bin/sh
# First start: initdb, then the two roles and the database from the passwords the `secrets`
# service made (/run/secrets/cinderblock):
#   cinderblock_owner  owns the database and its schema: migrations (DATABASE_MIGRATION_URL)
#   cinderblock        SELECT/INSERT/UPDATE/DELETE on what the owner creates, nothing else (DATABASE_URL)
# Every TCP connection must use TLS and scram-sha-256; only the local socket's `postgres`
# (this entrypoint, pg_isready) gets in by peer authentication.
set -eu
SECRETS=${SECRETS:-/run/secrets/cinderblock}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  owner=$(cat "$SECRETS/owner-password")
  service=$(cat "$SECRETS/service-password")
  initdb -D "$PGDATA" -U postgres --auth-local=peer --auth-host=reject --encoding=UTF8 >/dev/null
  cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$SECRETS/server.crt'
ssl_key_file = '$SECRETS/server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
  cat >"$PGDATA/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER      ADDRESS     METHOD
local   all          postgres              peer
hostssl $POSTGRES_DB all       0.0.0.0/0   scram-sha-256
hostssl $POSTGRES_DB all       ::/0        scram-sha-256
HBA
  postgres --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE ROLE cinderblock_owner LOGIN PASSWORD '$owner';
CREATE ROLE cinderblock LOGIN PASSWORD '$service';
CREATE DATABASE "$POSTGRES_DB" OWNER cinderblock_owner;
REVOKE ALL ON DATABASE "$POSTGRES_DB" FROM PUBLIC;
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO cinderblock;
SQL
  postgres --single -D "$PGDATA" "$POSTGRES_DB" >/dev/null <<SQL
ALTER SCHEMA public OWNER TO cinderblock_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO cinderblock;
ALTER DEFAULT PRIVILEGES FOR ROLE cinderblock_owner GRANT USAGE ON SCHEMAS TO cinderblock;
ALTER DEFAULT PRIVILEGES FOR ROLE cinderblock_owner GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cinderblock;
ALTER DEFAULT PRIVILEGES FOR ROLE cinderblock_owner GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO cinderblock;
SQL
fi
exec postgres -D "$PGDATA"
