//! The sharded in-memory inventory: every booking decision of Kataar is made here.
//!
//! # Layout
//!
//! - [`pool`]: one pool's `capacity`/`booked` pair in a single atomic word; a reservation is
//!   one compare-and-swap.
//! - [`engine`]: [`Inventory`], the maps and indexes, rebuilding from a
//!   [`kataar_domain::Snapshot`], and the two-phase protocol ([`Prepared`], [`Finisher`]).
//! - [`ops`]: the write operations (book, cancel, reschedule, walk-in, check-in, administer,
//!   capacity, sessions, beneficiaries, accounts).
//! - [`views`]: read models for the API (availability, capacity, beneficiaries, bookings).
//! - [`idem`]: the idempotency index.
//! - [`dump`]: a comparable picture of the durable state (recovery is checked with it).
//! - [`holds`]: short-lived places held with a deadline.
//!
//! # The two-phase protocol
//!
//! An operation first *prepares*: it decides, and applies at once every effect that **takes**
//! something (a place, a live-booking slot for the person, a photo-ID, a key), so that
//! concurrent decisions see it. It returns the events to make durable. After the store answers,
//! [`Inventory::finish`] applies every effect that **frees** something (a cancelled place, a
//! lowered capacity's headroom is already taken, a raised capacity, a new session) on commit,
//! or undoes the takes on failure. So memory always holds at least what the database holds:
//! `booked_db <= booked_mem <= capacity_mem <= capacity_db`, and O and D in memory imply O and D
//! in the database, in any commit order.
//!
//! **Architecture Invariant:** no IO, no `.await` under a lock, no lock held across calls
//! into another map; the person shard lock is the only lock ever held while touching other
//! maps, and pool counters are lock-free.

pub mod dump;
pub mod engine;
pub mod holds;
pub mod idem;
pub mod ops;
pub mod pool;
pub mod views;

pub use engine::{Finisher, Inventory, Prepared};
pub use idem::IdemBegin;
pub use ops::*;
pub use views::*;
