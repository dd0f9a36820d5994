//! Group-commit throughput into PostgreSQL: one transaction of `batch_events` BookingCreated
//! events (the writer's commit path: epoch check, one `unnest` insert, one pool counter
//! update, the batches row), at 1, 64 and 512 events, into one hot pool and across 10^4
//! pools. Reported as elements (bookings) per second.
//!
//! Needs PostgreSQL at 127.0.0.1:5432 (user postgres); creates and drops its own database.
//! Run: `cargo bench -p kataar-store --bench group_commit`
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kataar_domain::{BatchId, Event};
use kataar_store::fixtures::{booking, geography, session};
use kataar_store::{PgOptions, PgStore, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
const UNIFORM_POOLS: u64 = 10_000;
const HOT_POOL: u64 = 1;
const UNIFORM_FIRST_POOL: u64 = 100;

async fn admin(sql: String) {
    let (client, conn) = tokio_postgres::connect(ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(&sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = format!("kataar_bench_{:016x}", rand::random::<u64>());
    rt.block_on(admin(format!("CREATE DATABASE {name}")));
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let store = rt.block_on(async {
        let store = PgStore::connect(&url, PgOptions::default()).await.unwrap();
        let epoch = store.acquire_epoch().await.unwrap();
        let mut setup = geography();
        setup.push(session(1, HOT_POOL, 1, i32::MAX as u32));
        setup.push(session(2, UNIFORM_FIRST_POOL, UNIFORM_POOLS, 1_000_000));
        store.commit(BatchId(1), epoch, &setup).await.unwrap();
        (store, epoch)
    });
    let (store, epoch) = store;
    let next_batch = AtomicU64::new(2);
    let next_booking = AtomicU64::new(1);

    let mut group = c.benchmark_group("group_commit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for batch_events in [1u64, 64, 512] {
        group.throughput(Throughput::Elements(batch_events));
        for workload in ["hot", "uniform"] {
            let id = BenchmarkId::new(format!("batch_events={batch_events}"), workload);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            let events: Vec<Event> = (0..batch_events)
                                .map(|_| {
                                    let n = next_booking.fetch_add(1, Ordering::Relaxed);
                                    let (session_id, pool) = if workload == "hot" {
                                        (1, HOT_POOL)
                                    } else {
                                        (2, UNIFORM_FIRST_POOL + n % UNIFORM_POOLS)
                                    };
                                    Event::BookingCreated(booking(n, n, session_id, pool))
                                })
                                .collect();
                            let batch = BatchId(next_batch.fetch_add(1, Ordering::Relaxed));
                            let started = Instant::now();
                            store.commit(batch, epoch, &events).await.unwrap();
                            spent += started.elapsed();
                        }
                        spent
                    })
                })
            });
        }
    }
    group.finish();
    drop(store);
    rt.block_on(admin(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )));
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
