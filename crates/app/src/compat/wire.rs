//! The CoWIN v2 wire conventions: the error shapes, the lenient JSON body, the ids clients
//! see (UUID-shaped session and appointment ids, 14-digit beneficiary reference ids), dates
//! `DD-MM-YYYY`, slots `"09:00AM-11:00AM"`, doses as numbers, floats or strings, and the
//! `Accept-Language` choice of the `*_l` names.
//!
//! # Ids (stable, derived from Kataar's ids, nothing stored)
//!
//! - `session_id`: `5e5510a0-0000-8000-8HHH-HHHHHHHHHHHH`, the session id in the last 15 hex
//!   digits (a UUID of version 8, "custom"); `appointment_id` (one booking):
//!   `a9901a00-0000-8000-8HHH-HHHHHHHHHHHH` with the booking id. Every Kataar id is below
//!   2^53, so 15 hex digits always hold it. Parsing accepts either case.
//! - `beneficiary_reference_id`: the decimal of 10^13 + the beneficiary id: 14 digits while the
//!   id is below 9 × 10^13.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use http::{HeaderMap, HeaderValue, StatusCode};
use kataar_api::{ApiError, KeepErrorBody};
use kataar_domain::Dose;
use serde_json::{json, Map, Value};

/// The body of every v2 `401`.
pub const UNAUTHENTICATED_BODY: &str = "Unauthenticated access!";
/// The body of every v2 `429`.
pub const TOO_MANY_BODY: &str = "Too Many Requests";
/// The message of `APPOIN0040`, word for word as CoWIN wrote it.
pub const FULL_MESSAGE: &str = "This vaccination center is completely booked for the selected \
date. Please try another date or vaccination center.";

/// Tag of a v2 `session_id`.
pub const SESSION_TAG: u32 = 0x5e55_10a0;
/// Tag of a v2 `appointment_id`.
pub const APPOINTMENT_TAG: u32 = 0xa990_1a00;
/// `beneficiary_reference_id` = this + the beneficiary id.
pub const REFERENCE_BASE: u64 = 10_000_000_000_000;

/// A v2 refusal.
#[derive(Debug, Clone)]
pub enum V2Error {
    /// `{"errorCode", "error"}` with a status (and `Retry-After` when given).
    Coded {
        /// Status.
        status: StatusCode,
        /// The CoWIN-style code (`APPOIN0040`, `USRAUT0014`, ...).
        code: &'static str,
        /// The human sentence.
        message: String,
        /// Seconds for `Retry-After`.
        retry_after_s: Option<u32>,
    },
    /// `401` with the plain-text body `Unauthenticated access!`.
    Unauthenticated,
    /// `429 {"error": "Too Many Requests"}` with `Retry-After`.
    TooMany {
        /// Seconds for `Retry-After` (at least 1).
        retry_after_s: u32,
    },
}

impl V2Error {
    /// A `400` with a code.
    pub fn bad(code: &'static str, message: impl Into<String>) -> V2Error {
        V2Error::coded(StatusCode::BAD_REQUEST, code, message)
    }

