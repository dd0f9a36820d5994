//! The store's metrics. Names are constants so that the exporter, the docs and the tests
//! agree. The exporter (`kataar_api::init_metrics`) gives the batch-size histograms
//! ([`BATCH_EVENTS`], [`BATCH_BOOKINGS`]) buckets of powers of two up to 4096.
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `kataar_store_batch_events` | histogram | events per committed batch |
//! | `kataar_store_batch_bookings` | histogram | writes (a booking counts one) per committed batch |
//! | `kataar_store_commit_seconds` | histogram | time from commit start to outcome |
//! | `kataar_store_events_committed_total` | counter | events committed |
//! | `kataar_store_batches_committed_total` | counter | batches committed |
//! | `kataar_store_queue_events` | gauge | events waiting for the writer |
//! | `kataar_store_commit_failures_total{reason}` | counter | batches not committed, by reason |
//! | `kataar_store_in_doubt_total{outcome}` | counter | in-doubt batches, `committed` or `failed` |

/// Events per committed batch (histogram).
pub const BATCH_EVENTS: &str = "kataar_store_batch_events";
/// Writes per committed batch, one per request that made them (histogram).
pub const BATCH_BOOKINGS: &str = "kataar_store_batch_bookings";
/// Commit duration in seconds (histogram).
pub const COMMIT_SECONDS: &str = "kataar_store_commit_seconds";
/// Events committed (counter).
pub const EVENTS_COMMITTED_TOTAL: &str = "kataar_store_events_committed_total";
/// Batches committed (counter).
pub const BATCHES_COMMITTED_TOTAL: &str = "kataar_store_batches_committed_total";
/// Events queued for the writer (gauge).
pub const QUEUE_EVENTS: &str = "kataar_store_queue_events";
/// Batches that failed, label `reason` ([`crate::StoreError::reason`] or `queue_full`).
pub const COMMIT_FAILURES_TOTAL: &str = "kataar_store_commit_failures_total";
/// In-doubt batches resolved, label `outcome` (`committed` or `failed`).
pub const IN_DOUBT_TOTAL: &str = "kataar_store_in_doubt_total";
/// Batches refused by a constraint and split in two to find the offending job.
pub const BATCH_SPLITS_TOTAL: &str = "kataar_store_batch_splits_total";

/// Registers descriptions of every store metric with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(BATCH_EVENTS, "Events per committed store batch");
    metrics::describe_histogram!(
        BATCH_BOOKINGS,
        "Writes per committed store batch (a booking, a cancellation, a check-in: one each)"
    );
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time from commit start to its outcome"
    );
    metrics::describe_counter!(EVENTS_COMMITTED_TOTAL, "Events committed to the store");
    metrics::describe_counter!(BATCHES_COMMITTED_TOTAL, "Batches committed to the store");
    metrics::describe_gauge!(QUEUE_EVENTS, "Events waiting for the store writer");
    metrics::describe_counter!(
        COMMIT_FAILURES_TOTAL,
        "Store batches not committed, by reason"
    );
    metrics::describe_counter!(
        BATCH_SPLITS_TOTAL,
        "Store batches refused by a constraint and split to isolate the offending job"
    );
    metrics::describe_counter!(
        IN_DOUBT_TOTAL,
        "In-doubt store batches, by resolved outcome"
    );
}
