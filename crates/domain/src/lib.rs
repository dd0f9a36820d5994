//! Kataar's domain: the vocabulary every other crate speaks.
//!
//! # Layout
//!
//! - [`ids`]: typed identifiers (`PoolId`, `PersonKey`, ...), all below 2^53.
//! - [`model`]: centres, sessions, slots, pools, accounts, beneficiaries, bookings, doses.
//! - [`vaccine`]: the vaccines and their dose rules (minimum interval, same vaccine).
//! - [`rules`]: eligibility decisions (age band, dose sequence, interval) as pure functions.
//! - [`event`]: the durable events the engine emits and the store commits, and the
//!   [`event::Snapshot`] the store loads to rebuild the engine.
//! - [`error`]: the engine's refusal type, one variant per catalogue code it can produce.
//! - [`limits`]: every bound of the system, named with its unit, with compile-time relations.
//!
//! **Architecture Invariant:** this crate does no IO, spawns nothing and knows no async
//! runtime; everything here is plain data and pure functions, so it cannot fail on its own.

pub mod error;
pub mod event;
pub mod ids;
pub mod limits;
pub mod model;
pub mod rules;
pub mod vaccine;

pub use error::BookingError;
pub use event::{Event, Snapshot};
pub use ids::*;
pub use model::*;
pub use vaccine::Vaccine;
