//! The operator routes of v1 (`/v1/admin/...`, see `api.md`, "Operators").
//!
//! Every route takes the [`Operator`] extractor: `401 unauthenticated` without a known `kop_`
//! key. Role `admin` sees everything; role `centre` sees only its centres, and anything outside
//! them is `404 not_found` (never `403`, so that existence is not revealed). Only creating a
//! centre and reading the audit log need an administrator (`403 forbidden` otherwise).
//!
//! Every write appends one [`AuditRecord`] (who, what, when, the request id: the server's own,
//! then a client's echoed `X-Request-Id` ([`audit_request_id`]), before/after)
//! to the same batch as the change it records, so both are committed atomically or neither is.
//! Audit `before`/`after` values never carry a photo-ID number (not even masked). Audit ids
//! are taken and handed to the writer under one lock, so they become durable in id order and
//! `GET /v1/admin/audit?after=` can be tailed without skipping a record.
//!
//! Operator writes that read-modify-write (centre changes, pool capacity set and move, session
//! cancellation) are serialised per object ([`ObjectLocks`]: one centre, one session's pools,
//! one session's cancellation) from the read to the commit, in a task of their own
//! ([`serialised`]): a client that disconnects cannot leave the change half done (a session
//! closed but never cancelled), and the lock is released only once the outcome is known or
//! `commit_wait` has passed. Writes to different objects never wait on each other, and no
//! citizen request ever waits on these locks.
//!
//! Answers are the contract's shapes, sometimes with more members: sessions carry every live
//! pool counter and `totals`, bookings the beneficiary's `name`, `id_masked`, the account's
//! `mobile_masked` (`"XXXXXX3210"`, null for a walk-in without a mobile) and the `channel`,
//! centres their `fee_rupees`.
//!
//! Every `POST` and `PATCH` accepts an `Idempotency-Key` (`operator_idempotency.rs`,
//! [`idempotency::operator_idempotency`]): a retry with the same key and request applies once
//! and answers the original status and body bytes.
//!
//! The handlers live in three files next to this one:
//! - `operator_centres.rs`: centres (create, list, read, change).
//! - `operator_sessions.rs`: sessions (create, read, cancel), pools (capacity, move), and the
//!   live capacity view.
//! - `operator_bookings.rs`: the day's list, walk-ins, check-in, administer, no-show, and the
//!   audit log.

#[path = "operator_bookings.rs"]
mod bookings;
#[path = "operator_centres.rs"]
mod centres;
#[path = "operator_idempotency.rs"]
pub mod idempotency;
#[path = "operator_sessions.rs"]
mod sessions;

pub use centres::FEE_RUPEES_MAX;
pub use sessions::AGE_MAX as SESSION_AGE_MAX;

use crate::auth::Operator;
use crate::durable;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;
use http::StatusCode;
use idempotency::PendingKey;
use kataar_api::{ApiError, RequestId};
use kataar_domain::limits::{PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use kataar_domain::{AuditRecord, Event};
use kataar_inventory::Prepared;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use utoipa::OpenApi;

/// The operator routes, with [`idempotency::operator_idempotency`] on every one of them.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/centres",
            post(centres::create).get(centres::list),
        )
        .route(
            "/v1/admin/centres/{centre_id}",
            get(centres::read).patch(centres::change),
        )
        .route("/v1/admin/sessions", post(sessions::create))
        .route("/v1/admin/sessions/{session_id}", get(sessions::read))
        .route(
            "/v1/admin/sessions/{session_id}/cancel",
            post(sessions::cancel),
        )
        .route("/v1/admin/pools/move", post(sessions::move_places))
        .route("/v1/admin/pools/{pool_id}", patch(sessions::set_capacity))
        .route("/v1/admin/capacity", get(sessions::capacity))
        .route("/v1/admin/bookings", get(bookings::day_list))
        .route("/v1/admin/walkins", post(bookings::walkin))
        .route(
            "/v1/admin/bookings/{booking_id}/check-in",
            post(bookings::check_in),
        )
        .route(
            "/v1/admin/bookings/{booking_id}/administer",
            post(bookings::administer),
        )
        .route(
            "/v1/admin/bookings/{booking_id}/no-show",
            post(bookings::no_show),
        )
        .route("/v1/admin/audit", get(bookings::audit_log))
        .route("/v1/admin/releases", post(crate::v1::releases::create))
        .route(
            "/v1/admin/releases/{release_id}",
            get(crate::v1::releases::admin_read),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::operator_idempotency,
        ))
}

