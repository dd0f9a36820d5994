//! One conformance suite for every backend: each check is an `async fn` over
//! `Arc<dyn Store>`, instantiated for PostgreSQL (a fresh database per test) and SQLite (a
//! fresh file per test) by the `conformance!` macro at the bottom.
#![allow(clippy::unwrap_used)]

mod common;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kataar_domain::*;
use kataar_store::fixtures::{at, booking, geography, person_key, session};
use kataar_store::{
    BatchOutcome, CommitError, Store, StoreError, SubmitError, Writer, WriterConfig,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn account(id: u64, mobile: Option<&str>) -> Account {
    Account {
        account_id: AccountId(id),
        mobile: mobile.map(str::to_string),
        created_at: at(1),
    }
}

fn beneficiary(id: u64, account_id: u64) -> Beneficiary {
    Beneficiary {
        beneficiary_id: BeneficiaryId(id),
        account_id: AccountId(account_id),
        person_key: person_key(id),
        name: format!("Person {id}"),
        birth_year: 1990,
        gender: Gender::Female,
        id_type: "aadhaar".into(),
        id_masked: "XXXX-XXXX-1234".into(),
        created_at: at(2),
    }
}

fn idem(account_id: u64, key: &str, created_at: DateTime<Utc>) -> IdempotencyRecord {
    IdempotencyRecord {
        account_id: AccountId(account_id),
        key: key.into(),
        request_hash: "ab".repeat(32),
        status: 201,
        response: serde_json::json!({"booking_id": 7001, "token": 1}),
        created_at,
    }
}

fn audit(id: u64) -> AuditRecord {
    AuditRecord {
        audit_id: id,
        at: at(30 + id as i64),
        operator_id: OperatorId(9),
        action: "session.create".into(),
        request_id: format!("req-{id}"),
        object: "session:1000".into(),
        before: serde_json::Value::Null,
        after: serde_json::json!({"capacity": 10}),
    }
}

fn operator_key() -> OperatorKey {
    OperatorKey {
        operator_id: OperatorId(9),
        key_hash: "cd".repeat(32),
        role: Role::Centre,
        centres: vec![CentreId(100), CentreId(101)],
        name: "Bhopal desk".into(),
        created_at: at(3),
    }
}

/// The base drive: geography, session 1000 with pools 3001..=3003 (capacity 10), session
/// 1001 with pool 3004, accounts 1 and 2, beneficiaries 501..=503.
async fn setup(store: &Arc<dyn Store>, epoch: u64, batch: u64) {
    let mut events = geography();
    events.push(session(1000, 3001, 3, 10));
    events.push(session(1001, 3004, 1, 3));
    events.push(Event::AccountCreated(account(1, Some("9876543210"))));
    events.push(Event::AccountCreated(account(2, None)));
    for b in 501..=503 {
        events.push(Event::BeneficiaryAdded(beneficiary(b, 1)));
    }
    store.commit(BatchId(batch), epoch, &events).await.unwrap();
}

fn pool_booked(snap: &Snapshot, pool: u64) -> (u32, u32) {
    let p = snap.pools.iter().find(|p| p.pool_id.0 == pool).unwrap();
    (p.booked, p.capacity)
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

async fn round_trip_every_event_kind(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let opens = at(3600);
    let batch2 = vec![
        Event::BookingCreated(booking(7001, 501, 1000, 3001)),
        Event::BookingCreated(booking(7002, 502, 1000, 3001)),
        Event::BeneficiaryRemoved {
            beneficiary_id: BeneficiaryId(503),
        },
        Event::SessionOpensAtSet {
            session_id: SessionId(1000),
            opens_at: Some(opens),
        },
        Event::PoolCapacityChanged {
            pool_id: PoolId(3002),
            delta: 5,
        },
        Event::SessionCancelled {
            session_id: SessionId(1001),
        },
        Event::IdempotencyRecorded(idem(1, "k1", Utc::now())),
        Event::OperatorKeyCreated(operator_key()),
        Event::AuditAppended(audit(1)),
        Event::AuditAppended(audit(2)),
        Event::StateUpserted(State {
            state_id: StateId(1),
            state_name: "Madhya Pradesh (MP)".into(),
            state_name_hi: "मध्य प्रदेश".into(),
        }),
    ];
    store.commit(BatchId(2), epoch, &batch2).await.unwrap();
    let dose = DoseRecord {
        beneficiary_id: BeneficiaryId(501),
        dose: Dose::One,
        vaccine: Vaccine::Covaxin,
        batch: "CVX-0042".into(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
        centre_id: CentreId(100),
        booking_id: BookingId(7001),
        operator_id: OperatorId(9),
        administered_at: at(100),
    };
    let mut b3 = booking(7003, 501, 1000, 3003);
    b3.dose = Dose::Two;
    let batch3 = vec![
        Event::BookingStatusChanged {
            booking_id: BookingId(7001),
            pool_id: PoolId(3001),
            from: BookingStatus::Booked,
            to: BookingStatus::CheckedIn,
            at: at(90),
        },
        Event::BookingStatusChanged {
            booking_id: BookingId(7001),
            pool_id: PoolId(3001),
            from: BookingStatus::CheckedIn,
            to: BookingStatus::Administered,
            at: at(100),
        },
        Event::DoseRecorded(dose.clone()),
        Event::BookingMoved {
            booking_id: BookingId(7002),
            from_pool_id: PoolId(3001),
            to_pool_id: PoolId(3002),
            session_id: SessionId(1000),
            slot_id: SlotId(3002),
            centre_id: CentreId(100),
            token_number: 1,
            at: at(110),
        },
        Event::BookingCreated(b3.clone()),
        Event::BookingStatusChanged {
            booking_id: BookingId(7003),
            pool_id: PoolId(3003),
            from: BookingStatus::Booked,
            to: BookingStatus::Cancelled,
            at: at(120),
        },
    ];
    store.commit(BatchId(3), epoch, &batch3).await.unwrap();

    let snap = store.load().await.unwrap();

    // Build what must have been stored.
    let mut events1 = geography();
    let Event::StateUpserted(_) = events1.remove(0) else {
        panic!()
    };
    let mut expected = Snapshot {
        states: vec![State {
            state_id: StateId(1),
            state_name: "Madhya Pradesh (MP)".into(),
            state_name_hi: "मध्य प्रदेश".into(),
        }],
        ..Snapshot::default()
    };
    for e in events1 {
        match e {
            Event::DistrictUpserted(d) => expected.districts.push(d),
            Event::CentreUpserted(c) => expected.centres.push(c),
            _ => unreachable!(),
        }
    }
    for e in [session(1000, 3001, 3, 10), session(1001, 3004, 1, 3)] {
        let Event::SessionCreated {
            session,
            slots,
            pools,
        } = e
        else {
            unreachable!()
        };
        expected.sessions.push(session);
        expected.slots.extend(slots);
        expected.pools.extend(pools);
    }
    expected.sessions[0].opens_at = Some(opens);
    expected.sessions[1].cancelled = true;
    expected.pools[0].booked = 1; // 7001 (administered still holds its place); 7002 left
    expected.pools[1].booked = 1; // 7002 arrived
    expected.pools[1].capacity = 15;
    expected.pools[2].booked = 0; // 7003 created and cancelled
    expected.accounts = vec![account(1, Some("9876543210")), account(2, None)];
    expected.beneficiaries = vec![beneficiary(501, 1), beneficiary(502, 1)];
    let mut b1 = booking(7001, 501, 1000, 3001);
    b1.status = BookingStatus::Administered;
    b1.updated_at = at(100);
    let mut b2 = booking(7002, 502, 1000, 3001);
    b2.pool_id = PoolId(3002);
    b2.slot_id = SlotId(3002);
    b2.token_number = 1;
    b2.updated_at = at(110);
    b3.status = BookingStatus::Cancelled;
    b3.updated_at = at(120);
    expected.bookings = vec![b1, b2, b3];
    expected.doses = vec![dose];
    let Event::IdempotencyRecorded(r) = &batch2[6] else {
        unreachable!()
    };
    let mut r = r.clone();
    // Both backends keep microseconds.
    r.created_at = DateTime::from_timestamp_micros(r.created_at.timestamp_micros()).unwrap();
    expected.idempotency = vec![r];
    expected.operator_keys = vec![operator_key()];
    expected.audit_id_max = 2;
    expected.batch_id_max = 3;
    expected.beneficiary_id_max = 503;
    assert_eq!(snap, expected);

    assert!(store.batch_committed(BatchId(3), epoch).await.unwrap());
    assert!(!store.batch_committed(BatchId(4), epoch).await.unwrap());
}

async fn reads_audit_keys_and_idempotency_ttl(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let old = Utc::now() - chrono::Duration::hours(27);
    let events = vec![
        Event::AuditAppended(audit(1)),
        Event::AuditAppended(audit(2)),
        Event::AuditAppended(audit(3)),
        Event::OperatorKeyCreated(operator_key()),
        Event::IdempotencyRecorded(idem(1, "old", old)),
        Event::IdempotencyRecorded(idem(1, "new", Utc::now())),
    ];
    store.commit(BatchId(2), epoch, &events).await.unwrap();
    let page = store.audit_after(1, 10).await.unwrap();
    assert_eq!(page.iter().map(|a| a.audit_id).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(page[0], audit(2));
    assert_eq!(store.audit_after(0, 1).await.unwrap().len(), 1);
    let key = store.operator_key_by_hash(&"cd".repeat(32)).await.unwrap();
    assert_eq!(key, Some(operator_key()));
    assert_eq!(store.operator_key_by_hash("00").await.unwrap(), None);
    let snap = store.load().await.unwrap();
    assert_eq!(
        snap.idempotency
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>(),
        ["new"]
    );
    let pruned = store
        .prune_idempotency(Utc::now() - chrono::Duration::hours(26))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    store.ping().await.unwrap();
    store.migrate().await.unwrap(); // idempotent
}

async fn over_capacity_batch_fails_whole(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    let mut events = geography();
    events.push(session(1000, 3001, 1, 1));
    store.commit(BatchId(1), epoch, &events).await.unwrap();
    let before = store.load().await.unwrap();
    let batch = vec![
        Event::AccountCreated(account(1, None)),
        Event::BookingCreated(booking(7001, 1, 1000, 3001)),
        Event::BookingCreated(booking(7002, 2, 1000, 3001)),
    ];
    let err = store.commit(BatchId(2), epoch, &batch).await.unwrap_err();
    assert!(matches!(err, StoreError::Constraint(_)), "{err:?}");
    assert!(!err.to_string().contains("UPDATE"), "{err}");
    assert!(!store.batch_committed(BatchId(2), epoch).await.unwrap());
    assert_eq!(store.load().await.unwrap(), before);
    // Capacity may not drop below booked either.
    store.commit(BatchId(3), epoch, &batch[..2]).await.unwrap();
    let shrink = [Event::PoolCapacityChanged {
        pool_id: PoolId(3001),
        delta: -1,
    }];
    let err = store.commit(BatchId(4), epoch, &shrink).await.unwrap_err();
    assert!(matches!(err, StoreError::Constraint(_)), "{err:?}");
    assert_eq!(pool_booked(&store.load().await.unwrap(), 3001), (1, 1));
}

async fn one_live_booking_per_person_and_dose(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    // Two live bookings of person 501 in one batch: refused whole.
    let twice = vec![
        Event::BookingCreated(booking(7001, 501, 1000, 3001)),
        Event::BookingCreated(booking(7002, 501, 1000, 3002)),
    ];
    let err = store.commit(BatchId(2), epoch, &twice).await.unwrap_err();
    assert!(matches!(err, StoreError::Constraint(_)), "{err:?}");
    store.commit(BatchId(3), epoch, &twice[..1]).await.unwrap();
    // A second live one in a later batch: refused.
    let err = store
        .commit(BatchId(4), epoch, &twice[1..])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Constraint(_)), "{err:?}");
    // Cancel then rebook in one batch: fine (updates run before inserts).
    let rebook = vec![
        Event::BookingStatusChanged {
            booking_id: BookingId(7001),
            pool_id: PoolId(3001),
            from: BookingStatus::Booked,
            to: BookingStatus::Cancelled,
            at: at(50),
        },
        Event::BookingCreated(booking(7002, 501, 1000, 3002)),
    ];
    store.commit(BatchId(5), epoch, &rebook).await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(pool_booked(&snap, 3001), (0, 10));
    assert_eq!(pool_booked(&snap, 3002), (1, 10));
    // A status change from the wrong status is refused (second line of defence).
    let stale = [Event::BookingStatusChanged {
        booking_id: BookingId(7001),
        pool_id: PoolId(3001),
        from: BookingStatus::Booked,
        to: BookingStatus::Cancelled,
        at: at(60),
    }];
    let err = store.commit(BatchId(6), epoch, &stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Constraint(_)), "{err:?}");
}

async fn duplicate_idempotency_key_fails(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    let first = [Event::IdempotencyRecorded(idem(1, "k", Utc::now()))];
    store.commit(BatchId(1), epoch, &first).await.unwrap();
    let err = store.commit(BatchId(2), epoch, &first).await.unwrap_err();
    assert!(matches!(err, StoreError::Constraint(_)), "{err:?}");
    let other_account = [Event::IdempotencyRecorded(idem(2, "k", Utc::now()))];
    store
        .commit(BatchId(3), epoch, &other_account)
        .await
        .unwrap();
}

async fn fencing_old_epoch_writes_nothing(store: Arc<dyn Store>) {
    let old = store.acquire_epoch().await.unwrap();
    setup(&store, old, 1).await;
    let new = store.acquire_epoch().await.unwrap();
    assert!(new > old);
    let before = store.load().await.unwrap();
    let events = [Event::BookingCreated(booking(7001, 501, 1000, 3001))];
    let err = store.commit(BatchId(2), old, &events).await.unwrap_err();
    assert_eq!(err, StoreError::Fenced);
    assert!(!store.batch_committed(BatchId(2), old).await.unwrap());
    assert_eq!(store.load().await.unwrap(), before);
    store.commit(BatchId(2), new, &events).await.unwrap();
    assert!(store.batch_committed(BatchId(2), new).await.unwrap());
    // The new writer's batch 2 is not the old writer's batch 2: an in-doubt read-back by the
    // old writer must not take it for its own.
    assert!(!store.batch_committed(BatchId(2), old).await.unwrap());

    // The writer reports Fenced to every caller once the epoch moved.
    let newer = store.acquire_epoch().await.unwrap();
    let (handle, join) = Writer::spawn(store.clone(), WriterConfig::default(), new, BatchId(3));
    let t = handle
        .submit(vec![Event::BookingCreated(booking(7002, 502, 1000, 3001))])
        .unwrap();
    assert_eq!(t.await, Err(CommitError::Fenced));
    drop(handle);
    join.await.unwrap();
    assert!(newer > new);
    assert_eq!(pool_booked(&store.load().await.unwrap(), 3001), (1, 10));
}

/// A load while batches commit is one consistent read: every pool's stored `booked` equals the
/// bookings the same snapshot holds for it (PostgreSQL reads its tables on several
/// connections, all in one exported snapshot).
async fn load_is_one_snapshot_while_batches_commit(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    let mut events = geography();
    events.push(session(1000, 3001, 4, 10_000));
    store.commit(BatchId(1), epoch, &events).await.unwrap();
    let writes = 400u64;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..writes {
                let b = booking(10_000 + i, 1_000 + i, 1000, 3001 + i % 4);
                store
                    .commit(BatchId(2 + i), epoch, &[Event::BookingCreated(b)])
                    .await
                    .unwrap();
            }
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let snap = store.load().await.unwrap();
        for pool in &snap.pools {
            let held = snap
                .bookings
                .iter()
                .filter(|b| b.pool_id == pool.pool_id && b.status.holds_place())
                .count();
            assert_eq!(pool.booked as usize, held, "pool {} torn", pool.pool_id);
        }
        assert_eq!(snap.batch_id_max, 1 + snap.bookings.len() as u64);
        seen.insert(snap.bookings.len());
    }
    writer.await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(snap.bookings.len() as u64, writes);
    assert!(seen.len() > 1, "every load saw the same state: {seen:?}");
}

