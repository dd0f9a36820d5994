//! The open-model scheduler: requests go out at their intended times whatever the server does
//! (no coordinated omission), latency is measured from the intended time, and what the client
//! could not send (in-flight cap full) is counted as dropped, never hidden. Also a closed-loop
//! runner for measuring a ceiling, and the rate shapes (constant, ramp, spike).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::stats::{Answer, Lane, Stats};

/// What a planned request does (also the trace file's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `GET /v1/availability?district_id=…`.
    Availability,
    /// `POST /v1/auth/otp`.
    Otp,
    /// `POST /v1/auth/otp/verify`.
    Verify,
    /// `POST /v1/beneficiaries`.
    Beneficiary,
    /// `POST /v1/bookings`.
    Booking,
    /// `GET /v1/admin/capacity` (operators).
    Operator,
    /// `GET /` on the hello-world server.
    Hello,
}

impl Kind {
    /// The lane the server puts this request in.
    pub fn lane(self) -> Lane {
        match self {
            Self::Availability | Self::Hello => Lane::Browse,
            Self::Otp | Self::Verify | Self::Beneficiary => Lane::Auth,
            Self::Booking => Lane::Booking,
            Self::Operator => Lane::Operator,
        }
    }
}

/// One request of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// Intended send time, µs after the run starts.
    pub t_us: u64,
    /// What to send.
    pub kind: Kind,
    /// Which simulated client (source address, account) sends it.
    pub client: u32,
}

/// Sends one request and classifies its answer. `seq` is unique per first attempt in a run;
/// `attempt` counts from 0 (retries reuse `seq`, so they reuse the idempotency key).
pub trait Executor: Send + Sync + 'static {
    /// Sends `item` and returns how it ended (never panics; transport errors are `Failed`).
    fn execute(&self, item: Planned, seq: u64, attempt: u32) -> BoxFuture<'static, Answer>;
}

/// Retries as a well-behaved client does them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request including the first (1 = never retry).
    pub attempts_max: u32,
    /// Retries allowed as a fraction of first attempts sent so far (the retry budget).
    pub budget_ratio: f64,
    /// Extra random delay as a fraction of Retry-After (0.5 = up to +50%).
    pub jitter_ratio: f64,
    /// Delay used when a refusal carries no Retry-After.
    pub default_retry_after_s: u64,
    /// Longest Retry-After honoured (longer ones are clamped).
    pub retry_after_s_max: u64,
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            attempts_max: 1,
            budget_ratio: 0.0,
            jitter_ratio: 0.0,
            default_retry_after_s: 1,
            retry_after_s_max: 1,
        }
    }

    /// Up to 3 attempts, retries at most 20% of first attempts, +0..50% jitter.
    pub fn polite() -> Self {
        Self {
            attempts_max: 3,
            budget_ratio: 0.2,
            jitter_ratio: 0.5,
            default_retry_after_s: 1,
            retry_after_s_max: 5,
        }
    }
}

/// Open-model run settings.
#[derive(Debug, Clone)]
pub struct OpenConfig {
    /// Most requests in flight; a request due while it is full is dropped and counted.
    pub inflight_max: usize,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// After the last planned request, how long to wait for answers and retries.
    pub drain_s: u64,
}

/// Default in-flight cap of the open-model client.
pub const INFLIGHT_MAX_DEFAULT: usize = 4_096;
/// Default drain after the schedule ends.
pub const DRAIN_S_DEFAULT: u64 = 5;

struct Shared {
    stats: Mutex<Stats>,
    exec: Arc<dyn Executor>,
    sem: Arc<Semaphore>,
    retry: RetryPolicy,
    first_sent: AtomicU64,
    retries_sent: AtomicU64,
    stopping: AtomicBool,
    start: Instant,
}

