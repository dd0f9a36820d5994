//! The launch through the waiting room: citizens take tickets before a release opens, poll as
//! their tickets tell them (`poll_after_s`), and book with their pass once admitted; a share of
//! them are aggressive and poll a hundred times faster than told. Reports requests per
//! successful booking (polite, aggressive, all), whether aggressive clients gained places
//! (their share of the bookings against their share of the tickets, and their mean admission
//! rank), the poll rate against the queue's budget, O/L/D in the database, and the server's CPU
//! per poll next to its CPU per cached availability read, measured in the same run.

use crate::exec::{retry_after_s, ClientSet};
use crate::kataar::{citizens, publish, start_fresh, Fixture, FreshEngine, Person, DISTRICT_ID};
use anyhow::Context;
use futures::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct LaunchPlan {
    /// The `kataar` binary (a release build).
    pub bin: PathBuf,
    /// PostgreSQL server (a fresh database is made and dropped after).
    pub database_url: String,
    /// Citizens, one beneficiary each, each taking a ticket.
    pub citizens: usize,
    /// Places in the release (one session, one slot, dose 1 online).
    pub places: u32,
    /// Share of citizens that poll 100x faster than told.
    pub aggressive_share: f64,
    /// The release's admissions per second.
    pub admit_per_s: u32,
    /// The queue's poll budget (requests per second).
    pub poll_budget_per_s: u32,
    /// Seconds from the release's creation to its opening (tickets are taken meanwhile).
    pub opens_in_s: u64,
    /// Seconds a client that follows the queue asks its polls to be held open (`wait_s`; 0:
    /// plain polls).
    pub hold_s: u32,
    /// Requests in each of the two cost measurements (polls, cached availability reads).
    pub cost_requests: usize,
    /// Where `launch.json` goes.
    pub out: PathBuf,
}

/// How much faster than told an aggressive client polls.
pub const AGGRESSIVE_FACTOR: f64 = 100.0;
/// The shortest wait of an aggressive client between polls, milliseconds.
const AGGRESSIVE_WAIT_MIN_MS: u64 = 10;
/// A client gives up after this long (the run never needs it; a bug would).
const CLIENT_GIVE_UP_S: u64 = 600;

/// Seconds of the launch whose polls are counted one by one (longer runs count the rest in the
/// last second).
const POLL_SECONDS_MAX: usize = 1_200;

struct Tally {
    requests: AtomicU64,
    refused: AtomicU64,
    booked: AtomicU64,
    /// Polls by polite clients, per second since the start.
    polite_polls: Vec<AtomicU64>,
    started: Instant,
}

impl Tally {
    fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            booked: AtomicU64::new(0),
            polite_polls: (0..POLL_SECONDS_MAX).map(|_| AtomicU64::new(0)).collect(),
            started: Instant::now(),
        }
    }

    fn polite_poll(&self) {
        let s = (self.started.elapsed().as_secs() as usize).min(POLL_SECONDS_MAX - 1);
        self.polite_polls[s].fetch_add(1, Ordering::Relaxed);
    }
}

/// One client's end: its booking, its ticket, the requests it sent.
struct Outcome {
    booking_id: Option<i64>,
    ticket_id: Option<String>,
    aggressive: bool,
    requests: u64,
}

async fn send(
    tally: &Tally,
    mine: &mut u64,
    rb: reqwest::RequestBuilder,
) -> anyhow::Result<(u16, Option<u64>, Value)> {
    tally.requests.fetch_add(1, Ordering::Relaxed);
    *mine += 1;
    let resp = rb.send().await?;
    let status = resp.status().as_u16();
    let retry = retry_after_s(&resp);
    if status == 429 || status == 503 {
        tally.refused.fetch_add(1, Ordering::Relaxed);
    }
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, retry, v))
}