async fn writer_batches_a_burst(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    let mut events = geography();
    events.push(session(1000, 3001, 10, 1000));
    store.commit(BatchId(1), epoch, &events).await.unwrap();
    let (handle, join) = Writer::spawn(store.clone(), WriterConfig::default(), epoch, BatchId(2));
    let submits = 1000u64;
    let mut tasks = Vec::new();
    for i in 0..submits {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            let b = booking(10_000 + i, 1_000 + i, 1000, 3001 + i % 10);
            handle.submit(vec![Event::BookingCreated(b)]).unwrap().await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    let positions = handle.positions();
    assert_eq!(positions.queued, positions.committed);
    let batches = positions.committed - 1;
    assert!(batches < submits, "{batches} batches for {submits} submits");
    handle.shutdown();
    join.await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(snap.bookings.len() as u64, submits);
    assert_eq!(snap.batch_id_max, positions.committed);
    assert!(snap.pools.iter().all(|p| p.booked == 100));
    assert!(matches!(handle.submit(vec![]), Err(SubmitError::Closed)));
}

/// A store whose commits fail, or report in doubt after (maybe) committing, or wait for a
/// gate; everything else goes to the real store.
struct Faulty {
    inner: Arc<dyn Store>,
    mode: Mode,
    gate: tokio::sync::Semaphore,
    entered: tokio::sync::Notify,
    entered_flag: AtomicBool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Fail,
    CommitThenInDoubt,
    InDoubtWithoutCommit,
    Gated,
    GatedFail,
}

impl Faulty {
    fn new(inner: Arc<dyn Store>, mode: Mode) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            mode,
            gate: tokio::sync::Semaphore::new(0),
            entered: tokio::sync::Notify::new(),
            entered_flag: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl Store for Faulty {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }
    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load().await
    }
    async fn acquire_epoch(&self) -> Result<u64, StoreError> {
        self.inner.acquire_epoch().await
    }
    async fn commit(&self, id: BatchId, epoch: u64, events: &[Event]) -> Result<(), StoreError> {
        match self.mode {
            Mode::Fail => Err(StoreError::Unavailable("injected".into())),
            Mode::CommitThenInDoubt => {
                self.inner.commit(id, epoch, events).await?;
                Err(StoreError::InDoubt)
            }
            Mode::InDoubtWithoutCommit => Err(StoreError::InDoubt),
            Mode::Gated | Mode::GatedFail => {
                if !self.entered_flag.swap(true, Ordering::AcqRel) {
                    self.entered.notify_one();
                }
                self.gate.acquire().await.unwrap().forget();
                if self.mode == Mode::GatedFail {
                    return Err(StoreError::Unavailable("injected".into()));
                }
                self.inner.commit(id, epoch, events).await
            }
        }
    }
    async fn abort_commit(&self, id: BatchId) -> Result<(), StoreError> {
        self.inner.abort_commit(id).await
    }
    async fn batch_committed(&self, id: BatchId, epoch: u64) -> Result<bool, StoreError> {
        self.inner.batch_committed(id, epoch).await
    }
    async fn audit_after(&self, a: u64, l: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_after(a, l).await
    }
    async fn operator_key_by_hash(&self, h: &str) -> Result<Option<OperatorKey>, StoreError> {
        self.inner.operator_key_by_hash(h).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn prune_idempotency(&self, t: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_idempotency(t).await
    }
    fn backend(&self) -> &'static str {
        "faulty"
    }
}

