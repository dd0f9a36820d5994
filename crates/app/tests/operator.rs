//! Operators over real HTTP on PostgreSQL: the whole journey of a centre's day (centre,
//! sessions, walk-in, check-in, administer, dose 2 by the interval, live capacity, day list,
//! audit log; citizens log in and book through the citizen API, or through the engine where a
//! test needs a booking the API cannot make, such as one in a session dated yesterday), and
//! every operator refusal with a real request.

#![allow(clippy::unwrap_used)]

mod common;
use chrono::{Datelike, Days, NaiveDate};
use common::{aadhaar, create_centre_key, TestServer};
use kataar_app::durable::commit;
use kataar_domain::*;
use kataar_identity::{hash_operator_key, normalize_and_validate, IdType};
use kataar_inventory::{AccountLookup, BookRequest, NewBeneficiary, NewSession, NewSlot};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn plus(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_add_days(Days::new(n)).unwrap()
}

fn centre_body(name: &str) -> Value {
    json!({
        "name": name, "state_id": 20, "district_id": 312, "pincode": "462003",
        "address": "Hamidia Road", "block_name": "Huzur", "lat": 23.26, "long": 77.40,
        "fee_type": "free",
    })
}

fn session_body(centre: u64, date: NaiveDate, vaccine: &str) -> Value {
    json!({
        "centre_id": centre, "date": day(date), "vaccine": vaccine, "min_age": 18, "max_age": null,
        "slots": [
            {"start": "09:00", "end": "11:00", "capacity": {"dose1_online": 5, "dose1_walkin": 2, "dose2_online": 3, "dose2_walkin": 1}},
            {"start": "11:00", "end": "13:00", "capacity": {"dose1_online": 4, "dose1_walkin": 2, "dose2_online": 3, "dose2_walkin": 1}},
        ],
    })
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn field(v: &Value) -> &str {
    v["error"]["details"]["field"].as_str().unwrap_or("")
}

/// The pool of a session answer by slot index, dose and channel.
fn pool_id(session: &Value, slot: usize, dose: u64, channel: &str) -> u64 {
    session["slots"][slot]["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["dose"] == dose && p["channel"] == channel)
        .unwrap()["pool_id"]
        .as_u64()
        .unwrap()
}

fn slot_id(session: &Value, slot: usize) -> u64 {
    session["slots"][slot]["slot_id"].as_u64().unwrap()
}

async fn create_centre(srv: &TestServer, key: &str, name: &str) -> Value {
    let (s, v) = srv
        .post("/v1/admin/centres", Some(key), centre_body(name))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn create_session(srv: &TestServer, key: &str, body: Value) -> Value {
    let (s, v) = srv.post("/v1/admin/sessions", Some(key), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// A citizen (account by mobile, one beneficiary) booked online through the engine and made
/// durable, as the citizen API does. `today` lets a test book into a session it dated in the
/// past. Returns the booking id.
#[allow(clippy::too_many_arguments)]
async fn citizen_booking(
    srv: &TestServer,
    mobile: &str,
    seed: u64,
    session: u64,
    slot: u64,
    dose: Dose,
    today: NaiveDate,
) -> u64 {
    let st = &srv.state;
    let now = st.now();
    let account = match st.inv.ensure_account(Some(mobile), now) {
        AccountLookup::Existing(a) => a,
        AccountLookup::New(p) => commit(st, p).await.unwrap(),
    };
    let id = normalize_and_validate(IdType::Aadhaar, &aadhaar(seed)).unwrap();
    let band = st.inv.session(SessionId(session)).unwrap().session;
    let birth_year = u16::try_from(band.date.year()).unwrap() - band.min_age;
    let person = NewBeneficiary {
        person_key: PersonKey(st.keyer.key(&id)),
        name: format!("Citizen {seed}"),
        birth_year,
        gender: Gender::Female,
        id_type: "aadhaar".into(),
        id_masked: id.masked(),
    };
    let added = st
        .inv
        .add_beneficiary(account.account_id, person, now)
        .unwrap();
    let beneficiary = commit(st, added).await.unwrap();
    let req = BookRequest {
        account_id: account.account_id,
        beneficiary_id: beneficiary.beneficiary_id,
        session_id: SessionId(session),
        slot_id: SlotId(slot),
        dose,
        now,
        today,
    };
    let booked = st.inv.book(&req, |_| Ok(())).unwrap();
    commit(st, booked).await.unwrap().booking_id.0
}

/// A citizen through the citizen API: OTP login and one beneficiary born in 1980.
/// Returns (token, beneficiary id).
async fn citizen_api(srv: &TestServer, mobile: &str, seed: u64) -> (String, u64) {
    let token = srv.login(mobile).await;
    let (s, v) = srv
        .post(
            "/v1/beneficiaries",
            Some(&token),
            json!({"name": format!("Citizen {seed}"), "birth_year": 1980, "gender": "female",
                "id_type": "aadhaar", "id_number": aadhaar(seed)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (token, v["beneficiary_id"].as_u64().unwrap())
}

/// Books through `POST /v1/bookings` under an `Idempotency-Key`; returns (status, body).
async fn api_book(
    srv: &TestServer,
    token: &str,
    beneficiary: u64,
    session: &Value,
    slot: usize,
    dose: u8,
) -> (StatusCode, Value) {
    let resp = srv
        .http
        .post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(token)
        .header(
            "Idempotency-Key",
            format!("k-{beneficiary}-{}-{dose}", session["session_id"]),
        )
        .json(
            &json!({"beneficiary_id": beneficiary, "session_id": session["session_id"],
            "slot_id": slot_id(session, slot), "dose": dose}),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// Sends `POST /v1/admin/sessions/{sid}/cancel` from a task of its own and returns once the
/// session is closing (the cancel has started and waits for what is in flight).
async fn start_cancel(
    srv: &TestServer,
    key: &str,
    sid: SessionId,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let http = srv.http.clone();
    let url = format!("{}/v1/admin/sessions/{}/cancel", srv.base, sid.0);
    let key = key.to_string();
    let cancel = tokio::spawn(async move { http.post(url).bearer_auth(key).send().await });
    let mut closing = false;
    for _ in 0..2_000 {
        if srv.state.inv.session(sid).unwrap().closed {
            closing = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(closing, "the cancel never started");
    cancel
}

fn walkin_body(session: &Value, slot: usize, dose: u8, seed: u64, name: &str) -> Value {
    json!({
        "session_id": session["session_id"], "slot_id": slot_id(session, slot), "dose": dose,
        "beneficiary": {"name": name, "birth_year": 1975, "gender": "male",
            "id_type": "aadhaar", "id_number": aadhaar(seed), "mobile": format!("+91 98765 {:05}", seed % 100_000)},
    })
}

#[tokio::test]
async fn operator_journey_and_audit_log() {
    let srv = TestServer::postgres().await;
    let admin = srv.admin_key.clone();
    let admin_id = srv
        .state
        .inv
        .operator_key(&hash_operator_key(&admin))
        .unwrap()
        .operator_id
        .0;
    let today = srv.state.today();

    // A centre: create, read, list with pagination, change.
    let mut body = centre_body("Hamidia Hospital");
    body["fee_type"] = json!("paid");
    body["fee_rupees"] = json!(250);
    let centre = create_centre(&srv, &admin, "unused").await;
    let (s, paid) = srv.post("/v1/admin/centres", Some(&admin), body).await;
    assert_eq!(s, StatusCode::CREATED, "{paid}");
    assert_eq!(paid["fee_type"], "paid");
    assert_eq!(paid["fee_rupees"], 250);
    assert_eq!(paid["pincode"], "462003");
    let c = centre["centre_id"].as_u64().unwrap();
    let (s, v) = srv
        .get(&format!("/v1/admin/centres/{c}"), Some(&admin))
        .await;
    assert_eq!((s, &v["name"]), (StatusCode::OK, &json!("unused")));
    let (s, page1) = srv.get("/v1/admin/centres?limit=10", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page1["centres"].as_array().unwrap().len(), 10);
    let after = page1["next_after"].as_str().unwrap().to_string();
    let (_, page2) = srv
        .get(
            &format!("/v1/admin/centres?limit=10&after={after}"),
            Some(&admin),
        )
        .await;
    let ids: Vec<u64> = page2["centres"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["centre_id"].as_u64().unwrap())
        .collect();
    assert!(ids.contains(&c), "{page2}");
    assert_eq!(page2["next_after"], Value::Null);
    let (s, v) = srv
        .call(
            Method::PATCH,
            &format!("/v1/admin/centres/{c}"),
            Some(&admin),
            Some(json!({"name": "  Hamidia Centre  ", "address": "Royal Market"})),
        )
        .await
        .pipe();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["name"], &v["address"]),
        (&json!("Hamidia Centre"), &json!("Royal Market"))
    );

    // A session today, and two later ones for dose 2.
    let session = create_session(&srv, &admin, session_body(c, today, "covaxin")).await;
    assert_eq!(session["vaccine"], "COVAXIN");
    assert_eq!(session["date"], day(today));
    assert_eq!(session["max_age"], Value::Null);
    let pools = session["slots"][0]["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 4);
    for p in pools {
        for key in ["pool_id", "dose", "channel", "capacity", "booked"] {
            assert!(p.get(key).is_some(), "{key} in {p}");
        }
        assert_eq!(p["booked"], 0);
    }
    let sid = session["session_id"].as_u64().unwrap();
    let early = create_session(&srv, &admin, session_body(c, plus(today, 10), "COVAXIN")).await;
    let due = create_session(&srv, &admin, session_body(c, plus(today, 28), "COVAXIN")).await;

    // A walk-in, registered and checked in at once, with the request id it was sent under.
    let resp = srv
        .http
        .post(format!("{}/v1/admin/walkins", srv.base))
        .bearer_auth(&admin)
        .header("X-Request-Id", "walkin-req-1")
        .json(&walkin_body(&session, 0, 1, 101, "Ravi Kumar"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let walkin: Value = resp.json().await.unwrap();
    assert_eq!(walkin["status"], "checked_in");
    assert_eq!(walkin["channel"], "walkin");
    assert_eq!(walkin["name"], "Ravi Kumar");
    let last4 = &aadhaar(101)[8..];
    assert_eq!(walkin["id_masked"], format!("XXXX-XXXX-{last4}"));
    assert_eq!(walkin["token_number"], 1);
    let walkin_id = walkin["booking_id"].as_u64().unwrap();

    // A citizen's online booking: check-in, then administer.
    let (token, ben) = citizen_api(&srv, "9876500001", 202).await;
    let (s, v) = api_book(&srv, &token, ben, &session, 1, 1).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::CREATED, Some("booked")),
        "{v}"
    );
    let booking = v["booking_id"].as_u64().unwrap();
    let (s, v) = srv
        .call(
            Method::POST,
            &format!("/v1/admin/bookings/{booking}/check-in"),
            Some(&admin),
            None,
        )
        .await
        .pipe();
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("checked_in")),
        "{v}"
    );
    let (s, v) = srv
        .post(
            &format!("/v1/admin/bookings/{booking}/administer"),
            Some(&admin),
            json!({"vaccine": "COVAXIN", "batch": "BB-2031"}),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("administered")),
        "{v}"
    );
    assert_eq!(v["administered"]["batch"], "BB-2031");
    assert_eq!(v["administered"]["operator_id"], admin_id);
    let (s, v) = srv
        .post(
            &format!("/v1/admin/bookings/{walkin_id}/administer"),
            Some(&admin),
            json!({"vaccine": "covaxin", "batch": "BB-2031"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Dose 2 of the walk-in: refused before the interval, allowed on its first day.
    let (s, v) = srv
        .post(
            "/v1/admin/walkins",
            Some(&admin),
            walkin_body(&early, 0, 2, 101, "Ravi Kumar"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "dose_interval"),
        "{v}"
    );
    assert_eq!(v["error"]["details"]["earliest_date"], day(plus(today, 28)));
    let (s, v) = srv
        .post(
            "/v1/admin/walkins",
            Some(&admin),
            walkin_body(&due, 0, 2, 101, "Ravi Kumar"),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::CREATED, Some("checked_in")),
        "{v}"
    );
    assert_eq!(v["dose"], 2);
    // The citizen's dose 2 through the citizen API: the same rule.
    let (s, v) = api_book(&srv, &token, ben, &early, 1, 2).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "dose_interval"),
        "{v}"
    );
    let (s, v) = api_book(&srv, &token, ben, &due, 1, 2).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::CREATED, Some("booked")),
        "{v}"
    );
    let (_, v) = srv
        .get(&format!("/v1/beneficiaries/{ben}"), Some(&token))
        .await;
    assert_eq!(v["vaccination_status"], "partially_vaccinated", "{v}");
    // Dose 1 again is a dose-sequence refusal.
    let (s, v) = srv
        .post(
            "/v1/admin/walkins",
            Some(&admin),
            walkin_body(&due, 1, 1, 101, "Ravi Kumar"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "dose_sequence"),
        "{v}"
    );

    // Live counts: the session, the capacity view, the day's list.
    let (s, v) = srv
        .get(&format!("/v1/admin/sessions/{sid}"), Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["totals"]["booked"], 2);
    assert_eq!(v["totals"]["administered"], 2);
    assert_eq!(v["totals"]["capacity"], 21);
    let (s, v) = srv
        .get(&format!("/v1/admin/capacity?centre_id={c}"), Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let centres = v["centres"].as_array().unwrap();
    assert_eq!(centres.len(), 1);
    assert_eq!(centres[0]["sessions"].as_array().unwrap().len(), 1);
    let pool = &centres[0]["sessions"][0]["pools"][0];
    for key in [
        "pool_id",
        "slot_id",
        "dose",
        "channel",
        "capacity",
        "booked",
        "checked_in",
        "administered",
        "no_show",
        "available",
    ] {
        assert!(pool.get(key).is_some(), "{key} in {pool}");
    }
    assert_eq!(v["totals"]["administered"], 2);
    assert_eq!(v["totals"]["available"], 19);
    let (_, v) = srv
        .get(
            &format!("/v1/admin/capacity?centre_id={c}&days=14"),
            Some(&admin),
        )
        .await;
    assert_eq!(v["centres"][0]["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(v["totals"]["checked_in"], 0);
    let (_, v) = srv
        .get(
            &format!(
                "/v1/admin/capacity?centre_id={c}&days=14&date={}",
                day(plus(today, 20))
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(v["totals"]["checked_in"], 1, "{v}");
    let (s, v) = srv
        .get("/v1/admin/capacity?district_id=312", Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["centres"].as_array().unwrap().len() >= 3);
    let (s, v) = srv
        .get(
            &format!("/v1/admin/bookings?session_id={sid}"),
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v["bookings"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["token_number"], 1);
    assert_eq!(list[0]["name"], "Ravi Kumar");
    assert_eq!(list[1]["token_number"], 2);
    assert_eq!(list[1]["name"], "Citizen 202");
    assert!(list[1]["id_masked"]
        .as_str()
        .unwrap()
        .starts_with("XXXX-XXXX-"));
    let (_, v) = srv
        .get(
            &format!("/v1/admin/bookings?session_id={sid}&limit=1"),
            Some(&admin),
        )
        .await;
    assert_eq!(v["bookings"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_after"], "1");

    // The audit log: every write, by whom, under which request, and no photo-ID number.
    let (s, v) = srv.get("/v1/admin/audit?limit=500", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let records = v["audit"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "centre.create",
            "centre.create",
            "centre.update",
            "session.create",
            "session.create",
            "session.create",
            "walkin.create",
            "booking.check_in",
            "booking.administer",
            "booking.administer",
            "walkin.create",
        ]
    );
    for r in records {
        assert_eq!(r["operator_id"], admin_id, "{r}");
        assert!(!r["request_id"].as_str().unwrap().is_empty(), "{r}");
    }
    let ids: Vec<u64> = records
        .iter()
        .map(|r| r["audit_id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "newest last: {ids:?}");
    // The audit names the server's own request id first (32 hex digits), then the client's.
    let walkin_req = records[6]["request_id"].as_str().unwrap();
    let (server_id, client) = walkin_req.split_once(' ').unwrap();
    assert_eq!(client, "client=walkin-req-1");
    assert_eq!(server_id.len(), 32, "{walkin_req}");
    assert!(
        server_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{walkin_req}"
    );
    assert_eq!(records[6]["object"], format!("booking:{walkin_id}"));
    assert_eq!(records[6]["before"], Value::Null);
    assert_eq!(records[8]["object"], format!("booking:{booking}"));
    assert_eq!(records[8]["before"]["status"], "checked_in");
    assert_eq!(records[8]["after"]["status"], "administered");
    assert_eq!(records[2]["before"]["name"], "unused");
    assert_eq!(records[2]["after"]["name"], "Hamidia Centre");
    let text = v.to_string();
    for seed in [101, 202] {
        let number = aadhaar(seed);
        assert!(!text.contains(&number), "photo-ID number in the audit log");
        assert!(
            !text.contains(&number[..8]),
            "photo-ID digits in the audit log"
        );
    }
    let (_, p1) = srv.get("/v1/admin/audit?limit=4", Some(&admin)).await;
    assert_eq!(p1["audit"].as_array().unwrap().len(), 4);
    let after = p1["next_after"].as_str().unwrap().to_string();
    let (_, p2) = srv
        .get(
            &format!("/v1/admin/audit?limit=500&after={after}"),
            Some(&admin),
        )
        .await;
    assert_eq!(p2["audit"].as_array().unwrap().len(), records.len() - 4);
    assert_eq!(p2["audit"][0]["audit_id"], records[4]["audit_id"]);
    assert_eq!(p2["next_after"], Value::Null);

    // A reader tailing the log while operators write concurrently misses nothing.
    let start = records.last().unwrap()["audit_id"].as_u64().unwrap();
    let writes_n = 40;
    let pools: Vec<u64> = session["slots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["pools"].as_array().unwrap().iter())
        .map(|p| p["pool_id"].as_u64().unwrap())
        .collect();
    // Pool capacity changes (serialised by the server) and centre renames (not serialised).
    let mut writers: Vec<_> = (0..writes_n)
        .map(|i| {
            let http = srv.http.clone();
            let url = format!("{}/v1/admin/pools/{}", srv.base, pools[i % pools.len()]);
            let admin = admin.clone();
            tokio::spawn(async move {
                let resp = http
                    .patch(url)
                    .bearer_auth(admin)
                    .json(&json!({"capacity": 10 + i}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            })
        })
        .collect();
    writers.extend((0..writes_n).map(|i| {
        let http = srv.http.clone();
        let url = format!("{}/v1/admin/centres/{}", srv.base, 1 + i % 13);
        let admin = admin.clone();
        tokio::spawn(async move {
            let resp = http
                .patch(url)
                .bearer_auth(admin)
                .json(&json!({"name": format!("Renamed {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        })
    }));
    let mut seen: Vec<u64> = Vec::new();
    let mut cursor = start;
    for _ in 0..2_000 {
        let (_, v) = srv
            .get(
                &format!("/v1/admin/audit?limit=500&after={cursor}"),
                Some(&admin),
            )
            .await;
        for r in v["audit"].as_array().unwrap() {
            seen.push(r["audit_id"].as_u64().unwrap());
        }
        cursor = seen.last().copied().unwrap_or(cursor);
        if seen.len() >= 2 * writes_n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let (_, v) = srv
        .get(
            &format!("/v1/admin/audit?limit=500&after={start}"),
            Some(&admin),
        )
        .await;
    let all: Vec<u64> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["audit_id"].as_u64().unwrap())
        .collect();
    assert_eq!(all.len(), 2 * writes_n);
    assert_eq!(seen, all, "the tail skipped a record");
    // Each pool ends at one of the capacities it was set to (no lost update).
    for (k, pool) in pools.iter().enumerate() {
        let capacity = srv.state.inv.pool(PoolId(*pool)).unwrap().capacity as usize;
        let targets: Vec<usize> = (0..writes_n)
            .filter(|i| i % pools.len() == k)
            .map(|i| 10 + i)
            .collect();
        assert!(
            targets.contains(&capacity),
            "pool {pool}: {capacity} not in {targets:?}"
        );
    }
    srv.finish().await;
}

/// Lets a `call` answer be used like `post`'s (status, body).
trait Pipe {
    fn pipe(self) -> (StatusCode, Value);
}

impl Pipe for (StatusCode, reqwest::header::HeaderMap, Value) {
    fn pipe(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn operator_refusals() {
    let srv = TestServer::postgres().await;
    let admin = srv.admin_key.clone();
    let st = srv.state.clone();
    let today = st.today();

    // Unauthenticated: no key, an unknown key, something that is not a key.
    for bearer in [None, Some("kop_0000000000000000000000000000"), Some("abc")] {
        let (s, v) = srv.get("/v1/admin/centres", bearer).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{bearer:?}"
        );
    }
    let (s, v) = srv
        .post("/v1/admin/walkins", Some("kop_nope"), json!({}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"));

    // A centre key: forbidden to create centres or read the audit log; blind to other centres.
    let mine = create_centre(&srv, &admin, "Mine").await["centre_id"]
        .as_u64()
        .unwrap();
    let key = create_centre_key(&st, &[mine]).await;
    let (s, v) = srv
        .post("/v1/admin/centres", Some(&key), centre_body("Not mine"))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, v) = srv.get("/v1/admin/audit", Some(&key)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    // The role is decided before the body or the query is read.
    let (s, v) = srv
        .post("/v1/admin/centres", Some(&key), json!({"colour": "red"}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, v) = srv.get("/v1/admin/audit?after=x", Some(&key)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (_, v) = srv.get("/v1/admin/centres", Some(&key)).await;
    let listed: Vec<u64> = v["centres"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["centre_id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [mine]);
    let demo_view = st.inv.centre_sessions(CentreId(1), today, 7).remove(0);
    let (s, demo) = srv
        .get(
            &format!("/v1/admin/sessions/{}", demo_view.session.session_id),
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let demo_sid = demo["session_id"].as_u64().unwrap();
    let demo_pool = pool_id(&demo, 0, 1, "online");
    let demo_date = NaiveDate::parse_from_str(demo["date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let demo_booking = citizen_booking(
        &srv,
        "9876500002",
        301,
        demo_sid,
        slot_id(&demo, 0),
        Dose::One,
        today,
    )
    .await;
    assert!(demo_date >= today);
    let hidden: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/centres/1".into(), None),
        (
            Method::PATCH,
            "/v1/admin/centres/1".into(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/v1/admin/sessions/{demo_sid}"), None),
        (
            Method::POST,
            format!("/v1/admin/sessions/{demo_sid}/cancel"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/admin/bookings?session_id={demo_sid}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/admin/pools/{demo_pool}"),
            Some(json!({"capacity": 1})),
        ),
        (
            Method::POST,
            "/v1/admin/pools/move".into(),
            Some(
                json!({"from_pool_id": demo_pool, "to_pool_id": pool_id(&demo, 0, 2, "online"), "count": 1}),
            ),
        ),
        (
            Method::POST,
            format!("/v1/admin/bookings/{demo_booking}/check-in"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/bookings/{demo_booking}/no-show"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/bookings/{demo_booking}/administer"),
            Some(json!({"vaccine": "COVISHIELD", "batch": "X"})),
        ),
        (
            Method::POST,
            "/v1/admin/sessions".into(),
            Some(session_body(1, today, "COVISHIELD")),
        ),
        (
            Method::POST,
            "/v1/admin/walkins".into(),
            Some(walkin_body(&demo, 0, 1, 302, "Hidden")),
        ),
        // Ids that are not numbers, or unknown.
        (Method::GET, "/v1/admin/sessions/abc".into(), None),
        (Method::POST, "/v1/admin/bookings/xyz/check-in".into(), None),
        (
            Method::PATCH,
            "/v1/admin/pools/-1".into(),
            Some(json!({"capacity": 1})),
        ),
        (Method::GET, "/v1/admin/sessions/999999".into(), None),
    ];
    for (method, path, body) in hidden {
        let (s, _, v) = srv.call(method.clone(), &path, Some(&key), body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}: {v}"
        );
    }
    let (_, v) = srv
        .get("/v1/admin/capacity?district_id=312", Some(&key))
        .await;
    let seen: Vec<u64> = v["centres"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["centre_id"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, [mine]);
    // ... and nothing changed for the demo centre.
    assert_eq!(
        st.inv
            .booking(BookingId(demo_booking), &kataar_inventory::Scope::All)
            .unwrap()
            .status,
        BookingStatus::Booked
    );

    // The centre key works on its own centre.
    let session = create_session(&srv, &key, session_body(mine, today, "COVAXIN")).await;
    let sid = session["session_id"].as_u64().unwrap();
    let d1_online = pool_id(&session, 0, 1, "online");
    let d1_walkin = pool_id(&session, 0, 1, "walkin");
    let d2_online = pool_id(&session, 0, 2, "online");

    // Capacity below booked.
    let b1 = citizen_booking(
        &srv,
        "9876500003",
        303,
        sid,
        slot_id(&session, 0),
        Dose::One,
        today,
    )
    .await;
    let patch = |pool: u64, capacity: Value| {
        let srv = &srv;
        let key = key.clone();
        async move {
            srv.call(
                Method::PATCH,
                &format!("/v1/admin/pools/{pool}"),
                Some(&key),
                Some(json!({"capacity": capacity})),
            )
            .await
            .pipe()
        }
    };
    let (s, v) = patch(d1_online, json!(0)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "capacity_below_booked"),
        "{v}"
    );
    let (s, v) = patch(d1_online, json!(1)).await;
    assert_eq!(
        (s, &v["capacity"], &v["available"]),
        (StatusCode::OK, &json!(1), &json!(0)),
        "{v}"
    );
    for bad in [
        json!(-1),
        json!(100_001),
        json!(5_000_000_000u64),
        json!("ten"),
    ] {
        let (s, v) = patch(d1_online, bad.clone()).await;
        assert_eq!(
            (s, field(&v)),
            (StatusCode::BAD_REQUEST, "capacity"),
            "{bad}: {v}"
        );
    }

    // Booking states and the vaccine check.
    let admin_post = |path: String, body: Option<Value>| {
        let srv = &srv;
        let admin = admin.clone();
        async move {
            srv.call(Method::POST, &path, Some(&admin), body)
                .await
                .pipe()
        }
    };
    let administer = json!({"vaccine": "COVAXIN", "batch": "B7"});
    let (s, v) = admin_post(
        format!("/v1/admin/bookings/{b1}/administer"),
        Some(administer.clone()),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_state"),
        "{v}"
    );
    let (s, v) = admin_post(format!("/v1/admin/bookings/{b1}/no-show"), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_state"),
        "no-show on the day: {v}"
    );
    let (s, _) = admin_post(format!("/v1/admin/bookings/{b1}/check-in"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = admin_post(format!("/v1/admin/bookings/{b1}/check-in"), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_state"),
        "{v}"
    );
    let (s, v) = admin_post(
        format!("/v1/admin/bookings/{b1}/administer"),
        Some(json!({"vaccine": "COVISHIELD", "batch": "B7"})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "vaccine_mismatch"),
        "{v}"
    );
    let (s, v) = admin_post(
        format!("/v1/admin/bookings/{b1}/administer"),
        Some(json!({"vaccine": "PFIZER", "batch": "B7"})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "vaccine"), "{v}");
    let (s, v) = admin_post(
        format!("/v1/admin/bookings/{b1}/administer"),
        Some(json!({"vaccine": "COVAXIN", "batch": "  "})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "batch"), "{v}");
    let (s, v) = admin_post(
        format!("/v1/admin/bookings/{b1}/check-in"),
        Some(json!({"note": 1})),
    )
    .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "note"), "{v}");
    let (s, v) = admin_post(
        format!("/v1/admin/bookings/{b1}/administer"),
        Some(administer.clone()),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("administered")),
        "{v}"
    );

    // No-show after the session's day (a session dated yesterday, made through the engine).
    let yesterday = today.pred_opt().unwrap();
    let past = st
        .inv
        .create_session(NewSession {
            centre_id: CentreId(mine),
            date: yesterday,
            vaccine: Vaccine::Covaxin,
            min_age: 18,
            max_age: None,
            opens_at: None,
            slots: vec![NewSlot {
                start: "09:00".into(),
                end: "10:00".into(),
                dose1_online: 3,
                dose1_walkin: 0,
                dose2_online: 0,
                dose2_walkin: 0,
            }],
        })
        .unwrap();
    let past = commit(&st, past).await.unwrap();
    let past_view = st.inv.session(past.session_id).unwrap();
    let absent = citizen_booking(
        &srv,
        "9876500004",
        304,
        past.session_id.0,
        past_view.slots[0].slot.slot_id.0,
        Dose::One,
        yesterday,
    )
    .await;
    let (s, v) = admin_post(format!("/v1/admin/bookings/{absent}/no-show"), None).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("no_show")),
        "{v}"
    );
    let (s, v) = admin_post(format!("/v1/admin/bookings/{absent}/no-show"), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_state"),
        "{v}"
    );
    let (_, v) = srv
        .get(
            &format!(
                "/v1/admin/capacity?centre_id={mine}&date={}",
                day(yesterday)
            ),
            Some(&key),
        )
        .await;
    assert_eq!(v["totals"]["no_show"], 1, "{v}");

    // Moving places: atomic, within one session only.
    let (s, v) = admin_post(
        "/v1/admin/pools/move".into(),
        Some(json!({"from_pool_id": d1_online, "to_pool_id": d1_walkin, "count": 1})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "capacity_below_booked"),
        "{v}"
    );
    assert_eq!(st.inv.pool(PoolId(d1_online)).unwrap().capacity, 1);
    assert_eq!(st.inv.pool(PoolId(d1_walkin)).unwrap().capacity, 2);
    let (s, v) = admin_post(
        "/v1/admin/pools/move".into(),
        Some(json!({"from_pool_id": d2_online, "to_pool_id": d1_online, "count": 2})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let caps: Vec<(u64, u64)> = v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pool_id"].as_u64().unwrap(),
                p["capacity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(caps, [(d2_online, 1), (d1_online, 3)]);
    let other = create_session(&srv, &admin, session_body(mine, plus(today, 1), "COVAXIN")).await;
    let other_pool = pool_id(&other, 0, 1, "online");
    for (body, f) in [
        (
            json!({"from_pool_id": d2_online, "to_pool_id": other_pool, "count": 1}),
            "to_pool_id",
        ),
        (
            json!({"from_pool_id": d2_online, "to_pool_id": d2_online, "count": 1}),
            "to_pool_id",
        ),
        (
            json!({"from_pool_id": d2_online, "to_pool_id": d1_online, "count": 0}),
            "count",
        ),
        (
            json!({"from_pool_id": d2_online, "to_pool_id": d1_online, "count": -3}),
            "count",
        ),
    ] {
        let (s, v) = admin_post("/v1/admin/pools/move".into(), Some(body.clone())).await;
        assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, f), "{body}: {v}");
    }
    assert_eq!(st.inv.pool(PoolId(d2_online)).unwrap().capacity, 1);
    assert_eq!(st.inv.pool(PoolId(other_pool)).unwrap().capacity, 5);

    // Cancelling a session: its bookings are cancelled, availability drops it.
    let osid = other["session_id"].as_u64().unwrap();
    let tomorrow = plus(today, 1);
    let (holder, holder_ben) = citizen_api(&srv, "9876500005", 305).await;
    let (s, v) = api_book(&srv, &holder, holder_ben, &other, 0, 1).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let c1 = v["booking_id"].as_u64().unwrap();
    citizen_booking(
        &srv,
        "9876500006",
        306,
        osid,
        slot_id(&other, 1),
        Dose::One,
        today,
    )
    .await;
    let (s, v) = srv
        .post(
            "/v1/admin/walkins",
            Some(&key),
            walkin_body(&other, 1, 1, 307, "Walk In"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let avail = format!(
        "/v1/availability?centre_id={mine}&date={}&days=1",
        day(tomorrow)
    );
    let (_, v) = srv.get(&avail, None).await;
    assert_eq!(v["centres"][0]["sessions"][0]["session_id"], osid, "{v}");
    let (s, v) = srv
        .call(
            Method::POST,
            &format!("/v1/admin/sessions/{osid}/cancel"),
            Some(&key),
            None,
        )
        .await
        .pipe();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["cancelled"], true);
    assert_eq!(v["bookings_cancelled"], 3);
    assert_eq!(v["totals"]["booked"], 0);
    let (_, v) = srv
        .get(&format!("/v1/admin/bookings?session_id={osid}"), Some(&key))
        .await;
    let statuses: Vec<&str> = v["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cancelled", "cancelled", "cancelled"]);
    assert_eq!(
        st.inv
            .booking(BookingId(c1), &kataar_inventory::Scope::All)
            .unwrap()
            .status,
        BookingStatus::Cancelled
    );
    let (_, v) = srv.get(&avail, None).await;
    assert_eq!(v["centres"].as_array().unwrap().len(), 0, "{v}");
    let (s, v) = srv.get(&format!("/v1/bookings/{c1}"), Some(&holder)).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "the holder sees it: {v}"
    );
    let (s, v) = srv
        .call(
            Method::POST,
            &format!("/v1/admin/sessions/{osid}/cancel"),
            Some(&key),
            None,
        )
        .await
        .pipe();
    assert_eq!(
        (s, &v["cancelled"]),
        (StatusCode::OK, &json!(true)),
        "cancel again: {v}"
    );
    let (s, v) = srv
        .post(
            "/v1/admin/walkins",
            Some(&key),
            walkin_body(&other, 0, 1, 308, "Late"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "session_closed"),
        "{v}"
    );

    // Invalid inputs: sessions.
    let good = session_body(mine, today, "COVAXIN");
    let with = |path: &str, value: Value| {
        let mut b = good.clone();
        let mut target = &mut b;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            target = match p.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*p],
            };
        }
        target[*parts.last().unwrap()] = value;
        b
    };
    let overlapping = json!([
        {"start": "09:00", "end": "11:00", "capacity": {"dose1_online": 1, "dose1_walkin": 1, "dose2_online": 1, "dose2_walkin": 1}},
        {"start": "10:30", "end": "12:00", "capacity": {"dose1_online": 1, "dose1_walkin": 1, "dose2_online": 1, "dose2_walkin": 1}},
    ]);
    let many: Vec<Value> = (0..49)
        .map(|i| json!({"start": format!("{:02}:{:02}", i / 4 + 8, (i % 4) * 15), "end": format!("{:02}:{:02}", (i + 1) / 4 + 8, ((i + 1) % 4) * 15), "capacity": {"dose1_online": 1, "dose1_walkin": 1, "dose2_online": 1, "dose2_walkin": 1}}))
        .collect();
    let mut unknown = good.clone();
    unknown["colour"] = json!("red");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("bad date", with("date", json!("2026-02-30")), "date"),
        ("past date", with("date", json!(day(yesterday))), "date"),
        (
            "bad time",
            with("slots.0.start", json!("9:00")),
            "slots[0].start",
        ),
        (
            "hour 24",
            with("slots.0.end", json!("24:00")),
            "slots[0].end",
        ),
        (
            "end before start",
            with("slots.1.end", json!("10:00")),
            "slots[1].end",
        ),
        (
            "overlapping slots",
            with("slots", overlapping),
            "slots[1].start",
        ),
        ("no slots", with("slots", json!([])), "slots"),
        ("too many slots", with("slots", json!(many)), "slots"),
        (
            "unknown vaccine",
            with("vaccine", json!("PFIZER")),
            "vaccine",
        ),
        (
            "negative capacity",
            with("slots.0.capacity.dose1_online", json!(-1)),
            "slots[0].capacity.dose1_online",
        ),
        (
            "huge capacity",
            with("slots.0.capacity.dose2_walkin", json!(100_001)),
            "slots[0].capacity.dose2_walkin",
        ),
        (
            "enormous capacity",
            with("slots.1.capacity.dose1_walkin", json!(5_000_000_000u64)),
            "slots[1].capacity.dose1_walkin",
        ),
        ("ages reversed", with("max_age", json!(17)), "max_age"),
        ("age too high", with("min_age", json!(121)), "min_age"),
        (
            "missing field",
            with("slots.0.capacity", json!({"dose1_online": 1})),
            "slots[0].capacity.dose1_walkin",
        ),
        ("unknown field", unknown, "colour"),
        (
            "unknown nested field",
            with("slots.0.capacity.dose3_online", json!(1)),
            "slots[0].capacity.dose3_online",
        ),
    ];
    for (what, body, f) in cases {
        let (s, v) = srv.post("/v1/admin/sessions", Some(&admin), body).await;
        assert_eq!(
            (s, code(&v), field(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request", f),
            "{what}: {v}"
        );
    }

    // Invalid inputs: centres.
    let centre_with = |k: &str, value: Value| {
        let mut b = centre_body("Bad");
        b[k] = value;
        b
    };
    for (body, f) in [
        (centre_with("pincode", json!("46200")), "pincode"),
        (centre_with("pincode", json!("46200a")), "pincode"),
        (centre_with("lat", json!(90.5)), "lat"),
        (centre_with("long", json!(-180.5)), "long"),
        (centre_with("fee_type", json!("cheap")), "fee_type"),
        (centre_with("fee_rupees", json!(100)), "fee_rupees"),
        (centre_with("state_id", json!(99)), "state_id"),
        (centre_with("district_id", json!(97)), "district_id"),
        (centre_with("name", json!("")), "name"),
        (centre_with("website", json!("x")), "website"),
    ] {
        let (s, v) = srv
            .post("/v1/admin/centres", Some(&admin), body.clone())
            .await;
        assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, f), "{body}: {v}");
    }
    let (s, v) = srv
        .call(
            Method::PATCH,
            &format!("/v1/admin/centres/{mine}"),
            Some(&admin),
            Some(json!({"pincode": "462001"})),
        )
        .await
        .pipe();
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "pincode"), "{v}");

    // Invalid inputs: walk-ins (the photo-ID number never comes back).
    let bad_id = {
        let good = aadhaar(309);
        let last = good.as_bytes()[11] - b'0';
        format!("{}{}", &good[..11], (last + 1) % 10)
    };
    let walk = |k: &str, value: Value| {
        let mut b = walkin_body(&session, 0, 1, 309, "Bad");
        if let Some(rest) = k.strip_prefix("beneficiary.") {
            b["beneficiary"][rest] = value;
        } else {
            b[k] = value;
        }
        b
    };
    for (body, f) in [
        (
            walk("beneficiary.id_number", json!(bad_id)),
            "beneficiary.id_number",
        ),
        (
            walk("beneficiary.id_type", json!("library_card")),
            "beneficiary.id_type",
        ),
        (
            walk("beneficiary.mobile", json!("12345")),
            "beneficiary.mobile",
        ),
        (
            walk("beneficiary.birth_year", json!(1800)),
            "beneficiary.birth_year",
        ),
        (walk("beneficiary.gender", json!("x")), "beneficiary.gender"),
        (walk("dose", json!(3)), "dose"),
    ] {
        let (s, v) = srv
            .post("/v1/admin/walkins", Some(&admin), body.clone())
            .await;
        assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, f), "{body}: {v}");
        assert!(
            !v.to_string().contains(&bad_id),
            "the ID number came back: {v}"
        );
    }

    // Query parameters, media type, body size.
    for bad in [
        "/v1/admin/capacity",
        "/v1/admin/capacity?district_id=312&centre_id=1",
        "/v1/admin/capacity?district_id=312&days=15",
        "/v1/admin/capacity?district_id=312&date=yesterday",
        "/v1/admin/centres?limit=0",
        "/v1/admin/centres?limit=501",
        "/v1/admin/centres?after=x",
        "/v1/admin/bookings",
        "/v1/admin/audit?after=-1",
    ] {
        let (s, v) = srv.get(bad, Some(&admin)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}: {v}"
        );
    }
    let resp = srv
        .http
        .post(format!("{}/v1/admin/sessions", srv.base))
        .bearer_auth(&admin)
        .header("Content-Type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut huge = good.clone();
    huge["padding"] = json!("x".repeat(2 * 1024 * 1024));
    let (s, v) = srv.post("/v1/admin/sessions", Some(&admin), huge).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{v}"
    );

    // None of the refused writes left an audit record or a session behind.
    let (_, v) = srv.get("/v1/admin/audit?limit=500", Some(&admin)).await;
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "centre.create",
            "session.create",
            "pool.capacity",
            "booking.check_in",
            "booking.administer",
            "booking.no_show",
            "pool.move",
            "session.create",
            "walkin.create",
            "session.cancel",
        ]
    );
    assert_eq!(
        st.inv.centre_sessions(CentreId(mine), yesterday, 3).len(),
        3
    );
    srv.finish().await;
}

/// A session cancel whose client goes away while the cancel waits for an in-flight booking
/// still completes: the session ends cancelled with its bookings, not closed for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_whose_client_goes_away_still_completes() {
    let srv = TestServer::embedded().await;
    let admin = srv.admin_key.clone();
    let st = &srv.state;
    let today = st.today();
    let c = create_centre(&srv, &admin, "Kamla Nagar").await["centre_id"]
        .as_u64()
        .unwrap();
    let session = create_session(&srv, &admin, session_body(c, plus(today, 3), "COVISHIELD")).await;
    let sid = SessionId(session["session_id"].as_u64().unwrap());
    let done = citizen_booking(
        &srv,
        "9876500101",
        301,
        sid.0,
        slot_id(&session, 0),
        Dose::One,
        today,
    )
    .await;

    // A second booking decided but not committed yet: a cancel waits for it.
    let now = st.now();
    let account = match st.inv.ensure_account(Some("9876500102"), now) {
        AccountLookup::Existing(a) => a,
        AccountLookup::New(p) => commit(st, p).await.unwrap(),
    };
    let id = normalize_and_validate(IdType::Aadhaar, &aadhaar(302)).unwrap();
    let person = NewBeneficiary {
        person_key: PersonKey(st.keyer.key(&id)),
        name: "Citizen 302".into(),
        birth_year: 1980,
        gender: Gender::Female,
        id_type: "aadhaar".into(),
        id_masked: id.masked(),
    };
    let added = st
        .inv
        .add_beneficiary(account.account_id, person, now)
        .unwrap();
    let beneficiary = commit(st, added).await.unwrap();
    let req = BookRequest {
        account_id: account.account_id,
        beneficiary_id: beneficiary.beneficiary_id,
        session_id: sid,
        slot_id: SlotId(slot_id(&session, 1)),
        dose: Dose::One,
        now,
        today,
    };
    let held = st.inv.book(&req, |_| Ok(())).unwrap();
    assert_eq!(st.inv.session_inflight(sid), 1);

    // The operator's client sends the cancel and goes away while it waits.
    let client = start_cancel(&srv, &admin, sid).await;
    client.abort();
    assert!(client.await.is_err(), "the client was not cut off");

    // The booking in flight commits; the cancel, with nobody waiting for it, goes on.
    let second = commit(st, held).await.unwrap().booking_id;
    let mut cancelled = false;
    for _ in 0..2_000 {
        if st.inv.session(sid).unwrap().session.cancelled {
            cancelled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        cancelled,
        "the session was left closed without being cancelled"
    );
    for booking in [BookingId(done), second] {
        let b = st
            .inv
            .booking(booking, &kataar_inventory::Scope::All)
            .unwrap();
        assert_eq!(b.status, BookingStatus::Cancelled, "{booking:?}");
    }
    // And it is answered as cancelled, and the audit log has it once.
    let (s, v) = srv
        .post(
            &format!("/v1/admin/sessions/{}/cancel", sid.0),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, log) = srv.get("/v1/admin/audit?limit=500", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let cancels = log["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "session.cancel")
        .count();
    assert_eq!(cancels, 1, "{log}");
    srv.finish().await;
}

/// An operator write under an `Idempotency-Key`: (status, `Idempotent-Replayed` present, raw
/// body bytes).
async fn keyed(
    srv: &TestServer,
    method: Method,
    path: &str,
    bearer: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, bool, String) {
    let resp = srv
        .http
        .request(method, format!("{}{}", srv.base, path))
        .bearer_auth(bearer)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, replayed, resp.text().await.unwrap())
}

fn capacity_of(session: &Value, pool: u64) -> u64 {
    session["slots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["pools"].as_array().unwrap().iter())
        .find(|p| p["pool_id"].as_u64() == Some(pool))
        .unwrap()["capacity"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn operator_writes_apply_once_under_an_idempotency_key_also_across_a_restart() {
    let srv = TestServer::postgres().await;
    let admin = srv.admin_key.clone();
    let today = srv.state.today();

    // A centre created twice under one key is one centre; the retry gets the same bytes.
    let body = centre_body("Idempotent Centre");
    let first = keyed(
        &srv,
        Method::POST,
        "/v1/admin/centres",
        &admin,
        "c-1",
        &body,
    )
    .await;
    let again = keyed(
        &srv,
        Method::POST,
        "/v1/admin/centres",
        &admin,
        "c-1",
        &body,
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.2);
    assert!(!first.1);
    assert_eq!((again.0, again.1), (StatusCode::CREATED, true));
    assert_eq!(again.2, first.2);
    let centre: Value = serde_json::from_str(&first.2).unwrap();
    let c = centre["centre_id"].as_u64().unwrap();
    let (_, list) = srv.get("/v1/admin/centres?limit=500", Some(&admin)).await;
    let named = list["centres"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "Idempotent Centre")
        .count();
    assert_eq!(named, 1);

    // A session, likewise.
    let body = session_body(c, today, "COVISHIELD");
    let s1 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/sessions",
        &admin,
        "s-1",
        &body,
    )
    .await;
    let s2 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/sessions",
        &admin,
        "s-1",
        &body,
    )
    .await;
    assert_eq!(s1.0, StatusCode::CREATED, "{}", s1.2);
    assert_eq!((s2.0, s2.1, &s2.2), (StatusCode::CREATED, true, &s1.2));
    let session: Value = serde_json::from_str(&s1.2).unwrap();
    let sid = session["session_id"].as_u64().unwrap();
    let (_, fresh) = srv
        .get(&format!("/v1/admin/sessions/{sid}"), Some(&admin))
        .await;
    assert_eq!(
        fresh, session,
        "the answer rendered before the commit is the session as read"
    );

    // Moving places: a double tap moves them once.
    let from = pool_id(&session, 0, 1, "online");
    let to = pool_id(&session, 0, 1, "walkin");
    let mv = json!({"from_pool_id": from, "to_pool_id": to, "count": 2});
    let m1 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "m-1",
        &mv,
    )
    .await;
    let m2 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "m-1",
        &mv,
    )
    .await;
    assert_eq!(m1.0, StatusCode::OK, "{}", m1.2);
    assert_eq!((m2.0, m2.1, &m2.2), (StatusCode::OK, true, &m1.2));
    let (_, now) = srv
        .get(&format!("/v1/admin/sessions/{sid}"), Some(&admin))
        .await;
    assert_eq!((capacity_of(&now, from), capacity_of(&now, to)), (3, 4));

    // The same key with another request is refused and changes nothing.
    let other = json!({"from_pool_id": from, "to_pool_id": to, "count": 1});
    let m3 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "m-1",
        &other,
    )
    .await;
    assert_eq!(m3.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", m3.2);
    assert!(m3.2.contains("idempotency_key_mismatch"), "{}", m3.2);
    // A refusal is answered again as it was, and still changes nothing.
    let big = json!({"from_pool_id": from, "to_pool_id": to, "count": 50});
    let r1 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "m-2",
        &big,
    )
    .await;
    let r2 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "m-2",
        &big,
    )
    .await;
    assert_eq!(r1.0, StatusCode::CONFLICT, "{}", r1.2);
    assert_eq!((r2.0, r2.1), (StatusCode::CONFLICT, true));
    assert_eq!(
        serde_json::from_str::<Value>(&r2.2).unwrap()["error"]["code"],
        serde_json::from_str::<Value>(&r1.2).unwrap()["error"]["code"]
    );

    // Another operator key's records are its own: the same key value runs afresh.
    let centre_key = create_centre_key(&srv.state, &[c]).await;
    let back = json!({"from_pool_id": to, "to_pool_id": from, "count": 1});
    let k = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &centre_key,
        "m-1",
        &back,
    )
    .await;
    assert_eq!((k.0, k.1), (StatusCode::OK, false), "{}", k.2);

    // A walk-in tapped twice is one booking.
    let walk = walkin_body(&session, 1, 1, 7001, "Ramesh Idempotent");
    let w1 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/walkins",
        &admin,
        "w-1",
        &walk,
    )
    .await;
    let w2 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/walkins",
        &admin,
        "w-1",
        &walk,
    )
    .await;
    assert_eq!(w1.0, StatusCode::CREATED, "{}", w1.2);
    assert_eq!((w2.0, w2.1, &w2.2), (StatusCode::CREATED, true, &w1.2));
    let booking: Value = serde_json::from_str(&w1.2).unwrap();
    assert_eq!(booking["name"], "Ramesh Idempotent");
    assert!(booking["id_masked"]
        .as_str()
        .is_some_and(|m| m.ends_with(&aadhaar(7001)[8..])));
    let bid = booking["booking_id"].as_u64().unwrap();
    let (_, day_list) = srv
        .get(
            &format!("/v1/admin/bookings?session_id={sid}&limit=500"),
            Some(&admin),
        )
        .await;
    let walkins = day_list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["name"] == "Ramesh Idempotent")
        .count();
    assert_eq!(walkins, 1, "{day_list}");
    // An administered dose answered twice is one dose record.
    let dose = json!({"vaccine": "COVISHIELD", "batch": "4121Z025"});
    let path = format!("/v1/admin/bookings/{bid}/administer");
    let a1 = keyed(&srv, Method::POST, &path, &admin, "a-1", &dose).await;
    let a2 = keyed(&srv, Method::POST, &path, &admin, "a-1", &dose).await;
    assert_eq!(a1.0, StatusCode::OK, "{}", a1.2);
    assert_eq!((a2.0, a2.1, &a2.2), (StatusCode::OK, true, &a1.2));

    // One audit record per applied write.
    let (_, audit) = srv.get("/v1/admin/audit?limit=500", Some(&admin)).await;
    let count = |action: &str| {
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .count()
    };
    assert_eq!(count("pool.move"), 2, "{audit}");
    assert_eq!(count("walkin.create"), 1);
    assert_eq!(count("booking.administer"), 1);

    // After a restart the answers are still there: the retry applies nothing.
    let (db, dir) = srv.stop().await;
    let srv = TestServer::start(db, Some(dir)).await;
    let m4 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "m-1",
        &mv,
    )
    .await;
    assert_eq!((m4.0, m4.1, &m4.2), (StatusCode::OK, true, &m1.2));
    let w3 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/walkins",
        &admin,
        "w-1",
        &walk,
    )
    .await;
    assert_eq!((w3.0, w3.1, &w3.2), (StatusCode::CREATED, true, &w1.2));
    let (_, after) = srv
        .get(&format!("/v1/admin/sessions/{sid}"), Some(&admin))
        .await;
    assert_eq!((capacity_of(&after, from), capacity_of(&after, to)), (4, 3));
    // A refusal is not kept across a restart (it changed nothing): the retry runs again.
    let r3 = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "m-2",
        &big,
    )
    .await;
    assert_eq!((r3.0, r3.1), (StatusCode::CONFLICT, false), "{}", r3.2);
    // A bad key is a 400 before anything runs.
    let bad = keyed(
        &srv,
        Method::POST,
        "/v1/admin/pools/move",
        &admin,
        "a b",
        &mv,
    )
    .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{}", bad.2);
    srv.finish().await;
}

#[tokio::test]
async fn a_session_cancel_waits_for_a_check_in_that_is_committing() {
    let srv = TestServer::embedded().await;
    let admin = srv.admin_key.clone();
    let st = &srv.state;
    let today = st.today();
    let c = create_centre(&srv, &admin, "Arera Colony").await["centre_id"]
        .as_u64()
        .unwrap();
    let session = create_session(&srv, &admin, session_body(c, today, "COVISHIELD")).await;
    let sid = SessionId(session["session_id"].as_u64().unwrap());
    let booking = BookingId(
        citizen_booking(
            &srv,
            "9876500201",
            401,
            sid.0,
            slot_id(&session, 0),
            Dose::One,
            today,
        )
        .await,
    );
    // A check-in decided, its commit not yet awaited.
    let check_in = st
        .inv
        .check_in(booking, &kataar_inventory::Scope::All, st.now())
        .unwrap();
    assert_eq!(st.inv.session_busy_bookings(sid), 1);

    let cancel = start_cancel(&srv, &admin, sid).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !cancel.is_finished(),
        "the cancel did not wait for the check-in"
    );

    // The check-in commits; then the cancel takes the booking with the session.
    let checked = commit(st, check_in).await.unwrap();
    assert_eq!(checked.status, BookingStatus::CheckedIn);
    let resp = cancel.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["bookings_cancelled"], 1, "{v}");
    let b = st
        .inv
        .booking(booking, &kataar_inventory::Scope::All)
        .unwrap();
    assert_eq!(b.status, BookingStatus::Cancelled);
    let view = st.inv.session(sid).unwrap();
    assert!(view.session.cancelled);
    assert_eq!(view.totals().booked, 0, "the place was not given back");
    assert_eq!(view.totals().checked_in, 0);
    srv.finish().await;
}
