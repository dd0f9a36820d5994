//! The CoWIN v2 compatibility API over real HTTP on a fresh PostgreSQL database: every path's
//! shape and JSON types (number vs string), date leniency, each error body, all-or-none group
//! booking, reschedule and cancel, the v1 and v2 views of the same data, CORS and
//! `Connection: close`, the admission refusal's shape, and a client's burst of 100 reads.

#![allow(clippy::unwrap_used)]

mod common;
use common::{aadhaar, TestServer};
use kataar_app::durable::commit;
use kataar_domain::{CentreId, Vaccine};
use kataar_inventory::{NewSession, NewSlot};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const UUID_LEN: usize = 36;

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == UUID_LEN && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
    })
}

fn is_ddmmyyyy(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%d-%m-%Y").is_ok() && s.len() == 10)
}

/// A raw request: (status, headers, body text).
async fn raw(
    srv: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = srv.http.request(method, format!("{}{}", srv.base, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// A POST with a JSON body sent without `Content-Type` (as 2021 scripts did), optional token.
async fn post_bare(
    srv: &TestServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let auth = token.map(|t| format!("bearer {t}"));
    let mut headers = vec![];
    if let Some(a) = auth.as_deref() {
        headers.push(("authorization", a));
    }
    let (s, _, text) = raw(srv, Method::POST, path, &headers, Some(&body.to_string())).await;
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get_v2(srv: &TestServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    srv.get(path, token).await
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Logs in through `generateMobileOTP` / `validateMobileOtp`; returns the token.
async fn v2_login(srv: &TestServer, mobile: &str) -> String {
    let (s, v) = post_bare(
        srv,
        "/api/v2/auth/generateMobileOTP",
        None,
        json!({"mobile": mobile, "secret": "U2FsdGVkX1+anything"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(is_uuid(&v["txnId"]), "{v}");
    let (txn, otp) = srv.otp_for(mobile).await;
    assert_eq!(v["txnId"], txn);
    let (s, v) = post_bare(
        srv,
        "/api/v2/auth/validateMobileOtp",
        None,
        json!({"otp": sha256_hex(&otp), "txnId": txn}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// Registers a beneficiary through v2; returns its reference id.
async fn v2_register(srv: &TestServer, token: &str, name: &str, seed: u64) -> String {
    let (s, v) = post_bare(
        srv,
        "/api/v2/registration/beneficiary/new",
        Some(token),
        json!({"name": name, "birth_year": "1985", "gender_id": 2.0, "photo_id_type": 1,
               "photo_id_number": aadhaar(seed), "comorbidity_ind": "N", "consent_version": "V1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["beneficiary_reference_id"].as_str().unwrap().to_string();
    assert_eq!(r.len(), 14);
    assert!(r.bytes().all(|b| b.is_ascii_digit()));
    r
}

/// A one-slot 18+ COVISHIELD session at the first demo centre of district 312, `days` from
/// today, with `capacity` online places per dose; returns (v2 session id, slot text, v1 ids).
async fn session(srv: &TestServer, days: u64, capacity: u32) -> (String, String, u64, u64) {
    let centre = srv
        .state
        .inv
        .centres()
        .into_iter()
        .find(|c| c.district_id.0 == 312)
        .unwrap();
    let p = srv
        .state
        .inv
        .create_session(NewSession {
            centre_id: CentreId(centre.centre_id.0),
            date: srv.state.today() + chrono::Days::new(days),
            vaccine: Vaccine::Covishield,
            min_age: 18,
            max_age: None,
            opens_at: None,
            slots: vec![NewSlot {
                start: "14:00".into(),
                end: "16:00".into(),
                dose1_online: capacity,
                dose1_walkin: 0,
                dose2_online: capacity,
                dose2_walkin: 0,
            }],
        })
        .unwrap();
    let s = commit(&srv.state, p).await.unwrap();
    let view = srv.state.inv.session(s.session_id).unwrap();
    (
        kataar_app::compat::wire::uuid_of(kataar_app::compat::wire::SESSION_TAG, s.session_id.0),
        "02:00PM-04:00PM".to_string(),
        s.session_id.0,
        view.slots[0].slot.slot_id.0,
    )
}

/// Online dose-1 places left in a v1 slot, from v1's availability.
async fn v1_available(srv: &TestServer, session: u64, slot: u64) -> u64 {
    let (s, v) = srv
        .get("/v1/availability?district_id=312&days=14", None)
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
    panic!("session {session} not in v1 availability");
}

fn error_code(v: &Value) -> &str {
    v["errorCode"].as_str().unwrap_or("")
}

#[tokio::test]
async fn reads_answer_in_cowin_shapes_and_types() {
    let srv = TestServer::postgres().await;

    // States: ordered by name, ttl 24, Hindi *_l on request.
    let (s, h, text) = raw(
        &srv,
        Method::GET,
        "/api/v2/admin/location/states",
        &[("accept", "text/html")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], "*");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ttl"], 24);
    let states = v["states"].as_array().unwrap();
    assert_eq!(states.len(), 37);
    let names: Vec<&str> = states
        .iter()
        .map(|s| s["state_name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(states[0]["state_id"].is_u64());
    assert_eq!(states[0]["state_name_l"], states[0]["state_name"]);
    let (_, _, text) = raw(
        &srv,
        Method::GET,
        "/api/v2/admin/location/states",
        &[("accept-language", "hi_IN")],
        None,
    )
    .await;
    let hi: Value = serde_json::from_str(&text).unwrap();
    let mp = hi["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state_id"] == 20)
        .unwrap()
        .clone();
    assert_eq!(mp["state_name"], "Madhya Pradesh");
    assert_eq!(mp["state_name_l"], "मध्य प्रदेश");

    // Districts: any numeric id answers 200; ordered by name.
    for id in 1..=39 {
        let (s, v) = get_v2(
            &srv,
            &format!("/api/v2/admin/location/districts/{id}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{id}: {v}");
        assert_eq!(v["ttl"], 24);
        assert!(v["districts"].is_array());
    }
    let (_, v) = get_v2(&srv, "/api/v2/admin/location/districts/20", None).await;
    let names: Vec<&str> = v["districts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["district_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Bhopal", "Gwalior", "Indore", "Jabalpur", "Rajgarh"]
    );
    assert!(v["districts"][0]["district_id"].is_u64());
    let (s, v) = get_v2(&srv, "/api/v2/admin/location/districts/abc", None).await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "APPOIN0011"));

    // Genders and ID types.
    let (_, v) = get_v2(&srv, "/api/v2/registration/beneficiary/genders", None).await;
    assert_eq!(
        v["genders"],
        json!([
        {"id": 1, "gender": "Male", "gender_l": "Male"},
        {"id": 2, "gender": "Female", "gender_l": "Female"},
        {"id": 3, "gender": "Others", "gender_l": "Others"}])
    );
    assert_eq!(v["ttl"], 24);
    let (_, _, text) = raw(
        &srv,
        Method::GET,
        "/api/v2/registration/beneficiary/idTypes",
        &[("accept-language", "hi")],
        None,
    )
    .await;
    let v: Value = serde_json::from_str(&text).unwrap();
    let types = v["types"].as_array().unwrap();
    assert_eq!(types.len(), 7);
    assert_eq!(
        types[0],
        json!({"id": 1, "type": "Aadhaar Card", "type_l": "आधार कार्ड"})
    );

    // calendarByDistrict: 7 days, types as 2021 clients read them.
    let today = srv.state.today();
    let ddmmyyyy = today.format("%d-%m-%Y").to_string();
    let (s, cal) = get_v2(&srv, &format!("/api/v2/appointment/sessions/public/calendarByDistrict?district_id=312&date={ddmmyyyy}"), None).await;
    assert_eq!(s, StatusCode::OK, "{cal}");
    let centers = cal["centers"].as_array().unwrap();
    assert!(!centers.is_empty());
    let mut saw_paid = false;
    for c in centers {
        assert!(c["center_id"].is_u64() && c["pincode"].is_u64(), "{c}");
        assert!(c["lat"].is_f64() || c["lat"].is_u64());
        for k in [
            "name",
            "address",
            "state_name",
            "district_name",
            "block_name",
            "from",
            "to",
        ] {
            assert!(c[k].is_string(), "{k} in {c}");
        }
        assert_eq!(c["district_name"], "Bhopal");
        assert!(c["fee_type"] == "Free" || c["fee_type"] == "Paid");
        if c["fee_type"] == "Paid" {
            saw_paid = true;
            assert!(c["vaccine_fees"][0]["fee"].is_string(), "{c}");
        } else {
            assert!(c.get("vaccine_fees").is_none());
        }
        let sessions = c["sessions"].as_array().unwrap();
        assert!(!sessions.is_empty());
        for se in sessions {
            assert!(is_uuid(&se["session_id"]), "{se}");
            assert!(is_ddmmyyyy(&se["date"]), "{se}");
            let d = chrono::NaiveDate::parse_from_str(se["date"].as_str().unwrap(), "%d-%m-%Y")
                .unwrap();
            assert!(d >= today && d < today + chrono::Days::new(7));
            for k in [
                "available_capacity",
                "available_capacity_dose1",
                "available_capacity_dose2",
                "min_age_limit",
            ] {
                assert!(se[k].is_u64(), "{k} in {se}");
            }
            assert_eq!(
                se["available_capacity"].as_u64().unwrap(),
                se["available_capacity_dose1"].as_u64().unwrap()
                    + se["available_capacity_dose2"].as_u64().unwrap()
            );
            assert!(se["allow_all_age"].is_boolean());
            if let Some(max) = se.get("max_age_limit") {
                assert!(max.is_u64());
            }
            let slot = se["slots"][0].as_str().unwrap();
            assert_eq!(slot.len(), "09:00AM-11:00AM".len(), "{slot}");
            assert!(slot.contains("AM") || slot.contains("PM"));
        }
    }
    assert!(
        saw_paid || centers.len() == 1,
        "the demo has a paid centre in Bhopal"
    );

    // Date leniency: every accepted spelling gives the same answer; no date is today.
    let d = today;
    let forms = [
        d.format("%d-%m-%Y").to_string(),
        d.format("%d-%m-%y").to_string(),
        d.format("%-d-%-m-%Y").to_string(),
        d.format("%-d-%-m-%y").to_string(),
        d.format("%d/%m/%Y").to_string(),
    ];
    for f in &forms {
        let (s, v) = get_v2(
            &srv,
            &format!(
                "/api/v2/appointment/sessions/public/calendarByDistrict?district_id=312&date={f}"
            ),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{f}");
        assert_eq!(v, cal, "{f}");
    }
    let (_, v) = get_v2(
        &srv,
        "/api/v2/appointment/sessions/public/calendarByDistrict?district_id=312",
        None,
    )
    .await;
    assert_eq!(v, cal);
    let (s, v) = get_v2(
        &srv,
        "/api/v2/appointment/sessions/public/calendarByDistrict?district_id=312&date=31-02-2021",
        None,
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "APPOIN0011"),
        "{v}"
    );

    // A vaccine filter never leaves an empty `sessions`; an unknown vaccine lists nothing.
    let (_, v) = get_v2(&srv, &format!("/api/v2/appointment/sessions/public/calendarByDistrict?district_id=312&date={ddmmyyyy}&vaccine=COVAXIN"), None).await;
    for c in v["centers"].as_array().unwrap() {
        let sessions = c["sessions"].as_array().unwrap();
        assert!(!sessions.is_empty());
        assert!(sessions.iter().all(|s| s["vaccine"] == "COVAXIN"));
    }
    let (_, v) = get_v2(
        &srv,
        "/api/v2/appointment/sessions/public/calendarByDistrict?district_id=312&vaccine=NOSUCH",
        None,
    )
    .await;
    assert_eq!(v, json!({"centers": []}));
    let (_, v) = get_v2(
        &srv,
        "/api/v2/appointment/sessions/public/calendarByDistrict?district_id=999",
        None,
    )
    .await;
    assert_eq!(v, json!({"centers": []}));

    // calendarByPin, calendarByCenter.
    let (s, v) = get_v2(
        &srv,
        "/api/v2/appointment/sessions/public/calendarByPin?pincode=462001",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["centers"][0]["pincode"], 462001);
    for bad in ["46200", "46200x", ""] {
        let (s, v) = get_v2(
            &srv,
            &format!("/api/v2/appointment/sessions/public/calendarByPin?pincode={bad}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(
            v,
            json!({"errorCode": "APPOIN0018", "error": "Invalid Pincode"})
        );
    }
    let center = cal["centers"][0]["center_id"].as_u64().unwrap();
    let (_, v) = get_v2(
        &srv,
        &format!("/api/v2/appointment/sessions/public/calendarByCenter?center_id={center}"),
        None,
    )
    .await;
    assert!(v["centers"].is_object(), "{v}");
    assert_eq!(v["centers"]["center_id"], center);
    let (s, v) = get_v2(
        &srv,
        "/api/v2/appointment/sessions/public/calendarByCenter?center_id=987654",
        None,
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));

    // findByDistrict / findByPin: one day, flat, fee a string.
    let (s, v) = get_v2(
        &srv,
        &format!(
            "/api/v2/appointment/sessions/public/findByDistrict?district_id=312&date={ddmmyyyy}"
        ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let flat = v["sessions"].as_array().unwrap();
    assert!(!flat.is_empty());
    for e in flat {
        assert_eq!(e["date"], ddmmyyyy.as_str());
        assert!(
            e["fee"].is_string() && e["center_id"].is_u64() && is_uuid(&e["session_id"]),
            "{e}"
        );
        assert!(e["pincode"].is_u64() && e["available_capacity"].is_u64() && e["slots"].is_array());
    }
    let (s, v) = get_v2(
        &srv,
        "/api/v2/appointment/sessions/public/findByPin?pincode=abc",
        None,
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"errorCode": "APPOIN0018", "error": "Invalid Pincode"})
        )
    );
    let (s, v) = get_v2(
        &srv,
        &format!("/api/v2/appointment/sessions/public/findByPin?pincode=462001&date={ddmmyyyy}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!v["sessions"].as_array().unwrap().is_empty());

    // findByLatLong: nearest first; pincode, lat, long strings.
    let (s, v) = get_v2(
        &srv,
        "/api/v2/appointment/centers/public/findByLatLong?lat=23.25&long=77.41",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let c0 = &v["centers"][0];
    assert_eq!(c0["district_name"], "Bhopal", "{v}");
    for k in [
        "pincode",
        "lat",
        "long",
        "name",
        "location",
        "state_name",
        "block_name",
    ] {
        assert!(c0[k].is_string(), "{k} in {c0}");
    }
    assert!(c0["center_id"].is_u64());
    let (s, v) = get_v2(
        &srv,
        "/api/v2/appointment/centers/public/findByLatLong?lat=x&long=1",
        None,
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "APPOIN0011"));

    // The token-only twins: plain-text 401 without a token.
    for path in [
        "/api/v2/appointment/sessions/calendarByDistrict?district_id=312",
        "/api/v2/appointment/sessions/findByPin?pincode=462001",
        "/api/v2/appointment/centers/findByLatLong?lat=1&long=1",
        "/api/v2/appointment/beneficiaries",
    ] {
        let (s, h, text) = raw(
            &srv,
            Method::GET,
            path,
            &[("authorization", "Bearer not-a-token")],
            None,
        )
        .await;
        assert_eq!(
            (s, text.as_str()),
            (StatusCode::UNAUTHORIZED, "Unauthenticated access!"),
            "{path}"
        );
        assert!(h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
    }

    // CORS preflight.
    let (s, h, _) = raw(
        &srv,
        Method::OPTIONS,
        "/api/v2/appointment/schedule",
        &[
            ("origin", "https://example.org"),
            ("access-control-request-method", "POST"),
        ],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    srv.finish().await;
}

#[tokio::test]
async fn a_v2_client_logs_in_registers_books_as_a_group_reschedules_and_cancels() {
    let srv = TestServer::postgres().await;
    let mobile = "9812345670";

    // OTP pairs: errors first.
    let (s, v) = post_bare(
        &srv,
        "/api/v2/auth/validateMobileOtp",
        None,
        json!({"txnId": "x"}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "USRAUT0012"));
    let (s, v) = post_bare(
        &srv,
        "/api/v2/auth/generateMobileOTP",
        None,
        json!({"mobile": "12345"}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "USRAUT0001"));
    let (s, v) = post_bare(
        &srv,
        "/api/v2/auth/public/generateOTP",
        None,
        json!({"mobile": mobile}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (txn, otp) = srv.otp_for(mobile).await;
    let (s, v) = post_bare(
        &srv,
        "/api/v2/auth/public/confirmOTP",
        None,
        json!({"otp": sha256_hex("000000x"), "txnId": txn}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"errorCode": "USRAUT0014", "error": "Invalid OTP"})
    );
    // The partner pair says whether the account is new.
    let (s, v) = post_bare(
        &srv,
        "/api/v2/auth/confirmOTP",
        None,
        json!({"otp": sha256_hex(&otp), "txnId": txn}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["isNewAccount"], "Y");
    let partner_token = v["token"].as_str().unwrap().to_string();
    // Clients decode the JWT unverified to read `exp`.
    let payload = partner_token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900,
        "{claims}"
    );

    // A v2 token works on v1 (one citizen identity), and lower-case `bearer` is accepted.
    let (s, me) = srv.get("/v1/me", Some(&partner_token)).await;
    assert_eq!(s, StatusCode::OK);
    let token = partner_token.clone();
    assert!(me["account_id"].is_u64());

    // Registration: v1's rules with v2 codes.
    let (s, v) = post_bare(&srv, "/api/v2/registration/beneficiary/new", Some(&token),
        json!({"name": "Asha", "birth_year": "1985", "gender_id": 2, "photo_id_type": 1, "photo_id_number": "123456789012"})).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "BENREG0001"),
        "{v}"
    );
    assert!(
        !v.to_string().contains("123456789012"),
        "the ID number is never echoed"
    );
    let (s, v) = post_bare(&srv, "/api/v2/registration/beneficiary/new", Some(&token),
        json!({"name": "Asha", "birth_year": "1985", "gender_id": 7, "photo_id_type": 1, "photo_id_number": aadhaar(11)})).await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "BENREG0001"));
    let r1 = v2_register(&srv, &token, "Asha Devi", 11).await;
    let r2 = v2_register(&srv, &token, "Ravi Kumar", 12).await;
    let r3 = v2_register(&srv, &token, "Meena Kumari", 13).await;
    let (s, v) = post_bare(&srv, "/api/v2/registration/beneficiary/new", Some(&token),
        json!({"name": "Asha again", "birth_year": 1985.0, "gender_id": "2", "photo_id_type": 1.0, "photo_id_number": aadhaar(11)})).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::CONFLICT, "BENREG0003"),
        "{v}"
    );
    // v1 sees the same beneficiaries.
    let (_, v1) = srv.get("/v1/beneficiaries", Some(&token)).await;
    assert_eq!(v1["beneficiaries"].as_array().unwrap().len(), 3);

    // The beneficiaries list, in v2's shape.
    let (s, v) = get_v2(&srv, "/api/v2/appointment/beneficiaries", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    let b0 = &v["beneficiaries"][0];
    assert_eq!(b0["beneficiary_reference_id"], r1.as_str());
    assert_eq!(b0["birth_year"], "1985");
    assert_eq!(b0["gender"], "Female");
    assert_eq!(b0["mobile_number"], "******5670");
    assert_eq!(b0["photo_id_type"], "Aadhaar Card");
    let shown = b0["photo_id_number"].as_str().unwrap();
    assert!(
        shown.starts_with("********") && shown.len() == 12,
        "{shown}"
    );
    assert_eq!(b0["vaccination_status"], "Not Vaccinated");
    assert_eq!(
        (b0["vaccine"].as_str(), b0["dose1_date"].as_str()),
        (Some(""), Some(""))
    );
    assert_eq!(b0["appointments"], json!([]));

    // All or none: three people into a slot with two places: nobody is booked.
    let (sid, slot, v1_session, v1_slot) = session(&srv, 2, 2).await;
    assert_eq!(v1_available(&srv, v1_session, v1_slot).await, 2);
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/schedule",
        Some(&token),
        json!({"beneficiaries": [r1, r2, r3], "dose": 1, "session_id": sid, "slot": slot}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v,
        json!({"errorCode": "APPOIN0040", "error": "This vaccination center is completely booked for the selected date. Please try another date or vaccination center."})
    );
    assert_eq!(v1_available(&srv, v1_session, v1_slot).await, 2);
    let (_, list) = srv.get("/v1/bookings", Some(&token)).await;
    assert_eq!(list["bookings"], json!([]));

    // Bad session, bad slot, bad beneficiary, bad dose.
    for (body, code) in [
        (
            json!({"beneficiaries": [r1], "dose": 1, "session_id": "5e5510a0-0000-8000-8000-00000000ffff", "slot": slot}),
            "APPOIN0015",
        ),
        (
            json!({"beneficiaries": [r1], "dose": 1, "session_id": "nonsense", "slot": slot}),
            "APPOIN0015",
        ),
        (
            json!({"beneficiaries": [r1], "dose": 1, "session_id": sid, "slot": "09:00AM-11:00AM"}),
            "APPOIN0015",
        ),
        (
            json!({"beneficiaries": ["10000000999999"], "dose": 1, "session_id": sid, "slot": slot}),
            "APPOIN0017",
        ),
        (
            json!({"beneficiaries": [r1], "dose": 3, "session_id": sid, "slot": slot}),
            "APPOIN0011",
        ),
        (
            json!({"beneficiaries": [], "dose": 1, "session_id": sid, "slot": slot}),
            "APPOIN0011",
        ),
    ] {
        let (s, v) = post_bare(
            &srv,
            "/api/v2/appointment/schedule",
            Some(&token),
            body.clone(),
        )
        .await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, code),
            "{body} → {v}"
        );
    }

    // Two fit: one confirmation number, both booked, visible in v1, counted in v1's pool.
    let (s, v) = post_bare(&srv, "/api/v2/appointment/schedule", Some(&token),
        json!({"beneficiaries": [r1, r2], "dose": "1", "session_id": sid, "slot": "02:00pm-04:00pm", "center_id": 0})).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "APPOIN0015"),
        "a centre that is not the session's"
    );
    let (s, v) = post_bare(&srv, "/api/v2/appointment/schedule", Some(&token),
        json!({"beneficiaries": [r1, r2], "dose": "1", "session_id": sid, "slot": "02:00pm-04:00pm"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let confirmation = v["appointment_confirmation_no"].clone();
    assert!(is_uuid(&confirmation));
    assert_eq!(v1_available(&srv, v1_session, v1_slot).await, 0);
    let (_, list) = srv.get("/v1/bookings", Some(&token)).await;
    let bookings = list["bookings"].as_array().unwrap();
    assert_eq!(bookings.len(), 2);
    assert!(bookings
        .iter()
        .all(|b| b["session_id"] == v1_session && b["status"] == "booked" && b["dose"] == 1));
    // The third person now finds the slot full (dose as a float); the first is already booked.
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/schedule",
        Some(&token),
        json!({"beneficiaries": [r3], "dose": 1.0, "session_id": sid, "slot": slot}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "APPOIN0040"));
    let (sid2, slot2, v1_session2, v1_slot2) = session(&srv, 3, 5).await;
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/schedule",
        Some(&token),
        json!({"beneficiaries": [r3, r1], "dose": 1, "session_id": sid2, "slot": slot2}),
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::CONFLICT, "APPOIN0022"),
        "{v}"
    );
    assert_eq!(
        v1_available(&srv, v1_session2, v1_slot2).await,
        5,
        "the group took nothing"
    );

    // The appointments in v2's list.
    let (_, v) = get_v2(&srv, "/api/v2/appointment/beneficiaries", Some(&token)).await;
    let a = &v["beneficiaries"][0]["appointments"][0];
    assert_eq!(a["appointment_id"], confirmation);
    assert_eq!(a["session_id"], sid.as_str());
    assert_eq!(a["slot"], "02:00PM-04:00PM");
    assert_eq!(a["dose"], 1);
    assert!(a["center_id"].is_u64() && is_ddmmyyyy(&a["date"]));
    assert_eq!(
        (a["from"].as_str(), a["to"].as_str()),
        (Some("14:00:00"), Some("16:00:00"))
    );
    let second = v["beneficiaries"][1]["appointments"][0]["appointment_id"].clone();

    // Reschedule: the same appointment id, moved in v1 too, the old place back in its pool.
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/reschedule",
        Some(&token),
        json!({"appointment_id": confirmation, "session_id": sid2, "slot": slot2}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["appointment_confirmation_no"], confirmation);
    assert_eq!(v1_available(&srv, v1_session, v1_slot).await, 1);
    assert_eq!(v1_available(&srv, v1_session2, v1_slot2).await, 4);
    let (s, v) = post_bare(&srv, "/api/v2/appointment/reschedule", Some(&token),
        json!({"appointment_id": "a9901a00-0000-8000-8000-00000000ffff", "session_id": sid2, "slot": slot2})).await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "APPOIN0016"));

    // Cancel: 204, seen as cancelled in v1, its place back.
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/cancel",
        Some(&token),
        json!({"appointment_id": second, "beneficiariesToCancel": [r3]}),
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "APPOIN0017"),
        "r3 has no booking in that appointment"
    );
    let (s, _, text) = raw(
        &srv,
        Method::POST,
        "/api/v2/appointment/cancel",
        &[("authorization", &format!("Bearer {token}"))],
        Some(&json!({"appointment_id": second, "beneficiariesToCancel": [r2]}).to_string()),
    )
    .await;
    assert_eq!((s, text.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(v1_available(&srv, v1_session, v1_slot).await, 2);
    let (_, list) = srv.get("/v1/bookings", Some(&token)).await;
    let statuses: Vec<&str> = list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["booked", "cancelled"]);
    let (_, v) = get_v2(&srv, "/api/v2/appointment/beneficiaries", Some(&token)).await;
    assert_eq!(v["beneficiaries"][1]["appointments"], json!([]));

    // Delete: in use is 409; a beneficiary with nothing is removed.
    let (s, v) = post_bare(
        &srv,
        "/api/v2/registration/beneficiary/delete",
        Some(&token),
        json!({"beneficiary_reference_id": r1}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "BENREG0005"));
    let (s, _) = post_bare(
        &srv,
        "/api/v2/registration/beneficiary/delete",
        Some(&token),
        json!({"beneficiary_reference_id": r3}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = post_bare(
        &srv,
        "/api/v2/registration/beneficiary/delete",
        Some(&token),
        json!({"beneficiary_reference_id": r3}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "BENREG0006"));

    // Another account cannot see or touch this one's appointments.
    let other = srv.login("9812345671").await;
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/cancel",
        Some(&other),
        json!({"appointment_id": confirmation}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "APPOIN0016"));

    // A booking made through v1 is an appointment in v2.
    let (_, v1) = srv.get("/v1/beneficiaries", Some(&token)).await;
    assert_eq!(v1["beneficiaries"].as_array().unwrap().len(), 2);
    srv.finish().await;
}

#[tokio::test]
async fn captcha_is_required_only_when_switched_on() {
    let srv = TestServer::postgres_with(|c| c.compat_captcha_required = true).await;
    let token = v2_login(&srv, "9812300001").await;
    let r = v2_register(&srv, &token, "Kiran", 21).await;
    let (sid, slot, _, _) = session(&srv, 1, 3).await;
    let (s, _, text) = raw(
        &srv,
        Method::POST,
        "/api/v2/auth/getRecaptcha",
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let svg = v["captcha"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<path"));
    let book = json!({"beneficiaries": [r], "dose": 1, "session_id": sid, "slot": slot, "captcha": "WRONG"});
    let (s, v) = post_bare(&srv, "/api/v2/appointment/schedule", Some(&token), book).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"errorCode": "APPOIN0044", "error": "Invalid Captcha"})
    );
    // The answer of the captcha just served is known only as a hash; put a known one in its
    // place through the same store the handler reads, then answer it in lower case.
    let (_, me) = srv.get("/v1/me", Some(&token)).await;
    let account = kataar_domain::AccountId(me["account_id"].as_u64().unwrap());
    srv.state
        .compat
        .captchas
        .remember(account, "AB3CD", std::time::Instant::now());
    let book = json!({"beneficiaries": [r], "dose": 1, "session_id": sid, "slot": slot, "captcha": "ab3cd"});
    let (s, v) = post_bare(&srv, "/api/v2/appointment/schedule", Some(&token), book).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    srv.finish().await;
}

#[tokio::test]
async fn captcha_is_not_needed_by_default() {
    let srv = TestServer::postgres().await;
    let token = v2_login(&srv, "9812300002").await;
    let r = v2_register(&srv, &token, "Kiran", 22).await;
    let (sid, slot, _, _) = session(&srv, 1, 3).await;
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/schedule",
        Some(&token),
        json!({"beneficiaries": [r], "dose": 1, "session_id": sid, "slot": slot}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    srv.finish().await;
}

#[tokio::test]
async fn connection_close_is_honoured_and_echoed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::postgres().await;
    let addr = srv.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /api/v2/admin/location/states HTTP/1.1\r\nHost: kataar\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // read_to_end returns only because the server closes the connection.
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    srv.finish().await;
}

#[tokio::test]
async fn a_clients_burst_of_100_reads_is_served_at_the_default_limits() {
    // The harness raises the per-address limits; put the documented defaults back.
    let srv = TestServer::postgres_with(|c| {
        c.admission.remove("client_rate_per_s");
        c.admission.remove("client_burst");
    })
    .await;
    let mut ok = 0;
    for i in 0..100 {
        let path = if i % 2 == 0 {
            "/api/v2/appointment/sessions/public/calendarByDistrict?district_id=312"
        } else {
            "/api/v2/admin/location/districts/20"
        };
        let (s, v) = get_v2(&srv, path, None).await;
        assert_eq!(s, StatusCode::OK, "read {i}: {v}");
        ok += 1;
    }
    assert_eq!(ok, 100);
    srv.finish().await;
}

#[tokio::test]
async fn over_the_limit_a_v2_client_gets_429_too_many_requests_never_403() {
    let srv = TestServer::postgres_with(|c| {
        c.admission
            .insert("client_rate_per_s".into(), toml::Value::Float(0.01));
        c.admission
            .insert("client_burst".into(), toml::Value::Integer(3));
    })
    .await;
    let mut refused = None;
    for _ in 0..10 {
        let (s, h, text) = raw(
            &srv,
            Method::GET,
            "/api/v2/admin/location/states",
            &[],
            None,
        )
        .await;
        assert_ne!(s, StatusCode::FORBIDDEN);
        if s == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((h, text));
            break;
        }
    }
    let (h, text) = refused.expect("the fourth read is over a burst of 3");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"error": "Too Many Requests"})
    );
    assert!(h["retry-after"].to_str().unwrap().parse::<u32>().unwrap() >= 1);
    assert_eq!(h["access-control-allow-origin"], "*");
    srv.finish().await;
}

/// Every v2 path is in `/openapi.json`.
#[tokio::test]
async fn openapi_describes_the_v2_paths() {
    let srv = TestServer::postgres().await;
    let (s, doc) = srv.get("/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for path in kataar_app::compat::openapi::paths() {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(
        doc["paths"]["/v1/bookings"].is_object(),
        "v1 is still there"
    );
    srv.finish().await;
}

/// The JSON type of a value, as clients tell them apart.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `ours` has the recorded answer's keys with the same JSON types, recursively
/// (every element of our arrays against the recorded first element), and no key the recording
/// lacks except `optional` ones.
fn same_shape(recorded: &Value, ours: &Value, optional: &[String], at: &str) -> Result<(), String> {
    if kind(recorded) != kind(ours) {
        return Err(format!(
            "{at}: recorded {} but answered {} ({ours})",
            kind(recorded),
            kind(ours)
        ));
    }
    match (recorded, ours) {
        (Value::Object(r), Value::Object(o)) => {
            for (k, rv) in r {
                match o.get(k) {
                    Some(ov) => same_shape(rv, ov, optional, &format!("{at}.{k}"))?,
                    None if optional.contains(k) => {}
                    None => return Err(format!("{at}.{k}: missing")),
                }
            }
            for k in o.keys() {
                if !r.contains_key(k) && !optional.contains(k) {
                    return Err(format!("{at}.{k}: not in the recording"));
                }
            }
            Ok(())
        }
        (Value::Array(r), Value::Array(o)) => {
            if let Some(first) = r.first() {
                for (i, ov) in o.iter().enumerate() {
                    same_shape(first, ov, optional, &format!("{at}[{i}]"))?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[test]
fn the_shape_comparison_can_fail() {
    let rec = json!({"centers": [{"pincode": 462001, "slots": ["x"]}]});
    let none: Vec<String> = Vec::new();
    assert!(same_shape(
        &rec,
        &json!({"centers": [{"pincode": 462001, "slots": []}]}),
        &none,
        "$"
    )
    .is_ok());
    assert!(same_shape(
        &rec,
        &json!({"centers": [{"pincode": "462001", "slots": []}]}),
        &none,
        "$"
    )
    .is_err());
    assert!(same_shape(&rec, &json!({"centers": [{"slots": []}]}), &none, "$").is_err());
    assert!(same_shape(
        &rec,
        &json!({"centers": [{"pincode": 1, "slots": [], "x": 1}]}),
        &none,
        "$"
    )
    .is_err());
    assert!(same_shape(
        &rec,
        &json!({"centers": [{"pincode": 1, "slots": [1]}]}),
        &none,
        "$"
    )
    .is_err());
}

#[tokio::test]
async fn recorded_2021_exchanges_replay_with_the_same_keys_and_types() {
    let srv = TestServer::postgres().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cowin");
    let today = srv.state.today().format("%d-%m-%Y").to_string();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "{files:?}");
    for (n, file) in files.iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let mobile = format!("97000{n:05}");
        let fill = |s: &str| s.replace("{today}", &today).replace("{mobile}", &mobile);
        let method = Method::from_bytes(fx["method"].as_str().unwrap().as_bytes()).unwrap();
        let path = fill(fx["path"].as_str().unwrap());
        let headers: Vec<(String, String)> = fx["headers"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let hdrs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = fx.get("body").map(|b| fill(&b.to_string()));
        let (status, _, text) = raw(&srv, method, &path, &hdrs, body.as_deref()).await;
        assert_eq!(
            status.as_u16(),
            fx["status"].as_u64().unwrap() as u16,
            "{name}: {text}"
        );
        let ours = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        let recorded = &fx["response"];
        if recorded.is_string() {
            assert_eq!(&ours, recorded, "{name}");
            continue;
        }
        let optional: Vec<String> = fx["optional"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        if let Err(e) = same_shape(recorded, &ours, &optional, "$") {
            panic!("{name}: {e}");
        }
        // Error bodies carry the recorded code.
        if let Some(code) = recorded.get("errorCode") {
            assert_eq!(&ours["errorCode"], code, "{name}");
        }
        // Recorded arrays with an element are answered with at least one.
        for key in [
            "centers",
            "sessions",
            "states",
            "districts",
            "genders",
            "types",
        ] {
            if recorded[key].as_array().is_some_and(|a| !a.is_empty()) {
                assert!(
                    !ours[key].as_array().unwrap().is_empty(),
                    "{name}: {key} empty"
                );
            }
        }
    }
    srv.finish().await;
}

/// v2 groups and v1 single bookings race for one slot: the two views share the pool, nothing
/// is overbooked (O), every acknowledged booking is in the database (L), a person holds at
/// most one live booking per dose across both APIs (D), and each group is all or none.
#[tokio::test]
async fn v1_and_v2_share_pools_and_keep_o_l_d() {
    let srv = std::sync::Arc::new(TestServer::postgres().await);
    let capacity = 5u32;
    let (sid, slot, v1_session, v1_slot) = session(&srv, 4, capacity).await;
    // Four v2 accounts with two beneficiaries each, four v1 accounts with one.
    let mut v2_accounts = Vec::new();
    for i in 0..4u64 {
        let token = v2_login(&srv, &format!("96000000{i:02}")).await;
        let a = v2_register(&srv, &token, "Group A", 100 + 2 * i).await;
        let b = v2_register(&srv, &token, "Group B", 101 + 2 * i).await;
        v2_accounts.push((token, vec![a, b]));
    }
    let mut v1_accounts = Vec::new();
    for i in 0..4u64 {
        let token = srv.login(&format!("95000000{i:02}")).await;
        let (s, v) = srv
            .post(
                "/v1/beneficiaries",
                Some(&token),
                json!({"name": "Single", "birth_year": 1980,
                "gender": "male", "id_type": "aadhaar", "id_number": aadhaar(200 + i)}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v1_accounts.push((token, v["beneficiary_id"].as_u64().unwrap()));
    }
    let mut tasks = Vec::new();
    for (token, refs) in v2_accounts.clone() {
        let srv = srv.clone();
        let (sid, slot) = (sid.clone(), slot.clone());
        tasks.push(tokio::spawn(async move {
            let (s, v) = post_bare(
                &srv,
                "/api/v2/appointment/schedule",
                Some(&token),
                json!({"beneficiaries": refs, "dose": 1, "session_id": sid, "slot": slot}),
            )
            .await;
            assert!(
                s == StatusCode::OK || error_code(&v) == "APPOIN0040",
                "{s} {v}"
            );
            if s == StatusCode::OK {
                2u64
            } else {
                0
            }
        }));
    }
    for (i, (token, b)) in v1_accounts.clone().into_iter().enumerate() {
        let srv = srv.clone();
        tasks.push(tokio::spawn(async move {
            let resp = srv.http.post(format!("{}/v1/bookings", srv.base))
                .bearer_auth(&token)
                .header("idempotency-key", format!("race-{i}"))
                .json(&json!({"beneficiary_id": b, "session_id": v1_session, "slot_id": v1_slot, "dose": 1}))
                .send().await.unwrap();
            let s = resp.status();
            let v: Value = resp.json().await.unwrap();
            assert!(s == StatusCode::CREATED || v["error"]["code"] == "pool_full", "{s} {v}");
            u64::from(s == StatusCode::CREATED)
        }));
    }
    let mut acknowledged = 0;
    for t in tasks {
        acknowledged += t.await.unwrap();
    }
    // O: nothing over capacity, and the pool is used up (12 wanted 5).
    let left = v1_available(&srv, v1_session, v1_slot).await;
    assert_eq!(acknowledged + left, u64::from(capacity));
    assert!(acknowledged <= u64::from(capacity));
    // All or none per group.
    for (token, _) in &v2_accounts {
        let (_, list) = srv.get("/v1/bookings", Some(token)).await;
        let n = list["bookings"].as_array().unwrap().len();
        assert!(n == 0 || n == 2, "a group got {n}");
    }
    // L: every acknowledged booking is a row in PostgreSQL.
    let url = srv.database_url.clone().unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FROM bookings WHERE session_id = $1 AND status = 'booked'",
            &[&i64::try_from(v1_session).unwrap()],
        )
        .await
        .unwrap();
    let in_db: i64 = row.get(0);
    assert_eq!(u64::try_from(in_db).unwrap(), acknowledged);
    // D across the APIs: a person booked through v2 cannot book the same dose through v1,
    // and one booked through v1 cannot book it again through v2.
    let token = v2_login(&srv, "9400000001").await;
    let r = v2_register(&srv, &token, "Once Only", 300).await;
    let (sid3, slot3, _, _) = session(&srv, 5, 3).await;
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/schedule",
        Some(&token),
        json!({"beneficiaries": [r], "dose": 1, "session_id": sid3, "slot": slot3}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, _, v1_session4, v1_slot4) = session(&srv, 6, 3).await;
    let b = kataar_app::compat::wire::beneficiary_of(&r).unwrap();
    let resp = srv.http.post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(&token)
        .header("idempotency-key", "second-dose-one")
        .json(&json!({"beneficiary_id": b, "session_id": v1_session4, "slot_id": v1_slot4, "dose": 1}))
        .send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "already_booked");
    let (single_token, single_b) = &v1_accounts[0];
    let (sid5, slot5, _, _) = session(&srv, 6, 3).await;
    let resp = srv.http.post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(single_token)
        .header("idempotency-key", "v1-first")
        .json(&json!({"beneficiary_id": single_b, "session_id": v1_session4, "slot_id": v1_slot4, "dose": 1}))
        .send().await.unwrap();
    let already = resp.status() == StatusCode::CONFLICT;
    let (s, v) = post_bare(&srv, "/api/v2/appointment/schedule", Some(single_token),
        json!({"beneficiaries": [kataar_app::compat::wire::reference_of(*single_b)], "dose": 1, "session_id": sid5, "slot": slot5})).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::CONFLICT, "APPOIN0022"),
        "booked via v1 before (race: {already})"
    );
    drop(client);
    if let Ok(srv) = std::sync::Arc::try_unwrap(srv) {
        srv.finish().await;
    }
}

/// The appointment slip: exactly `application/pdf`, a real PDF holding the appointment's
/// centre, date, slot, people (masked IDs) and token numbers; another account's appointment
/// or a cancelled one is `400 APPOIN0016`.
#[tokio::test]
async fn the_appointment_slip_is_a_pdf_with_the_group() {
    let srv = TestServer::postgres().await;
    let token = v2_login(&srv, "9812300003").await;
    let r1 = v2_register(&srv, &token, "Asha Devi", 31).await;
    let r2 = v2_register(&srv, &token, "Ravi Kumar", 32).await;
    let (sid, slot, _, _) = session(&srv, 1, 4).await;
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/schedule",
        Some(&token),
        json!({"beneficiaries": [r1, r2], "dose": 1, "session_id": sid, "slot": slot}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let no = v["appointment_confirmation_no"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v2/appointment/appointmentslip/download?appointment_id={no}");
    let resp = srv
        .http
        .get(format!("{}{path}", srv.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let pdf = resp.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slip.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (_, me) = srv.get("/v1/bookings", Some(&token)).await;
    for b in me["bookings"].as_array().unwrap() {
        assert!(
            text.contains(&b["token_number"].to_string()),
            "token missing:\n{text}"
        );
    }
    let centre = srv
        .state
        .inv
        .centres()
        .into_iter()
        .find(|c| c.district_id.0 == 312)
        .unwrap();
    let date = (srv.state.today() + chrono::Days::new(1))
        .format("%d-%m-%Y")
        .to_string();
    for want in [
        centre.name.as_str(),
        date.as_str(),
        "02:00PM-04:00PM",
        "COVISHIELD",
        "Asha Devi",
        "Ravi Kumar",
        "XXXX-XXXX-",
    ] {
        assert!(text.contains(want), "{want} missing from the slip:\n{text}");
    }
    let other = srv.login("9812300004").await;
    let (s, v) = srv.get(&path, Some(&other)).await;
    assert_eq!(
        (s, v["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("APPOIN0016"))
    );
    let (s, _) = srv.get(&path, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    srv.finish().await;
}

/// The certificate download: `409 CERTIF0001` before any dose, then a PDF whose signed payload
/// verifies through v1; another account's beneficiary is `400 APPOIN0017`.
#[tokio::test]
async fn the_certificate_download_is_the_signed_v1_certificate() {
    let srv = TestServer::postgres().await;
    let token = v2_login(&srv, "9812300005").await;
    let r1 = v2_register(&srv, &token, "Meera Bai", 33).await;
    let path =
        format!("/api/v2/registration/certificate/public/download?beneficiary_reference_id={r1}");
    let (s, v) = srv.get(&path, Some(&token)).await;
    assert_eq!(
        (s, v["errorCode"].as_str()),
        (StatusCode::CONFLICT, Some("CERTIF0001")),
        "{v}"
    );
    let (sid, slot, _, _) = session(&srv, 1, 4).await;
    let (s, v) = post_bare(
        &srv,
        "/api/v2/appointment/schedule",
        Some(&token),
        json!({"beneficiaries": [r1], "dose": 1, "session_id": sid, "slot": slot}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, me) = srv.get("/v1/bookings", Some(&token)).await;
    let booking = me["bookings"][0]["booking_id"].as_u64().unwrap();
    let key = srv.admin_key.clone();
    let (s, v) = srv
        .post(
            &format!("/v1/admin/bookings/{booking}/check-in"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = srv
        .post(
            &format!("/v1/admin/bookings/{booking}/administer"),
            Some(&key),
            json!({"vaccine": "COVISHIELD", "batch": "4121Z001"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for p in [path.clone(), path.replace("/public/", "/")] {
        let resp = srv
            .http
            .get(format!("{}{p}", srv.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/pdf");
        let pdf = resp.bytes().await.unwrap();
        let payload =
            kataar_documents::certificate_payload(&pdf).expect("the PDF carries its payload");
        let (s, v) = srv
            .post("/v1/certificates/verify", None, json!({"payload": payload}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["beneficiary"]["name"], "Meera Bai", "{v}");
    }
    let other = srv.login("9812300006").await;
    let (s, v) = srv.get(&path, Some(&other)).await;
    assert_eq!(
        (s, v["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("APPOIN0017")),
        "{v}"
    );
    srv.finish().await;
}

/// During a launch queue a v2 `schedule` cannot carry a pass: its first attempt enqueues the
/// account and every attempt answers `429 {"error": "Too Many Requests"}` with `Retry-After`
/// until the ticket is admitted; then it books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_schedule_goes_through_a_launch_queue() {
    let srv = TestServer::postgres_with(|c| c.queue_poll_min_s = 1).await;
    let (sid, slot, v1_session, _) = session(&srv, 1, 5).await;
    let token = v2_login(&srv, "9812340001").await;
    let r1 = v2_register(&srv, &token, "Queued Person", 91).await;
    let opens_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (s, v) = srv
        .post(
            "/v1/admin/releases",
            Some(&srv.admin_key),
            json!({"session_ids": [v1_session],
                "opens_at": opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "admit_per_s": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let release = v["release_id"].as_u64().unwrap();
    let body =
        json!({"beneficiaries": [r1], "dose": 1, "session_id": sid, "slot": slot}).to_string();
    let auth = format!("bearer {token}");
    let started = std::time::Instant::now();
    let mut refusals = 0;
    let confirmation = loop {
        let (s, h, text) = raw(
            &srv,
            Method::POST,
            "/api/v2/appointment/schedule",
            &[("authorization", auth.as_str())],
            Some(&body),
        )
        .await;
        if s == StatusCode::OK {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{text}");
        assert_eq!(text, r#"{"error":"Too Many Requests"}"#);
        let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1);
        refusals += 1;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "never admitted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(refusals >= 1, "the first attempt only enqueues");
    assert!(confirmation["appointment_confirmation_no"].is_string());
    // One ticket for the account, now admitted and booked.
    let (_, status) = srv.get(&format!("/v1/releases/{release}"), None).await;
    assert_eq!(status["admitted"], 1, "{status}");
    let (_, list) = srv.get("/v1/bookings", Some(&token)).await;
    assert_eq!(list["bookings"].as_array().unwrap().len(), 1, "{list}");
    srv.finish().await;
}
