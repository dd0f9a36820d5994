//! What the operators' console costs the server under load (a measurement, not a check; run it
//! by name, ideally with a release binary):
//!
//! ```text
//! cargo build --release --bin kataar
//! KATAAR_BIN=target/release/kataar cargo nextest run -p kataar --test console_cost \
//!     --run-ignored only --no-capture
//! ```
//!
//! A booking run (citizens booking and cancelling at a steady rate, so the capacity view changes
//! every second) is measured alone, then again with `CONSOLES` simulated consoles polling like
//! the page does (`GET /v1/admin/capacity` with `If-None-Match` every second, `GET
//! /v1/admin/status` every 3 s, each console on its own connection). The server's extra CPU
//! divided by the polls answered is the cost of one console poll.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{bookable, call, citizen, Server};

/// Consoles open at once.
const CONSOLES: usize = 200;
/// Length of each measured phase.
const PHASE: Duration = Duration::from_secs(30);
/// Citizens in the booking loop.
const CITIZENS: usize = 20;
/// Book-then-cancel cycles per second per citizen.
const CYCLES_PER_S: f64 = 2.0;

fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

async fn booking_loop(
    base: String,
    token: String,
    beneficiary: u64,
    session: u64,
    slot: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let http = reqwest::Client::new();
    let period = Duration::from_secs_f64(1.0 / CYCLES_PER_S);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        n += 1;
        let (s, v) = call(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/bookings"),
            Some(&token),
            Some(
                serde_json::json!({"beneficiary_id": beneficiary, "session_id": session,
                "slot_id": slot, "dose": 1}),
            ),
            Some(&format!("cost-{beneficiary}-{n}")),
        )
        .await;
        if s == 201 {
            let id = v["booking_id"].as_u64().unwrap();
            let _ = call(
                &http,
                reqwest::Method::POST,
                format!("{base}/v1/bookings/{id}/cancel"),
                Some(&token),
                None,
                None,
            )
            .await;
            done.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(period.saturating_sub(t0.elapsed())).await;
    }
}

async fn console(base: String, key: String, stop: Arc<AtomicBool>, polls: Arc<[AtomicU64; 3]>) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let mut etag: Option<String> = None;
    let mut i = 0u64;
    // Spread the consoles over the second, as real ones are.
    tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 1000)).await;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let mut req = http
            .get(format!("{base}/v1/admin/capacity?district_id=312&days=1"))
            .bearer_auth(&key);
        if let Some(e) = &etag {
            req = req.header("If-None-Match", e);
        }
        if let Ok(r) = req.send().await {
            let status = r.status().as_u16();
            if let Some(e) = r.headers().get("etag").and_then(|v| v.to_str().ok()) {
                etag = Some(e.to_string());
            }
            let _ = r.bytes().await;
            match status {
                200 => polls[0].fetch_add(1, Ordering::Relaxed),
                304 => polls[1].fetch_add(1, Ordering::Relaxed),
                _ => polls[2].fetch_add(1, Ordering::Relaxed),
            };
        }
        if i % 3 == 0 {
            if let Ok(r) = http
                .get(format!("{base}/v1/admin/status"))
                .bearer_auth(&key)
                .send()
                .await
            {
                let _ = r.bytes().await;
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by name (see the module docs)"]
async fn console_cost_under_a_booking_run() {
    let bin = std::env::var("KATAAR_BIN").unwrap_or_else(|_| support::KATAAR.to_string());
    // Every simulated console and citizen connects from 127.0.0.1: lift the per-address and
    // per-account limits (real consoles and citizens come from many addresses).
    let srv = Server::postgres_full(
        &bin,
        &[
            ("KATAAR_ADMISSION_CLIENT_RATE_PER_S", "1000000"),
            ("KATAAR_ADMISSION_CLIENT_BURST", "1000000"),
            ("KATAAR_ADMISSION_ACCOUNT_RATE_PER_S", "1000000"),
            ("KATAAR_ADMISSION_ACCOUNT_BURST", "1000000"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let key = srv.create_key(&["--role", "admin"]);
    let (_, session, slot) = bookable(&srv, &http, 312).await;
    let mut people = Vec::new();
    for i in 0..CITIZENS {
        people.push(
            citizen(
                &srv,
                &http,
                &format!("98{:08}", 30_000_000 + i),
                50_000 + i as u64,
            )
            .await,
        );
    }
    let measure = |consoles: usize| {
        let base = srv.base.clone();
        let key = key.clone();
        let people = people.clone();
        let pid = srv.pid();
        async move {
            let stop = Arc::new(AtomicBool::new(false));
            let bookings = Arc::new(AtomicU64::new(0));
            let polls: Arc<[AtomicU64; 3]> =
                Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
            let mut tasks = Vec::new();
            for (token, b) in &people {
                tasks.push(tokio::spawn(booking_loop(
                    base.clone(),
                    token.clone(),
                    *b,
                    session,
                    slot,
                    stop.clone(),
                    bookings.clone(),
                )));
            }
            for _ in 0..consoles {
                tasks.push(tokio::spawn(console(
                    base.clone(),
                    key.clone(),
                    stop.clone(),
                    polls.clone(),
                )));
            }
            // Warm up (connections, first full answers), then measure.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (c0, b0, p0, n0) = (
                cpu_s(pid),
                bookings.load(Ordering::Relaxed),
                [
                    polls[0].load(Ordering::Relaxed),
                    polls[1].load(Ordering::Relaxed),
                ],
                Instant::now(),
            );
            tokio::time::sleep(PHASE).await;
            let (c1, b1, p1, secs) = (
                cpu_s(pid),
                bookings.load(Ordering::Relaxed),
                [
                    polls[0].load(Ordering::Relaxed),
                    polls[1].load(Ordering::Relaxed),
                ],
                n0.elapsed().as_secs_f64(),
            );
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = t.await;
            }
            (
                c1 - c0,
                (b1 - b0) as f64 / secs,
                (p1[0] - p0[0]) as f64,
                (p1[1] - p0[1]) as f64,
                secs,
                polls[2].load(Ordering::Relaxed),
            )
        }
    };
    let (cpu_alone, rate_alone, _, _, secs_a, _) = measure(0).await;
    let (cpu_with, rate_with, full, not_modified, secs_b, other) = measure(CONSOLES).await;
    let polls = full + not_modified;
    let extra_cpu_per_s = cpu_with / secs_b - cpu_alone / secs_a;
    let report: Value = serde_json::json!({
        "consoles": CONSOLES,
        "phase_s": PHASE.as_secs(),
        "bookings_per_s_alone": rate_alone,
        "bookings_per_s_with_consoles": rate_with,
        "server_cpu_s_per_s_alone": cpu_alone / secs_a,
        "server_cpu_s_per_s_with_consoles": cpu_with / secs_b,
        "capacity_polls_per_s": polls / secs_b,
        "answered_200": full,
        "answered_304": not_modified,
        "other_answers": other,
        "server_cpu_us_per_console_poll": extra_cpu_per_s / (polls / secs_b) * 1e6,
        "server_cpu_share_of_one_core_for_consoles": extra_cpu_per_s,
    });
    eprintln!(
        "console cost: {}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    srv.finish().await;
    assert!(polls > 0.0 && other == 0, "{report}");
}
