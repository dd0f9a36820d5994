//! Admission behaviour end to end through the public API (no HTTP): buckets, keyed isolation,
//! lane isolation, the wait queue and its bounds, `Retry-After`, the breaker, bounded keyed
//! state and metrics. Queue tests run on a paused tokio clock; nothing asserts wall-clock timings.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kataar_admission::{
    Admission, AdmissionConfig, BreakerState, Clock, Lane, ManualClock, Permit, Refusal,
    RefusalKind,
};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, last])
}

/// Generous keyed limits so lane behaviour is what a test sees.
fn base() -> AdmissionConfig {
    AdmissionConfig {
        client_rate_per_s: 1e6,
        client_burst: 1_000_000,
        account_rate_per_s: 1e6,
        account_burst: 1_000_000,
        retry_after_jitter_pct: 25,
        ..AdmissionConfig::default()
    }
}

/// A booking lane of `rate_per_s` with burst `burst`.
fn booking(rate_per_s: f64, burst: u32) -> AdmissionConfig {
    AdmissionConfig {
        booking_rate_per_s: rate_per_s,
        booking_burst: burst,
        ..base()
    }
}

fn manual(config: AdmissionConfig) -> (Admission, ManualClock) {
    let clock = ManualClock::new();
    let admission = Admission::with_clock(config, Clock::manual(&clock)).unwrap();
    (admission, clock)
}

/// Admitted and finished at once (the request's work is not what these tests look at).
fn drop_permit(permit: Permit) {
    drop(permit);
}

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    fut.poll(&mut cx)
}

/// Lets spawned tasks run until `lane`'s queue holds `queued` (bounded).
async fn until_queued(admission: &Admission, lane: Lane, queued: u32) {
    for _ in 0..1000 {
        if admission.lane_status(lane).queued == queued {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "queue never reached {queued}: {:?}",
        admission.lane_status(lane)
    );
}

fn spawn_admit(
    admission: &Arc<Admission>,
    lane: Lane,
    client: IpAddr,
) -> tokio::task::JoinHandle<Result<Permit, Refusal>> {
    let admission = Arc::clone(admission);
    tokio::spawn(async move { admission.admit(lane, client, None, None).await })
}

#[test]
fn bucket_admits_its_burst_then_refuses_then_refills() {
    let (admission, clock) = manual(booking(10.0, 5));
    let permits: Vec<Permit> = (0..5)
        .map(|i| admission.try_admit(Lane::Booking, ip(i), None).unwrap())
        .collect();
    assert_eq!(permits.len(), 5);
    let refusal = admission.try_admit(Lane::Booking, ip(9), None).unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::Overloaded);
    assert_eq!(refusal.kind.status(), 503);
    clock.advance(Duration::from_millis(100));
    assert!(admission.try_admit(Lane::Booking, ip(9), None).is_ok());
    assert!(admission.try_admit(Lane::Booking, ip(9), None).is_err());
}

#[test]
fn a_noisy_client_is_limited_alone() {
    let config = AdmissionConfig {
        client_rate_per_s: 1.0,
        client_burst: 3,
        ..booking(1e6, 1_000_000)
    };
    let (admission, _) = manual(config);
    let noisy = ip(1);
    for _ in 0..3 {
        drop_permit(admission.try_admit(Lane::Browse, noisy, None).unwrap());
    }
    for _ in 0..10 {
        let refusal = admission.try_admit(Lane::Browse, noisy, None).unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::TooManyRequests);
        assert_eq!(refusal.kind.status(), 429);
        assert_eq!(refusal.kind.code(), "too_many_requests");
    }
    // Its limit spans lanes; everyone else is untouched.
    assert!(admission.try_admit(Lane::Booking, noisy, None).is_err());
    for other in 2..20 {
        drop_permit(admission.try_admit(Lane::Browse, ip(other), None).unwrap());
    }
}

#[test]
fn ipv6_clients_share_their_slash_64() {
    let config = AdmissionConfig {
        client_rate_per_s: 1.0,
        client_burst: 2,
        ..base()
    };
    let (admission, _) = manual(config);
    let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
    let b: IpAddr = "2001:db8:0:1::ffff".parse().unwrap();
    let c: IpAddr = "2001:db8:0:2::1".parse().unwrap();
    drop_permit(admission.try_admit(Lane::Browse, a, None).unwrap());
    drop_permit(admission.try_admit(Lane::Browse, b, None).unwrap());
    assert!(admission.try_admit(Lane::Browse, b, None).is_err());
    drop_permit(admission.try_admit(Lane::Browse, c, None).unwrap());
}

