//! The launch waiting room end to end, over real HTTP against the real server on PostgreSQL:
//! a release announced, tickets taken before the opening, the draw at the opening, admission
//! at the release's rate, booking with a pass (`queue_required`, `pass_invalid` without a
//! good one), sold-out told to everyone still waiting, the published draw verified, and a
//! restart in the middle of the queue that keeps every place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::TestServer;
use kataar_waitroom::draw::{self, Verdict};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Every booking attempt under its own `Idempotency-Key` (refusals are remembered too).
static ATTEMPT: AtomicU64 = AtomicU64::new(0);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A one-slot session tomorrow at the first demo centre with `places` online dose-1 places:
/// (session_id, slot_id).
async fn session(srv: &TestServer, places: u32) -> (u64, u64) {
    let centre = srv.state.inv.centres()[0].centre_id.0;
    let date = srv.state.today() + chrono::Days::new(1);
    let body = json!({"centre_id": centre, "date": date.format("%Y-%m-%d").to_string(),
        "vaccine": "COVISHIELD", "min_age": 18, "max_age": null,
        "slots": [{"start": "09:00", "end": "11:00", "capacity":
            {"dose1_online": places, "dose1_walkin": 0, "dose2_online": 0, "dose2_walkin": 0}}]});
    let (s, v) = srv
        .post("/v1/admin/sessions", Some(&srv.admin_key), body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["session_id"].as_u64().unwrap(),
        v["slots"][0]["slot_id"].as_u64().unwrap(),
    )
}

