//! Making engine decisions durable before answering, and the idempotency protocol.
//!
//! A prepared operation's events go to the group-commit writer; a spawned task awaits the
//! commit and finishes the operation in the engine (applying its frees or undoing its takes),
//! so the outcome is applied even if the client disconnects and hyper drops the handler. The
//! handler waits for that task up to `commit_wait` and answers success only after the commit.
//!
//! Back-pressure: every batch's outcome is reported to the admission breaker once, by the
//! writer ([`connect_breaker`]: a commit → `record_success`, a store fault → `record_failure`;
//! a constraint refusal is not a fault), and a full writer queue → `record_queue_full`, so
//! while the store cannot keep up or is down, booking-lane requests are refused fast with
//! `503 store_unavailable` instead of piling up; a half-open probe closes the breaker again
//! once commits succeed. A batch of 500 bookings that fails is one failure, not 500.

use crate::errors::STORE_RETRY_AFTER_S;
use crate::state::AppState;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use kataar_api::ApiError;
use kataar_domain::limits::IDEMPOTENCY_KEY_BYTES_MAX;
use kataar_domain::{AccountId, Event, IdempotencyRecord};
use kataar_inventory::idem::Answer;
use kataar_inventory::{IdemBegin, Inventory, Prepared};
use kataar_store::SubmitError;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How often a request whose idempotency key is in progress looks again, in milliseconds.
pub const IDEM_POLL_MS: u64 = 5;

/// Feeds the admission breaker from the writer, once per batch.
pub fn connect_breaker(
    writer: &kataar_store::WriterHandle,
    breaker: Arc<kataar_admission::Breaker>,
) {
    let connected = writer.on_batch(move |outcome| match outcome {
        kataar_store::BatchOutcome::Committed => breaker.record_success(),
        kataar_store::BatchOutcome::StoreFault => breaker.record_failure(),
        kataar_store::BatchOutcome::Refused | kataar_store::BatchOutcome::Fenced => {}
    });
    if !connected {
        tracing::warn!("the store writer already reports its batches elsewhere");
    }
}

/// Commits a prepared operation and returns its value once durable.
pub async fn commit<T: Send + 'static>(
    state: &AppState,
    prepared: Prepared<T>,
) -> Result<T, ApiError> {
    commit_then(state, prepared, |_, _, _| {}).await
}

/// Like [`commit`], running `after(inventory, committed, &value)` in the commit task once the
/// outcome is known (also when the handler has gone).
pub async fn commit_then<T, F>(
    state: &AppState,
    prepared: Prepared<T>,
    after: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Inventory, bool, &T) + Send + 'static,
{
    submit_then(state, prepared, after).await
}

/// The synchronous half of [`commit_then`]: hands the events to the writer *now* (so a caller
/// may submit under a lock, e.g. to keep audit ids in submission order) and returns the wait
/// for the outcome.
pub fn submit_then<T, F>(
    state: &AppState,
    prepared: Prepared<T>,
    after: F,
) -> impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static
where
    T: Send + 'static,
    F: FnOnce(&Inventory, bool, &T) + Send + 'static,
{
    let submitted = start(state, prepared, after);
    let commit_wait = state.commit_wait;
    async move {
        match submitted? {
            Started::Done(value) => Ok(value),
            Started::Waiting(rx) => match tokio::time::timeout(commit_wait, rx).await {
                Ok(Ok((true, value))) => Ok(value),
                // The commit failed and its effect was undone: certainly not applied.
                Ok(Ok((false, _))) => Err(ApiError::store_unavailable(STORE_RETRY_AFTER_S)),
                // Still committing (or the commit task is gone): it may yet be applied.
                Ok(Err(_)) | Err(_) => Err(outcome_unknown()),
            },
        }
    }
}

/// `503 store_unavailable` for a write whose commit had not ended when the handler stopped
/// waiting: it may yet be applied. `details.outcome` is `"unknown"`; a retry with the same
/// `Idempotency-Key` (and body) waits for that commit and answers its outcome. A `503` without
/// `outcome` means the write was certainly not applied.
pub fn outcome_unknown() -> ApiError {
    ApiError::store_outcome_unknown(STORE_RETRY_AFTER_S)
}

enum Started<T> {
    Done(T),
    Waiting(tokio::sync::oneshot::Receiver<(bool, T)>),
}

