//! Keyed buckets (per client address, per account) on `governor`, with a bounded state store.
//!
//! `governor`'s own DashMap store grows without bound between `retain_recent()` calls; this one
//! counts its entries and, at `keyed_entries_max`, stops remembering new keys: a key that is not
//! already tracked is then judged as a fresh key (a full bucket) and not stored, so it is limited
//! only by its lane until housekeeping makes room. Tracked keys keep their limits. Each untracked
//! decision is counted in `kataar_admission_keyed_untracked_total{key}`.
//!
//! Speed: one decision reads the clock once. [`KeyedLimiter::check`] takes the caller's reading
//! and hands it to `governor` through a thread-local for the duration of the call (the adapter
//! clock falls back to a real reading outside such a call, e.g. in `retain_recent`). Maps hash
//! with `foldhash` (keyed per process, so addresses cannot be chosen to collide; several times
//! cheaper than SipHash).

use std::cell::Cell;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use crate::bucket::emission_interval_ns;
use crate::clock::Clock;
use crate::metrics::KeyedMetrics;

/// No reading handed over (a real reading is taken instead).
const NO_READING: u64 = u64::MAX;

thread_local! {
    /// The clock reading of the decision running on this thread, if any.
    static DECISION_NOW_NS: Cell<u64> = const { Cell::new(NO_READING) };
}

/// `governor` clock adapter over [`Clock`]: nanoseconds since the clock's origin — the current
/// decision's reading when one is handed over, else a fresh one.
#[derive(Clone, Debug)]
pub(crate) struct GovClock(pub(crate) Clock);

impl GovernorClock for GovClock {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        let handed = DECISION_NOW_NS.with(Cell::get);
        if handed == NO_READING {
            Nanos::new(self.0.nanos())
        } else {
            Nanos::new(handed)
        }
    }
}

/// Clears the handed-over reading even if the decision unwinds.
struct HandedReading;

impl HandedReading {
    #[inline]
    fn set(now_ns: u64) -> Self {
        DECISION_NOW_NS.with(|c| c.set(now_ns.min(NO_READING - 1)));
        HandedReading
    }
}

impl Drop for HandedReading {
    #[inline]
    fn drop(&mut self) {
        DECISION_NOW_NS.with(|c| c.set(NO_READING));
    }
}

type Hasher = foldhash::fast::RandomState;

/// A DashMap of GCRA states (TAT in ns) that holds at most `entries_max` keys.
#[derive(Debug)]
pub(crate) struct BoundedStore<K: Hash + Eq> {
    map: DashMap<K, AtomicU64, Hasher>,
    entries: AtomicUsize,
    entries_max: usize,
    untracked: metrics::Counter,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    fn new(entries_max: usize, untracked: metrics::Counter) -> Self {
        Self {
            map: DashMap::with_hasher(Hasher::default()),
            entries: AtomicUsize::new(0),
            entries_max,
            untracked,
        }
    }
}

