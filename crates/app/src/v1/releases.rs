//! Launch releases and the waiting room: `POST /v1/admin/releases` (admin), the public
//! `GET /v1/releases/{id}` and `GET /v1/releases/{id}/draw`, and the citizen's
//! `POST /v1/queue` and `GET /v1/queue/{ticket_id}`.
//!
//! A ticket is durable before it is answered (a restart keeps every place); a poll is answered
//! from memory in O(1) and is never written anywhere.

use crate::auth::Citizen;
use crate::errors::{OrApi, STORE_RETRY_AFTER_S};
use crate::state::AppState;
use crate::v1::operator::{commit_answered, Admin, Audit};
use crate::waitroom::{from_unix_ms, standing, unix_ms, Room, Standing};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use kataar_api::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use kataar_domain::limits::{
    ADMIT_PER_S_MAX, PASS_TTL_S_DEFAULT, PASS_TTL_S_MAX, PASS_TTL_S_MIN, QUEUE_WAIT_S_MAX,
    RELEASE_SESSIONS_MAX,
};
use kataar_domain::*;
use kataar_waitroom::{draw, QueueError, Status};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use utoipa::{OpenApi, ToSchema};

/// `Retry-After` of a refusal at a waiting-room bound, seconds.
pub const QUEUE_FULL_RETRY_AFTER_S: u32 = 60;

/// The public and citizen routes (the admin route is mounted with the operator routes).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/releases/{release_id}", get(read))
        .route("/v1/releases/{release_id}/draw", get(published_draw))
        .route("/v1/queue", post(enqueue))
        .route("/v1/queue/{ticket_id}", get(poll))
}

/// The waiting room's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(create, admin_read, read, published_draw, enqueue, poll),
    components(schemas(NewReleaseBody, QueueBody))
)]
struct ReleasesDoc;

/// The OpenAPI paths of the waiting room.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ReleasesDoc::openapi()
}

/// `scheduled` before the opening, `closed` once no session can be booked any more,
/// `sold_out` while nothing is left, else `open`.
fn status_of(standing: &Standing, is_open: bool) -> &'static str {
    if standing.closed {
        "closed"
    } else if !is_open {
        "scheduled"
    } else if standing.available == 0 {
        "sold_out"
    } else {
        "open"
    }
}

/// A release as `GET /v1/releases/{id}` shows it.
pub fn release_json(state: &AppState, room: &Room) -> Value {
    let now = standing(state, &room.release);
    let (counts, commitment, is_open) = {
        let q = room.queue.lock();
        (q.counts(), q.commitment_hex(), q.is_open())
    };
    let (status, places) = (status_of(&now, is_open), now.available);
    let r = &room.release;
    json!({
        "release_id": r.release_id.0,
        "status": status,
        "opens_at": crate::v1::render::instant(r.opens_at),
        "session_ids": r.session_ids.iter().map(|s| s.0).collect::<Vec<_>>(),
        "waiting": counts.waiting,
        "admitted": counts.admitted,
        "admit_per_s": (counts.admit_per_s * 10.0).round() / 10.0,
        "available": places,
        "pass_ttl_s": r.pass_ttl_s,
        "draw_commitment": commitment,
    })
}

/// Body of `POST /v1/admin/releases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReleaseBody {
    /// The sessions that open together (1..=1000, each in no other release).
    session_ids: Vec<u64>,
    /// The opening, RFC 3339, in the future.
    opens_at: String,
    /// Admissions per second (1..=100000; default: the booking lane's rate).
    admit_per_s: Option<u32>,
    /// How long a pass is valid, seconds (30..=3600, default 300).
    pass_ttl_s: Option<u32>,
}

