//! The one error type every v1 handler returns, and its wire shape.
//!
//! Every error leaves as `{"error": {"code", "message", "request_id", "details"?}}` with a stable
//! `code` from the catalogue in `api.md`. Refusals under load (429 and 503) also carry a
//! `Retry-After` header with the same whole seconds as `details.retry_after_s`.
//!
//! The request id comes from the request-id middleware ([`crate::middleware`]): it runs the
//! request inside a task-local scope, so [`ApiError::into_response`] can read it. An error
//! rendered outside that scope (in a spawned task, for instance) is marked, and the middleware
//! re-renders it with the right id on the way out. Messages are written for clients: never an
//! internal name, SQL, path or stack trace.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

tokio::task_local! {
    /// The id of the request being served by the current task (set by the request-id
    /// middleware for the duration of the handler).
    pub(crate) static CURRENT_REQUEST_ID: RequestId;
}

/// The id of one request: echoed from `X-Request-Id` when the client sent a usable one, else
/// generated. Also inserted as a request extension, so handlers can take `Extension<RequestId>`.
///
/// The server always generates its own id too ([`RequestId::server_id`]): records the server
/// keeps (the audit log) name that one, so a client cannot choose or reuse the id another
/// request is known by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub std::sync::Arc<str>, pub Option<std::sync::Arc<str>>);

impl RequestId {
    /// A request the server named itself (`id` is also the server's id).
    pub fn generated(id: std::sync::Arc<str>) -> RequestId {
        RequestId(id, None)
    }

    /// A request whose client sent `echoed`; the server's own id is `server`.
    pub fn echoed(echoed: std::sync::Arc<str>, server: std::sync::Arc<str>) -> RequestId {
        RequestId(echoed, Some(server))
    }

    /// The id as text (the one in `X-Request-Id` and error bodies).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id the server generated for this request, whatever the client sent.
    pub fn server_id(&self) -> &str {
        self.1.as_deref().unwrap_or(&self.0)
    }

    /// The id the client sent, when it was echoed.
    pub fn client_id(&self) -> Option<&str> {
        self.1.as_ref().map(|_| &*self.0)
    }

    /// The id of the request the current task serves, if it runs inside the middleware scope.
    pub fn current() -> Option<RequestId> {
        CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
    }

    /// Runs `fut` as part of this request (for work a handler spawns into a task of its own,
    /// so that its errors and audit records carry the request's id).
    pub async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        CURRENT_REQUEST_ID.scope(self, fut).await
    }
}

/// A refusal in the contract shape. Build it with the named constructors (one per catalogue
/// code), refine with [`ApiError::with_detail`] / [`ApiError::with_message`].
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code from the catalogue.
    pub code: &'static str,
    /// Human sentence for the client; no internals.
    pub message: String,
    /// Extra facts (`field`, `earliest_date`, `retry_after_s`, ...).
    pub details: Option<Map<String, Value>>,
    /// Whole seconds for `Retry-After` (429 and 503 always have one).
    pub retry_after_s: Option<u32>,
}

/// The JSON body of every error (documented in `/openapi.json` as `ErrorBody`).
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorObject,
}

/// The `error` member of [`ErrorBody`].
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ErrorObject {
    /// Stable code from the catalogue, e.g. `pool_full`.
    pub code: String,
    /// Human sentence.
    pub message: String,
    /// The request id, also in the `X-Request-Id` header.
    pub request_id: String,
    /// Extra facts, e.g. `field`, `earliest_date`, `retry_after_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Map<String, Value>>,
}

/// Default `Retry-After` for load refusals when the caller has no better estimate.
pub const RETRY_AFTER_DEFAULT_S: u32 = 1;

macro_rules! simple_errors {
    ($($(#[$doc:meta])* $name:ident => $status:ident, $code:literal, $msg:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $name() -> Self {
                Self::new(StatusCode::$status, $code, $msg)
            }
        )*
    };
}

