//! kataar-api: the HTTP edge of Kataar.
//!
//! # Layout
//!
//! - [`server`]: the accept loop over hyper 1 (connection cap with a fast `503`, header-read and
//!   keep-alive timeouts, `TCP_NODELAY`, graceful shutdown) and [`server::raise_nofile_limit`].
//! - [`middleware`]: the layers every request runs under, one stack around the router
//!   (request id, metrics, panic → `500`, contract-shaped framework errors, request timeout,
//!   body limit, fallback `404`).
//! - [`error`]: [`ApiError`], the catalogue of error codes and their JSON shape.
//! - [`messages`]: the message catalogue (English and Hindi for every code) and the
//!   `Accept-Language` choice between them.
//! - [`extract`]: [`ApiJson`], [`OptionalJson`], [`ApiQuery`], [`ApiPath`], extractors whose
//!   rejections are [`ApiError`]s.
//! - [`ops`]: `/healthz`, `/readyz` ([`Readiness`]), `/metrics`, `/openapi.json`.
//! - [`metrics`]: metric names, buckets and the Prometheus recorder.
//! - [`config`]: [`Config`]: every key, default, and the flag > env > file > default loading.
//!
//! This crate owns HTTP plumbing only. It must never hold business rules or depend on the
//! engine's internals; handlers are added by the caller as an axum `Router<S>` for any state
//! `S` and wrapped by [`build_app`]. It never logs request bodies or `Authorization` values.
//!
//! Wiring, as the binary does it:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use kataar_api::{bind, build_app, init_metrics, openapi_base, run_server};
//! use kataar_api::{Config, Ops, Readiness};
//! let config = Config::defaults();
//! let mut doc = openapi_base(); // doc.merge(HandlersDoc::openapi());
//! let (listener, metrics_listener) = bind(&config).await?;
//! let ops = Ops::new(Readiness::new(), init_metrics(), metrics_listener.is_none(), &doc);
//! let app = build_app(axum::Router::new(), (), &ops, &config.server_limits());
//! run_server(listener, metrics_listener, app, &ops, config.server_limits(), async {}).await
//! # }
//! ```

pub mod config;
pub mod error;
pub mod extract;
pub mod messages;
pub mod metrics;
pub mod middleware;
pub mod ops;
pub mod server;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ConfigError, ConfigOverrides, LogFormat};
pub use error::{current_language, ApiError, ErrorBody, LoadRefusal, RequestId};
pub use extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
pub use messages::Language;
pub use metrics::init_metrics;
pub use middleware::KeepErrorBody;
pub use ops::{openapi_base, Ops, Readiness, ReadinessProbe};
pub use server::{disable_transparent_huge_pages, raise_nofile_limit, serve, ServerLimits};

/// How often histogram upkeep runs on the Prometheus handle.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The complete application router: `api` (the handlers, with state type `S`) plus the ops
/// routes, every middleware layer and the fallback, with `state` applied.
///
/// `api` must not set a fallback (this does). Routes it defines win over nothing: a path it
/// defines that the ops routes also define is a startup panic (axum's overlap check).
pub fn build_app<S>(api: Router<S>, state: S, ops: &Ops, limits: &ServerLimits) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    build_app_with(api, state, ops, limits, tower::layer::util::Identity::new())
}

/// [`build_app`] with `inner` (such as admission) between the outer layers and the router: it
/// runs once per request like them, not cloned into every route.
pub fn build_app_with<S, L>(
    api: Router<S>,
    state: S,
    ops: &Ops,
    limits: &ServerLimits,
    inner: L,
) -> Router
where
    S: Clone + Send + Sync + 'static,
    L: tower::Layer<Router>,
    L::Service: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    let router = api.merge(ops::ops_routes::<S>(ops));
    middleware::wrap(
        inner.layer(middleware::apply(router).with_state(state)),
        limits,
    )
}

/// Bind the main listener and, when `metrics_listen` is set, the metrics one.
pub async fn bind(config: &Config) -> std::io::Result<(TcpListener, Option<TcpListener>)> {
    let main = TcpListener::bind(config.listen).await?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    Ok((main, metrics))
}

/// Serve `app` on `listener` (and `/metrics` alone on `metrics_listener`, if any) until
/// `shutdown` completes, then drain both within `limits.shutdown_grace`. Also runs the metrics
/// recorder's upkeep.
pub async fn run_server(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    app: Router,
    ops: &Ops,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    let waiter = tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let upkeep_handle = ops.metrics.clone();
    let upkeep_stop = stop.clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                () = upkeep_stop.cancelled() => break,
                _ = tick.tick() => upkeep_handle.run_upkeep(),
            }
        }
    });
    let metrics_server = metrics_listener.map(|l| {
        let router = middleware::wrap(
            middleware::apply(ops::metrics_routes::<()>(ops.metrics.clone())),
            &limits,
        );
        tokio::spawn(serve(
            l,
            router,
            limits.clone(),
            stop.clone().cancelled_owned(),
        ))
    });
    let result = serve(listener, app, limits, stop.clone().cancelled_owned()).await;
    stop.cancel();
    waiter.abort();
    let _ = upkeep.await;
    if let Some(handle) = metrics_server {
        let _ = handle.await;
    }
    result
}
