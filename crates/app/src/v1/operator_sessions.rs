//! Operators' sessions and pools: publish a session, read it with live counters, cancel it,
//! change a pool's capacity, move places between two pools of one session, and the live
//! capacity view of a district or centre.
//!
//! Sessions are answered in the contract's shape with each pool carrying every live counter
//! (`pool_id`, `slot_id`, `dose`, `channel`, `capacity`, `booked`, `checked_in`,
//! `administered`, `no_show`, `available`), plus `opens_at`, `cancelled` and `totals`.

use super::{commit_answered, commit_audited, serialised, Audit, NoBody, ObjectLocks};
use crate::auth::Operator;
use crate::errors::{OrApi, STORE_RETRY_AFTER_S};
use crate::state::AppState;
use crate::v1::public::{centre_filter, days_param, parse_date};
use crate::v1::render;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kataar_api::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, OptionalJson};
use kataar_domain::limits::{POOL_CAPACITY_MAX, SLOTS_PER_SESSION_MAX};
use kataar_domain::*;
use kataar_inventory::{NewSession, NewSlot, SessionView, Totals};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::LazyLock;
use std::time::Duration;
use utoipa::ToSchema;

/// Oldest age a session's band may name.
pub const AGE_MAX: u16 = 120;

/// How often a cancellation looks whether the session's in-flight bookings have settled,
/// in milliseconds (bounded overall by `commit_wait`).
pub const CANCEL_POLL_MS: u64 = 2;

/// Serialises the capacity changes (set and move) of one session's pools from decision to
/// commit. The engine decides a `set` as a delta from the capacity it sees and applies
/// increases only once committed, so two changes of one pool in flight at once would both count
/// from the same base and the later commit would not be the capacity asked for. A move takes
/// two pools of one session, so the session is the object locked. Other sessions do not wait;
/// bookings never wait on these locks.
static CAPACITY_WRITES: LazyLock<ObjectLocks> = LazyLock::new(ObjectLocks::default);

/// Serialises the cancellations of one session, so a second cancel of it waits for the first
/// and then answers the cancelled session as it is.
static CANCELS: LazyLock<ObjectLocks> = LazyLock::new(ObjectLocks::default);

/// The lock of the session a pool belongs to (an unknown pool's change is refused anyway).
fn pool_lock_id(state: &AppState, pool: PoolId) -> u64 {
    state.inv.pool_session(pool).map_or(u64::MAX, |s| s.0)
}

/// Default number of days the capacity view spans.
pub const CAPACITY_DAYS_DEFAULT: u32 = 1;

/// A session with live counters (every pool counter and the session's totals).
pub fn session_json(s: &SessionView) -> Value {
    let mut v = render::admin_session(s);
    if let Some(slots) = v.get_mut("slots").and_then(Value::as_array_mut) {
        for (slot, view) in slots.iter_mut().zip(&s.slots) {
            if let Some(m) = slot.as_object_mut() {
                m.insert(
                    "pools".into(),
                    Value::Array(view.pools.iter().map(render::pool).collect()),
                );
            }
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.insert("totals".into(), render::totals(&s.totals()));
    }
    v
}

/// The capacity of a slot's four pools.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityBody {
    dose1_online: u32,
    dose1_walkin: u32,
    dose2_online: u32,
    dose2_walkin: u32,
}

/// One slot of a new session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotBody {
    start: String,
    end: String,
    capacity: CapacityBody,
}

/// Body of `POST /v1/admin/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSessionBody {
    centre_id: u64,
    date: String,
    vaccine: String,
    min_age: u16,
    #[serde(default)]
    max_age: Option<u16>,
    slots: Vec<SlotBody>,
}

