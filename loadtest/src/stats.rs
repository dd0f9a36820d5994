//! What a run measured: HDR latency histograms per lane and outcome (latency from the intended
//! send time, so a slow server cannot hide its queue), counters, and a per-second time series.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded (µs); slower answers are clamped to it.
pub const LATENCY_US_MAX: u64 = 120_000_000;
/// Longest time series kept (seconds); later seconds fold into the last one.
pub const SERIES_SECONDS_MAX: usize = 3_600;
/// Most booking ids kept for the L verdict; past it the verdict says it checked a prefix.
pub const BOOKING_IDS_MAX: usize = 5_000_000;

/// The admission lanes the server distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Availability and other public reads.
    Browse,
    /// OTP send and verify, beneficiary registration.
    Auth,
    /// Booking writes.
    Booking,
    /// Operators' API.
    Operator,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Any 2xx (or 304).
    Ok,
    /// 409: an answered business refusal (pool full, already booked, ...).
    Refused409,
    /// 429 with (we hope) Retry-After.
    Throttled429,
    /// 503 (overloaded, store unavailable).
    Overloaded503,
    /// Any other 4xx.
    ClientError,
    /// 5xx other than 503, transport error or timeout.
    Failed,
}

impl Outcome {
    /// Classifies an HTTP status.
    pub fn from_status(status: u16) -> Self {
        match status {
            200..=299 | 304 => Self::Ok,
            409 => Self::Refused409,
            429 => Self::Throttled429,
            503 => Self::Overloaded503,
            400..=499 => Self::ClientError,
            _ => Self::Failed,
        }
    }

    /// Whether the server explicitly refused for load (and the client may retry later).
    pub fn is_load_refusal(self) -> bool {
        matches!(self, Self::Throttled429 | Self::Overloaded503)
    }
}

/// One answer as the executor saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Lane of the request.
    pub lane: Lane,
    /// Classified outcome.
    pub outcome: Outcome,
    /// HTTP status, 0 for transport errors.
    pub status: u16,
    /// `Retry-After` in seconds, if any.
    pub retry_after_s: Option<u64>,
    /// The booking id of a 201 booking.
    pub booking_id: Option<i64>,
}

impl Answer {
    /// A transport error or timeout.
    pub fn failed(lane: Lane) -> Self {
        Self {
            lane,
            outcome: Outcome::Failed,
            status: 0,
            retry_after_s: None,
            booking_id: None,
        }
    }
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    // Bounds are constants valid by construction (1 <= low, high >= 2 * low, sigfig <= 5), so
    // creation cannot fail; a failure would be a programming error caught by every test.
    let sigfig = sigfig.min(5);
    match Histogram::new_with_bounds(1, LATENCY_US_MAX, sigfig) {
        Ok(h) => h,
        Err(e) => panic!("histogram bounds are constants: {e:?}"),
    }
}

/// Counters and a coarse histogram for one second of intended send time.
#[derive(Debug, Clone)]
pub struct Second {
    /// Requests due this second (first attempts).
    pub offered: u64,
    /// Not sent: the in-flight cap was full.
    pub dropped: u64,
    /// Retries due this second.
    pub retries: u64,
    /// Answers by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Latency of every answer due this second (µs).
    pub latency: Histogram<u64>,
}

