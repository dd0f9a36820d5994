//! `AdmissionConfig`: every admission limit, with its unit last and a documented default.
//!
//! The doc comment of each field is the configuration reference. Defaults are sized for a 2-core
//! box where the engine decides a booking in about a microsecond, group commit stores tens of
//! thousands of bookings per second and HTTP itself tops out near 75k requests/s; the load kit
//! (`kataar-loadgen`) is how they are tuned.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lane::Lane;

/// Admission limits. Deserialises from a partial table (missing keys take their defaults);
/// unknown keys are rejected so a typo is not silently ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Operator lane (`/v1/admin/*`): sustained admissions per second. Default 500: centre staff
    /// are few; the lane is small but reserved, citizens' traffic never spends it.
    pub operator_rate_per_s: f64,
    /// Operator lane: tokens available at once after a quiet spell. Default 200.
    pub operator_burst: u32,
    /// Operator lane: requests that may wait for a token at once; more are refused at once
    /// (`503 overloaded`). Default 256.
    pub operator_queue_max: u32,
    /// Operator lane: the longest a request waits for a token while the queue keeps draining.
    /// Default 2000 ms (staff at a desk prefer a slow answer to a retry).
    pub operator_queue_wait_ms_max: u64,
    /// Operator lane: admitted requests being served at once; more are refused. Default 256.
    pub operator_in_flight_max: u32,

    /// Booking lane (citizens' writes): sustained admissions per second. Default 4000: what
    /// one 2-core box books end to end (`loadtest/RESULTS.md`: ~4k bookings/s, CPU-bound at
    /// ~210 µs per booking); admitting more only queues work inside the process.
    pub booking_rate_per_s: f64,
    /// Booking lane: burst. Default 1000.
    pub booking_burst: u32,
    /// Booking lane: wait queue length. Default 1024 (about 250 ms of work at the default rate).
    pub booking_queue_max: u32,
    /// Booking lane: longest wait for a token while the queue keeps draining. Default 200 ms.
    pub booking_queue_wait_ms_max: u64,
    /// Booking lane: admitted writes in flight (decided and waiting for their commit). Default
    /// 1024: about 250 ms of commits at the default rate; past it the store is falling behind and
    /// new writes are refused rather than piled up.
    pub booking_in_flight_max: u32,

    /// Auth lane (OTP requests and verification): sustained admissions per second. Default 2000.
    pub auth_rate_per_s: f64,
    /// Auth lane: burst. Default 500.
    pub auth_burst: u32,
    /// Auth lane: wait queue length. Default 1024.
    pub auth_queue_max: u32,
    /// Auth lane: longest wait for a token while the queue keeps draining. Default 500 ms.
    pub auth_queue_wait_ms_max: u64,
    /// Auth lane: admitted requests in flight. Default 1024.
    pub auth_in_flight_max: u32,

    /// Browse lane (all reads, served from memory): sustained admissions per second. Default
    /// 15000: a 2-core box serves ~18k cached district pages/s alone, and reads share the CPU
    /// with bookings.
    pub browse_rate_per_s: f64,
    /// Browse lane: burst. Default 3000.
    pub browse_burst: u32,
    /// Browse lane: wait queue length. Default 4096.
    pub browse_queue_max: u32,
    /// Browse lane: longest wait for a token while the queue keeps draining. Default 100 ms (a
    /// refused poll is cheap to repeat; a slow one holds a connection).
    pub browse_queue_wait_ms_max: u64,
    /// Browse lane: admitted requests in flight. Default 2048.
    pub browse_in_flight_max: u32,

    /// CoDel-style standing-queue detection, every lane: when a lane's wait queue has not been
    /// empty for this long, the queue is "standing" and the allowed wait drops to
    /// `queue_wait_ms_standing`. Default 100 ms.
    pub queue_drain_interval_ms: u64,
    /// The allowed wait while a lane's queue is standing (see `queue_drain_interval_ms`); never
    /// more than the lane's own `*_queue_wait_ms_max`. Default 5 ms.
    pub queue_wait_ms_standing: u64,

    /// Per client address (all lanes together): sustained requests per second. Default 20. Many
    /// citizens may share one address behind carrier NAT; lower this only with that in mind.
    pub client_rate_per_s: f64,
    /// Per client address: burst. Default 100 (a CoWIN-era client's burst of 100 reads in a few
    /// seconds is served).
    pub client_burst: u32,
    /// IPv6 clients are keyed by this many leading bits of their address (a subscriber usually
    /// owns a whole /64). 1..=128, default 64.
    pub client_ipv6_prefix_bits: u8,
    /// Per account (requests that carry a citizen token): sustained requests per second.
    /// Default 5.
    pub account_rate_per_s: f64,
    /// Per account: burst. Default 30.
    pub account_burst: u32,
    /// Per client address (all lanes together): admitted requests in flight at once; more are
    /// refused with `429 too_many_requests` and `Retry-After`. Default 128: far above what one
    /// household keeps open, low enough that a few hosts holding requests open cannot fill a
    /// lane's in-flight cap (raise it for a carrier NAT or a proxy that is not trusted).
    pub client_in_flight_max: u32,
    /// Per account (requests that carry a citizen token): admitted requests in flight at once;
    /// more are refused with `429 too_many_requests`. Default 8 (an account has at most a few
    /// beneficiaries).
    pub account_in_flight_max: u32,
    /// Keyed state bound, for the client map and for the account map each. An entry is about
    /// 50 bytes. At the bound, a key not already tracked is admitted without a per-key limit (the
    /// lane limits still apply) and counted in `kataar_admission_keyed_untracked_total`, until
    /// housekeeping drops idle keys. Default 500000.
    pub keyed_entries_max: u32,
    /// How often the server should run [`crate::Admission::housekeeping`] (drops keyed entries
    /// whose bucket is full again, so they cost nothing to forget). Default 1000 ms.
    pub housekeeping_interval_ms: u64,

    /// `Retry-After` is never more than this. Default 60 s.
    pub retry_after_s_max: u32,
    /// Random jitter added to `Retry-After`, as a percentage of the computed value (at least
    /// 1 s of spread), so refused clients do not come back in lock-step. Default 25 %.
    pub retry_after_jitter_pct: u32,

    /// Store circuit breaker: consecutive store failures that open it. Default 5.
    pub breaker_failures_max: u32,
    /// Store circuit breaker: how long it stays open (booking-lane requests refused with
    /// `503 store_unavailable`) before one probe is let through. Default 2000 ms.
    pub breaker_open_ms: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            operator_rate_per_s: 500.0,
            operator_burst: 200,
            operator_queue_max: 256,
            operator_queue_wait_ms_max: 2000,
            operator_in_flight_max: 256,

            booking_rate_per_s: 4_000.0,
            booking_burst: 1000,
            booking_queue_max: 1024,
            booking_queue_wait_ms_max: 200,
            booking_in_flight_max: 1024,

            auth_rate_per_s: 2000.0,
            auth_burst: 500,
            auth_queue_max: 1024,
            auth_queue_wait_ms_max: 500,
            auth_in_flight_max: 1024,

            browse_rate_per_s: 15_000.0,
            browse_burst: 3000,
            browse_queue_max: 4096,
            browse_queue_wait_ms_max: 100,
            browse_in_flight_max: 2048,

            queue_drain_interval_ms: 100,
            queue_wait_ms_standing: 5,

            client_rate_per_s: 20.0,
            client_burst: 100,
            client_ipv6_prefix_bits: 64,
            account_rate_per_s: 5.0,
            account_burst: 30,
            client_in_flight_max: 128,
            account_in_flight_max: 8,
            keyed_entries_max: 500_000,
            housekeeping_interval_ms: 1000,

            retry_after_s_max: 60,
            retry_after_jitter_pct: 25,

            breaker_failures_max: 5,
            breaker_open_ms: 2000,
        }
    }
}

