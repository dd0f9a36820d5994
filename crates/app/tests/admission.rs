//! Admission control under attack, over real HTTP on loopback against the real server:
//!
//! - an open-model burst far above the configured lane rates: every request is answered
//!   (success, a 4xx of the contract, or a refusal with `Retry-After`), and O, D and L hold in
//!   PostgreSQL afterwards; operators keep being served during a citizen flood;
//! - the store blocked (a table lock held from another connection): bookings are refused with
//!   `503 store_unavailable` (the breaker opens), reads are served from memory, nothing
//!   acknowledged is lost, and bookings succeed again once the lock is gone (the breaker closes);
//! - slowloris: hundreds of connections stalled mid-request-line do not stop ordinary requests,
//!   and are closed by the server after `header_read_timeout_s`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::TestServer;
use kataar_admission::BreakerState;
use kataar_api::Config;
use kataar_domain::{CentreId, Vaccine};
use kataar_inventory::{NewSession, NewSlot};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Sets admission keys of the configuration.
fn admission(config: &mut Config, keys: &[(&str, toml::Value)]) {
    for (key, value) in keys {
        config.admission.insert((*key).into(), value.clone());
    }
}

fn int(v: i64) -> toml::Value {
    toml::Value::Integer(v)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A refusal under load must carry `Retry-After` (whole seconds >= 1) equal to
/// `details.retry_after_s`.
fn assert_refusal_shape(status: StatusCode, headers: &reqwest::header::HeaderMap, v: &Value) {
    let retry: u64 = headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("{status} without Retry-After: {v}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{v}");
    assert_eq!(v["error"]["details"]["retry_after_s"], json!(retry), "{v}");
    assert!(!v["error"]["request_id"].as_str().unwrap_or("").is_empty());
}

/// Logs in `accounts` citizens and gives each four beneficiaries; returns (token, [ids]).
async fn citizens(srv: &TestServer, accounts: u64, seed: u64) -> Vec<(String, Vec<u64>)> {
    let mut out = Vec::new();
    for a in 0..accounts {
        let token = srv.login(&format!("98{:08}", seed * 1000 + a)).await;
        let mut ids = Vec::new();
        for b in 0..4 {
            let (s, v) = srv
                .post(
                    "/v1/beneficiaries",
                    Some(&token),
                    json!({"name": format!("P{a}-{b}"), "birth_year": 1990, "gender": "female",
                           "id_type": "aadhaar", "id_number": common::aadhaar(seed * 10_000 + a * 10 + b)}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            ids.push(v["beneficiary_id"].as_u64().unwrap());
        }
        out.push((token, ids));
    }
    out
}

/// A one-slot COVISHIELD session tomorrow at the first demo centre with `capacity` online
/// places per dose: (session_id, slot_id).
async fn session(srv: &TestServer, capacity: u32) -> (u64, u64) {
    let centre = srv.state.inv.centres()[0].centre_id;
    let prepared = srv
        .state
        .inv
        .create_session(NewSession {
            centre_id: CentreId(centre.0),
            date: srv.state.today() + chrono::Days::new(1),
            vaccine: Vaccine::Covishield,
            min_age: 18,
            max_age: None,
            opens_at: None,
            slots: vec![NewSlot {
                start: "09:00".into(),
                end: "10:00".into(),
                dose1_online: capacity,
                dose1_walkin: 0,
                dose2_online: capacity,
                dose2_walkin: 0,
            }],
        })
        .unwrap();
    let session = kataar_app::durable::commit(&srv.state, prepared)
        .await
        .unwrap();
    let view = srv.state.inv.session(session.session_id).unwrap();
    (session.session_id.0, view.slots[0].slot.slot_id.0)
}

/// One request: (status, headers, body).
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: String,
    bearer: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("every request gets an answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("every answer has a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, json)
}

/// O (no pool above capacity), D (no two live bookings per person and dose), counters equal
/// to the bookings that hold a place, and L (every acknowledged booking id is stored).
async fn assert_invariants(url: &str, acknowledged: &[u64]) {
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let over: i64 = db
        .query_one("SELECT count(*) FROM pools WHERE booked > capacity", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(over, 0, "O: a pool is booked above its capacity");
    let doubles: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT person_key, dose FROM bookings
              WHERE status IN ('booked', 'checked_in')
              GROUP BY person_key, dose HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(doubles, 0, "D: two live bookings for one person and dose");
    let drift: i64 = db
        .query_one(
            "SELECT count(*) FROM pools p WHERE p.booked <> (SELECT count(*) FROM bookings b
              WHERE b.pool_id = p.pool_id
                AND b.status IN ('booked', 'checked_in', 'administered'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(drift, 0, "a pool counter differs from its bookings");
    let ids: Vec<i64> = acknowledged
        .iter()
        .map(|id| i64::try_from(*id).unwrap())
        .collect();
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM bookings WHERE booking_id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        i64::try_from(ids.len()).unwrap(),
        "L: an acknowledged booking is missing from the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_far_above_capacity_is_answered_and_invariants_hold() {
    let srv = TestServer::postgres_with(|c| {
        admission(
            c,
            &[
                ("booking_rate_per_s", int(40)),
                ("booking_burst", int(20)),
                ("booking_queue_max", int(16)),
                ("booking_queue_wait_ms_max", int(50)),
                ("booking_in_flight_max", int(32)),
                ("browse_rate_per_s", int(200)),
                ("browse_burst", int(100)),
                ("browse_queue_max", int(32)),
                ("browse_queue_wait_ms_max", int(20)),
                ("browse_in_flight_max", int(64)),
                ("account_rate_per_s", int(20)),
                ("account_burst", int(40)),
            ],
        );
    })
    .await;
    let people = citizens(&srv, 8, 1).await;
    let (session_id, slot_id) = session(&srv, 10).await;
    let centre = srv.state.inv.centres()[0].centre_id.0;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The flood: 3000 requests, 256 at a time: two thirds availability reads, one third
    // bookings by 32 people into one pool of 10 places.
    const REQUESTS: usize = 3000;
    let gate = Arc::new(Semaphore::new(256));
    let mut flood = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let http = http.clone();
        let base = srv.base.clone();
        let booking = (i % 3 == 0).then(|| {
            let (token, ids) = &people[(i / 3) % people.len()];
            (token.clone(), ids[(i / 24) % ids.len()])
        });
        flood.push(tokio::spawn(async move {
            let _permit = permit;
            match booking {
                Some((token, beneficiary)) => {
                    let body = json!({"beneficiary_id": beneficiary, "session_id": session_id,
                                      "slot_id": slot_id, "dose": 1});
                    let key = format!("flood-{i}");
                    let r = send(
                        &http,
                        Method::POST,
                        format!("{base}/v1/bookings"),
                        Some(&token),
                        Some(&key),
                        Some(body),
                    )
                    .await;
                    (Some(beneficiary), r)
                }
                None => {
                    let url = format!("{base}/v1/availability?district_id=312&days=2");
                    (None, send(&http, Method::GET, url, None, None, None).await)
                }
            }
        }));
    }

    // Meanwhile the operators work: reads and writes in their own lane.
    let mut operator_answers = Vec::new();
    for n in 0..10u64 {
        let (s, _, v) = send(
            &http,
            Method::GET,
            format!("{}/v1/admin/capacity?centre_id={centre}", srv.base),
            Some(&srv.admin_key),
            None,
            None,
        )
        .await;
        operator_answers.push((s, v));
        let date = srv.state.today() + chrono::Days::new(2 + n);
        let body = json!({"centre_id": centre, "date": date.format("%Y-%m-%d").to_string(),
            "vaccine": "COVISHIELD", "min_age": 18, "max_age": null,
            "slots": [{"start": "09:00", "end": "11:00", "capacity":
                {"dose1_online": 5, "dose1_walkin": 2, "dose2_online": 3, "dose2_walkin": 1}}]});
        let (s, _, v) = send(
            &http,
            Method::POST,
            format!("{}/v1/admin/sessions", srv.base),
            Some(&srv.admin_key),
            None,
            Some(body),
        )
        .await;
        operator_answers.push((s, v));
    }

    let mut by_outcome: BTreeMap<(bool, u16, String), usize> = BTreeMap::new();
    let mut acknowledged = Vec::new();
    let mut booked = std::collections::BTreeSet::new();
    for task in flood {
        let (beneficiary, (s, h, v)) = task.await.expect("the request task finished");
        let is_booking = beneficiary.is_some();
        match s.as_u16() {
            200 | 201 => {
                if let Some(b) = beneficiary {
                    acknowledged.push(v["booking_id"].as_u64().unwrap());
                    booked.insert(b);
                }
            }
            429 | 503 => {
                assert_refusal_shape(s, &h, &v);
                assert!(
                    ["too_many_requests", "overloaded", "store_unavailable"].contains(&code(&v)),
                    "{v}"
                );
            }
            409 => assert!(
                ["pool_full", "already_booked"].contains(&code(&v)),
                "unexpected refusal {v}"
            ),
            other => panic!("unexpected answer {other}: {v}"),
        }
        *by_outcome
            .entry((is_booking, s.as_u16(), code(&v).to_string()))
            .or_default() += 1;
    }
    for (s, v) in &operator_answers {
        assert!(
            s.is_success(),
            "an operator request failed during the flood: {s} {v}"
        );
    }
    eprintln!("flood outcomes (booking?, status, code): {by_outcome:?}");
    // The flood really was far above capacity, and the server kept doing useful work.
    let count = |booking: bool, status: u16| -> usize {
        by_outcome
            .iter()
            .filter(|((b, s, _), _)| *b == booking && *s == status)
            .map(|(_, n)| n)
            .sum()
    };
    assert!(
        count(false, 503) > 0,
        "browse lane never saturated: {by_outcome:?}"
    );
    assert!(count(false, 200) > 0, "no read was served: {by_outcome:?}");
    assert!(
        count(true, 503) + count(true, 429) > 0,
        "booking lane never refused: {by_outcome:?}"
    );
    assert!(
        acknowledged.len() <= 10,
        "O: more bookings than places: {by_outcome:?}"
    );

    // Once the flood is over, the people still without a booking try again at a calm pace,
    // waiting out each refusal's Retry-After: the places the flood left are booked, and then
    // the pool is full.
    let flood_bookings = acknowledged.len();
    let mut full = false;
    for (token, ids) in &people {
        for &beneficiary in ids {
            if full || booked.contains(&beneficiary) {
                continue;
            }
            let body = json!({"beneficiary_id": beneficiary, "session_id": session_id,
                              "slot_id": slot_id, "dose": 1});
            let key = format!("calm-{beneficiary}");
            let mut attempts = 0;
            loop {
                let (s, h, v) = send(
                    &http,
                    Method::POST,
                    format!("{}/v1/bookings", srv.base),
                    Some(token),
                    Some(&key),
                    Some(body.clone()),
                )
                .await;
                match s.as_u16() {
                    201 => acknowledged.push(v["booking_id"].as_u64().unwrap()),
                    409 if code(&v) == "pool_full" => full = true,
                    429 | 503 if attempts < 20 => {
                        assert_refusal_shape(s, &h, &v);
                        attempts += 1;
                        let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
                        tokio::time::sleep(Duration::from_secs(retry)).await;
                        continue;
                    }
                    other => panic!("a calm booking after the flood: {other} {v}"),
                }
                break;
            }
        }
    }
    assert!(full, "the pool never reported full");
    assert_eq!(
        acknowledged.len(),
        10,
        "the pool fills: {flood_bookings} during the flood, {by_outcome:?}"
    );

    // The process is up and serving; the refusals are counted on /metrics.
    let (s, _) = srv.get("/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, metrics) = srv.get("/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("kataar_admission_refused_total"),
        "no admission metrics"
    );
    assert_invariants(srv.database_url.as_deref().unwrap(), &acknowledged).await;
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_store_opens_the_breaker_and_recovery_closes_it() {
    let srv = TestServer::postgres_with(|c| {
        c.commit_timeout_ms = 300;
        admission(
            c,
            &[
                ("breaker_failures_max", int(3)),
                ("breaker_open_ms", int(500)),
            ],
        );
    })
    .await;
    let people = citizens(&srv, 3, 2).await;
    let (session_id, slot_id) = session(&srv, 100).await;
    let url = srv.database_url.clone().unwrap();
    let book = |token: String, beneficiary: u64, key: String| {
        let http = srv.http.clone();
        let base = srv.base.clone();
        async move {
            let body = json!({"beneficiary_id": beneficiary, "session_id": session_id,
                              "slot_id": slot_id, "dose": 1});
            send(
                &http,
                Method::POST,
                format!("{base}/v1/bookings"),
                Some(&token),
                Some(&key),
                Some(body),
            )
            .await
        }
    };
    let mut acknowledged = Vec::new();
    let (s, _, v) = book(people[0].0.clone(), people[0].1[0], "before".into()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    acknowledged.push(v["booking_id"].as_u64().unwrap());

    // Block the store: hold an exclusive lock on the bookings table.
    let (locker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    // Booking load while blocked: 3 waves of 8 concurrent bookings.
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for wave in 0..3 {
        let mut tasks = Vec::new();
        for (a, (token, ids)) in people.iter().enumerate() {
            for (b, id) in ids.iter().enumerate().skip(usize::from(a == 0)) {
                if tasks.len() == 8 {
                    break;
                }
                tasks.push(tokio::spawn(book(
                    token.clone(),
                    *id,
                    format!("blocked-{wave}-{a}-{b}"),
                )));
            }
        }
        for t in tasks {
            let (s, h, v) = t.await.unwrap();
            if s == StatusCode::CREATED {
                acknowledged.push(v["booking_id"].as_u64().unwrap());
            } else {
                assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
                assert_eq!(code(&v), "store_unavailable", "{v}");
                assert_refusal_shape(s, &h, &v);
            }
            *codes.entry(code(&v).to_string()).or_default() += 1;
        }
        // Reads are served from memory meanwhile.
        let (s, v) = srv.get("/v1/availability?district_id=312", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    eprintln!("bookings while the store was blocked: {codes:?}");
    assert!(
        codes.get("store_unavailable").copied().unwrap_or(0) >= 8,
        "{codes:?}"
    );
    assert_ne!(
        srv.state.admission.breaker().state(),
        BreakerState::Closed,
        "the breaker opened while the store was blocked"
    );
    // With the breaker open, a booking is refused at admission, before any engine work.
    let (s, h, v) = book(people[1].0.clone(), people[1].1[0], "open".into()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    assert_refusal_shape(s, &h, &v);
    let (s, _) = srv.get("/v1/availability?district_id=312", None).await;
    assert_eq!(s, StatusCode::OK);
    // The refusal comes before the body is read: even a malformed one gets the 503.
    if srv.state.admission.breaker().state() == BreakerState::Open {
        let resp = srv
            .http
            .post(format!("{}/v1/bookings", srv.base))
            .bearer_auth(&people[1].0)
            .header("Idempotency-Key", "garbage")
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, code(&v)),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        );
    }

    // Release the store; bookings succeed again once a probe has gone through.
    locker.batch_execute("ROLLBACK").await.unwrap();
    let mut recovered = None;
    for attempt in 0..100 {
        let (s, _, v) = book(
            people[1].0.clone(),
            people[1].1[1],
            format!("after-{attempt}"),
        )
        .await;
        if s == StatusCode::CREATED {
            recovered = Some(v["booking_id"].as_u64().unwrap());
            break;
        }
        assert_eq!(code(&v), "store_unavailable", "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acknowledged.push(recovered.expect("bookings succeed again after the store is back"));
    assert_eq!(srv.state.admission.breaker().state(), BreakerState::Closed);
    let (s, _, v) = book(people[2].0.clone(), people[2].1[0], "closed".into()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    acknowledged.push(v["booking_id"].as_u64().unwrap());
    assert_invariants(&url, &acknowledged).await;
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_others_served() {
    let _ = kataar_api::raise_nofile_limit();
    let srv = TestServer::start_with(None, None, |c| {
        c.header_read_timeout_s = 1;
    })
    .await;
    let addr = srv.base.trim_start_matches("http://").to_string();
    const STALLED: usize = 300;
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(b"GET /v1/states HTTP/1.1\r\nHost: loc")
            .await
            .unwrap();
        stalled.push(sock);
    }
    // Ordinary requests are served during the attack (fresh connections each time).
    for _ in 0..20 {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let resp = http
            .get(format!("{}/v1/states", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // Every stalled connection is closed by the server (EOF or reset) once its header-read
    // time is up; the outer bound only keeps a broken server from hanging the test.
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut closed = 0;
        for mut sock in stalled {
            let mut buf = [0u8; 1024];
            loop {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        closed += 1;
                        break;
                    }
                    Ok(_) => continue, // a 408 answer before the close is fine
                }
            }
        }
        closed
    })
    .await
    .expect("the server closes stalled connections");
    assert_eq!(closed, STALLED);
    let (s, _) = srv.get("/v1/states", None).await;
    assert_eq!(s, StatusCode::OK);
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_hold_no_lane_place_and_an_ordinary_otp_request_succeeds() {
    let _ = kataar_api::raise_nofile_limit();
    let srv = TestServer::start_with(None, None, |c| {
        c.body_read_timeout_s = 60;
        admission(
            c,
            &[
                ("auth_in_flight_max", int(4)),
                ("booking_in_flight_max", int(4)),
            ],
        );
    })
    .await;
    let addr = srv.base.trim_start_matches("http://").to_string();
    // Far more trickling senders than either lane has in-flight places: each sends its head
    // and one byte of a 64-byte body, then nothing.
    const TRICKLING: usize = 40;
    let mut trickling = Vec::with_capacity(2 * TRICKLING);
    for path in ["/v1/auth/otp", "/v1/bookings"] {
        for _ in 0..TRICKLING {
            let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: loc\r\nContent-Type: application/json\r\n\
                 Authorization: Bearer x\r\nContent-Length: 64\r\n\r\n{{"
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            trickling.push(sock);
        }
    }
    // Give the server time to take every head in (a pause, not a measured bound).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for lane in [
        kataar_admission::Lane::Auth,
        kataar_admission::Lane::Booking,
    ] {
        assert_eq!(srv.state.admission.lane_status(lane).in_flight, 0, "{lane}");
    }
    // Ordinary citizens are served: an OTP request, the login, a beneficiary, a booking.
    let token = srv.login("9876500042").await;
    let (s, v) = srv
        .post(
            "/v1/beneficiaries",
            Some(&token),
            json!({"name": "Asha Devi", "birth_year": 1980, "gender": "female",
                   "id_type": "pan", "id_number": "ABCDE4242F"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The senders are still connected (nothing closed them: their deadline is a minute away).
    let mut buf = [0u8; 16];
    let still_open = tokio::time::timeout(Duration::from_millis(100), trickling[0].read(&mut buf))
        .await
        .is_err();
    assert!(still_open);
    drop(trickling);
    srv.finish().await;
}

/// A client bound to the loopback address `ip`.
fn http_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarding_header_is_believed_only_from_trusted_proxies() {
    let srv = TestServer::start_with(None, None, |c| {
        c.trusted_proxy_header = Some("x-forwarded-for".into());
        c.trusted_proxy_cidrs = vec!["127.0.0.2/32".into()];
        admission(c, &[("client_burst", int(3))]);
        c.admission
            .insert("client_rate_per_s".into(), toml::Value::Float(0.001));
    })
    .await;
    let get = |http: reqwest::Client, xff: String| {
        let url = format!("{}/v1/states", srv.base);
        async move {
            let r = http
                .get(url)
                .header("x-forwarded-for", xff)
                .send()
                .await
                .unwrap();
            r.status()
        }
    };
    // From the trusted proxy, each forwarded address is its own client: 10 clients, 1 request
    // each, all served.
    let proxy = http_from("127.0.0.2");
    for i in 0..10 {
        assert_eq!(
            get(proxy.clone(), format!("203.0.113.{i}")).await,
            StatusCode::OK
        );
    }
    // From anyone else the header changes nothing: the peer's burst of 3, then 429.
    let direct = http_from("127.0.0.1");
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(get(direct.clone(), format!("198.51.100.{i}")).await);
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3], "{statuses:?}");
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // The proxy's own forwarded client 203.0.113.0 has used 1 of its 3.
    assert_eq!(
        get(proxy.clone(), "203.0.113.0".into()).await,
        StatusCode::OK
    );
    srv.finish().await;
}
