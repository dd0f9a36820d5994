//! Citizens over real HTTP: OTP login, beneficiaries, bookings with idempotency, every
//! citizen-side refusal, object-level authorisation, and durability across a restart on
//! PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;
use chrono::Days;
use common::{aadhaar, TestServer};
use kataar_app::durable::commit;
use kataar_domain::{BookingId, CentreId, SessionId, SlotId, Vaccine};
use kataar_inventory::{NewSession, NewSlot, Scope};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, OnceLock};

/// Largest amount of captured log text kept, in bytes (later lines are dropped).
const LOG_CAPTURE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Collects the fields of every DEBUG-or-more-severe event and span of the `kataar*` crates
/// logged in this test process (the servers run in it), so tests can look for secrets.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Capture {
    fn push(&self, f: impl FnOnce(&mut Fields<'_>)) {
        let mut line = String::new();
        f(&mut Fields(&mut line));
        let mut all = self.0.lock().unwrap();
        if all.len() + line.len() < LOG_CAPTURE_BYTES_MAX {
            all.push_str(&line);
            all.push('\n');
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target().starts_with("kataar") && *m.level() <= tracing::Level::DEBUG
    }
    fn new_span(&self, a: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.push(|f| a.record(f));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, r: &tracing::span::Record<'_>) {
        self.push(|f| r.record(f));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        self.push(|f| {
            f.0.push_str(e.metadata().target());
            f.0.push(' ');
            e.record(f);
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The process's captured log text (installs the capture on first use).
fn logs() -> Arc<Mutex<String>> {
    static LOGS: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(String::new()));
        let _ = tracing::subscriber::set_global_default(Capture(buf.clone()));
        buf
    })
    .clone()
}

/// Asserts that no secret is in the captured log, and that the capture saw something.
fn assert_not_logged(secrets: &[&str]) {
    let text = logs().lock().unwrap().clone();
    assert!(text.contains("kataar_"), "no kataar event was captured");
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "a secret was logged");
    }
}

/// A request with optional bearer, idempotency key and JSON body: (status, headers, body).
async fn send(
    srv: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = srv.http.request(method, format!("{}{}", srv.base, path));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, json)
}

/// POSTs a booking under `key`.
async fn book(
    srv: &TestServer,
    token: &str,
    key: &str,
    beneficiary: u64,
    session: u64,
    slot: u64,
    dose: u8,
) -> (StatusCode, HeaderMap, Value) {
    let body = json!({"beneficiary_id": beneficiary, "session_id": session, "slot_id": slot, "dose": dose});
    send(
        srv,
        Method::POST,
        "/v1/bookings",
        Some(token),
        Some(key),
        Some(body),
    )
    .await
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Adds a beneficiary; returns (status, body).
async fn add(
    srv: &TestServer,
    token: &str,
    name: &str,
    year: u32,
    id: &str,
) -> (StatusCode, Value) {
    srv.post(
        "/v1/beneficiaries",
        Some(token),
        json!({"name": name, "birth_year": year, "gender": "female", "id_type": "aadhaar", "id_number": id}),
    )
    .await
}

/// A session of the demo drive in district 312 for the age band starting at `min_age`:
/// (session_id, [slot ids], first slot's available_dose1).
async fn demo_session(srv: &TestServer, min_age: u64) -> (u64, Vec<u64>, u64) {
    let (s, v) = srv
        .get("/v1/availability?district_id=312&days=1", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let session = v["centres"][0]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["min_age"] == min_age)
        .unwrap()
        .clone();
    let slots = session["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slot_id"].as_u64().unwrap())
        .collect();
    (
        session["session_id"].as_u64().unwrap(),
        slots,
        session["slots"][0]["available_dose1"].as_u64().unwrap(),
    )
}

