"""The database: asyncpg pool, embedded Postgres, migrations and named queries."""
