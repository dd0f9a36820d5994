//! The [`Store`] trait: what the engine and the writer need from a durable backend.

use crate::error::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kataar_domain::{AuditRecord, BatchId, Event, OperatorId, OperatorKey, Snapshot};

/// Largest page [`Store::audit_after`] returns; larger `limit`s are clamped to it.
pub const AUDIT_PAGE_MAX: usize = kataar_domain::limits::PAGE_LIMIT_MAX;

/// A durable backend. Object-safe: held as `Arc<dyn Store>`.
///
/// Contract of [`Store::commit`]: one transaction per call; the writer's epoch is checked
/// inside it (nothing written if it moved: [`StoreError::Fenced`]); a `batches` row records
/// the batch id so that the outcome can be read back with [`Store::batch_committed`]; any
/// constraint violation fails the whole batch. `InDoubt` is returned only when the
/// transaction may have committed (connection lost during COMMIT). Callers must not drop a
/// `commit` future before it ends: run it in a spawned task and use [`Store::abort_commit`]
/// to end it early.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending schema migrations (idempotent; safe to run from several processes).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Everything the engine needs to rebuild itself.
    async fn load(&self) -> Result<Snapshot, StoreError>;

    /// Bumps the leader epoch and returns it: the fencing token of the caller's writer.
    async fn acquire_epoch(&self) -> Result<u64, StoreError>;

    /// Writes `events` as batch `batch_id` in one transaction, if `epoch` is still current.
    async fn commit(
        &self,
        batch_id: BatchId,
        epoch: u64,
        events: &[Event],
    ) -> Result<(), StoreError>;

    /// Ends the in-flight commit of `batch_id`, if any, from outside (PostgreSQL: terminates
    /// its backend; SQLite: interrupts the statement). The commit task then ends with an
    /// error and its outcome is read back with [`Store::batch_committed`].
    async fn abort_commit(&self, batch_id: BatchId) -> Result<(), StoreError>;

    /// Whether batch `batch_id` was committed by the writer of `epoch`. A row with the same
    /// batch id from another epoch (a newer writer that took over and numbered on) is not
    /// this writer's batch.
    async fn batch_committed(&self, batch_id: BatchId, epoch: u64) -> Result<bool, StoreError>;

    /// The audit log after `after_id`, oldest first, at most `limit` (clamped to
    /// [`AUDIT_PAGE_MAX`]) records.
    async fn audit_after(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The operator key with this hex SHA-256 hash (also finds keys created by another
    /// process, e.g. the CLI, while a server runs).
    async fn operator_key_by_hash(&self, hash: &str) -> Result<Option<OperatorKey>, StoreError>;

    /// Stores a new operator key outside the writer's batches (the CLI's `admin create-key`,
    /// which may run while a server holds the writer epoch and must not fence it). The id is
    /// allocated by the database, above every stored operator id; `key.operator_id` is
    /// ignored. Returns the stored key.
    async fn create_operator_key(&self, key: &OperatorKey) -> Result<OperatorKey, StoreError> {
        let _ = key;
        Err(StoreError::Unavailable(
            "this store cannot create operator keys".into(),
        ))
    }

    /// Revokes operator key `id` at `at` (outside the writer's batches, like
    /// [`Store::create_operator_key`]): it no longer authenticates, is not loaded at start, and
    /// a running server drops it from memory (see [`Store::revoked_operator_keys`]). `false` if
    /// no such key exists; revoking a revoked key again is `true` and keeps the first instant.
    async fn revoke_operator_key(
        &self,
        id: OperatorId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _ = (id, at);
        Err(StoreError::Unavailable(
            "this store cannot revoke operator keys".into(),
        ))
    }

    /// The ids of every revoked operator key (a running server polls this).
    async fn revoked_operator_keys(&self) -> Result<Vec<OperatorId>, StoreError> {
        Ok(Vec::new())
    }

    /// The check value stored for the server secret `name` (see [`Store::record_secret_check`]),
    /// if any.
    async fn secret_check(&self, name: &str) -> Result<Option<String>, StoreError> {
        let _ = name;
        Err(no_secret_checks())
    }

    /// Stores `check_value` for the secret `name` unless one is stored already, and returns
    /// the stored one (so of two servers starting at once on a new database, the second
    /// learns the first's value and can refuse a different secret).
    async fn record_secret_check(
        &self,
        name: &str,
        check_value: &str,
    ) -> Result<String, StoreError> {
        let _ = (name, check_value);
        Err(no_secret_checks())
    }

    /// Whether the database holds any account or beneficiary (data that server secrets
    /// were applied to).
    async fn holds_people(&self) -> Result<bool, StoreError> {
        Err(no_secret_checks())
    }

    /// A cheap round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Deletes idempotency records created before `older_than`; returns how many.
    async fn prune_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError>;

    /// `"postgres"` or `"sqlite"`, for logs and metrics.
    fn backend(&self) -> &'static str;
}

/// Takes the store over for a new writer: first the epoch (fencing any older writer, whose
/// later commits fail with [`StoreError::Fenced`], and waiting for its commit in progress),
/// then the load. So the snapshot holds every batch an older writer committed, and batch ids
/// from `snapshot.batch_id_max + 1` and entity ids above the snapshot's maxima cannot collide
/// with anything an older writer still tries to write. Returns the epoch and the snapshot.
pub async fn take_over(store: &dyn Store) -> Result<(u64, Snapshot), StoreError> {
    let epoch = store.acquire_epoch().await?;
    let snapshot = store.load().await?;
    Ok((epoch, snapshot))
}

fn no_secret_checks() -> StoreError {
    StoreError::Unavailable("this store keeps no secret checks".into())
}

/// The idempotency cut-off used by `load`: records created before it are not loaded.
pub(crate) fn idempotency_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    let ttl_s = i64::try_from(kataar_domain::limits::IDEMPOTENCY_TTL_S).unwrap_or(i64::MAX);
    now - chrono::Duration::seconds(ttl_s)
}
