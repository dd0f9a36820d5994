//! SIGKILL recovery: `store-stream` prints each booking id after its batch committed; the
//! test kills it with SIGKILL mid-stream, then loads the store and checks that every printed
//! id is stored and no pool is over capacity (and its counter matches its bookings).
#![allow(clippy::unwrap_used)]

mod common;

use kataar_store::Store;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Acknowledged ids to see before the kill.
const ACKS_BEFORE_KILL: usize = 2_000;

/// Runs the stream against `target`, kills it, returns every id it acknowledged.
fn stream_and_kill(target: &str) -> HashSet<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-stream"))
        .arg(target)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = HashSet::new();
    while acked.len() < ACKS_BEFORE_KILL {
        let line = lines.next().expect("stream ended early").unwrap();
        acked.insert(line.trim().parse::<u64>().unwrap());
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    // It was killed mid-stream, not finished.
    assert_eq!(status.signal(), Some(9), "{status:?}");
    // Whatever it printed before dying was acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Ok(id) = line.trim().parse::<u64>() {
            acked.insert(id);
        }
    }
    acked
}

async fn verify(store: Arc<dyn Store>, acked: &HashSet<u64>) {
    let snap = store.load().await.unwrap();
    let stored: HashSet<u64> = snap.bookings.iter().map(|b| b.booking_id.0).collect();
    let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let mut per_pool: HashMap<u64, u32> = HashMap::new();
    for b in snap.bookings.iter().filter(|b| b.status.holds_place()) {
        *per_pool.entry(b.pool_id.0).or_default() += 1;
    }
    for p in &snap.pools {
        assert!(p.booked <= p.capacity, "pool {} over capacity", p.pool_id);
        assert_eq!(p.booked, per_pool.get(&p.pool_id.0).copied().unwrap_or(0));
    }
    assert!(stored.len() >= acked.len());
}

#[test]
fn sigkill_loses_no_acknowledged_booking_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(common::PgDb::create());
    let acked = stream_and_kill(&db.url);
    rt.block_on(async {
        let store = common::dyn_store(db.store().await);
        verify(store, &acked).await;
    });
}

#[test]
fn sigkill_loses_no_acknowledged_booking_sqlite() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kataar.db");
    let acked = stream_and_kill(path.to_str().unwrap());
    rt.block_on(async {
        let store = kataar_store::SqliteStore::open(&path).await.unwrap();
        verify(common::dyn_store(Arc::new(store)), &acked).await;
    });
}