fn since_us(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

async fn one_request(
    sh: Arc<Shared>,
    item: Planned,
    seq: u64,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut permit = Some(permit);
    let mut due_us = item.t_us;
    let mut attempt = 0u32;
    loop {
        let answer = sh.exec.execute(item, seq, attempt).await;
        let latency_us = since_us(sh.start).saturating_sub(due_us);
        sh.stats.lock().record(due_us, &answer, latency_us);
        drop(permit.take());
        attempt += 1;
        if !answer.outcome.is_load_refusal() || attempt >= sh.retry.attempts_max {
            return;
        }
        let first = sh.first_sent.load(Ordering::Relaxed) as f64;
        let used = sh.retries_sent.load(Ordering::Relaxed) as f64;
        if used + 1.0 > sh.retry.budget_ratio * first {
            sh.stats.lock().retry_budget_exhausted += 1;
            return;
        }
        let base_s = answer
            .retry_after_s
            .unwrap_or(sh.retry.default_retry_after_s)
            .min(sh.retry.retry_after_s_max) as f64;
        let jitter = rand::thread_rng().gen_range(0.0..=sh.retry.jitter_ratio.max(0.0));
        let delay = Duration::from_secs_f64((base_s * (1.0 + jitter)).max(0.001));
        tokio::time::sleep(delay).await;
        if sh.stopping.load(Ordering::Relaxed) {
            sh.stats.lock().retries_abandoned += 1;
            return;
        }
        due_us = since_us(sh.start);
        match sh.sem.clone().try_acquire_owned() {
            Ok(p) => permit = Some(p),
            Err(_) => {
                sh.stats.lock().dropped(due_us);
                return;
            }
        }
        sh.retries_sent.fetch_add(1, Ordering::Relaxed);
        sh.stats.lock().retried(due_us);
    }
}

/// Runs `plan` (ordered by `t_us`) open-model against `exec` and returns what it measured.
pub async fn run_open<I>(plan: I, exec: Arc<dyn Executor>, cfg: &OpenConfig) -> Stats
where
    I: Iterator<Item = Planned>,
{
    let sh = Arc::new(Shared {
        stats: Mutex::new(Stats::new()),
        exec,
        sem: Arc::new(Semaphore::new(cfg.inflight_max.max(1))),
        retry: cfg.retry.clone(),
        first_sent: AtomicU64::new(0),
        retries_sent: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        start: Instant::now(),
    });
    let tracker = TaskTracker::new();
    for (seq, item) in (0u64..).zip(plan) {
        let due = sh.start + Duration::from_micros(item.t_us);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        sh.stats.lock().offered(item.t_us);
        match sh.sem.clone().try_acquire_owned() {
            Ok(permit) => {
                sh.first_sent.fetch_add(1, Ordering::Relaxed);
                tracker.spawn(one_request(sh.clone(), item, seq, permit));
            }
            Err(_) => sh.stats.lock().dropped(item.t_us),
        }
    }
    tracker.close();
    let half = Duration::from_millis(cfg.drain_s.saturating_mul(500));
    if tokio::time::timeout(half, tracker.wait()).await.is_err() {
        sh.stopping.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(half, tracker.wait()).await;
    }
    sh.stopping.store(true, Ordering::Relaxed);
    let mut guard = sh.stats.lock();
    std::mem::take(&mut *guard)
}

/// Runs `concurrency` workers back to back for `duration` or until `requests_max` requests were
/// sent, whichever comes first (a closed loop: the ceiling, not a latency measurement). `kind`
/// picks each request's kind from its sequence number. Returns the stats and the seconds elapsed.
pub async fn run_closed(
    exec: Arc<dyn Executor>,
    concurrency: u32,
    duration: Duration,
    requests_max: u64,
    kind: impl Fn(u64) -> Kind + Send + Sync + 'static,
) -> (Stats, f64) {
    let stats = Arc::new(Mutex::new(Stats::new()));
    let seq = Arc::new(AtomicU64::new(0));
    let kind = Arc::new(kind);
    let start = Instant::now();
    let end = start + duration;
    let mut handles = Vec::new();
    for c in 0..concurrency.max(1) {
        let (stats, seq, exec, kind) = (stats.clone(), seq.clone(), exec.clone(), kind.clone());
        handles.push(tokio::spawn(async move {
            while Instant::now() < end {
                let s = seq.fetch_add(1, Ordering::Relaxed);
                if s >= requests_max {
                    break;
                }
                let t_us = since_us(start);
                let item = Planned {
                    t_us,
                    kind: kind(s),
                    client: c,
                };
                let answer = exec.execute(item, s, 0).await;
                let lat = since_us(start).saturating_sub(t_us);
                let mut st = stats.lock();
                st.offered(t_us);
                st.record(t_us, &answer, lat);
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let mut guard = stats.lock();
    (std::mem::take(&mut *guard), elapsed_s)
}

/// A rate over time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Shape {
    /// `rate` requests/s throughout.
    Constant {
        /// Requests per second.
        rate: f64,
    },
    /// Linear from `from` to `to` over the duration.
    Ramp {
        /// Starting rate.
        from: f64,
        /// Final rate.
        to: f64,
    },
    /// `base` with a rectangular burst of `peak` from `at_s` for `width_s`.
    Spike {
        /// Rate outside the spike.
        base: f64,
        /// Rate inside it.
        peak: f64,
        /// Spike start (s).
        at_s: f64,
        /// Spike length (s).
        width_s: f64,
    },
    /// The 28 April 2021 opening: linear ramp from 0 to `peak` over `ramp_s` (within the first
    /// minute), then exponential decay with time constant `tau_s` down to `floor_ratio * peak`.
    LaunchDay {
        /// Peak rate.
        peak: f64,
        /// Ramp length (s).
        ramp_s: f64,
        /// Decay time constant (s).
        tau_s: f64,
        /// Rate never falls below this fraction of the peak.
        floor_ratio: f64,
    },
}

impl Shape {
    /// Requests/s at `t_s` of a run lasting `duration_s`.
    pub fn rate_at(&self, t_s: f64, duration_s: f64) -> f64 {
        match *self {
            Self::Constant { rate } => rate,
            Self::Ramp { from, to } => from + (to - from) * (t_s / duration_s.max(1e-9)),
            Self::Spike {
                base,
                peak,
                at_s,
                width_s,
            } => {
                if t_s >= at_s && t_s < at_s + width_s {
                    peak
                } else {
                    base
                }
            }
            Self::LaunchDay {
                peak,
                ramp_s,
                tau_s,
                floor_ratio,
            } => {
                if t_s < ramp_s {
                    peak * (t_s / ramp_s.max(1e-9))
                } else {
                    let decayed = peak * (-(t_s - ramp_s) / tau_s.max(1e-9)).exp();
                    decayed.max(peak * floor_ratio)
                }
            }
        }
        .max(0.0)
    }
}

/// A deterministic schedule from a [`Shape`]: kinds drawn from `mix` (weights), clients uniform.
pub struct ShapePlan {
    shape: Shape,
    duration_ms: u64,
    mix: Vec<(Kind, f64)>,
    mix_total: f64,
    clients: u32,
    rng: StdRng,
    ms: u64,
    acc: f64,
    pending: u64,
    pending_n: u64,
}

impl ShapePlan {
    /// A plan of `shape` for `duration_s`, with request kinds weighted by `mix` and `clients`
    /// simulated clients; `seed` makes it reproducible.
    pub fn new(
        shape: Shape,
        duration_s: f64,
        mix: Vec<(Kind, f64)>,
        clients: u32,
        seed: u64,
    ) -> Self {
        let mix_total = mix.iter().map(|(_, w)| w.max(0.0)).sum::<f64>();
        Self {
            shape,
            duration_ms: (duration_s * 1000.0).max(0.0) as u64,
            mix,
            mix_total,
            clients: clients.max(1),
            rng: StdRng::seed_from_u64(seed),
            ms: 0,
            acc: 0.0,
            pending: 0,
            pending_n: 0,
        }
    }

    fn pick_kind(&mut self) -> Kind {
        let mut x = self.rng.gen_range(0.0..self.mix_total.max(1e-12));
        for (k, w) in &self.mix {
            if x < *w {
                return *k;
            }
            x -= w;
        }
        self.mix.last().map_or(Kind::Hello, |(k, _)| *k)
    }
}

impl Iterator for ShapePlan {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        loop {
            if self.pending < self.pending_n {
                let t_us = self.ms * 1000 + self.pending * 1000 / self.pending_n;
                self.pending += 1;
                if self.pending == self.pending_n {
                    self.ms += 1;
                    self.pending = 0;
                    self.pending_n = 0;
                }
                let kind = self.pick_kind();
                let client = self.rng.gen_range(0..self.clients);
                return Some(Planned { t_us, kind, client });
            }
            if self.ms >= self.duration_ms || self.mix.is_empty() {
                return None;
            }
            let duration_s = self.duration_ms as f64 / 1000.0;
            self.acc += self.shape.rate_at(self.ms as f64 / 1000.0, duration_s) / 1000.0;
            // A tiny epsilon so that rate * duration requests come out despite float rounding.
            let n = (self.acc + 1e-9).floor();
            self.acc -= n;
            if n >= 1.0 {
                self.pending_n = n as u64;
                self.pending = 0;
            } else {
                self.ms += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_plan_has_rate_times_duration_items_in_order() {
        let plan: Vec<_> = ShapePlan::new(
            Shape::Constant { rate: 1500.0 },
            2.0,
            vec![(Kind::Hello, 1.0)],
            4,
            1,
        )
        .collect();
        assert!((2995..=3000).contains(&plan.len()), "{}", plan.len());
        assert!(plan.windows(2).all(|w| w[0].t_us <= w[1].t_us));
        assert!(plan.iter().all(|p| p.t_us < 2_000_000 && p.client < 4));
    }

    #[test]
    fn spike_plan_is_dense_in_the_spike() {
        let shape = Shape::Spike {
            base: 100.0,
            peak: 1000.0,
            at_s: 1.0,
            width_s: 1.0,
        };
        let plan: Vec<_> = ShapePlan::new(shape, 3.0, vec![(Kind::Hello, 1.0)], 1, 1).collect();
        let in_spike = plan
            .iter()
            .filter(|p| (1_000_000..2_000_000).contains(&p.t_us))
            .count();
        assert!((990..=1000).contains(&in_spike), "{in_spike}");
        assert!((1180..=1200).contains(&plan.len()), "{}", plan.len());
    }
}
