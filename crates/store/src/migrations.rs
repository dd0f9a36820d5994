//! Embedded schema migrations, applied in order and recorded in `schema_migrations`.
//! PostgreSQL serialises concurrent runners with an advisory lock; SQLite with
//! `BEGIN IMMEDIATE`. Each migration runs in its own transaction with its record.
//!
//! To add one: append `(version, name, sql)` to both lists with the next version; never
//! edit a migration that has shipped.

/// One migration: version (dense from 1), name, SQL.
pub type Migration = (i32, &'static str, &'static str);

/// PostgreSQL migrations, in order.
pub const PG_MIGRATIONS: &[Migration] = &[
    (1, "init", include_str!("migrations/pg_0001_init.sql")),
    (
        2,
        "secret_checks",
        include_str!("migrations/pg_0002_secret_checks.sql"),
    ),
    (
        3,
        "key_revocation",
        include_str!("migrations/pg_0003_key_revocation.sql"),
    ),
    (
        4,
        "releases",
        include_str!("migrations/pg_0004_releases.sql"),
    ),
];

/// SQLite migrations, in order (the same versions as PostgreSQL).
pub const SQLITE_MIGRATIONS: &[Migration] = &[
    (1, "init", include_str!("migrations/sqlite_0001_init.sql")),
    (
        2,
        "secret_checks",
        include_str!("migrations/sqlite_0002_secret_checks.sql"),
    ),
    (
        3,
        "key_revocation",
        include_str!("migrations/sqlite_0003_key_revocation.sql"),
    ),
    (
        4,
        "releases",
        include_str!("migrations/sqlite_0004_releases.sql"),
    ),
];

/// The advisory lock key the PostgreSQL runner holds ("kataar" in ASCII).
pub const PG_MIGRATION_LOCK_KEY: i64 = 0x6b61_7461_6172;

/// The bookkeeping table (the same on both backends).
pub(crate) const SCHEMA_MIGRATIONS_SQL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at text NOT NULL
)";

const _: () = assert!(PG_MIGRATIONS.len() == SQLITE_MIGRATIONS.len());
