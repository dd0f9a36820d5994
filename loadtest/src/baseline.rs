//! The yardstick servers: the naive booking server (one transaction per request, a default-sized
//! connection pool, no admission control) and a hello-world hyper server (the HTTP ceiling).

use std::convert::Infallible;
use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::pg;

/// deadpool-postgres's usual size on a small box, as most services leave it.
pub const BASELINE_POOL_CONNECTIONS: usize = 8;

/// Errors starting the yardstick servers.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The database URL does not parse.
    #[error("bad database url: {0}")]
    Url(#[from] tokio_postgres::Error),
    /// Schema creation failed.
    #[error("schema: {0}")]
    Schema(#[from] pg::PgError),
    /// Building the pool failed.
    #[error("pool: {0}")]
    Pool(String),
    /// Serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The baseline's booking request: `person_key` is any string (hex or not), used as bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineBooking {
    /// Pool to book.
    pub pool_id: i64,
    /// The person (unique per live booking and dose).
    pub person_key: String,
    /// Dose, default 1.
    #[serde(default = "dose_one")]
    pub dose: i16,
    /// Account, default 0.
    #[serde(default)]
    pub account_id: i64,
}

fn dose_one() -> i16 {
    1
}

fn error(status: StatusCode, code: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": code}});
    (status, Json(body)).into_response()
}

/// One transaction per request: conditional UPDATE of the pool row, INSERT of the booking.
async fn book(State(pool): State<Pool>, Json(req): Json<BaselineBooking>) -> Response {
    match book_tx(&pool, &req).await {
        Ok(Ok(id)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"booking_id": id, "status": "booked"})),
        )
            .into_response(),
        Ok(Err(code)) => error(StatusCode::CONFLICT, code),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

async fn book_tx(
    pool: &Pool,
    req: &BaselineBooking,
) -> Result<Result<i64, &'static str>, anyhow::Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let upd = tx
        .prepare_cached(
            "UPDATE pools SET booked = booked + 1 WHERE pool_id = $1 AND booked < capacity",
        )
        .await?;
    if tx.execute(&upd, &[&req.pool_id]).await? == 0 {
        tx.rollback().await?;
        return Ok(Err("pool_full"));
    }
    let ins = tx
        .prepare_cached(
            "INSERT INTO bookings (person_key, dose, status, pool_id, account_id) \
             VALUES ($1, $2, 'booked', $3, $4) RETURNING booking_id",
        )
        .await?;
    let key = req.person_key.as_bytes();
    match tx
        .query_one(&ins, &[&key, &req.dose, &req.pool_id, &req.account_id])
        .await
    {
        Ok(row) => {
            let id: i64 = row.try_get(0)?;
            tx.commit().await?;
            Ok(Ok(id))
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.rollback().await?;
            Ok(Err("already_booked"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Builds the naive server's router over a pool of [`BASELINE_POOL_CONNECTIONS`].
pub async fn baseline_router(database_url: &str) -> Result<Router, BaselineError> {
    let client = pg::connect(database_url).await?;
    pg::create_baseline_schema(&client).await?;
    let cfg: tokio_postgres::Config = database_url.parse()?;
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(mgr)
        .max_size(BASELINE_POOL_CONNECTIONS)
        .build()
        .map_err(|e| BaselineError::Pool(e.to_string()))?;
    Ok(Router::new()
        .route("/v1/bookings", post(book))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(pool))
}

/// Serves the naive baseline on `listener` until `shutdown` resolves.
pub async fn serve_baseline(
    listener: TcpListener,
    database_url: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BaselineError> {
    let app = baseline_router(database_url).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Serves `hello` to every request on `listener` (plain hyper, HTTP/1.1 keep-alive) until
/// `shutdown` resolves.
pub async fn serve_hello(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BaselineError> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                    b"hello",
                ))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
