//! kataar-store: the durable store of Kataar.
//!
//! # Layout
//!
//! - [`store`]: the object-safe [`Store`] trait every backend implements.
//! - [`postgres`]: [`PgStore`], PostgreSQL through deadpool-postgres; batches written with
//!   one `unnest` statement per event kind.
//! - [`sqlite`]: [`SqliteStore`], the embedded default (WAL, `synchronous=FULL`), on its own
//!   blocking threads.
//! - [`writer`]: the group-commit [`Writer`]: a bounded queue (in events), natural batching,
//!   epoch fencing, in-doubt commits resolved by read-back.
//! - [`migrations`]: embedded, ordered schema migrations for both backends.
//! - `tls`: TLS of PostgreSQL connections (`sslmode=require`: rustls, libpq's semantics).
//! - [`metrics`]: the `kataar_store_*` metric names and buckets.
//! - `fixtures` (hidden): synthetic drive data for tests, benches and the tools.
//! - [`error`]: [`StoreError`]; messages carry no SQL, values or secrets.
//!
//! The crate owns the database schema and everything that writes or reads it. It must never
//! decide anything about bookings (the engine does; the store's constraints are only the
//! second line of defence), never answer a caller before its batch is durable or known not
//! to be, and never cancel a commit by dropping its future.

mod codec;
pub mod error;
#[doc(hidden)]
pub mod fixtures;
pub mod metrics;
pub mod migrations;
mod plan;
pub mod postgres;
pub mod sqlite;
pub mod store;
mod tls;
pub mod writer;

pub use error::StoreError;
pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;
pub use store::{take_over, Store};
pub use writer::{
    BatchOutcome, CommitError, CommitTicket, SubmitError, Writer, WriterConfig, WriterHandle,
    WriterHealth, WriterPositions,
};

use std::sync::Arc;

/// Opens the store named by `target`: a `postgres://` or `postgresql://` URL opens a
/// [`PgStore`] with default [`PgOptions`] (migrations applied); anything else is a path to a
/// [`SqliteStore`] file (created and migrated if needed).
pub async fn open(target: &str) -> Result<Arc<dyn Store>, StoreError> {
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        Ok(Arc::new(
            PgStore::connect(target, PgOptions::default()).await?,
        ))
    } else {
        Ok(Arc::new(SqliteStore::open(target).await?))
    }
}
