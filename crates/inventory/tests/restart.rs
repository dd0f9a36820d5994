//! Restart property test: random sequences of every citizen and operator action go through
//! the engine and a real store (SQLite in a temporary directory), each operation's events
//! committed as one batch; at random points, and at the end, the inventory is rebuilt from
//! the store and must dump exactly as the one that wrote it (pools, sessions, bookings,
//! people, accounts, idempotency records, keys), with no counter above the writer's.
//! Recovery must accept every state the engine itself allows, and the store must accept
//! every batch the engine decided.

#![allow(clippy::unwrap_used)]

mod common;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use common::*;
use kataar_domain::*;
use kataar_inventory::*;
use kataar_store::{SqliteStore, Store};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    Login {
        mobile: u8,
    },
    AddBeneficiary {
        account: usize,
        person: u8,
    },
    RemoveBeneficiary {
        nth: usize,
    },
    Book {
        ben: usize,
        session: usize,
        slot: usize,
        dose: u8,
        key: Option<u8>,
    },
    Cancel {
        nth: usize,
    },
    Reschedule {
        nth: usize,
        session: usize,
        slot: usize,
    },
    CheckIn {
        nth: usize,
    },
    Administer {
        nth: usize,
    },
    NoShow {
        nth: usize,
    },
    Walkin {
        session: usize,
        slot: usize,
        dose: u8,
        person: u8,
    },
    CreateSession {
        day: u8,
        cap: u32,
    },
    CancelSession {
        session: usize,
    },
    SetCapacity {
        pool: usize,
        capacity: u32,
    },
    MoveCapacity {
        from: usize,
        to: usize,
        count: u32,
    },
    AddKey {
        n: u8,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..5).prop_map(|mobile| Op::Login { mobile }),
        3 => (0usize..8, 0u8..8).prop_map(|(account, person)| Op::AddBeneficiary { account, person }),
        2 => (0usize..8).prop_map(|nth| Op::RemoveBeneficiary { nth }),
        6 => (0usize..8, 0usize..4, 0usize..2, 1u8..3, proptest::option::of(0u8..3))
            .prop_map(|(ben, session, slot, dose, key)| Op::Book { ben, session, slot, dose, key }),
        3 => (0usize..12).prop_map(|nth| Op::Cancel { nth }),
        2 => (0usize..12, 0usize..4, 0usize..2)
            .prop_map(|(nth, session, slot)| Op::Reschedule { nth, session, slot }),
        2 => (0usize..12).prop_map(|nth| Op::CheckIn { nth }),
        2 => (0usize..12).prop_map(|nth| Op::Administer { nth }),
        1 => (0usize..12).prop_map(|nth| Op::NoShow { nth }),
        2 => (0usize..4, 0usize..2, 1u8..3, 0u8..10)
            .prop_map(|(session, slot, dose, person)| Op::Walkin { session, slot, dose, person }),
        1 => (0u8..3, 1u32..3).prop_map(|(day, cap)| Op::CreateSession { day, cap }),
        1 => (0usize..4).prop_map(|session| Op::CancelSession { session }),
        1 => (0usize..16, 0u32..4).prop_map(|(pool, capacity)| Op::SetCapacity { pool, capacity }),
        1 => (0usize..16, 0usize..16, 0u32..3).prop_map(|(from, to, count)| Op::MoveCapacity { from, to, count }),
        1 => (0u8..4).prop_map(|n| Op::AddKey { n }),
        2 => Just(Op::Restart),
    ]
}

/// The engine, the store it writes to, and what the test remembers of ids (in creation
/// order, so that an index picks a stable one).
struct Rig {
    inv: Inventory,
    store: SqliteStore,
    epoch: u64,
    batch: u64,
    now: DateTime<Utc>,
    accounts: Vec<AccountId>,
    beneficiaries: Vec<(AccountId, BeneficiaryId)>,
    bookings: Vec<BookingId>,
    sessions: Vec<(SessionId, NaiveDate)>,
    pools: Vec<PoolId>,
    centre: CentreId,
    restarts: usize,
}