async fn writer_failed_and_in_doubt_commits(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let ev = |n: u64| {
        vec![Event::BookingCreated(booking(
            7000 + n,
            500 + n,
            1000,
            3001,
        ))]
    };

    let failing: Arc<dyn Store> = Faulty::new(store.clone(), Mode::Fail);
    let (h, j) = Writer::spawn(failing, WriterConfig::default(), epoch, BatchId(2));
    let tickets: Vec<_> = (1..=3).map(|n| h.submit(ev(n)).unwrap()).collect();
    for t in tickets {
        assert_eq!(t.await, Err(CommitError::Failed));
    }
    drop(h);
    j.await.unwrap();

    let lost: Arc<dyn Store> = Faulty::new(store.clone(), Mode::InDoubtWithoutCommit);
    let (h, j) = Writer::spawn(lost, WriterConfig::default(), epoch, BatchId(10));
    assert_eq!(h.submit(ev(1)).unwrap().await, Err(CommitError::Failed));
    drop(h);
    j.await.unwrap();

    let durable: Arc<dyn Store> = Faulty::new(store.clone(), Mode::CommitThenInDoubt);
    let (h, j) = Writer::spawn(durable, WriterConfig::default(), epoch, BatchId(20));
    assert_eq!(h.submit(ev(1)).unwrap().await, Ok(BatchId(20)));
    drop(h);
    j.await.unwrap();

    let snap = store.load().await.unwrap();
    assert_eq!(snap.bookings.len(), 1);
    assert_eq!(pool_booked(&snap, 3001), (1, 10));
}

