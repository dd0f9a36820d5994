//! PostgreSQL helpers: fresh databases (created from the maintenance database, dropped after),
//! URL rewriting, and the schema the naive baseline and the pgbench ceiling share.

use rand::Rng;
use tokio_postgres::{Client, NoTls};

/// Errors from the database helpers.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL has no `scheme://host/db` shape.
    #[error("database URL has no path to replace: {0}")]
    BadUrl(String),
    /// A PostgreSQL call failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// `url` with its database name replaced by `db` (query string kept).
pub fn url_with_db(url: &str, db: &str) -> Result<String, PgError> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| PgError::BadUrl(url.to_owned()))?
        + 3;
    let (head, rest) = url.split_at(scheme_end);
    let (rest, query) = match rest.find('?') {
        Some(q) => rest.split_at(q),
        None => (rest, ""),
    };
    let host = match rest.find('/') {
        Some(slash) => &rest[..slash],
        None => rest,
    };
    Ok(format!("{head}{host}/{db}{query}"))
}

/// Connects and drives the connection on a background task.
pub async fn connect(url: &str) -> Result<Client, PgError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A database created for one run or test; call [`FreshDb::drop_db`] when done.
#[derive(Debug, Clone)]
pub struct FreshDb {
    /// The database name.
    pub name: String,
    /// A URL pointing at it.
    pub url: String,
    /// A URL pointing at the maintenance database it was created from.
    pub admin_url: String,
}

impl FreshDb {
    /// Creates `{prefix}_{random}` from the maintenance database `postgres` reachable at `base_url`
    /// (any database name in `base_url` is replaced).
    pub async fn create(base_url: &str, prefix: &str) -> Result<Self, PgError> {
        let admin_url = url_with_db(base_url, "postgres")?;
        let suffix: u64 = rand::thread_rng().gen_range(0..u64::from(u32::MAX));
        let name = format!("{prefix}_{}_{suffix:x}", std::process::id());
        let admin = connect(&admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = url_with_db(base_url, &name)?;
        Ok(Self {
            name,
            url,
            admin_url,
        })
    }

    /// Drops the database, disconnecting anyone still on it.
    pub async fn drop_db(&self) -> Result<(), PgError> {
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// The shape shared with Kataar's tables, minus everything the naive server does not need.
/// No `CHECK (booked <= capacity)`: the naive server relies on its `WHERE booked < capacity`.
pub const BASELINE_SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS pools (
    pool_id bigint PRIMARY KEY,
    capacity int NOT NULL,
    booked int NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS bookings (
    booking_id bigserial PRIMARY KEY,
    person_key bytea NOT NULL,
    dose smallint NOT NULL,
    status text NOT NULL DEFAULT 'booked',
    pool_id bigint NOT NULL,
    account_id bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS bookings_live_person_dose
    ON bookings (person_key, dose) WHERE status IN ('booked', 'checked_in');
CREATE TABLE IF NOT EXISTS idempotency (
    account_id bigint NOT NULL,
    idem_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
";

/// Creates the baseline schema (idempotent).
pub async fn create_baseline_schema(client: &Client) -> Result<(), PgError> {
    client.batch_execute(BASELINE_SCHEMA_SQL).await?;
    Ok(())
}

/// Replaces all pools with `npools` pools (ids 1..=npools) of `capacity` each, and empties bookings.
pub async fn seed_pools(client: &Client, npools: i64, capacity: i32) -> Result<(), PgError> {
    client
        .batch_execute("TRUNCATE bookings; TRUNCATE idempotency; TRUNCATE pools;")
        .await?;
    client
        .execute(
            "INSERT INTO pools (pool_id, capacity, booked) \
             SELECT g, $2, 0 FROM generate_series(1::bigint, $1::bigint) g",
            &[&npools, &capacity],
        )
        .await?;
    client.batch_execute("VACUUM ANALYZE pools").await?;
    Ok(())
}
