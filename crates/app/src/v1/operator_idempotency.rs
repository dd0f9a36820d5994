//! `Idempotency-Key` on operator writes (every `POST` and `PATCH` under `/v1/admin/`).
//!
//! A console on a flaky network retries, and a person taps twice. With the header, an
//! operator write applies once: the same key and the same request (method, path, body) answer
//! the original status and body bytes again, with `Idempotent-Replayed: true`; the same key
//! with another request is `422 idempotency_key_mismatch`; a retry while the first attempt is
//! still committing waits for it (up to `commit_wait`, then `503` with `details.outcome:
//! "unknown"`). Without the header an operator write runs as before.
//!
//! How the answer is kept:
//! - A write that commits records its answer in the **same batch** as the change and its audit
//!   record ([`super::commit_answered`] takes the [`PendingKey`] of the request): after a
//!   restart the record is loaded with everything else, so a retry still applies once.
//! - A refusal (a `4xx`: nothing changed) is kept in memory for
//!   [`kataar_domain::limits::IDEMPOTENCY_REFUSED_TTL_S`]; a transient one (`429`, `5xx`)
//!   releases the key so that a retry runs again.
//! - A success that changed nothing (a cancel of a cancelled session, a centre change to the
//!   values it has, any write that commits through [`super::commit_audited`] rather than
//!   [`super::commit_answered`]) is kept in memory only: running it again is harmless.
//!
//! Records are scoped per operator key ([`kataar_domain::OperatorId::idempotency_scope`]), so
//! two keys never see each other's answers, and each key holds at most
//! [`kataar_domain::limits::IDEMPOTENCY_RECORDS_PER_OPERATOR_KEY_MAX`] records (a centre's busy
//! day of check-ins, each kept 24 h; at the bound as for an account).

use crate::auth::Operator;
use crate::durable::{self, ClaimedKey};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use kataar_api::ApiError;
use kataar_inventory::idem::Answer;
use kataar_inventory::Inventory;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static PENDING: Arc<PendingKey>;
}

/// A claimed key of the request being served, not settled yet. Whoever settles it first
/// ([`PendingKey::take`]) owns the outcome; if nobody does (the request was dropped before it
/// decided anything), the key is released when the last holder lets go.
#[derive(Debug)]
pub struct PendingKey {
    inv: Arc<Inventory>,
    /// The key, in the operator key's idempotency scope.
    pub claimed: ClaimedKey,
    settled: AtomicBool,
}

impl PendingKey {
    /// The pending key of the request being served, if it carries one.
    pub fn current() -> Option<Arc<PendingKey>> {
        PENDING.try_with(Arc::clone).ok()
    }

    /// Runs `work` with `pending` as the current key (for work moved to a task of its own).
    pub async fn scope<F: std::future::Future>(
        pending: Option<Arc<PendingKey>>,
        work: F,
    ) -> F::Output {
        match pending {
            Some(p) => PENDING.scope(p, work).await,
            None => work.await,
        }
    }

    /// Takes over settling the key: `true` for the first caller only.
    pub fn take(&self) -> bool {
        !self.settled.swap(true, Ordering::AcqRel)
    }
}

impl Drop for PendingKey {
    fn drop(&mut self) {
        if !*self.settled.get_mut() {
            let c = &self.claimed;
            self.inv.idem_abandon(c.account, &c.key);
        }
    }
}

/// The middleware of the operator routes (see the module's documentation).
pub async fn operator_idempotency(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let write = matches!(*req.method(), Method::POST | Method::PATCH);
    if !write || !req.headers().contains_key("idempotency-key") {
        return next.run(req).await;
    }
    match under_key(&state, req, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn under_key(state: &AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    let key = durable::idempotency_key(req.headers())?;
    let (mut parts, body) = req.into_parts();
    let op = Operator::from_request_parts(&mut parts, state).await?;
    let scope = op.key.operator_id.idempotency_scope();
    // The handler's extractor takes it from here instead of authenticating again.
    parts.extensions.insert(op);
    // The body was read whole (and bounded) before routing.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| ApiError::invalid_request_body("The request body could not be read."))?;
    let hash = durable::request_hash(&format!("{} {}", parts.method, parts.uri.path()), &body);
    if let Some(replayed) = durable::claim(state, scope, &key, &hash).await? {
        return Ok(replayed);
    }
    let claimed = ClaimedKey {
        account: scope,
        key,
        hash,
        now: state.now(),
    };
    let pending = Arc::new(PendingKey {
        inv: state.inv.clone(),
        claimed,
        settled: AtomicBool::new(false),
    });
    let req = Request::from_parts(parts, Body::from(body));
    let response = PENDING.scope(pending.clone(), next.run(req)).await;
    if !pending.take() {
        // Recorded with the write's own commit.
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let c = &pending.claimed;
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        state.inv.idem_abandon(c.account, &c.key);
        return Err(ApiError::internal());
    };
    let status = parts.status.as_u16();
    let body: Arc<[u8]> = Arc::from(&bytes[..]);
    if parts.status.is_success() {
        let answer = Answer { status, body };
        state
            .inv
            .idem_complete_answer(c.account, &c.key, &c.hash, answer, c.now);
    } else {
        durable::settle_refused(state, c, status, body);
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
