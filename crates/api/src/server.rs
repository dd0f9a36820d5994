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
//! - **Per-client-address cap** (`connections_per_client_max`): connections open at once from
//!   one TCP peer address (IPv6: its /64). The excess is answered `429 too_many_requests` with
//!   `Retry-After: 1` the same way, so one host cannot take the whole `connections_max`.
//!   Peers in `trusted_proxy_cidrs` (a proxy speaks for many clients) are not capped per address.
//! - **Idle eviction near the cap**: while at least [`IDLE_EVICT_AT_PCT`] % of
//!   `connections_max` are open, keep-alive connections with no request in flight and no bytes
//!   of a new one are closed at once (`kataar_http_connections_closed_total{reason="evicted"}`),
//!   so idle connections cannot keep working clients out.
//! - **Request head bound** (`header_bytes_max`): hyper's read buffer is capped, so a request
//!   line plus headers larger than this is answered `431` and the connection closed.
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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use kataar_admission::TrustedProxies;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
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
/// Share of `connections_max` (percent) open at which idle keep-alive connections are evicted.
pub const IDLE_EVICT_AT_PCT: u64 = 90;
/// The smallest `header_bytes_max` (hyper's read buffer cannot be smaller).
pub const HEADER_BYTES_MIN: usize = 8 * 1024;
/// IPv6 peers are counted per this many leading bits for `connections_per_client_max`.
pub const CONNECTION_IPV6_PREFIX_BITS: u32 = 64;
/// Pause after an `accept` error (e.g. out of file descriptors) so the loop does not spin.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// After the grace period, how long to wait for dropped connections' tasks to end.
pub const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Connection-level limits (config keys `header_read_timeout_s`, `request_timeout_s`,
/// `keepalive_idle_s`, `body_bytes_max`, `connections_max`, `shutdown_grace_s`,
/// `connections_per_client_max`, `header_bytes_max`, `body_read_timeout_s`,
/// `trusted_proxy_header`, `trusted_proxy_cidrs`).
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
    /// Connections open at once from one peer address (beyond: a fast `429`).
    pub connections_per_client_max: u32,
    /// Largest request head (request line and headers); beyond: `431` and close.
    pub header_bytes_max: usize,
    /// Time for a whole request body to arrive, read before admission (see
    /// [`crate::middleware`]).
    pub body_read_timeout: Duration,
    /// Proxies whose forwarding header is believed; their connections are not capped per
    /// address.
    pub trusted_proxies: TrustedProxies,
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
        connections_per_client_max: 512,
        header_bytes_max: 16 * 1024,
        body_read_timeout: Duration::from_secs(10),
        trusted_proxies: TrustedProxies::NONE,
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
    let per_client = Arc::new(PerClient::default());
    let (pressure_tx, pressure_rx) = watch::channel(false);
    let pressure = Arc::new(Pressure {
        connections: connections.clone(),
        max: u64::from(limits.connections_max),
        tx: pressure_tx,
    });
    let refusals = Arc::new(Semaphore::new(REFUSE_INFLIGHT_MAX));
    let tracker = TaskTracker::new();
    let drain = CancellationToken::new();
    let force = CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.header_bytes_max.max(HEADER_BYTES_MIN))
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
        let client = connection_key(peer.ip());
        let capped = !limits.trusted_proxies.trusts(peer.ip());
        if capped && !per_client.enter(client, limits.connections_per_client_max) {
            refuse_or_close(&tracker, &refusals, stream, Refusal::PerClient);
            continue;
        }
        let slot = ClientSlot {
            per_client: capped.then(|| (per_client.clone(), client)),
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                pressure.update();
                let conn = Connection {
                    app: app.clone(),
                    builder: builder.clone(),
                    limits: limits.clone(),
                    drain: drain.clone(),
                    force: force.clone(),
                    pressure: pressure_rx.clone(),
                };
                let held = Held {
                    permit: Some(permit),
                    pressure: pressure.clone(),
                    _slot: slot,
                };
                tracker.spawn(conn.run(stream, peer, held));
            }
            Err(_) => {
                drop(slot);
                refuse_or_close(&tracker, &refusals, stream, Refusal::Full);
            }
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

/// Why a connection is refused at accept.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// `connections_max` reached: `503 overloaded`.
    Full,
    /// `connections_per_client_max` reached for the peer's address: `429 too_many_requests`.
    PerClient,
}

/// Hands `stream` to a refusal task, or closes it at once when too many refusals run.
fn refuse_or_close(
    tracker: &TaskTracker,
    refusals: &Arc<Semaphore>,
    stream: TcpStream,
    why: Refusal,
) {
    let what = match why {
        Refusal::Full => "answered",
        Refusal::PerClient => "per_client",
    };
    match refusals.clone().try_acquire_owned() {
        Ok(permit) => {
            metrics::counter!(HTTP_CONNECTIONS_REFUSED_TOTAL, "how" => what).increment(1);
            tracker.spawn(refuse(stream, permit, why));
        }
        Err(_) => {
            metrics::counter!(HTTP_CONNECTIONS_REFUSED_TOTAL, "how" => "closed").increment(1);
            drop(stream);
        }
    }
}

/// Answer a refused connection with a fast `503 overloaded` (or `429 too_many_requests`) and
/// close it.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit, why: Refusal) {
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
    let (status_line, error) = match why {
        Refusal::Full => (
            "503 Service Unavailable",
            ApiError::overloaded(REFUSE_RETRY_AFTER_S)
                .with_message("Too many open connections; retry later."),
        ),
        Refusal::PerClient => (
            "429 Too Many Requests",
            ApiError::too_many_requests(REFUSE_RETRY_AFTER_S)
                .with_message("Too many open connections from this address; retry later."),
        ),
    };
    let body = serde_json::to_vec(&error.body(&id)).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\n\
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