/// Minutes since midnight of an `HH:MM` time.
fn minutes(field: &str, text: &str) -> Result<u16, ApiError> {
    let bad = || ApiError::invalid_request(field, format!("{field} must be a time HH:MM"));
    let b = text.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return Err(bad());
    }
    let digits = [b[0], b[1], b[3], b[4]];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let [h1, h2, m1, m2] = digits.map(|d| u16::from(d - b'0'));
    let (h, m) = (h1 * 10 + h2, m1 * 10 + m2);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn check_slots(slots: &[SlotBody]) -> Result<Vec<NewSlot>, ApiError> {
    if slots.is_empty() || slots.len() > SLOTS_PER_SESSION_MAX {
        return Err(ApiError::invalid_request(
            "slots",
            format!("a session has 1 to {SLOTS_PER_SESSION_MAX} slots"),
        ));
    }
    let mut spans = Vec::with_capacity(slots.len());
    let mut out = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        let start = minutes(&format!("slots[{i}].start"), &s.start)?;
        let end = minutes(&format!("slots[{i}].end"), &s.end)?;
        if start >= end {
            return Err(ApiError::invalid_request(
                &format!("slots[{i}].end"),
                "a slot must end after it starts",
            ));
        }
        let c = &s.capacity;
        for (name, value) in [
            ("dose1_online", c.dose1_online),
            ("dose1_walkin", c.dose1_walkin),
            ("dose2_online", c.dose2_online),
            ("dose2_walkin", c.dose2_walkin),
        ] {
            if value > POOL_CAPACITY_MAX {
                return Err(ApiError::invalid_request(
                    &format!("slots[{i}].capacity.{name}"),
                    format!("a pool holds at most {POOL_CAPACITY_MAX} places"),
                ));
            }
        }
        spans.push((start, end, i));
        out.push(NewSlot {
            start: s.start.clone(),
            end: s.end.clone(),
            dose1_online: c.dose1_online,
            dose1_walkin: c.dose1_walkin,
            dose2_online: c.dose2_online,
            dose2_walkin: c.dose2_walkin,
        });
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [(_, prev_end, _), (next_start, _, i)] = pair {
            if next_start < prev_end {
                return Err(ApiError::invalid_request(
                    &format!("slots[{i}].start"),
                    "slots may not overlap",
                ));
            }
        }
    }
    Ok(out)
}

/// The session if the operator may see it.
fn visible_session(
    state: &AppState,
    op: &Operator,
    id: SessionId,
) -> Result<SessionView, ApiError> {
    let view = state.inv.session(id).ok_or_else(ApiError::not_found)?;
    if !op.scope().allows_centre(view.session.centre_id) {
        return Err(ApiError::not_found());
    }
    Ok(view)
}

