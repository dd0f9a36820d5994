//! The launch waiting room: one [`Queue`] per release.
//!
//! Tickets taken before a release opens wait in a pre-queue that is shuffled at the opening by
//! a draw anyone can check afterwards ([`draw`]); later tickets queue in arrival order. The
//! queue admits at a rate, hands each admitted holder a [`ticket::Key::pass`] valid for a while,
//! skips places whose holder stopped polling, and tells everyone still waiting when nothing is
//! left. Plain data and arithmetic: no IO, no clock (every call takes `now_ms`).
//!
//! **Architecture Invariant:** a poll is O(1) in the queue's length; admission is amortised
//! O(1) per place; a waiting ticket costs a fixed number of bytes.

pub mod draw;
pub mod queue;
pub mod ticket;

pub use queue::{Answer, Counts, Drawer, Queue, QueueConfig, QueueError, Status, Step};
pub use ticket::{Key, PassError};
