//! Takeover on one PostgreSQL database: an old writer keeps committing bookings while a new
//! one starts the way the server does ([`kataar_store::take_over`]: fence, then load, then
//! number batches and bookings above the snapshot's maxima). No id collides, no batch of the
//! old writer is taken for the new one's, every acknowledged booking is stored exactly once
//! and as its writer wrote it, and the old writer reports itself fenced.
#![allow(clippy::unwrap_used)]

mod common;

use kataar_domain::*;
use kataar_store::fixtures::{booking, geography, session};
use kataar_store::{take_over, CommitError, Writer, WriterConfig, WriterHealth};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bookings the old writer has acknowledged before the new one starts.
const OLD_ACKS_BEFORE_TAKEOVER: usize = 200;
/// Bookings the new writer commits after taking over.
const NEW_BOOKINGS: u64 = 300;
/// Bookings submitted at once by each writer's client.
const IN_FLIGHT: usize = 16;

/// What one writer's client learned: booking id → (batch id, the person it booked).
type Acks = HashMap<u64, (u64, u64)>;

/// Books one person per booking id from `first_id` on, `IN_FLIGHT` at a time, until `stop`
/// is set, the writer is fenced, or `limit` bookings were acknowledged.
async fn client(
    handle: kataar_store::WriterHandle,
    first_id: u64,
    person_base: u64,
    limit: u64,
    stop: Arc<AtomicBool>,
) -> (Acks, bool) {
    let mut acks = Acks::new();
    let mut next = first_id;
    loop {
        let mut tickets = Vec::new();
        for _ in 0..IN_FLIGHT {
            let person = person_base + next;
            let b = booking(next, person, 1000, 3001);
            tickets.push((
                next,
                person,
                handle.submit(vec![Event::BookingCreated(b)]).unwrap(),
            ));
            next += 1;
        }
        let mut fenced = false;
        for (id, person, t) in tickets {
            match t.await {
                Ok(batch) => {
                    assert!(acks.insert(id, (batch.0, person)).is_none());
                }
                Err(CommitError::Fenced) => fenced = true,
                Err(CommitError::Failed) => panic!("booking {id} failed: ids collided?"),
            }
        }
        if fenced || stop.load(Ordering::Acquire) || acks.len() as u64 >= limit {
            return (acks, fenced);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_new_writer_takes_over_from_one_still_committing() {
    let db = common::PgDb::create().await;
    let store = common::dyn_store(db.store().await);
    let old_epoch = store.acquire_epoch().await.unwrap();
    let mut events = geography();
    events.push(session(1000, 3001, 1, 1_000_000));
    store.commit(BatchId(1), old_epoch, &events).await.unwrap();

    let (old, old_join) = Writer::spawn(
        store.clone(),
        WriterConfig::default(),
        old_epoch,
        BatchId(2),
    );
    let stop_old = Arc::new(AtomicBool::new(false));
    // The old server's people are 1_000_000 + id, the new one's 2_000_000 + id: a row shows
    // which writer wrote it.
    let old_client = tokio::spawn(client(
        old.clone(),
        1,
        1_000_000,
        u64::MAX,
        stop_old.clone(),
    ));
    // Start the new one once the old has committed a good part.
    loop {
        let committed = old.positions().committed;
        if committed >= (OLD_ACKS_BEFORE_TAKEOVER / IN_FLIGHT) as u64 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let new_store = common::dyn_store(db.store().await);
    let (new_epoch, snapshot) = take_over(new_store.as_ref()).await.unwrap();
    assert!(new_epoch > old_epoch);
    let first_batch = snapshot.batch_id_max + 1;
    let first_booking = snapshot
        .bookings
        .iter()
        .map(|b| b.booking_id.0)
        .max()
        .unwrap_or(0)
        + 1;
    let loaded: Vec<u64> = snapshot.bookings.iter().map(|b| b.booking_id.0).collect();
    let (new, new_join) = Writer::spawn(
        new_store.clone(),
        WriterConfig::default(),
        new_epoch,
        BatchId(first_batch),
    );
    let (new_acks, new_fenced) = client(
        new.clone(),
        first_booking,
        2_000_000,
        NEW_BOOKINGS,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    assert!(!new_fenced);
    stop_old.store(true, Ordering::Release);
    let (old_acks, old_fenced) = old_client.await.unwrap();
    // The old writer learned it was fenced (its client kept submitting until then) and says so.
    assert!(old_fenced, "the old writer was never fenced");
    assert_eq!(old.health(), WriterHealth::Fenced);
    assert_eq!(
        old.failed().await,
        "fenced by a newer epoch (another server took over)"
    );
    assert_eq!(new.health(), WriterHealth::Running);

    // Everything the old writer acknowledged was in the new writer's snapshot: it was fenced
    // before the load, so nothing it committed came after.
    for id in old_acks.keys() {
        assert!(
            loaded.contains(id),
            "old booking {id} acknowledged after the takeover load"
        );
    }
    // No booking id was acknowledged by both.
    for id in new_acks.keys() {
        assert!(
            !old_acks.contains_key(id),
            "booking id {id} acknowledged by both writers"
        );
    }

    new.shutdown();
    new_join.await.unwrap();
    old.shutdown();
    old_join.await.unwrap();

    // Every acknowledged booking is stored once, as the writer that acknowledged it wrote it,
    // in a batch row of that writer's epoch.
    let snap = store.load().await.unwrap();
    let stored: HashMap<u64, &Booking> =
        snap.bookings.iter().map(|b| (b.booking_id.0, b)).collect();
    assert_eq!(
        stored.len(),
        snap.bookings.len(),
        "a booking id is stored twice"
    );
    assert_eq!(snap.bookings.len(), old_acks.len() + new_acks.len());
    let (client_pg, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client_pg
        .query("SELECT batch_id, epoch FROM batches", &[])
        .await
        .unwrap();
    let epochs: HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (acks, epoch) in [(&old_acks, old_epoch), (&new_acks, new_epoch)] {
        for (id, (batch, person)) in acks {
            let b = stored
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged booking {id} lost"));
            assert_eq!(b.person_key, kataar_store::fixtures::person_key(*person));
            let batch_epoch = epochs.get(&i64::try_from(*batch).unwrap()).copied();
            assert_eq!(
                batch_epoch,
                Some(i64::try_from(epoch).unwrap()),
                "batch {batch}"
            );
        }
    }
    let pool = snap.pools.iter().find(|p| p.pool_id.0 == 3001).unwrap();
    assert_eq!(pool.booked as usize, snap.bookings.len());
}