/// `POST /v1/admin/sessions`.
#[utoipa::path(post, path = "/v1/admin/sessions", tag = "operators", security(("operator_key" = [])),
    request_body = NewSessionBody,
    responses((status = 201, description = "The session with its slots and pools (live counters and `totals`)"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(body): ApiJson<NewSessionBody>,
) -> Result<Response, ApiError> {
    let date = parse_date("date", body.date.trim())?;
    if date < state.today() {
        return Err(ApiError::invalid_request(
            "date",
            "date may not be in the past",
        ));
    }
    let vaccine = Vaccine::parse(&body.vaccine)
        .ok_or_else(|| ApiError::invalid_request("vaccine", "unknown vaccine"))?;
    if body.min_age > AGE_MAX {
        return Err(ApiError::invalid_request(
            "min_age",
            format!("min_age must be at most {AGE_MAX}"),
        ));
    }
    if let Some(max) = body.max_age {
        if max > AGE_MAX {
            return Err(ApiError::invalid_request(
                "max_age",
                format!("max_age must be at most {AGE_MAX}"),
            ));
        }
        if max < body.min_age {
            return Err(ApiError::invalid_request(
                "max_age",
                "max_age may not be below min_age",
            ));
        }
    }
    let slots = check_slots(&body.slots)?;
    let centre = CentreId(body.centre_id);
    if state.inv.centre(centre).is_none() || !op.scope().allows_centre(centre) {
        return Err(ApiError::not_found());
    }
    let prepared = state
        .inv
        .create_session(NewSession {
            centre_id: centre,
            date,
            vaccine,
            min_age: body.min_age,
            max_age: body.max_age,
            opens_at: None,
            slots,
        })
        .or_api()?;
    let id = prepared.value.session_id;
    let after = json!({
        "centre_id": centre.0,
        "date": date.format("%Y-%m-%d").to_string(),
        "vaccine": vaccine.name(),
        "min_age": body.min_age,
        "max_age": body.max_age,
        "slots": body.slots.iter().map(|s| json!({
            "start": s.start,
            "end": s.end,
            "capacity": {
                "dose1_online": s.capacity.dose1_online,
                "dose1_walkin": s.capacity.dose1_walkin,
                "dose2_online": s.capacity.dose2_online,
                "dose2_walkin": s.capacity.dose2_walkin,
            },
        })).collect::<Vec<_>>(),
    });
    let created = prepared.events.iter().find_map(|e| match e {
        Event::SessionCreated {
            session,
            slots,
            pools,
        } => Some(SessionView::created(session, slots, pools)),
        _ => None,
    });
    let created = created.ok_or_else(ApiError::internal)?;
    let audit = Audit {
        action: "session.create",
        object: format!("session:{id}"),
        before: Value::Null,
    };
    commit_answered(
        &state,
        &op,
        prepared,
        audit,
        |_| after,
        StatusCode::CREATED,
        |_| session_json(&created),
    )
    .await
}

/// `GET /v1/admin/sessions/{id}`.
#[utoipa::path(get, path = "/v1/admin/sessions/{session_id}", tag = "operators", security(("operator_key" = [])),
    params(("session_id" = u64, Path)),
    responses((status = 200, description = "The session with live counters"), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let view = visible_session(&state, &op, SessionId(id))?;
    Ok(Json(session_json(&view)))
}

/// `POST /v1/admin/sessions/{id}/cancel`: close to new bookings, wait for in-flight ones,
/// cancel the session and its live bookings in one batch (with the audit record).
#[utoipa::path(post, path = "/v1/admin/sessions/{session_id}/cancel", tag = "operators", security(("operator_key" = [])),
    params(("session_id" = u64, Path)),
    responses((status = 200, description = "The cancelled session, with `bookings_cancelled`; its bookings are `cancelled`"), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody), (status = 503, description = "`store_unavailable`", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
    OptionalJson(_): OptionalJson<NoBody>,
) -> Result<Json<Value>, ApiError> {
    // Closing, waiting for in-flight bookings, cancelling and committing run in a task of their
    // own: if the client goes away, the cancellation still completes or the session reopens.
    serialised(&CANCELS, id, move || async move {
        let id = SessionId(id);
        let view = visible_session(&state, &op, id)?;
        if view.session.cancelled {
            return Ok(Json(session_json(&view)));
        }
        state.inv.close_session(id, &op.scope()).or_api()?;
        // Wait for the bookings being decided and for every change of a booking in flight
        // (a check-in committing now must not leave a live booking in a cancelled session).
        let deadline = tokio::time::Instant::now() + state.commit_wait;
        let prepared = loop {
            let settled =
                state.inv.session_inflight(id) == 0 && state.inv.session_busy_bookings(id) == 0;
            if settled {
                match state.inv.cancel_session(id, state.now()) {
                    Ok(p) => break p,
                    // A change started between the look and the cancel: wait for it too.
                    Err(_) if state.inv.session_busy_bookings(id) > 0 => {}
                    Err(e) => {
                        state.inv.reopen_session(id);
                        return Err(crate::errors::api_error(e));
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                state.inv.reopen_session(id);
                return Err(ApiError::store_unavailable(STORE_RETRY_AFTER_S));
            }
            tokio::time::sleep(Duration::from_millis(CANCEL_POLL_MS)).await;
        };
        let booked = view.totals().booked;
        // A failed commit reopens the session through the operation's own undo.
        let cancelled = commit_audited(
            &state,
            &op,
            prepared,
            "session.cancel",
            format!("session:{id}"),
            json!({"cancelled": false, "booked": booked}),
            |ids: &Vec<BookingId>| json!({"cancelled": true, "bookings_cancelled": ids.len()}),
        )
        .await?;
        let view = state.inv.session(id).ok_or_else(ApiError::not_found)?;
        let mut v = session_json(&view);
        if let Some(m) = v.as_object_mut() {
            m.insert("bookings_cancelled".into(), json!(cancelled.len()));
        }
        Ok(Json(v))
    })
    .await
}

/// Body of `PATCH /v1/admin/pools/{pool_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityChange {
    capacity: u32,
}

/// `PATCH /v1/admin/pools/{pool_id}` `{"capacity"}`.
#[utoipa::path(patch, path = "/v1/admin/pools/{pool_id}", tag = "operators", security(("operator_key" = [])),
    params(("pool_id" = u64, Path)), request_body = CapacityChange,
    responses((status = 200, description = "The pool's live counters"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody), (status = 409, description = "`capacity_below_booked`", body = ErrorBody)))]
