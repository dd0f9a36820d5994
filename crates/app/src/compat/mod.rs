//! The CoWIN public API v2 compatibility layer (`/api/v2/...`, `api.md`, "Compatibility API").
//!
//! A translation layer only: each handler reads a v2 request leniently ([`wire`]), calls the
//! same engine operation and the same durable-commit path as v1 (sharing v1's helpers for the
//! OTP request, sign-in and beneficiary registration, and the engine's `book_all` for group
//! bookings), and writes the answer in the shapes 2021 clients read. No booking rule lives
//! here. It sits inside `kataar-app` because it needs [`AppState`] and v1's helpers; nothing
//! in v1 depends on it.
//!
//! - [`wire`]: error shapes, the lenient body, ids, dates, slots, doses, `Accept-Language`.
//! - [`places`]: locations, genders, photo-ID types, calendars, finds.
//! - [`citizen`]: OTP pairs, registration, beneficiaries, captcha, schedule/reschedule/cancel.
//! - [`captcha`]: the SVG captcha and its answers.
//! - [`openapi`]: the v2 paths in `/openapi.json`.
//!
//! Every v2 response carries `Access-Control-Allow-Origin: *`; `OPTIONS` on any v2 path is a
//! CORS preflight (`204`); a request with `Connection: close` is answered with
//! `Connection: close` and the connection is then closed. Admission refusals on v2 paths are
//! `429 {"error": "Too Many Requests"}` with `Retry-After` ([`refusal`]).

pub mod captcha;
pub mod citizen;
pub mod openapi;
pub mod places;
pub mod wire;