/// `n` citizens, each with one beneficiary: (token, beneficiary id).
async fn citizens(srv: &TestServer, n: u64) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for a in 0..n {
        let token = srv.login(&format!("97{:08}", 4000 + a)).await;
        let (s, v) = srv
            .post(
                "/v1/beneficiaries",
                Some(&token),
                json!({"name": format!("Q{a}"), "birth_year": 1990, "gender": "female",
                       "id_type": "aadhaar", "id_number": common::aadhaar(70_000 + a)}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        out.push((token, v["beneficiary_id"].as_u64().unwrap()));
    }
    out
}

async fn book(
    srv: &TestServer,
    token: &str,
    pass: Option<&str>,
    beneficiary: u64,
    (session_id, slot_id): (u64, u64),
) -> (StatusCode, Value) {
    let mut req = srv
        .http
        .post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(token)
        .header(
            "Idempotency-Key",
            format!(
                "q-{beneficiary}-{}",
                ATTEMPT.fetch_add(1, Ordering::Relaxed)
            ),
        )
        .json(
            &json!({"beneficiary_id": beneficiary, "session_id": session_id,
                      "slot_id": slot_id, "dose": 1}),
        );
    if let Some(p) = pass {
        req = req.header("Kataar-Pass", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn ticket(srv: &TestServer, token: &str, id: &str) -> Value {
    let (s, h, v) = srv
        .call(Method::GET, &format!("/v1/queue/{id}"), Some(token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h["cache-control"], "no-store");
    v
}

async fn wait_for_status(srv: &TestServer, release: u64, want: &str) -> Value {
    let started = Instant::now();
    loop {
        let (s, v) = srv.get(&format!("/v1/releases/{release}"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["status"] == want {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "release never became {want}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Announces a release of `session` opening in `opens_in_s` seconds: its id.
async fn announce(srv: &TestServer, session: u64, opens_in_s: i64, extra: Value) -> u64 {
    let opens_at = chrono::Utc::now() + chrono::Duration::seconds(opens_in_s);
    let mut body = json!({"session_ids": [session],
        "opens_at": opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, v) = srv
        .post("/v1/admin/releases", Some(&srv.admin_key), body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["release_id"].as_u64().unwrap()
}

/// Every one of `people` takes a ticket in `release`: the ticket ids, in order.
async fn take_tickets(srv: &TestServer, people: &[(String, u64)], release: u64) -> Vec<String> {
    let mut tickets = Vec::new();
    for (token, _) in people {
        let (s, v) = srv
            .post("/v1/queue", Some(token), json!({"release_id": release}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        tickets.push(v["ticket_id"].as_str().unwrap().to_string());
    }
    tickets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_through_the_waiting_room_on_postgres() {
    let srv = TestServer::postgres_with(|c| {
        c.queue_poll_min_s = 1;
    })
    .await;
    let places = session(&srv, 3).await;
    let people = citizens(&srv, 6).await;

    // Announce: opens in three seconds, one admission a second, passes valid 60 s.
    let opens_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let body = json!({"session_ids": [places.0],
        "opens_at": opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "admit_per_s": 1, "pass_ttl_s": 60});
    let (s, v) = srv
        .post("/v1/admin/releases", Some(&srv.admin_key), body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let release = v["release_id"].as_u64().unwrap();
    assert_eq!(v["status"], "scheduled");
    let commitment = v["draw_commitment"].as_str().unwrap().to_string();
    assert_eq!(commitment.len(), 64);
    // A session belongs to one release only; a citizen cannot announce one.
    let (s, v) = srv
        .post("/v1/admin/releases", Some(&srv.admin_key), body.clone())
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (s, _) = srv
        .post("/v1/admin/releases", Some(&people[0].0), body)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Before the opening: booking is not_open, the draw is not published.
    let (s, v) = book(&srv, &people[0].0, None, people[0].1, places).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "not_open"), "{v}");
    let (s, v) = srv.get(&format!("/v1/releases/{release}/draw"), None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "not_open"), "{v}");

    // Everyone takes a ticket before the opening; asking again gives the same one.
    let mut tickets = Vec::new();
    for (token, _) in &people {
        let (s, h, v) = srv
            .call(
                Method::POST,
                "/v1/queue",
                Some(token),
                Some(json!({"release_id": release})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(v["status"], "waiting");
        assert_eq!(v["position"], Value::Null, "no position before the draw");
        assert!(v["poll_after_s"].as_u64().unwrap() >= 1);
        let (s, again) = srv
            .post("/v1/queue", Some(token), json!({"release_id": release}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(again["ticket_id"], v["ticket_id"]);
        tickets.push(v["ticket_id"].as_str().unwrap().to_string());
    }
    // A ticket is read only by its own account; an unknown release or ticket is 404.
    let (s, _) = srv
        .get(&format!("/v1/queue/{}", tickets[0]), Some(&people[1].0))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let forged = format!("{release}-0-0000000000000000");
    let (s, _) = srv
        .get(&format!("/v1/queue/{forged}"), Some(&people[0].0))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv
        .post("/v1/queue", Some(&people[0].0), json!({"release_id": 999}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The opening: positions are a permutation of 1..=6.
    wait_for_status(&srv, release, "open").await;
    let mut positions = BTreeMap::new();
    for (i, (token, _)) in people.iter().enumerate() {
        let v = ticket(&srv, token, &tickets[i]).await;
        if v["status"] == "waiting" {
            positions.insert(v["position"].as_u64().unwrap(), i);
        }
    }
    // (The first may already be admitted.)
    assert!(positions.len() >= 5, "{positions:?}");
    assert!(positions.keys().copied().eq(1..=positions.len() as u64));

    // The operators' capacity view shows the queue of the sessions it lists.
    let centre = srv.state.inv.centres()[0].centre_id.0;
    let (s, cap) = srv
        .get(
            &format!("/v1/admin/capacity?centre_id={centre}&days=3"),
            Some(&srv.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cap}");
    assert_eq!(cap["waiting"][0]["release_id"], release, "{cap}");
    assert_eq!(cap["waiting"][0]["status"], "open", "{cap}");

    // Without a pass, or with a bad one, a booking of the release's session is refused.
    let (s, v) = book(&srv, &people[0].0, None, people[0].1, places).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "queue_required"),
        "{v}"
    );
    let (s, v) = book(
        &srv,
        &people[0].0,
        Some("KP1.1.2.3.4.x"),
        people[0].1,
        places,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "pass_invalid"),
        "{v}"
    );

    // The published draw verifies against the commitment noted before the opening, and its
    // order is the admission order.
    let (s, d) = srv.get(&format!("/v1/releases/{release}/draw"), None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let mut secret = [0u8; 32];
    hex::decode_to_slice(d["secret"].as_str().unwrap(), &mut secret).unwrap();
    let order = strings(&d["order"]);
    assert_eq!(
        draw::verify(&commitment, &secret, &strings(&d["tickets"]), &order),
        Verdict::Matches
    );
    assert_eq!(order.len(), 6);

    // A restart in the middle of the queue: the draw and every waiting place are kept.
    let (db, dir) = srv.stop().await;
    let srv = TestServer::start(db, Some(dir)).await;
    let (s, d2) = srv.get(&format!("/v1/releases/{release}/draw"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d2["order"], d["order"], "a restart must not reshuffle");
    let mut waiting: Vec<(u64, String)> = Vec::new();
    for (i, (token, _)) in people.iter().enumerate() {
        let v = ticket(&srv, token, &tickets[i]).await;
        if v["status"] == "waiting" {
            waiting.push((v["position"].as_u64().unwrap(), tickets[i].clone()));
        }
    }
    waiting.sort();
    let in_draw_order: Vec<&String> = order
        .iter()
        .filter(|t| waiting.iter().any(|(_, w)| w == *t))
        .collect();
    assert_eq!(
        waiting.iter().map(|(_, t)| t).collect::<Vec<_>>(),
        in_draw_order,
        "waiting places follow the draw after the restart"
    );

    // Follow the queue: each admitted holder books with the pass; the pool has 3 places.
    let index_of = |t: &String| tickets.iter().position(|x| x == t).unwrap();
    let mut booked = 0;
    for t in &order {
        let i = index_of(t);
        let (token, beneficiary) = &people[i];
        let started = Instant::now();
        let v = loop {
            let v = ticket(&srv, token, t).await;
            if v["status"] != "waiting" {
                break v;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if booked == 3 {
            assert_eq!(v["status"], "sold_out", "{v}");
            continue;
        }
        assert_eq!(v["status"], "admitted", "{v}");
        let pass = v["pass"].as_str().unwrap();
        assert!(v["pass_expires_at"].as_str().is_some());
        // Another account cannot use it.
        let other = &people[(i + 1) % people.len()];
        let (s, e) = book(&srv, &other.0, Some(pass), other.1, places).await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::FORBIDDEN, "pass_invalid"),
            "{e}"
        );
        let (s, b) = book(&srv, token, Some(pass), *beneficiary, places).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        booked += 1;
    }
    assert_eq!(booked, 3);
    let status = wait_for_status(&srv, release, "sold_out").await;
    assert_eq!(status["available"], 0);
    assert_eq!(status["admitted"], 3, "{status}");
    // Operators see the queue's inner counters; citizens cannot.
    let (s, inner) = srv
        .get(
            &format!("/v1/admin/releases/{release}"),
            Some(&srv.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{inner}");
    assert_eq!(inner["tickets"], 6, "{inner}");
    assert_eq!(inner["booked"], 3, "{inner}");
    assert_eq!(inner["passes_outstanding"], 0, "{inner}");
    assert_eq!(inner["status"], "sold_out");
    let (s, _) = srv
        .get(&format!("/v1/admin/releases/{release}"), Some(&people[0].0))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The metrics show the queue.
    let (_, metrics) = srv.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(metrics.contains("kataar_queue_waiting"), "{metrics}");
    assert!(metrics.contains("kataar_queue_sold_out"));
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_refuses_bad_announcements() {
    let srv = TestServer::postgres().await;
    let places = session(&srv, 3).await;
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let past = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (body, field) in [
        (json!({"session_ids": [], "opens_at": soon}), "session_ids"),
        (
            json!({"session_ids": [places.0, places.0], "opens_at": soon}),
            "session_ids",
        ),
        (
            json!({"session_ids": [987654], "opens_at": soon}),
            "session_ids",
        ),
        (
            json!({"session_ids": [places.0], "opens_at": past}),
            "opens_at",
        ),
        (
            json!({"session_ids": [places.0], "opens_at": "tomorrow"}),
            "opens_at",
        ),
        (
            json!({"session_ids": [places.0], "opens_at": soon, "admit_per_s": 0}),
            "admit_per_s",
        ),
        (
            json!({"session_ids": [places.0], "opens_at": soon, "admit_per_s": 100_001}),
            "admit_per_s",
        ),
        (
            json!({"session_ids": [places.0], "opens_at": soon, "pass_ttl_s": 29}),
            "pass_ttl_s",
        ),
        (
            json!({"session_ids": [places.0], "opens_at": soon, "pass_ttl_s": 3_601}),
            "pass_ttl_s",
        ),
    ] {
        let (s, v) = srv
            .post("/v1/admin/releases", Some(&srv.admin_key), body.clone())
            .await;
        assert_eq!(
            (s, code(&v), v["error"]["details"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request", Some(field)),
            "{body}: {v}"
        );
    }
    // At the bounds: accepted.
    let body = json!({"session_ids": [places.0], "opens_at": soon, "admit_per_s": 100_000,
                      "pass_ttl_s": 3_600});
    let (s, v) = srv
        .post("/v1/admin/releases", Some(&srv.admin_key), body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The session shows its opening in availability.
    let (s, v) = srv
        .get("/v1/availability?district_id=312&days=3", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v.to_string().contains(&format!("\"opens_at\":\"{soon}\"")),
        "{v}"
    );
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_and_tickets_are_bounded() {
    let srv = TestServer::postgres_with(|c| {
        c.releases_max = 1;
        c.queue_tickets_max = 2;
    })
    .await;
    let a = session(&srv, 3).await;
    let b = session(&srv, 3).await;
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (s, v) = srv
        .post(
            "/v1/admin/releases",
            Some(&srv.admin_key),
            json!({"session_ids": [a.0], "opens_at": soon}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let release = v["release_id"].as_u64().unwrap();
    let (s, h, v) = srv
        .call(
            Method::POST,
            "/v1/admin/releases",
            Some(&srv.admin_key),
            Some(json!({"session_ids": [b.0], "opens_at": soon})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
    );
    assert!(h.contains_key("retry-after"));
    let people = citizens(&srv, 3).await;
    for (token, _) in &people[..2] {
        let (s, v) = srv
            .post("/v1/queue", Some(token), json!({"release_id": release}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, h, v) = srv
        .call(
            Method::POST,
            "/v1/queue",
            Some(&people[2].0),
            Some(json!({"release_id": release})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        "{v}"
    );
    assert!(h.contains_key("retry-after"));
    // The holders still get their own tickets.
    let (s, _) = srv
        .post(
            "/v1/queue",
            Some(&people[0].0),
            json!({"release_id": release}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    srv.finish().await;
}

/// Admits the first place of `order` that is still waiting, polling until it is admitted;
/// returns (place in `people`, pass).
async fn next_admitted(
    srv: &TestServer,
    people: &[(String, u64)],
    tickets: &[String],
    order: &[String],
) -> (usize, String) {
    let started = Instant::now();
    loop {
        for t in order {
            let i = tickets.iter().position(|x| x == t).unwrap();
            let v = ticket(srv, &people[i].0, t).await;
            if v["status"] == "admitted" {
                return (i, v["pass"].as_str().unwrap().to_string());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nobody admitted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_booking_keeps_admitting_and_a_closed_release_makes_room() {
    let tweak = |c: &mut kataar_api::Config| {
        c.queue_poll_min_s = 1;
        c.releases_max = 1;
    };
    let srv = TestServer::postgres_with(tweak).await;
    let places = session(&srv, 2).await;
    let people = citizens(&srv, 3).await;
    let release = announce(
        &srv,
        places.0,
        2,
        json!({"admit_per_s": 1, "pass_ttl_s": 600}),
    )
    .await;
    let tickets = take_tickets(&srv, &people, release).await;
    wait_for_status(&srv, release, "open").await;
    let (_, d) = srv.get(&format!("/v1/releases/{release}/draw"), None).await;
    let order: Vec<String> = d["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let (first, pass) = next_admitted(&srv, &people, &tickets, &order).await;
    let (s, b) = book(&srv, &people[first].0, Some(&pass), people[first].1, places).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // After a restart the booked place's pass (valid ten minutes more) holds no place: the
    // next in line is admitted at the release's rate, not when that pass runs out.
    let (db, dir) = srv.stop().await;
    let srv = TestServer::start_with(db, Some(dir), tweak).await;
    let rest: Vec<String> = order
        .iter()
        .filter(|t| **t != tickets[first])
        .cloned()
        .collect();
    let (second, pass) = next_admitted(&srv, &people, &tickets, &rest).await;
    let (s, b) = book(
        &srv,
        &people[second].0,
        Some(&pass),
        people[second].1,
        places,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    wait_for_status(&srv, release, "sold_out").await;

    // The session is cancelled: the release is closed and no longer counts against
    // releases_max (1 here), so another may be announced at once.
    let (s, v) = srv
        .post(
            &format!("/v1/admin/sessions/{}/cancel", places.0),
            Some(&srv.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = srv.get(&format!("/v1/releases/{release}"), None).await;
    assert_eq!(v["status"], "closed", "{v}");
    let other = session(&srv, 2).await;
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (s, v) = srv
        .post(
            "/v1/admin/releases",
            Some(&srv.admin_key),
            json!({"session_ids": [other.0], "opens_at": soon}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "releases_max counts open releases only: {v}"
    );
    srv.finish().await;
}

/// A poll held open with `wait_s` from a task of its own: (seconds it took, its answer).
fn held_poll(
    srv: &TestServer,
    token: &str,
    ticket: &str,
    wait_s: u32,
) -> tokio::task::JoinHandle<(Duration, Value)> {
    let req = srv
        .http
        .get(format!("{}/v1/queue/{ticket}?wait_s={wait_s}", srv.base))
        .bearer_auth(token);
    tokio::spawn(async move {
        let started = Instant::now();
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        (started.elapsed(), resp.json().await.unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_polls_answer_when_the_place_is_reached_or_sold_out() {
    let srv = TestServer::postgres_with(|c| {
        c.queue_poll_min_s = 1;
        c.queue_held_polls_max = 2;
    })
    .await;
    let places = session(&srv, 1).await;
    let people = citizens(&srv, 3).await;
    let release = announce(
        &srv,
        places.0,
        4,
        json!({"admit_per_s": 5, "pass_ttl_s": 60}),
    )
    .await;
    let tickets = take_tickets(&srv, &people, release).await;
    // The bound of `wait_s`, and an unknown parameter.
    for query in ["wait_s=26", "wait_s=-1", "wait_s=x", "wait=3"] {
        let (s, v) = srv
            .get(
                &format!("/v1/queue/{}?{query}", tickets[0]),
                Some(&people[0].0),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{query}: {v}"
        );
    }
    let (s, v) = srv
        .get(
            &format!("/v1/queue/{}?wait_s=0", tickets[0]),
            Some(&people[0].0),
        )
        .await;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("waiting")),
        "{v}"
    );
    // Another account's ticket is not held (nor read).
    let (s, _) = srv
        .get(
            &format!("/v1/queue/{}?wait_s=25", tickets[0]),
            Some(&people[1].0),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Two held polls fill `queue_held_polls_max`; a third is answered at once.
    let first = held_poll(&srv, &people[0].0, &tickets[0], 25);
    let second = held_poll(&srv, &people[1].0, &tickets[1], 25);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (took, v) = held_poll(&srv, &people[2].0, &tickets[2], 25)
        .await
        .unwrap();
    assert_eq!(v["status"], "waiting", "{v}");
    assert!(
        took < Duration::from_secs(3),
        "answered at once at the bound: {took:?}"
    );
    assert!(!first.is_finished() && !second.is_finished());
    // A newer held poll of the same ticket answers the older one at once.
    let second_again = held_poll(&srv, &people[1].0, &tickets[1], 25);
    let (took, v) = second.await.unwrap();
    assert_eq!(v["status"], "waiting", "{v}");
    assert!(took < Duration::from_secs(3), "replaced: {took:?}");
    // Held polls take no admission place: ordinary requests go on meanwhile.
    let (s, _) = srv.get(&format!("/v1/releases/{release}"), None).await;
    assert_eq!(s, StatusCode::OK);

    // At the opening one place is admitted; its holder books, and everyone still held is told
    // sold_out then, long before the 25 s they asked to wait.
    wait_for_status(&srv, release, "open").await;
    let admitted = loop {
        let mut found = None;
        for i in 0..3 {
            let v = ticket(&srv, &people[i].0, &tickets[i]).await;
            if v["status"] == "admitted" {
                found = Some((i, v["pass"].as_str().unwrap().to_string()));
            }
        }
        if let Some(f) = found {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (i, pass) = admitted;
    let (s, v) = book(&srv, &people[i].0, Some(&pass), people[i].1, places).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for (n, handle) in [(0, first), (1, second_again)] {
        let (took, v) = handle.await.unwrap();
        let want = if n == i { "admitted" } else { "sold_out" };
        assert_eq!(v["status"], want, "ticket {n}: {v}");
        assert!(
            took < Duration::from_secs(15),
            "ticket {n} was woken, not left to its deadline: {took:?}"
        );
    }
    // Sold out: a held poll is answered at once.
    let (took, v) = held_poll(&srv, &people[2].0, &tickets[2], 25)
        .await
        .unwrap();
    assert_eq!(
        v["status"],
        if i == 2 { "admitted" } else { "sold_out" },
        "{v}"
    );
    assert!(took < Duration::from_secs(3));
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_answers_its_held_polls_at_once() {
    let srv = TestServer::postgres().await;
    let places = session(&srv, 1).await;
    let people = citizens(&srv, 1).await;
    let release = announce(&srv, places.0, 120, json!({})).await;
    let tickets = take_tickets(&srv, &people, release).await;
    let poll = held_poll(&srv, &people[0].0, &tickets[0], 25);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "held until something happens");
    let stopping = Instant::now();
    let (db, _dir) = srv.stop().await;
    let (_, v) = poll.await.unwrap();
    assert_eq!(v["status"], "waiting", "{v}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "answered at the stop, not at its deadline: {:?}",
        stopping.elapsed()
    );
    common::drop_database(&db.unwrap().0).await;
}
