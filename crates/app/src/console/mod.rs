//! The operators' console at `/console`: one framework-free page (HTML, CSS and JavaScript
//! embedded in the binary, no network fetch beyond this server) that talks only to the v1
//! operator API, plus the two small pieces of server support it needs:
//!
//! - [`conditional_get`]: `ETag` on every `200` JSON answer of a `GET /v1/admin/…` read and
//!   `304 Not Modified` for a matching `If-None-Match`, so a console polling the capacity view
//!   every second moves bytes only when a counter changed;
//! - `GET /v1/admin/status` ([`status`]): the store breaker's state and each admission lane's
//!   queue, in-flight requests and refusals per second, for the console's banner.
//!
//! The page keeps the operator key in `sessionStorage` and sends it as `Authorization`; it is
//! never put in a URL. Every write carries an `Idempotency-Key`, reused when the same action is
//! retried, so a double tap or a retry after a lost answer applies once.

use crate::auth::Operator;
use crate::state::AppState;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kataar_admission::{BreakerState, Lane};
use kataar_api::ApiError;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Largest operator read answer [`conditional_get`] buffers to hash; a larger one is passed on
/// without an `ETag` (the capacity view of 14 days of a large district stays well below).
pub const ETAG_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How long one reading of the refusal counters serves every `/v1/admin/status` caller
/// (the rate is taken between two readings at least this far apart).
pub const STATUS_SAMPLE_MS: u64 = 1_000;

/// The console's routes: the page, its two assets, and `GET /v1/admin/status`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/v1/admin/status", get(status))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

/// Middleware: a strong `ETag` (a SHA-256 prefix of the body) on every `200` JSON answer to a
/// `GET /v1/admin/…`, and `304` with no body when `If-None-Match` names it (or is `*`).
/// Answers are marked `Cache-Control: private, no-cache`: they carry one operator's view.
pub async fn conditional_get(req: Request, next: Next) -> Response {
    if req.method() != Method::GET || !req.uri().path().starts_with("/v1/admin/") {
        return next.run(req).await;
    }
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(req).await;
    tag(response, if_none_match.as_ref(), ETAG_BODY_BYTES_MAX).await
}

/// Tags `response` (a `200` JSON answer of at most `max` bytes; anything else passes untouched)
/// and answers `304` when `if_none_match` names the tag.
async fn tag(response: Response, if_none_match: Option<&HeaderValue>, max: usize) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let fits = HttpBody::size_hint(&body)
        .upper()
        .is_some_and(|n| n <= max as u64);
    if !fits {
        return Response::from_parts(parts, body);
    }
    let bytes: Bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(_) => return ApiError::internal().into_response(),
    };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    let matches = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str()))
        });
    if let Ok(v) = HeaderValue::from_str(&etag) {
        parts.headers.insert(header::ETAG, v);
    }
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Refusal counters read from the metrics recorder: (lane, reason) → total.
type Totals = BTreeMap<(String, String), f64>;

struct Sample {
    at: Instant,
    totals: Totals,
    per_s: Totals,
}

static SAMPLE: Mutex<Option<Sample>> = Mutex::new(None);

/// `kataar_admission_refused_total{lane="…",reason="…"} N` lines of a Prometheus page.
fn refused_totals(page: &str) -> Totals {
    let mut out = Totals::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("kataar_admission_refused_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        if let (Some(lane), Some(reason), Ok(n)) =
            (label("lane"), label("reason"), value.trim().parse::<f64>())
        {
            out.insert((lane, reason), n);
        }
    }
    out
}

/// Refusals per second by (lane, reason), from two readings at least [`STATUS_SAMPLE_MS`]
/// apart; one reading serves every caller in between.
fn refusal_rates() -> Totals {
    let mut guard = SAMPLE.lock();
    let now = Instant::now();
    let fresh = guard
        .as_ref()
        .is_some_and(|s| now.duration_since(s.at) < Duration::from_millis(STATUS_SAMPLE_MS));
    if !fresh {
        let totals = refused_totals(&kataar_api::init_metrics().render());
        let per_s = match guard.as_ref() {
            Some(prev) => {
                let dt = now.duration_since(prev.at).as_secs_f64().max(1e-3);
                totals
                    .iter()
                    .map(|(k, v)| {
                        let before = prev.totals.get(k).copied().unwrap_or(0.0);
                        (k.clone(), ((v - before) / dt).max(0.0))
                    })
                    .collect()
            }
            None => Totals::new(),
        };
        *guard = Some(Sample {
            at: now,
            totals,
            per_s,
        });
    }
    guard.as_ref().map(|s| s.per_s.clone()).unwrap_or_default()
}

