//! Recovery at scale: fills a fresh PostgreSQL database with N pools (one session per 10
//! pools) and B bookings using server-side `generate_series` inserts, then times
//! `Store::load()` (what a restart does) and prints pools, bookings, seconds and an estimate
//! of the snapshot's memory. Drops the database at the end.
//!
//! Run: `cargo run --release -p kataar-store --example load_scale -- 1000000 200000`
//! (arguments: pools, bookings; defaults 10000 and pools/2).
#![allow(clippy::unwrap_used)]

use kataar_domain::*;
use kataar_store::{PgOptions, PgStore, Store};
use std::time::Instant;

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

async fn admin(sql: String) {
    let (client, conn) = tokio_postgres::connect(ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(&sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

fn snapshot_bytes(s: &Snapshot) -> usize {
    use std::mem::size_of;
    let strings: usize = s
        .slots
        .iter()
        .map(|x| x.start.capacity() + x.end.capacity())
        .sum();
    s.pools.capacity() * size_of::<Pool>()
        + s.bookings.capacity() * size_of::<Booking>()
        + s.sessions.capacity() * size_of::<Session>()
        + s.slots.capacity() * size_of::<Slot>()
        + strings
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let pools: u64 = args.next().map(|a| a.parse().unwrap()).unwrap_or(10_000);
    let bookings: u64 = args.next().map(|a| a.parse().unwrap()).unwrap_or(pools / 2);
    let name = format!("kataar_scale_{:016x}", rand::random::<u64>());
    admin(format!("CREATE DATABASE {name}")).await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let store = PgStore::connect(&url, PgOptions::default()).await.unwrap();

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let fill = Instant::now();
    let sessions = pools.div_ceil(10);
    client
        .batch_execute(&format!(
            "INSERT INTO sessions (session_id, centre_id, state_id, district_id, date, vaccine,
               min_age, max_age, opens_at, cancelled)
             SELECT g, 100, 1, 312, DATE '2026-05-01', 'COVAXIN', 18, 44, NULL, false
             FROM generate_series(1, {sessions}) g;
             INSERT INTO slots (slot_id, session_id, state_id, start_hm, end_hm)
             SELECT g, (g - 1) / 10 + 1, 1, '09:00', '11:00' FROM generate_series(1, {pools}) g;
             INSERT INTO pools (pool_id, session_id, slot_id, state_id, dose, channel, capacity,
               booked)
             SELECT g, (g - 1) / 10 + 1, g, 1, 1, 'online', 100, 0
             FROM generate_series(1, {pools}) g;
             INSERT INTO bookings (booking_id, account_id, beneficiary_id, person_key, state_id,
               centre_id, session_id, slot_id, pool_id, dose, channel, status, token_number,
               created_at, updated_at)
             SELECT g, g, g, sha256(int8send(g)), 1, 100, ((g - 1) % {pools}) / 10 + 1,
               (g - 1) % {pools} + 1, (g - 1) % {pools} + 1, 1, 'online', 'booked', g, now(),
               now()
             FROM generate_series(1, {bookings}) g;
             UPDATE pools p SET booked = c.n FROM
               (SELECT pool_id, count(*)::int AS n FROM bookings GROUP BY pool_id) c
             WHERE p.pool_id = c.pool_id;"
        ))
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE").await.unwrap();
    let fill_s = fill.elapsed().as_secs_f64();

    let started = Instant::now();
    let snap = store.load().await.unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let bytes = snapshot_bytes(&snap);
    println!(
        "pools={} bookings={} fill_s={fill_s:.2} load_s={load_s:.3} snapshot_bytes={} \
         bytes_per_pool_and_booking={:.0} load_rows_per_s={:.0}",
        snap.pools.len(),
        snap.bookings.len(),
        bytes,
        bytes as f64 / (snap.pools.len() + snap.bookings.len()).max(1) as f64,
        (snap.pools.len() * 2 + snap.slots.len() + snap.bookings.len()) as f64 / load_s
    );
    drop(client);
    drop(store);
    admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}