    /// Any status with a code.
    pub fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> V2Error {
        V2Error::Coded {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// `400 APPOIN0011`: the request is malformed (the message names the field).
    pub fn invalid(message: impl Into<String>) -> V2Error {
        V2Error::bad("APPOIN0011", message)
    }

    /// `400 APPOIN0015`: no such session, or no such slot in it.
    pub fn bad_session() -> V2Error {
        V2Error::bad("APPOIN0015", "Invalid session or slot")
    }

    /// `400 APPOIN0016`: no such appointment on this account.
    pub fn bad_appointment() -> V2Error {
        V2Error::bad("APPOIN0016", "Invalid appointment id")
    }

    /// `400 APPOIN0017`: a beneficiary that is not on this account.
    pub fn bad_beneficiary() -> V2Error {
        V2Error::bad("APPOIN0017", "Invalid beneficiary reference id")
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        match self {
            V2Error::Coded { status, .. } => *status,
            V2Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            V2Error::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The code answered (`"401"`/`"429"` for the two bodies without one).
    pub fn code(&self) -> &'static str {
        match self {
            V2Error::Coded { code, .. } => code,
            V2Error::Unauthenticated => "401",
            V2Error::TooMany { .. } => "429",
        }
    }

    /// Maps a v1 catalogue refusal from the registration rules (`BENREG*` codes).
    pub fn registration(e: ApiError) -> V2Error {
        match e.code {
            "invalid_request" => V2Error::bad("BENREG0001", e.message),
            "id_already_registered" => {
                V2Error::coded(StatusCode::CONFLICT, "BENREG0002", e.message)
            }
            "beneficiary_exists" => V2Error::coded(StatusCode::CONFLICT, "BENREG0003", e.message),
            "beneficiary_limit" => V2Error::coded(StatusCode::CONFLICT, "BENREG0004", e.message),
            "beneficiary_in_use" => V2Error::coded(StatusCode::CONFLICT, "BENREG0005", e.message),
            "not_found" => V2Error::bad("BENREG0006", "Invalid beneficiary reference id"),
            _ => V2Error::from(e),
        }
    }
}

/// The one mapping from the v1 catalogue to v2 answers (see the README's APPOIN table).
impl From<ApiError> for V2Error {
    fn from(e: ApiError) -> V2Error {
        let conflict = |code: &'static str, message: String| {
            V2Error::coded(StatusCode::CONFLICT, code, message)
        };
        match e.code {
            "unauthenticated" => V2Error::Unauthenticated,
            "too_many_requests" | "otp_resend_too_soon" | "otp_limit_reached" | "overloaded" => {
                V2Error::TooMany {
                    retry_after_s: e.retry_after_s.unwrap_or(1).max(1),
                }
            }
            "store_unavailable" | "not_ready" => V2Error::Coded {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "SRVUNA0001",
                message: "The service is briefly unavailable; please retry.".into(),
                retry_after_s: Some(e.retry_after_s.unwrap_or(1).max(1)),
            },
            "otp_invalid" => V2Error::bad("USRAUT0014", "Invalid OTP"),
            "otp_expired" => V2Error::bad("USRAUT0014", "Invalid OTP: expired, ask for a new one"),
            "pool_full" => conflict("APPOIN0040", FULL_MESSAGE.into()),
            "already_booked" => conflict("APPOIN0022", e.message),
            "not_eligible" => conflict("APPOIN0045", e.message),
            "dose_sequence" => conflict("APPOIN0046", e.message),
            "vaccine_mismatch" => conflict("APPOIN0047", e.message),
            "dose_interval" => conflict("APPOIN0048", e.message),
            "session_closed" => conflict("APPOIN0049", e.message),
            "not_open" => conflict("APPOIN0050", e.message),
            "queue_required" | "pass_invalid" | "sold_out" => conflict("APPOIN0051", e.message),
            "booking_state" => conflict("APPOIN0052", e.message),
            "not_found" => V2Error::bad_session(),
            "internal" => V2Error::coded(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SRVERR0001",
                "Internal error",
            ),
            "id_already_registered"
            | "beneficiary_exists"
            | "beneficiary_limit"
            | "beneficiary_in_use" => V2Error::registration(e),
            _ => V2Error::coded(e.status, "APPOIN0011", e.message),
        }
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let mut resp = match self {
            V2Error::Coded {
                status,
                code,
                message,
                retry_after_s,
            } => {
                let mut r = (
                    status,
                    axum::Json(json!({"errorCode": code, "error": message})),
                )
                    .into_response();
                if let Some(s) = retry_after_s {
                    r.headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from(s));
                }
                r
            }
            V2Error::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                [(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                UNAUTHENTICATED_BODY,
            )
                .into_response(),
            V2Error::TooMany { retry_after_s } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({ "error": TOO_MANY_BODY })),
                )
                    .into_response();
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(retry_after_s.max(1)),
                );
                r
            }
        };
        resp.extensions_mut().insert(KeepErrorBody);
        resp.headers_mut().insert(
            http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        resp
    }
}

/// A lenient JSON body: any `Content-Type` (or none), an empty body reads as `{}`, unknown
/// fields are ignored by the handlers. It must be a JSON object. The size bound is the
/// server's `body_bytes_max` (`413`).
#[derive(Debug)]
pub struct V2Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for V2Body {
    type Rejection = V2Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, V2Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            V2Error::coded(
                r.status(),
                "APPOIN0011",
                "The request body could not be read",
            )
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(V2Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(V2Body(m)),
            Ok(_) => Err(V2Error::invalid("The request body must be a JSON object")),
            Err(_) => Err(V2Error::invalid("The request body is not valid JSON")),
        }
    }
}

