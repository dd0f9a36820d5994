//! Admission metrics (the `metrics` crate; the server installs the Prometheus recorder).
//!
//! Handles are registered once when an [`crate::Admission`] or [`crate::Breaker`] is built, so
//! the request path only bumps atomics (no label allocation, no registry lookup). Install the
//! recorder *before* building them. Labels are bounded: `lane` (4 values), `reason` (3), `key`
//! (2).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `kataar_admission_admitted_total` | counter | `lane` | requests admitted |
//! | `kataar_admission_refused_total` | counter | `lane`, `reason` (`too_many_requests`, `overloaded`, `store_unavailable`) | requests refused |
//! | `kataar_admission_queue_depth` | gauge | `lane` | requests waiting for a token now |
//! | `kataar_admission_queue_wait_seconds` | histogram | `lane` | time waited by requests that queued and were admitted |
//! | `kataar_admission_in_flight` | gauge | `lane` | admitted requests not yet finished (permits alive), sampled at each housekeeping |
//! | `kataar_admission_keyed_entries` | gauge | `key` (`client`, `account`) | keys tracked, after the last housekeeping |
//! | `kataar_admission_keyed_untracked_total` | counter | `key` | decisions made for a new key while the keyed map was at `keyed_entries_max` |
//! | `kataar_admission_breaker_state` | gauge | | store breaker: 0 closed, 1 half-open, 2 open |

use metrics::{Counter, Gauge, Histogram};

use crate::lane::Lane;
use crate::refusal::RefusalKind;

/// Metric names, for the server's documentation and tests.
pub const ADMITTED_TOTAL: &str = "kataar_admission_admitted_total";
/// See the module table.
pub const REFUSED_TOTAL: &str = "kataar_admission_refused_total";
/// See the module table.
pub const QUEUE_DEPTH: &str = "kataar_admission_queue_depth";
/// See the module table.
pub const QUEUE_WAIT_SECONDS: &str = "kataar_admission_queue_wait_seconds";
/// See the module table.
pub const IN_FLIGHT: &str = "kataar_admission_in_flight";
/// See the module table.
pub const KEYED_ENTRIES: &str = "kataar_admission_keyed_entries";
/// See the module table.
pub const KEYED_UNTRACKED_TOTAL: &str = "kataar_admission_keyed_untracked_total";
/// See the module table.
pub const BREAKER_STATE: &str = "kataar_admission_breaker_state";

/// Registers descriptions and units for every admission metric with the installed recorder.
/// Call once at start-up, after installing the recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(ADMITTED_TOTAL, "Requests admitted, by lane.");
    metrics::describe_counter!(
        REFUSED_TOTAL,
        "Requests refused by admission, by lane and reason."
    );
    metrics::describe_gauge!(QUEUE_DEPTH, "Requests waiting for a lane token now.");
    metrics::describe_histogram!(
        QUEUE_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "Time waited for a lane token by requests that queued and were admitted."
    );
    metrics::describe_gauge!(IN_FLIGHT, "Admitted requests not yet finished, by lane.");
    metrics::describe_gauge!(KEYED_ENTRIES, "Keys tracked by the keyed limiters.");
    metrics::describe_counter!(
        KEYED_UNTRACKED_TOTAL,
        "Decisions for new keys made while the keyed map was full (not individually limited)."
    );
    metrics::describe_gauge!(
        BREAKER_STATE,
        "Store circuit breaker: 0 closed, 1 half-open, 2 open."
    );
}

/// One lane's handles.
#[derive(Clone, Debug)]
pub(crate) struct LaneMetrics {
    pub(crate) admitted: Counter,
    pub(crate) refused: [Counter; 3],
    pub(crate) queue_depth: Gauge,
    pub(crate) queue_wait: Histogram,
    pub(crate) in_flight: Gauge,
}

impl LaneMetrics {
    pub(crate) fn new(lane: Lane) -> Self {
        let name = lane.as_str();
        Self {
            admitted: metrics::counter!(ADMITTED_TOTAL, "lane" => name),
            refused: RefusalKind::ALL
                .map(|k| metrics::counter!(REFUSED_TOTAL, "lane" => name, "reason" => k.code())),
            queue_depth: metrics::gauge!(QUEUE_DEPTH, "lane" => name),
            queue_wait: metrics::histogram!(QUEUE_WAIT_SECONDS, "lane" => name),
            in_flight: metrics::gauge!(IN_FLIGHT, "lane" => name),
        }
    }

    #[inline]
    pub(crate) fn refused(&self, kind: RefusalKind) {
        self.refused[kind.index()].increment(1);
    }
}

/// One keyed limiter's handles.
#[derive(Clone, Debug)]
pub(crate) struct KeyedMetrics {
    pub(crate) entries: Gauge,
    pub(crate) untracked: Counter,
}

impl KeyedMetrics {
    pub(crate) fn new(key: &'static str) -> Self {
        Self {
            entries: metrics::gauge!(KEYED_ENTRIES, "key" => key),
            untracked: metrics::counter!(KEYED_UNTRACKED_TOTAL, "key" => key),
        }
    }
}

/// The breaker's gauge.
pub(crate) fn breaker_state() -> Gauge {
    metrics::gauge!(BREAKER_STATE)
}