#[allow(clippy::too_many_arguments)]
async fn citizen(
    http: reqwest::Client,
    base: String,
    person: Person,
    release: u64,
    target: crate::kataar::Target,
    aggressive: bool,
    hold_s: u32,
    tally: Arc<Tally>,
    n: usize,
) -> Outcome {
    let mut out = Outcome {
        booking_id: None,
        ticket_id: None,
        aggressive,
        requests: 0,
    };
    let started = Instant::now();
    let wait = |told_s: u64, retry: Option<u64>| -> Duration {
        let told = Duration::from_secs(retry.unwrap_or(told_s).max(1));
        if aggressive {
            Duration::from_millis(
                ((told.as_millis() as f64 / AGGRESSIVE_FACTOR) as u64).max(AGGRESSIVE_WAIT_MIN_MS),
            )
        } else {
            told
        }
    };
    // Take a ticket (again after a refusal or a lost place).
    'ticket: while started.elapsed() < Duration::from_secs(CLIENT_GIVE_UP_S) {
        let r = send(
            &tally,
            &mut out.requests,
            http.post(format!("{base}/v1/queue"))
                .bearer_auth(&*person.token)
                .json(&json!({"release_id": release})),
        )
        .await;
        let (status, retry, v) = match r {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if status != 200 && status != 201 {
            tokio::time::sleep(wait(1, retry)).await;
            continue;
        }
        let Some(ticket) = v["ticket_id"].as_str().map(str::to_owned) else {
            return out;
        };
        out.ticket_id = Some(ticket.clone());
        let mut told = v["poll_after_s"].as_u64().unwrap_or(1);
        let mut retry = None;
        // Polls held open answer when something happened; `poll_after_s` then counts from the
        // poll's start and may be 0.
        let holding = hold_s > 0 && !aggressive;
        let poll_url = if holding {
            format!("{base}/v1/queue/{ticket}?wait_s={hold_s}")
        } else {
            format!("{base}/v1/queue/{ticket}")
        };
        let mut held_before = false;
        loop {
            if started.elapsed() > Duration::from_secs(CLIENT_GIVE_UP_S) {
                return out;
            }
            if held_before && retry.is_none() {
                tokio::time::sleep(Duration::from_secs(told)).await;
            } else {
                tokio::time::sleep(wait(told.max(1), retry)).await;
            }
            if !aggressive {
                tally.polite_poll();
            }
            let r = send(
                &tally,
                &mut out.requests,
                http.get(&poll_url).bearer_auth(&*person.token),
            )
            .await;
            // Only a held poll's own answer may say "again at once"; anything else waits.
            held_before = false;
            let Ok((status, ra, v)) = r else { continue };
            retry = ra;
            if status != 200 {
                continue;
            }
            held_before = holding;
            told = v["poll_after_s"].as_u64().unwrap_or(1);
            match v["status"].as_str() {
                Some("admitted") => {
                    let pass = v["pass"].as_str().unwrap_or_default().to_owned();
                    for attempt in 0..20 {
                        let r = send(
                            &tally,
                            &mut out.requests,
                            http.post(format!("{base}/v1/bookings"))
                                .bearer_auth(&*person.token)
                                .header("Idempotency-Key", format!("launch-{n}"))
                                .header("Kataar-Pass", &pass)
                                .json(&json!({"beneficiary_id": person.beneficiary_id,
                                    "session_id": target.session_id, "slot_id": target.slot_id,
                                    "dose": 1})),
                        )
                        .await;
                        match r {
                            Ok((201, _, b)) | Ok((200, _, b)) => {
                                out.booking_id = b["booking_id"].as_i64();
                                tally.booked.fetch_add(1, Ordering::Relaxed);
                                return out;
                            }
                            Ok((429, ra, _)) | Ok((503, ra, _)) => {
                                let _ = attempt;
                                tokio::time::sleep(wait(1, ra)).await;
                            }
                            // pool_full, pass expired: done.
                            _ => return out,
                        }
                    }
                    return out;
                }
                Some("sold_out") => return out,
                Some("expired") => continue 'ticket,
                _ => {}
            }
        }
    }
    out
}

/// The strings of a JSON array (none if it is not one).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The server's count of queue polls served (`kataar_queue_polls_total`).
async fn polls_served(http: &reqwest::Client, base: &str) -> Option<f64> {
    let page = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    crate::kataar::metric_value(&page, "kataar_queue_polls_total")
}

