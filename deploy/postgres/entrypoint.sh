#!/bin/sh
# First start: initdb, then the two roles and the database from the passwords the `secrets`
# service made (/run/secrets/cinderblock):
#   cinderblock_owner  owns the database and its schema: migrations (DATABASE_MIGRATION_URL)
#   cinderblock        SELECT/INSERT/UPDATE/DELETE on what the owner creates, nothing else (DATABASE_URL)
# Every TCP connection must use TLS and scram-sha-256; only the local socket's `postgres`
# (this entrypoint, pg_isready) gets in by peer authentication.
# Streaming replication (deploy/compose.ha.yaml), by POSTGRES_REPLICATION:
#   primary  at every start, the role `replicator` (REPLICATION, its password from
#            replication-password) and its pg_hba.conf line; WAL kept for a standby that falls
#            behind (wal_keep_size); POSTGRES_SYNCHRONOUS_STANDBY_NAMES as synchronous_standby_names.
#   standby  at first start, a copy of POSTGRES_PRIMARY_HOST by pg_basebackup -R (then it streams
#            from it as application_name `standby`); later starts just start.
# Failover is not automatic: promote the standby (`pg_ctl promote`), and the services, whose URLs
# name both servers with target_session_attrs=read-write, move to it. The old primary must not start
# as a primary again: recreate it as a standby of the new one (remove its volume, swap the roles).
set -eu
SECRETS=${SECRETS:-/run/secrets/cinderblock}
if [ "${POSTGRES_REPLICATION:-}" = standby ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  primary=${POSTGRES_PRIMARY_HOST:?}
  until pg_isready -q -h "$primary" -p 5432; do sleep 1; done
  chmod 700 "$PGDATA"
  # NOTE: -R writes the connection, password included, into postgresql.auto.conf (in PGDATA, 0600).
  PGPASSWORD=$(cat "$SECRETS/replication-password") pg_basebackup -D "$PGDATA" -R -X stream -c fast \
    -d "host=$primary user=replicator sslmode=verify-full sslrootcert=$SECRETS/ca.crt application_name=standby"
  exec postgres -D "$PGDATA"
fi
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
if [ "${POSTGRES_REPLICATION:-}" = primary ]; then
  replication=$(cat "$SECRETS/replication-password")
  # Single-user mode: the server is not running yet, and a stack first started without a standby
  # gets the role now.
  postgres --single -D "$PGDATA" postgres >/dev/null <<SQL
DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') THEN CREATE ROLE replicator REPLICATION LOGIN; END IF; END \$\$;
ALTER ROLE replicator PASSWORD '$replication';
SQL
  grep -q '^hostssl replication' "$PGDATA/pg_hba.conf" || cat >>"$PGDATA/pg_hba.conf" <<HBA
hostssl replication  replicator 0.0.0.0/0   scram-sha-256
hostssl replication  replicator ::/0        scram-sha-256
HBA
  exec postgres -D "$PGDATA" -c wal_keep_size=1GB \
    -c "synchronous_standby_names=${POSTGRES_SYNCHRONOUS_STANDBY_NAMES:-}"
fi
exec postgres -D "$PGDATA"
