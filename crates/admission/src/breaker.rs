//! The store circuit breaker: when the store fails, booking-lane requests are refused fast with
//! `503 store_unavailable` instead of piling up behind commits that will not happen.
//!
//! ```text
//!            N consecutive failures, or the store queue full
//!   Closed ─────────────────────────────────────────────────► Open
//!     ▲                                                        │ breaker_open_ms passed:
//!     │ success                                                ▼ the next caller is the probe
//!     └──────────────────────────────────────────────────── HalfOpen ──failure──► Open
//! ```
//!
//! Who reports: the store writer, once per batch (`record_success` after a commit, or
//! `record_failure` after a failed or in-doubt-then-absent commit; `record_queue_full` when a
//! submission finds its queue full). The request path only asks `allow()`.
//!
//! Closed costs one atomic load; Open before its cool-down is refused lock-free. Only transitions
//! (and the half-open probe hand-out) take the breaker's own short mutex, which nothing else
//! ever holds, and never across an `.await`.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::config::AdmissionConfig;
use crate::refusal::{Refusal, RefusalKind, RetryPolicy};

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// The store works: everything passes.
    Closed,
    /// The store is failing: booking-lane requests are refused until the cool-down ends.
    Open,
    /// Cool-down over: one probe request is let through; its outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `kataar_admission_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub const fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            STATE_OPEN => BreakerState::Open,
            STATE_HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

const STATE_CLOSED: u8 = 0;
const STATE_HALF_OPEN: u8 = 1;
const STATE_OPEN: u8 = 2;

/// How long a caller is told to wait while a half-open probe is in flight: its answer is near.
const PROBE_PENDING_RETRY: Duration = Duration::from_secs(1);

/// A circuit breaker for the store.
#[derive(Debug)]
pub struct Breaker {
    clock: Clock,
    failures_max: u32,
    open_ns: u64,
    retry: RetryPolicy,
    state: AtomicU8,
    /// Consecutive failures while closed.
    failures: AtomicU32,
    /// While open: the clock's nanoseconds at which the cool-down ends.
    open_until_ns: AtomicU64,
    probe: Mutex<Probe>,
    gauge: metrics::Gauge,
}

#[derive(Debug, Default)]
struct Probe {
    in_flight: bool,
    /// Bumped for every probe handed out, so a stale guard cannot release a newer probe.
    generation: u64,
}

impl Breaker {
    /// A closed breaker opening after `failures_max` consecutive failures (at least 1) and
    /// staying open for `open` before a probe. `Retry-After` capped at 60 s with 25 % jitter.
    pub fn new(failures_max: u32, open: Duration, clock: Clock) -> Self {
        Self::with_retry(
            failures_max,
            open,
            clock,
            RetryPolicy {
                retry_after_s_max: 60,
                jitter_pct: 25,
            },
        )
    }

    /// A breaker from `breaker_failures_max`, `breaker_open_ms` and the `retry_after_*` keys.
    pub fn from_config(config: &AdmissionConfig, clock: Clock) -> Self {
        Self::with_retry(
            config.breaker_failures_max,
            Duration::from_millis(config.breaker_open_ms),
            clock,
            RetryPolicy {
                retry_after_s_max: config.retry_after_s_max,
                jitter_pct: config.retry_after_jitter_pct,
            },
        )
    }

    fn with_retry(failures_max: u32, open: Duration, clock: Clock, retry: RetryPolicy) -> Self {
        let gauge = crate::metrics::breaker_state();
        gauge.set(BreakerState::Closed.gauge_value());
        Self {
            clock,
            failures_max: failures_max.max(1),
            open_ns: u64::try_from(open.as_nanos()).unwrap_or(u64::MAX),
            retry,
            state: AtomicU8::new(STATE_CLOSED),
            failures: AtomicU32::new(0),
            open_until_ns: AtomicU64::new(0),
            probe: Mutex::new(Probe::default()),
            gauge,
        }
    }

    /// The state now. An open breaker whose cool-down has ended still reads `Open` until a
    /// caller takes the probe.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// May a store-bound request go? `Err` is a `StoreUnavailable` refusal whose `retry_after_s`
    /// is the remaining cool-down. In half-open, exactly one caller gets a probe guard; dropping
    /// it without an outcome reported lets the next caller probe.
    pub fn allow(self: &Arc<Self>) -> Result<BreakerGuard, Refusal> {
        match self.state.load(Ordering::Acquire) {
            STATE_CLOSED => Ok(BreakerGuard {
                breaker: Arc::clone(self),
                probe_generation: None,
            }),
            _ => self.allow_slow(),
        }
    }

    #[cold]
    fn allow_slow(self: &Arc<Self>) -> Result<BreakerGuard, Refusal> {
        let now = self.clock.nanos();
        if self.state.load(Ordering::Acquire) == STATE_OPEN {
            let until = self.open_until_ns.load(Ordering::Acquire);
            if now < until {
                return Err(self.refusal(Duration::from_nanos(until - now)));
            }
        }
        let mut probe = self.probe.lock();
        match self.state.load(Ordering::Acquire) {
            STATE_CLOSED => Ok(BreakerGuard {
                breaker: Arc::clone(self),
                probe_generation: None,
            }),
            STATE_OPEN => {
                let until = self.open_until_ns.load(Ordering::Acquire);
                if now < until {
                    return Err(self.refusal(Duration::from_nanos(until - now)));
                }
                self.set_state(STATE_HALF_OPEN);
                Ok(self.hand_out_probe(&mut probe))
            }
            _ if !probe.in_flight => Ok(self.hand_out_probe(&mut probe)),
            _ => Err(self.refusal(PROBE_PENDING_RETRY)),
        }
    }