pub async fn set_capacity(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
    ApiJson(body): ApiJson<CapacityChange>,
) -> Result<Response, ApiError> {
    let id = PoolId(id);
    let object = pool_lock_id(&state, id);
    serialised(&CAPACITY_WRITES, object, move || async move {
        let before = state.inv.pool(id).ok_or_else(ApiError::not_found)?;
        let prepared = state
            .inv
            .set_capacity(id, body.capacity, &op.scope())
            .or_api()?;
        let audit = Audit {
            action: "pool.capacity",
            object: format!("pool:{id}"),
            before: json!({"capacity": before.capacity, "booked": before.booked}),
        };
        commit_answered(
            &state,
            &op,
            prepared,
            audit,
            |v| json!({"capacity": v.capacity, "booked": v.booked}),
            StatusCode::OK,
            render::pool,
        )
        .await
    })
    .await
}

/// Body of `POST /v1/admin/pools/move`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    from_pool_id: u64,
    to_pool_id: u64,
    count: u32,
}

/// `POST /v1/admin/pools/move` `{"from_pool_id", "to_pool_id", "count"}` → `{"pools": [from, to]}`.
#[utoipa::path(post, path = "/v1/admin/pools/move", tag = "operators", security(("operator_key" = [])),
    request_body = MoveBody,
    responses((status = 200, description = "`{\"pools\": [from, to]}`"), (status = 400, description = "`invalid_request` (pools of two sessions, the same pool, count 0)", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody), (status = 409, description = "`capacity_below_booked`", body = ErrorBody)))]
pub async fn move_places(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Response, ApiError> {
    if body.count == 0 || body.count > POOL_CAPACITY_MAX {
        return Err(ApiError::invalid_request(
            "count",
            format!("count must be between 1 and {POOL_CAPACITY_MAX}"),
        ));
    }
    let (from, to) = (PoolId(body.from_pool_id), PoolId(body.to_pool_id));
    let object = pool_lock_id(&state, from);
    serialised(&CAPACITY_WRITES, object, move || async move {
        let before: Vec<Value> = [from, to]
            .iter()
            .filter_map(|p| state.inv.pool(*p))
            .map(|p| json!({"pool_id": p.pool_id, "capacity": p.capacity, "booked": p.booked}))
            .collect();
        let prepared = state
            .inv
            .move_capacity(from, to, body.count, &op.scope())
            .or_api()?;
        let audit = Audit {
            action: "pool.move",
            object: format!("pool:{from}"),
            before: json!({"pools": before, "count": body.count}),
        };
        commit_answered(
            &state,
            &op,
            prepared,
            audit,
            |v: &Vec<kataar_inventory::PoolView>| {
                json!({"pools": v.iter().map(|p| json!({
                    "pool_id": p.pool_id, "capacity": p.capacity, "booked": p.booked,
                })).collect::<Vec<_>>()})
            },
            StatusCode::OK,
            |v: &Vec<kataar_inventory::PoolView>| {
                json!({ "pools": v.iter().map(render::pool).collect::<Vec<_>>() })
            },
        )
        .await
    })
    .await
}

/// Query of `GET /v1/admin/capacity`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityQuery {
    district_id: Option<u64>,
    centre_id: Option<u64>,
    date: Option<String>,
    days: Option<u32>,
}

/// `GET /v1/admin/capacity?district_id=…|centre_id=…&date=&days=`: live counters from memory.
/// Cancelled sessions are listed (`"cancelled": true`) but not counted in the centre's and
/// the overall totals.
#[utoipa::path(get, path = "/v1/admin/capacity", tag = "operators", security(("operator_key" = [])),
    params(("district_id" = Option<u64>, Query, description = "Exactly one of district_id, centre_id"), ("centre_id" = Option<u64>, Query), ("date" = Option<String>, Query, description = "YYYY-MM-DD, default today"), ("days" = Option<u32>, Query, description = "1..=14, default 1")),
    responses((status = 200, description = "Live pools and totals per session, per centre and overall; `waiting`: the launch releases of the sessions shown (as `GET /v1/releases/{id}`), when there are any"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody)))]