/// The online dose-1 places left in one slot, from the public availability.
async fn available(srv: &TestServer, session: u64, slot: u64) -> u64 {
    let (s, v) = srv
        .get("/v1/availability?district_id=312&days=7", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for c in v["centres"].as_array().unwrap() {
        for se in c["sessions"].as_array().unwrap() {
            if se["session_id"] == session {
                for sl in se["slots"].as_array().unwrap() {
                    if sl["slot_id"] == slot {
                        return sl["available_dose1"].as_u64().unwrap();
                    }
                }
            }
        }
    }
    panic!("session {session} slot {slot} not in availability");
}

/// Creates a one-slot COVISHIELD session (online capacity `capacity` per dose) at
/// `days_from_today`.
async fn make_session(srv: &TestServer, days_from_today: i64, capacity: u32) -> (u64, u64) {
    make_session_with(srv, days_from_today, capacity, Vaccine::Covishield, None).await
}

/// Creates a one-slot session of `vaccine`, opening at `opens_at` if given.
async fn make_session_with(
    srv: &TestServer,
    days_from_today: i64,
    capacity: u32,
    vaccine: Vaccine,
    opens_at: Option<chrono::DateTime<chrono::Utc>>,
) -> (u64, u64) {
    let today = srv.state.today();
    let date = if days_from_today >= 0 {
        today + Days::new(days_from_today.unsigned_abs())
    } else {
        today - Days::new(days_from_today.unsigned_abs())
    };
    let centre = srv.state.inv.centres()[0].centre_id;
    let p = srv
        .state
        .inv
        .create_session(NewSession {
            centre_id: CentreId(centre.0),
            date,
            vaccine,
            min_age: 18,
            max_age: None,
            opens_at,
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
    let session = commit(&srv.state, p).await.unwrap();
    let view = srv.state.inv.session(session.session_id).unwrap();
    (session.session_id.0, view.slots[0].slot.slot_id.0)
}

fn spaced(n: &str) -> String {
    format!("{} {} {}", &n[0..4], &n[4..8], &n[8..12])
}

/// Every text value in every table of the test database, joined (to look for clear secrets).
async fn database_text(url: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tables = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap();
    assert!(!tables.is_empty());
    let mut all = String::new();
    for t in tables {
        let name: String = t.get(0);
        let rows = client
            .query(&format!("SELECT t::text FROM \"{name}\" t"), &[])
            .await
            .unwrap();
        for r in rows {
            let s: String = r.get(0);
            all.push_str(&s);
            all.push('\n');
        }
    }
    all
}

#[tokio::test]
async fn journey_idempotency_authorisation_and_restart_on_postgres() {
    logs();
    let srv = TestServer::postgres().await;
    let token = srv.login("9876543210").await;

    let (s, v) = srv.get("/v1/me", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["mobile_masked"], "XXXXXX3210");
    assert_eq!(v["beneficiaries"], json!([]));
    let account_id = v["account_id"].as_u64().unwrap();

    let id_number = aadhaar(7_000_123);
    let (s, ben) = add(&srv, &token, "  Asha Devi ", 1990, &spaced(&id_number)).await;
    assert_eq!(s, StatusCode::CREATED, "{ben}");
    assert_eq!(ben["name"], "Asha Devi");
    assert_eq!(ben["id_masked"], format!("XXXX-XXXX-{}", &id_number[8..12]));
    assert_eq!(ben["vaccination_status"], "not_vaccinated");
    assert_eq!(ben["next_dose"]["dose"], 1);
    assert!(!ben.to_string().contains(&id_number));
    let ben_id = ben["beneficiary_id"].as_u64().unwrap();

    let (session, slots, before) = demo_session(&srv, 18).await;
    let (slot1, slot2) = (slots[0], slots[1]);
    assert!(before > 0);
    let before2 = available(&srv, session, slot2).await;

    // No key: 428, nothing booked.
    let body =
        json!({"beneficiary_id": ben_id, "session_id": session, "slot_id": slot1, "dose": 1});
    let (s, _, v) = send(
        &srv,
        Method::POST,
        "/v1/bookings",
        Some(&token),
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::PRECONDITION_REQUIRED,
            "idempotency_key_required"
        )
    );
    assert_eq!(available(&srv, session, slot1).await, before);

    let (s, h, booked) = book(&srv, &token, "journey-1", ben_id, session, slot1, 1).await;
    assert_eq!(s, StatusCode::CREATED, "{booked}");
    assert!(h.get("idempotent-replayed").is_none());
    assert_eq!(booked["status"], "booked");
    assert_eq!(booked["token_number"], 1);
    assert_eq!(booked["dose"], 1);
    assert_eq!(booked["beneficiary_id"], ben_id);
    assert_eq!(booked["slot_id"], slot1);
    assert_eq!(booked["slot"]["start"], "09:00");
    assert_eq!(
        booked["date"],
        srv.state.today().format("%Y-%m-%d").to_string()
    );
    let booking_id = booked["booking_id"].as_u64().unwrap();
    assert_eq!(available(&srv, session, slot1).await, before - 1);

    // Same key, same body: the original answer, replayed; nothing more taken.
    let (s, h, again) = book(&srv, &token, "journey-1", ben_id, session, slot1, 1).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(again, booked);
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(available(&srv, session, slot1).await, before - 1);
    // Booking outcomes are counted by outcome.
    let (_, m) = srv.get("/metrics", None).await;
    let m = m.as_str().unwrap_or_default().to_string();
    assert!(
        m.contains("kataar_bookings_total{outcome=\"created\"}"),
        "{m}"
    );
    assert!(
        m.contains("kataar_bookings_total{outcome=\"replayed\"}"),
        "{m}"
    );
    // The store's batch sizes are histograms with buckets, in bookings and in events.
    for name in ["kataar_store_batch_bookings", "kataar_store_batch_events"] {
        assert!(m.contains(&format!("{name}_bucket{{le=\"1\"}}")), "{m}");
        assert!(m.contains(&format!("{name}_bucket{{le=\"4096\"}}")), "{m}");
    }
    // Same key, another body: 422.
    let (s, _, v) = book(&srv, &token, "journey-1", ben_id, session, slot2, 1).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_mismatch")
    );

    let (s, v) = srv.get("/v1/bookings", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["bookings"], json!([booked.clone()]));
    assert!(v.get("next_after").is_none());
    let (s, v) = srv
        .get(&format!("/v1/bookings/{booking_id}"), Some(&token))
        .await;
    assert_eq!((s, &v), (StatusCode::OK, &booked));
    let (s, v) = srv
        .get(&format!("/v1/beneficiaries/{ben_id}"), Some(&token))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["bookings"], json!([booked.clone()]));
    let (s, v) = srv.get("/v1/me", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["beneficiaries"][0]["bookings"][0]["booking_id"],
        booking_id
    );

    // Another account sees none of it.
    let other = srv.login("9123456789").await;
    assert_ne!(other, token);
    for path in [
        format!("/v1/bookings/{booking_id}"),
        format!("/v1/beneficiaries/{ben_id}"),
    ] {
        let (s, v) = srv.get(&path, Some(&other)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let (s, _, v) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/cancel"),
        Some(&other),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, v) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/reschedule"),
        Some(&other),
        Some("steal-1"),
        Some(json!({"session_id": session, "slot_id": slot2})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, v) = send(
        &srv,
        Method::DELETE,
        &format!("/v1/beneficiaries/{ben_id}"),
        Some(&other),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = srv.get("/v1/bookings", Some(&other)).await;
    assert_eq!((s, &v["bookings"]), (StatusCode::OK, &json!([])));
    assert_eq!(available(&srv, session, slot1).await, before - 1);

    // Reschedule: same booking, new slot and token; the old place comes back.
    let move_body = json!({"session_id": session, "slot_id": slot2});
    let (s, h, moved) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/reschedule"),
        Some(&token),
        Some("move-1"),
        Some(move_body.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{moved}");
    assert!(h.get("idempotent-replayed").is_none());
    assert_eq!(moved["booking_id"], booking_id);
    assert_eq!(moved["slot_id"], slot2);
    assert_eq!(moved["status"], "booked");
    assert_eq!(moved["token_number"], 2);
    assert_eq!(available(&srv, session, slot1).await, before);
    assert_eq!(available(&srv, session, slot2).await, before2 - 1);
    let (s, h, replay) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/reschedule"),
        Some(&token),
        Some("move-1"),
        Some(move_body),
    )
    .await;
    assert_eq!((s, &replay), (StatusCode::OK, &moved));
    assert_eq!(h["idempotent-replayed"], "true");
    let (s, _, v) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/reschedule"),
        Some(&token),
        None,
        Some(json!({"session_id": session, "slot_id": slot1})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::PRECONDITION_REQUIRED,
            "idempotency_key_required"
        )
    );

    // Cancel (no body): the place returns at once; cancelling again answers the same.
    let (s, _, cancelled) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/cancel"),
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["booking_id"], booking_id);
    assert_eq!(available(&srv, session, slot2).await, before2);
    let (s, v) = srv
        .post(
            &format!("/v1/bookings/{booking_id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("cancelled")));
    assert_eq!(available(&srv, session, slot2).await, before2);

    // The person may book again; this booking must survive a restart.
    let (s, _, second) = book(&srv, &token, "journey-2", ben_id, session, slot1, 1).await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    let second_id = second["booking_id"].as_u64().unwrap();
    assert_eq!(available(&srv, session, slot1).await, before - 1);

    // The clear Aadhaar number is nowhere in the database.
    let text = database_text(srv.database_url.as_deref().unwrap()).await;
    assert!(text.contains(&format!("XXXX-XXXX-{}", &id_number[8..12])));
    assert!(!text.contains(&id_number));
    assert!(!text.contains(&spaced(&id_number)));

    let (db, dir) = srv.stop().await;
    // The OTP file of the first run would answer `otp_for` with the old OTP.
    std::fs::remove_file(dir.path().join("otp.jsonl")).unwrap();
    let srv = TestServer::start(db, Some(dir)).await;
    let token = srv.login("9876543210").await;
    let (s, v) = srv.get("/v1/me", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["account_id"], account_id);
    let (s, v) = srv
        .get(&format!("/v1/bookings/{second_id}"), Some(&token))
        .await;
    assert_eq!((s, &v), (StatusCode::OK, &second));
    let (s, v) = srv
        .get(&format!("/v1/bookings/{booking_id}"), Some(&token))
        .await;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("cancelled")));
    assert_eq!(available(&srv, session, slot1).await, before - 1);
    assert_eq!(available(&srv, session, slot2).await, before2);
    // Idempotency records are durable too.
    let (s, h, v) = book(&srv, &token, "journey-2", ben_id, session, slot1, 1).await;
    assert_eq!((s, &v), (StatusCode::CREATED, &second));
    assert_eq!(h["idempotent-replayed"], "true");
    let (_, otp) = srv.otp_for("9876543210").await;
    assert_not_logged(&[&id_number, &spaced(&id_number), &otp]);
    srv.finish().await;
}

