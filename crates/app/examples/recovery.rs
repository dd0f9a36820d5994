//! Restart time and memory at scale: publishes `POOLS` pools and `BOOKINGS` bookings (each
//! with its account and beneficiary) through the real engine into a fresh PostgreSQL database,
//! then measures what a restart does — `Store::load` and `Inventory::from_snapshot` — and the
//! resident memory the rebuilt inventory adds, per pool and per booking.
//!
//! `cargo run --release -p kataar-app --example recovery -- 100000 50000`
//! (PostgreSQL at 127.0.0.1:5432, user postgres; the database is dropped afterwards.)
//!
//! It runs as the server does: mimalloc as its allocator, transparent huge pages off.
//!
//! With `KATAAR_RECOVERY_DB=NAME` the database is kept: the first run creates and fills it, later
//! runs with the same name only measure the restart (to compare one change against another on
//! the same data).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Days, Utc};
use kataar_domain::*;
use kataar_inventory::{
    AccountLookup, BookRequest, Inventory, NewBeneficiary, NewSession, NewSlot, Prepared,
};
use kataar_store::{CommitTicket, PgOptions, PgStore, Store, Writer, WriterConfig};
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SLOTS_PER_SESSION: usize = 12;
const POOLS_PER_SESSION: usize = SLOTS_PER_SESSION * 4;

