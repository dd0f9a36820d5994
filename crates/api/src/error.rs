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

use crate::messages::Language;
use kataar_admission::RefusalKind;

tokio::task_local! {
    /// The id of the request being served by the current task (set by the request-id
    /// middleware for the duration of the handler).
    pub(crate) static CURRENT_REQUEST_ID: RequestId;
    /// The language the current request's answers are written in (from `Accept-Language`, set
    /// by the same middleware).
    pub(crate) static CURRENT_LANGUAGE: Language;
}

/// The language of the request the current task serves (English outside the middleware scope).
pub fn current_language() -> Language {
    CURRENT_LANGUAGE.try_with(|l| *l).unwrap_or_default()
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
    ($($(#[$doc:meta])* $name:ident => $status:ident, $code:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $name() -> Self {
                Self::of(StatusCode::$status, $code)
            }
        )*
        /// The code of every named constructor (the catalogue test checks each has both
        /// languages).
        #[cfg(test)]
        const SIMPLE_CODES: &[&str] = &[$($code),*];
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

    /// Any status and code, with the catalogue's English sentence for the code.
    pub fn of(status: StatusCode, code: &'static str) -> Self {
        Self::new(status, code, crate::messages::english(code))
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
        Self::of(StatusCode::CONFLICT, "dose_interval").with_detail("earliest_date", earliest_date)
    }

    /// `401 otp_invalid` with `details.attempts_left`.
    pub fn otp_invalid(attempts_left: u32) -> Self {
        Self::of(StatusCode::UNAUTHORIZED, "otp_invalid")
            .with_detail("attempts_left", attempts_left)
    }

    /// `429 too_many_requests` with `Retry-After`.
    pub fn too_many_requests(retry_after_s: u32) -> Self {
        Self::of(StatusCode::TOO_MANY_REQUESTS, "too_many_requests").with_retry_after(retry_after_s)
    }

    /// `429 otp_resend_too_soon` with `Retry-After`.
    pub fn otp_resend_too_soon(retry_after_s: u32) -> Self {
        Self::of(StatusCode::TOO_MANY_REQUESTS, "otp_resend_too_soon")
            .with_retry_after(retry_after_s)
    }

    /// `429 otp_limit_reached` with `Retry-After`.
    pub fn otp_limit_reached(retry_after_s: u32) -> Self {
        Self::of(StatusCode::TOO_MANY_REQUESTS, "otp_limit_reached").with_retry_after(retry_after_s)
    }

    /// `503 overloaded` with `Retry-After`.
    pub fn overloaded(retry_after_s: u32) -> Self {
        Self::of(StatusCode::SERVICE_UNAVAILABLE, "overloaded").with_retry_after(retry_after_s)
    }

    /// `503 store_unavailable` with `Retry-After`.
    pub fn store_unavailable(retry_after_s: u32) -> Self {
        Self::of(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
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
        Self::of(StatusCode::SERVICE_UNAVAILABLE, "not_ready")
            .with_detail("reason", reason)
            .with_retry_after(retry_after_s)
    }

    simple_errors! {
        /// `401 unauthenticated`.
        unauthenticated => UNAUTHORIZED, "unauthenticated";
        /// `401 otp_expired`.
        otp_expired => UNAUTHORIZED, "otp_expired";
        /// `403 forbidden`.
        forbidden => FORBIDDEN, "forbidden";
        /// `403 pass_invalid`.
        pass_invalid => FORBIDDEN, "pass_invalid";
        /// `404 not_found`.
        not_found => NOT_FOUND, "not_found";
        /// `405 method_not_allowed`.
        method_not_allowed => METHOD_NOT_ALLOWED, "method_not_allowed";
        /// `409 pool_full`.
        pool_full => CONFLICT, "pool_full";
        /// `409 already_booked`.
        already_booked => CONFLICT, "already_booked";
        /// `409 not_eligible`.
        not_eligible => CONFLICT, "not_eligible";
        /// `409 dose_sequence`.
        dose_sequence => CONFLICT, "dose_sequence";
        /// `409 vaccine_mismatch`.
        vaccine_mismatch => CONFLICT, "vaccine_mismatch";
        /// `409 session_closed`.
        session_closed => CONFLICT, "session_closed";
        /// `409 not_open`.
        not_open => CONFLICT, "not_open";
        /// `409 queue_required`.
        queue_required => CONFLICT, "queue_required";
        /// `409 sold_out`.
        sold_out => CONFLICT, "sold_out";
        /// `409 booking_state`.
        booking_state => CONFLICT, "booking_state";
        /// `409 capacity_below_booked`.
        capacity_below_booked => CONFLICT, "capacity_below_booked";
        /// `409 id_already_registered`.
        id_already_registered => CONFLICT, "id_already_registered";
        /// `409 beneficiary_exists`.
        beneficiary_exists => CONFLICT, "beneficiary_exists";
        /// `409 beneficiary_limit`.
        beneficiary_limit => CONFLICT, "beneficiary_limit";
        /// `409 beneficiary_in_use`.
        beneficiary_in_use => CONFLICT, "beneficiary_in_use";
        /// `409 not_vaccinated`.
        not_vaccinated => CONFLICT, "not_vaccinated";
        /// `413 payload_too_large`.
        payload_too_large => PAYLOAD_TOO_LARGE, "payload_too_large";
        /// `415 unsupported_media_type`.
        unsupported_media_type => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type";
        /// `422 idempotency_key_mismatch`.
        idempotency_key_mismatch => UNPROCESSABLE_ENTITY, "idempotency_key_mismatch";
        /// `428 idempotency_key_required`.
        idempotency_key_required => PRECONDITION_REQUIRED, "idempotency_key_required";
        /// `500 internal`.
        internal => INTERNAL_SERVER_ERROR, "internal";
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

    /// The sentence in a language: the catalogue's Hindi sentence for the code when Hindi is
    /// asked for, else this error's (possibly refined) English sentence.
    pub fn message_in(&self, language: Language) -> &str {
        match language {
            Language::Hi => {
                crate::messages::message(self.code, Language::Hi).unwrap_or(&self.message)
            }
            Language::En => &self.message,
        }
    }

    /// The body for a given request id, in the current request's language.
    pub fn body(&self, request_id: &str) -> ErrorBody {
        self.body_in(request_id, current_language())
    }

    /// The body for a given request id in a given language.
    pub fn body_in(&self, request_id: &str, language: Language) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: self.code.to_owned(),
                message: self.message_in(language).to_owned(),
                request_id: request_id.to_owned(),
                details: self.details.clone(),
            },
        }
    }

    /// Render to a response for a given request id (the middleware calls this on the way out),
    /// in the current request's language (`Content-Language` says which).
    pub fn to_response(&self, request_id: &str) -> Response {
        let language = current_language();
        let bytes = serde_json::to_vec(&self.body_in(request_id, language)).unwrap_or_else(|_| {
            br#"{"error":{"code":"internal","message":"error","request_id":""}}"#.to_vec()
        });
        json_error_response(self.status, bytes, language, self.retry_after_s)
    }
}