#[tokio::test]
async fn every_booking_refusal_on_postgres() {
    logs();
    let srv = TestServer::postgres().await;
    let a = srv.login("9000000001").await;
    let b = srv.login("9000000002").await;

    // Beneficiaries: one ID, one account; at most four.
    let first = aadhaar(101);
    let (s, v) = add(&srv, &a, "Ravi", 1995, &first).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let young = v["beneficiary_id"].as_u64().unwrap();
    let (s, v) = add(&srv, &a, "Ravi again", 1995, &spaced(&first)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "beneficiary_exists"));
    assert!(!v.to_string().contains(&first[8..12]), "{v}");
    let (s, v) = add(&srv, &b, "Someone", 1990, &first).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "id_already_registered")
    );
    assert!(!v.to_string().contains(&first[8..12]), "{v}");
    let mut others = Vec::new();
    for seed in 102..105 {
        let (s, v) = add(&srv, &a, &format!("Family {seed}"), 2000, &aadhaar(seed)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        others.push(v["beneficiary_id"].as_u64().unwrap());
    }
    let (s, v) = add(&srv, &a, "Fifth", 2000, &aadhaar(105)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "beneficiary_limit"));
    let (s, v) = srv.get("/v1/beneficiaries", Some(&a)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["beneficiaries"].as_array().unwrap().len(), 4);

    let (young_session, young_slots, _) = demo_session(&srv, 18).await;
    let (old_session, old_slots, _) = demo_session(&srv, 45).await;

    // Age band, dose order, a second booking for the same dose.
    let (s, _, v) = book(&srv, &a, "r-1", young, old_session, old_slots[0], 1).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "not_eligible"));
    let (s, _, v) = book(&srv, &a, "r-2", others[0], young_session, young_slots[0], 2).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "dose_sequence"));
    let (s, _, v) = book(&srv, &a, "r-3", young, young_session, young_slots[0], 1).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _, v) = book(&srv, &a, "r-4", young, young_session, young_slots[1], 1).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "already_booked"));
    // A refusal is remembered under its key.
    let (s, h, v) = book(&srv, &a, "r-4", young, young_session, young_slots[1], 1).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "already_booked"));
    assert_eq!(h["idempotent-replayed"], "true");
    // Unknown session or slot, another account's beneficiary: 404.
    let (s, _, v) = book(&srv, &a, "r-5", young, 999_999, young_slots[0], 1).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, v) = book(&srv, &a, "r-6", young, young_session, old_slots[0], 1).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, v) = book(&srv, &b, "r-7", others[1], young_session, young_slots[0], 1).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, v) = book(&srv, &a, "r-8", young, young_session, young_slots[0], 3).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
    assert_eq!(v["error"]["details"]["field"], "dose");

    // A beneficiary with a booking stays; one without goes.
    let (s, _, v) = send(
        &srv,
        Method::DELETE,
        &format!("/v1/beneficiaries/{young}"),
        Some(&a),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "beneficiary_in_use"));
    let gone = others[2];
    let (s, _, _) = send(
        &srv,
        Method::DELETE,
        &format!("/v1/beneficiaries/{gone}"),
        Some(&a),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = srv
        .get(&format!("/v1/beneficiaries/{gone}"), Some(&a))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, v) = send(
        &srv,
        Method::DELETE,
        &format!("/v1/beneficiaries/{gone}"),
        Some(&a),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    // A pool of one: the second person, otherwise eligible, hears pool_full.
    let (small, small_slot) = make_session(&srv, 1, 1).await;
    let (s, v) = add(&srv, &b, "Meena", 1992, &aadhaar(201)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let b_ben = v["beneficiary_id"].as_u64().unwrap();
    let (s, _, filled) = book(&srv, &a, "p-1", others[0], small, small_slot, 1).await;
    assert_eq!(s, StatusCode::CREATED, "{filled}");
    let (s, _, v) = book(&srv, &b, "p-2", b_ben, small, small_slot, 1).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "pool_full"));

    // Yesterday's session is closed.
    let (past, past_slot) = make_session(&srv, -1, 10).await;
    let (s, _, v) = book(&srv, &b, "c-1", b_ben, past, past_slot, 1).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "session_closed"));

    // Checked in: no longer cancellable by the citizen.
    let filled_id = filled["booking_id"].as_u64().unwrap();
    let p = srv
        .state
        .inv
        .check_in(BookingId(filled_id), &Scope::All, srv.state.now())
        .unwrap();
    commit(&srv.state, p).await.unwrap();
    let (s, _, v) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{filled_id}/cancel"),
        Some(&a),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "booking_state"));
    let (s, v) = srv
        .get(&format!("/v1/bookings/{filled_id}"), Some(&a))
        .await;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("checked_in")));
    let (s, _, v) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{filled_id}/reschedule"),
        Some(&a),
        Some("m-1"),
        Some(json!({"session_id": young_session, "slot_id": young_slots[2]})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_state"),
        "{v}"
    );
    // B cannot see or touch A's checked-in booking.
    let (s, v) = srv
        .get(&format!("/v1/bookings/{filled_id}"), Some(&b))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    // Announced for later: not_open.
    let later = srv.state.now() + chrono::Duration::hours(2);
    let (soon, soon_slot) = make_session_with(&srv, 1, 10, Vaccine::Covishield, Some(later)).await;
    let (s, _, v) = book(&srv, &b, "o-1", b_ben, soon, soon_slot, 1).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "not_open"));

    // A recorded dose 1 (checked in and administered through the engine), then the dose rules.
    let vaccinated = others[1];
    let (today_s, today_slot) = make_session(&srv, 0, 10).await;
    let (s, _, v) = book(&srv, &a, "d-1", vaccinated, today_s, today_slot, 1).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let dose1 = BookingId(v["booking_id"].as_u64().unwrap());
    let now = srv.state.now();
    let p = srv.state.inv.check_in(dose1, &Scope::All, now).unwrap();
    commit(&srv.state, p).await.unwrap();
    let p = srv
        .state
        .inv
        .administer(
            dose1,
            &Scope::All,
            Vaccine::Covishield,
            "B-1".into(),
            kataar_domain::OperatorId(1),
            now,
            srv.state.today(),
        )
        .unwrap();
    commit(&srv.state, p).await.unwrap();
    let (s, v) = srv
        .get(&format!("/v1/beneficiaries/{vaccinated}"), Some(&a))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["vaccination_status"], "partially_vaccinated");
    assert_eq!(v["doses"][0]["vaccine"], "COVISHIELD");
    let earliest = (srv.state.today() + Days::new(84))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        v["next_dose"],
        json!({"dose": 2, "vaccine": "COVISHIELD", "earliest_date": earliest})
    );
    let (covaxin, covaxin_slot) = make_session_with(&srv, 1, 10, Vaccine::Covaxin, None).await;
    let (s, _, v) = book(&srv, &a, "d-2", vaccinated, covaxin, covaxin_slot, 2).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "vaccine_mismatch"));
    let (tomorrow, tomorrow_slot) = make_session(&srv, 1, 10).await;
    let (s, _, v) = book(&srv, &a, "d-3", vaccinated, tomorrow, tomorrow_slot, 2).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "dose_interval"));
    assert_eq!(v["error"]["details"]["earliest_date"], earliest);
    let (s, _, v) = book(&srv, &a, "d-4", vaccinated, tomorrow, tomorrow_slot, 1).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "dose_sequence"));
    let (s, _, v) = send(
        &srv,
        Method::POST,
        &format!("/v1/bookings/{}/cancel", dose1.0),
        Some(&a),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "booking_state"));
    let (s, _, v) = send(
        &srv,
        Method::DELETE,
        &format!("/v1/beneficiaries/{vaccinated}"),
        Some(&a),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "beneficiary_in_use"));

    // The engine agrees with what the API said.
    let session = srv.state.inv.session(SessionId(small)).unwrap();
    let pool_booked: u32 = session.slots[0].pools.iter().map(|p| p.booked).sum();
    assert_eq!(pool_booked, 1);
    assert!(srv
        .state
        .inv
        .booking(BookingId(filled_id), &Scope::All)
        .is_some_and(|b| b.slot_id == SlotId(small_slot)));
    let numbers: Vec<String> = [101, 102, 103, 104, 105, 201].map(aadhaar).to_vec();
    assert_not_logged(&numbers.iter().map(String::as_str).collect::<Vec<_>>());
    srv.finish().await;
}