fn pick<T: Copy>(list: &[T], nth: usize) -> Option<T> {
    (!list.is_empty()).then(|| list[nth % list.len()])
}

fn new_person(i: u8) -> NewBeneficiary {
    NewBeneficiary {
        person_key: key(u64::from(i)),
        name: format!("Person {i}"),
        birth_year: 1980,
        gender: Gender::Female,
        id_type: "pan".into(),
        id_masked: "XXXXXX234F".into(),
    }
}

impl Rig {
    async fn new(path: &std::path::Path) -> Rig {
        let store = SqliteStore::open(path).await.unwrap();
        let epoch = store.acquire_epoch().await.unwrap();
        // Whole seconds: the store keeps timestamps to the microsecond.
        let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
        let mut rig = Rig {
            inv: Inventory::empty(),
            store,
            epoch,
            batch: 0,
            now,
            accounts: Vec::new(),
            beneficiaries: Vec::new(),
            bookings: Vec::new(),
            sessions: Vec::new(),
            pools: Vec::new(),
            centre: CentreId(0),
            restarts: 0,
        };
        let places = rig.inv.upsert_places(
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
        rig.settle(places).await;
        let c = Centre {
            centre_id: rig.inv.ids.centre(),
            name: "PHC Kolar Road".into(),
            address: "Kolar Road".into(),
            state_id: StateId(20),
            district_id: DistrictId(312),
            pincode: "462001".into(),
            block_name: "Huzur".into(),
            lat: 23.2,
            long: 77.4,
            fee_type: FeeType::Free,
            fee_rupees: 0,
        };
        let p = rig.inv.upsert_centre(c);
        rig.centre = rig.settle(p).await.unwrap().centre_id;
        rig.create_session(0, 2).await;
        rig.create_session(1, 1).await;
        rig
    }

    /// Commits the operation's events as one batch and finishes it; a batch the store
    /// refuses is a failure of the test (the engine decided something the database cannot
    /// hold).
    async fn settle<T>(&mut self, p: Prepared<T>) -> Option<T> {
        if !p.events.is_empty() {
            self.batch += 1;
            let res = self
                .store
                .commit(BatchId(self.batch), self.epoch, &p.events)
                .await;
            if let Err(e) = res {
                self.inv.finish(p.finisher, false);
                panic!(
                    "the store refused a batch the engine decided: {e} ({:?})",
                    p.events
                );
            }
        }
        self.inv.finish(p.finisher, true);
        Some(p.value)
    }

    async fn settle_result<T>(&mut self, r: Result<Prepared<T>, BookingError>) -> Option<T> {
        match r {
            Ok(p) => self.settle(p).await,
            Err(_) => None,
        }
    }

    async fn create_session(&mut self, day: u8, cap: u32) {
        let date = today() + Duration::days(i64::from(day));
        let p = self.inv.create_session(NewSession {
            centre_id: self.centre,
            date,
            vaccine: Vaccine::Covaxin,
            min_age: 18,
            max_age: None,
            opens_at: None,
            slots: (0..2)
                .map(|i| NewSlot {
                    start: format!("{:02}:00", 9 + i),
                    end: format!("{:02}:00", 10 + i),
                    dose1_online: cap,
                    dose1_walkin: cap,
                    dose2_online: cap,
                    dose2_walkin: cap,
                })
                .collect(),
        });
        if let Some(s) = self.settle_result(p).await {
            self.sessions.push((s.session_id, date));
            let view = self.inv.session(s.session_id).unwrap();
            for slot in &view.slots {
                for pool in &slot.pools {
                    self.pools.push(PoolId(pool.pool_id));
                }
            }
        }
    }

    fn slot_of(&self, session: usize, slot: usize) -> Option<(SessionId, SlotId, NaiveDate)> {
        let (sid, date) = pick(&self.sessions, session)?;
        let view = self.inv.session(sid)?;
        let s = view.slots.get(slot % view.slots.len().max(1))?;
        Some((sid, s.slot.slot_id, date))
    }

    fn booking_date(&self, id: BookingId) -> Option<NaiveDate> {
        let b = self.inv.booking(id, &Scope::All)?;
        self.sessions
            .iter()
            .find(|(s, _)| *s == b.session_id)
            .map(|(_, d)| *d)
    }

    fn tick(&mut self) {
        self.now += Duration::seconds(1);
    }

    async fn apply(&mut self, op: &Op) {
        self.tick();
        let now = self.now;
        match *op {
            Op::Login { mobile } => {
                let m = format!("98765432{mobile:02}");
                match self.inv.ensure_account(Some(&m), now) {
                    AccountLookup::New(p) => {
                        if let Some(a) = self.settle(p).await {
                            self.accounts.push(a.account_id);
                        }
                    }
                    AccountLookup::Existing(_) => {}
                }
            }
            Op::AddBeneficiary { account, person } => {
                let Some(a) = pick(&self.accounts, account) else {
                    return;
                };
                let r = self.inv.add_beneficiary(a, new_person(person), now);
                if let Some(b) = self.settle_result(r).await {
                    self.beneficiaries.push((a, b.beneficiary_id));
                }
            }
            Op::RemoveBeneficiary { nth } => {
                let Some((a, b)) = pick(&self.beneficiaries, nth) else {
                    return;
                };
                let r = self.inv.remove_beneficiary(a, b);
                if self.settle_result(r).await.is_some() {
                    self.beneficiaries.retain(|x| x.1 != b);
                }
            }
            Op::Book {
                ben,
                session,
                slot,
                dose,
                key,
            } => {
                let Some((a, b)) = pick(&self.beneficiaries, ben) else {
                    return;
                };
                let Some((sid, slot_id, _)) = self.slot_of(session, slot) else {
                    return;
                };
                let dose = if dose == 1 { Dose::One } else { Dose::Two };
                let req = BookRequest {
                    account_id: a,
                    beneficiary_id: b,
                    session_id: sid,
                    slot_id,
                    dose,
                    now,
                    today: today(),
                };
                let key = key.map(|k| format!("key-{k}"));
                let hash = format!("{b}/{sid}/{slot_id}/{}", dose.index());
                if let Some(k) = &key {
                    if !matches!(self.inv.idem_begin(a, k, &hash), IdemBegin::Fresh) {
                        return;
                    }
                }
                match self.inv.book(&req, |_| Ok(())) {
                    Ok(mut p) => {
                        let id = p.value.booking_id;
                        let record = key.as_ref().map(|k| IdempotencyRecord {
                            account_id: a,
                            key: k.clone(),
                            request_hash: hash.clone(),
                            status: 201,
                            response: serde_json::json!({"booking_id": id.0}),
                            created_at: now,
                        });
                        if let Some(r) = &record {
                            p.events.push(Event::IdempotencyRecorded(r.clone()));
                        }
                        self.settle(p).await;
                        if let Some(r) = record {
                            self.inv.idem_complete(r);
                        }
                        self.bookings.push(id);
                    }
                    Err(_) => {
                        if let Some(k) = &key {
                            self.inv.idem_abandon(a, k);
                        }
                    }
                }
            }
            Op::Cancel { nth } => {
                let Some(id) = pick(&self.bookings, nth) else {
                    return;
                };
                let Some(b) = self.inv.booking(id, &Scope::All) else {
                    return;
                };
                let r = self.inv.cancel(id, &Scope::Account(b.account_id), now);
                self.settle_result(r).await;
            }
            Op::Reschedule { nth, session, slot } => {
                let Some(id) = pick(&self.bookings, nth) else {
                    return;
                };
                let Some(b) = self.inv.booking(id, &Scope::All) else {
                    return;
                };
                let Some((sid, slot_id, _)) = self.slot_of(session, slot) else {
                    return;
                };
                let r = self
                    .inv
                    .reschedule(id, b.account_id, sid, slot_id, now, today(), |_| Ok(()));
                self.settle_result(r).await;
            }
            Op::CheckIn { nth } => {
                let Some(id) = pick(&self.bookings, nth) else {
                    return;
                };
                let r = self.inv.check_in(id, &Scope::All, now);
                self.settle_result(r).await;
            }
            Op::Administer { nth } => {
                let Some(id) = pick(&self.bookings, nth) else {
                    return;
                };
                let Some(date) = self.booking_date(id) else {
                    return;
                };
                let r = self.inv.administer(
                    id,
                    &Scope::All,
                    Vaccine::Covaxin,
                    "B-1".into(),
                    OperatorId(1),
                    now,
                    date,
                );
                self.settle_result(r).await;
            }
            Op::NoShow { nth } => {
                let Some(id) = pick(&self.bookings, nth) else {
                    return;
                };
                let Some(date) = self.booking_date(id) else {
                    return;
                };
                let r = self
                    .inv
                    .no_show(id, &Scope::All, now, date + Duration::days(1));
                self.settle_result(r).await;
            }
            Op::Walkin {
                session,
                slot,
                dose,
                person,
            } => {
                let Some((sid, slot_id, date)) = self.slot_of(session, slot) else {
                    return;
                };
                let dose = if dose == 1 { Dose::One } else { Dose::Two };
                let mobile = format!("99000000{person:02}");
                let r = self.inv.walkin(
                    sid,
                    slot_id,
                    dose,
                    new_person(person),
                    Some(&mobile),
                    &Scope::All,
                    now,
                    date,
                );
                if let Some(b) = self.settle_result(r).await {
                    self.bookings.push(b.booking_id);
                    if !self.accounts.contains(&b.account_id) {
                        self.accounts.push(b.account_id);
                    }
                    if !self.beneficiaries.iter().any(|x| x.1 == b.beneficiary_id) {
                        self.beneficiaries.push((b.account_id, b.beneficiary_id));
                    }
                }
            }
            Op::CreateSession { day, cap } => self.create_session(day, cap).await,
            Op::CancelSession { session } => {
                let Some((sid, _)) = pick(&self.sessions, session) else {
                    return;
                };
                if self.inv.close_session(sid, &Scope::All).is_err() {
                    return;
                }
                match self.inv.cancel_session(sid, now) {
                    Ok(p) => {
                        self.settle(p).await;
                    }
                    Err(_) => self.inv.reopen_session(sid),
                }
            }
            Op::SetCapacity { pool, capacity } => {
                let Some(id) = pick(&self.pools, pool) else {
                    return;
                };
                let r = self.inv.set_capacity(id, capacity, &Scope::All);
                self.settle_result(r).await;
            }
            Op::MoveCapacity { from, to, count } => {
                let (Some(a), Some(b)) = (pick(&self.pools, from), pick(&self.pools, to)) else {
                    return;
                };
                let r = self.inv.move_capacity(a, b, count, &Scope::All);
                self.settle_result(r).await;
            }
            Op::AddKey { n } => {
                let key = OperatorKey {
                    operator_id: self.inv.ids.operator(),
                    key_hash: format!("{n:064x}{}", self.batch),
                    role: Role::Centre,
                    centres: vec![self.centre],
                    name: format!("desk {n}"),
                    created_at: now,
                };
                let p = self.inv.add_operator_key(key);
                self.settle(p).await;
            }
            Op::Restart => self.restart().await,
        }
    }

    /// Rebuilds the engine from the store and checks it holds what the old one held.
    async fn restart(&mut self) {
        let before = self.inv.dump();
        let counters = self.inv.counters();
        let snapshot = self.store.load().await.unwrap();
        assert_eq!(snapshot.batch_id_max, self.batch, "every batch is stored");
        let rebuilt = Inventory::from_snapshot(snapshot)
            .unwrap_or_else(|e| panic!("recovery refused a state the engine allowed: {e}"));
        let after = rebuilt.dump();
        if before != after {
            let diff = diff_paths(&before, &after, String::new());
            panic!(
                "the rebuilt inventory differs from the one before:\n{}",
                diff.join("\n")
            );
        }
        let rebuilt_counters = rebuilt.counters();
        assert!(
            rebuilt_counters.le(&counters),
            "a rebuilt counter is ahead: {rebuilt_counters:?} vs {counters:?}"
        );
        self.inv = rebuilt;
        self.restarts += 1;
    }
}

/// Where two JSON values differ, as `path: left != right` lines.
fn diff_paths(a: &serde_json::Value, b: &serde_json::Value, at: String) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let l = x.get(k).unwrap_or(&Value::Null);
                    let r = y.get(k).unwrap_or(&Value::Null);
                    diff_paths(l, r, format!("{at}.{k}"))
                })
                .collect()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (l, r))| diff_paths(l, r, format!("{at}[{i}]")))
            .collect(),
        _ if a == b => Vec::new(),
        _ => vec![format!("{at}: before {a} / rebuilt {b}")],
    }
}