/// One job of a batch violates a constraint (an idempotency key already stored): only that job
/// is refused; its neighbours in the same batch commit.
async fn writer_refuses_only_the_offending_job_of_a_batch(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let taken = [Event::IdempotencyRecorded(idem(1, "k", Utc::now()))];
    store.commit(BatchId(2), epoch, &taken).await.unwrap();
    let gated = Faulty::new(store.clone(), Mode::Gated);
    let (h, j) = Writer::spawn(gated.clone(), WriterConfig::default(), epoch, BatchId(3));
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = told.clone();
    assert!(h.on_batch(move |o| sink.lock().unwrap().push(o)));
    assert!(!h.on_batch(|_| {}), "one hook only");
    // A first batch holds the writer in its commit while five jobs queue up behind it: they are
    // taken as one batch.
    let plug = h
        .submit(vec![Event::BookingCreated(booking(7000, 600, 1000, 3001))])
        .unwrap();
    gated.entered.notified().await;
    let mut tickets = Vec::new();
    for n in 0..5u64 {
        let mut events = vec![Event::BookingCreated(booking(
            7001 + n,
            601 + n,
            1000,
            3001,
        ))];
        if n == 2 {
            events.push(Event::IdempotencyRecorded(idem(1, "k", Utc::now())));
        }
        tickets.push(h.submit(events).unwrap());
    }
    gated.gate.add_permits(64);
    assert!(plug.await.is_ok());
    let mut outcomes = Vec::new();
    for t in tickets {
        outcomes.push(t.await);
    }
    assert_eq!(outcomes[2], Err(CommitError::Failed), "{outcomes:?}");
    for (n, o) in outcomes.iter().enumerate() {
        if n != 2 {
            assert!(o.is_ok(), "job {n}: {o:?}");
        }
    }
    h.shutdown();
    j.await.unwrap();
    let snap = store.load().await.unwrap();
    let mut ids: Vec<u64> = snap.bookings.iter().map(|b| b.booking_id.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![7000, 7001, 7002, 7004, 7005]);
    // A constraint refusal is not a store fault: a breaker fed from the hook stays closed.
    let told = told.lock().unwrap().clone();
    assert!(!told.contains(&BatchOutcome::StoreFault), "{told:?}");
    assert!(told.contains(&BatchOutcome::Refused), "{told:?}");
}

