//! One pool's counters. `capacity` and `booked` live together in one `AtomicU64` so that a
//! reservation and a capacity change are each a single compare-and-swap: no lock, and the pair
//! can never be seen torn. O (`booked <= capacity`) is established by every CAS here.

use kataar_domain::{Channel, Dose, PoolId, SessionId, SlotId};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The live state of one pool.
#[derive(Debug)]
pub struct PoolCell {
    /// Its id.
    pub pool_id: PoolId,
    /// Its session.
    pub session_id: SessionId,
    /// Its slot.
    pub slot_id: SlotId,
    /// Dose 1 or 2.
    pub dose: Dose,
    /// Online or walk-in.
    pub channel: Channel,
    /// `capacity << 32 | booked`.
    packed: AtomicU64,
    /// Bookings of this pool that are checked in (informational, for the capacity view).
    pub checked_in: AtomicU32,
    /// Bookings of this pool whose dose was given.
    pub administered: AtomicU32,
    /// Bookings of this pool marked no-show.
    pub no_show: AtomicU32,
    /// Capacity changes of this pool prepared and not yet finished. Capacity changes are
    /// operators' actions (never the booking path) and run one at a time per pool: a second
    /// change while one is being committed is refused, so every change is computed from a
    /// capacity that includes all earlier ones.
    pub(crate) capacity_changes_in_flight: parking_lot::Mutex<u32>,
}

fn pack(capacity: u32, booked: u32) -> u64 {
    (u64::from(capacity) << 32) | u64::from(booked)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, (word & 0xffff_ffff) as u32)
}

impl PoolCell {
    /// A pool with the given counters. Panics if they break O: a store that hands us
    /// `booked > capacity` is corrupt and we must not serve from it.
    pub fn new(
        pool_id: PoolId,
        session_id: SessionId,
        slot_id: SlotId,
        dose: Dose,
        channel: Channel,
        capacity: u32,
        booked: u32,
    ) -> PoolCell {
        assert!(booked <= capacity, "pool {pool_id} loaded over capacity");
        PoolCell {
            pool_id,
            session_id,
            slot_id,
            dose,
            channel,
            packed: AtomicU64::new(pack(capacity, booked)),
            checked_in: AtomicU32::new(0),
            administered: AtomicU32::new(0),
            no_show: AtomicU32::new(0),
            capacity_changes_in_flight: parking_lot::Mutex::new(0),
        }
    }

    /// `(capacity, booked)` as one consistent pair.
    pub fn counts(&self) -> (u32, u32) {
        unpack(self.packed.load(Ordering::Acquire))
    }

    /// Places left.
    pub fn available(&self) -> u32 {
        let (capacity, booked) = self.counts();
        capacity - booked
    }

    /// Takes one place if one is left.
    pub fn try_reserve(&self) -> bool {
        self.packed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (capacity, booked) = unpack(word);
                (booked < capacity).then(|| pack(capacity, booked + 1))
            })
            .is_ok()
    }

    /// Gives one place back. A release without a matching reservation is a bug: it panics
    /// rather than let `booked` wrap.
    pub fn release(&self) {
        let result = self
            .packed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (capacity, booked) = unpack(word);
                booked.checked_sub(1).map(|b| pack(capacity, b))
            });
        assert!(result.is_ok(), "pool {} released below zero", self.pool_id);
    }

    /// Changes the capacity by `delta`; refuses to go below `booked` (or below zero, or past
    /// `max`). Returns the new capacity.
    pub fn change_capacity(&self, delta: i64, max: u32) -> Result<u32, CapacityError> {
        let mut outcome = Err(CapacityError::BelowBooked);
        let _ = self
            .packed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (capacity, booked) = unpack(word);
                let next = i64::from(capacity) + delta;
                if next < i64::from(booked) {
                    outcome = Err(CapacityError::BelowBooked);
                    return None;
                }
                if next > i64::from(max) {
                    outcome = Err(CapacityError::AboveMax);
                    return None;
                }
                let next = next as u32;
                outcome = Ok(next);
                Some(pack(next, booked))
            });
        outcome
    }
}

/// Why a capacity change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityError {
    /// It would leave fewer places than are booked.
    BelowBooked,
    /// It would pass the per-pool maximum.
    AboveMax,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(capacity: u32) -> PoolCell {
        PoolCell::new(
            PoolId(1),
            SessionId(1),
            SlotId(1),
            Dose::One,
            Channel::Online,
            capacity,
            0,
        )
    }

    #[test]
    fn reserve_stops_at_capacity_and_release_gives_back() {
        let pool = cell(2);
        assert!(pool.try_reserve());
        assert!(pool.try_reserve());
        assert!(!pool.try_reserve());
        assert_eq!(pool.counts(), (2, 2));
        pool.release();
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn capacity_never_below_booked() {
        let pool = cell(3);
        assert!(pool.try_reserve());
        assert!(pool.try_reserve());
        assert_eq!(
            pool.change_capacity(-2, 100),
            Err(CapacityError::BelowBooked)
        );
        assert_eq!(pool.change_capacity(-1, 100), Ok(2));
        assert_eq!(pool.change_capacity(99, 100), Err(CapacityError::AboveMax));
        assert_eq!(pool.counts(), (2, 2));
    }
}
