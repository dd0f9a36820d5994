//! The layers every request runs under, put around the whole router by [`wrap`] (after
//! [`apply`] prepared it).
//!
//! Outermost first:
//! 1. **request id**: echo `X-Request-Id` if the client sent 1–64 visible ASCII characters, else
//!    generate one (the server's own id is generated either way, [`RequestId::server_id`], and is
//!    what the audit log records); insert it as a request extension ([`RequestId`]), run the
//!    request inside the task-local scope [`ApiError`] reads, and set the header on every
//!    response. The same scope holds the answer's [`Language`] from `Accept-Language` (error
//!    messages follow it).
//! 2. **metrics**: `kataar_http_requests_total{route,method,status}` and
//!    `kataar_http_request_duration_seconds{route,method}`; `route` is the matched template or
//!    `unmatched` (never the raw path; also an answer given before routing, such as a body over
//!    its bound or too slow); a request dropped because the client went away is counted
//!    with status `499`. Handles are registered once per label set and found again.
//! 3. **panic catcher**: a panic becomes `500 internal` in the contract shape (logged at ERROR).
//! 4. **error normaliser**: an error status whose body is not JSON (axum's own 404, 405, 413,
//!    422 rejections) is rewritten into the contract shape, keeping its other headers (`Allow`).
//!    A handler that must send a non-JSON error (the CoWIN compatibility layer's plain-text 401)
//!    inserts the [`KeepErrorBody`] response extension.
//! 5. **request timeout**: past `request_timeout` the handler future is dropped and the answer
//!    is `503 overloaded` with `Retry-After: 1` (not 408: the client did nothing wrong, the
//!    server was too slow, and 503 + Retry-After is what load refusals look like everywhere in
//!    the contract). Dropping a handler cancels it: handlers that write must spawn or shield
//!    their commit wait (see [`crate::server`]).
//!
//! 6. **body read**: a request body (anything but a known-empty one) is read whole, at most
//!    `body_bytes_max` bytes (`413 payload_too_large` beyond) within `body_read_timeout`
//!    (`400 invalid_request` with `Connection: close` past it), before the router and so before
//!    admission: a client trickling its body holds a connection, never a lane's in-flight place.
//!    Handlers then read the buffered body at once.
//!
//! Plus the body limit ([`BodyLimit`] and axum's `DefaultBodyLimit`, both `body_bytes_max`) and
//! the fallback `404 not_found`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::{ApiError, RequestId, CURRENT_LANGUAGE, CURRENT_REQUEST_ID};
use crate::extract::BodyLimit;
use crate::messages::Language;
use crate::metrics::{
    method_label, HTTP_BODY_READ_TIMEOUTS_TOTAL, HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS,
};
use crate::server::ServerLimits;
use http_body_util::BodyExt;

/// The request-id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest client-sent request id that is echoed.
pub const REQUEST_ID_LEN_MAX: usize = 64;
/// `Retry-After` for a request that hit `request_timeout`.
pub const TIMEOUT_RETRY_AFTER_S: u32 = 1;

/// Response extension: leave this error response's body alone (do not rewrite it into the v1
/// shape). For the compatibility layer's own error formats.
#[derive(Clone, Copy, Debug)]
pub struct KeepErrorBody;

/// Marker left by [`ApiError::into_response`] when it ran outside the request-id scope: the
/// request-id layer re-renders the body with the right id.
#[derive(Clone, Debug)]
pub(crate) struct RenderLater(pub(crate) ApiError);

/// Prepares `router` for [`wrap`]: sets the fallback (so the router passed in must not have
/// one) and, on each route, the one per-route step the outer layers need: the matched route
/// template, for the metrics label. Call it once, after all routes are added.
pub fn apply<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.fallback(fallback).layer(RouteLabelLayer)
}

/// Puts every layer above around the whole router, as one service: they run once per request
/// whatever the route, instead of being cloned into every route's stack (which cost about 75
/// allocations a request, `benches/tests/allocations.rs`).
pub fn wrap<R>(router: R, limits: &ServerLimits) -> Router
where
    R: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    R::Future: Send + 'static,
{
    let service = tower::ServiceBuilder::new()
        .layer(DefaultBodyLimit::max(limits.body_bytes_max))
        .layer(Extension(BodyLimit(limits.body_bytes_max)))
        .layer(from_fn(request_id))
        .layer(from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(normalize_errors))
        .layer(from_fn_with_state(limits.request_timeout, request_timeout))
        .layer(from_fn_with_state(
            BodyRead {
                bytes_max: limits.body_bytes_max,
                timeout: limits.body_read_timeout,
            },
            read_body,
        ))
        .service(router);
    Router::new().fallback_service(service)
}