/// A batch takes at most `batch_bookings_max` jobs, however few events they carry; a batch
/// at the bound is full, one job more starts the next.
async fn writer_caps_a_batch_in_bookings(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let gated = Faulty::new(store.clone(), Mode::Gated);
    let cfg = WriterConfig {
        batch_bookings_max: 4,
        ..WriterConfig::default()
    };
    let (h, j) = Writer::spawn(gated.clone(), cfg, epoch, BatchId(2));
    let plug = h
        .submit(vec![Event::BookingCreated(booking(7000, 600, 1000, 3001))])
        .unwrap();
    gated.entered.notified().await;
    // Nine bookings of two events each (booking and idempotency record) queue behind it.
    let tickets: Vec<_> = (1..=9u64)
        .map(|n| {
            h.submit(vec![
                Event::BookingCreated(booking(7000 + n, 600 + n, 1000, 3001)),
                Event::IdempotencyRecorded(idem(1, &format!("k{n}"), Utc::now())),
            ])
            .unwrap()
        })
        .collect();
    gated.gate.add_permits(64);
    assert_eq!(plug.await, Ok(BatchId(2)));
    let mut batches = Vec::new();
    for t in tickets {
        batches.push(t.await.unwrap().0);
    }
    assert_eq!(batches, vec![3, 3, 3, 3, 4, 4, 4, 4, 5]);
    h.shutdown();
    j.await.unwrap();
    assert_eq!(store.load().await.unwrap().bookings.len(), 10);
}

