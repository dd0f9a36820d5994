//! Admission control for the Kataar HTTP server: keep the server up at any offered load, keep
//! doing the most useful work, and refuse the rest quickly and honestly.
//!
//! # Layout
//!
//! - `lane.rs` — [`Lane`] (operator, booking, auth, browse) and [`classify`] (method + path →
//!   lane; `/healthz`, `/readyz`, `/metrics` are never limited).
//! - `admission.rs` — [`Admission`]: per-lane buckets with a bounded wait queue (CoDel-style wait
//!   bound) and in-flight cap, per-client and per-account buckets, the breaker check; [`Permit`].
//! - `bucket.rs` — the lane bucket (GCRA with reservations, one `AtomicU64`).
//! - `inflight.rs` — requests in flight per client address and per account (capped).
//! - `keyed.rs` — keyed buckets on `governor` with a bounded store (`keyed_entries_max`).
//! - `breaker.rs` — [`Breaker`], the store circuit breaker.
//! - `client.rs` — [`client_addr`] (trusted-proxy aware) and [`client_deadline`].
//! - `proxy.rs` — [`Cidr`], [`TrustedProxies`]: which peers may name the client address.
//! - `refusal.rs` — [`Refusal`], [`RefusalKind`]: catalogue code, status, jittered `Retry-After`.
//! - `config.rs` — [`AdmissionConfig`], every limit with its unit and default.
//! - `metrics.rs` — the `kataar_admission_*` metrics.
//! - `clock.rs` — [`Clock`] (monotonic, tokio, manual).
//!
//! This crate owns the decision to serve or refuse a request *before* any work is done for it.
//! It must never do IO, never await anything but its own bounded queue wait, never take a lock
//! that request handling (inventory shards, the store) holds, never allocate on the refusal
//! path, and never keep unbounded state: every queue and map here has a named bound.
//!
//! # Wiring (server side)
//!
//! ```no_run
//! # async fn demo(peer: std::net::SocketAddr, req: http::Request<()>) {
//! use std::sync::Arc;
//! use kataar_admission::{classify, client_addr, client_deadline, Admission, AdmissionConfig};
//! use kataar_admission::TrustedProxies;
//!
//! let config = AdmissionConfig::default();
//! let every = config.housekeeping_interval();
//! let admission = Arc::new(Admission::new(config).expect("valid config"));
//! admission.spawn_housekeeping(every);
//!
//! // per request:
//! if let Some(lane) = classify(req.method(), req.uri().path()) {
//!     let client = client_addr(peer, req.headers(), &TrustedProxies::NONE);
//!     let account = None; // Some(account_id) once the bearer token is verified
//!     match admission.admit(lane, client, account, client_deadline(req.headers())).await {
//!         Ok(_permit) => { /* serve, keeping _permit alive until the response is ready */ }
//!         Err(refusal) => {
//!             // refusal.kind.status(), refusal.kind.code(), Retry-After: refusal.retry_after_s
//!         }
//!     }
//! }
//! # }
//! ```

mod admission;
mod breaker;
mod bucket;
mod client;
mod clock;
mod config;
mod inflight;
mod keyed;
mod lane;
pub mod metrics;
mod proxy;
mod refusal;

pub use admission::{Admission, LaneStatus, Permit};
pub use breaker::{Breaker, BreakerGuard, BreakerState};
pub use client::{client_addr, client_deadline, CLIENT_DEADLINE_MS_MAX, DEADLINE_HEADER};
pub use clock::{Clock, ManualClock};
pub use config::{AdmissionConfig, ConfigError, LaneLimits};
pub use lane::{classify, Lane, UNLIMITED_PATHS};
pub use metrics::describe_metrics;
pub use proxy::{Cidr, CidrError, TrustedProxies};
pub use refusal::{Refusal, RefusalKind};
