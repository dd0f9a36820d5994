//! The store's error type. Messages never carry SQL text, parameter values or secrets: only a
//! short cause, an SQLSTATE code or a constraint name. The API maps every variant to
//! `503 store_unavailable`.

use thiserror::Error;

/// Why a store call did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error that is not a constraint.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The leader epoch moved: another writer took over; nothing was written.
    #[error("store fenced: another writer holds a newer epoch")]
    Fenced,
    /// The commit may or may not have been made durable (the connection was lost during
    /// COMMIT); the caller must read back with [`crate::Store::batch_committed`].
    #[error("commit outcome unknown")]
    InDoubt,
    /// A constraint refused the batch (the constraint's name); nothing was written.
    #[error("store constraint violated: {0}")]
    Constraint(String),
    /// A deadline passed (pool wait, connection creation).
    #[error("store timed out")]
    Timeout,
    /// Stored data could not be decoded into the domain types (which column).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A migration failed (its version).
    #[error("migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// A short stable name for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Fenced => "fenced",
            StoreError::InDoubt => "in_doubt",
            StoreError::Constraint(_) => "constraint",
            StoreError::Timeout => "timeout",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Migration(_) => "migration",
        }
    }
}

/// Maps a PostgreSQL error to a [`StoreError`] without its message text (which may quote
/// values): the SQLSTATE and the constraint name only.
pub(crate) fn from_pg(err: &tokio_postgres::Error) -> StoreError {
    match err.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            if code.starts_with("23") {
                StoreError::Constraint(db.constraint().unwrap_or(code).to_string())
            } else {
                StoreError::Unavailable(format!("database error {code}"))
            }
        }
        None if err.is_closed() => StoreError::Unavailable("connection closed".into()),
        None => StoreError::Unavailable("connection error".into()),
    }
}

/// Maps a pool error.
pub(crate) fn from_pool(err: &deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Timeout(_) => StoreError::Timeout,
        deadpool_postgres::PoolError::Backend(e) => from_pg(e),
        _ => StoreError::Unavailable("connection pool error".into()),
    }
}

/// Maps an SQLite error the same way (constraint name when SQLite gives one, never SQL).
pub(crate) fn from_sqlite(err: &rusqlite::Error) -> StoreError {
    match err {
        rusqlite::Error::SqliteFailure(e, msg) => match e.code {
            rusqlite::ErrorCode::ConstraintViolation => {
                // SQLite's message names the constraint or the columns, never values.
                StoreError::Constraint(msg.clone().unwrap_or_else(|| "constraint".into()))
            }
            rusqlite::ErrorCode::OperationInterrupted => {
                StoreError::Unavailable("interrupted".into())
            }
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                StoreError::Unavailable("database busy".into())
            }
            other => StoreError::Unavailable(format!("sqlite error {other:?}")),
        },
        rusqlite::Error::FromSqlConversionFailure(col, _, _)
        | rusqlite::Error::InvalidColumnType(col, _, _) => {
            StoreError::Corrupt(format!("column {col}"))
        }
        _ => StoreError::Unavailable("sqlite error".into()),
    }
}
