//! The whole router in process (`tower::ServiceExt::oneshot`, embedded store): a booking with
//! its commit (and, untimed apart, its cancellation, so the place comes back), a cached
//! availability read, and a refusal by admission. Run: `cargo bench -p kataar-benches`.
//! The time is the request's through every layer but the socket and the HTTP/1 codec; the
//! allocations per request are printed first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use kataar_benches::{allocations, InProcess};
use std::time::{Duration, Instant};

fn router(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Room for the warm-up's and criterion's bookings (64 per account).
    let h = rt.block_on(InProcess::start(600)).unwrap();
    rt.block_on(async {
        for _ in 0..100 {
            h.book_and_cancel().await.unwrap();
            h.send(h.read().unwrap()).await.unwrap();
            h.send(h.refused().unwrap()).await.unwrap();
        }
        let per = |before: (u64, u64), n: u64| {
            let after = allocations();
            (after.0 - before.0) / n
        };
        let n = 1_000;
        let a = allocations();
        for _ in 0..n {
            h.send(h.read().unwrap()).await.unwrap();
        }
        let read = per(a, n);
        let a = allocations();
        for _ in 0..n {
            h.send(h.refused().unwrap()).await.unwrap();
        }
        let refusal = per(a, n);
        eprintln!("allocations per request, mean of {n}: cached read {read}, refusal {refusal}");
    });
    let mut g = c.benchmark_group("router");
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("booking (commit to the embedded store)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let (req, who) = h.booking().unwrap();
                    let t = Instant::now();
                    let (s, body) = h.send(req).await.unwrap();
                    spent += t.elapsed();
                    h.cancel_booked(who, s, &body).await.unwrap();
                }
                spent
            })
        })
    });
    let timed = |make: fn(&InProcess) -> anyhow::Result<http::Request<axum::body::Body>>,
                 want: http::StatusCode| {
        let (rt, h) = (&rt, &h);
        move |b: &mut criterion::Bencher| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let req = make(h).unwrap();
                        let t = Instant::now();
                        let (s, _) = h.send(req).await.unwrap();
                        spent += t.elapsed();
                        assert_eq!(s, want);
                    }
                    spent
                })
            })
        }
    };
    g.bench_function(
        "cached availability read",
        timed(InProcess::read, http::StatusCode::OK),
    );
    g.bench_function(
        "refusal (503 overloaded)",
        timed(InProcess::refused, http::StatusCode::SERVICE_UNAVAILABLE),
    );
    g.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);
