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

/// Default of `availability_cache_bytes_max`: bytes the availability answer cache may hold.
pub const AVAILABILITY_CACHE_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;

/// Bytes counted per cached answer on top of its body and `ETag`: the key, the map slot and the
/// age-order entry (an upper estimate, so the bound holds).
pub const AVAILABILITY_CACHE_ENTRY_OVERHEAD_BYTES: usize = 192;

/// What an availability answer depends on, parsed and defaulted: `district_id=000312` and
/// `district_id=312&days=7` are one key, whatever the order of the parameters. Unknown and
/// repeated parameters never reach a key (they are `400 invalid_request`). `Copy`, so a cached
/// read allocates nothing for its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AvailabilityKey {
    selector: Selector,
    from: NaiveDate,
    days: u32,
    age: Option<u16>,
    vaccine: Option<Vaccine>,
    dose: Option<Dose>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Selector {
    District(u64),
    /// Six digits, read as a number (leading zeros are part of the fixed width).
    Pincode(u32),
    Centre(u64),
}

impl AvailabilityKey {
    fn filter(&self) -> CentreFilter {
        match self.selector {
            Selector::District(d) => CentreFilter::District(DistrictId(d)),
            Selector::Pincode(p) => CentreFilter::Pincode(format!("{p:06}")),
            Selector::Centre(c) => CentreFilter::Centre(CentreId(c)),
        }
    }
}

/// A short-lived cache of rendered availability answers, keyed by the canonical query
/// ([`AvailabilityKey`]). During a launch the same district pages are asked for thousands of
/// times a second; rendering each from memory costs far more than serving the bytes again.
///
/// An answer is served at most `ttl` after it was rendered (clients are told `max-age=5`
/// anyway); `ttl` zero turns the cache off. The cache holds at most `bytes_max` bytes (bodies,
/// `ETag`s and [`AVAILABILITY_CACHE_ENTRY_OVERHEAD_BYTES`] per entry); a new answer first drops
/// the answers past their age, then the oldest ones until it fits; an answer larger than the
/// whole bound is served but not kept. Its size is exported as `kataar_availability_cache_bytes`
/// and `kataar_availability_cache_entries`.
pub struct AnswerCache {
    ttl: std::time::Duration,
    bytes_max: usize,
    entries: parking_lot::Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: std::collections::HashMap<AvailabilityKey, CachedAnswer>,
    /// (rendered at, key) in insertion order, so oldest first. An entry whose time no longer
    /// matches the map's answer for its key is stale and skipped.
    order: std::collections::VecDeque<(std::time::Instant, AvailabilityKey)>,
    bytes: usize,
}

impl Entries {
    /// Drops the oldest queue entry (and its answer if still current); false if empty.
    fn pop_oldest(&mut self) -> bool {
        let Some((at, key)) = self.order.pop_front() else {
            return false;
        };
        if self.map.get(&key).is_some_and(|a| a.at == at) {
            if let Some(old) = self.map.remove(&key) {
                self.bytes = self.bytes.saturating_sub(old.cost());
            }
        }
        true
    }
}

#[derive(Clone)]
struct CachedAnswer {
    at: std::time::Instant,
    body: bytes::Bytes,
    etag: HeaderValue,
}

impl CachedAnswer {
    fn cost(&self) -> usize {
        self.body.len() + self.etag.len() + AVAILABILITY_CACHE_ENTRY_OVERHEAD_BYTES
    }
}

impl AnswerCache {
    /// A cache whose answers live `ttl`, holding at most `bytes_max` bytes.
    pub fn new(ttl: std::time::Duration, bytes_max: u64) -> AnswerCache {
        metrics::describe_gauge!(
            "kataar_availability_cache_bytes",
            metrics::Unit::Bytes,
            "Bytes held by the availability answer cache (bounded by availability_cache_bytes_max)"
        );
        metrics::describe_gauge!(
            "kataar_availability_cache_entries",
            "Answers held by the availability answer cache"
        );
        AnswerCache {
            ttl,
            bytes_max: usize::try_from(bytes_max).unwrap_or(usize::MAX),
            entries: parking_lot::Mutex::new(Entries::default()),
        }
    }

    /// Bytes held now (as counted against the bound).
    pub fn bytes(&self) -> usize {
        self.entries.lock().bytes
    }

    /// Answers held now.
    pub fn len(&self) -> usize {
        self.entries.lock().map.len()
    }

