//! Tests of the load-test kit against real things: the hello server and the naive baseline on
//! port 0, a fresh PostgreSQL database per test (dropped after).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kataar_loadgen::exec::{BaselineExec, ClientSet, HelloExec};
use kataar_loadgen::lean::LeanClients;
use kataar_loadgen::pg::{self, FreshDb};
use kataar_loadgen::sched::{self, Executor, Kind, OpenConfig, RetryPolicy, Shape, ShapePlan};
use kataar_loadgen::stats::{Lane, Outcome};
use kataar_loadgen::trace::{self, TraceHeader, TraceReader};
use kataar_loadgen::{baseline, verdict, verhoeff};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[test]
fn verhoeff_generated_aadhaar_numbers_are_valid_and_distinct() {
    let mut seen = std::collections::HashSet::new();
    for seq in (0..2_000u64).chain([9_999_999_999, 10_000_000_000, 79_999_999_999]) {
        let a = verhoeff::aadhaar_from_seq(seq);
        assert!(verhoeff::is_valid_aadhaar(&a), "{a}");
        assert!(seen.insert(a.clone()), "duplicate {a}");
        // Any single-digit change breaks the check.
        let mut b = a.into_bytes();
        b[5] = b'0' + (b[5] - b'0' + 1) % 10;
        assert!(!verhoeff::is_valid(std::str::from_utf8(&b).unwrap()));
    }
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        assert!(verhoeff::is_valid_aadhaar(&verhoeff::random_aadhaar(
            &mut rng
        )));
    }
    assert!(!verhoeff::is_valid_aadhaar("123456789012"));
}

#[test]
fn launch_day_trace_peaks_in_first_minute_with_the_field_mix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let h = TraceHeader::launch_day(2_000.0, 300.0, 7);
    let n = trace::write_trace(&h, &path).unwrap();
    let reader = TraceReader::open(&path).unwrap();
    assert_eq!(reader.header.as_ref().unwrap().format, "kataar-trace/1");
    let mut per_s = vec![0u64; 300];
    let mut kinds = std::collections::HashMap::<Kind, u64>::new();
    let mut last = 0;
    let mut count = 0u64;
    for p in reader {
        assert!(p.t_us >= last, "ordered by time");
        last = p.t_us;
        per_s[(p.t_us / 1_000_000) as usize] += 1;
        *kinds.entry(p.kind).or_insert(0) += 1;
        count += 1;
    }
    assert_eq!(count, n);
    let peak_s = per_s
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .map(|(i, _)| i)
        .unwrap();
    assert!(peak_s < 60, "peak at {peak_s}s");
    assert!(per_s[peak_s] > 1_800, "peak {}", per_s[peak_s]);
    // Long decay: the last minute is well below the peak but not empty.
    let tail: u64 = per_s[240..].iter().sum::<u64>() / 60;
    assert!(tail < per_s[peak_s] / 3 && tail > 0, "tail {tail}");
    // ~48 requests per registration, 40 of them availability polls.
    let reg = *kinds.get(&Kind::Beneficiary).unwrap() as f64;
    let per_reg = (count as f64 - *kinds.get(&Kind::Operator).unwrap_or(&0) as f64) / reg;
    assert!(
        (44.0..52.0).contains(&per_reg),
        "{per_reg} requests per registration"
    );
    let avail = *kinds.get(&Kind::Availability).unwrap() as f64 / count as f64;
    assert!((0.80..0.86).contains(&avail), "availability share {avail}");
    assert!(kinds.contains_key(&Kind::Booking) && kinds.contains_key(&Kind::Otp));
}

