//! The lane bucket: GCRA (the algorithm `governor` implements) with *reservations*.
//!
//! Why not a `governor` direct limiter here: a lane needs a FIFO wait queue, and `governor` can
//! only say "not until T" without reserving T for the caller, so queued callers would all wake at
//! T and race (thundering herd, no order, no bound on any one caller's wait). Reserving the next
//! emission slot with one compare-and-swap gives every waiter its exact start time at once: the
//! admission decides *immediately* whether the wait fits the allowed bound (else it refuses at
//! once, with a `Retry-After` from the real backlog), and a waiter simply sleeps until its slot.
//! The keyed per-client/per-account buckets, which never wait, do use `governor`
//! (see `keyed.rs`).
//!
//! State: one `AtomicU64`, the theoretical arrival time (TAT) in nanoseconds since the clock's
//! origin. Emission interval `t = 1/rate`, tolerance `tau = (burst - 1) * t`. A cell at `now`
//! may start at `max(now, tat - tau)`; taking it moves TAT to `max(tat, now) + t`.

use std::sync::atomic::{AtomicU64, Ordering};

/// One lane's token bucket.
#[derive(Debug)]
pub(crate) struct LaneBucket {
    t_ns: u64,
    tau_ns: u64,
    tat_ns: AtomicU64,
}

impl LaneBucket {
    /// A full bucket. `rate_per_s` in 0.001..=1e9 and `burst >= 1` (checked by config validation).
    pub(crate) fn new(rate_per_s: f64, burst: u32) -> Self {
        let t_ns = emission_interval_ns(rate_per_s);
        let tau_ns = t_ns.saturating_mul(u64::from(burst.max(1) - 1));
        Self {
            t_ns,
            tau_ns,
            tat_ns: AtomicU64::new(0),
        }
    }

    /// Takes the next token if it can be used within `wait_max_ns` of `now_ns`.
    ///
    /// `Ok(wait_ns)`: the token is the caller's, usable after `wait_ns` (0 = now).
    /// `Err(wait_ns)`: nothing taken; the next token would have needed `wait_ns`.
    #[inline]
    pub(crate) fn reserve(&self, now_ns: u64, wait_max_ns: u64) -> Result<u64, u64> {
        let mut tat = self.tat_ns.load(Ordering::Acquire);
        loop {
            let wait_ns = tat.saturating_sub(self.tau_ns).saturating_sub(now_ns);
            if wait_ns > wait_max_ns {
                return Err(wait_ns);
            }
            let next = tat.max(now_ns).saturating_add(self.t_ns);
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(wait_ns),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Returns a reserved token that will not be used (its waiter gave up). The next arrival gets
    /// it; reservations already handed out keep their times.
    pub(crate) fn give_back(&self) {
        let t = self.t_ns;
        // The closure always returns Some, so this cannot fail.
        let _ = self
            .tat_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.saturating_sub(t))
            });
    }

    /// The emission interval (nanoseconds per token).
    pub(crate) fn t_ns(&self) -> u64 {
        self.t_ns
    }
}

/// Nanoseconds between tokens at `rate_per_s`, at least 1.
pub(crate) fn emission_interval_ns(rate_per_s: f64) -> u64 {
    let t = (1e9 / rate_per_s).round();
    if t.is_finite() && t >= 1.0 {
        // In range: rate_per_s >= 0.001 keeps this below 10^12.
        t as u64
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_token_per_interval() {
        let bucket = LaneBucket::new(10.0, 3); // t = 100 ms
        let ms = 1_000_000;
        assert_eq!(bucket.reserve(0, 0), Ok(0));
        assert_eq!(bucket.reserve(0, 0), Ok(0));
        assert_eq!(bucket.reserve(0, 0), Ok(0));
        assert_eq!(bucket.reserve(0, 0), Err(100 * ms));
        assert_eq!(bucket.reserve(50 * ms, 0), Err(50 * ms));
        assert_eq!(bucket.reserve(100 * ms, 0), Ok(0));
        assert_eq!(bucket.reserve(100 * ms, 0), Err(100 * ms));
    }

    #[test]
    fn reservations_queue_in_order_and_can_be_given_back() {
        let bucket = LaneBucket::new(10.0, 1);
        let ms = 1_000_000;
        assert_eq!(bucket.reserve(0, 0), Ok(0));
        assert_eq!(bucket.reserve(0, 1000 * ms), Ok(100 * ms));
        assert_eq!(bucket.reserve(0, 1000 * ms), Ok(200 * ms));
        assert_eq!(bucket.reserve(0, 250 * ms), Err(300 * ms));
        bucket.give_back();
        assert_eq!(bucket.reserve(0, 250 * ms), Ok(200 * ms));
    }

    #[test]
    fn idle_time_refills_only_up_to_burst() {
        let bucket = LaneBucket::new(1000.0, 2); // t = 1 ms
        let s = 1_000_000_000;
        assert_eq!(bucket.reserve(10 * s, 0), Ok(0));
        assert_eq!(bucket.reserve(10 * s, 0), Ok(0));
        assert!(bucket.reserve(10 * s, 0).is_err());
    }
}
