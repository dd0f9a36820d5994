//! Public reads (no auth): states, districts, availability. Served from memory only.

use crate::state::AppState;
use crate::v1::render;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use http::{HeaderMap, HeaderValue, StatusCode};
use kataar_api::{ApiError, ApiPath, ApiQuery, ErrorBody};
use kataar_domain::limits::QUERY_DAYS_MAX;
use kataar_domain::rules;
use kataar_domain::*;
use kataar_inventory::CentreFilter;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

/// `Cache-Control` of availability answers.
pub const AVAILABILITY_CACHE_CONTROL: &str = "public, max-age=5";

/// Availability answers kept at once; at the bound the cache is emptied and refilled.
pub const AVAILABILITY_CACHE_ENTRIES_MAX: usize = 10_000;

/// A short-lived cache of rendered availability answers, keyed by the query string. During a
/// launch the same district pages are asked for thousands of times a second; rendering each
/// from memory costs far more than serving the bytes again. An answer is at most `ttl` old
/// (clients are told `max-age=5` anyway); `ttl` zero turns the cache off.
pub struct AnswerCache {
    ttl: std::time::Duration,
    entries: parking_lot::Mutex<std::collections::HashMap<String, CachedAnswer>>,
}

#[derive(Clone)]
struct CachedAnswer {
    at: std::time::Instant,
    body: bytes::Bytes,
    etag: String,
}

impl AnswerCache {
    /// A cache whose answers live `ttl`.
    pub fn new(ttl: std::time::Duration) -> AnswerCache {
        AnswerCache {
            ttl,
            entries: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<CachedAnswer> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock();
        entries
            .get(key)
            .filter(|a| a.at.elapsed() < self.ttl)
            .cloned()
    }

    fn put(&self, key: &str, answer: CachedAnswer) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= AVAILABILITY_CACHE_ENTRIES_MAX && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_string(), answer);
    }
}

/// Default number of days an availability query spans.
pub const AVAILABILITY_DAYS_DEFAULT: u32 = 7;

/// The public routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/states", get(states))
        .route("/v1/states/{state_id}/districts", get(districts))
        .route("/v1/availability", get(availability))
}

/// The public reads' part of the OpenAPI document (bounds and the shared error answers are
/// completed by [`super::contract`]).
#[derive(OpenApi)]
#[openapi(
    paths(states, districts, availability),
    tags((name = "public", description = "States, districts, availability (no auth)"))
)]
struct PublicDoc;

/// The OpenAPI paths of the public reads.
pub fn openapi() -> utoipa::openapi::OpenApi {
    PublicDoc::openapi()
}

/// Every state, by id.
#[utoipa::path(get, path = "/v1/states", tag = "public",
    responses((status = 200, description = "`{states: [{state_id, state_name}]}`")))]
async fn states(State(state): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = state
        .inv
        .states()
        .iter()
        .map(|s| json!({"state_id": s.state_id.0, "state_name": s.state_name}))
        .collect();
    Json(json!({ "states": list }))
}

/// The districts of a state.
#[utoipa::path(get, path = "/v1/states/{state_id}/districts", tag = "public",
    params(("state_id" = u64, Path)),
    responses(
        (status = 200, description = "`{districts: [{district_id, district_name}]}`"),
        (status = 404, description = "`not_found`: no such state", body = ErrorBody)))]
async fn districts(
    State(state): State<AppState>,
    ApiPath(state_id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    if state.inv.state(StateId(state_id)).is_none() {
        return Err(ApiError::not_found());
    }
    let list: Vec<Value> = state
        .inv
        .districts(StateId(state_id))
        .iter()
        .map(|d| json!({"district_id": d.district_id.0, "district_name": d.district_name}))
        .collect();
    Ok(Json(json!({ "districts": list })))
}

/// Query of `GET /v1/availability`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    district_id: Option<u64>,
    pincode: Option<String>,
    centre_id: Option<u64>,
    date: Option<String>,
    days: Option<u32>,
    age: Option<u16>,
    vaccine: Option<String>,
    dose: Option<u8>,
}

/// Parses a `YYYY-MM-DD` query date.
pub fn parse_date(field: &'static str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid_request(field, format!("{field} must be a date YYYY-MM-DD")))
}

/// Reads a centre selector: exactly one of district, pincode or centre.
pub fn centre_filter(
    district_id: Option<u64>,
    pincode: Option<&str>,
    centre_id: Option<u64>,
) -> Result<CentreFilter, ApiError> {
    match (district_id, pincode, centre_id) {
        (Some(d), None, None) => Ok(CentreFilter::District(DistrictId(d))),
        (None, Some(p), None) => {
            if p.len() != 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::invalid_request(
                    "pincode",
                    "pincode must be 6 digits",
                ));
            }
            Ok(CentreFilter::Pincode(p.to_string()))
        }
        (None, None, Some(c)) => Ok(CentreFilter::Centre(CentreId(c))),
        _ => Err(ApiError::invalid_request(
            "district_id",
            "give exactly one of district_id, pincode or centre_id",
        )),
    }
}

