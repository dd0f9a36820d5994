//! Time for admission decisions: a monotonic clock in production, a tokio clock (which follows
//! `tokio::time::pause()`) or a manual clock in tests.
//!
//! Every component keeps time as nanoseconds since an origin taken from its clock when it was
//! built, so the bucket state fits in one `AtomicU64`.
//!
//! The production clock is `quanta` (what `governor` uses by default): the CPU's invariant TSC,
//! calibrated once against the OS monotonic clock, falling back to the OS clock where there is
//! no invariant TSC. Reading it costs a few nanoseconds instead of the ~25–55 ns of
//! `clock_gettime` measured on the reference VM, where it was the largest single cost of a
//! refusal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The time source of an [`crate::Admission`] or a [`crate::Breaker`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: ClockKind,
    origin: Instant,
}

#[derive(Clone, Debug)]
enum ClockKind {
    /// `quanta`: monotonic, what production uses. Holds its own origin.
    Monotonic(quanta::Clock, quanta::Instant),
    /// `tokio::time::Instant::now()`: the same as `Monotonic` unless the tokio clock is paused.
    Tokio,
    /// Moves only when the test says so.
    Manual(ManualClock),
}

impl Clock {
    /// The monotonic clock (`quanta`: TSC-based, or the OS monotonic clock). The production
    /// default. The first call in a process calibrates the TSC (a few milliseconds).
    pub fn monotonic() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.now();
        Self::from_kind(ClockKind::Monotonic(clock, origin))
    }

    /// The tokio clock: follows `tokio::time::pause()` / `advance()`, so tests with a paused
    /// runtime see bucket refills and queue waits in step with `tokio::time::sleep`.
    pub fn tokio() -> Self {
        Self::from_kind(ClockKind::Tokio)
    }

    /// A clock driven by `manual` (tests).
    pub fn manual(manual: &ManualClock) -> Self {
        Self::from_kind(ClockKind::Manual(manual.clone()))
    }

    fn from_kind(kind: ClockKind) -> Self {
        let origin = read(&kind);
        Self { kind, origin }
    }

    /// The time now.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.kind {
            ClockKind::Monotonic(..) => self.origin + Duration::from_nanos(self.nanos()),
            kind => read(kind),
        }
    }

    /// Nanoseconds since this clock's origin (saturating at 0).
    #[inline]
    pub(crate) fn nanos(&self) -> u64 {
        match &self.kind {
            ClockKind::Monotonic(clock, origin) => {
                let elapsed = clock.now().saturating_duration_since(*origin);
                u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
            }
            kind => nanos_between(self.origin, read(kind)),
        }
    }
}

#[inline]
fn read(kind: &ClockKind) -> Instant {
    match kind {
        ClockKind::Monotonic(..) => Instant::now(),
        ClockKind::Tokio => tokio::time::Instant::now().into_std(),
        ClockKind::Manual(m) => m.now(),
    }
}

#[inline]
fn nanos_between(earlier: Instant, later: Instant) -> u64 {
    u64::try_from(later.saturating_duration_since(earlier).as_nanos()).unwrap_or(u64::MAX)
}

/// A clock for tests: starts at the moment it is created and moves only by [`ManualClock::advance`].
#[derive(Clone, Debug)]
pub struct ManualClock {
    base: Instant,
    offset_ns: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A manual clock standing at "now".
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            offset_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by_ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(by_ns, Ordering::AcqRel);
    }

    /// The time this clock shows.
    pub fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_ns.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let manual = ManualClock::new();
        let clock = Clock::manual(&manual);
        assert_eq!(clock.nanos(), 0);
        manual.advance(Duration::from_millis(3));
        assert_eq!(clock.nanos(), 3_000_000);
        assert_eq!(clock.nanos(), 3_000_000);
    }

    #[test]
    fn monotonic_clock_does_not_go_backwards_and_follows_real_time() {
        let clock = Clock::monotonic();
        let mut last = clock.nanos();
        for _ in 0..10_000 {
            let now = clock.nanos();
            assert!(now >= last);
            last = now;
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(clock.nanos() >= last + 20_000_000);
        assert!(clock.now() >= clock.origin);
    }
}
