//! Property test: random interleavings of prepared and finished operations against a plain
//! sequential model. After every step O and D hold in memory *and* in the "database" (the sum
//! of committed events), and the inventory's pool counters equal the model's.

#![allow(clippy::unwrap_used)]

mod common;
use chrono::Utc;
use common::*;
use kataar_domain::*;
use kataar_inventory::*;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    Book { person: u64, slot: usize },
    Cancel { nth: usize },
    Reschedule { nth: usize, slot: usize },
    SetCapacity { slot: usize, capacity: u32 },
    Finish { nth: usize, commit: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..6, 0usize..3).prop_map(|(person, slot)| Op::Book { person, slot }),
        2 => (0usize..8).prop_map(|nth| Op::Cancel { nth }),
        2 => (0usize..8, 0usize..3).prop_map(|(nth, slot)| Op::Reschedule { nth, slot }),
        1 => (0usize..3, 0u32..4).prop_map(|(slot, capacity)| Op::SetCapacity { slot, capacity }),
        5 => (0usize..4, any::<bool>()).prop_map(|(nth, commit)| Op::Finish { nth, commit }),
    ]
}

/// The database as the store would hold it: committed events only.
#[derive(Default)]
struct Db {
    capacity: HashMap<PoolId, i64>,
    booked: HashMap<PoolId, i64>,
    live: HashMap<BookingId, (PersonKey, Dose, PoolId)>,
}

impl Db {
    fn apply(&mut self, events: &[Event], bookings: &HashMap<BookingId, Booking>) {
        for e in events {
            for (pool, d) in e.booked_deltas() {
                *self.booked.entry(pool).or_default() += d;
            }
            match e {
                Event::PoolCapacityChanged { pool_id, delta } => {
                    *self.capacity.entry(*pool_id).or_default() += delta;
                }
                Event::BookingCreated(b) => {
                    self.live
                        .insert(b.booking_id, (b.person_key, b.dose, b.pool_id));
                }
                Event::BookingStatusChanged { booking_id, to, .. } if !to.is_live() => {
                    self.live.remove(booking_id);
                }
                Event::BookingMoved {
                    booking_id,
                    to_pool_id,
                    ..
                } => {
                    if let Some(x) = self.live.get_mut(booking_id) {
                        x.2 = *to_pool_id;
                    }
                }
                _ => {}
            }
        }
        let _ = bookings;
    }

    fn check(&self) {
        for (pool, cap) in &self.capacity {
            let booked = self.booked.get(pool).copied().unwrap_or(0);
            assert!(
                booked >= 0 && booked <= *cap,
                "db O broken: pool {pool} {booked}/{cap}"
            );
        }
        let mut seen = HashMap::new();
        for (id, (key, dose, _)) in &self.live {
            assert!(seen.insert((*key, *dose), *id).is_none(), "db D broken");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]
    #[test]
    fn memory_and_database_keep_o_and_d(ops in proptest::collection::vec(op(), 1..60)) {
        let inv = Inventory::empty();
        let c = centre(&inv);
        let s = session(&inv, c, day(2030, 1, 10), 3, 2);
        let people: Vec<(AccountId, BeneficiaryId)> = (0..6).map(|i| person(&inv, i)).collect();
        let mut db = Db::default();
        for sv in &s.slots {
            for p in &sv.pools {
                db.capacity.insert(PoolId(p.pool_id), i64::from(p.capacity));
            }
        }
        let mut pending: Vec<Prepared<()>> = Vec::new();
        let mut committed: Vec<Booking> = Vec::new();
        let bookings = HashMap::new();
        for op in ops {
            match op {
                Op::Book { person: i, slot } => {
                    let (a, b) = people[i as usize];
                    if let Ok(p) = inv.book(&request(a, b, &s, slot, Dose::One), |_| Ok(())) {
                        pending.push(Prepared { value: (), events: p.events, finisher: p.finisher });
                    }
                }
                Op::Cancel { nth } => {
                    if let Some(b) = committed.get(nth) {
                        if let Ok(p) = inv.cancel(b.booking_id, &Scope::Account(b.account_id), Utc::now()) {
                            pending.push(Prepared { value: (), events: p.events, finisher: p.finisher });
                        }
                    }
                }
                Op::Reschedule { nth, slot } => {
                    if let Some(b) = committed.get(nth) {
                        let r = inv.reschedule(
                            b.booking_id, b.account_id, s.session.session_id,
                            s.slots[slot].slot.slot_id, Utc::now(), today(), |_| Ok(()));
                        if let Ok(p) = r {
                            pending.push(Prepared { value: (), events: p.events, finisher: p.finisher });
                        }
                    }
                }
                Op::SetCapacity { slot, capacity } => {
                    let pool = PoolId(s.slots[slot].pools[0].pool_id);
                    if let Ok(p) = inv.set_capacity(pool, capacity, &Scope::All) {
                        pending.push(Prepared { value: (), events: p.events, finisher: p.finisher });
                    }
                }
                Op::Finish { nth, commit } => {
                    if !pending.is_empty() {
                        let p = pending.remove(nth % pending.len());
                        if commit {
                            db.apply(&p.events, &bookings);
                            for e in &p.events {
                                if let Event::BookingCreated(b) = e {
                                    committed.push(b.clone());
                                }
                            }
                        }
                        inv.finish(p.finisher, commit);
                    }
                }
            }
            // O in memory.
            for (pool, cap, booked) in inv.pool_counts() {
                prop_assert!(booked <= cap, "memory O broken on {pool}");
                // Memory holds at least what the database holds.
                let db_booked = db.booked.get(&pool).copied().unwrap_or(0);
                let db_cap = db.capacity.get(&pool).copied().unwrap_or(0);
                prop_assert!(i64::from(booked) >= db_booked);
                prop_assert!(i64::from(cap) <= db_cap);
            }
            db.check();
            // D in memory: at most one live booking per person and dose.
            for (a, b) in &people {
                let view = inv.beneficiary(*a, *b).unwrap();
                let live = view.bookings.iter().filter(|x| x.status.is_live() && x.dose == Dose::One).count();
                prop_assert!(live <= 1);
            }
        }
        // Drain: commit everything left, then memory equals the database exactly.
        for p in pending.drain(..) {
            db.apply(&p.events, &bookings);
            inv.finish(p.finisher, true);
        }
        db.check();
        for (pool, cap, booked) in inv.pool_counts() {
            prop_assert_eq!(i64::from(booked), db.booked.get(&pool).copied().unwrap_or(0));
            prop_assert_eq!(i64::from(cap), db.capacity.get(&pool).copied().unwrap_or(0));
        }
    }
}
