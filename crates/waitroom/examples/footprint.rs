//! Memory per waiting ticket and the cost of a poll, for one release of 10^6 tickets:
//! `cargo run --release -p kataar-waitroom --example footprint [TICKETS]`.
//!
//! Bytes are counted by a global allocator that adds up what is live, so the figure includes
//! every vector's spare capacity and the account map's buckets.

use kataar_waitroom::{Key, Queue, QueueConfig, Status};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let t0 = 1_800_000_000_000u64;
    let open = t0 + 3_600_000;
    let cfg = QueueConfig {
        release_id: 1,
        created_at_ms: t0,
        opens_at_ms: open,
        admit_per_s: 500.0,
        pass_ttl_s: 300,
        keepalive_s: 60,
        tickets_max: n,
        poll_budget_per_s: 5_000.0,
        poll_min_s: 2,
        poll_max_s: 120,
    };
    let base = LIVE.load(Ordering::Relaxed);
    let mut q = Queue::new(cfg, [7; 32], Key::new([3; 32]));
    let started = Instant::now();
    for a in 0..u64::from(n) {
        if q.enqueue(1_000_000 + a * 7, t0 + a / 1000).is_err() {
            eprintln!("refused at {a}");
            std::process::exit(1);
        }
    }
    let enqueue_ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    let before_open = LIVE.load(Ordering::Relaxed) - base;
    let started = Instant::now();
    q.advance(open, u64::MAX);
    let draw_ms = started.elapsed().as_secs_f64() * 1000.0;
    let after_open = LIVE.load(Ordering::Relaxed) - base;
    // Polls in a scattered order, as clients arrive.
    let started = Instant::now();
    let mut sum = 0u64;
    let polls = u64::from(n);
    for k in 0..polls {
        let i = ((k * 2_654_435_761) % u64::from(n)) as u32;
        let a = q
            .poll(i, 1_000_000 + u64::from(i) * 7, open + 1_000)
            .map(|a| a.status);
        if let Ok(Status::Waiting {
            position: Some(p), ..
        }) = a
        {
            sum += p;
        }
    }
    let poll_ns = started.elapsed().as_nanos() as f64 / polls as f64;
    println!(
        "{{\"tickets\": {n}, \"bytes_per_ticket_before_opening\": {:.1}, \
         \"bytes_per_ticket_after_opening\": {:.1}, \"enqueue_ns\": {enqueue_ns:.0}, \
         \"draw_ms\": {draw_ms:.0}, \"poll_ns\": {poll_ns:.0}, \"positions_sum\": {sum}}}",
        before_open as f64 / f64::from(n),
        after_open as f64 / f64::from(n),
    );
}