/// Where the route's template goes once the router has matched it (a request extension set by
/// the metrics layer, filled by [`RouteLabel`]).
#[derive(Clone, Default)]
struct RouteSlot(Arc<std::sync::OnceLock<MatchedPath>>);

/// The per-route layer that hands the matched template to the metrics layer outside the router.
#[derive(Clone, Copy)]
struct RouteLabelLayer;

impl<S> tower::Layer<S> for RouteLabelLayer {
    type Service = RouteLabel<S>;
    fn layer(&self, inner: S) -> RouteLabel<S> {
        RouteLabel(inner)
    }
}

#[derive(Clone)]
struct RouteLabel<S>(S);

impl<S> tower::Service<Request> for RouteLabel<S>
where
    S: tower::Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if let (Some(slot), Some(path)) = (
            req.extensions().get::<RouteSlot>(),
            req.extensions().get::<MatchedPath>(),
        ) {
            let _ = slot.0.set(path.clone());
        }
        self.0.call(req)
    }
}

async fn fallback() -> ApiError {
    ApiError::not_found()
}

/// Whether a client-sent id is usable: 1–64 visible ASCII characters.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= REQUEST_ID_LEN_MAX
        && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A fresh request id (32 hex digits): a random prefix drawn once per process and a counter
/// passed through a bijection keyed once per process (times a random odd number, then a
/// random XOR), so an id costs no system call, no two requests of a process share one, and
/// ids tell nobody how many requests the server has answered.
pub fn new_request_id() -> String {
    static KEYS: std::sync::OnceLock<(u64, u64, u64)> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (prefix, odd, mask) =
        *KEYS.get_or_init(|| (rand::random(), rand::random::<u64>() | 1, rand::random()));
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scrambled = n.wrapping_mul(odd) ^ mask;
    format!("{prefix:016x}{scrambled:016x}")
}

async fn request_id(req: Request, next: Next) -> Response {
    let language = Language::from_accept_language(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    CURRENT_LANGUAGE
        .scope(language, request_id_scoped(req, next))
        .await
}

async fn request_id_scoped(mut req: Request, next: Next) -> Response {
    let server: Arc<str> = Arc::from(new_request_id());
    let id = match req.headers().get(REQUEST_ID_HEADER) {
        Some(v) if is_acceptable_request_id(v.as_bytes()) => {
            RequestId::echoed(Arc::from(v.to_str().unwrap_or_default()), server)
        }
        _ => RequestId::generated(server),
    };
    req.extensions_mut().insert(id.clone());
    let mut response = CURRENT_REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Some(RenderLater(err)) = response.extensions_mut().remove::<RenderLater>() {
        let old = std::mem::replace(&mut response, err.to_response(id.as_str()));
        copy_other_headers(old.headers(), response.headers_mut());
    }
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn copy_other_headers(from: &http::HeaderMap, to: &mut http::HeaderMap) {
    for (name, value) in from {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && !to.contains_key(name)
        {
            to.insert(name.clone(), value.clone());
        }
    }
}

/// The metric handles of one route and method: its duration histogram and a request counter
/// per status seen.
struct RouteHandles {
    method: &'static str,
    duration: metrics::Histogram,
    by_status: Vec<(String, metrics::Counter)>,
}

/// Handles registered once per (route template, method, status) and found again by a read
/// lock, so counting a request allocates nothing (`metrics::counter!` with owned labels built
/// the label strings and the key at every request). Bounded: routes are templates (or
/// `unmatched`), methods and statuses a small set.
static REQUEST_HANDLES: std::sync::LazyLock<
    parking_lot::RwLock<std::collections::HashMap<String, Vec<RouteHandles>>>,
> = std::sync::LazyLock::new(Default::default);

fn request_handles(
    route: &str,
    method: &'static str,
    status: &str,
) -> (metrics::Counter, metrics::Histogram) {
    let found = |all: &std::collections::HashMap<String, Vec<RouteHandles>>| {
        let h = all.get(route)?.iter().find(|h| h.method == method)?;
        let (_, c) = h.by_status.iter().find(|(s, _)| s == status)?;
        Some((c.clone(), h.duration.clone()))
    };
    if let Some(handles) = found(&REQUEST_HANDLES.read()) {
        return handles;
    }
    let mut all = REQUEST_HANDLES.write();
    let of_route = all.entry(route.to_owned()).or_default();
    let at = match of_route.iter().position(|h| h.method == method) {
        Some(i) => i,
        None => {
            of_route.push(RouteHandles {
                method,
                duration: metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS,
                    "route" => route.to_owned(), "method" => method),
                by_status: Vec::new(),
            });
            of_route.len() - 1
        }
    };
    let h = &mut of_route[at];
    let counter = match h.by_status.iter().find(|(s, _)| s == status) {
        Some((_, c)) => c.clone(),
        None => {
            let c = metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.to_owned(),
                "method" => method, "status" => status.to_owned());
            h.by_status.push((status.to_owned(), c.clone()));
            c
        }
    };
    (counter, h.duration.clone())
}