fn start<T, F>(state: &AppState, prepared: Prepared<T>, after: F) -> Result<Started<T>, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Inventory, bool, &T) + Send + 'static,
{
    let Prepared {
        value,
        events,
        finisher,
    } = prepared;
    if events.is_empty() {
        state.inv.finish(finisher, true);
        after(&state.inv, true, &value);
        return Ok(Started::Done(value));
    }
    let ticket = match state.writer.submit(events) {
        Ok(t) => t,
        Err(e) => {
            if matches!(e, SubmitError::QueueFull) {
                state.admission.breaker().record_queue_full();
            }
            tracing::warn!(error = %e, "store writer refused a submission");
            state.inv.finish(finisher, false);
            after(&state.inv, false, &value);
            return Err(ApiError::store_unavailable(STORE_RETRY_AFTER_S));
        }
    };
    let inv = state.inv.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let outcome = ticket.await;
        let committed = outcome.is_ok();
        if let Err(e) = outcome {
            tracing::debug!(error = %e, "batch not committed; in-memory effect undone");
        }
        inv.finish(finisher, committed);
        after(&inv, committed, &value);
        let _ = tx.send((committed, value));
    });
    Ok(Started::Waiting(rx))
}

/// Reads and checks the `Idempotency-Key` header.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Err(ApiError::idempotency_key_required());
    };
    let bytes = value.as_bytes();
    let printable = bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    if bytes.is_empty() || bytes.len() > IDEMPOTENCY_KEY_BYTES_MAX || !printable {
        return Err(ApiError::invalid_request(
            "Idempotency-Key",
            format!(
                "Idempotency-Key must be 1-{IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"
            ),
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Hex SHA-256 of what identifies a request: method, path and body.
pub fn request_hash(method_path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method_path.as_bytes());
    h.update([0u8]);
    h.update(body);
    hex::encode(h.finalize())
}

fn replay(answer: &Answer) -> Response {
    let mut resp = json_bytes(answer.status, Bytes::copy_from_slice(&answer.body));
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// A JSON response of `body` bytes with `status`.
pub fn json_bytes(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        status,
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Claims `key` for a request with `hash`: `Ok(None)` when it is fresh (the caller runs the
/// write and settles the key), `Ok(Some(replay))` when the same request was answered before
/// (its status and body bytes, with `Idempotent-Replayed: true`), `422` when the key was used
/// with another request, `429` when the account's records are at their bound, and
/// [`outcome_unknown`] when the same request is still committing after `commit_wait`.
pub async fn claim(
    state: &AppState,
    account: AccountId,
    key: &str,
    hash: &str,
) -> Result<Option<Response>, ApiError> {
    let deadline = tokio::time::Instant::now() + state.commit_wait;
    loop {
        match state.inv.idem_begin_at(account, key, hash, state.now()) {
            IdemBegin::Fresh => return Ok(None),
            IdemBegin::Replay(r) => return Ok(Some(replay(&r))),
            IdemBegin::Mismatch => return Err(ApiError::idempotency_key_mismatch()),
            IdemBegin::AccountFull { retry_after_s } => {
                let retry = u32::try_from(retry_after_s).unwrap_or(u32::MAX);
                return Err(ApiError::too_many_requests(retry));
            }
            IdemBegin::InProgress => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(outcome_unknown());
                }
                tokio::time::sleep(Duration::from_millis(IDEM_POLL_MS)).await;
            }
        }
    }
}

/// A claimed idempotency key: whose records it is in, the key, the request's hash, and when it
/// was claimed (the record's `created_at`).
#[derive(Clone, Debug)]
pub struct ClaimedKey {
    /// A citizen account or an operator key's scope.
    pub account: AccountId,
    /// The client's key.
    pub key: String,
    /// [`request_hash`] of the request.
    pub hash: String,
    /// When it was claimed.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Settles a claimed key whose write was refused with `status` and `body`: a transient
/// refusal (`429`, `5xx`: the write may succeed if tried again) releases the key; any other
/// (a `4xx`: nothing changed) is remembered in memory for
/// [`kataar_domain::limits::IDEMPOTENCY_REFUSED_TTL_S`].
pub fn settle_refused(state: &AppState, claimed: &ClaimedKey, status: u16, body: Arc<[u8]>) {
    if status == 429 || status >= 500 {
        state.inv.idem_abandon(claimed.account, &claimed.key);
    } else {
        let answer = Answer { status, body };
        let c = claimed;
        state
            .inv
            .idem_refuse(c.account, &c.key, &c.hash, answer, c.now);
    }
}

fn settle_refusal(state: &AppState, claimed: &ClaimedKey, e: &ApiError) {
    let request_id = kataar_api::RequestId::current()
        .map(|r| r.as_str().to_string())
        .unwrap_or_default();
    let body = serde_json::to_vec(&e.body(&request_id)).unwrap_or_default();
    settle_refused(state, claimed, e.status.as_u16(), body.into());
}

/// Makes an answer durable with the write it answers: appends its
/// [`Event::IdempotencyRecorded`] to `prepared` and returns what to do once the outcome is
/// known (keep the answer in memory on commit, release the key on failure).
pub fn record_answer<T>(
    prepared: &mut Prepared<T>,
    claimed: ClaimedKey,
    status: StatusCode,
    response: serde_json::Value,
    bytes: &Bytes,
) -> impl FnOnce(&Inventory, bool) + Send + 'static {
    let ClaimedKey {
        account,
        key,
        hash,
        now,
    } = claimed;
    let answer = Answer {
        status: status.as_u16(),
        body: Arc::from(&bytes[..]),
    };
    prepared
        .events
        .push(Event::IdempotencyRecorded(IdempotencyRecord {
            account_id: account,
            key: key.clone(),
            request_hash: hash.clone(),
            status: status.as_u16(),
            response,
            created_at: now,
        }));
    move |inv: &Inventory, committed: bool| {
        if committed {
            inv.idem_complete_answer(account, &key, &hash, answer, now);
        } else {
            inv.idem_abandon(account, &key);
        }
    }
}

/// Runs a write under its idempotency key: a replay answers the original status and body
/// bytes; another request under the same key is `422`; a fresh key runs `op`, whose success is
/// recorded in the same batch as its events and whose refusal (4xx) is remembered in memory for
/// [`kataar_domain::limits::IDEMPOTENCY_REFUSED_TTL_S`]. An account whose records are at their
/// bound and may not be evicted is `429 too_many_requests`.
pub async fn idempotent<F>(
    state: &AppState,
    account: AccountId,
    headers: &HeaderMap,
    method_path: &str,
    body: &[u8],
    status: StatusCode,
    op: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Result<Prepared<serde_json::Value>, ApiError>,
{
    let key = idempotency_key(headers)?;
    let hash = request_hash(method_path, body);
    if let Some(replayed) = claim(state, account, &key, &hash).await? {
        return Ok(replayed);
    }
    let claimed = ClaimedKey {
        account,
        key,
        hash,
        now: state.now(),
    };
    let mut prepared = match op() {
        Ok(p) => p,
        Err(e) => {
            settle_refusal(state, &claimed, &e);
            return Err(e);
        }
    };
    let bytes = Bytes::from(serde_json::to_vec(&prepared.value).unwrap_or_default());
    let response = std::mem::take(&mut prepared.value);
    let settle = record_answer(&mut prepared, claimed, status, response, &bytes);
    commit_then(state, prepared, move |inv, committed, _| {
        settle(inv, committed)
    })
    .await?;
    Ok(json_bytes(status.as_u16(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_bounds() {
        let mut h = HeaderMap::new();
        assert_eq!(
            idempotency_key(&h).map_err(|e| e.code),
            Err("idempotency_key_required")
        );
        h.insert("idempotency-key", HeaderValue::from_static("abc-123"));
        assert_eq!(idempotency_key(&h).ok().as_deref(), Some("abc-123"));
        let long = "k".repeat(IDEMPOTENCY_KEY_BYTES_MAX);
        h.insert(
            "idempotency-key",
            HeaderValue::from_str(&long).unwrap_or(HeaderValue::from_static("x")),
        );
        assert!(idempotency_key(&h).is_ok());
        let longer = "k".repeat(IDEMPOTENCY_KEY_BYTES_MAX + 1);
        h.insert(
            "idempotency-key",
            HeaderValue::from_str(&longer).unwrap_or(HeaderValue::from_static("x")),
        );
        assert_eq!(
            idempotency_key(&h).map_err(|e| e.code),
            Err("invalid_request")
        );
        assert_ne!(
            request_hash("POST /a", b"{}"),
            request_hash("POST /a", b"{ }")
        );
    }
}