/// An error answer: the JSON body with its content type, language and `Retry-After` if any.
fn json_error_response(
    status: StatusCode,
    body: Vec<u8>,
    language: Language,
    retry_after_s: Option<u32>,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(language.tag()),
    );
    if let Some(s) = retry_after_s {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    response
}

/// The answer to a load refusal (`429 too_many_requests`, `503 overloaded`, `503
/// store_unavailable`, as admission decides them) with the catalogue's sentence: the one answer a server under load gives most, so it is written
/// from bytes rendered once per code and language, with only the request id and
/// `retry_after_s` put in. The same bytes and headers as the [`ApiError`] of that code with
/// [`ApiError::with_retry_after`] (a test holds them equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadRefusal(pub RefusalKind);

impl LoadRefusal {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
    }

    /// The same answer as an [`ApiError`].
    pub fn error(self, retry_after_s: u32) -> ApiError {
        ApiError::of(self.status(), self.0.code()).with_retry_after(retry_after_s)
    }

    /// The body up to the request id's opening quote, for one language.
    fn head(self, language: Language) -> &'static [u8] {
        static HEADS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let heads = HEADS.get_or_init(|| {
            let mut heads = Vec::new();
            for kind in RefusalKind::ALL {
                for language in [Language::En, Language::Hi] {
                    let error = LoadRefusal(kind).error(RETRY_AFTER_DEFAULT_S);
                    let mut head = br#"{"error":{"code":"#.to_vec();
                    push_json_str(&mut head, kind.code());
                    head.extend_from_slice(br#","message":"#);
                    push_json_str(&mut head, error.message_in(language));
                    head.extend_from_slice(br#","request_id":"#);
                    heads.push(head);
                }
            }
            heads
        });
        let index = self.0.index() * 2 + usize::from(language == Language::Hi);
        heads.get(index).map_or(&[][..], Vec::as_slice)
    }

    /// The answer for the current request (its id and language), with `Retry-After`.
    pub fn to_response(self, retry_after_s: u32) -> Response {
        match RequestId::current() {
            Some(id) => self.to_response_for(id.as_str(), current_language(), retry_after_s),
            // Outside the request-id scope the middleware renders it on the way out.
            None => self.error(retry_after_s).into_response(),
        }
    }

    /// The answer for a given request id and language.
    pub fn to_response_for(
        self,
        request_id: &str,
        language: Language,
        retry_after_s: u32,
    ) -> Response {
        let head = self.head(language);
        let mut body = Vec::with_capacity(head.len() + request_id.len() + 48);
        body.extend_from_slice(head);
        push_json_str(&mut body, request_id);
        body.extend_from_slice(br#","details":{"retry_after_s":"#);
        // Writing a number into a `Vec` cannot fail.
        let _ = std::io::Write::write_fmt(&mut body, format_args!("{retry_after_s}"));
        body.extend_from_slice(b"}}}");
        json_error_response(self.status(), body, language, Some(retry_after_s))
    }
}

/// Appends `s` as a JSON string literal (quotes and escapes as `serde_json` writes them).
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
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
    fn load_refusals_from_preformatted_bytes_equal_the_rendered_error() {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for kind in RefusalKind::ALL.map(LoadRefusal) {
            for language in [Language::En, Language::Hi] {
                for retry in [1, 7, 3600, u32::MAX] {
                    for id in ["0123abcd", "client \"id\" \\ ü", ""] {
                        let fast = kind.to_response_for(id, language, retry);
                        let error = kind.error(retry);
                        let slow_body = serde_json::to_vec(&error.body_in(id, language)).unwrap();
                        assert_eq!(fast.status(), error.status);
                        assert_eq!(fast.headers()[header::RETRY_AFTER], retry.to_string());
                        assert_eq!(fast.headers()[header::CONTENT_LANGUAGE], language.tag());
                        assert_eq!(fast.headers()[header::CONTENT_TYPE], "application/json");
                        let bytes = rt.block_on(fast.into_body().collect()).unwrap().to_bytes();
                        assert_eq!(
                            std::str::from_utf8(&bytes).unwrap(),
                            std::str::from_utf8(&slow_body).unwrap(),
                            "{kind:?} {language:?} {retry} {id:?}"
                        );
                    }
                }
            }
        }
    }

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
    fn every_constructor_has_both_languages() {
        let built = [
            ApiError::invalid_request("f", "x"),
            ApiError::dose_interval("2026-01-01"),
            ApiError::otp_invalid(1),
            ApiError::too_many_requests(1),
            ApiError::otp_resend_too_soon(1),
            ApiError::otp_limit_reached(1),
            ApiError::overloaded(1),
            ApiError::store_unavailable(1),
            ApiError::not_ready("r", 1),
        ];
        let codes = ApiError::SIMPLE_CODES
            .iter()
            .copied()
            .chain(built.iter().map(|e| e.code));
        for code in codes {
            let m = crate::messages::lookup(code);
            assert!(m.is_some(), "{code} has no catalogue entry");
        }
        for status in 400..=599u16 {
            if let Ok(s) = StatusCode::from_u16(status) {
                let code = ApiError::for_status(s).code;
                assert!(crate::messages::lookup(code).is_some(), "{code}");
            }
        }
    }

    #[test]
    fn hindi_answers_use_the_catalogue_and_keep_details() {
        let e = ApiError::invalid_request("birth_year", "birth_year must be between 1900 and 2026");
        let hi = serde_json::to_value(e.body_in("r", Language::Hi)).unwrap();
        assert_eq!(hi["error"]["message"], "अनुरोध सही नहीं है।");
        assert_eq!(hi["error"]["details"]["field"], "birth_year");
        assert_eq!(hi["error"]["code"], "invalid_request");
        let en = serde_json::to_value(e.body_in("r", Language::En)).unwrap();
        assert_eq!(
            en["error"]["message"],
            "birth_year must be between 1900 and 2026"
        );
        assert_eq!(
            ApiError::pool_full().message,
            "No place is left in this slot."
        );
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