/// Reads `days` (1..=14).
pub fn days_param(days: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let days = days.unwrap_or(default);
    if days == 0 || days > QUERY_DAYS_MAX {
        return Err(ApiError::invalid_request(
            "days",
            format!("days must be between 1 and {QUERY_DAYS_MAX}"),
        ));
    }
    Ok(days)
}

/// Online places by centre, session and slot (exactly one of `district_id`, `pincode`,
/// `centre_id`). Served from memory.
#[utoipa::path(get, path = "/v1/availability", tag = "public",
    params(
        ("district_id" = Option<u64>, Query, description = "Exactly one of district_id, pincode, centre_id"),
        ("pincode" = Option<String>, Query, description = "6 digits"),
        ("centre_id" = Option<u64>, Query),
        ("date" = Option<String>, Query, description = "YYYY-MM-DD, default today (drive time zone)"),
        ("days" = Option<u32>, Query, description = "1..=14, default 7"),
        ("age" = Option<u16>, Query, description = "Only sessions this age may book"),
        ("vaccine" = Option<String>, Query),
        ("dose" = Option<u8>, Query, description = "1 or 2: only sessions with online places for it"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of a previous answer")),
    responses(
        (status = 200, description = "`{centres: [...]}` with `ETag` and `Cache-Control: public, max-age=5`"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody)))]
async fn availability(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: http::Uri,
    ApiQuery(q): ApiQuery<AvailabilityQuery>,
) -> Result<Response, ApiError> {
    let key = uri.query().unwrap_or_default().to_string();
    let answer = match state.availability_cache.get(&key) {
        Some(a) => a,
        None => {
            let a = render_availability(&state, &q)?;
            state.availability_cache.put(&key, a.clone());
            a
        }
    };
    let etag = answer.etag;
    let fresh = headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            answer.body,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(http::header::ETAG, v);
    }
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static(AVAILABILITY_CACHE_CONTROL),
    );
    Ok(resp)
}

fn render_availability(state: &AppState, q: &AvailabilityQuery) -> Result<CachedAnswer, ApiError> {
    let filter = centre_filter(q.district_id, q.pincode.as_deref(), q.centre_id)?;
    let from = match &q.date {
        Some(d) => parse_date("date", d)?,
        None => state.today(),
    };
    let days = days_param(q.days, AVAILABILITY_DAYS_DEFAULT)?;
    let vaccine = match &q.vaccine {
        Some(v) => Some(
            Vaccine::parse(v)
                .ok_or_else(|| ApiError::invalid_request("vaccine", "unknown vaccine"))?,
        ),
        None => None,
    };
    let dose = q.dose.map(super::dose_param).transpose()?;
    let inv = &state.inv;
    let mut centres = Vec::new();
    for id in inv.centre_ids(&filter) {
        let Some(c) = inv.centre(id) else { continue };
        let sessions: Vec<Value> = inv
            .centre_sessions(id, from, days)
            .into_iter()
            .filter(|s| !s.closed)
            .filter(|s| vaccine.is_none_or(|v| s.session.vaccine == v))
            .filter(|s| {
                q.age.is_none_or(|age| {
                    let birth = s
                        .session
                        .date
                        .format("%Y")
                        .to_string()
                        .parse::<i32>()
                        .unwrap_or(0)
                        - i32::from(age);
                    u16::try_from(birth).is_ok_and(|by| {
                        rules::age_allowed(by, s.session.date, s.session.min_age, s.session.max_age)
                    })
                })
            })
            .filter(|s| dose.is_none_or(|d| s.online_available(d) > 0))
            .map(|s| {
                let r = &s.session;
                json!({
                    "session_id": r.session_id.0,
                    "date": r.date.format("%Y-%m-%d").to_string(),
                    "vaccine": r.vaccine.name(),
                    "min_age": r.min_age,
                    "max_age": r.max_age,
                    "opens_at": r.opens_at.map(render::instant),
                    "slots": s.slots.iter().map(|sl| json!({
                        "slot_id": sl.slot.slot_id.0,
                        "start": sl.slot.start,
                        "end": sl.slot.end,
                        "available_dose1": sl.online_available(Dose::One),
                        "available_dose2": sl.online_available(Dose::Two),
                    })).collect::<Vec<_>>(),
                    "available_dose1": s.online_available(Dose::One),
                    "available_dose2": s.online_available(Dose::Two),
                })
            })
            .collect();
        if sessions.is_empty() {
            continue;
        }
        let mut obj = render::centre(&c);
        if let Some(m) = obj.as_object_mut() {
            m.insert("sessions".into(), Value::Array(sessions));
        }
        centres.push(obj);
    }
    let body = serde_json::to_vec(&json!({ "centres": centres })).unwrap_or_default();
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    Ok(CachedAnswer {
        at: std::time::Instant::now(),
        body: bytes::Bytes::from(body),
        etag,
    })
}