/// A batch the store fails is one store fault however many jobs it carries.
async fn writer_reports_a_failed_batch_once(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let gated = Faulty::new(store.clone(), Mode::GatedFail);
    let (h, j) = Writer::spawn(gated.clone(), WriterConfig::default(), epoch, BatchId(2));
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = told.clone();
    h.on_batch(move |o| sink.lock().unwrap().push(o));
    let plug = h
        .submit(vec![Event::BookingCreated(booking(7000, 600, 1000, 3001))])
        .unwrap();
    gated.entered.notified().await;
    let tickets: Vec<_> = (1..=50u64)
        .map(|n| {
            h.submit(vec![Event::BookingCreated(booking(
                7000 + n,
                600 + n,
                1000,
                3001,
            ))])
            .unwrap()
        })
        .collect();
    gated.gate.add_permits(64);
    assert_eq!(plug.await, Err(CommitError::Failed));
    for t in tickets {
        assert_eq!(t.await, Err(CommitError::Failed));
    }
    h.shutdown();
    j.await.unwrap();
    let told = told.lock().unwrap().clone();
    assert_eq!(
        told,
        vec![BatchOutcome::StoreFault, BatchOutcome::StoreFault],
        "51 jobs in two batches are two faults"
    );
}

async fn writer_queue_full_refuses_at_once(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let gated = Faulty::new(store.clone(), Mode::Gated);
    let cfg = WriterConfig {
        queue_events_max: 4,
        ..WriterConfig::default()
    };
    let (h, j) = Writer::spawn(gated.clone(), cfg, epoch, BatchId(2));
    let ev = |n: u64| {
        vec![Event::BookingCreated(booking(
            7000 + n,
            500 + n,
            1000,
            3001,
        ))]
    };
    let first = h.submit(ev(1)).unwrap();
    gated.entered.notified().await; // the writer holds job 1 in a commit
    let a = h.submit(ev(2)).unwrap();
    let b = h.submit(Vec::new()).unwrap();
    let c = h
        .submit(vec![
            Event::AccountCreated(account(7, None)),
            Event::AccountCreated(account(8, None)),
            Event::AccountCreated(account(9, None)),
        ])
        .unwrap();
    assert_eq!(h.queued_events(), 4);
    assert_eq!(h.submit(ev(3)).err(), Some(SubmitError::QueueFull));
    gated.gate.add_permits(10);
    assert_eq!(first.await, Ok(BatchId(2)));
    assert_eq!(a.await, Ok(BatchId(3)));
    assert_eq!(b.await, Ok(BatchId(3)));
    assert_eq!(c.await, Ok(BatchId(3)));
    h.shutdown();
    j.await.unwrap();
    assert_eq!(store.load().await.unwrap().accounts.len(), 5);
}

