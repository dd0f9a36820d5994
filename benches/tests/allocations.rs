//! Allocations per request through the whole router, bounded: a booking (with its commit to
//! the embedded store), a cached availability read and an admission refusal. Allocation counts
//! do not depend on the machine's speed, so these bounds hold on any box; each is the least
//! seen over [`ROUNDS`] requests (a background task, such as the readiness ping, may allocate
//! during one of them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::StatusCode;
use kataar_benches::{allocations, InProcess};

/// Requests measured of each kind (after [`WARM_UP`] that are not).
const ROUNDS: usize = 30;
/// Requests sent first, so that lazily built state (metric handles, caches) is not counted.
const WARM_UP: usize = 20;

/// Allocations a booking may make, its commit included (the design aims at 60).
const BOOKING_ALLOCATIONS_MAX: u64 = 235;
/// Allocations a cached availability read may make (the design aims at 15).
const CACHED_READ_ALLOCATIONS_MAX: u64 = 70;
/// Allocations a refusal by admission may make.
const REFUSAL_ALLOCATIONS_MAX: u64 = 66;

/// The least allocations (and their bytes) one request made by `make` took through the
/// router, answered `want`, over `ROUNDS` requests (building the request is not counted).
async fn least(
    h: &InProcess,
    make: impl Fn(&InProcess) -> anyhow::Result<http::Request<axum::body::Body>>,
    want: StatusCode,
) -> (u64, u64) {
    let mut best = (u64::MAX, 0);
    for _ in 0..ROUNDS {
        let req = make(h).unwrap();
        let (a0, b0) = allocations();
        let (s, _) = h.send(req).await.unwrap();
        let (a1, b1) = allocations();
        assert_eq!(s, want);
        if a1 - a0 < best.0 {
            best = (a1 - a0, b1 - b0);
        }
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_allocate_no_more_than_their_bounds() {
    let h = InProcess::start(2).await.unwrap();
    for _ in 0..WARM_UP {
        h.book_and_cancel().await.unwrap();
        assert_eq!(h.send(h.read().unwrap()).await.unwrap().0, StatusCode::OK);
        let (s, _) = h.send(h.refused().unwrap()).await.unwrap();
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    }
    // A booking is counted from its request to its committed answer; its cancellation is not.
    let mut booked = Vec::new();
    let mut booking = (u64::MAX, 0);
    for _ in 0..ROUNDS {
        let (req, who) = h.booking().unwrap();
        let (a0, b0) = allocations();
        let (s, body) = h.send(req).await.unwrap();
        let (a1, b1) = allocations();
        booked.push(h.cancel_booked(who, s, &body).await.unwrap());
        if a1 - a0 < booking.0 {
            booking = (a1 - a0, b1 - b0);
        }
    }
    assert_eq!(booked.len(), ROUNDS);
    let read = least(&h, InProcess::read, StatusCode::OK).await;
    let refusal = least(&h, InProcess::refused, StatusCode::SERVICE_UNAVAILABLE).await;
    eprintln!(
        "allocations per request (bytes): booking {} ({}), cached read {} ({}), refusal {} ({})",
        booking.0, booking.1, read.0, read.1, refusal.0, refusal.1
    );
    assert!(
        booking.0 <= BOOKING_ALLOCATIONS_MAX,
        "a booking allocated {} times (bound {BOOKING_ALLOCATIONS_MAX})",
        booking.0
    );
    assert!(
        read.0 <= CACHED_READ_ALLOCATIONS_MAX,
        "a cached read allocated {} times (bound {CACHED_READ_ALLOCATIONS_MAX})",
        read.0
    );
    assert!(
        refusal.0 <= REFUSAL_ALLOCATIONS_MAX,
        "a refusal allocated {} times (bound {REFUSAL_ALLOCATIONS_MAX})",
        refusal.0
    );
}