/// Ends a request's metrics: on completion with its status, on drop (client gone) with `499`.
struct RequestMetrics {
    route: RouteSlot,
    method: &'static str,
    started: tokio::time::Instant,
    done: bool,
}

impl RequestMetrics {
    fn finish(&mut self, status: &str) {
        self.done = true;
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let route = self.route.0.get().map_or("unmatched", |m| m.as_str());
        let (requests, duration) = request_handles(route, self.method, status);
        requests.increment(1);
        duration.record(elapsed_s);
    }
}

impl Drop for RequestMetrics {
    fn drop(&mut self) {
        if !self.done {
            self.finish("499");
        }
    }
}

async fn record_metrics(mut req: Request, next: Next) -> Response {
    let route = RouteSlot::default();
    req.extensions_mut().insert(route.clone());
    let mut guard = RequestMetrics {
        route,
        method: method_label(req.method()),
        started: tokio::time::Instant::now(),
        done: false,
    };
    let response = next.run(req).await;
    guard.finish(response.status().as_str());
    response
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(non-text panic payload)");
    tracing::error!(panic = what, "handler panicked; answered 500 internal");
    ApiError::internal().into_response()
}

async fn normalize_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<KeepErrorBody>().is_some()
        || response.extensions().get::<RenderLater>().is_some()
        || is_json(response.headers())
    {
        return response;
    }
    let mut fixed = ApiError::for_status(status).into_response();
    copy_other_headers(response.headers(), fixed.headers_mut());
    fixed
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|e| e == "application/json" || e.ends_with("+json"))
}

async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            ApiError::overloaded(TIMEOUT_RETRY_AFTER_S)
                .with_message("The request took too long; retry later.")
                .into_response()
        }
    }
}

/// The bounds of [`read_body`].
#[derive(Clone, Copy, Debug)]
struct BodyRead {
    bytes_max: usize,
    timeout: Duration,
}

async fn read_body(State(bounds): State<BodyRead>, req: Request, next: Next) -> Response {
    if hyper::body::Body::size_hint(req.body()).exact() == Some(0) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, bounds.bytes_max);
    match tokio::time::timeout(bounds.timeout, limited.collect()).await {
        Ok(Ok(collected)) => {
            let body = axum::body::Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            ApiError::payload_too_large().into_response()
        }
        Ok(Err(_)) => close(ApiError::invalid_request_body(
            "The request body could not be read.",
        )),
        Err(_) => {
            metrics::counter!(HTTP_BODY_READ_TIMEOUTS_TOTAL).increment(1);
            close(ApiError::invalid_request_body(format!(
                "The request body did not arrive within {} s.",
                bounds.timeout.as_secs()
            )))
        }
    }
}

/// `err` as a response that closes the connection.
fn close(err: ApiError) -> Response {
    let mut response = err.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_acceptance() {
        assert!(is_acceptable_request_id(b"abc-123_XYZ"));
        assert!(!is_acceptable_request_id(b""));
        assert!(!is_acceptable_request_id(b"has space"));
        assert!(!is_acceptable_request_id(&[b'a'; 65]));
        assert!(is_acceptable_request_id(&[b'a'; 64]));
        assert!(!is_acceptable_request_id("é".as_bytes()));
    }

    #[test]
    fn request_ids_are_distinct_hex_and_do_not_count_up() {
        let ids: Vec<String> = (0..10_000).map(|_| new_request_id()).collect();
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // The counter half of consecutive ids is scrambled, not a run of zeros and a count.
        let zeros = ids
            .iter()
            .filter(|id| id[16..].starts_with("00000000"))
            .count();
        assert!(zeros < 10, "{zeros} ids with a zero-led counter half");
    }
}