use crate::state::AppState;
use axum::extract::{RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use citizen::V2Citizen;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::Value;
use wire::V2Error;

/// The compatibility layer's own state.
#[derive(Default)]
pub struct Compat {
    /// Whether `schedule` needs a right `captcha` (`compat_captcha_required`, default off).
    pub captcha_required: bool,
    /// Captcha answers waiting for a `schedule`.
    pub captchas: captcha::Captchas,
}

impl Compat {
    /// The layer's state for a configuration.
    pub fn new(captcha_required: bool) -> Compat {
        Compat {
            captcha_required,
            captchas: captcha::Captchas::default(),
        }
    }
}

type Answer = Result<Json<Value>, V2Error>;

async fn calendar_district(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    places::calendar(&s, &h, q, "district_id")
}
async fn calendar_pin(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    places::calendar(&s, &h, q, "pincode")
}
async fn calendar_center(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    places::calendar_by_center(&s, &h, q)
}
async fn find_district(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    places::find(&s, &h, q, "district_id")
}
async fn find_pin(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    places::find(&s, &h, q, "pincode")
}
async fn find_lat_long(State(s): State<AppState>, RawQuery(q): RawQuery) -> Answer {
    places::find_by_lat_long(&s, q)
}
async fn calendar_district_auth(
    State(s): State<AppState>,
    _: V2Citizen,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    places::calendar(&s, &h, q, "district_id")
}
async fn calendar_pin_auth(
    State(s): State<AppState>,
    _: V2Citizen,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    places::calendar(&s, &h, q, "pincode")
}
async fn calendar_center_auth(
    State(s): State<AppState>,
    _: V2Citizen,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    places::calendar_by_center(&s, &h, q)
}
async fn find_district_auth(
    State(s): State<AppState>,
    _: V2Citizen,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    places::find(&s, &h, q, "district_id")
}
async fn find_pin_auth(
    State(s): State<AppState>,
    _: V2Citizen,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    places::find(&s, &h, q, "pincode")
}
async fn find_lat_long_auth(
    State(s): State<AppState>,
    _: V2Citizen,
    RawQuery(q): RawQuery,
) -> Answer {
    places::find_by_lat_long(&s, q)
}

/// Every v2 path, with the CORS / `Connection: close` layer.
pub fn router() -> Router<AppState> {
    const S: &str = "/api/v2/appointment/sessions";
    const C: &str = "/api/v2/appointment/centers";
    Router::new()
        .route("/api/v2/admin/location/states", get(places::states))
        .route(
            "/api/v2/admin/location/districts/{state_id}",
            get(places::districts),
        )
        .route(
            "/api/v2/auth/generateMobileOTP",
            post(citizen::generate_otp),
        )
        .route("/api/v2/auth/validateMobileOtp", post(citizen::confirm_otp))
        .route(
            "/api/v2/auth/public/generateOTP",
            post(citizen::generate_otp),
        )
        .route("/api/v2/auth/public/confirmOTP", post(citizen::confirm_otp))
        .route("/api/v2/auth/generateOTP", post(citizen::generate_otp))
        .route(
            "/api/v2/auth/confirmOTP",
            post(citizen::confirm_otp_partner),
        )
        .route("/api/v2/auth/getRecaptcha", post(citizen::captcha))
        .route(
            "/api/v2/registration/beneficiary/genders",
            get(places::genders),
        )
        .route(
            "/api/v2/registration/beneficiary/idTypes",
            get(places::id_types),
        )
        .route(
            "/api/v2/registration/beneficiary/new",
            post(citizen::register),
        )
        .route(
            "/api/v2/registration/beneficiary/delete",
            post(citizen::unregister),
        )
        .route(
            &format!("{S}/public/calendarByDistrict"),
            get(calendar_district),
        )
        .route(&format!("{S}/public/calendarByPin"), get(calendar_pin))
        .route(
            &format!("{S}/public/calendarByCenter"),
            get(calendar_center),
        )
        .route(&format!("{S}/public/findByDistrict"), get(find_district))
        .route(&format!("{S}/public/findByPin"), get(find_pin))
        .route(
            &format!("{S}/calendarByDistrict"),
            get(calendar_district_auth),
        )
        .route(&format!("{S}/calendarByPin"), get(calendar_pin_auth))
        .route(&format!("{S}/calendarByCenter"), get(calendar_center_auth))
        .route(&format!("{S}/findByDistrict"), get(find_district_auth))
        .route(&format!("{S}/findByPin"), get(find_pin_auth))
        .route(&format!("{C}/public/findByLatLong"), get(find_lat_long))
        .route(&format!("{C}/findByLatLong"), get(find_lat_long_auth))
        .route(
            "/api/v2/appointment/beneficiaries",
            get(citizen::beneficiaries),
        )
        .route("/api/v2/appointment/schedule", post(citizen::schedule))
        .route("/api/v2/appointment/reschedule", post(citizen::reschedule))
        .route("/api/v2/appointment/cancel", post(citizen::cancel))
        .route(
            "/api/v2/appointment/appointmentslip/download",
            get(citizen::slip),
        )
        .route(
            "/api/v2/registration/certificate/public/download",
            get(citizen::certificate),
        )
        .route(
            "/api/v2/registration/certificate/download",
            get(citizen::certificate),
        )
        .layer(axum::middleware::from_fn(conventions))
}

/// Whether a path is under `/api/v2`.
pub fn is_v2(path: &str) -> bool {
    path == "/api/v2" || path.starts_with("/api/v2/")
}

fn wants_close(req: &Request) -> bool {
    req.version() <= http::Version::HTTP_11
        && req
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

/// CORS for browser clients, preflights, and `Connection: close` echoed.
async fn conventions(req: Request, next: Next) -> Response {
    let close = wants_close(&req);
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, content-type, accept, accept-language, user-agent",
            ),
        );
        h.insert(
            http::header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(
        http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if close {
        h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// An admission refusal on a v2 path: `429 {"error": "Too Many Requests"}` with
/// `Retry-After` (never `403`; also when the lane is full or the store breaker is open).
pub fn refusal(retry_after_s: u32) -> Response {
    V2Error::TooMany {
        retry_after_s: retry_after_s.max(1),
    }
    .into_response()
}

pub use openapi::openapi;