/// A configuration value that cannot work, named by its key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("admission config `{key}`: {reason}")]
pub struct ConfigError {
    /// The offending key, as spelled in the config file.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One lane's limits, gathered from the flat keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneLimits {
    /// Sustained admissions per second.
    pub rate_per_s: f64,
    /// Burst.
    pub burst: u32,
    /// Wait queue length.
    pub queue_max: u32,
    /// Longest wait while the queue keeps draining.
    pub queue_wait_max: Duration,
    /// Admitted requests in flight.
    pub in_flight_max: u32,
}

impl AdmissionConfig {
    /// The limits of one lane.
    pub fn lane(&self, lane: Lane) -> LaneLimits {
        let (rate_per_s, burst, queue_max, wait_ms, in_flight_max) = match lane {
            Lane::Operator => (
                self.operator_rate_per_s,
                self.operator_burst,
                self.operator_queue_max,
                self.operator_queue_wait_ms_max,
                self.operator_in_flight_max,
            ),
            Lane::Booking => (
                self.booking_rate_per_s,
                self.booking_burst,
                self.booking_queue_max,
                self.booking_queue_wait_ms_max,
                self.booking_in_flight_max,
            ),
            Lane::Auth => (
                self.auth_rate_per_s,
                self.auth_burst,
                self.auth_queue_max,
                self.auth_queue_wait_ms_max,
                self.auth_in_flight_max,
            ),
            Lane::Browse => (
                self.browse_rate_per_s,
                self.browse_burst,
                self.browse_queue_max,
                self.browse_queue_wait_ms_max,
                self.browse_in_flight_max,
            ),
        };
        LaneLimits {
            rate_per_s,
            burst,
            queue_max,
            queue_wait_max: Duration::from_millis(wait_ms),
            in_flight_max,
        }
    }

