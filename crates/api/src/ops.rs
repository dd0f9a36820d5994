//! Operations routes: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//!
//! - `GET /healthz` → `200 {"status":"ok"}` while the process runs.
//! - `GET /readyz` → `200 {"status":"ready"}` once [`Readiness::set_ready`] was called and
//!   while its probe (the server's live state) passes, else `503 not_ready` with
//!   `details.reason` and `Retry-After`.
//! - `GET /metrics` → Prometheus text (on the main port unless `metrics_listen` moves it).
//! - `GET /openapi.json` → the OpenAPI 3.1 document: [`openapi_base`] (these routes and the
//!   error schema) merged with the handlers' documents by the caller.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::RwLock;
use serde::Serialize;
use utoipa::OpenApi;

use crate::error::{ApiError, ErrorBody, ErrorObject};

/// `Retry-After` while not ready.
pub const NOT_READY_RETRY_AFTER_S: u32 = 1;

/// A live check of the state readiness derives from: `Err(reason)` when not ready.
pub type ReadinessProbe = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Whether the process may take traffic. Starts not ready (`"starting"`). Cheap to clone.
/// Ready means: [`Readiness::set_ready`] was called (start-up is over) and the probe, if one
/// is set ([`Readiness::set_probe`]), passes at the moment of the request.
#[derive(Clone)]
pub struct Readiness {
    /// `None` when ready, else why not.
    reason: Arc<RwLock<Option<String>>>,
    probe: Arc<RwLock<Option<ReadinessProbe>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("status", &self.status())
            .finish()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// A handle that reports not ready (`"starting"`) until [`Readiness::set_ready`].
    pub fn new() -> Self {
        Self {
            reason: Arc::new(RwLock::new(Some("starting".to_owned()))),
            probe: Arc::new(RwLock::new(None)),
        }
    }

    /// Derive readiness from live state too: once start-up is over, `/readyz` answers what
    /// `probe` says at that moment.
    pub fn set_probe(&self, probe: ReadinessProbe) {
        *self.probe.write() = Some(probe);
    }

    /// Report ready.
    pub fn set_ready(&self) {
        *self.reason.write() = None;
    }

    /// Report not ready, with a reason shown to clients (keep it free of internals, e.g.
    /// `"loading inventory"`, `"store unreachable"`).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.reason.write() = Some(reason.into());
    }

    /// `Ok(())` when ready, else the reason.
    pub fn status(&self) -> Result<(), String> {
        if let Some(reason) = &*self.reason.read() {
            return Err(reason.clone());
        }
        let probe = self.probe.read().clone();
        match probe {
            Some(probe) => probe(),
            None => Ok(()),
        }
    }
}

/// What the ops routes serve.
#[derive(Clone)]
pub struct Ops {
    /// Readiness reported by `/readyz`.
    pub readiness: Readiness,
    /// The Prometheus handle from [`crate::metrics::init_metrics`].
    pub metrics: PrometheusHandle,
    /// Serve `/metrics` on the main router (false when `metrics_listen` is set).
    pub metrics_on_main: bool,
    /// The complete OpenAPI document, rendered once.
    openapi_json: Bytes,
}

impl Ops {
    /// Build from the parts; `openapi` is [`openapi_base`] merged with the handlers' docs.
    pub fn new(
        readiness: Readiness,
        metrics: PrometheusHandle,
        metrics_on_main: bool,
        openapi: &utoipa::openapi::OpenApi,
    ) -> Self {
        let openapi_json = Bytes::from(openapi.to_json().unwrap_or_else(|err| {
            tracing::error!(error = %err, "OpenAPI document did not serialise");
            "{}".to_owned()
        }));
        Self {
            readiness,
            metrics,
            metrics_on_main,
            openapi_json,
        }
    }
}

/// `{"status": "..."}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: &'static str,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The process runs", body = StatusBody)))]
pub async fn healthz() -> axum::Json<StatusBody> {
    axum::Json(StatusBody { status: "ok" })
}

/// Readiness.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready for traffic", body = StatusBody),
    (status = 503, description = "`not_ready`, with `details.reason`", body = ErrorBody,
        headers(("Retry-After" = u32, description = "Whole seconds to wait")))))]
pub fn readyz(readiness: &Readiness) -> Response {
    match readiness.status() {
        Ok(()) => axum::Json(StatusBody { status: "ready" }).into_response(),
        Err(reason) => ApiError::not_ready(&reason, NOT_READY_RETRY_AFTER_S).into_response(),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition",
        content_type = "text/plain")))]
pub fn metrics_text(handle: &PrometheusHandle) -> Response {
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document",
        content_type = "application/json")))]
pub fn openapi_json(ops: &Ops) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ops.openapi_json.clone(),
    )
        .into_response()
}

/// The ops part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kataar",
        description = "Slot booking for public drives. Errors always have the shape \
            `ErrorBody`; see the error catalogue in the README. `429` and `503` answers carry \
            `Retry-After` (whole seconds). JSON bodies are objects with exactly the documented \
            members; integers are written without a fraction (`2`, not `2.0`). Rules that span \
            several fields or depend on stored data are given in words where they apply \
            (exactly one of `district_id`/`pincode`/`centre_id`; a session date not in the \
            past; a district of the given state; the Aadhaar check digit; an \
            `Idempotency-Key` reused with another body is `422`)."
    ),
    paths(healthz, readyz, metrics_text, openapi_json),
    components(schemas(ErrorBody, ErrorObject, StatusBody)),
    tags((name = "ops", description = "Health, readiness, metrics, this document"))
)]
pub struct OpsDoc;

/// The base OpenAPI document (ops paths, `ErrorBody`). Merge handler docs into it with
/// `utoipa::openapi::OpenApi::merge` before building [`Ops`].
pub fn openapi_base() -> utoipa::openapi::OpenApi {
    OpsDoc::openapi()
}

/// The ops routes, for any router state.
pub fn ops_routes<S>(ops: &Ops) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let readiness = ops.readiness.clone();
    let doc = ops.clone();
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move { readyz(&readiness) }
            }),
        )
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { openapi_json(&doc) }
            }),
        );
    if ops.metrics_on_main {
        router = router.merge(metrics_routes(ops.metrics.clone()));
    }
    router
}

/// Just `/metrics` (for the separate `metrics_listen` address, or merged by [`ops_routes`]).
pub fn metrics_routes<S>(handle: PrometheusHandle) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { metrics_text(&handle) }
        }),
    )
}
