//! Reserve benchmarks: the lock-free pool word against a `Mutex<HashMap>` inventory, alone and
//! with two threads on one hot pool; a whole booking decision (dedup, rules, reserve) and its
//! undo; the dedup-index insert.
//!
//! Run: `cargo bench -p kataar-inventory --bench reserve`.

#![allow(clippy::unwrap_used)]

use chrono::{NaiveDate, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kataar_domain::*;
use kataar_inventory::pool::PoolCell;
use kataar_inventory::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HUGE: u32 = u32::MAX / 2;

fn cell() -> PoolCell {
    PoolCell::new(
        PoolId(1),
        SessionId(1),
        SlotId(1),
        Dose::One,
        Channel::Online,
        HUGE,
        0,
    )
}

/// The rejected alternative: one mutex over a map of (capacity, booked).
struct MutexInventory {
    pools: Mutex<HashMap<u64, (u32, u32)>>,
}

impl MutexInventory {
    fn new(n: u64) -> Self {
        MutexInventory {
            pools: Mutex::new((0..n).map(|i| (i, (HUGE, 0))).collect()),
        }
    }
    fn reserve(&self, id: u64) -> bool {
        let mut map = self.pools.lock();
        match map.get_mut(&id) {
            Some((c, b)) if *b < *c => {
                *b += 1;
                true
            }
            _ => false,
        }
    }
}

fn contended<F: Fn() + Sync>(iters: u64, f: F) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters / 2 {
                    f();
                }
            });
        }
    });
    start.elapsed()
}

fn reserve(c: &mut Criterion) {
    let mut g = c.benchmark_group("reserve");
    g.throughput(Throughput::Elements(1));
    let pool = cell();
    g.bench_function("uncontended/atomic_pool", |b| {
        b.iter(|| black_box(pool.try_reserve()))
    });
    let baseline = MutexInventory::new(10_000);
    g.bench_function("uncontended/mutex_hashmap", |b| {
        b.iter(|| black_box(baseline.reserve(black_box(42))))
    });
    let hot = Arc::new(cell());
    g.bench_function("contended_2_threads/atomic_pool", |b| {
        b.iter_custom(|iters| {
            contended(iters, || {
                black_box(hot.try_reserve());
            })
        })
    });
    let hot_mutex = MutexInventory::new(10_000);
    g.bench_function("contended_2_threads/mutex_hashmap", |b| {
        b.iter_custom(|iters| {
            contended(iters, || {
                black_box(hot_mutex.reserve(42));
            })
        })
    });
    g.finish();
}

fn setup(people: u64) -> (Inventory, SessionId, SlotId) {
    let inv = Inventory::empty();
    let centre = Centre {
        centre_id: CentreId(1),
        name: "C".into(),
        address: "A".into(),
        state_id: StateId(20),
        district_id: DistrictId(312),
        pincode: "462001".into(),
        block_name: "B".into(),
        lat: 23.2,
        long: 77.4,
        fee_type: FeeType::Free,
        fee_rupees: 0,
    };
    let p = inv.upsert_centre(centre);
    inv.finish(p.finisher, true);
    let p = inv
        .create_session(NewSession {
            centre_id: CentreId(1),
            date: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
            vaccine: Vaccine::Covaxin,
            min_age: 18,
            max_age: None,
            opens_at: None,
            slots: vec![NewSlot {
                start: "09:00".into(),
                end: "11:00".into(),
                dose1_online: 100_000,
                dose1_walkin: 0,
                dose2_online: 0,
                dose2_walkin: 0,
            }],
        })
        .unwrap();
    let session = p.value.session_id;
    inv.finish(p.finisher, true);
    let slot = inv.session(session).unwrap().slots[0].slot.slot_id;
    for i in 0..people {
        let AccountLookup::New(a) = inv.ensure_account(Some(&format!("9{i:09}")), Utc::now())
        else {
            panic!("fresh account expected")
        };
        let account = a.value.account_id;
        inv.finish(a.finisher, true);
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&i.to_le_bytes());
        let b = inv
            .add_beneficiary(
                account,
                NewBeneficiary {
                    person_key: PersonKey(key),
                    name: "N".into(),
                    birth_year: 1990,
                    gender: Gender::Female,
                    id_type: "aadhaar".into(),
                    id_masked: "XXXX-XXXX-0000".into(),
                },
                Utc::now(),
            )
            .unwrap();
        inv.finish(b.finisher, true);
    }
    (inv, session, slot)
}

fn booking_decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("booking");
    g.throughput(Throughput::Elements(1));
    let (inv, session, slot) = setup(1);
    let req = BookRequest {
        account_id: AccountId(1),
        beneficiary_id: BeneficiaryId(1),
        session_id: session,
        slot_id: slot,
        dose: Dose::One,
        now: Utc::now(),
        today: NaiveDate::from_ymd_opt(2029, 1, 1).unwrap(),
    };
    g.bench_function("decide_and_undo", |b| {
        b.iter(|| {
            let p = inv.book(&req, |_| Ok(())).unwrap();
            inv.finish(p.finisher, false);
        })
    });
    g.bench_function("dedup_refusal", |b| {
        // Criterion calls this more than once: book only the first time.
        if let Ok(p) = inv.book(&req, |_| Ok(())) {
            inv.finish(p.finisher, true);
        }
        b.iter(|| black_box(inv.book(&req, |_| Ok(())).is_err()))
    });
    g.finish();

    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert_beneficiary", |b| {
        let inv = Inventory::empty();
        let AccountLookup::New(a) = inv.ensure_account(None, Utc::now()) else {
            panic!("fresh account expected")
        };
        inv.finish(a.finisher, true);
        let mut i: u64 = 0;
        b.iter(|| {
            i += 1;
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&i.to_le_bytes());
            let p = inv
                .add_beneficiary(
                    AccountId(1),
                    NewBeneficiary {
                        person_key: PersonKey(key),
                        name: "N".into(),
                        birth_year: 1990,
                        gender: Gender::Male,
                        id_type: "pan".into(),
                        id_masked: "XXXXXX000X".into(),
                    },
                    Utc::now(),
                )
                .unwrap();
            // Undo keeps the account under its limit of four so every iteration inserts.
            inv.finish(p.finisher, false);
        })
    });
    g.finish();
}

criterion_group!(benches, reserve, booking_decision);
criterion_main!(benches);
