//! The accept loop and per-connection driver (hyper 1 HTTP/1.1 over hyper-util).
//!
//! [`serve`] owns the connection-level limits; request-level ones are layers
//! ([`crate::middleware`]).
//!
//! - **Connection cap** (`connections_max`): each connection holds a semaphore permit moved into
//!   its task. At the cap the accept loop never waits: the excess connection is accepted and
//!   handed to a small refusal task that reads its request head (at most
//!   [`REFUSE_HEAD_BYTES_MAX`] bytes, [`REFUSE_IO_TIMEOUT`]), answers `503 overloaded` in the
//!   contract shape with `Retry-After: 1` and `Connection: close`, and closes. At most
//!   [`REFUSE_INFLIGHT_MAX`] refusals run at once; past that the connection is closed at once.
//!   Idle keep-alive connections are not evicted to make room: they go after `keepalive_idle`.
//! - **Header read timeout** (`header_read_timeout`): measured by this driver, not hyper (hyper's
//!   own timer also runs while a keep-alive connection is idle, which would make it the idle
//!   timeout). A new connection must deliver its first request head within `header_read_timeout`
//!   of being accepted; on a kept-alive connection, once the first byte of a request head
//!   arrives, the rest must follow within `header_read_timeout`. Otherwise the connection is
//!   closed (no response).
//! - **Keep-alive idle timeout** (`keepalive_idle`): a connection with no request in flight and
//!   no bytes of a new request for that long is closed.
//! - `TCP_NODELAY` on every connection.
//! - **Graceful shutdown**: when the `shutdown` future completes the listener is dropped (no new
//!   connections), every connection is told to finish its in-flight request and close (hyper
//!   `graceful_shutdown`: idle ones close at once), and [`serve`] waits up to `shutdown_grace`;
//!   connections still open then are dropped.
//!
//! **Cancellation:** hyper drops a request's handler future when its client disconnects, and
//! the request timeout and forced shutdown drop it too. A handler that writes must not let that
//! cancel a commit half-way: spawn the commit wait (`tokio::spawn`) and await the join handle, so
//! the write completes and the in-memory effect is either committed or undone whatever the
//! client does.
//!
//! The service sees every request with a `ConnectInfo<SocketAddr>` extension (the peer address;
//! axum's `ConnectInfo` extractor works).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::metrics::{
    HTTP_CONNECTIONS_CLOSED_TOTAL, HTTP_CONNECTIONS_OPEN, HTTP_CONNECTIONS_REFUSED_TOTAL,
};
use crate::middleware::new_request_id;

/// At most this many over-the-cap connections are being answered `503` at once; beyond it they
/// are closed without an answer (a refusal must cost less than a connection).
pub const REFUSE_INFLIGHT_MAX: usize = 256;
/// How much of a refused connection's request head is read before the `503` is written.
pub const REFUSE_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Time allowed to read a refused connection's head, and again to write the `503`.
pub const REFUSE_IO_TIMEOUT: Duration = Duration::from_secs(1);
/// `Retry-After` on the refusal at the connection cap.
pub const REFUSE_RETRY_AFTER_S: u32 = 1;
/// Pause after an `accept` error (e.g. out of file descriptors) so the loop does not spin.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// After the grace period, how long to wait for dropped connections' tasks to end.
pub const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Connection-level limits (config keys `header_read_timeout_s`, `request_timeout_s`,
/// `keepalive_idle_s`, `body_bytes_max`, `connections_max`, `shutdown_grace_s`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time for a request head to arrive (see the module docs).
    pub header_read_timeout: Duration,
    /// Time for a handler to answer (then `503 overloaded`).
    pub request_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub keepalive_idle: Duration,
    /// Largest request body (`413 payload_too_large` beyond).
    pub body_bytes_max: usize,
    /// Connections served at once (beyond: a fast `503`).
    pub connections_max: u32,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl ServerLimits {
    /// The documented defaults (api.md, Operations).
    pub const DEFAULT: ServerLimits = ServerLimits {
        header_read_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        keepalive_idle: Duration::from_secs(60),
        body_bytes_max: 65_536,
        connections_max: 20_000,
        shutdown_grace: Duration::from_secs(20),
    };
}

/// Serve `app` on `listener` until `shutdown` completes, then drain (see the module docs).
///
/// Accept errors are logged and retried, never returned; the `Result` is for the caller's
/// convenience and future listener errors.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    assert!(
        limits.connections_max > 0,
        "connections_max must be positive"
    );
    let connections = Arc::new(Semaphore::new(limits.connections_max as usize));
    let refusals = Arc::new(Semaphore::new(REFUSE_INFLIGHT_MAX));
    let tracker = TaskTracker::new();
    let drain = CancellationToken::new();
    let force = CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                if !is_per_connection_error(&err) {
                    tracing::warn!(error = %err, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
                continue;
            }
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let conn = Connection {
                    app: app.clone(),
                    builder: builder.clone(),
                    limits: limits.clone(),
                    drain: drain.clone(),
                    force: force.clone(),
                };
                tracker.spawn(conn.run(stream, peer, permit));
            }
            Err(_) => match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    metrics::counter!(HTTP_CONNECTIONS_REFUSED_TOTAL, "how" => "answered")
                        .increment(1);
                    tracker.spawn(refuse(stream, permit));
                }
                Err(_) => {
                    metrics::counter!(HTTP_CONNECTIONS_REFUSED_TOTAL, "how" => "closed")
                        .increment(1);
                    drop(stream);
                }
            },
        }
    }

    drop(listener);
    tracing::info!(open = tracker.len(), "shutting down: draining connections");
    drain.cancel();
    tracker.close();
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "shutdown grace period over; closing remaining connections"
        );
        force.cancel();
        let _ = tokio::time::timeout(FORCED_CLOSE_WAIT, tracker.wait()).await;
    }
    Ok(())
}