impl V2Body {
    /// A string field (a JSON number is taken as its decimal).
    pub fn text(&self, field: &str) -> Option<String> {
        match self.0.get(field)? {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A required string field.
    pub fn need_text(&self, field: &str) -> Result<String, V2Error> {
        self.text(field)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| V2Error::invalid(format!("{field} is required")))
    }

    /// A whole number given as an integer, an integral float (`1.0`) or a string (`"1"`).
    pub fn whole(&self, field: &str) -> Option<u64> {
        whole(self.0.get(field)?)
    }

    /// A list of strings (numbers taken as their decimal); absent is empty.
    pub fn list(&self, field: &str) -> Result<Vec<String>, V2Error> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(V2Error::invalid(format!("{field} must be a list of ids"))),
                })
                .collect(),
            Some(_) => Err(V2Error::invalid(format!("{field} must be a list of ids"))),
        }
    }
}

/// A whole number from JSON: `1`, `1.0` or `"1"` (also `"1.0"`).
pub fn whole(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                    .map(|f| f as u64)
            })
        }
        _ => None,
    }
}

/// A dose from a body field: 1 or 2, as an integer, an integral float or a string.
pub fn dose(body: &V2Body) -> Result<Dose, V2Error> {
    body.whole("dose")
        .and_then(|n| u8::try_from(n).ok())
        .and_then(Dose::from_number)
        .ok_or_else(|| V2Error::invalid("dose must be 1 or 2"))
}

/// A UUID-shaped id for Kataar id `id` under `tag`.
pub fn uuid_of(tag: u32, id: u64) -> String {
    format!(
        "{tag:08x}-0000-8000-8{:03x}-{:012x}",
        (id >> 48) & 0xfff,
        id & 0xffff_ffff_ffff
    )
}

/// The Kataar id inside a UUID-shaped id made by [`uuid_of`] with `tag`.
pub fn id_of(tag: u32, text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let parts: Vec<&str> = t.split('-').collect();
    let [a, b, c, d, e] = parts.as_slice() else {
        return None;
    };
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|x| x.is_ascii_hexdigit());
    if !(hex(a, 8) && hex(d, 4) && hex(e, 12)) || *b != "0000" || *c != "8000" {
        return None;
    }
    if u32::from_str_radix(a, 16).ok()? != tag || !d.starts_with('8') {
        return None;
    }
    let high = u64::from_str_radix(&d[1..], 16).ok()?;
    let low = u64::from_str_radix(e, 16).ok()?;
    Some((high << 48) | low)
}

/// The 14-digit `beneficiary_reference_id` of a beneficiary.
pub fn reference_of(id: u64) -> String {
    REFERENCE_BASE.saturating_add(id).to_string()
}

/// The beneficiary id in a `beneficiary_reference_id`.
pub fn beneficiary_of(reference: &str) -> Option<u64> {
    let r = reference.trim();
    if r.len() != 14 || !r.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    r.parse::<u64>().ok()?.checked_sub(REFERENCE_BASE)
}

/// Parses a query date: `DD-MM-YYYY`, `DD-MM-YY`, `D-M-YYYY`, `D-M-YY`, with `-` or `/`
/// (and `YYYY-MM-DD`). Two-digit years are 20YY.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = text.trim().split(['-', '/']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let num = |s: &str, lens: &[usize]| -> Option<u32> {
        (lens.contains(&s.len()) && s.bytes().all(|x| x.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (d, m, y) = if a.len() == 4 {
        (num(c, &[1, 2])?, num(b, &[1, 2])?, num(a, &[4])?)
    } else {
        let y = num(c, &[2, 4])?;
        let y = if c.len() == 2 { 2000 + y } else { y };
        (num(a, &[1, 2])?, num(b, &[1, 2])?, y)
    };
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
}

/// A date as v2 answers write it: `DD-MM-YYYY`.
pub fn date(d: NaiveDate) -> String {
    d.format("%d-%m-%Y").to_string()
}

/// `"09:00"` → `"09:00AM"`, `"13:30"` → `"01:30PM"`.
pub fn clock_12h(hhmm: &str) -> String {
    let (h, m) = hhmm.split_once(':').unwrap_or((hhmm, "00"));
    let h: u32 = h.parse().unwrap_or(0);
    let (h12, half) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{h12:02}:{m:0>2}{half}")
}

/// A slot as v2 clients name it: `"09:00AM-11:00AM"`.
pub fn slot_text(start: &str, end: &str) -> String {
    format!("{}-{}", clock_12h(start), clock_12h(end))
}

/// Whether a client's slot text names the slot `start`-`end` (case and spaces ignored; the
/// 24-hour `"09:00-11:00"` form is accepted too).
pub fn slot_matches(given: &str, start: &str, end: &str) -> bool {
    let norm: String = given
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    norm == slot_text(start, end) || norm == format!("{start}-{end}")
}

/// `"09:00"` → `"09:00:00"`.
pub fn clock_seconds(hhmm: &str) -> String {
    format!("{hhmm}:00")
}

/// Whether the client asks for Hindi: the preferred (highest `q`, first on a tie) language
/// of `Accept-Language` is `hi` (`hi`, `hi-IN`, `hi_IN`).
pub fn wants_hindi(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut best: Option<(f32, &str)> = None;
    for item in value.split(',') {
        let mut bits = item.split(';');
        let tag = bits.next().unwrap_or("").trim();
        let q = bits
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if tag.is_empty() || q <= 0.0 {
            continue;
        }
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, tag));
        }
    }
    best.is_some_and(|(_, tag)| {
        tag.split(['-', '_'])
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("hi"))
    })
}