    /// The housekeeping period (`housekeeping_interval_ms`).
    pub fn housekeeping_interval(&self) -> Duration {
        Duration::from_millis(self.housekeeping_interval_ms)
    }

    /// Checks every value; the first bad one is named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rates: [(&'static str, f64); 6] = [
            ("operator_rate_per_s", self.operator_rate_per_s),
            ("booking_rate_per_s", self.booking_rate_per_s),
            ("auth_rate_per_s", self.auth_rate_per_s),
            ("browse_rate_per_s", self.browse_rate_per_s),
            ("client_rate_per_s", self.client_rate_per_s),
            ("account_rate_per_s", self.account_rate_per_s),
        ];
        for (key, rate) in rates {
            // At most 10^9/s (one token per nanosecond), at least one per 1000 s.
            if !(rate.is_finite() && (0.001..=1e9).contains(&rate)) {
                return Err(ConfigError {
                    key,
                    reason: "must be a number between 0.001 and 1e9",
                });
            }
        }
        let positive: [(&'static str, u64); 16] = [
            ("client_in_flight_max", self.client_in_flight_max.into()),
            ("account_in_flight_max", self.account_in_flight_max.into()),
            ("operator_burst", self.operator_burst.into()),
            ("booking_burst", self.booking_burst.into()),
            ("auth_burst", self.auth_burst.into()),
            ("browse_burst", self.browse_burst.into()),
            ("client_burst", self.client_burst.into()),
            ("account_burst", self.account_burst.into()),
            ("operator_in_flight_max", self.operator_in_flight_max.into()),
            ("booking_in_flight_max", self.booking_in_flight_max.into()),
            ("auth_in_flight_max", self.auth_in_flight_max.into()),
            ("browse_in_flight_max", self.browse_in_flight_max.into()),
            ("queue_drain_interval_ms", self.queue_drain_interval_ms),
            ("housekeeping_interval_ms", self.housekeeping_interval_ms),
            ("retry_after_s_max", self.retry_after_s_max.into()),
            ("breaker_failures_max", self.breaker_failures_max.into()),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError {
                    key,
                    reason: "must be at least 1",
                });
            }
        }
        if !(1..=128).contains(&self.client_ipv6_prefix_bits) {
            return Err(ConfigError {
                key: "client_ipv6_prefix_bits",
                reason: "must be between 1 and 128",
            });
        }
        if self.retry_after_jitter_pct > 100 {
            return Err(ConfigError {
                key: "retry_after_jitter_pct",
                reason: "must be at most 100",
            });
        }
        // Waits and cool-downs above an hour are certainly a unit mistake.
        const HOUR_MS: u64 = 3_600_000;
        let waits: [(&'static str, u64); 6] = [
            (
                "operator_queue_wait_ms_max",
                self.operator_queue_wait_ms_max,
            ),
            ("booking_queue_wait_ms_max", self.booking_queue_wait_ms_max),
            ("auth_queue_wait_ms_max", self.auth_queue_wait_ms_max),
            ("browse_queue_wait_ms_max", self.browse_queue_wait_ms_max),
            ("queue_wait_ms_standing", self.queue_wait_ms_standing),
            ("breaker_open_ms", self.breaker_open_ms),
        ];
        for (key, value) in waits {
            if value > HOUR_MS {
                return Err(ConfigError {
                    key,
                    reason: "must be at most 3600000 (one hour)",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let config = AdmissionConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: AdmissionConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn partial_table_takes_defaults_and_typos_are_rejected() {
        let config: AdmissionConfig = toml::from_str("booking_rate_per_s = 100.0").unwrap();
        assert_eq!(config.booking_rate_per_s, 100.0);
        assert_eq!(
            config.booking_burst,
            AdmissionConfig::default().booking_burst
        );
        assert!(toml::from_str::<AdmissionConfig>("booking_rate = 100.0").is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let config = AdmissionConfig {
            client_burst: 0,
            ..AdmissionConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().key, "client_burst");
        let config = AdmissionConfig {
            auth_rate_per_s: f64::NAN,
            ..AdmissionConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().key, "auth_rate_per_s");
        let config = AdmissionConfig {
            client_ipv6_prefix_bits: 0,
            ..AdmissionConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().key,
            "client_ipv6_prefix_bits"
        );
    }
}
