//! The hardening drill: ordinary citizens book and read availability while, at once, hostile
//! hosts trickle request bodies, hold idle keep-alive connections, send bookings that fail under
//! fresh idempotency keys, and query availability with noise in the query string. It reports
//! the ordinary citizens' success rate and p99, the server's RSS before and after, and whether
//! a restart afterwards still holds every acknowledged booking.
//!
//! Each kind of traffic comes from its own loopback address (ordinary citizens from
//! 127.0.0.2…, the hostile ones from 127.0.1.1–4), so per-address limits apply as they would
//! to distinct hosts. Run it with a file-descriptor limit above the connection counts
//! (`ulimit -n 65536`).

use crate::exec::ClientSet;
use crate::kataar::{citizens, publish, Fixture};
use anyhow::Context;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// What the drill sends.
#[derive(Clone, Debug)]
pub struct DrillPlan {
    /// The `kataar` binary.
    pub bin: PathBuf,
    /// PostgreSQL URL (a fresh database is made beside it and dropped after).
    pub database_url: String,
    /// How long the hostile traffic runs.
    pub duration: Duration,
    /// Connections trickling a body at 1 byte/s.
    pub tricklers: usize,
    /// Idle keep-alive connections from one address.
    pub idle: usize,
    /// Failing bookings, each under a fresh `Idempotency-Key`.
    pub failing: u64,
    /// Availability queries with noise in the query string.
    pub noisy: u64,
    /// Ordinary citizens (one booking each, spread over the run).
    pub citizens: usize,
    /// How long to keep the server running after the hostile traffic before reading its RSS
    /// and idempotency index again (past `IDEMPOTENCY_REFUSED_TTL_S` + a sweep, the refusals
    /// have expired); 0 skips the second reading.
    pub hold: Duration,
    /// Where the report goes.
    pub out: PathBuf,
}

fn loopback(a: u8, b: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, a, b))
}