async fn hello_server() -> (String, oneshot::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(baseline::serve_hello(l, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}/"), tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_sends_every_planned_request_to_hello() {
    for lean in [false, true] {
        sends_every_planned_request_to_hello(lean).await;
    }
}

async fn sends_every_planned_request_to_hello(lean: bool) {
    let (url, stop) = hello_server().await;
    let exec: Arc<dyn Executor> = Arc::new(HelloExec {
        clients: ClientSet::new(8).unwrap(),
        lean: lean.then(|| LeanClients::new(&url, 8).unwrap()),
        url,
    });
    let plan = ShapePlan::new(
        Shape::Constant { rate: 400.0 },
        1.0,
        vec![(Kind::Hello, 1.0)],
        16,
        3,
    );
    let cfg = OpenConfig {
        inflight_max: 10_000,
        retry: RetryPolicy::none(),
        drain_s: 10,
    };
    let st = sched::run_open(plan, exec, &cfg).await;
    assert_eq!(st.offered, 400);
    assert_eq!(st.dropped, 0);
    assert_eq!(st.sent, 400);
    assert_eq!(st.count(Some(Lane::Browse), Outcome::Ok), 400);
    let s = st.summary(1.0);
    assert_eq!(s.series.iter().map(|x| x.offered).sum::<u64>(), 400);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_counts_drops_when_the_inflight_cap_is_full() {
    // A server that never answers: every request beyond the cap must be counted as dropped.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            conns.push(s);
            if conns.len() > 100 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    });
    let exec: Arc<dyn Executor> = Arc::new(HelloExec {
        clients: ClientSet::new(2).unwrap(),
        url: format!("http://{addr}/"),
        lean: None,
    });
    let plan = ShapePlan::new(
        Shape::Constant { rate: 200.0 },
        0.5,
        vec![(Kind::Hello, 1.0)],
        4,
        3,
    );
    let cfg = OpenConfig {
        inflight_max: 10,
        retry: RetryPolicy::none(),
        drain_s: 1,
    };
    let st = sched::run_open(plan, exec, &cfg).await;
    assert_eq!(st.offered, 100);
    assert_eq!(st.dropped, 90);
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_books_exactly_capacity() {
    let db = FreshDb::create(PG_URL, "kataar_lg_test_baseline")
        .await
        .unwrap();
    let db2 = db.clone();
    let res = async move {
        let db = db2;
        let router = baseline::baseline_router(&db.url).await.unwrap();
        let c = pg::connect(&db.url).await.unwrap();
        pg::seed_pools(&c, 1, 37).await.unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(async move { axum::serve(l, router).await });
        let exec: Arc<dyn Executor> = Arc::new(BaselineExec {
            clients: ClientSet::new(4).unwrap(),
            base: format!("http://{addr}"),
            npools: 1,
            run_tag: "t".into(),
            lean: Some(LeanClients::new(&format!("http://{addr}"), 4).unwrap()),
        });
        let plan = ShapePlan::new(
            Shape::Constant { rate: 300.0 },
            0.5,
            vec![(Kind::Booking, 1.0)],
            8,
            5,
        );
        let cfg = OpenConfig {
            inflight_max: 1_000,
            retry: RetryPolicy::none(),
            drain_s: 10,
        };
        let st = sched::run_open(plan, exec, &cfg).await;
        assert_eq!(st.offered, 150);
        assert_eq!(st.count(Some(Lane::Booking), Outcome::Ok), 37);
        assert_eq!(st.count(Some(Lane::Booking), Outcome::Refused409), 150 - 37);
        assert_eq!(st.booking_ids.len(), 37);
        let row = c
            .query_one(
                "SELECT booked, (SELECT count(*) FROM bookings) FROM pools",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 37);
        assert_eq!(row.get::<_, i64>(1), 37);
        let v = verdict::check_db(&db.url, &st.booking_ids, false)
            .await
            .unwrap();
        assert!(v.pass, "{v:?}");
        assert_eq!(v.via, "database");
        srv.abort();
    };
    let out = tokio::spawn(res).await;
    db.drop_db().await.unwrap();
    out.unwrap();
}

#[tokio::test]
async fn verdict_detects_injected_violations() {
    let db = FreshDb::create(PG_URL, "kataar_lg_test_verdict")
        .await
        .unwrap();
    let url = db.url.clone();
    let out = tokio::spawn(async move {
        let c = pg::connect(&url).await.unwrap();
        pg::create_baseline_schema(&c).await.unwrap();
        c.batch_execute(
            "INSERT INTO pools VALUES (1, 2, 2), (2, 5, 0);
             INSERT INTO bookings (booking_id, person_key, dose, pool_id) VALUES
                 (10, 'a', 1, 1), (11, 'b', 1, 1);",
        )
        .await
        .unwrap();
        let v = verdict::check_db(&url, &[10, 11], false).await.unwrap();
        assert!(v.pass, "clean database: {v:?}");
        // O: a pool over capacity.
        c.batch_execute("UPDATE pools SET booked = 3 WHERE pool_id = 1")
            .await
            .unwrap();
        let v = verdict::check_db(&url, &[10, 11], false).await.unwrap();
        assert!(!v.o.pass && !v.pass, "{v:?}");
        assert!(v.l.pass && v.d.pass);
        // O: more live bookings than capacity even if the counter says otherwise.
        c.batch_execute(
            "UPDATE pools SET booked = 2 WHERE pool_id = 1;
             INSERT INTO bookings (booking_id, person_key, dose, pool_id) VALUES (12, 'c', 1, 1);",
        )
        .await
        .unwrap();
        let v = verdict::check_db(&url, &[10, 11], false).await.unwrap();
        assert!(!v.o.pass, "{v:?}");
        c.batch_execute("UPDATE bookings SET status = 'cancelled' WHERE booking_id = 12")
            .await
            .unwrap();
        // L: an acknowledged booking that is not stored.
        let v = verdict::check_db(&url, &[10, 11, 99], false).await.unwrap();
        assert!(v.o.pass && !v.l.pass && v.l.violations == 1, "{v:?}");
        // D: an idempotency key applied twice.
        c.batch_execute("INSERT INTO idempotency (account_id, idem_key) VALUES (1, 'k'), (1, 'k')")
            .await
            .unwrap();
        let v = verdict::check_db(&url, &[10, 11], false).await.unwrap();
        assert!(v.o.pass && v.l.pass && !v.d.pass, "{v:?}");
    })
    .await;
    db.drop_db().await.unwrap();
    out.unwrap();
}
