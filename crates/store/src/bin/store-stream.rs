//! `store-stream`: streams `BookingCreated` batches through the group-commit writer and
//! prints each booking id to stdout (flushed) once its ticket says committed. Used by the
//! SIGKILL recovery test: every printed id must survive a `kill -9` at any moment.
//!
//! Usage: `store-stream <postgres-url | sqlite-path> [bookings_max]`

use kataar_domain::{BatchId, Event};
use kataar_store::fixtures::{booking, geography, session};
use kataar_store::{SubmitError, Writer, WriterConfig};
use std::io::Write;

/// Pools the stream spreads its bookings over (session 1, pool ids 1..=POOLS).
const POOLS: u64 = 100;
/// Places per pool (large enough that the stream never fills a pool).
const POOL_CAPACITY: u32 = 100_000;
/// Default number of bookings before the stream stops on its own.
const BOOKINGS_MAX_DEFAULT: u64 = 1_000_000;
/// Submissions awaiting their ticket at once.
const IN_FLIGHT_MAX: usize = 256;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let target = args
        .next()
        .ok_or("usage: store-stream <postgres-url | sqlite-path> [bookings_max]")?;
    let bookings_max: u64 = match args.next() {
        Some(n) => n.parse()?,
        None => BOOKINGS_MAX_DEFAULT,
    };
    let store = kataar_store::open(&target).await?;
    let snap = store.load().await?;
    let epoch = store.acquire_epoch().await?;
    let (writer, join) = Writer::spawn(
        store.clone(),
        WriterConfig::default(),
        epoch,
        BatchId(snap.batch_id_max + 1),
    );
    if snap.pools.is_empty() {
        let mut setup = geography();
        setup.push(session(1, 1, POOLS, POOL_CAPACITY));
        writer.submit(setup)?.await?;
    }
    let first_id = snap
        .bookings
        .iter()
        .map(|b| b.booking_id.0)
        .max()
        .unwrap_or(0)
        + 1;
    let mut tasks = tokio::task::JoinSet::new();
    for id in first_id..first_id + bookings_max {
        while tasks.len() >= IN_FLIGHT_MAX {
            if let Some(done) = tasks.join_next().await {
                done??;
            }
        }
        let writer = writer.clone();
        tasks.spawn(async move {
            let event = Event::BookingCreated(booking(id, id, 1, 1 + id % POOLS));
            let ticket = loop {
                match writer.submit(vec![event.clone()]) {
                    Ok(ticket) => break ticket,
                    Err(SubmitError::QueueFull) => tokio::task::yield_now().await,
                    Err(e) => return Err(Box::<dyn std::error::Error + Send + Sync>::from(e)),
                }
            };
            ticket.await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{id}")?;
            out.flush()?;
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    writer.shutdown();
    drop(writer);
    join.await?;
    Ok(())
}