/// Announces a launch release: its sessions show `opens_at` and refuse bookings with
/// `409 not_open` until then; from then on they are booked through the waiting room.
#[utoipa::path(post, path = "/v1/admin/releases", tag = "operators",
    security(("operator_key" = [])), request_body = NewReleaseBody,
    responses(
        (status = 201, description = "The release (as `GET /v1/releases/{id}`)"),
        (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = ErrorBody),
        (status = 409, description = "`session_closed`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: `releases_max` releases exist",
            body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Admin(op): Admin,
    ApiJson(body): ApiJson<NewReleaseBody>,
) -> Result<Response, ApiError> {
    let now = state.now();
    if body.session_ids.is_empty() || body.session_ids.len() > RELEASE_SESSIONS_MAX {
        return Err(ApiError::invalid_request(
            "session_ids",
            format!("session_ids must name 1 to {RELEASE_SESSIONS_MAX} sessions"),
        ));
    }
    let mut ids: Vec<SessionId> = body.session_ids.iter().map(|&s| SessionId(s)).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != body.session_ids.len() {
        return Err(ApiError::invalid_request(
            "session_ids",
            "session_ids must not repeat a session",
        ));
    }
    if let Some(missing) = ids.iter().find(|s| state.inv.session(**s).is_none()) {
        return Err(ApiError::invalid_request(
            "session_ids",
            format!("session {missing} does not exist"),
        ));
    }
    let opens_at = DateTime::parse_from_rfc3339(&body.opens_at)
        .map_err(|_| ApiError::invalid_request("opens_at", "opens_at must be an RFC 3339 instant"))?
        .with_timezone(&Utc);
    if opens_at <= now {
        return Err(ApiError::invalid_request(
            "opens_at",
            "opens_at must be in the future",
        ));
    }
    if let Some(rate) = body.admit_per_s {
        if rate == 0 || rate > ADMIT_PER_S_MAX {
            return Err(ApiError::invalid_request(
                "admit_per_s",
                format!("admit_per_s must be between 1 and {ADMIT_PER_S_MAX}"),
            ));
        }
    }
    let ttl = body.pass_ttl_s.unwrap_or(PASS_TTL_S_DEFAULT);
    if !(PASS_TTL_S_MIN..=PASS_TTL_S_MAX).contains(&ttl) {
        return Err(ApiError::invalid_request(
            "pass_ttl_s",
            format!("pass_ttl_s must be between {PASS_TTL_S_MIN} and {PASS_TTL_S_MAX}"),
        ));
    }
    // Releases that can no longer be booked do not count against `releases_max`.
    state.waitroom.close_finished(&state);
    let mut prepared = state.inv.announce_opening(&ids, opens_at).or_api()?;
    let release = match state
        .waitroom
        .prepare(ids, opens_at, body.admit_per_s, ttl, now)
    {
        Ok(r) => r,
        Err(e) => {
            state.inv.finish(prepared.finisher, false);
            return Err(e);
        }
    };
    let id = release.release_id;
    prepared.events.push(Event::ReleaseCreated(release));
    let audit = Audit {
        action: "release.create",
        object: format!("release:{id}"),
        before: Value::Null,
    };
    let room = state.waitroom.room(id);
    let rendered = room.as_ref().map(|r| release_json(&state, r));
    let answer = commit_answered(
        &state,
        &op,
        prepared,
        audit,
        |_| rendered.clone().unwrap_or(Value::Null),
        StatusCode::CREATED,
        |_| rendered.clone().unwrap_or(Value::Null),
    )
    .await;
    if let Err(e) = &answer {
        // Certainly not applied (no `details.outcome`): the release is forgotten. An unknown
        // outcome keeps it, as it may yet commit.
        let unknown = e
            .details
            .as_ref()
            .is_some_and(|d| d.contains_key("outcome"));
        if e.status == StatusCode::SERVICE_UNAVAILABLE && !unknown {
            state.waitroom.abandon(id);
        }
    }
    answer
}

/// A release as operators see it: the public status plus the queue's inner counters.
#[utoipa::path(get, path = "/v1/admin/releases/{release_id}", tag = "operators",
    security(("operator_key" = [])), params(("release_id" = u64, Path)),
    responses(
        (status = 200, description = "`GET /v1/releases/{id}`'s fields plus `tickets`, \
            `expired`, `booked`, `passes_outstanding`, `poll_rate_per_s` (what the queue's \
            `poll_after_s` adds up to)"),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn admin_read(
    State(state): State<AppState>,
    _op: crate::auth::Operator,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let room = room_of(&state, id)?;
    let mut v = release_json(&state, &room);
    let (counts, tickets) = {
        let q = room.queue.lock();
        (q.counts(), q.len())
    };
    if let Some(m) = v.as_object_mut() {
        m.insert("tickets".into(), json!(tickets));
        m.insert("expired".into(), json!(counts.expired));
        m.insert("booked".into(), json!(counts.booked));
        m.insert("passes_outstanding".into(), json!(counts.outstanding));
        m.insert(
            "poll_rate_per_s".into(),
            json!((counts.poll_rate_per_s * 10.0).round() / 10.0),
        );
    }
    Ok(Json(v))
}

fn room_of(state: &AppState, id: u64) -> Result<Arc<Room>, ApiError> {
    state
        .waitroom
        .room(ReleaseId(id))
        .ok_or_else(ApiError::not_found)
}

/// A release's public status.
#[utoipa::path(get, path = "/v1/releases/{release_id}", tag = "public",
    params(("release_id" = u64, Path)),
    responses(
        (status = 200, description = "`{release_id, status: scheduled|open|sold_out|closed, \
            opens_at, waiting, admitted, admit_per_s, available, draw_commitment}`"),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
async fn read(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let room = room_of(&state, id)?;
    Ok(Json(release_json(&state, &room)))
}

/// The draw of a release, once its pre-queue has closed: the secret, the sorted pre-queue
/// ticket ids, the resulting order and the algorithm (`kataar verify-draw URL` checks it).
#[utoipa::path(get, path = "/v1/releases/{release_id}/draw", tag = "public",
    params(("release_id" = u64, Path)),
    responses(
        (status = 200, description = "`{release_id, commitment, secret, tickets, order, algorithm}`"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_open`: drawn at the opening", body = ErrorBody)))]
async fn published_draw(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Response, ApiError> {
    let room = room_of(&state, id)?;
    if let Some(bytes) = room.draw_json.get() {
        return Ok(json_response(bytes.clone()));
    }
    let drawn = {
        let q = room.queue.lock();
        q.published_draw().map(|d| (d, q.commitment_hex()))
    };
    let Some(((secret, tickets, order), commitment)) = drawn else {
        return Err(BookingError::NotOpen).or_api();
    };
    let body = json!({
        "release_id": id,
        "commitment": commitment,
        "secret": hex::encode(secret),
        "tickets": tickets,
        "order": order,
        "algorithm": draw::ALGORITHM,
    });
    let bytes = axum::body::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let bytes = room.draw_json.get_or_init(|| bytes).clone();
    Ok(json_response(bytes))
}

fn json_response(bytes: axum::body::Bytes) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// Body of `POST /v1/queue`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueBody {
    release_id: u64,
}

/// A ticket's answer.
fn ticket_json(
    state: &AppState,
    room: &Room,
    account: AccountId,
    answer: &kataar_waitroom::Answer,
) -> Value {
    let id = room.release.release_id.0;
    let ticket_id = state.waitroom.key().ticket_id(id, answer.index);
    let (status, position, eta, pass, expires) = match &answer.status {
        Status::Waiting { position, eta_s } => ("waiting", *position, *eta_s, None, None),
        Status::Admitted { pass_expires_ms } => (
            "admitted",
            None,
            None,
            Some(
                state
                    .waitroom
                    .key()
                    .pass(id, answer.index, account.0, *pass_expires_ms),
            ),
            Some(crate::v1::render::instant(from_unix_ms(*pass_expires_ms))),
        ),
        Status::SoldOut => ("sold_out", None, None, None, None),
        Status::Expired => ("expired", None, None, None, None),
    };
    let mut v = json!({
        "ticket_id": ticket_id,
        "release_id": id,
        "status": status,
        "position": position,
        "eta_s": eta,
        "poll_after_s": answer.poll_after_s,
    });
    if let (Some(m), Some(pass), Some(expires)) = (v.as_object_mut(), pass, expires) {
        m.insert("pass".into(), json!(pass));
        m.insert("pass_expires_at".into(), json!(expires));
    }
    v
}

fn no_store(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// Takes a ticket in a release's waiting room (one per account: asking again gives the same
/// ticket, unless it lost its place, then a new one at the end).
#[utoipa::path(post, path = "/v1/queue", tag = "citizens", security(("bearer" = [])),
    request_body = QueueBody,
    responses(
        (status = 201, description = "The account's ticket (the same one when asked again): \
            `{ticket_id, status, position (null before the opening), eta_s, poll_after_s}`"),
        (status = 404, description = "`not_found`: no such release", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: the release holds \
            `queue_tickets_max` tickets", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: the ticket could not be made durable",
            body = ErrorBody)))]
async fn enqueue(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiJson(body): ApiJson<QueueBody>,
) -> Result<Response, ApiError> {
    let room = room_of(&state, body.release_id)?;
    let account = citizen.account_id;
    let answer = take_ticket(&state, &room, account).await?;
    Ok(no_store(
        StatusCode::CREATED,
        ticket_json(&state, &room, account, &answer),
    ))
}

/// What a client that cannot carry a pass (a CoWIN v2 `schedule`) gets from a release's queue.
pub enum Passage {
    /// Admitted: book with this pass (made for the account's ticket).
    Admitted(String),
    /// Still waiting (or just enqueued): come back after this many seconds.
    Waiting(u32),
    /// Nothing is left in the release.
    SoldOut,
}

/// The account's way through a release's queue without a pass header: its ticket is taken on
/// the first attempt (committed like `POST /v1/queue`), and every attempt is a poll of it.
pub async fn passage(
    state: &AppState,
    room: &Arc<Room>,
    account: AccountId,
) -> Result<Passage, ApiError> {
    let answer = take_ticket(state, room, account).await?;
    let index = answer.index;
    Ok(match answer.status {
        Status::Admitted { pass_expires_ms } => Passage::Admitted(state.waitroom.key().pass(
            room.release.release_id.0,
            index,
            account.0,
            pass_expires_ms,
        )),
        // The ETA, but no later than the queue's own poll time: a ticket that does not come
        // back within its poll time and keep-alive loses its place.
        Status::Waiting { eta_s, .. } => Passage::Waiting(
            eta_s
                .and_then(|e| u32::try_from(e).ok())
                .unwrap_or(u32::MAX)
                .min(answer.poll_after_s)
                .max(1),
        ),
        Status::SoldOut => Passage::SoldOut,
        // A lost place: the next attempt takes a new ticket at the end.
        Status::Expired => Passage::Waiting(answer.poll_after_s.max(1)),
    })
}

/// The account's ticket in a release (a new one, committed before this returns, when it has
/// none that holds a place), read as a poll.
async fn take_ticket(
    state: &AppState,
    room: &Arc<Room>,
    account: AccountId,
) -> Result<kataar_waitroom::Answer, ApiError> {
    let now = state.now();
    let now_ms = unix_ms(now);
    let (index, fresh) = match room.queue.lock().enqueue(account.0, now_ms) {
        Ok(x) => x,
        Err(_) => return Err(ApiError::too_many_requests(QUEUE_FULL_RETRY_AFTER_S)),
    };
    if fresh {
        let event = Event::QueueTicketIssued(QueueTicket {
            release_id: room.release.release_id,
            index,
            account_id: account,
            created_at: now,
        });
        commit_ticket(state, room, index, event).await?;
    }
    room.queue
        .lock()
        .poll(index, account.0, now_ms)
        .map_err(|_| ApiError::not_found())
}

/// Hands a new ticket to the writer and waits for its commit (in a task of its own, so a
/// client going away cannot leave the place half given): a failed commit gives the place up.
async fn commit_ticket(
    state: &AppState,
    room: &Arc<Room>,
    index: u32,
    event: Event,
) -> Result<(), ApiError> {
    let ticket = match state.writer.submit(vec![event]) {
        Ok(t) => t,
        Err(e) => {
            if matches!(e, kataar_store::SubmitError::QueueFull) {
                state.admission.breaker().record_queue_full();
            }
            room.queue.lock().withdraw(index);
            return Err(ApiError::store_unavailable(STORE_RETRY_AFTER_S));
        }
    };
    let room2 = room.clone();
    let waiter = tokio::spawn(async move {
        let committed = ticket.await.is_ok();
        if !committed {
            room2.queue.lock().withdraw(index);
        }
        committed
    });
    match tokio::time::timeout(state.commit_wait, waiter).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(ApiError::store_unavailable(STORE_RETRY_AFTER_S)),
        _ => Err(crate::durable::outcome_unknown()),
    }
}

/// Query of `GET /v1/queue/{ticket_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    wait_s: Option<u32>,
}

/// A ticket's place: `position` (1 = next), `eta_s`, `poll_after_s`; once admitted the `pass`
/// to book with. From memory, O(1). Only the ticket's own account may read it.
///
/// With `wait_s` (0 to 25 s) a waiting ticket's poll is held open until its place is reached,
/// the release sells out or closes, or the wait is over, whichever comes first; `poll_after_s`
/// then counts from when it was asked (a client may ask again at once when it is 0). A held poll
/// takes no admission place; one is held per ticket (a newer one answers the older at once) and
/// at most `queue_held_polls_max` in all (beyond, it is answered at once).
#[utoipa::path(get, path = "/v1/queue/{ticket_id}", tag = "citizens",
    security(("bearer" = [])),
    params(("ticket_id" = String, Path),
        ("wait_s" = Option<u32>, Query, maximum = 25, minimum = 0,
            description = "hold the poll open up to this many seconds while the ticket waits")),
    responses(
        (status = 200, description = "`{ticket_id, status: waiting|admitted|sold_out|expired, \
            position, eta_s, poll_after_s, pass, pass_expires_at}`"),
        (status = 404, description = "`not_found`: no such ticket for this account",
            body = ErrorBody)))]
async fn poll(
    State(state): State<AppState>,
    permit: Option<axum::Extension<crate::admission::HeldPermit>>,
    citizen: Citizen,
    ApiPath(ticket_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> Result<Response, ApiError> {
    let wait_s = q.wait_s.unwrap_or(0);
    if wait_s > QUEUE_WAIT_S_MAX {
        return Err(ApiError::invalid_request(
            "wait_s",
            format!("wait_s must be between 0 and {QUEUE_WAIT_S_MAX}"),
        ));
    }
    let (release, index) = state
        .waitroom
        .key()
        .parse_ticket(&ticket_id)
        .ok_or_else(ApiError::not_found)?;
    let room = room_of(&state, release)?;
    let account = citizen.account_id;
    let read = || {
        room.queue
            .lock()
            .poll(index, account.0, unix_ms(state.now()))
            .map_err(|e| match e {
                QueueError::NoTicket | QueueError::NotYours | QueueError::Full => {
                    ApiError::not_found()
                }
            })
    };
    let waiting = |a: &kataar_waitroom::Answer| matches!(a.status, Status::Waiting { .. });
    let mut answer = read()?;
    let hold_s = wait_s.min(state.waitroom.hold_s_max());
    if hold_s > 0 && waiting(&answer) {
        if let Some(mut held) = state.waitroom.hold(&room, index) {
            // Read again once registered: a step in between woke nobody.
            answer = read()?;
            if waiting(&answer) {
                if let Some(axum::Extension(p)) = &permit {
                    p.give_back();
                }
                metrics::counter!("kataar_queue_held_polls_total").increment(1);
                let waited = held.wait(Duration::from_secs(u64::from(hold_s))).await;
                drop(held);
                answer = read()?;
                if let Status::Waiting {
                    position: Some(_), ..
                } = answer.status
                {
                    let waited_s = u32::try_from(waited.as_secs()).unwrap_or(u32::MAX);
                    answer.poll_after_s = answer.poll_after_s.saturating_sub(waited_s);
                }
            }
        }
    }
    metrics::counter!("kataar_queue_polls_total").increment(1);
    Ok(no_store(
        StatusCode::OK,
        ticket_json(&state, &room, account, &answer),
    ))
}