/// The operators' part of the OpenAPI document (for `OpenApi::merge`; answers are described
/// in words, as in `api.md`).
#[derive(OpenApi)]
#[openapi(
    paths(
        centres::create,
        centres::list,
        centres::read,
        centres::change,
        sessions::create,
        sessions::read,
        sessions::cancel,
        sessions::set_capacity,
        sessions::move_places,
        sessions::capacity,
        bookings::day_list,
        bookings::walkin,
        bookings::check_in,
        bookings::administer,
        bookings::no_show,
        bookings::audit_log
    ),
    components(schemas(
        centres::NewCentreBody,
        centres::CentrePatch,
        sessions::NewSessionBody,
        sessions::SlotBody,
        sessions::CapacityBody,
        sessions::CapacityChange,
        sessions::MoveBody,
        bookings::WalkinBody,
        bookings::WalkinPerson,
        bookings::AdministerBody,
        kataar_api::ErrorBody
    )),
    tags((name = "operators", description = "Centres, sessions, pools, capacity, the day's \
        list, walk-ins, check-in, administer, no-show, audit log (`kop_` keys)")),
    modifiers(&OperatorKeyScheme)
)]
struct OperatorDoc;

/// Declares the `operator_key` security scheme (`Authorization: Bearer kop_…`).
struct OperatorKeyScheme;

impl utoipa::Modify for OperatorKeyScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "operator_key",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// The OpenAPI paths of every operator route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OperatorDoc::openapi()
}

/// An operator with the `admin` role: `401` without a key, `403 forbidden` for a centre key,
/// decided before the request's body or query is read.
#[derive(Clone, Debug)]
pub struct Admin(pub Operator);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let op = Operator::from_request_parts(parts, state).await?;
        op.require_admin()?;
        Ok(Admin(op))
    }
}

/// A body that must be empty or `{}` (cancel, check-in, no-show).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// `?limit=&after=` of the list endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1..=`PAGE_LIMIT_MAX` (default `PAGE_LIMIT_DEFAULT`).
    pub limit: Option<usize>,
    /// The cursor from a previous page's `next_after`.
    pub after: Option<String>,
}

/// Reads a page size: 1..=[`PAGE_LIMIT_MAX`], default [`PAGE_LIMIT_DEFAULT`].
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if limit == 0 || limit > PAGE_LIMIT_MAX {
        return Err(ApiError::invalid_request(
            "limit",
            format!("limit must be between 1 and {PAGE_LIMIT_MAX}"),
        ));
    }
    Ok(limit)
}

/// Reads a cursor (`next_after` of a previous page; absent for the first page).
pub fn page_after(after: Option<&str>) -> Result<u64, ApiError> {
    match after {
        None => Ok(0),
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_request("after", "after must be a next_after cursor")),
    }
}

pub use super::text_field;

/// What the audit log names a request by: the server's own id, then the client's
/// `X-Request-Id` when one was echoed (`"<server id> client=<client id>"`; client ids are
/// visible ASCII without spaces, so the two never run together). The server's id comes first
/// and cannot be chosen by the client.
pub fn audit_request_id(id: &RequestId) -> String {
    match id.client_id() {
        Some(client) => format!("{} client={client}", id.server_id()),
        None => id.server_id().to_string(),
    }
}

/// The audit record of one operator write, stamped with the current request's id.
pub fn audit_event(
    state: &AppState,
    op: &Operator,
    action: &str,
    object: String,
    before: Value,
    after: Value,
) -> Event {
    Event::AuditAppended(AuditRecord {
        audit_id: state.inv.ids.audit(),
        at: state.now(),
        operator_id: op.key.operator_id,
        action: action.to_string(),
        request_id: RequestId::current()
            .map(|r| audit_request_id(&r))
            .unwrap_or_default(),
        object,
        before,
        after,
    })
}