impl ApiError {
    /// Any status and code; prefer the named constructors.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_s: None,
        }
    }

    /// Replace the human sentence.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Add one `details` member.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value.into());
        self
    }

    /// Set `Retry-After` (and `details.retry_after_s`).
    pub fn with_retry_after(mut self, retry_after_s: u32) -> Self {
        self.retry_after_s = Some(retry_after_s);
        self.with_detail("retry_after_s", retry_after_s)
    }

    /// `400 invalid_request` naming the offending field (`details.field`).
    pub fn invalid_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_detail("field", field)
    }

    /// `400 invalid_request` with no single field to blame (malformed JSON, for instance).
    pub fn invalid_request_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// `409 dose_interval` with `details.earliest_date` (`YYYY-MM-DD`).
    pub fn dose_interval(earliest_date: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "dose_interval",
            "The second dose is not due yet.",
        )
        .with_detail("earliest_date", earliest_date)
    }

    /// `401 otp_invalid` with `details.attempts_left`.
    pub fn otp_invalid(attempts_left: u32) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "otp_invalid",
            "The OTP is not correct.",
        )
        .with_detail("attempts_left", attempts_left)
    }

    /// `429 too_many_requests` with `Retry-After`.
    pub fn too_many_requests(retry_after_s: u32) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests; retry later.",
        )
        .with_retry_after(retry_after_s)
    }

    /// `429 otp_resend_too_soon` with `Retry-After`.
    pub fn otp_resend_too_soon(retry_after_s: u32) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "otp_resend_too_soon",
            "An OTP was sent moments ago; wait before asking again.",
        )
        .with_retry_after(retry_after_s)
    }

    /// `429 otp_limit_reached` with `Retry-After`.
    pub fn otp_limit_reached(retry_after_s: u32) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "otp_limit_reached",
            "Too many OTPs were requested for this mobile number.",
        )
        .with_retry_after(retry_after_s)
    }

    /// `503 overloaded` with `Retry-After`.
    pub fn overloaded(retry_after_s: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "The service is busy; retry later.",
        )
        .with_retry_after(retry_after_s)
    }

    /// `503 store_unavailable` with `Retry-After`.
    pub fn store_unavailable(retry_after_s: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "The change could not be saved; nothing was changed. Retry later.",
        )
        .with_retry_after(retry_after_s)
    }

    /// `503 store_unavailable` with `details.outcome: "unknown"` and `Retry-After`: the change
    /// was handed to the store but its commit had not ended when the answer was due, so it may
    /// yet be applied. (Without `outcome`, `store_unavailable` means nothing was changed.)
    pub fn store_outcome_unknown(retry_after_s: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "The change may or may not have been saved. Retry with the same Idempotency-Key \
             to learn which.",
        )
        .with_detail("outcome", "unknown")
        .with_retry_after(retry_after_s)
    }

    /// `503 not_ready` with `details.reason` and `Retry-After`.
    pub fn not_ready(reason: &str, retry_after_s: u32) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "The service is not ready yet.",
        )
        .with_detail("reason", reason)
        .with_retry_after(retry_after_s)
    }

    simple_errors! {
        /// `401 unauthenticated`.
        unauthenticated => UNAUTHORIZED, "unauthenticated", "Authentication is required.";
        /// `401 otp_expired`.
        otp_expired => UNAUTHORIZED, "otp_expired",
            "This OTP transaction has expired or is used up; ask for a new OTP.";
        /// `403 forbidden`.
        forbidden => FORBIDDEN, "forbidden", "This key may not perform this action.";
        /// `403 pass_invalid`.
        pass_invalid => FORBIDDEN, "pass_invalid",
            "The waiting-room pass is not valid for this booking.";
        /// `404 not_found`.
        not_found => NOT_FOUND, "not_found", "No such resource.";
        /// `405 method_not_allowed`.
        method_not_allowed => METHOD_NOT_ALLOWED, "method_not_allowed",
            "This method is not allowed on this path.";
        /// `409 pool_full`.
        pool_full => CONFLICT, "pool_full", "No place is left in this slot.";
        /// `409 already_booked`.
        already_booked => CONFLICT, "already_booked",
            "This person already has a live booking for this dose.";
        /// `409 not_eligible`.
        not_eligible => CONFLICT, "not_eligible", "This person is outside the session's age band.";
        /// `409 dose_sequence`.
        dose_sequence => CONFLICT, "dose_sequence",
            "This dose does not follow the doses on record.";
        /// `409 vaccine_mismatch`.
        vaccine_mismatch => CONFLICT, "vaccine_mismatch",
            "The vaccine differs from the one already received.";
        /// `409 session_closed`.
        session_closed => CONFLICT, "session_closed", "This session is past or cancelled.";
        /// `409 not_open`.
        not_open => CONFLICT, "not_open", "This session is not open for booking yet.";
        /// `409 queue_required`.
        queue_required => CONFLICT, "queue_required",
            "A waiting room is active for this session; join the queue first.";
        /// `409 sold_out`.
        sold_out => CONFLICT, "sold_out", "Everything in this release is booked.";
        /// `409 booking_state`.
        booking_state => CONFLICT, "booking_state",
            "The booking is not in a state that allows this action.";
        /// `409 capacity_below_booked`.
        capacity_below_booked => CONFLICT, "capacity_below_booked",
            "The capacity cannot go below the places already booked.";
        /// `409 id_already_registered`.
        id_already_registered => CONFLICT, "id_already_registered",
            "This photo ID is registered on another account.";
        /// `409 beneficiary_exists`.
        beneficiary_exists => CONFLICT, "beneficiary_exists",
            "This person is already registered on this account.";
        /// `409 beneficiary_limit`.
        beneficiary_limit => CONFLICT, "beneficiary_limit",
            "This account already has the maximum number of beneficiaries.";
        /// `409 beneficiary_in_use`.
        beneficiary_in_use => CONFLICT, "beneficiary_in_use",
            "This beneficiary has bookings or doses and cannot be removed.";
        /// `409 not_vaccinated`.
        not_vaccinated => CONFLICT, "not_vaccinated", "No dose is recorded for this beneficiary.";
        /// `413 payload_too_large`.
        payload_too_large => PAYLOAD_TOO_LARGE, "payload_too_large",
            "The request body is too large.";
        /// `415 unsupported_media_type`.
        unsupported_media_type => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
            "The request body must be JSON (Content-Type: application/json).";
        /// `422 idempotency_key_mismatch`.
        idempotency_key_mismatch => UNPROCESSABLE_ENTITY, "idempotency_key_mismatch",
            "This Idempotency-Key was used with a different request body.";
        /// `428 idempotency_key_required`.
        idempotency_key_required => PRECONDITION_REQUIRED, "idempotency_key_required",
            "This request needs an Idempotency-Key header (1-64 printable ASCII characters).";
        /// `500 internal`.
        internal => INTERNAL_SERVER_ERROR, "internal", "Something went wrong on our side.";
    }

    /// The error for a bare status produced by the framework (routing, body limits, ...), used
    /// to put such responses into the contract shape.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::invalid_request_body("The request is malformed."),
            StatusCode::UNAUTHORIZED => Self::unauthenticated(),
            StatusCode::FORBIDDEN => Self::forbidden(),
            StatusCode::NOT_FOUND => Self::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => Self::method_not_allowed(),
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(),
            StatusCode::UNPROCESSABLE_ENTITY => {
                Self::new(status, "invalid_request", "The request is malformed.")
            }
            StatusCode::TOO_MANY_REQUESTS => Self::too_many_requests(RETRY_AFTER_DEFAULT_S),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
                Self::overloaded(RETRY_AFTER_DEFAULT_S)
            }
            s if s.is_client_error() => {
                Self::new(s, "invalid_request", "The request cannot be served.")
            }
            _ => Self::internal(),
        }
    }

    /// The body for a given request id.
    pub fn body(&self, request_id: &str) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: self.code.to_owned(),
                message: self.message.clone(),
                request_id: request_id.to_owned(),
                details: self.details.clone(),
            },
        }
    }

    /// Render to a response for a given request id (the middleware calls this on the way out).
    pub fn to_response(&self, request_id: &str) -> Response {
        let bytes = serde_json::to_vec(&self.body(request_id)).unwrap_or_else(|_| {
            br#"{"error":{"code":"internal","message":"error","request_id":""}}"#.to_vec()
        });
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match RequestId::current() {
            Some(id) => self.to_response(id.as_str()),
            None => {
                // Outside the request-id scope (a spawned task): the request-id layer fills in
                // the id on the way out.
                let mut response = self.to_response("");
                response
                    .extensions_mut()
                    .insert(crate::middleware::RenderLater(self));
                response
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn load_refusals_carry_retry_after_in_details() {
        for e in [
            ApiError::overloaded(3),
            ApiError::too_many_requests(3),
            ApiError::store_unavailable(3),
            ApiError::not_ready("loading", 3),
        ] {
            assert_eq!(e.retry_after_s, Some(3));
            assert_eq!(e.details.as_ref().unwrap()["retry_after_s"], 3);
            let r = e.to_response("r1");
            assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        }
    }

    #[test]
    fn body_has_contract_shape() {
        let e = ApiError::invalid_request("birth_year", "bad");
        let v = serde_json::to_value(e.body("abc")).unwrap();
        assert_eq!(v["error"]["code"], "invalid_request");
        assert_eq!(v["error"]["request_id"], "abc");
        assert_eq!(v["error"]["details"]["field"], "birth_year");
        let v = serde_json::to_value(ApiError::not_found().body("x")).unwrap();
        assert!(v["error"].get("details").is_none());
    }
}