/// Errors that concern one connection only (the peer went away before we accepted it).
fn is_per_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Answer a connection over the cap with a fast `503 overloaded` and close it.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut buf = [0u8; 1024];
        while head.len() < REFUSE_HEAD_BYTES_MAX {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(REFUSE_IO_TIMEOUT, read).await;
    let id = new_request_id();
    let error = ApiError::overloaded(REFUSE_RETRY_AFTER_S)
        .with_message("Too many open connections; retry later.");
    let body = serde_json::to_vec(&error.body(&id)).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: {REFUSE_RETRY_AFTER_S}\r\nx-request-id: {id}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSE_IO_TIMEOUT, write).await;
}

/// What one connection task needs.
struct Connection {
    app: Router,
    builder: http1::Builder,
    limits: Arc<ServerLimits>,
    drain: CancellationToken,
    force: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        let _permit = permit;
        metrics::gauge!(HTTP_CONNECTIONS_OPEN).increment(1.0);
        let _open = OpenGauge;
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::new());
        let io = TokioIo::new(TrackedStream {
            inner: stream,
            state: state.clone(),
        });
        let app = self.app;
        let service_state = state.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = InFlight::begin(service_state.clone());
            let router = app.clone();
            async move {
                let response = router.oneshot(req).await;
                drop(in_flight);
                response
            }
        });
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            let deadline = state.deadline(&self.limits);
            let timer = async move {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    break;
                }
                () = self.drain.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = self.force.cancelled() => {
                    metrics::counter!(HTTP_CONNECTIONS_CLOSED_TOTAL, "reason" => "shutdown_forced")
                        .increment(1);
                    break;
                }
                () = state.changed.notified() => {}
                () = timer => {
                    if let Some((at, reason)) = state.deadline(&self.limits) {
                        if Instant::now() >= at {
                            metrics::counter!(HTTP_CONNECTIONS_CLOSED_TOTAL, "reason" => reason)
                                .increment(1);
                            tracing::debug!(%peer, reason, "closing connection");
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Decrements the open-connections gauge when the connection task ends.
struct OpenGauge;

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!(HTTP_CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// Timing state of one connection, shared by its reader, its service and its driver.
struct ConnState {
    /// When the connection was accepted; every `*_ms` below counts from here.
    accepted_at: Instant,
    /// Requests whose handler future is alive.
    in_flight: AtomicU32,
    /// Requests started on this connection.
    started: AtomicU64,
    /// When the last request's handler finished (ms since `accepted_at`).
    idle_since_ms: AtomicU64,
    /// When the first byte of the next request head arrived, plus one (0: none yet).
    head_started_ms_plus1: AtomicU64,
    /// Poked whenever a deadline may have moved.
    changed: Notify,
}

impl ConnState {
    fn new() -> Self {
        Self {
            accepted_at: Instant::now(),
            in_flight: AtomicU32::new(0),
            started: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms_plus1: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted_at.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64, plus: Duration) -> Instant {
        self.accepted_at + Duration::from_millis(ms) + plus
    }

    /// The instant this connection is to be closed, with the reason, if no request is running.
    fn deadline(&self, limits: &ServerLimits) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.started.load(Ordering::Acquire) == 0 {
            return Some((self.at(0, limits.header_read_timeout), "header_timeout"));
        }
        let head = self.head_started_ms_plus1.load(Ordering::Acquire);
        if head > 0 {
            return Some((
                self.at(head - 1, limits.header_read_timeout),
                "header_timeout",
            ));
        }
        let idle = self.idle_since_ms.load(Ordering::Acquire);
        Some((self.at(idle, limits.keepalive_idle), "idle"))
    }

    fn on_bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started_ms_plus1.load(Ordering::Acquire) == 0
        {
            self.head_started_ms_plus1
                .store(self.now_ms() + 1, Ordering::Release);
            self.changed.notify_one();
        }
    }
}

/// Marks one request in flight on its connection; dropped when the handler ends (or is
/// dropped because the client went away).
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.started.fetch_add(1, Ordering::AcqRel);
        state.head_started_ms_plus1.store(0, Ordering::Release);
        state.changed.notify_one();
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// A TCP stream that tells its [`ConnState`] when bytes of a new request head arrive.
struct TrackedStream {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.on_bytes_read();
        }
        result
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Raise the soft open-file limit to the hard limit (one descriptor per connection).
/// Returns `(soft_before, soft_after)`.
#[allow(unsafe_code)]
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` on every platform.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur as u64;
    if limit.rlim_cur >= limit.rlim_max {
        return Ok((before, before));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid `rlimit`; raising the soft limit up to the hard one needs no
    // privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((before, limit.rlim_cur as u64))
}
