//! Refusals: what the server answers instead of serving, with an honest `Retry-After`.
//!
//! A refusal is a small `Copy` value; building one allocates nothing and takes no lock.

use std::cell::Cell;
use std::time::Duration;

/// Why a request was refused. Maps one-to-one onto the API's error catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// The client address or account is over its own keyed limit → `429 too_many_requests`.
    TooManyRequests,
    /// The lane is full (no token within the allowed wait, wait queue full, or in-flight cap
    /// reached) → `503 overloaded`.
    Overloaded,
    /// The store circuit breaker is open (booking lane only) → `503 store_unavailable`.
    StoreUnavailable,
}

impl RefusalKind {
    /// Every kind, in metric-index order.
    pub const ALL: [RefusalKind; 3] = [
        RefusalKind::TooManyRequests,
        RefusalKind::Overloaded,
        RefusalKind::StoreUnavailable,
    ];

    /// The error catalogue code (`error.code` in the response body; also the metric label).
    pub const fn code(self) -> &'static str {
        match self {
            RefusalKind::TooManyRequests => "too_many_requests",
            RefusalKind::Overloaded => "overloaded",
            RefusalKind::StoreUnavailable => "store_unavailable",
        }
    }

    /// The HTTP status code.
    pub const fn status(self) -> u16 {
        match self {
            RefusalKind::TooManyRequests => 429,
            RefusalKind::Overloaded | RefusalKind::StoreUnavailable => 503,
        }
    }

    /// The kind's place in [`RefusalKind::ALL`].
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            RefusalKind::TooManyRequests => 0,
            RefusalKind::Overloaded => 1,
            RefusalKind::StoreUnavailable => 2,
        }
    }
}

/// A refused request: answer `kind.status()` with `kind.code()`, header
/// `Retry-After: retry_after_s` and `details.retry_after_s` with the same value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} (retry after {retry_after_s} s)", kind.code())]
pub struct Refusal {
    /// Why.
    pub kind: RefusalKind,
    /// Whole seconds after which a retry has a fair chance: computed from the actual backlog and
    /// rate, at least 1, jittered, at most `retry_after_s_max`.
    pub retry_after_s: u32,
}

/// How `Retry-After` is finished: cap and jitter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    pub(crate) retry_after_s_max: u32,
    pub(crate) jitter_pct: u32,
}

impl RetryPolicy {
    /// A refusal whose client could succeed after about `wait`: `ceil(wait)`, at least 1 s, plus
    /// a random 0..=max(1, pct% of it) seconds, capped.
    pub(crate) fn refusal(self, kind: RefusalKind, wait: Duration) -> Refusal {
        let base = ceil_secs(wait).clamp(1, self.retry_after_s_max.max(1));
        let spread = (u64::from(base) * u64::from(self.jitter_pct) / 100).max(1);
        let jitter = if self.jitter_pct == 0 {
            0
        } else {
            u32::try_from(random_u64() % (spread + 1)).unwrap_or(0)
        };
        Refusal {
            kind,
            retry_after_s: base
                .saturating_add(jitter)
                .min(self.retry_after_s_max.max(1)),
        }
    }
}

/// Whole seconds, rounded up, saturating.
#[inline]
pub(crate) fn ceil_secs(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

thread_local! {
    static RNG_STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::BuildHasher;
    // RandomState is seeded per process from the OS; mixing the thread id makes threads differ.
    std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id()) | 1
}

/// xorshift64*: not cryptographic, only spreads retries; no lock, no allocation.
#[inline]
fn random_u64() -> u64 {
    RNG_STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_match_the_catalogue() {
        assert_eq!(RefusalKind::TooManyRequests.code(), "too_many_requests");
        assert_eq!(RefusalKind::TooManyRequests.status(), 429);
        assert_eq!(RefusalKind::Overloaded.code(), "overloaded");
        assert_eq!(RefusalKind::Overloaded.status(), 503);
        assert_eq!(RefusalKind::StoreUnavailable.code(), "store_unavailable");
        assert_eq!(RefusalKind::StoreUnavailable.status(), 503);
    }

    #[test]
    fn retry_after_is_at_least_one_jittered_and_capped() {
        let policy = RetryPolicy {
            retry_after_s_max: 60,
            jitter_pct: 25,
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let r = policy.refusal(RefusalKind::Overloaded, Duration::ZERO);
            assert!((1..=2).contains(&r.retry_after_s), "{r:?}");
            let r = policy.refusal(RefusalKind::Overloaded, Duration::from_millis(7_500));
            // base 8, spread max(1, 8*25/100 = 2) → 8..=10
            assert!((8..=10).contains(&r.retry_after_s), "{r:?}");
            seen.insert(r.retry_after_s);
            let r = policy.refusal(RefusalKind::Overloaded, Duration::from_secs(3600));
            assert_eq!(r.retry_after_s, 60);
        }
        assert!(seen.len() > 1, "jitter spreads retries: {seen:?}");
        let exact = RetryPolicy {
            retry_after_s_max: 60,
            jitter_pct: 0,
        };
        assert_eq!(
            exact
                .refusal(RefusalKind::Overloaded, Duration::from_millis(1001))
                .retry_after_s,
            2
        );
    }
}
