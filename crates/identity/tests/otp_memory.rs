//! What the OTP tables cost per entry, measured with a counting allocator, and that they stay
//! at their bounds (`otp_txns_max`, `otp_mobiles_max`) under a stream of new mobiles.

// A global allocator is the one way to count heap bytes; it only forwards to the system's.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use kataar_identity::{normalize_mobile, OtpConfig, OtpManager};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap bytes per mobile with one OTP (its transaction included), at the bound; documented in
/// `otp.rs` and the README as the figure behind the defaults.
const BYTES_PER_MOBILE_MAX: isize = 450;

#[test]
fn tables_hold_their_bounds_and_cost_what_is_documented() {
    let n = 100_000usize;
    let cfg = OtpConfig {
        txns_max: n,
        mobiles_max: n,
        ..OtpConfig::defaults()
    };
    let mobiles: Vec<_> = (0..2 * n as u64)
        .map(|i| normalize_mobile(&format!("9{i:09}")).unwrap())
        .collect();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let m = OtpManager::new(cfg, b"otp-memory-test-key");
    let t0 = Instant::now();
    for (i, mobile) in mobiles.iter().enumerate() {
        // Spread over 100 s: every transaction is still live at the end.
        let at = t0 + Duration::from_micros(i as u64 * 500);
        m.request(mobile, at).unwrap();
    }
    // Twice the bound of new mobiles went through; the tables sit at their bounds.
    assert_eq!(m.txn_slots_used(), n);
    assert_eq!(m.mobiles_tracked(), n);
    let used = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let per_mobile = used / n as isize;
    eprintln!("OTP tables at the bound: {used} bytes for {n} mobiles and transactions, {per_mobile} bytes each");
    assert!(
        per_mobile <= BYTES_PER_MOBILE_MAX,
        "{per_mobile} bytes per mobile"
    );
    // The newest mobile's OTP is live; the oldest mobile has been forgotten and may ask again.
    assert!(m
        .request(&mobiles[0], t0 + Duration::from_secs(101))
        .is_ok());
}
