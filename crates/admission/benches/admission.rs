//! The admission decision (admit and refuse) in nanoseconds, next to a baseline: a plain token
//! bucket behind a `parking_lot::Mutex`. Single-threaded and with two threads contending (the
//! reference box has two cores). A Prometheus recorder is installed so metric updates are
//! counted as they are in production.
//!
//! `cargo bench -p kataar-admission --bench admission -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kataar_admission::{Admission, AdmissionConfig, Lane};
use parking_lot::Mutex;

/// The baseline: the token bucket most services write first.
struct MutexBucket {
    inner: Mutex<BucketState>,
    rate_per_s: f64,
    burst: f64,
}

struct BucketState {
    tokens: f64,
    last: Instant,
}

impl MutexBucket {
    fn new(rate_per_s: f64, burst: f64) -> Self {
        Self {
            inner: Mutex::new(BucketState {
                tokens: burst,
                last: Instant::now(),
            }),
            rate_per_s,
            burst,
        }
    }

    fn try_take(&self) -> bool {
        let now = Instant::now();
        let mut s = self.inner.lock();
        let refill = now.saturating_duration_since(s.last).as_secs_f64() * self.rate_per_s;
        s.tokens = (s.tokens + refill).min(self.burst);
        s.last = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn clients() -> Vec<IpAddr> {
    (0..1024u32)
        .map(|i| IpAddr::from((0x0a00_0000 | i).to_be_bytes()))
        .collect()
}

/// Nothing refuses: every decision admits (the lane and keyed buckets never run dry).
fn admitting() -> Admission {
    let config = AdmissionConfig {
        booking_rate_per_s: 1e9,
        booking_burst: u32::MAX,
        booking_in_flight_max: u32::MAX,
        client_rate_per_s: 1e9,
        client_burst: u32::MAX,
        account_rate_per_s: 1e9,
        account_burst: u32::MAX,
        ..AdmissionConfig::default()
    };
    Admission::new(config).unwrap_or_else(|e| panic!("{e}"))
}

/// The booking lane is dry (one token per 1000 s, already spent): every decision refuses.
fn refusing_lane() -> Admission {
    let config = AdmissionConfig {
        booking_rate_per_s: 0.001,
        booking_burst: 1,
        client_rate_per_s: 1e9,
        client_burst: u32::MAX,
        ..AdmissionConfig::default()
    };
    let a = Admission::new(config).unwrap_or_else(|e| panic!("{e}"));
    drop(a.try_admit(Lane::Booking, IpAddr::from([10, 0, 0, 1]), None));
    a
}

/// The client is over its own limit: every decision refuses before the lane.
fn refusing_client() -> Admission {
    let config = AdmissionConfig {
        client_rate_per_s: 0.001,
        client_burst: 1,
        ..AdmissionConfig::default()
    };
    let a = Admission::new(config).unwrap_or_else(|e| panic!("{e}"));
    drop(a.try_admit(Lane::Booking, IpAddr::from([10, 0, 0, 1]), None));
    a
}

fn single_thread(c: &mut Criterion) {
    let ips = clients();
    let mut g = c.benchmark_group("decision");

    let a = admitting();
    let mut i = 0usize;
    g.bench_function("kataar_admit_client", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let ip = ips[i % ips.len()];
            black_box(a.try_admit(Lane::Booking, black_box(ip), None)).is_ok()
        })
    });
    g.bench_function("kataar_admit_client_account", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let ip = ips[i % ips.len()];
            black_box(a.try_admit(Lane::Booking, black_box(ip), Some(i as u64 % 4096))).is_ok()
        })
    });

    let a = refusing_lane();
    let ip = IpAddr::from([10, 0, 0, 1]);
    g.bench_function("kataar_refuse_lane", |b| {
        b.iter(|| black_box(a.try_admit(Lane::Booking, black_box(ip), None)).is_err())
    });

    let a = refusing_client();
    g.bench_function("kataar_refuse_client", |b| {
        b.iter(|| black_box(a.try_admit(Lane::Booking, black_box(ip), None)).is_err())
    });

    let open = admitting();
    for _ in 0..open.config().breaker_failures_max {
        open.breaker().record_failure();
    }
    g.bench_function("kataar_refuse_breaker_open", |b| {
        b.iter(|| black_box(open.try_admit(Lane::Booking, black_box(ip), None)).is_err())
    });

    let bucket = MutexBucket::new(1e12, 1e12);
    g.bench_function("mutex_bucket_admit", |b| {
        b.iter(|| black_box(bucket.try_take()))
    });
    let dry = MutexBucket::new(0.001, 1.0);
    dry.try_take();
    g.bench_function("mutex_bucket_refuse", |b| {
        b.iter(|| black_box(dry.try_take()))
    });
    g.finish();
}

/// Two threads deciding at once against the same lane (time per decision).
fn contended<F: Fn(usize) + Sync>(iters: u64, decide: F) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2usize {
            let decide = &decide;
            s.spawn(move || {
                for i in 0..iters as usize {
                    decide(t * 7919 + i);
                }
            });
        }
    });
    start.elapsed() / 2
}

fn two_threads(c: &mut Criterion) {
    let ips = Arc::new(clients());
    let mut g = c.benchmark_group("decision_2_threads");

    let a = admitting();
    g.bench_function("kataar_admit_client", |b| {
        b.iter_custom(|iters| {
            contended(iters, |i| {
                let ip = ips[i % ips.len()];
                black_box(a.try_admit(Lane::Booking, ip, None).is_ok());
            })
        })
    });
    let a = refusing_lane();
    let ip = IpAddr::from([10, 0, 0, 1]);
    g.bench_function("kataar_refuse_lane", |b| {
        b.iter_custom(|iters| {
            contended(iters, |_| {
                black_box(a.try_admit(Lane::Booking, ip, None).is_err());
            })
        })
    });
    let bucket = MutexBucket::new(1e12, 1e12);
    g.bench_function("mutex_bucket_admit", |b| {
        b.iter_custom(|iters| {
            contended(iters, |_| {
                black_box(bucket.try_take());
            })
        })
    });
    let dry = MutexBucket::new(0.001, 1.0);
    dry.try_take();
    g.bench_function("mutex_bucket_refuse", |b| {
        b.iter_custom(|iters| {
            contended(iters, |_| {
                black_box(dry.try_take());
            })
        })
    });
    g.finish();
}

fn install_recorder() {
    // Metric updates cost what they cost in production; a failure only means one is installed.
    let _ = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder();
}

fn benches(c: &mut Criterion) {
    install_recorder();
    single_thread(c);
    two_threads(c);
}

criterion_group!(admission, benches);
criterion_main!(admission);