/// Hands freed heap pages back to the system, so RSS counts live data only.
fn trim() {
    #[allow(unsafe_code)]
    // SAFETY: mi_collect takes no pointers; it only walks the calling thread's own heap.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Submits a prepared operation and finishes it at once (filling only: every batch is checked
/// to have committed before the measurement starts).
async fn send<T>(
    inv: &Inventory,
    writer: &kataar_store::WriterHandle,
    p: Prepared<T>,
    pending: &mut Vec<CommitTicket>,
) -> T {
    let ticket = loop {
        match writer.submit(p.events.clone()) {
            Ok(t) => break t,
            Err(_) => drain(pending).await,
        }
    };
    inv.finish(p.finisher, true);
    pending.push(ticket);
    if pending.len() >= 50_000 {
        drain(pending).await;
    }
    p.value
}

async fn drain(pending: &mut Vec<CommitTicket>) {
    for t in pending.drain(..) {
        assert!(t.await.is_ok(), "a batch failed while filling the database");
    }
}

#[tokio::main]
async fn main() {
    let _ = kataar_api::disable_transparent_huge_pages();
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pools = args.first().copied().unwrap_or(10_000) as usize;
    let bookings = args.get(1).copied().unwrap_or((pools / 2) as u64) as usize;
    let kept = std::env::var("KATAAR_RECOVERY_DB").ok();
    let name = kept
        .clone()
        .unwrap_or_else(|| format!("kataar_recovery_{}", std::process::id()));
    let (admin, conn) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(conn);
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let outcome = tokio::spawn(run(url.clone(), pools, bookings, exists)).await;
    if kept.is_some() {
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
        return;
    }
    let _ = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run(url: String, pools: usize, bookings: usize, filled: bool) {
    let store: Arc<dyn Store> =
        Arc::new(PgStore::connect(&url, PgOptions::default()).await.unwrap());
    let filled_s = if filled {
        0.0
    } else {
        fill(&store, pools, bookings).await
    };
    trim();
    let before = rss_bytes();
    let t = Instant::now();
    let snapshot = store.load().await.unwrap();
    let load_s = t.elapsed().as_secs_f64();
    let (n_pools, n_bookings) = (snapshot.pools.len(), snapshot.bookings.len());
    let t = Instant::now();
    let rebuilt = Inventory::from_snapshot(snapshot).unwrap();
    let rebuild_s = t.elapsed().as_secs_f64();
    trim();
    let after = rss_bytes();
    println!(
        "pools={n_pools} bookings={n_bookings} fill_s={filled_s:.1} load_s={load_s:.2} rebuild_s={rebuild_s:.2} restart_s={:.2} rss_added_mib={:.0} bytes_per_pool_or_booking≈{:.0}",
        load_s + rebuild_s,
        (after.saturating_sub(before)) as f64 / 1048576.0,
        (after.saturating_sub(before)) as f64 / (n_pools + 3 * n_bookings).max(1) as f64
    );
    assert_eq!(rebuilt.pools_len(), n_pools);
}

/// Publishes the pools and bookings through the engine; returns the seconds it took.
async fn fill(store: &Arc<dyn Store>, pools: usize, bookings: usize) -> f64 {
    let inv = Inventory::empty();
    let epoch = store.acquire_epoch().await.unwrap();
    let (writer, join) = Writer::spawn(store.clone(), WriterConfig::default(), epoch, BatchId(1));
    let mut pending = Vec::new();
    let fill = Instant::now();
    let places = inv.upsert_places(
        vec![State {
            state_id: StateId(20),
            state_name: "Madhya Pradesh".into(),
            state_name_hi: "मध्य प्रदेश".into(),
        }],
        vec![District {
            district_id: DistrictId(312),
            state_id: StateId(20),
            district_name: "Bhopal".into(),
            district_name_hi: "भोपाल".into(),
        }],
    );
    send(&inv, &writer, places, &mut pending).await;
    let sessions = pools.div_ceil(POOLS_PER_SESSION);
    let today = Utc::now().date_naive();
    let mut session_slots = Vec::new();
    let mut centre = CentreId(0);
    for s in 0..sessions {
        if s % 14 == 0 {
            let c = Centre {
                centre_id: inv.ids.centre(),
                name: format!("Centre {s}"),
                address: "Address".into(),
                state_id: StateId(20),
                district_id: DistrictId(312),
                pincode: "462001".into(),
                block_name: "Huzur".into(),
                lat: 23.2,
                long: 77.4,
                fee_type: FeeType::Free,
                fee_rupees: 0,
            };
            let p = inv.upsert_centre(c);
            centre = send(&inv, &writer, p, &mut pending).await.centre_id;
        }
        let p = inv
            .create_session(NewSession {
                centre_id: centre,
                date: today
                    .checked_add_days(Days::new(1 + (s % 14) as u64))
                    .unwrap(),
                vaccine: Vaccine::Covishield,
                min_age: 18,
                max_age: None,
                opens_at: None,
                slots: (0..SLOTS_PER_SESSION)
                    .map(|i| NewSlot {
                        start: format!("{:02}:00", 6 + i),
                        end: format!("{:02}:00", 7 + i),
                        dose1_online: 100,
                        dose1_walkin: 10,
                        dose2_online: 50,
                        dose2_walkin: 5,
                    })
                    .collect(),
            })
            .unwrap();
        let session = send(&inv, &writer, p, &mut pending).await;
        session_slots.push(session.session_id);
    }
    drain(&mut pending).await;
    for i in 0..bookings {
        let AccountLookup::New(a) = inv.ensure_account(Some(&format!("9{:09}", i)), Utc::now())
        else {
            panic!("fresh account expected");
        };
        let account = send(&inv, &writer, a, &mut pending).await.account_id;
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        key[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        let b = inv
            .add_beneficiary(
                account,
                NewBeneficiary {
                    person_key: PersonKey(key),
                    name: format!("Person {i}"),
                    birth_year: 1980,
                    gender: Gender::Female,
                    id_type: "aadhaar".into(),
                    id_masked: "XXXX-XXXX-0000".into(),
                },
                Utc::now(),
            )
            .unwrap();
        let beneficiary = send(&inv, &writer, b, &mut pending).await.beneficiary_id;
        let sid = session_slots[i % session_slots.len()];
        let slot = inv.session(sid).unwrap().slots[(i / session_slots.len()) % SLOTS_PER_SESSION]
            .slot
            .slot_id;
        let p = inv
            .book(
                &BookRequest {
                    account_id: account,
                    beneficiary_id: beneficiary,
                    session_id: sid,
                    slot_id: slot,
                    dose: Dose::One,
                    now: Utc::now(),
                    today,
                },
                |_| Ok(()),
            )
            .unwrap();
        send(&inv, &writer, p, &mut pending).await;
    }
    drain(&mut pending).await;
    writer.shutdown();
    join.await.unwrap();
    fill.elapsed().as_secs_f64()
}
