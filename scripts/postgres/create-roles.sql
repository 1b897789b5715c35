-- Cinderblock's two PostgreSQL roles and its database, run once by an administrator:
--   psql -v migration_password="$(cat /run/secrets/pg-migration)" \
--        -v service_password="$(cat /run/secrets/pg-service)" -f scripts/postgres/create-roles.sql
-- then point the services at them:
--   DATABASE_MIGRATION_URL=postgres://cinderblock_migration:...@db:5432/cinderblock?sslmode=verify-full
--   DATABASE_URL=postgres://cinderblock:...@db:5432/cinderblock?sslmode=verify-full
-- The migration role owns the schema; at every start, after migrating, it grants the services' role
-- SELECT, INSERT, UPDATE and DELETE on the tables and USAGE on the sequences (and the same for
-- tables later migrations add), so nothing needs granting here.

\set ON_ERROR_STOP on

CREATE ROLE cinderblock_migration LOGIN PASSWORD :'migration_password';
CREATE ROLE cinderblock LOGIN PASSWORD :'service_password';

CREATE DATABASE cinderblock OWNER cinderblock_migration;
\connect cinderblock

-- Only the migration role creates objects (already so from PostgreSQL 15 on; said for older servers).
ALTER SCHEMA public OWNER TO cinderblock_migration;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE cinderblock TO cinderblock;

-- pg_hba.conf: accept both roles only over TLS with SCRAM, e.g.
--   hostssl cinderblock cinderblock,cinderblock_migration 10.0.0.0/8 scram-sha-256