    fn hand_out_probe(self: &Arc<Self>, probe: &mut Probe) -> BreakerGuard {
        probe.in_flight = true;
        probe.generation += 1;
        BreakerGuard {
            breaker: Arc::clone(self),
            probe_generation: Some(probe.generation),
        }
    }

    fn refusal(&self, wait: Duration) -> Refusal {
        self.retry.refusal(RefusalKind::StoreUnavailable, wait)
    }

    /// The store committed: closes a half-open breaker, resets the failure count of a closed
    /// one. Ignored while open (a batch that was in flight when the breaker opened proves
    /// little; the cool-down runs its course and a probe decides).
    pub fn record_success(&self) {
        if self.state.load(Ordering::Acquire) == STATE_CLOSED
            && self.failures.load(Ordering::Acquire) == 0
        {
            return;
        }
        let mut probe = self.probe.lock();
        match self.state.load(Ordering::Acquire) {
            STATE_CLOSED => self.failures.store(0, Ordering::Release),
            STATE_HALF_OPEN => {
                probe.in_flight = false;
                self.failures.store(0, Ordering::Release);
                self.set_state(STATE_CLOSED);
            }
            _ => {}
        }
    }

    /// The store failed: counts towards `failures_max` while closed; reopens a half-open
    /// breaker at once.
    pub fn record_failure(&self) {
        let mut probe = self.probe.lock();
        match self.state.load(Ordering::Acquire) {
            STATE_CLOSED => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.failures_max {
                    self.open(&mut probe);
                }
            }
            STATE_HALF_OPEN => self.open(&mut probe),
            _ => {}
        }
    }

    /// The store's queue is full: opens the breaker at once (unless already open).
    pub fn record_queue_full(&self) {
        let mut probe = self.probe.lock();
        if self.state.load(Ordering::Acquire) != STATE_OPEN {
            self.open(&mut probe);
        }
    }

    fn open(&self, probe: &mut Probe) {
        probe.in_flight = false;
        self.failures.store(0, Ordering::Release);
        let until = self.clock.nanos().saturating_add(self.open_ns);
        self.open_until_ns.store(until, Ordering::Release);
        self.set_state(STATE_OPEN);
    }

    fn set_state(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.gauge.set(BreakerState::from_u8(state).gauge_value());
    }

    fn release_probe(&self, generation: u64) {
        let mut probe = self.probe.lock();
        if probe.generation == generation {
            probe.in_flight = false;
        }
    }
}

/// Permission to go to the store, from [`Breaker::allow`]. For the half-open probe, report the
/// outcome with [`BreakerGuard::success`] / [`BreakerGuard::failure`] (or let the store writer
/// report it); dropping an unreported probe guard lets the next caller probe.
#[derive(Debug)]
#[must_use = "dropping the guard releases a half-open probe"]
pub struct BreakerGuard {
    breaker: Arc<Breaker>,
    probe_generation: Option<u64>,
}

impl BreakerGuard {
    /// Is this the half-open probe?
    pub fn is_probe(&self) -> bool {
        self.probe_generation.is_some()
    }

    /// The store call succeeded ([`Breaker::record_success`]).
    pub fn success(self) {
        self.breaker.record_success();
    }

    /// The store call failed ([`Breaker::record_failure`]).
    pub fn failure(self) {
        self.breaker.record_failure();
    }
}

impl Drop for BreakerGuard {
    fn drop(&mut self) {
        if let Some(generation) = self.probe_generation {
            self.breaker.release_probe(generation);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;

    fn breaker() -> (Arc<Breaker>, ManualClock) {
        let manual = ManualClock::new();
        let b = Breaker::new(3, Duration::from_secs(2), Clock::manual(&manual));
        (Arc::new(b), manual)
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (b, _) = breaker();
        b.record_failure();
        b.record_failure();
        b.record_success(); // not consecutive any more
        b.record_failure();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow().is_ok());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        let refusal = b.allow().unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::StoreUnavailable);
        // 2 s of cool-down left, jitter at most max(1, 25 %) s.
        assert!((2..=3).contains(&refusal.retry_after_s), "{refusal:?}");
    }

    #[test]
    fn half_open_lets_one_probe_and_success_closes() {
        let (b, manual) = breaker();
        b.record_queue_full();
        assert_eq!(b.state(), BreakerState::Open);
        manual.advance(Duration::from_millis(1999));
        assert!(b.allow().is_err());
        manual.advance(Duration::from_millis(1));
        let probe = b.allow().unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let second = b.allow().unwrap_err();
        assert_eq!(second.kind, RefusalKind::StoreUnavailable);
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        let guard = b.allow().unwrap();
        assert!(!guard.is_probe());
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cool_down() {
        let (b, manual) = breaker();
        for _ in 0..3 {
            b.record_failure();
        }
        manual.advance(Duration::from_secs(2));
        let probe = b.allow().unwrap();
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        manual.advance(Duration::from_millis(1500));
        assert!(b.allow().is_err());
        manual.advance(Duration::from_millis(500));
        assert!(b.allow().unwrap().is_probe());
    }

    #[test]
    fn dropped_probe_lets_the_next_caller_probe() {
        let (b, manual) = breaker();
        b.record_queue_full();
        manual.advance(Duration::from_secs(2));
        let probe = b.allow().unwrap();
        assert!(b.allow().is_err());
        drop(probe);
        let next = b.allow().unwrap();
        assert!(next.is_probe());
        // The writer reports the outcome instead of the guard.
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        drop(next);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn success_while_open_does_not_cut_the_cool_down() {
        let (b, _) = breaker();
        b.record_queue_full();
        b.record_success();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.allow().is_err());
    }
}