/// Async locks per object id: writers of one object queue, writers of different objects do not
/// wait on each other. An id's lock exists while someone holds or waits for it.
#[derive(Debug, Default)]
pub struct ObjectLocks {
    held: parking_lot::Mutex<HashMap<u64, Weak<tokio::sync::Mutex<()>>>>,
}

impl ObjectLocks {
    /// Waits for the lock of object `id`.
    pub async fn lock(&self, id: u64) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut held = self.held.lock();
            held.retain(|_, w| w.strong_count() > 0);
            match held.get(&id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    held.insert(id, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Objects whose lock is held or awaited right now.
    pub fn len(&self) -> usize {
        self.held
            .lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Whether no lock is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `work` under the lock of `object` in a task of its own, and waits for it. If the
/// handler is dropped (the client went away, the request timed out), the task still runs to
/// its end, so a change is completed or undone, never left half way.
pub async fn serialised<T, F, Fut>(
    locks: &'static std::sync::LazyLock<ObjectLocks>,
    object: u64,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let request = RequestId::current();
    let pending = PendingKey::current();
    let task = tokio::spawn(PendingKey::scope(pending, async move {
        let _guard = locks.lock(object).await;
        match request {
            Some(id) => id.scope(work()).await,
            None => work().await,
        }
    }));
    match task.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "an operator write's task ended without an answer");
            Err(ApiError::internal())
        }
    }
}

/// Serialises "take an audit id, hand the batch to the writer" across operator writes. The
/// writer commits batches in the order they were handed to it, so audit ids become durable in
/// increasing order and a reader tailing `GET /v1/admin/audit?after=` never skips a record
/// that commits later with a smaller id. (A batch that fails leaves a gap in the ids.)
static AUDIT_SUBMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What the audit record of a write says besides its `after`: the action, the object and its
/// state before.
#[derive(Debug)]
pub struct Audit {
    /// E.g. `pool.move`.
    pub action: &'static str,
    /// E.g. `pool:42`.
    pub object: String,
    /// The object before the change (`null` for a creation).
    pub before: Value,
}

/// Commits a prepared change, its audit record and, when the request carries an
/// `Idempotency-Key`, its answer, in one batch (all or nothing), and answers `status` with
/// `answer(&value)` rendered once: those bytes are both the response and what a retry under
/// the key gets again. `after(&value)` is the audit record's `after`. A change with nothing to
/// commit is answered at once, without an audit record.
pub async fn commit_answered<T: Send + 'static>(
    state: &AppState,
    op: &Operator,
    prepared: Prepared<T>,
    audit: Audit,
    after: impl FnOnce(&T) -> Value,
    status: StatusCode,
    answer: impl FnOnce(&T) -> Value,
) -> Result<Response, ApiError> {
    let body = answer(&prepared.value);
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    if prepared.events.is_empty() {
        durable::commit(state, prepared).await?;
        return Ok(durable::json_bytes(status.as_u16(), bytes));
    }
    let mut prepared = prepared;
    let settle = PendingKey::current()
        .filter(|p| p.take())
        .map(|p| durable::record_answer(&mut prepared, p.claimed.clone(), status, body, &bytes));
    let audit_after = after(&prepared.value);
    let waiting = submit_audited(state, op, prepared, audit, audit_after, move |inv, ok| {
        if let Some(settle) = settle {
            settle(inv, ok);
        }
    });
    waiting.await?;
    Ok(durable::json_bytes(status.as_u16(), bytes))
}

/// Takes the audit id and hands the batch to the writer under [`AUDIT_SUBMIT`]; returns the
/// wait for the outcome. `settle(inventory, committed)` runs once it is known.
fn submit_audited<T: Send + 'static>(
    state: &AppState,
    op: &Operator,
    mut prepared: Prepared<T>,
    audit: Audit,
    after: Value,
    settle: impl FnOnce(&kataar_inventory::Inventory, bool) + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static {
    // The audit id is taken and the events handed to the writer under one lock, so audit ids
    // reach the store in id order and a tail of the log never skips one.
    let _guard = AUDIT_SUBMIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Audit {
        action,
        object,
        before,
    } = audit;
    prepared
        .events
        .push(audit_event(state, op, action, object, before, after));
    durable::submit_then(state, prepared, move |inv, ok, _| settle(inv, ok))
}

