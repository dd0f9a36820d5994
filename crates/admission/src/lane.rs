//! Lanes (operator, booking, auth, browse) and the classification of a request into one.
//!
//! Classification looks only at the method and the path (no headers, no body, no allocation), so
//! it can run before anything else on the request path.

use http::Method;
use serde::{Deserialize, Serialize};

/// An admission lane: each has its own rate, burst, wait queue and in-flight cap, so one kind of
/// traffic cannot starve another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Centre staff: walk-ins, check-in, administer, capacity changes — all of `/v1/admin/*`.
    /// Small but reserved: citizens' traffic never spends its tokens.
    Operator,
    /// Citizens' writes: bookings, beneficiaries, the launch queue (and the v2 equivalents).
    Booking,
    /// OTP login (`POST /v1/auth/*`, `/api/v2/auth/*`).
    Auth,
    /// Every read (availability, lists, status polls, PDFs) and anything not named above.
    Browse,
}

impl Lane {
    /// Every lane, in index order.
    pub const ALL: [Lane; 4] = [Lane::Operator, Lane::Booking, Lane::Auth, Lane::Browse];

    /// The lane's name as used in metric labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lane::Operator => "operator",
            Lane::Booking => "booking",
            Lane::Auth => "auth",
            Lane::Browse => "browse",
        }
    }

    /// Position in [`Lane::ALL`].
    #[inline]
    pub(crate) const fn index(self) -> usize {
        match self {
            Lane::Operator => 0,
            Lane::Booking => 1,
            Lane::Auth => 2,
            Lane::Browse => 3,
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Paths that are never admission-limited: probes and scrapes must answer under any load.
pub const UNLIMITED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The lane of a request, or `None` for [`UNLIMITED_PATHS`] (`/healthz`, `/readyz`,
/// `/metrics`), which the server answers without calling admission.
///
/// `path` is the URI path without the query string (`uri.path()`).
///
/// - `/v1/admin` and below, any method → [`Lane::Operator`];
/// - `POST`/`PUT`/`PATCH`/`DELETE` under `/v1/bookings`, `/v1/beneficiaries`, `/v1/queue`, and
///   `/api/v2/appointment/{schedule,reschedule,cancel}`,
///   `/api/v2/registration/beneficiary/{new,delete}` → [`Lane::Booking`];
/// - non-read methods under `/v1/auth`, and anything under `/api/v2/auth` → [`Lane::Auth`];
/// - everything else (every `GET`/`HEAD`/`OPTIONS`, `/openapi.json`, unknown paths, and the rest
///   of `/api/v2`, including its public `/api/v2/admin/location/*` reads) → [`Lane::Browse`].
pub fn classify(method: &Method, path: &str) -> Option<Lane> {
    if UNLIMITED_PATHS.contains(&path) {
        return None;
    }
    if under(path, "/v1/admin") {
        return Some(Lane::Operator);
    }
    if let Some(rest) = path.strip_prefix("/api/v2") {
        return Some(classify_v2(rest));
    }
    let read = is_read(method);
    if !read
        && (under(path, "/v1/bookings")
            || under(path, "/v1/beneficiaries")
            || under(path, "/v1/queue"))
    {
        return Some(Lane::Booking);
    }
    if !read && under(path, "/v1/auth") {
        return Some(Lane::Auth);
    }
    Some(Lane::Browse)
}

/// The CoWIN v2 compatibility paths (after `/api/v2`).
fn classify_v2(rest: &str) -> Lane {
    if under(rest, "/auth") {
        return Lane::Auth;
    }
    const V2_BOOKING: [&str; 5] = [
        "/appointment/schedule",
        "/appointment/reschedule",
        "/appointment/cancel",
        "/registration/beneficiary/new",
        "/registration/beneficiary/delete",
    ];
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if V2_BOOKING.contains(&rest) {
        return Lane::Booking;
    }
    Lane::Browse
}

#[inline]
fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD || method == Method::OPTIONS
}

/// `path` is `prefix` or lies below it (segment boundary respected: `/v1/administrator` is not
/// under `/v1/admin`).
#[inline]
fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(method: Method, path: &str) -> Option<Lane> {
        classify(&method, path)
    }

    #[test]
    fn probes_and_metrics_are_never_limited() {
        for p in UNLIMITED_PATHS {
            assert_eq!(c(Method::GET, p), None);
        }
        assert_eq!(c(Method::GET, "/healthz/x"), Some(Lane::Browse));
    }

    #[test]
    fn v1_paths() {
        assert_eq!(c(Method::GET, "/v1/admin/capacity"), Some(Lane::Operator));
        assert_eq!(c(Method::POST, "/v1/admin/walkins"), Some(Lane::Operator));
        assert_eq!(c(Method::PATCH, "/v1/admin/pools/7"), Some(Lane::Operator));
        assert_eq!(c(Method::POST, "/v1/administrator"), Some(Lane::Browse));
        assert_eq!(c(Method::POST, "/v1/bookings"), Some(Lane::Booking));
        assert_eq!(
            c(Method::POST, "/v1/bookings/9/cancel"),
            Some(Lane::Booking)
        );
        assert_eq!(c(Method::GET, "/v1/bookings/9"), Some(Lane::Browse));
        assert_eq!(c(Method::POST, "/v1/beneficiaries"), Some(Lane::Booking));
        assert_eq!(
            c(Method::DELETE, "/v1/beneficiaries/3"),
            Some(Lane::Booking)
        );
        assert_eq!(c(Method::GET, "/v1/beneficiaries"), Some(Lane::Browse));
        assert_eq!(c(Method::POST, "/v1/queue"), Some(Lane::Booking));
        assert_eq!(c(Method::GET, "/v1/queue/5"), Some(Lane::Browse));
        assert_eq!(c(Method::POST, "/v1/auth/otp"), Some(Lane::Auth));
        assert_eq!(c(Method::POST, "/v1/auth/otp/verify"), Some(Lane::Auth));
        assert_eq!(c(Method::GET, "/v1/availability"), Some(Lane::Browse));
        assert_eq!(c(Method::GET, "/v1/me"), Some(Lane::Browse));
        assert_eq!(c(Method::GET, "/openapi.json"), Some(Lane::Browse));
        assert_eq!(c(Method::POST, "/v1/nope"), Some(Lane::Browse));
    }

    #[test]
    fn v2_compat_paths() {
        for p in [
            "/api/v2/auth/generateMobileOTP",
            "/api/v2/auth/validateMobileOtp",
            "/api/v2/auth/public/confirmOTP",
            "/api/v2/auth/getRecaptcha",
        ] {
            assert_eq!(c(Method::POST, p), Some(Lane::Auth), "{p}");
        }
        for p in [
            "/api/v2/appointment/schedule",
            "/api/v2/appointment/reschedule",
            "/api/v2/appointment/cancel",
            "/api/v2/registration/beneficiary/new",
            "/api/v2/registration/beneficiary/delete",
            "/api/v2/appointment/schedule/",
        ] {
            assert_eq!(c(Method::POST, p), Some(Lane::Booking), "{p}");
        }
        for p in [
            "/api/v2/admin/location/states",
            "/api/v2/admin/location/districts/9",
            "/api/v2/appointment/sessions/public/calendarByDistrict",
            "/api/v2/appointment/beneficiaries",
            "/api/v2/appointment/appointmentslip/download",
            "/api/v2/registration/beneficiary/genders",
        ] {
            assert_eq!(c(Method::GET, p), Some(Lane::Browse), "{p}");
        }
    }
}