/// The key `connections_per_client_max` counts by: the IPv4 address, or the IPv6 /64.
fn connection_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - CONNECTION_IPV6_PREFIX_BITS);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// Open connections per peer address. An entry lives while its address has a connection open,
/// so the map never holds more than `connections_max` entries.
#[derive(Default)]
struct PerClient(parking_lot::Mutex<HashMap<IpAddr, u32>>);

impl PerClient {
    fn enter(&self, key: IpAddr, max: u32) -> bool {
        let mut map = self.0.lock();
        let count = map.entry(key).or_insert(0);
        if *count >= max {
            if *count == 0 {
                map.remove(&key);
            }
            return false;
        }
        *count += 1;
        true
    }

    fn leave(&self, key: IpAddr) {
        let mut map = self.0.lock();
        if let Some(count) = map.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&key);
            }
        }
    }
}

/// A connection's place in [`PerClient`] (none for trusted proxies), given back on drop.
struct ClientSlot {
    per_client: Option<(Arc<PerClient>, IpAddr)>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some((per_client, key)) = self.per_client.take() {
            per_client.leave(key);
        }
    }
}

/// Whether the server is near `connections_max` (idle connections are then evicted).
struct Pressure {
    connections: Arc<Semaphore>,
    max: u64,
    tx: watch::Sender<bool>,
}

impl Pressure {
    /// Recomputes the flag from the open count; wakes connections only when it flips.
    fn update(&self) {
        let open = self
            .max
            .saturating_sub(self.connections.available_permits() as u64);
        let near = open * 100 >= self.max * IDLE_EVICT_AT_PCT;
        self.tx.send_if_modified(|v| {
            let changed = *v != near;
            *v = near;
            changed
        });
    }
}

/// What a served connection holds until it ends: its place under `connections_max` and under
/// its address's cap. Dropping it re-evaluates the pressure.
struct Held {
    permit: Option<OwnedSemaphorePermit>,
    pressure: Arc<Pressure>,
    _slot: ClientSlot,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.pressure.update();
    }
}

/// What one connection task needs.
struct Connection {
    app: Router,
    builder: http1::Builder,
    limits: Arc<ServerLimits>,
    drain: CancellationToken,
    force: CancellationToken,
    pressure: watch::Receiver<bool>,
}

impl Connection {
    /// Drives one connection. The futures it waits on are made once and reused across wakes:
    /// one timer, reset only when the connection's deadline moves, and the drain, force and
    /// deadline-moved waits registered once (the last one again after each time it fires).
    async fn run(self, stream: TcpStream, peer: SocketAddr, held: Held) {
        let Connection {
            app,
            builder,
            limits,
            drain,
            force,
            mut pressure,
        } = self;
        let _held = held;
        metrics::gauge!(HTTP_CONNECTIONS_OPEN).increment(1.0);
        let _open = OpenGauge;
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::new());
        let io = TokioIo::new(TrackedStream {
            inner: stream,
            state: state.clone(),
        });
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
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let drained = drain.cancelled();
        tokio::pin!(drained);
        let forced = force.cancelled();
        tokio::pin!(forced);
        let moved = state.changed.notified();
        tokio::pin!(moved);
        let timer = tokio::time::sleep_until(state.accepted_at + limits.header_read_timeout);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let mut draining = false;
        let mut pressure_open = true;
        loop {
            let near_cap = *pressure.borrow_and_update() && !draining;
            let due = state.deadline(&limits, near_cap).map(|(at, _)| at);
            if due != armed {
                if let Some(at) = due {
                    timer.as_mut().reset(at);
                }
                armed = due;
            }
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    break;
                }
                () = drained.as_mut(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = forced.as_mut() => {
                    metrics::counter!(HTTP_CONNECTIONS_CLOSED_TOTAL, "reason" => "shutdown_forced")
                        .increment(1);
                    break;
                }
                () = moved.as_mut() => moved.set(state.changed.notified()),
                changed = pressure.changed(), if pressure_open => {
                    pressure_open = changed.is_ok();
                }
                () = timer.as_mut(), if armed.is_some() => {
                    // Fired: nothing is armed until the deadline is computed again.
                    armed = None;
                    let near_cap = *pressure.borrow() && !draining;
                    if let Some((at, reason)) = state.deadline(&limits, near_cap) {
                        if Instant::now() >= at && reason == "evicted" {
                            // Finish writing any answer, then close (hyper closes an idle
                            // connection at once on a graceful shutdown).
                            metrics::counter!(HTTP_CONNECTIONS_CLOSED_TOTAL, "reason" => reason)
                                .increment(1);
                            draining = true;
                            conn.as_mut().graceful_shutdown();
                        } else if Instant::now() >= at {
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
    /// `near_cap`: the server is near `connections_max`, so an idle connection goes now.
    fn deadline(&self, limits: &ServerLimits, near_cap: bool) -> Option<(Instant, &'static str)> {
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
        if near_cap {
            return Some((self.at(idle, Duration::ZERO), "evicted"));
        }
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

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`).
///
/// The allocator returns an idle thread's freed pages to the OS, which leaves its arenas sparse;
/// where those arenas are marked for huge pages, the kernel's `khugepaged` later collapses each
/// sparse 2 MiB range into a whole huge page and the freed memory becomes resident again
/// (the drill saw the RSS climb back by ~45 MiB some ten minutes after a burst, with nothing
/// allocated). Returns whether THP was on before.
#[allow(unsafe_code)]
pub fn disable_transparent_huge_pages() -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_GET_THP_DISABLE and PR_SET_THP_DISABLE take integer arguments only.
        let before = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        if before < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(before == 0)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(false)
}