pub async fn capacity(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<CapacityQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = centre_filter(q.district_id, None, q.centre_id)?;
    let from = match &q.date {
        Some(d) => parse_date("date", d)?,
        None => state.today(),
    };
    let days = days_param(q.days, CAPACITY_DAYS_DEFAULT)?;
    let scope = op.scope();
    let inv = &state.inv;
    let mut overall = Totals::default();
    let mut centres = Vec::new();
    let mut releases = std::collections::BTreeSet::new();
    for id in inv.centre_ids(&filter) {
        if !scope.allows_centre(id) {
            continue;
        }
        let Some(c) = inv.centre(id) else { continue };
        let mut centre_totals = Totals::default();
        let sessions: Vec<Value> = inv
            .centre_sessions(id, from, days)
            .iter()
            .map(|s| {
                let t = s.totals();
                if !s.session.cancelled {
                    centre_totals.add(&t);
                }
                if let Some(r) = state.waitroom.release_of(s.session.session_id) {
                    releases.insert(r);
                }
                json!({
                    "session_id": s.session.session_id.0,
                    "date": s.session.date.format("%Y-%m-%d").to_string(),
                    "vaccine": s.session.vaccine.name(),
                    "cancelled": s.session.cancelled,
                    "pools": s.slots.iter().flat_map(|sl| sl.pools.iter().map(render::pool)).collect::<Vec<_>>(),
                    "totals": render::totals(&t),
                })
            })
            .collect();
        overall.add(&centre_totals);
        centres.push(json!({
            "centre_id": c.centre_id.0,
            "name": c.name,
            "district_id": c.district_id.0,
            "sessions": sessions,
            "totals": render::totals(&centre_totals),
        }));
    }
    let mut answer = json!({
        "centres": centres,
        "totals": render::totals(&overall),
    });
    // The launch queues of the sessions shown, while they are active.
    let waiting: Vec<Value> = releases
        .into_iter()
        .filter_map(|r| state.waitroom.room(r))
        .map(|room| crate::v1::releases::release_json(&state, &room))
        .collect();
    if let (false, Some(m)) = (waiting.is_empty(), answer.as_object_mut()) {
        m.insert("waiting".into(), json!(waiting));
    }
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(start: &str, end: &str) -> SlotBody {
        SlotBody {
            start: start.into(),
            end: end.into(),
            capacity: CapacityBody {
                dose1_online: 1,
                dose1_walkin: 1,
                dose2_online: 1,
                dose2_walkin: 1,
            },
        }
    }

    fn field(e: &ApiError) -> Option<String> {
        e.details
            .as_ref()
            .and_then(|d| d.get("field"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    #[test]
    fn times_are_hh_mm() {
        assert_eq!(minutes("t", "00:00").ok(), Some(0));
        assert_eq!(minutes("t", "23:59").ok(), Some(23 * 60 + 59));
        for bad in ["24:00", "9:00", "09:60", "09-00", "0900", "ab:cd", "09:000"] {
            assert!(minutes("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slots_touch_but_never_overlap() {
        assert!(check_slots(&[slot("09:00", "10:00"), slot("10:00", "11:00")]).is_ok());
        assert!(check_slots(&[slot("10:00", "11:00"), slot("09:00", "10:00")]).is_ok());
        let e = check_slots(&[slot("10:00", "12:00"), slot("09:00", "10:30")]).err();
        assert_eq!(
            e.as_ref().and_then(field).as_deref(),
            Some("slots[0].start")
        );
        let e = check_slots(&[slot("10:00", "10:00")]).err();
        assert_eq!(e.as_ref().and_then(field).as_deref(), Some("slots[0].end"));
        assert!(check_slots(&[]).is_err());
        let mut big = slot("09:00", "10:00");
        big.capacity.dose2_online = POOL_CAPACITY_MAX + 1;
        let e = check_slots(&[big]).err();
        assert_eq!(
            e.as_ref().and_then(field).as_deref(),
            Some("slots[0].capacity.dose2_online")
        );
    }
}
