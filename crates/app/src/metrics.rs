//! The application's metrics: booking outcomes and live capacity. Labels are bounded: an
//! outcome is a catalogue code, a district is one of the drive's districts (hundreds at most).

use crate::state::AppState;
use kataar_domain::Dose;
use kataar_inventory::CentreFilter;
use std::time::Duration;

/// Bookings answered, by outcome (`created`, `replayed`, or the refusal's catalogue code).
pub const BOOKINGS_TOTAL: &str = "kataar_bookings_total";

/// Online places left per district and dose over the next `AVAILABLE_DAYS` days.
pub const AVAILABLE_PLACES: &str = "kataar_available_places";

/// Days ahead counted in [`AVAILABLE_PLACES`].
pub const AVAILABLE_DAYS: u32 = 7;

/// How often [`AVAILABLE_PLACES`] is recomputed from memory, in seconds.
pub const AVAILABLE_EVERY_S: u64 = 5;

/// Counts one booking answer.
pub fn booking_outcome(outcome: &'static str) {
    metrics::counter!(BOOKINGS_TOTAL, "outcome" => outcome).increment(1);
}

/// Describes the metrics (help texts).
pub fn describe() {
    metrics::describe_counter!(BOOKINGS_TOTAL, "Bookings answered, by outcome.");
    metrics::describe_gauge!(
        AVAILABLE_PLACES,
        "Online places left per district and dose over the next 7 days."
    );
}

/// Recomputes the capacity gauges every few seconds, from memory. The walk over every
/// district's sessions runs on the blocking pool (`spawn_blocking`), so however large the drive
/// it never holds an async worker; a walk still running when the next tick comes is not doubled.
pub fn spawn_capacity_gauges(state: AppState) {
    describe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(AVAILABLE_EVERY_S));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let walk = state.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || publish_capacity(&walk)).await {
                tracing::warn!(error = %e, "the capacity gauge walk failed");
            }
        }
    });
}

/// One walk: sets [`AVAILABLE_PLACES`] for every district and dose. Blocking (runs in time
/// proportional to the sessions of the next [`AVAILABLE_DAYS`] days).
pub fn publish_capacity(state: &AppState) {
    let today = state.today();
    for s in state.inv.states() {
        for d in state.inv.districts(s.state_id) {
            let mut left = [0u64; 2];
            for c in state.inv.centre_ids(&CentreFilter::District(d.district_id)) {
                for session in state.inv.centre_sessions(c, today, AVAILABLE_DAYS) {
                    if session.closed {
                        continue;
                    }
                    for dose in Dose::ALL {
                        left[dose.index()] += u64::from(session.online_available(dose));
                    }
                }
            }
            for dose in Dose::ALL {
                metrics::gauge!(
                    AVAILABLE_PLACES,
                    "district" => d.district_id.0.to_string(),
                    "dose" => dose.number().to_string()
                )
                .set(left[dose.index()] as f64);
            }
        }
    }
}