#[test]
fn a_noisy_account_is_limited_alone() {
    let config = AdmissionConfig {
        account_rate_per_s: 1.0,
        account_burst: 2,
        ..base()
    };
    let (admission, _) = manual(config);
    drop_permit(admission.try_admit(Lane::Booking, ip(1), Some(7)).unwrap());
    drop_permit(admission.try_admit(Lane::Booking, ip(2), Some(7)).unwrap());
    let refusal = admission
        .try_admit(Lane::Booking, ip(3), Some(7))
        .unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::TooManyRequests);
    drop_permit(admission.try_admit(Lane::Booking, ip(3), Some(8)).unwrap());
    drop_permit(admission.try_admit(Lane::Booking, ip(3), None).unwrap());
}

#[tokio::test(start_paused = true)]
async fn operators_keep_getting_in_while_bookings_are_saturated() {
    let config = AdmissionConfig {
        booking_queue_max: 8,
        booking_queue_wait_ms_max: 60_000,
        ..booking(1.0, 1)
    };
    let admission = Arc::new(Admission::with_clock(config, Clock::tokio()).unwrap());
    let _first = admission.try_admit(Lane::Booking, ip(0), None).unwrap();
    let waiters: Vec<_> = (1..=8)
        .map(|i| spawn_admit(&admission, Lane::Booking, ip(i)))
        .collect();
    until_queued(&admission, Lane::Booking, 8).await;
    // The booking lane is full: refused at once, with or without waiting.
    let refused = admission
        .admit(Lane::Booking, ip(50), None, None)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, RefusalKind::Overloaded);
    assert!(admission.try_admit(Lane::Booking, ip(51), None).is_err());
    // Operators (and readers) are served immediately.
    for i in 0..50 {
        let fut = admission.admit(Lane::Operator, ip(100 + i), None, None);
        let Poll::Ready(result) = poll_once(pin!(fut)) else {
            panic!("operator admission waited");
        };
        assert_eq!(result.unwrap().lane(), Lane::Operator);
        drop_permit(
            admission
                .try_admit(Lane::Browse, ip(100 + i), None)
                .unwrap(),
        );
    }
    for w in waiters {
        drop_permit(w.await.unwrap().unwrap());
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once() {
    let config = AdmissionConfig {
        booking_queue_max: 2,
        booking_queue_wait_ms_max: 60_000,
        ..booking(1.0, 1)
    };
    let admission = Arc::new(Admission::with_clock(config, Clock::tokio()).unwrap());
    let _first = admission.try_admit(Lane::Booking, ip(0), None).unwrap();
    let a = spawn_admit(&admission, Lane::Booking, ip(1));
    let b = spawn_admit(&admission, Lane::Booking, ip(2));
    until_queued(&admission, Lane::Booking, 2).await;
    let fut = admission.admit(Lane::Booking, ip(3), None, None);
    let Poll::Ready(result) = poll_once(pin!(fut)) else {
        panic!("a request that finds the queue full must not wait");
    };
    let refusal = result.unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::Overloaded);
    // Backlog: two queued at 1/s → next token in 3 s; jitter adds at most 1 s.
    assert!((3..=4).contains(&refusal.retry_after_s), "{refusal:?}");
    assert!(a.await.unwrap().is_ok());
    assert!(b.await.unwrap().is_ok());
    assert_eq!(admission.lane_status(Lane::Booking).queued, 0);
}