/// Server CPU seconds per request over `n` requests made by `make(i)`, 64 at a time.
async fn cpu_per_request<F>(server_pid: u32, n: usize, make: F) -> (f64, u64)
where
    F: Fn(usize) -> reqwest::RequestBuilder,
{
    let before = crate::procs::cpu_s(server_pid).unwrap_or(0.0);
    let ok = futures::stream::iter(0..n)
        .map(|i| {
            let rb = make(i);
            async move { rb.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(64)
        .filter(|s| futures::future::ready(*s == 200 || *s == 304))
        .count()
        .await;
    let after = crate::procs::cpu_s(server_pid).unwrap_or(0.0);
    ((after - before) / n.max(1) as f64, ok as u64)
}

/// Runs the launch; writes `launch.json` in `plan.out` and returns it.
pub async fn run(plan: LaunchPlan) -> anyhow::Result<Value> {
    std::fs::create_dir_all(&plan.out)?;
    let mut env = crate::compare::engine_env();
    env.extend([
        (
            "KATAAR_QUEUE_POLL_BUDGET_PER_S".to_owned(),
            plan.poll_budget_per_s.to_string(),
        ),
        ("KATAAR_QUEUE_POLL_MIN_S".to_owned(), "1".to_owned()),
        ("KATAAR_QUEUE_POLL_MAX_S".to_owned(), "20".to_owned()),
    ]);
    let FreshEngine {
        db,
        engine,
        key,
        server,
        dir: _dir,
    } = start_fresh(
        &plan.bin,
        &plan.database_url,
        "kataar_launch",
        env,
        &plan.out.join("server.log"),
    )
    .await?;
    let base = server.base.clone();
    let clients = ClientSet::new(200)?;
    let mut fx = Fixture {
        operator_key: key.clone(),
        ..Fixture::default()
    };
    publish(
        clients.get(0),
        &base,
        &key,
        DISTRICT_ID,
        1,
        1,
        plan.places,
        &mut fx,
    )
    .await?;
    let run_base = u64::from(rand::random::<u32>()) * 1000;
    citizens(
        &clients,
        &base,
        &engine.otp_file,
        plan.citizens,
        1,
        run_base,
        run_base,
        &mut fx,
    )
    .await?;
    let target = *fx.targets.first().context("no session was published")?;
    let opens_at = chrono::Utc::now() + chrono::Duration::seconds(plan.opens_in_s as i64);
    let http = clients.get(0).clone();
    let resp = http
        .post(format!("{base}/v1/admin/releases"))
        .bearer_auth(&key)
        .json(&json!({"session_ids": [target.session_id],
            "opens_at": opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "admit_per_s": plan.admit_per_s, "pass_ttl_s": 120}))
        .send()
        .await?;
    anyhow::ensure!(resp.status().as_u16() == 201, "release: {}", resp.status());
    let release: Value = resp.json().await?;
    let release_id = release["release_id"].as_u64().context("no release_id")?;
    let commitment = release["draw_commitment"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // The launch.
    let tally = Arc::new(Tally::new());
    let aggressive_every = if plan.aggressive_share > 0.0 {
        (1.0 / plan.aggressive_share).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    let started = Instant::now();
    let cpu_before = server.cpu_s().unwrap_or(0.0);
    let mut tasks = Vec::with_capacity(fx.persons.len());
    for (n, person) in fx.persons.iter().cloned().enumerate() {
        let aggressive = n % aggressive_every == aggressive_every - 1;
        tasks.push(tokio::spawn(citizen(
            clients.get(n as u32).clone(),
            base.clone(),
            person,
            release_id,
            target,
            aggressive,
            plan.hold_s,
            tally.clone(),
            n,
        )));
    }
    // The queue's poll counter, once a second, while the clients run.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (base, http, running) = (base.clone(), http.clone(), running.clone());
        tokio::spawn(async move {
            let mut samples: Vec<f64> = Vec::new();
            while running.load(Ordering::Relaxed) {
                if let Some(v) = polls_served(&http, &base).await {
                    samples.push(v);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            samples
        })
    };
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(o) = t.await {
            outcomes.push(o);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_launch = server.cpu_s().unwrap_or(0.0) - cpu_before;
    running.store(false, Ordering::Relaxed);
    let samples = sampler.await.unwrap_or_default();
    let peak_poll_rate = samples
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0f64, f64::max);
    let final_polls = polls_served(&http, &base).await.unwrap_or(0.0);

    // The draw, and where each client's ticket ranked in it.
    let draw: Value = http
        .get(format!("{base}/v1/releases/{release_id}/draw"))
        .send()
        .await?
        .json()
        .await?;
    let order = strings(&draw["order"]);
    let rank_of: std::collections::HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(r, t)| (t.as_str(), r))
        .collect();
    let mut secret = [0u8; 32];
    let draw_verifies =
        hex::decode_to_slice(draw["secret"].as_str().unwrap_or(""), &mut secret).is_ok() && {
            kataar_waitroom::draw::verify(&commitment, &secret, &strings(&draw["tickets"]), &order)
                == kataar_waitroom::draw::Verdict::Matches
        };
    let group = |aggressive: bool| {
        let of: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.aggressive == aggressive)
            .collect();
        let booked = of.iter().filter(|o| o.booking_id.is_some()).count();
        // The mean draw rank (0 = first, 1 = last) of the tickets of `these`.
        let mean_rank = |these: &dyn Fn(&Outcome) -> bool| {
            let ranks: Vec<f64> = of
                .iter()
                .filter(|o| these(o))
                .filter_map(|o| o.ticket_id.as_deref().and_then(|t| rank_of.get(t)))
                .map(|&r| r as f64 / order.len().max(1) as f64)
                .collect();
            if ranks.is_empty() {
                0.0
            } else {
                ranks.iter().sum::<f64>() / ranks.len() as f64
            }
        };
        let requests: u64 = of.iter().map(|o| o.requests).sum();
        json!({
            "clients": of.len(), "booked": booked, "requests": requests,
            "requests_per_booking": requests as f64 / booked.max(1) as f64,
            "requests_per_client": requests as f64 / of.len().max(1) as f64,
            "mean_ticket_rank": mean_rank(&|_| true),
            "mean_booked_rank": mean_rank(&|o| o.booking_id.is_some()),
            "share_of_tickets": of.len() as f64 / outcomes.len().max(1) as f64,
        })
    };
    let polite = group(false);
    let mut aggressive = group(true);
    let acknowledged: Vec<i64> = outcomes.iter().filter_map(|o| o.booking_id).collect();
    let per_second: Vec<u64> = tally
        .polite_polls
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let polite_peak = per_second.iter().copied().max().unwrap_or(0);
    let busy: Vec<u64> = per_second.iter().copied().filter(|&n| n > 0).collect();
    let polite_mean = busy.iter().sum::<u64>() as f64 / busy.len().max(1) as f64;
    let requests = tally.requests.load(Ordering::Relaxed);
    let booked = tally.booked.load(Ordering::Relaxed).max(1);
    if let Some(m) = aggressive.as_object_mut() {
        let share = outcomes
            .iter()
            .filter(|o| o.aggressive && o.booking_id.is_some())
            .count() as f64
            / acknowledged.len().max(1) as f64;
        m.insert("share_of_bookings".into(), json!(share));
    }
    let verdict = crate::verdict::check_db(&db.url, &acknowledged, false).await?;

    // The cost: the same server, polls of tickets against cached availability reads. The polls
    // use the tickets of clients that followed the queue (the others have spent their
    // account's bucket).
    let tokens: Vec<(Arc<str>, String)> = fx
        .persons
        .iter()
        .zip(outcomes.iter())
        .filter(|(_, o)| !o.aggressive)
        .filter_map(|(p, o)| o.ticket_id.clone().map(|t| (p.token.clone(), t)))
        .collect();
    let (poll_cpu, poll_ok) = cpu_per_request(server.pid, plan.cost_requests, |i| {
        let (token, ticket) = &tokens[i % tokens.len().max(1)];
        clients
            .get(i as u32)
            .get(format!("{base}/v1/queue/{ticket}"))
            .bearer_auth(&**token)
    })
    .await;
    let url = format!("{base}/v1/availability?district_id={DISTRICT_ID}");
    let (read_cpu, read_ok) = cpu_per_request(server.pid, plan.cost_requests, |i| {
        clients.get(i as u32).get(&url)
    })
    .await;
    let clean_stop = server.stop().await;
    let report = json!({
        "citizens": plan.citizens, "places": plan.places,
        "aggressive_share": plan.aggressive_share, "aggressive_factor": AGGRESSIVE_FACTOR,
        "admit_per_s": plan.admit_per_s, "poll_budget_per_s": plan.poll_budget_per_s, "hold_s": plan.hold_s,
        "launch_s": elapsed,
        "bookings": acknowledged.len(),
        "requests": requests,
        "refused_429_503": tally.refused.load(Ordering::Relaxed),
        "requests_per_booking": requests as f64 / booked as f64,
        "polls_served": final_polls,
        "poll_rate_per_s_mean": final_polls / elapsed.max(1e-9),
        "poll_rate_per_s_peak": peak_poll_rate,
        "polite_poll_rate_per_s_peak": polite_peak,
        "polite_poll_rate_per_s_mean_over_seconds_with_polls": polite_mean,
        "polite": polite,
        "aggressive": aggressive,
        "draw_verifies": draw_verifies,
        "server_cpu_s_during_launch": cpu_launch,
        "cost": {
            "requests": plan.cost_requests,
            "poll_cpu_us": poll_cpu * 1e6, "polls_ok": poll_ok,
            "cached_read_cpu_us": read_cpu * 1e6, "reads_ok": read_ok,
            "poll_over_read": if read_cpu > 0.0 { poll_cpu / read_cpu } else { 0.0 },
        },
        "verdict": verdict,
        "clean_stop": clean_stop,
    });
    std::fs::write(
        plan.out.join("launch.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let _ = db.drop_db().await;
    Ok(report)
}