/// A release, its tickets, the opening, admissions and the cursor come back as written; the
/// cursor never moves back; a place given twice fails its batch whole.
async fn waiting_room_rows_round_trip(store: Arc<dyn Store>) {
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let release = Release {
        release_id: ReleaseId(40),
        session_ids: vec![SessionId(1000), SessionId(1001)],
        opens_at: at(600),
        admit_per_s: Some(25),
        pass_ttl_s: 300,
        draw_nonce: "ab".repeat(32),
        created_at: at(10),
    };
    let ticket = |index: u32, account: u64| QueueTicket {
        release_id: ReleaseId(40),
        index,
        account_id: AccountId(account),
        created_at: at(20 + i64::from(index)),
    };
    let mut batch = vec![Event::ReleaseCreated(release.clone())];
    batch.extend((0..3).map(|i| Event::QueueTicketIssued(ticket(i, 1 + u64::from(i)))));
    store.commit(BatchId(2), epoch, &batch).await.unwrap();
    let admission = |index: u32| QueueAdmission {
        release_id: ReleaseId(40),
        index,
        expires_at: at(900),
    };
    let batch = vec![
        Event::ReleaseOpened {
            release_id: ReleaseId(40),
            prequeue: 3,
        },
        Event::QueueTicketIssued(ticket(3, 9)),
        Event::QueueAdvanced {
            release_id: ReleaseId(40),
            cursor: 2,
            admitted: vec![admission(2), admission(0)],
        },
    ];
    store.commit(BatchId(3), epoch, &batch).await.unwrap();
    // A late step with a smaller cursor does not move it back; a second opening changes nothing;
    // an admission sent again (a step retried) is kept once.
    let batch = vec![
        Event::QueueAdvanced {
            release_id: ReleaseId(40),
            cursor: 1,
            admitted: vec![admission(2)],
        },
        Event::ReleaseOpened {
            release_id: ReleaseId(40),
            prequeue: 7,
        },
    ];
    store.commit(BatchId(4), epoch, &batch).await.unwrap();
    let dup = vec![Event::QueueTicketIssued(ticket(3, 10))];
    assert!(store.commit(BatchId(5), epoch, &dup).await.is_err());

    let snap = store.load().await.unwrap();
    assert_eq!(
        snap.releases,
        vec![ReleaseState {
            release,
            prequeue: Some(3),
            cursor: 2,
        }]
    );
    assert_eq!(
        snap.queue_tickets,
        vec![ticket(0, 1), ticket(1, 2), ticket(2, 3), ticket(3, 9)]
    );
    assert_eq!(snap.queue_admissions, vec![admission(0), admission(2)]);
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let db = super::common::PgDb::create().await;
                    let store = super::common::dyn_store(db.store().await);
                    super::$check(store).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (_dir, store) = super::common::sqlite_store().await;
                    super::$check(super::common::dyn_store(store)).await;
                }
            )*
        }
    };
}

conformance!(
    round_trip_every_event_kind,
    waiting_room_rows_round_trip,
    reads_audit_keys_and_idempotency_ttl,
    over_capacity_batch_fails_whole,
    one_live_booking_per_person_and_dose,
    duplicate_idempotency_key_fails,
    fencing_old_epoch_writes_nothing,
    writer_batches_a_burst,
    load_is_one_snapshot_while_batches_commit,
    writer_caps_a_batch_in_bookings,
    writer_failed_and_in_doubt_commits,
    writer_reports_a_failed_batch_once,
    writer_refuses_only_the_offending_job_of_a_batch,
    writer_queue_full_refuses_at_once,
);