/// Runs `ops` on a fresh rig, restarts at the end, and returns what the final inventory holds:
/// (restarts, bookings by status name).
fn run(ops: &[Op]) -> (usize, HashMap<String, usize>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut rig = Rig::new(&dir.path().join("kataar.sqlite3")).await;
        for op in ops {
            rig.apply(op).await;
        }
        rig.restart().await;
        let mut statuses = HashMap::new();
        for id in &rig.bookings {
            let b = rig.inv.booking(*id, &Scope::All).unwrap();
            *statuses.entry(b.status.as_str().to_string()).or_default() += 1;
        }
        (rig.restarts, statuses)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn rebuilt_inventory_equals_the_one_before(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}

/// The case found by hand: book, cancel, remove the beneficiary, restart; then the same
/// photo-ID registered again on another account, booked, and a restart again.
#[test]
fn cancelled_booking_of_a_removed_beneficiary_loads() {
    let ops = [
        Op::Login { mobile: 1 },
        Op::AddBeneficiary {
            account: 0,
            person: 1,
        },
        Op::Book {
            ben: 0,
            session: 0,
            slot: 0,
            dose: 1,
            key: Some(1),
        },
        Op::Cancel { nth: 0 },
        Op::RemoveBeneficiary { nth: 0 },
        Op::Restart,
        Op::Login { mobile: 2 },
        Op::AddBeneficiary {
            account: 1,
            person: 1,
        },
        Op::Book {
            ben: 0,
            session: 0,
            slot: 0,
            dose: 1,
            key: None,
        },
    ];
    let (restarts, statuses) = run(&ops);
    assert_eq!(restarts, 2);
    assert_eq!(statuses.get("cancelled"), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get("booked"), Some(&1), "{statuses:?}");
}

/// A day at one centre, each step followed by a restart: every status a booking can reach
/// is rebuilt as it was.
#[test]
fn every_booking_status_survives_a_restart() {
    let mut ops = vec![Op::Login { mobile: 1 }];
    for person in 0..4 {
        ops.push(Op::AddBeneficiary { account: 0, person });
    }
    for ben in 0..4 {
        ops.push(Op::Book {
            ben,
            session: 0,
            slot: ben % 2,
            dose: 1,
            key: Some(ben as u8),
        });
        ops.push(Op::Restart);
    }
    ops.extend([
        Op::Cancel { nth: 0 },
        Op::Restart,
        Op::CheckIn { nth: 1 },
        Op::Restart,
        Op::CheckIn { nth: 2 },
        Op::Administer { nth: 2 },
        Op::Restart,
        Op::NoShow { nth: 3 },
        Op::Restart,
        Op::Walkin {
            session: 0,
            slot: 1,
            dose: 1,
            person: 7,
        },
        Op::Reschedule {
            nth: 1,
            session: 1,
            slot: 0,
        },
        Op::SetCapacity {
            pool: 0,
            capacity: 3,
        },
        Op::MoveCapacity {
            from: 1,
            to: 0,
            count: 1,
        },
        Op::AddKey { n: 1 },
        Op::Restart,
        Op::CancelSession { session: 1 },
    ]);
    let (restarts, statuses) = run(&ops);
    assert!(restarts >= 8);
    for status in ["cancelled", "checked_in", "administered", "no_show"] {
        assert!(
            statuses.get(status).is_some_and(|n| *n >= 1),
            "{status}: {statuses:?}"
        );
    }
}