/// A v1 error from a helper shared with v1, mapped to v2.
pub fn v2<T>(r: Result<T, ApiError>) -> Result<T, V2Error> {
    r.map_err(V2Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_other_kinds() {
        for id in [0, 1, 42, (1u64 << 53) - 1] {
            let s = uuid_of(SESSION_TAG, id);
            assert_eq!(s.len(), 36);
            assert_eq!(id_of(SESSION_TAG, &s), Some(id));
            assert_eq!(id_of(SESSION_TAG, &s.to_uppercase()), Some(id));
            assert_eq!(id_of(APPOINTMENT_TAG, &s), None);
        }
        assert_eq!(
            uuid_of(SESSION_TAG, 255),
            "5e5510a0-0000-8000-8000-0000000000ff"
        );
        assert_eq!(id_of(SESSION_TAG, "not-a-uuid"), None);
        assert_eq!(reference_of(7), "10000000000007");
        assert_eq!(beneficiary_of("10000000000007"), Some(7));
        assert_eq!(beneficiary_of("1000000000007"), None);
        assert_eq!(beneficiary_of("0000000000007x"), None);
    }

    #[test]
    fn dates_are_lenient_and_written_one_way() {
        let want = NaiveDate::from_ymd_opt(2021, 5, 4);
        for text in [
            "04-05-2021",
            "4-5-2021",
            "04-05-21",
            "4-5-21",
            "04/05/2021",
            "4/5/21",
            "2021-05-04",
        ] {
            assert_eq!(parse_date(text), want, "{text}");
        }
        for bad in [
            "",
            "31-02-2021",
            "04-05",
            "aa-bb-cccc",
            "004-05-2021",
            "04-05-202",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(
            date(NaiveDate::from_ymd_opt(2021, 5, 4).unwrap_or_default()),
            "04-05-2021"
        );
    }

    #[test]
    fn slots_are_twelve_hour_text() {
        assert_eq!(slot_text("09:00", "11:00"), "09:00AM-11:00AM");
        assert_eq!(slot_text("11:00", "13:00"), "11:00AM-01:00PM");
        assert_eq!(slot_text("00:30", "12:00"), "12:30AM-12:00PM");
        assert!(slot_matches("09:00am - 11:00am", "09:00", "11:00"));
        assert!(slot_matches("09:00-11:00", "09:00", "11:00"));
        assert!(!slot_matches("11:00AM-01:00PM", "09:00", "11:00"));
    }

    #[test]
    fn doses_and_numbers_in_any_form() {
        for v in [json!(1), json!(1.0), json!("1"), json!("1.0")] {
            assert_eq!(whole(&v), Some(1), "{v}");
        }
        for v in [json!(1.5), json!("x"), json!(null), json!(-1)] {
            assert_eq!(whole(&v), None, "{v}");
        }
    }

    #[test]
    fn hindi_when_preferred() {
        let mut h = HeaderMap::new();
        assert!(!wants_hindi(&h));
        for (value, hi) in [
            ("hi_IN", true),
            ("hi", true),
            ("hi-IN,en;q=0.8", true),
            ("en-US,hi;q=0.9", false),
            ("en;q=0.5,hi;q=0.9", true),
            ("en", false),
        ] {
            h.insert(
                http::header::ACCEPT_LANGUAGE,
                HeaderValue::from_static(value),
            );
            assert_eq!(wants_hindi(&h), hi, "{value}");
        }
    }
}