fn client_from(addr: IpAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(addr)
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn p99_ms(mut lat_us: Vec<u64>) -> f64 {
    if lat_us.is_empty() {
        return 0.0;
    }
    lat_us.sort_unstable();
    let i = ((lat_us.len() as f64) * 0.99).ceil() as usize;
    lat_us[i.saturating_sub(1).min(lat_us.len() - 1)] as f64 / 1000.0
}

/// The idempotency index's (records, bytes) from the server's `/metrics`.
async fn idempotency_size(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    let page = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok((
        crate::kataar::metric_value(&page, "kataar_idempotency_records"),
        crate::kataar::metric_value(&page, "kataar_idempotency_bytes"),
    ))
}

/// Whether booking `id` reads back `200` for its owner (load refusals are waited out).
async fn booking_present(client: &reqwest::Client, base: &str, id: u64, token: &str) -> bool {
    for _ in 0..30 {
        let Ok(r) = client
            .get(format!("{base}/v1/bookings/{id}"))
            .bearer_auth(token)
            .send()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match r.status().as_u16() {
            200 => return true,
            429 | 503 => {
                let wait = crate::exec::retry_after_s(&r).unwrap_or(1).min(3);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            _ => return false,
        }
    }
    false
}

/// One connection that sends a booking's head and then its body at one byte per second,
/// until the server closes it or the drill ends.
async fn trickle_once(addr: SocketAddr, stop_at: Instant) {
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
        return;
    };
    if sock.bind(SocketAddr::new(loopback(1, 2), 0)).is_err() {
        return;
    }
    let Ok(mut s) = sock.connect(addr).await else {
        return;
    };
    let head = "POST /v1/bookings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
        Content-Length: 4000\r\nIdempotency-Key: t\r\n\r\n";
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    while Instant::now() < stop_at {
        if s.write_all(b" ").await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the drill and writes `drill.json` into `plan.out`; returns the report.
pub async fn run(plan: DrillPlan) -> anyhow::Result<Value> {
    std::fs::create_dir_all(&plan.out)?;
    let crate::kataar::FreshEngine {
        db,
        engine,
        key,
        server,
        dir: _dir,
    } = crate::kataar::start_fresh(
        &plan.bin,
        &plan.database_url,
        "kataar_drill",
        Vec::new(),
        &plan.out.join("server-1.log"),
    )
    .await?;
    let otp_file = engine.otp_file.clone();
    let base = server.base.clone();
    let setup = ClientSet::new(16)?;
    let mut fx = Fixture {
        operator_key: key.clone(),
        ..Fixture::default()
    };
    publish(
        setup.get(0),
        &base,
        &key,
        crate::kataar::DISTRICT_ID,
        4,
        4,
        1000,
        &mut fx,
    )
    .await?;
    let run_base = u64::from(rand::random::<u32>()) * 1000;
    citizens(
        &setup,
        &base,
        &otp_file,
        plan.citizens + 1,
        1,
        run_base,
        run_base,
        &mut fx,
    )
    .await?;
    let attacker = fx.persons.pop().context("no attacker account")?;
    let fx = Arc::new(fx);
    let rss_before = rss_kib(server.pid);

    let stop_at = Instant::now() + plan.duration;
    let addr: SocketAddr = base.trim_start_matches("http://").parse()?;

    // Idle keep-alive connections from one address: one request each, then silence.
    let idle_opened = Arc::new(AtomicU64::new(0));
    let idle_task = {
        let (n, opened) = (plan.idle, idle_opened.clone());
        tokio::spawn(async move {
            let mut socks = Vec::with_capacity(n);
            for _ in 0..n {
                let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
                    break;
                };
                if sock.bind(SocketAddr::new(loopback(1, 1), 0)).is_err() {
                    break;
                }
                if let Ok(mut s) = sock.connect(addr).await {
                    let _ = s
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                        .await;
                    opened.fetch_add(1, Ordering::Relaxed);
                    socks.push(s);
                }
            }
            tokio::time::sleep_until(stop_at.into()).await;
            drop(socks);
        })
    };

    // Tricklers: a booking whose declared body arrives at one byte per second.
    let trickle_task = {
        let n = plan.tricklers;
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                tasks.push(tokio::spawn(async move {
                    // Reconnect whenever the server cuts the connection, as an attacker would.
                    while Instant::now() < stop_at {
                        trickle_once(addr, stop_at).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };

    // Failing bookings under fresh keys, at an even rate over the run, from 64 addresses.
    let failing_refused = Arc::new(AtomicU64::new(0));
    let failing_task = {
        let (n, base, token) = (plan.failing, base.clone(), attacker.token.clone());
        let clients: Vec<reqwest::Client> = (1..=64)
            .map(|i| client_from(loopback(2, i)))
            .collect::<anyhow::Result<_>>()?;
        let refused = failing_refused.clone();
        let every = plan.duration.as_secs_f64() / n.max(1) as f64;
        tokio::spawn(async move {
            let sent = Arc::new(AtomicU64::new(0));
            let mut tick = tokio::time::interval(Duration::from_secs_f64(every.max(1e-6)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..n {
                if Instant::now() >= stop_at {
                    break;
                }
                tick.tick().await;
                let client = clients[(i % 64) as usize].clone();
                let (base, token, sent, refused) =
                    (base.clone(), token.clone(), sent.clone(), refused.clone());
                tokio::spawn(async move {
                    let r = client
                        .post(format!("{base}/v1/bookings"))
                        .bearer_auth(&*token)
                        .header("Idempotency-Key", format!("fail-{i}"))
                        .json(
                            &json!({"beneficiary_id": 1, "session_id": 9_000_000_000u64 + i,
                            "slot_id": 1, "dose": 1}),
                        )
                        .send()
                        .await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if r.is_ok_and(|r| r.status().as_u16() == 429) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            sent.load(Ordering::Relaxed)
        })
    };

    // Availability with noise: zero-padded ids, unknown parameters, shuffled order.
    let noisy_task = {
        let (n, base) = (plan.noisy, base.clone());
        let client = client_from(loopback(1, 4))?;
        let every = plan.duration.as_secs_f64() / n.max(1) as f64;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(every.max(1e-6)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..n {
                if Instant::now() >= stop_at {
                    break;
                }
                tick.tick().await;
                let url = match i % 3 {
                    0 => format!(
                        "{base}/v1/availability?district_id={:0>width$}",
                        312,
                        width = 3 + (i % 8) as usize
                    ),
                    1 => format!("{base}/v1/availability?district_id=312&noise={i}"),
                    _ => format!("{base}/v1/availability?dose=1&district_id=312&x{i}=y"),
                };
                let client = client.clone();
                tokio::spawn(async move {
                    let _ = client.get(url).send().await;
                });
            }
        })
    };

    // Ordinary citizens: one booking each, spread over the run, and availability reads.
    let ordinary = ClientSet::new(16)?;
    let mut handles = Vec::new();
    let persons = fx.persons.clone();
    let every = plan.duration.as_secs_f64() / persons.len().max(1) as f64;
    let started = Instant::now();
    for (i, p) in persons.iter().enumerate() {
        let at = started + Duration::from_secs_f64(every * i as f64);
        let (client, base, fx, p) = (
            ordinary.get(i as u32).clone(),
            base.clone(),
            fx.clone(),
            p.clone(),
        );
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let t = fx.targets[i % fx.targets.len()];
            let began = Instant::now();
            let read = client.get(format!("{base}/v1/availability?district_id=312")).send().await;
            let read_ok = read.map(|r| r.status().is_success()).unwrap_or(false);
            let read_us = began.elapsed().as_micros() as u64;
            let began = Instant::now();
            let booked = client
                .post(format!("{base}/v1/bookings"))
                .bearer_auth(&*p.token)
                .header("Idempotency-Key", format!("drill-{i}"))
                .json(&json!({"beneficiary_id": p.beneficiary_id, "session_id": t.session_id, "slot_id": t.slot_id, "dose": 1}))
                .send()
                .await;
            let book_us = began.elapsed().as_micros() as u64;
            let booking = match booked {
                Ok(r) if r.status().as_u16() == 201 => r.json::<Value>().await.ok().and_then(|v| v["booking_id"].as_u64()),
                _ => None,
            };
            (read_ok, read_us, booking.map(|b| (b, p.token.clone())), book_us)
        }));
    }
    let mut lat = Vec::new();
    let (mut ok, mut total) = (0u64, 0u64);
    let mut acknowledged = Vec::new();
    for h in handles {
        let (read_ok, read_us, booking, book_us) = h.await?;
        total += 2;
        ok += u64::from(read_ok) + u64::from(booking.is_some());
        lat.push(read_us);
        lat.push(book_us);
        if let Some(b) = booking {
            acknowledged.push(b);
        }
    }
    let failing_sent = failing_task.await?;
    noisy_task.await?;
    trickle_task.await?;
    idle_task.await?;
    let rss_after = rss_kib(server.pid);
    let (idem_records, idem_bytes) = idempotency_size(setup.get(0), &base).await?;
    let rss_after_scrape = rss_kib(server.pid);
    let mut after_hold = Value::Null;
    if !plan.hold.is_zero() {
        tokio::time::sleep(plan.hold).await;
        let rss_held = rss_kib(server.pid);
        let (records, bytes) = idempotency_size(setup.get(0), &base).await?;
        after_hold = json!({
            "held_s": plan.hold.as_secs_f64(),
            "rss_kib": rss_held,
            "rss_kib_after_metrics_scrape": rss_kib(server.pid),
            "idempotency_records": records,
            "idempotency_bytes": bytes,
        });
    }
    let clean_stop = server.stop().await;

    // Restart: every acknowledged booking is there.
    let server = engine.start(Some(&plan.out.join("server-2.log"))).await?;
    let present = {
        use futures::StreamExt;
        let base = server.base.clone();
        futures::stream::iter(acknowledged.iter().cloned().enumerate())
            .map(|(i, (id, token))| {
                let (client, base) = (setup.get(i as u32).clone(), base.clone());
                async move { booking_present(&client, &base, id, &token).await }
            })
            .buffer_unordered(32)
            .filter(|found| futures::future::ready(*found))
            .count()
            .await
    };
    let clean_second_stop = server.stop().await;
    let report = json!({
        "duration_s": plan.duration.as_secs_f64(),
        "ordinary": {
            "requests": total, "succeeded": ok,
            "success_rate": if total == 0 { 0.0 } else { ok as f64 / total as f64 },
            "p99_ms": p99_ms(lat),
            "bookings_acknowledged": acknowledged.len(),
        },
        "hostile": {
            "tricklers": plan.tricklers, "idle_connections_opened": idle_opened.load(Ordering::Relaxed),
            "failing_bookings_sent": failing_sent,
            "failing_bookings_refused_429": failing_refused.load(Ordering::Relaxed),
            "noisy_queries": plan.noisy,
        },
        "rss_kib": {"before": rss_before, "after": rss_after,
            "after_metrics_scrape": rss_after_scrape},
        "idempotency": {"records": idem_records, "bytes": idem_bytes},
        "after_hold": after_hold,
        "restart": {"clean_stop": clean_stop, "acknowledged_present": present,
            "acknowledged": acknowledged.len(), "clean_second_stop": clean_second_stop},
    });
    std::fs::write(
        plan.out.join("drill.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let _ = db.drop_db().await;
    Ok(report)
}
