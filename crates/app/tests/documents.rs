//! Slips, certificates and their verification over real HTTP on PostgreSQL: a citizen books,
//! the centre checks in and administers, and the PDFs (parsed with `lopdf`) carry the booking's
//! and the doses' facts; the certificate's payload verifies at `/v1/certificates/verify` and
//! offline with the published key; a changed byte or another key's signature does not. Also
//! error messages in Hindi by `Accept-Language`.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{Days, NaiveDate};
use common::{aadhaar, TestServer};
use kataar_documents::{
    certificate_payload, verify, CertificateRecord, CertificateSigner, PublicKey,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn admin_post(srv: &TestServer, path: &str, body: Value) -> Value {
    let (s, v) = srv.post(path, Some(&srv.admin_key), body).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

/// A COVAXIN session at the given centre and day, one slot with online places for both doses.
async fn session(srv: &TestServer, centre: u64, date: NaiveDate) -> (u64, u64) {
    let v = admin_post(
        srv,
        "/v1/admin/sessions",
        json!({
            "centre_id": centre, "date": day(date), "vaccine": "COVAXIN", "min_age": 18,
            "max_age": null,
            "slots": [{"start": "09:00", "end": "11:00", "capacity": {"dose1_online": 5,
                "dose1_walkin": 0, "dose2_online": 5, "dose2_walkin": 0}}],
        }),
    )
    .await;
    (
        v["session_id"].as_u64().unwrap(),
        v["slots"][0]["slot_id"].as_u64().unwrap(),
    )
}

async fn book(srv: &TestServer, token: &str, ben: u64, session: u64, slot: u64, dose: u8) -> Value {
    let resp = srv
        .http
        .post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("doc-{ben}-{session}-{dose}"))
        .json(&json!({"beneficiary_id": ben, "session_id": session, "slot_id": slot, "dose": dose}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

async fn administer(srv: &TestServer, booking: u64, batch: &str) {
    let (s, _, v) = srv
        .call(
            Method::POST,
            &format!("/v1/admin/bookings/{booking}/check-in"),
            Some(&srv.admin_key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    admin_post(
        srv,
        &format!("/v1/admin/bookings/{booking}/administer"),
        json!({"vaccine": "COVAXIN", "batch": batch}),
    )
    .await;
}

/// GET a PDF: (status, content type, content language, bytes).
async fn pdf(
    srv: &TestServer,
    path: &str,
    token: &str,
    lang: Option<&str>,
) -> (StatusCode, String, String, Vec<u8>) {
    let mut req = srv
        .http
        .get(format!("{}{path}", srv.base))
        .bearer_auth(token);
    if let Some(l) = lang {
        req = req.header("Accept-Language", l);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (ct, cl) = (header("content-type"), header("content-language"));
    (status, ct, cl, resp.bytes().await.unwrap().to_vec())
}

/// The `Keywords` of a PDF's document information (lopdf parses the whole file).
fn keywords(bytes: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(bytes).expect("a PDF lopdf can parse");
    assert_eq!(doc.get_pages().len(), 1);
    let id = doc.trailer.get(b"Info").unwrap().as_reference().unwrap();
    let info = doc.get_object(id).unwrap().as_dict().unwrap();
    lopdf::decode_text_string(info.get(b"Keywords").unwrap()).unwrap()
}

async fn verify_http(srv: &TestServer, payload: &str) -> (StatusCode, Value) {
    srv.post(
        "/v1/certificates/verify",
        None,
        json!({ "payload": payload }),
    )
    .await
}

#[tokio::test]
async fn slips_certificates_and_verification_on_postgres() {
    let srv = TestServer::postgres().await;
    let today = srv.state.today();
    let centre = admin_post(
        &srv,
        "/v1/admin/centres",
        json!({"name": "Hamidia Hospital", "state_id": 20, "district_id": 312,
            "pincode": "462001", "address": "Royal Market", "block_name": "Huzur", "lat": 23.26,
            "long": 77.40, "fee_type": "free"}),
    )
    .await["centre_id"]
        .as_u64()
        .unwrap();
    let (s1, slot1) = session(&srv, centre, today).await;
    let (s2, slot2) = session(&srv, centre, today.checked_add_days(Days::new(28)).unwrap()).await;

    let token = srv.login("9876512345").await;
    let (s, v) = srv
        .post(
            "/v1/beneficiaries",
            Some(&token),
            json!({"name": "आशा देवी", "birth_year": 1980, "gender": "female",
                "id_type": "aadhaar", "id_number": aadhaar(771)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ben = v["beneficiary_id"].as_u64().unwrap();
    let masked = v["id_masked"].as_str().unwrap().to_string();
    let other = srv.login("9876512346").await;

    // No administered dose: no certificate, in either language.
    let cert_path = format!("/v1/beneficiaries/{ben}/certificate");
    let (s, _, v) = srv.call(Method::GET, &cert_path, Some(&token), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "not_vaccinated"),
        "{v}"
    );
    assert_eq!(
        v["error"]["message"],
        "No dose is recorded for this beneficiary."
    );
    let resp = srv
        .http
        .get(format!("{}{cert_path}", srv.base))
        .bearer_auth(&token)
        .header("Accept-Language", "hi-IN,hi;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(resp.headers()["content-language"], "hi");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "not_vaccinated");
    assert_eq!(v["error"]["message"], "इस लाभार्थी की कोई खुराक दर्ज नहीं है।");
    // Someone else's beneficiary is not found.
    let (s, _, v) = srv.call(Method::GET, &cert_path, Some(&other), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    // Dose 1 booked: the slip.
    let b1 = book(&srv, &token, ben, s1, slot1, 1).await;
    let booking1 = b1["booking_id"].as_u64().unwrap();
    let token_number = b1["token_number"].as_u64().unwrap();
    let slip_path = format!("/v1/bookings/{booking1}/slip");
    let (s, ct, cl, bytes) = pdf(&srv, &slip_path, &token, None).await;
    assert_eq!(
        (s, ct.as_str(), cl.as_str()),
        (StatusCode::OK, "application/pdf", "en")
    );
    let k = keywords(&bytes);
    for want in [
        format!("reference:{booking1}"),
        format!("token:{token_number}"),
        format!("date:{}", day(today)),
        "slot:09:00-11:00".to_string(),
        "vaccine:COVAXIN".to_string(),
        "dose:1".to_string(),
        format!("id:{masked}"),
    ] {
        assert!(
            k.contains(&want),
            "{want} missing from the slip's keywords: {k}"
        );
    }
    let (s, ct, cl, hi) = pdf(&srv, &slip_path, &token, Some("hi")).await;
    assert_eq!(
        (s, ct.as_str(), cl.as_str()),
        (StatusCode::OK, "application/pdf", "hi")
    );
    assert_ne!(hi, bytes);
    assert!(keywords(&hi).contains(&format!("token:{token_number}")));
    // Not this account's booking, or no such booking: 404.
    let (s, _, v) = srv.call(Method::GET, &slip_path, Some(&other), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, _) = srv
        .call(Method::GET, "/v1/bookings/999999/slip", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, v) = srv.call(Method::GET, &slip_path, None, None).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"));

    // Booked but not administered is still not a dose.
    let (s, _, v) = srv.call(Method::GET, &cert_path, Some(&token), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "not_vaccinated"),
        "{v}"
    );

    // Dose 1 administered: a partial certificate whose payload verifies.
    administer(&srv, booking1, "BB-101").await;
    let (s, ct, _, cert1) = pdf(&srv, &cert_path, &token, None).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/pdf"));
    let k = keywords(&cert1);
    assert!(k.contains("status:partially_vaccinated"), "{k}");
    assert!(
        k.contains(&format!("dose1:COVAXIN BB-101 {} {centre}", day(today))),
        "{k}"
    );
    let payload1 = certificate_payload(&cert1).expect("the payload is in the certificate");
    let (s, v) = verify_http(&srv, &payload1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["fully_vaccinated"], false);
    assert_eq!(
        v["beneficiary"],
        json!({"name": "आशा देवी", "birth_year": 1980, "id_masked": masked})
    );
    assert_eq!(v["doses"].as_array().unwrap().len(), 1);
    assert_eq!(v["doses"][0]["batch"], "BB-101");
    assert_eq!(v["doses"][0]["centre_name"], "Hamidia Hospital");

    // Dose 2 administered: fully vaccinated at once.
    let b2 = book(&srv, &token, ben, s2, slot2, 2).await;
    administer(&srv, b2["booking_id"].as_u64().unwrap(), "BB-202").await;
    let (s, _, cl, cert2) = pdf(&srv, &cert_path, &token, Some("hi")).await;
    assert_eq!((s, cl.as_str()), (StatusCode::OK, "hi"));
    assert!(keywords(&cert2).contains("status:fully_vaccinated"));
    let payload2 = certificate_payload(&cert2).unwrap();
    let (_, v) = verify_http(&srv, &payload2).await;
    assert_eq!(
        (v["valid"].clone(), v["fully_vaccinated"].clone()),
        (json!(true), json!(true)),
        "{v}"
    );
    assert_eq!(v["doses"][1]["batch"], "BB-202");

    // Offline, with the published key.
    let (s, keys) = srv.get("/v1/certificates/keys", None).await;
    assert_eq!(s, StatusCode::OK);
    let published = &keys["keys"][0];
    assert_eq!(published["algorithm"], "Ed25519");
    let key = PublicKey::decode(published["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(published["key_id"], key.key_id.as_str());
    let offline = verify(&payload2, std::slice::from_ref(&key)).unwrap();
    assert!(offline.record.fully_vaccinated);

    // One byte changed, or another key's signature: not genuine.
    let mut bytes = payload2.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
    let (s, v) = verify_http(&srv, &String::from_utf8(bytes).unwrap()).await;
    assert_eq!(
        (s, v["valid"].clone()),
        (StatusCode::OK, json!(false)),
        "{v}"
    );
    assert_eq!(v["beneficiary"], Value::Null);
    let forger = CertificateSigner::from_secret(&[0x5a; 32]).unwrap();
    let forged = forger.sign(&offline.record);
    let (_, v) = verify_http(&srv, &forged).await;
    assert_eq!(
        (v["valid"].clone(), v["reason"].clone()),
        (json!(false), json!("unknown_key"))
    );
    let relabelled = forged.replacen(forger.key_id(), &key.key_id, 1);
    let (_, v) = verify_http(&srv, &relabelled).await;
    assert_eq!(
        (v["valid"].clone(), v["reason"].clone()),
        (json!(false), json!("bad_signature"))
    );
    // A record claiming full vaccination after one dose cannot be signed into validity.
    let claimed = CertificateRecord {
        fully_vaccinated: true,
        ..verify(&payload1, std::slice::from_ref(&key))
            .unwrap()
            .record
    };
    assert!(verify(&forger.sign(&claimed), &[forger.public_key()]).is_err());

    // The request's bounds: a payload of exactly 4096 characters is read, one more is refused.
    let (s, v) = verify_http(&srv, &"K".repeat(4096)).await;
    assert_eq!((s, v["valid"].clone()), (StatusCode::OK, json!(false)));
    let (s, v) = verify_http(&srv, &"K".repeat(4097)).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
    assert_eq!(v["error"]["details"]["field"], "payload");
    let (s, v) = srv.post("/v1/certificates/verify", None, json!({})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{v}"
    );

    // The routes are in the OpenAPI document.
    let (_, doc) = srv.get("/openapi.json", None).await;
    for p in [
        "/v1/bookings/{booking_id}/slip",
        "/v1/beneficiaries/{beneficiary_id}/certificate",
        "/v1/certificates/keys",
        "/v1/certificates/verify",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from /openapi.json"
        );
    }
    srv.finish().await;
}

#[tokio::test]
async fn error_messages_follow_accept_language() {
    let srv = TestServer::embedded().await;
    let get = |lang: Option<&'static str>| {
        let mut req = srv.http.get(format!("{}/v1/no/such/path", srv.base));
        if let Some(l) = lang {
            req = req.header("Accept-Language", l);
        }
        req.send()
    };
    for (lang, message, tag) in [
        (None, "No such resource.", "en"),
        (Some("hi"), "यह जानकारी नहीं मिली।", "hi"),
        (Some("hi_IN"), "यह जानकारी नहीं मिली।", "hi"),
        (Some("en-GB, hi;q=0.5"), "No such resource.", "en"),
        (Some("fr"), "No such resource.", "en"),
    ] {
        let resp = get(lang).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()["content-language"], tag, "{lang:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (code(&v), v["error"]["message"].as_str().unwrap()),
            ("not_found", message)
        );
    }
    // A refined English sentence becomes the catalogue's Hindi one; the details stay.
    let resp = srv
        .http
        .post(format!("{}/v1/auth/otp", srv.base))
        .header("Accept-Language", "hi")
        .json(&json!({"mobile": "12345"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "अनुरोध सही नहीं है।");
    assert_eq!(v["error"]["details"]["field"], "mobile");
    srv.finish().await;
}