/// The compare-and-swap loop `governor`'s own in-memory state uses.
#[inline]
fn measure_and_replace_one<T, F, E>(cell: &AtomicU64, f: &F) -> Result<T, E>
where
    F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
{
    let mut prev = cell.load(Ordering::Acquire);
    loop {
        let (result, next) = f(Some(Nanos::new(prev)))?;
        match cell.compare_exchange_weak(prev, next.as_u64(), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(result),
            Err(actual) => prev = actual,
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(cell) = self.map.get(key) {
            return measure_and_replace_one(cell.value(), &f);
        }
        match self.map.entry(key.clone()) {
            Entry::Occupied(cell) => measure_and_replace_one(cell.get(), &f),
            Entry::Vacant(vacant) => {
                if self.entries.fetch_add(1, Ordering::AcqRel) >= self.entries_max {
                    self.entries.fetch_sub(1, Ordering::AcqRel);
                    self.untracked.increment(1);
                    return f(None).map(|(result, _)| result);
                }
                match f(None) {
                    Ok((result, tat)) => {
                        vacant.insert(AtomicU64::new(tat.as_u64()));
                        Ok(result)
                    }
                    Err(e) => {
                        self.entries.fetch_sub(1, Ordering::AcqRel);
                        Err(e)
                    }
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        let mut removed = 0usize;
        self.map.retain(|_, tat| {
            let keep = tat.load(Ordering::Acquire) > drop_below;
            removed += usize::from(!keep);
            keep
        });
        self.entries.fetch_sub(removed, Ordering::AcqRel);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

type Limiter<K> = RateLimiter<K, BoundedStore<K>, GovClock, NoOpMiddleware<Nanos>>;

/// One keyed limiter (clients or accounts).
#[derive(Debug)]
pub(crate) struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: Limiter<K>,
    /// Entries after the last shrink (or the most seen since): decides when shrinking pays.
    peak_entries: AtomicUsize,
    metrics: KeyedMetrics,
}

/// Below this many entries a map is never shrunk (the memory is not worth the write locks).
const SHRINK_ENTRIES_MIN: usize = 4096;

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub(crate) fn new(
        rate_per_s: f64,
        burst: u32,
        entries_max: usize,
        clock: Clock,
        metrics: KeyedMetrics,
    ) -> Self {
        let period = Duration::from_nanos(emission_interval_ns(rate_per_s));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(std::num::NonZeroU32::new(burst).unwrap_or(std::num::NonZeroU32::MIN));
        let store = BoundedStore::new(entries_max, metrics.untracked.clone());
        Self {
            limiter: RateLimiter::new(quota, store, GovClock(clock)),
            peak_entries: AtomicUsize::new(0),
            metrics,
        }
    }

    /// `Ok` if `key` may go at `now_ns` (this limiter's clock's nanoseconds); else how long
    /// until it may.
    #[inline]
    pub(crate) fn check(&self, key: &K, now_ns: u64) -> Result<(), Duration> {
        let result = {
            let _reading = HandedReading::set(now_ns);
            self.limiter.check_key(key)
        };
        result.map_err(|not_until| not_until.wait_time_from(Nanos::new(now_ns)))
    }

    /// Drops keys whose bucket is full again (forgetting them changes no decision), shrinks the
    /// map when it is mostly empty, and publishes the entry count.
    pub(crate) fn housekeeping(&self) {
        let before = self.limiter.len();
        let peak = self
            .peak_entries
            .fetch_max(before, Ordering::AcqRel)
            .max(before);
        self.limiter.retain_recent();
        let after = self.limiter.len();
        if peak >= SHRINK_ENTRIES_MIN && after.saturating_mul(4) < peak {
            // A flood has passed: give the memory back (takes each shard's write lock once).
            self.limiter.shrink_to_fit();
            self.peak_entries.store(after, Ordering::Release);
        }
        self.metrics.entries.set(after as f64);
    }

    /// Keys tracked now.
    pub(crate) fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// The key of a client address: IPv4 as is (IPv4-mapped IPv6 folded to IPv4), IPv6 cut to its
/// leading `ipv6_prefix_bits`.
pub(crate) fn client_key(ip: IpAddr, ipv6_prefix_bits: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix_bits.clamp(1, 128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;

    struct Fixture {
        limiter: KeyedLimiter<u64>,
        clock: Clock,
    }

    impl Fixture {
        fn check(&self, key: &u64) -> Result<(), Duration> {
            self.limiter.check(key, self.clock.nanos())
        }
        fn len(&self) -> usize {
            self.limiter.len()
        }
        fn housekeeping(&self) {
            self.limiter.housekeeping()
        }
    }

    fn limiter(burst: u32, entries_max: usize) -> (Fixture, ManualClock) {
        let manual = ManualClock::new();
        let clock = Clock::manual(&manual);
        let limiter = KeyedLimiter::new(
            1.0,
            burst,
            entries_max,
            clock.clone(),
            KeyedMetrics::new("account"),
        );
        let f = Fixture { limiter, clock };
        (f, manual)
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let (l, manual) = limiter(2, 100);
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_ok());
        let wait = l.check(&1).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(l.check(&2).is_ok());
        manual.advance(Duration::from_secs(1));
        assert!(l.check(&1).is_ok());
    }

    #[test]
    fn the_store_is_bounded_and_untracked_keys_are_not_limited() {
        let (l, manual) = limiter(1, 3);
        for k in 0..3 {
            assert!(l.check(&k).is_ok());
        }
        assert_eq!(l.len(), 3);
        // Tracked keys keep their limit at the bound.
        assert!(l.check(&0).is_err());
        // New keys at the bound are judged fresh and not stored.
        for _ in 0..5 {
            assert!(l.check(&99).is_ok());
        }
        assert_eq!(l.len(), 3);
        // Housekeeping forgets keys whose bucket refilled, making room again.
        manual.advance(Duration::from_secs(5));
        l.housekeeping();
        assert_eq!(l.len(), 0);
        assert!(l.check(&99).is_ok());
        assert!(l.check(&99).is_err());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 4]));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 4]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a, 64), client_key(b, 64));
        assert_ne!(client_key(a, 64), client_key(c, 64));
        assert_ne!(client_key(a, 128), client_key(b, 128));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_key(mapped, 64), IpAddr::from([10, 1, 2, 3]));
    }
}