/// PostgreSQL only: where the large tables cannot get connections of their own (the role's
/// connection limit is reached), the load reads them on its own connection and loads the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_load_without_spare_connections_reads_on_one() {
    let db = common::PgDb::create_with_connection_limit(2).await;
    let limited = common::dyn_store(db.store().await);
    let epoch = limited.acquire_epoch().await.unwrap();
    setup(&limited, epoch, 1).await;
    let bookings: Vec<Event> = (0..20)
        .map(|i| Event::BookingCreated(booking(7_000 + i, 600 + i, 1000, 3001 + i % 3)))
        .collect();
    limited.commit(BatchId(2), epoch, &bookings).await.unwrap();
    // The pooled connection and the commit connection: the role has no connection to spare.
    let (admin, conn) = tokio_postgres::connect(common::PG_ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let open: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 2);
    let snap = limited.load().await.unwrap();
    assert_eq!(snap.bookings.len(), 20);
    assert_eq!(pool_booked(&snap, 3001), (7, 10));
    // The same as a load with connections to spare.
    let spare = format!("postgres://postgres@127.0.0.1:5432/{}", db.name);
    let unlimited = kataar_store::PgStore::connect(&spare, kataar_store::PgOptions::default())
        .await
        .unwrap();
    assert_eq!(unlimited.load().await.unwrap(), snap);
}

/// PostgreSQL only: a commit blocked by another transaction's row lock passes its deadline;
/// the writer terminates its backend, reads back (not committed) and answers Failed; after
/// the lock is released the next batch commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_in_doubt_commit_is_resolved_by_read_back() {
    let db = common::PgDb::create().await;
    let pg = db.store().await;
    let store = common::dyn_store(pg.clone());
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;

    let (locker, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; SELECT * FROM pools WHERE pool_id = 3001 FOR UPDATE")
        .await
        .unwrap();

    let cfg = WriterConfig {
        commit_timeout: Duration::from_millis(300),
        ..WriterConfig::default()
    };
    let (h, j) = Writer::spawn(store.clone(), cfg, epoch, BatchId(2));
    let ticket = h
        .submit(vec![Event::BookingCreated(booking(7001, 501, 1000, 3001))])
        .unwrap();
    assert_eq!(ticket.await, Err(CommitError::Failed));
    assert!(!store.batch_committed(BatchId(2), epoch).await.unwrap());

    locker.batch_execute("ROLLBACK").await.unwrap();
    let ticket = h
        .submit(vec![Event::BookingCreated(booking(7001, 501, 1000, 3001))])
        .unwrap();
    assert_eq!(ticket.await, Ok(BatchId(3)));
    h.shutdown();
    j.await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(snap.bookings.len(), 1);
    assert_eq!(pool_booked(&snap, 3001), (1, 10));
}

/// `sslmode=require`: the pool's and the commit connection are TLS (the local server offers
/// it), commits and reads work over them; without it nothing is encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sslmode_require_encrypts_every_connection() {
    let db = common::PgDb::create().await;
    let (admin, conn) = tokio_postgres::connect(common::PG_ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let offered: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(offered, "on", "the test server must offer TLS");
    let url = format!("{}?sslmode=require", db.url);
    let pg = Arc::new(
        kataar_store::PgStore::connect(&url, kataar_store::PgOptions::default())
            .await
            .unwrap(),
    );
    assert!(pg.encrypted());
    let store = common::dyn_store(pg.clone());
    let epoch = store.acquire_epoch().await.unwrap();
    setup(&store, epoch, 1).await;
    let (h, j) = Writer::spawn(store.clone(), WriterConfig::default(), epoch, BatchId(2));
    let ticket = h
        .submit(vec![Event::BookingCreated(booking(7000, 600, 1000, 3001))])
        .unwrap();
    assert_eq!(ticket.await, Ok(BatchId(2)));
    assert_eq!(store.load().await.unwrap().bookings.len(), 1);
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1",
            &[&db.name],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.get::<_, bool>(0)),
        "a connection of the store is not encrypted"
    );
    h.shutdown();
    j.await.unwrap();
    drop(store);
    drop(pg);

    // The default stays plain.
    let plain = db.store().await;
    assert!(!plain.encrypted());
}