#[tokio::test(start_paused = true)]
async fn waits_past_the_bound_or_the_client_deadline_are_refused_at_once() {
    let config = AdmissionConfig {
        booking_queue_max: 100,
        booking_queue_wait_ms_max: 2500,
        ..booking(1.0, 1)
    };
    let admission = Arc::new(Admission::with_clock(config, Clock::tokio()).unwrap());
    let _first = admission.try_admit(Lane::Booking, ip(0), None).unwrap();
    // A client that will wait only half a second is refused (its token is a second away).
    let fut = admission.admit(Lane::Booking, ip(9), None, Some(Duration::from_millis(500)));
    let Poll::Ready(Err(refusal)) = poll_once(pin!(fut)) else {
        panic!("deadline shorter than the wait must be refused at once");
    };
    assert_eq!(refusal.kind, RefusalKind::Overloaded);
    // Tokens at 1 s and 2 s fit the 2.5 s bound; the one at 3 s does not.
    let one = spawn_admit(&admission, Lane::Booking, ip(1));
    until_queued(&admission, Lane::Booking, 1).await;
    let two = spawn_admit(&admission, Lane::Booking, ip(2));
    until_queued(&admission, Lane::Booking, 2).await;
    let fut = admission.admit(Lane::Booking, ip(3), None, None);
    let Poll::Ready(Err(refusal)) = poll_once(pin!(fut)) else {
        panic!("a wait past the bound must be refused at once");
    };
    assert_eq!(refusal.kind, RefusalKind::Overloaded);
    assert!((3..=4).contains(&refusal.retry_after_s), "{refusal:?}");
    let started = tokio::time::Instant::now();
    drop_permit(one.await.unwrap().unwrap());
    drop_permit(two.await.unwrap().unwrap());
    // The waiters really waited for their tokens (paused clock: exact, not a timing assertion).
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_standing_queue_cuts_the_allowed_wait() {
    let config = AdmissionConfig {
        booking_queue_max: 100,
        booking_queue_wait_ms_max: 5000,
        queue_drain_interval_ms: 100,
        queue_wait_ms_standing: 5,
        ..booking(10.0, 1) // one token per 100 ms
    };
    let admission = Arc::new(Admission::with_clock(config, Clock::tokio()).unwrap());
    let _first = admission.try_admit(Lane::Booking, ip(0), None).unwrap();
    let a = spawn_admit(&admission, Lane::Booking, ip(1)); // token at 100 ms
    until_queued(&admission, Lane::Booking, 1).await;
    let b = spawn_admit(&admission, Lane::Booking, ip(2)); // token at 200 ms
    until_queued(&admission, Lane::Booking, 2).await;
    // 150 ms later the queue has not been empty for longer than the drain interval.
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop_permit(a.await.unwrap().unwrap());
    assert_eq!(admission.lane_status(Lane::Booking).queued, 1);
    let fut = admission.admit(Lane::Booking, ip(3), None, None);
    let Poll::Ready(Err(refusal)) = poll_once(pin!(fut)) else {
        panic!("a standing queue only accepts waits under queue_wait_ms_standing");
    };
    assert_eq!(refusal.kind, RefusalKind::Overloaded);
    // Once the queue drains, the full bound applies again.
    drop_permit(b.await.unwrap().unwrap());
    assert_eq!(admission.lane_status(Lane::Booking).queued, 0);
    let permit = admission.admit(Lane::Booking, ip(4), None, None).await;
    assert!(permit.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_queue() {
    let config = AdmissionConfig {
        booking_queue_max: 1,
        // The cancelled waiter's token (1 s away) fits; the one after it (2 s) would not.
        booking_queue_wait_ms_max: 1500,
        ..booking(1.0, 1)
    };
    let admission = Admission::with_clock(config, Clock::tokio()).unwrap();
    let _first = admission.try_admit(Lane::Booking, ip(0), None).unwrap();
    {
        let fut = admission.admit(Lane::Booking, ip(1), None, None);
        let mut fut = pin!(fut);
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(admission.lane_status(Lane::Booking).queued, 1);
    }
    assert_eq!(admission.lane_status(Lane::Booking).queued, 0);
    // The place (and the token it had reserved) went to the next caller.
    let permit = admission.admit(Lane::Booking, ip(2), None, None).await;
    assert!(permit.is_ok());
}

#[test]
fn too_many_requests_retry_after_follows_the_key_rate() {
    let config = AdmissionConfig {
        client_rate_per_s: 0.1, // one per 10 s
        client_burst: 1,
        ..base()
    };
    let (admission, clock) = manual(config);
    drop_permit(admission.try_admit(Lane::Browse, ip(1), None).unwrap());
    let refusal = admission.try_admit(Lane::Browse, ip(1), None).unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::TooManyRequests);
    assert!((10..=12).contains(&refusal.retry_after_s), "{refusal:?}");
    clock.advance(Duration::from_secs(6));
    let refusal = admission.try_admit(Lane::Browse, ip(1), None).unwrap_err();
    assert!((4..=5).contains(&refusal.retry_after_s), "{refusal:?}");
}

#[test]
fn lane_retry_after_is_at_least_one_second_and_capped() {
    let (admission, _) = manual(AdmissionConfig {
        retry_after_s_max: 30,
        ..booking(1e5, 1)
    });
    drop_permit(admission.try_admit(Lane::Booking, ip(1), None).unwrap());
    let refusal = admission.try_admit(Lane::Booking, ip(1), None).unwrap_err();
    assert!((1..=2).contains(&refusal.retry_after_s), "{refusal:?}");
    let (admission, _) = manual(AdmissionConfig {
        retry_after_s_max: 30,
        ..booking(0.001, 1) // one token per 1000 s
    });
    drop_permit(admission.try_admit(Lane::Booking, ip(1), None).unwrap());
    let refusal = admission.try_admit(Lane::Booking, ip(1), None).unwrap_err();
    assert_eq!(refusal.retry_after_s, 30);
}

#[test]
fn the_in_flight_cap_bounds_admitted_work() {
    let (admission, _) = manual(AdmissionConfig {
        booking_in_flight_max: 2,
        ..booking(1e6, 1_000_000)
    });
    let a = admission.try_admit(Lane::Booking, ip(1), None).unwrap();
    let _b = admission.try_admit(Lane::Booking, ip(2), None).unwrap();
    assert_eq!(admission.lane_status(Lane::Booking).in_flight, 2);
    let refusal = admission.try_admit(Lane::Booking, ip(3), None).unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::Overloaded);
    drop(a);
    assert_eq!(admission.lane_status(Lane::Booking).in_flight, 1);
    drop_permit(admission.try_admit(Lane::Booking, ip(3), None).unwrap());
}

#[test]
fn the_breaker_refuses_bookings_only_and_probes_after_the_cool_down() {
    let (admission, clock) = manual(AdmissionConfig {
        breaker_failures_max: 2,
        breaker_open_ms: 1000,
        ..base()
    });
    let breaker = Arc::clone(admission.breaker());
    breaker.record_failure();
    drop_permit(admission.try_admit(Lane::Booking, ip(1), None).unwrap());
    breaker.record_failure();
    assert_eq!(breaker.state(), BreakerState::Open);
    let refusal = admission.try_admit(Lane::Booking, ip(1), None).unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::StoreUnavailable);
    assert_eq!(refusal.kind.code(), "store_unavailable");
    assert!((1..=2).contains(&refusal.retry_after_s), "{refusal:?}");
    // Reads, logins and operators do not touch the store's breaker.
    for lane in [Lane::Browse, Lane::Auth, Lane::Operator] {
        drop_permit(admission.try_admit(lane, ip(1), None).unwrap());
    }
    clock.advance(Duration::from_millis(1000));
    let probe = admission.try_admit(Lane::Booking, ip(2), None).unwrap();
    assert!(probe.is_store_probe());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let refusal = admission.try_admit(Lane::Booking, ip(3), None).unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::StoreUnavailable);
    // The probe's request never reached the store: the next caller probes instead.
    drop(probe);
    let probe = admission.try_admit(Lane::Booking, ip(3), None).unwrap();
    assert!(probe.is_store_probe());
    // The store writer reports the commit.
    breaker.record_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    let normal = admission.try_admit(Lane::Booking, ip(4), None).unwrap();
    assert!(!normal.is_store_probe());
}

