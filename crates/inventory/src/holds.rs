//! Places held for a short time with a deadline (a citizen admitted from a waiting room, or a
//! client choosing between slots). A hold takes a place in memory only; it is never written
//! to the store, so memory still holds at least what the database holds. Time is passed in.

use crate::engine::Inventory;
use crate::pool::PoolCell;
use chrono::{DateTime, Utc};
use kataar_domain::{AccountId, BookingError, PoolId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Holds alive at once. At the bound a new hold is refused with `PoolFull` (a place that
/// cannot be held is a place not offered).
pub const HOLDS_MAX: usize = 1_000_000;

/// A hold's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HoldId(pub u64);

#[derive(Debug)]
struct Hold {
    pool: Arc<PoolCell>,
    account: AccountId,
    expires_at: DateTime<Utc>,
}

/// The live holds.
#[derive(Debug, Default)]
pub struct Holds {
    map: Mutex<HashMap<HoldId, Hold>>,
    next: AtomicU64,
}

impl Holds {
    /// No holds.
    pub fn new() -> Holds {
        Holds::default()
    }
}

impl Inventory {
    /// Takes one place of `pool` for `account` until `expires_at`.
    pub fn hold(
        &self,
        pool: PoolId,
        account: AccountId,
        expires_at: DateTime<Utc>,
    ) -> Result<HoldId, BookingError> {
        let cell = self
            .pools
            .get(&pool)
            .map(|p| p.clone())
            .ok_or(BookingError::NotFound)?;
        let mut map = self.holds.map.lock();
        if map.len() >= HOLDS_MAX || !cell.try_reserve() {
            return Err(BookingError::PoolFull);
        }
        let id = HoldId(self.holds.next.fetch_add(1, Ordering::Relaxed) + 1);
        map.insert(
            id,
            Hold {
                pool: cell,
                account,
                expires_at,
            },
        );
        self.bump();
        Ok(id)
    }

    /// Gives a hold's place back. Returns false if it was not there (expired or released).
    pub fn release_hold(&self, id: HoldId, account: AccountId) -> bool {
        let hold = {
            let mut map = self.holds.map.lock();
            match map.get(&id) {
                Some(h) if h.account == account => map.remove(&id),
                _ => None,
            }
        };
        match hold {
            Some(h) => {
                h.pool.release();
                self.bump();
                true
            }
            None => false,
        }
    }

    /// Releases every hold whose deadline is at or before `now`. Returns how many.
    pub fn expire_holds(&self, now: DateTime<Utc>) -> usize {
        let expired: Vec<Hold> = {
            let mut map = self.holds.map.lock();
            let ids: Vec<HoldId> = map
                .iter()
                .filter(|(_, h)| h.expires_at <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| map.remove(&id)).collect()
        };
        for h in &expired {
            h.pool.release();
        }
        if !expired.is_empty() {
            self.bump();
        }
        expired.len()
    }

    /// Holds alive.
    pub fn holds_len(&self) -> usize {
        self.holds.map.lock().len()
    }
}