impl Second {
    fn new() -> Self {
        Self {
            offered: 0,
            dropped: 0,
            retries: 0,
            outcomes: BTreeMap::new(),
            latency: histogram(2),
        }
    }
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Stats {
    /// Latency per (lane, outcome), µs.
    pub hists: BTreeMap<(Lane, Outcome), Histogram<u64>>,
    /// Per second of intended send time.
    pub series: Vec<Second>,
    /// First attempts due.
    pub offered: u64,
    /// First attempts and retries actually sent.
    pub sent: u64,
    /// Not sent because the in-flight cap was full ("dropped by client").
    pub dropped: u64,
    /// Retries sent.
    pub retries: u64,
    /// Retries not sent: the retry budget was spent.
    pub retry_budget_exhausted: u64,
    /// Retries not sent: the run ended first.
    pub retries_abandoned: u64,
    /// Booking ids answered 201 (for the L verdict), at most [`BOOKING_IDS_MAX`].
    pub booking_ids: Vec<i64>,
    /// Whether more booking ids were seen than kept.
    pub booking_ids_truncated: bool,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

fn second_index(t_us: u64) -> usize {
    usize::try_from(t_us / 1_000_000)
        .unwrap_or(usize::MAX)
        .min(SERIES_SECONDS_MAX - 1)
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        Self {
            hists: BTreeMap::new(),
            series: Vec::new(),
            offered: 0,
            sent: 0,
            dropped: 0,
            retries: 0,
            retry_budget_exhausted: 0,
            retries_abandoned: 0,
            booking_ids: Vec::new(),
            booking_ids_truncated: false,
        }
    }

    fn second(&mut self, t_us: u64) -> &mut Second {
        let i = second_index(t_us);
        while self.series.len() <= i {
            self.series.push(Second::new());
        }
        &mut self.series[i]
    }

    /// A first attempt was due at `t_us`.
    pub fn offered(&mut self, t_us: u64) {
        self.offered += 1;
        self.second(t_us).offered += 1;
    }

    /// A request due at `t_us` was not sent (in-flight cap full).
    pub fn dropped(&mut self, t_us: u64) {
        self.dropped += 1;
        self.second(t_us).dropped += 1;
    }

    /// A retry was due at `t_us` and sent.
    pub fn retried(&mut self, t_us: u64) {
        self.retries += 1;
        self.second(t_us).retries += 1;
    }

    /// An answer to a request due at `t_us`, `latency_us` after that.
    pub fn record(&mut self, t_us: u64, answer: &Answer, latency_us: u64) {
        self.sent += 1;
        let v = latency_us.clamp(1, LATENCY_US_MAX);
        let h = self
            .hists
            .entry((answer.lane, answer.outcome))
            .or_insert_with(|| histogram(3));
        let _ = h.record(v);
        let s = self.second(t_us);
        *s.outcomes.entry(answer.outcome).or_insert(0) += 1;
        let _ = s.latency.record(v);
        if let Some(id) = answer.booking_id {
            if self.booking_ids.len() < BOOKING_IDS_MAX {
                self.booking_ids.push(id);
            } else {
                self.booking_ids_truncated = true;
            }
        }
    }

    /// Count of answers with `outcome` in `lane` (any lane if `None`).
    pub fn count(&self, lane: Option<Lane>, outcome: Outcome) -> u64 {
        self.hists
            .iter()
            .filter(|((l, o), _)| *o == outcome && lane.is_none_or(|x| x == *l))
            .map(|(_, h)| h.len())
            .sum()
    }

    /// Latency histogram merged over the given lane/outcome filter.
    pub fn merged(&self, lane: Option<Lane>, outcome: Option<Outcome>) -> Histogram<u64> {
        let mut m = histogram(3);
        for ((l, o), h) in &self.hists {
            if lane.is_none_or(|x| x == *l) && outcome.is_none_or(|x| x == *o) {
                let _ = m.add(h);
            }
        }
        m
    }

    /// The serialisable summary of the run over `duration_s` seconds of schedule.
    pub fn summary(&self, duration_s: f64) -> RunSummary {
        let d = duration_s.max(1e-9);
        let mut lanes: BTreeMap<Lane, BTreeMap<Outcome, LatencySummary>> = BTreeMap::new();
        for ((l, o), h) in &self.hists {
            lanes
                .entry(*l)
                .or_default()
                .insert(*o, LatencySummary::of(h));
        }
        let mut outcomes: BTreeMap<Outcome, u64> = BTreeMap::new();
        for ((_, o), h) in &self.hists {
            *outcomes.entry(*o).or_insert(0) += h.len();
        }
        let series = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let get = |o: Outcome| s.outcomes.get(&o).copied().unwrap_or(0);
                SecondSummary {
                    t_s: i as u64,
                    offered: s.offered + s.retries,
                    admitted: get(Outcome::Ok)
                        + get(Outcome::Refused409)
                        + get(Outcome::ClientError),
                    ok: get(Outcome::Ok),
                    refused: get(Outcome::Throttled429) + get(Outcome::Overloaded503),
                    failed: get(Outcome::Failed) + s.dropped,
                    dropped: s.dropped,
                    p50_ms: ms(s.latency.value_at_quantile(0.5)),
                    p99_ms: ms(s.latency.value_at_quantile(0.99)),
                    p999_ms: ms(s.latency.value_at_quantile(0.999)),
                }
            })
            .collect();
        let ok_booking = self.count(Some(Lane::Booking), Outcome::Ok);
        RunSummary {
            duration_s,
            offered: self.offered,
            offered_per_s: self.offered as f64 / d,
            sent: self.sent,
            dropped_by_client: self.dropped,
            retries: self.retries,
            retry_budget_exhausted: self.retry_budget_exhausted,
            retries_abandoned: self.retries_abandoned,
            ok_per_s: self.count(None, Outcome::Ok) as f64 / d,
            bookings_ok: ok_booking,
            bookings_ok_per_s: ok_booking as f64 / d,
            answered_per_s: self.sent as f64 / d,
            outcomes,
            lanes,
            series,
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Latency figures of one histogram (ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises `h` (µs).
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One second of the time series (by intended send time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondSummary {
    /// Seconds since the run started.
    pub t_s: u64,
    /// Requests due (first attempts and retries).
    pub offered: u64,
    /// Answered by the application (2xx, 409, other 4xx).
    pub admitted: u64,
    /// Of which 2xx.
    pub ok: u64,
    /// Refused for load (429, 503).
    pub refused: u64,
    /// Failed (5xx other than 503, transport errors, timeouts) plus dropped by the client.
    pub failed: u64,
    /// Not sent: the client's in-flight cap was full.
    pub dropped: u64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// p99 latency (ms).
    pub p99_ms: f64,
    /// p99.9 latency (ms).
    pub p999_ms: f64,
}

/// The figures of one run as written to `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    /// Scheduled duration.
    pub duration_s: f64,
    /// First attempts due.
    pub offered: u64,
    /// Offered rate.
    pub offered_per_s: f64,
    /// Requests sent (first attempts and retries) and answered or failed.
    pub sent: u64,
    /// Not sent because the in-flight cap was full; counted, never hidden.
    pub dropped_by_client: u64,
    /// Retries sent.
    pub retries: u64,
    /// Retries skipped: budget spent.
    pub retry_budget_exhausted: u64,
    /// Retries skipped: run over.
    pub retries_abandoned: u64,
    /// 2xx per second over the schedule.
    pub ok_per_s: f64,
    /// Bookings answered 201.
    pub bookings_ok: u64,
    /// Bookings answered 201 per second (goodput).
    pub bookings_ok_per_s: f64,
    /// Answers per second.
    pub answered_per_s: f64,
    /// Answers by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Latency per lane and outcome.
    pub lanes: BTreeMap<Lane, BTreeMap<Outcome, LatencySummary>>,
    /// Per-second series.
    pub series: Vec<SecondSummary>,
}