/// Commits a prepared change together with its audit record (one batch: both or neither),
/// for a write whose answer is rendered after the commit (a retry under an `Idempotency-Key`
/// is then answered from memory only, see [`idempotency`]). A change with nothing to commit
/// is answered as it is, without an audit record.
pub async fn commit_audited<T: Send + 'static>(
    state: &AppState,
    op: &Operator,
    prepared: Prepared<T>,
    action: &'static str,
    object: String,
    before: Value,
    after: impl FnOnce(&T) -> Value,
) -> Result<T, ApiError> {
    if prepared.events.is_empty() {
        return durable::commit(state, prepared).await;
    }
    let after = after(&prepared.value);
    let audit = Audit {
        action,
        object,
        before,
    };
    submit_audited(state, op, prepared, audit, after, |_, _| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_operator_route() {
        let doc = openapi();
        for path in [
            "/v1/admin/centres",
            "/v1/admin/centres/{centre_id}",
            "/v1/admin/sessions",
            "/v1/admin/sessions/{session_id}",
            "/v1/admin/sessions/{session_id}/cancel",
            "/v1/admin/pools/{pool_id}",
            "/v1/admin/pools/move",
            "/v1/admin/capacity",
            "/v1/admin/bookings",
            "/v1/admin/walkins",
            "/v1/admin/bookings/{booking_id}/check-in",
            "/v1/admin/bookings/{booking_id}/administer",
            "/v1/admin/bookings/{booking_id}/no-show",
            "/v1/admin/audit",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
        let schemes = doc
            .components
            .map(|c| c.security_schemes)
            .unwrap_or_default();
        assert!(schemes.contains_key("operator_key"));
    }

    #[tokio::test]
    async fn object_locks_serialise_one_object_only() {
        let locks = ObjectLocks::default();
        let a = locks.lock(1).await;
        // Another object is free while 1 is held.
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), locks.lock(2)).await;
        assert!(b.is_ok());
        assert_eq!(locks.len(), 2);
        drop(b);
        // The same object waits until it is released.
        let locks = Arc::new(locks);
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.lock(1).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        assert!(waiter.await.is_ok());
        assert!(locks.is_empty());
    }

    #[test]
    fn the_audit_names_the_servers_request_id_first() {
        use std::sync::Arc;
        let own = RequestId::generated(Arc::from("0123456789abcdef0123456789abcdef"));
        assert_eq!(audit_request_id(&own), "0123456789abcdef0123456789abcdef");
        let echoed = RequestId::echoed(Arc::from("abc"), Arc::from("f0f0"));
        assert_eq!(echoed.as_str(), "abc");
        assert_eq!(audit_request_id(&echoed), "f0f0 client=abc");
    }

    #[test]
    fn text_and_page_bounds() {
        assert_eq!(text_field("name", "  Asha  ").ok().as_deref(), Some("Asha"));
        assert!(text_field("name", "   ").is_err());
        assert!(text_field(
            "name",
            &"x".repeat(kataar_domain::limits::TEXT_CHARS_MAX + 1)
        )
        .is_err());
        assert!(text_field("name", "a\u{7}b").is_err());
        for c in [
            '\u{200B}', '\u{200D}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2060}', '\u{2066}',
            '\u{2069}', '\u{FEFF}',
        ] {
            let e = text_field("name", &format!("As{c}ha")).err();
            assert_eq!(e.map(|e| e.code), Some("invalid_request"), "{:?}", c);
        }
        assert_eq!(
            text_field("name", "आशा देवी").ok().as_deref(),
            Some("आशा देवी")
        );
        // A joiner after a virama spells a conjunct; anywhere else it is refused.
        assert!(text_field("name", "क्\u{200D}ष").is_ok());
        assert!(text_field("name", "क्\u{200C}ष").is_ok());
        assert!(text_field("name", "क\u{200D}ष").is_err());
        assert!(text_field("name", "\u{200C}Asha").is_err());
        assert_eq!(page_limit(None).ok(), Some(PAGE_LIMIT_DEFAULT));
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(PAGE_LIMIT_MAX + 1)).is_err());
        assert_eq!(page_after(Some("42")).ok(), Some(42));
        assert!(page_after(Some("x")).is_err());
    }
}