#[tokio::test]
async fn otp_auth_and_request_shapes_on_embedded() {
    logs();
    let srv = TestServer::embedded().await;

    // No token, a garbage token, an operator key: 401.
    for bearer in [
        None,
        Some("garbage"),
        Some("a.b.c"),
        Some(srv.admin_key.as_str()),
    ] {
        let (s, v) = srv.get("/v1/me", bearer).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{bearer:?}"
        );
        let (s, v) = srv.get("/v1/bookings", bearer).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    }

    // OTP.
    let (s, v) = srv
        .post("/v1/auth/otp", None, json!({"mobile": "12345"}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
    assert_eq!(v["error"]["details"]["field"], "mobile");
    let mobile = "8765432109";
    let (s, v) = srv
        .post("/v1/auth/otp", None, json!({"mobile": mobile}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["expires_in_s"], 180);
    assert_eq!(v["resend_after_s"], 30);
    let (txn, otp) = srv.otp_for(mobile).await;
    let first_otp = otp.clone();
    assert_eq!(v["txn_id"], txn);
    assert!(!v.to_string().contains(&otp));
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    for left in [2, 1, 0] {
        let (s, v) = srv
            .post(
                "/v1/auth/otp/verify",
                None,
                json!({"txn_id": txn, "otp": wrong}),
            )
            .await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "otp_invalid"));
        assert_eq!(v["error"]["details"]["attempts_left"], left);
        assert!(!v.to_string().contains(&otp));
    }
    let (s, v) = srv
        .post(
            "/v1/auth/otp/verify",
            None,
            json!({"txn_id": txn, "otp": otp}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "otp_expired"));
    let (s, v) = srv
        .post(
            "/v1/auth/otp/verify",
            None,
            json!({"txn_id": "nope", "otp": otp}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "otp_expired"));
    let (s, h, v) = send(
        &srv,
        Method::POST,
        "/v1/auth/otp",
        None,
        None,
        Some(json!({"mobile": mobile})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "otp_resend_too_soon")
    );
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry));
    assert_eq!(v["error"]["details"]["retry_after_s"], retry);

    // A good login.
    let (s, v) = srv
        .post("/v1/auth/otp", None, json!({"mobile": "07654321098"}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (txn, otp) = srv.otp_for("7654321098").await;
    let (s, v) = srv
        .post(
            "/v1/auth/otp/verify",
            None,
            json!({"txn_id": txn, "otp": otp}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert!(chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).is_ok());
    let token = v["token"].as_str().unwrap().to_string();
    let (s, me) = srv.get("/v1/me", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["account_id"], v["account_id"]);
    // The same OTP does not work twice.
    let (s, v) = srv
        .post(
            "/v1/auth/otp/verify",
            None,
            json!({"txn_id": txn, "otp": otp}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "otp_expired"));

    // Beneficiary validation.
    let good = aadhaar(555);
    let mut bad_check = good.clone();
    let last = bad_check.pop().unwrap().to_digit(10).unwrap();
    bad_check.push(char::from_digit((last + 1) % 10, 10).unwrap());
    let base = json!({"name": "Asha", "birth_year": 1980, "gender": "female", "id_type": "aadhaar", "id_number": good});
    let with = |k: &str, val: Value| {
        let mut b = base.clone();
        b[k] = val;
        b
    };
    let year = u64::try_from(chrono::Datelike::year(&srv.state.today())).unwrap();
    for (body, field) in [
        (with("id_number", json!(bad_check)), "id_number"),
        (with("id_number", json!("0234 5678 9012")), "id_number"),
        (with("id_type", json!("ABCDE1234F")), "id_type"),
        (with("birth_year", json!(1899)), "birth_year"),
        (with("birth_year", json!(year + 1)), "birth_year"),
        (with("birth_year", json!("1980")), "birth_year"),
        (with("gender", json!("x")), "gender"),
        (with("name", json!("   ")), "name"),
        (with("name", json!("n".repeat(201))), "name"),
        (with("colour", json!("red")), "colour"),
    ] {
        let (s, v) = srv
            .post("/v1/beneficiaries", Some(&token), body.clone())
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}: {v}"
        );
        assert_eq!(v["error"]["details"]["field"], field, "{body}: {v}");
        let text = v.to_string();
        assert!(
            !text.contains(&good) && !text.contains(&bad_check),
            "{text}"
        );
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("gender");
    let (s, v) = srv.post("/v1/beneficiaries", Some(&token), missing).await;
    assert_eq!(
        (s, &v["error"]["details"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("gender"))
    );
    // Not JSON: 415; too big: 413; malformed: 400.
    let resp = srv
        .http
        .post(format!("{}/v1/beneficiaries", srv.base))
        .bearer_auth(&token)
        .header("Content-Type", "text/plain")
        .body(base.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "unsupported_media_type");
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    for path in ["/v1/beneficiaries", "/v1/bookings"] {
        let resp = srv
            .http
            .post(format!("{}{path}", srv.base))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "big")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(code(&v), "payload_too_large");
        let resp = srv
            .http
            .post(format!("{}{path}", srv.base))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "broken")
            .body("{\"name\":")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let resp = srv
        .http
        .post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "plain")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, _, v) = send(
        &srv,
        Method::POST,
        "/v1/bookings",
        Some(&token),
        Some("typed"),
        Some(json!({"beneficiary_id": "one", "session_id": 1, "slot_id": 1, "dose": 1})),
    )
    .await;
    assert_eq!(
        (s, &v["error"]["details"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("beneficiary_id"))
    );
    let (s, _, v) = send(
        &srv,
        Method::POST,
        "/v1/bookings",
        Some(&token),
        Some("extra"),
        Some(json!({"beneficiary_id": 1, "session_id": 1, "slot_id": 1, "dose": 1, "pass": "x"})),
    )
    .await;
    assert_eq!(
        (s, &v["error"]["details"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("pass"))
    );
    let (s, _, v) = send(
        &srv,
        Method::POST,
        "/v1/bookings/1/cancel",
        Some(&token),
        None,
        Some(json!({"why": 1})),
    )
    .await;
    assert_eq!(
        (s, &v["error"]["details"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("why"))
    );

    // Non-numeric path ids are simply not found.
    for path in [
        "/v1/bookings/abc",
        "/v1/beneficiaries/abc",
        "/v1/bookings/-1",
    ] {
        let (s, v) = srv.get(path, Some(&token)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let (s, _, v) = send(
        &srv,
        Method::POST,
        "/v1/bookings/abc/cancel",
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, v) = send(
        &srv,
        Method::POST,
        "/v1/bookings/424242/cancel",
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    // Pagination over the account's bookings.
    let (session, slots, _) = demo_session(&srv, 18).await;
    let mut ids = Vec::new();
    for (i, seed) in [556u64, 557, 558].iter().enumerate() {
        let (s, v) = add(&srv, &token, &format!("P{i}"), 1990, &aadhaar(*seed)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let ben = v["beneficiary_id"].as_u64().unwrap();
        let (s, _, v) = book(
            &srv,
            &token,
            &format!("page-{i}"),
            ben,
            session,
            slots[i],
            1,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["booking_id"].clone());
    }
    let (s, v) = srv.get("/v1/bookings?limit=2", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    let page: Vec<Value> = v["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["booking_id"].clone())
        .collect();
    assert_eq!(page, ids[..2]);
    let after = v["next_after"].as_str().unwrap().to_string();
    let (s, v) = srv
        .get(&format!("/v1/bookings?limit=2&after={after}"), Some(&token))
        .await;
    assert_eq!(s, StatusCode::OK);
    let page: Vec<Value> = v["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["booking_id"].clone())
        .collect();
    assert_eq!(page, ids[2..]);
    assert!(v.get("next_after").is_none());
    for bad in ["limit=0", "limit=501", "after=x", "colour=red"] {
        let (s, v) = srv.get(&format!("/v1/bookings?{bad}"), Some(&token)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}"
        );
    }

    // The OpenAPI document still builds.
    let (s, v) = srv.get("/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["paths"].is_object());
    assert_not_logged(&[&first_otp, &otp, &good, &bad_check]);
    srv.finish().await;
}

/// Input the contract refuses however it is dressed up, and the idempotency index's bounds
/// under a flood of failing attempts from one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_and_idempotency_bounds_on_embedded() {
    use kataar_domain::limits::{IDEMPOTENCY_INDEX_BYTES_MAX, IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX};
    let srv = TestServer::embedded().await;
    let token = srv.login("9812345670").await;

    // Bidirectional overrides and zero-width characters in a name: 400 naming the field.
    for name in [
        "Asha\u{202E}iveD",
        "Asha\u{200B}Devi",
        "\u{FEFF}Asha",
        "Asha\u{2066}Devi",
    ] {
        let (s, v) = add(&srv, &token, name, 1980, &aadhaar(4_400_001)).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
        assert_eq!(v["error"]["details"]["field"], "name", "{name:?}");
    }
    let (s, ben) = add(&srv, &token, "Asha Devi", 1980, &aadhaar(4_400_001)).await;
    assert_eq!(s, StatusCode::CREATED, "{ben}");
    let ben_id = ben["beneficiary_id"].as_u64().unwrap();

    // Ids beyond 2^53 - 1 in a query or a path: 400 naming the parameter, not an empty 200.
    let id_max = kataar_api::extract::ID_MAX;
    for q in [
        "9223372036854775808".to_owned(),
        (id_max + 1).to_string(),
        "18446744073709551616".to_owned(),
    ] {
        for param in ["district_id", "centre_id"] {
            let (s, v) = srv
                .get(&format!("/v1/availability?{param}={q}"), None)
                .await;
            assert_eq!(
                (s, code(&v)),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{q}"
            );
            assert_eq!(v["error"]["details"]["field"], param);
        }
        let (s, v) = srv.get(&format!("/v1/bookings/{q}"), Some(&token)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{q}"
        );
        assert!(v["error"]["details"]["field"].is_string(), "{v}");
    }
    let (s, v) = srv
        .get(&format!("/v1/availability?district_id={id_max}"), None)
        .await;
    assert_eq!((s, &v["centres"]), (StatusCode::OK, &json!([])));
    let (s, v) = srv
        .get(&format!("/v1/bookings/{id_max}"), Some(&token))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    // An array where an object is expected is a 400, never four counters in field order.
    let (s, v) = srv
        .post(
            "/v1/admin/sessions",
            Some(&srv.admin_key),
            json!({"centre_id": 1, "date": chrono::Utc::now().date_naive().to_string(),
                   "vaccine": "COVISHIELD", "min_age": 45, "max_age": null,
                   "slots": [{"start": "09:00", "end": "11:00", "capacity": [1, 2, 3, 4]}]}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{v}"
    );
    assert_eq!(v["error"]["details"]["field"], "slots[0].capacity");

    // One success, then a flood of failing attempts under distinct keys.
    let (session, slots, _) = demo_session(&srv, 45).await;
    let (s, _, booked) = book(&srv, &token, "ok-1", ben_id, session, slots[0], 1).await;
    assert_eq!(s, StatusCode::CREATED, "{booked}");
    let flood = 3 * IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX;
    for n in 0..flood {
        let (s, _, v) = book(&srv, &token, &format!("bad-{n}"), ben_id, id_max, 1, 1).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
        let (records, bytes) = srv.state.inv.idem_size();
        assert!(
            records <= IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX,
            "{records} records after {n} failures"
        );
        assert!(bytes <= IDEMPOTENCY_INDEX_BYTES_MAX);
    }
    // The newest refusal is still replayed; the success survived the flood.
    let last = format!("bad-{}", flood - 1);
    let (s, h, _) = book(&srv, &token, &last, ben_id, id_max, 1, 1).await;
    assert_eq!(
        (s, h["idempotent-replayed"].to_str().ok()),
        (StatusCode::NOT_FOUND, Some("true"))
    );
    let (s, h, again) = book(&srv, &token, "ok-1", ben_id, session, slots[0], 1).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(again, booked);

    // A key whose first attempt is still committing when the answer is due: the outcome is
    // unknown and said so (a plain store_unavailable would claim nothing was changed).
    let (_, me) = srv.get("/v1/me", Some(&token)).await;
    let account = kataar_domain::AccountId(me["account_id"].as_u64().unwrap());
    let body =
        json!({"beneficiary_id": ben_id, "session_id": session, "slot_id": slots[1], "dose": 2});
    let raw = serde_json::to_vec(&body).unwrap();
    let hash = kataar_app::durable::request_hash("POST /v1/bookings", &raw);
    let claimed = srv
        .state
        .inv
        .idem_begin_at(account, "slow-1", &hash, srv.state.now());
    assert_eq!(claimed, kataar_inventory::IdemBegin::Fresh);
    let resp = srv
        .http
        .post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "slow-1")
        .header("Content-Type", "application/json")
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "store_unavailable");
    assert_eq!(v["error"]["details"]["outcome"], "unknown", "{v}");
    srv.state.inv.idem_abandon(account, "slow-1");
    srv.finish().await;
}