#[test]
fn keyed_state_is_bounded_at_keyed_entries_max() {
    let (admission, clock) = manual(AdmissionConfig {
        client_rate_per_s: 1.0,
        client_burst: 1,
        keyed_entries_max: 10,
        ..base()
    });
    for i in 0..100u8 {
        // Every new address is admitted; only the first ten are remembered.
        drop_permit(admission.try_admit(Lane::Browse, ip(i), None).unwrap());
    }
    assert_eq!(admission.keyed_entries().0, 10);
    // Tracked addresses keep their limit at the bound; untracked ones are judged fresh.
    assert!(admission.try_admit(Lane::Browse, ip(0), None).is_err());
    assert!(admission.try_admit(Lane::Browse, ip(50), None).is_ok());
    assert_eq!(admission.keyed_entries().0, 10);
    clock.advance(Duration::from_secs(5));
    admission.housekeeping();
    assert_eq!(admission.keyed_entries().0, 0);
    drop_permit(admission.try_admit(Lane::Browse, ip(50), None).unwrap());
    assert!(admission.try_admit(Lane::Browse, ip(50), None).is_err());
    assert_eq!(admission.keyed_entries().0, 1);
}

#[tokio::test(start_paused = true)]
async fn spawned_housekeeping_empties_idle_keys_and_stops_with_admission() {
    let config = AdmissionConfig {
        client_rate_per_s: 10.0,
        client_burst: 1,
        ..base()
    };
    let admission = Arc::new(Admission::with_clock(config, Clock::tokio()).unwrap());
    let task = admission.spawn_housekeeping(Duration::from_millis(500));
    for i in 0..50u8 {
        drop_permit(
            admission
                .try_admit(Lane::Browse, ip(i), Some(u64::from(i)))
                .unwrap(),
        );
    }
    assert_eq!(admission.keyed_entries(), (50, 50));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(admission.keyed_entries(), (0, 0));
    drop(admission);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn concurrent_callers_never_exceed_the_burst() {
    let (admission, _) = manual(booking(1.0, 1000));
    let admission = Arc::new(admission);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let admission = Arc::clone(&admission);
            std::thread::spawn(move || {
                let mut permits = Vec::new();
                for i in 0..1000u32 {
                    let client = IpAddr::from((t << 16 | i).to_be_bytes());
                    if let Ok(p) = admission.try_admit(Lane::Booking, client, None) {
                        permits.push(p);
                    }
                }
                permits
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap().len()).sum();
    // The manual clock does not move: exactly the burst gets in.
    assert_eq!(admitted, 1000);
    assert_eq!(admission.lane_status(Lane::Booking).in_flight, 0);
}

#[test]
fn metrics_are_published_with_bounded_labels() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let (admission, _) = metrics::with_local_recorder(&recorder, || {
        kataar_admission::describe_metrics();
        manual(booking(1.0, 2))
    });
    let _a = admission.try_admit(Lane::Booking, ip(1), None).unwrap();
    let _b = admission.try_admit(Lane::Booking, ip(1), None).unwrap();
    assert!(admission.try_admit(Lane::Booking, ip(1), None).is_err());
    admission.housekeeping();
    let text = handle.render();
    for line in [
        "kataar_admission_admitted_total{lane=\"booking\"} 2",
        "kataar_admission_refused_total{lane=\"booking\",reason=\"overloaded\"} 1",
        "kataar_admission_in_flight{lane=\"booking\"} 2",
        "kataar_admission_queue_depth{lane=\"booking\"} 0",
        "kataar_admission_keyed_entries{key=\"client\"} 1",
        "kataar_admission_breaker_state 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn the_api_fits_a_multi_threaded_server() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Admission>();
    send_sync::<Permit>();
    send_sync::<Refusal>();
    send_sync::<kataar_admission::Breaker>();
    send_sync::<kataar_admission::BreakerGuard>();
    let (admission, _) = manual(base());
    let fut = admission.admit(Lane::Booking, ip(1), None, None);
    send(&fut);
    drop(fut);
}

#[test]
fn a_client_address_is_capped_in_flight_at_the_bound_and_others_are_not() {
    let config = AdmissionConfig {
        client_in_flight_max: 3,
        browse_in_flight_max: 100,
        ..base()
    };
    let (admission, _clock) = manual(config);
    let held: Vec<Permit> = (0..3)
        .map(|_| admission.try_admit(Lane::Browse, ip(1), None).unwrap())
        .collect();
    assert_eq!(admission.key_in_flight(ip(1), None).0, 3);
    // At the bound, in every lane: the address's own refusal (429), not the lane's.
    for lane in [Lane::Browse, Lane::Booking, Lane::Auth] {
        let refusal = admission.try_admit(lane, ip(1), None).unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::TooManyRequests);
        assert!(refusal.retry_after_s >= 1);
    }
    // Another address is served; the lane is far from its own cap.
    drop_permit(admission.try_admit(Lane::Browse, ip(2), None).unwrap());
    // One request finishing gives its place back.
    drop(held);
    assert_eq!(admission.key_in_flight(ip(1), None).0, 0);
    drop_permit(admission.try_admit(Lane::Browse, ip(1), None).unwrap());
}

#[test]
fn an_account_is_capped_in_flight_at_the_bound_from_any_address() {
    let config = AdmissionConfig {
        account_in_flight_max: 2,
        ..base()
    };
    let (admission, _clock) = manual(config);
    let a = admission.try_admit(Lane::Booking, ip(1), Some(42)).unwrap();
    let b = admission.try_admit(Lane::Booking, ip(2), Some(42)).unwrap();
    let refusal = admission
        .try_admit(Lane::Booking, ip(3), Some(42))
        .unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::TooManyRequests);
    // A refused request took no place of its address.
    assert_eq!(admission.key_in_flight(ip(3), Some(42)), (0, 2));
    drop_permit(admission.try_admit(Lane::Booking, ip(3), Some(43)).unwrap());
    drop(a);
    let c = admission.try_admit(Lane::Booking, ip(3), Some(42)).unwrap();
    drop((b, c));
    assert_eq!(admission.key_in_flight(ip(1), Some(42)), (0, 0));
}