/// The breaker state's name in `/v1/admin/status`.
fn breaker_name(s: BreakerState) -> &'static str {
    match s {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half_open",
        BreakerState::Open => "open",
    }
}

/// `GET /v1/admin/status`: `{"breaker": "closed"|"half_open"|"open", "lanes": [{"lane",
/// "queued", "in_flight", "refused_per_s", "refused_per_s_by_reason": {reason: n}}],
/// "sampled_every_ms"}`. Any operator key.
#[utoipa::path(get, path = "/v1/admin/status", tag = "operators", security(("operator_key" = [])),
    responses((status = 200, description = "`{breaker: closed|half_open|open, lanes: [{lane, queued, in_flight, refused_per_s, refused_per_s_by_reason}], sampled_every_ms}`: the store breaker and each admission lane now (refusal rates over the last sample, at least `sampled_every_ms` long); `ETag` + `If-None-Match` → `304`"), (status = 401, description = "`unauthenticated`", body = kataar_api::ErrorBody)))]
pub async fn status(State(state): State<AppState>, _op: Operator) -> Json<Value> {
    let rates = refusal_rates();
    let lanes: Vec<Value> = Lane::ALL
        .into_iter()
        .map(|lane| {
            let st = state.admission.lane_status(lane);
            let name = lane.as_str();
            let mut by_reason = Map::new();
            let mut total = 0.0;
            for ((l, reason), r) in &rates {
                if l == name {
                    total += r;
                    by_reason.insert(reason.clone(), json!(round2(*r)));
                }
            }
            json!({
                "lane": name,
                "queued": st.queued,
                "in_flight": st.in_flight,
                "refused_per_s": round2(total),
                "refused_per_s_by_reason": by_reason,
            })
        })
        .collect();
    Json(json!({
        "breaker": breaker_name(state.admission.breaker().state()),
        "lanes": lanes,
        "sampled_every_ms": STATUS_SAMPLE_MS,
    }))
}

/// The console's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(status))]
struct ConsoleDoc;

/// The OpenAPI paths the console adds (`GET /v1/admin/status`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ConsoleDoc as utoipa::OpenApi>::openapi()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_are_read_by_lane_and_reason() {
        let page = "# TYPE kataar_admission_refused_total counter\n\
            kataar_admission_refused_total{lane=\"booking\",reason=\"overloaded\"} 12\n\
            kataar_admission_refused_total{lane=\"browse\",reason=\"too_many_requests\"} 3.5\n\
            kataar_admission_admitted_total{lane=\"booking\"} 99\n";
        let t = refused_totals(page);
        assert_eq!(t.len(), 2);
        assert_eq!(t[&("booking".into(), "overloaded".into())], 12.0);
        assert_eq!(t[&("browse".into(), "too_many_requests".into())], 3.5);
    }

    fn json_of(n: usize) -> Response {
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(vec![b' '; n]))
            .unwrap()
    }

    #[tokio::test]
    async fn answers_up_to_the_bound_are_tagged_larger_ones_pass_untagged() {
        let at = tag(json_of(ETAG_BODY_BYTES_MAX), None, ETAG_BODY_BYTES_MAX).await;
        assert_eq!(at.status(), StatusCode::OK);
        let etag = at.headers()[header::ETAG].clone();
        let same = tag(
            json_of(ETAG_BODY_BYTES_MAX),
            Some(&etag),
            ETAG_BODY_BYTES_MAX,
        )
        .await;
        assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
        let over = tag(
            json_of(ETAG_BODY_BYTES_MAX + 1),
            Some(&etag),
            ETAG_BODY_BYTES_MAX,
        )
        .await;
        assert_eq!(over.status(), StatusCode::OK);
        assert!(over.headers().get(header::ETAG).is_none());
        let body = axum::body::to_bytes(over.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body.len(), ETAG_BODY_BYTES_MAX + 1);
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(INDEX_HTML.contains("/console/app.js"));
        assert!(INDEX_HTML.contains("/console/app.css"));
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }
}
