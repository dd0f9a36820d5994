//! kataar-app: the application — what a request does once it is admitted.
//!
//! # Layout
//!
//! - [`state`]: [`AppState`], everything a handler needs (engine, writer, identity, clock).
//! - [`durable`]: runs a prepared engine operation to its commit, shielded from client
//!   disconnects, and the idempotency protocol around citizen writes.
//! - [`admission`]: the admission middleware on every v1, v2 and console route (lanes, per-client and
//!   per-account limits, the store breaker): refuse early with `429`/`503` and `Retry-After`.
//! - [`auth`]: the citizen (JWT) and operator (`kop_` key) extractors.
//! - [`errors`]: the one mapping from engine refusals to the API catalogue.
//! - [`metrics`]: booking outcomes and live capacity per district.
//! - [`v1`]: the v1 handlers: public reads, citizens, operators.
//! - [`compat`]: the CoWIN v2 compatibility layer (`/api/v2`), translating onto v1's calls.
//! - [`waitroom`]: the launch releases' waiting rooms, the pass gate and the step task.
//! - [`demo`]: the demo drive (`--demo`).
//! - [`startup`]: opening the store, rebuilding the engine, starting the writer.
//!
//! **API Boundary:** the v1 JSON shapes are rendered here and nowhere else. Handlers are thin:
//! parse, authorise, call the engine, make it durable, render. No handler decides a booking.

pub mod admission;
pub mod auth;
pub mod compat;
pub mod console;
pub mod demo;
pub mod durable;
pub mod errors;
pub mod metrics;
pub mod server;
pub mod startup;
pub mod state;
pub mod v1;
pub mod waitroom;

pub use state::AppState;
