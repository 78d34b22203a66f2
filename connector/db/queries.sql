-- Named queries of the engine core. Other modules may keep their own *queries.sql beside this.

-- name: migration_lock
SELECT pg_advisory_lock(hashtext('connector.migrate'));

-- name: migration_unlock
SELECT pg_advisory_unlock(hashtext('connector.migrate'));

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version;

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = $1;

-- name: migrations_table_exists
SELECT to_regclass('schema_migrations') IS NOT NULL;