    /// True when no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, key: &AvailabilityKey, now: std::time::Instant) -> Option<CachedAnswer> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock();
        entries
            .map
            .get(key)
            .filter(|a| now.saturating_duration_since(a.at) < self.ttl)
            .cloned()
    }

    fn put(&self, key: AvailabilityKey, answer: CachedAnswer, now: std::time::Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let cost = answer.cost();
        let mut entries = self.entries.lock();
        while entries
            .order
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= self.ttl)
        {
            entries.pop_oldest();
        }
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes = entries.bytes.saturating_sub(old.cost());
        }
        if cost <= self.bytes_max {
            while entries.bytes + cost > self.bytes_max {
                if !entries.pop_oldest() {
                    break;
                }
            }
            entries.bytes += cost;
            entries.order.push_back((answer.at, key));
            entries.map.insert(key, answer);
        }
        // Stale order entries (answers replaced before their age) never outnumber the answers.
        if entries.order.len() > 2 * entries.map.len() + 64 {
            let Entries { map, order, .. } = &mut *entries;
            order.retain(|(at, k)| map.get(k).is_some_and(|a| a.at == *at));
        }
        let (bytes, len) = (entries.bytes, entries.map.len());
        drop(entries);
        metrics::gauge!("kataar_availability_cache_bytes").set(bytes as f64);
        metrics::gauge!("kataar_availability_cache_entries").set(len as f64);
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
    ApiQuery(q): ApiQuery<AvailabilityQuery>,
) -> Result<Response, ApiError> {
    let key = availability_key(&state, &q)?;
    let now = std::time::Instant::now();
    let answer = match state.availability_cache.get(&key, now) {
        Some(a) => a,
        None => {
            let a = render_availability(&state, &key);
            state.availability_cache.put(key, a.clone(), now);
            a
        }
    };
    let etag = answer.etag;
    let fresh = match (headers.get(http::header::IF_NONE_MATCH), etag.to_str()) {
        (Some(v), Ok(tag)) => v
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*")),
        _ => false,
    };
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
    h.insert(http::header::ETAG, etag);
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static(AVAILABILITY_CACHE_CONTROL),
    );
    Ok(resp)
}

/// Reads and checks the query into its canonical key (every refusal happens here, before the
/// cache is asked).
fn availability_key(state: &AppState, q: &AvailabilityQuery) -> Result<AvailabilityKey, ApiError> {
    let selector = match centre_filter(q.district_id, q.pincode.as_deref(), q.centre_id)? {
        CentreFilter::District(d) => Selector::District(d.0),
        CentreFilter::Pincode(p) => Selector::Pincode(
            p.parse()
                .map_err(|_| ApiError::invalid_request("pincode", "pincode must be 6 digits"))?,
        ),
        CentreFilter::Centre(c) => Selector::Centre(c.0),
    };
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
    Ok(AvailabilityKey {
        selector,
        from,
        days,
        age: q.age,
        vaccine,
        dose,
    })
}

fn render_availability(state: &AppState, key: &AvailabilityKey) -> CachedAnswer {
    let filter = key.filter();
    let (from, days, vaccine, dose) = (key.from, key.days, key.vaccine, key.dose);
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
                key.age.is_none_or(|age| {
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
    CachedAnswer {
        at: std::time::Instant::now(),
        body: bytes::Bytes::from(body),
        // Quotes and hex digits only: always a valid header value.
        etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn key(d: u64) -> AvailabilityKey {
        AvailabilityKey {
            selector: Selector::District(d),
            from: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
            days: 7,
            age: None,
            vaccine: None,
            dose: None,
        }
    }

    fn answer(at: Instant, body_bytes: usize) -> CachedAnswer {
        CachedAnswer {
            at,
            body: bytes::Bytes::from(vec![b'x'; body_bytes]),
            etag: HeaderValue::from_static("\"0123\""),
        }
    }

    #[test]
    fn bytes_bound_drops_the_oldest_first() {
        let t0 = Instant::now();
        let one = answer(t0, 1000).cost();
        let cache = AnswerCache::new(Duration::from_secs(60), (2 * one) as u64);
        cache.put(key(1), answer(t0, 1000), t0);
        cache.put(key(2), answer(t0 + Duration::from_millis(1), 1000), t0);
        assert_eq!((cache.len(), cache.bytes()), (2, 2 * one));
        // At the bound exactly; one more pushes the oldest out.
        cache.put(key(3), answer(t0 + Duration::from_millis(2), 1000), t0);
        assert_eq!((cache.len(), cache.bytes()), (2, 2 * one));
        assert!(cache.get(&key(1), t0).is_none());
        assert!(cache.get(&key(2), t0).is_some());
        assert!(cache.get(&key(3), t0).is_some());
        // Larger than the whole bound: not kept, nothing else lost.
        cache.put(key(4), answer(t0, 2 * one), t0);
        assert!(cache.get(&key(4), t0).is_none());
        assert_eq!(cache.len(), 2);
        // Replacing an answer counts it once.
        cache.put(key(3), answer(t0 + Duration::from_millis(3), 1000), t0);
        assert_eq!((cache.len(), cache.bytes()), (2, 2 * one));
    }

    #[test]
    fn answers_expire_by_age_not_wholesale() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(1);
        let cache = AnswerCache::new(ttl, AVAILABILITY_CACHE_BYTES_MAX_DEFAULT);
        cache.put(key(1), answer(t0, 10), t0);
        let later = t0 + Duration::from_millis(600);
        cache.put(key(2), answer(later, 10), later);
        // Just before its age: served.
        assert!(cache
            .get(&key(1), t0 + Duration::from_millis(999))
            .is_some());
        // At its age: not served; the younger answer still is.
        let at = t0 + ttl;
        assert!(cache.get(&key(1), at).is_none());
        assert!(cache.get(&key(2), at).is_some());
        // The next insert drops only what is past its age.
        cache.put(key(3), answer(at, 10), at);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key(2), at).is_some());
        assert_eq!(cache.bytes(), 2 * answer(at, 10).cost());
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let t0 = Instant::now();
        let cache = AnswerCache::new(Duration::ZERO, AVAILABILITY_CACHE_BYTES_MAX_DEFAULT);
        cache.put(key(1), answer(t0, 10), t0);
        assert!(cache.is_empty());
        assert!(cache.get(&key(1), t0).is_none());
    }
}
