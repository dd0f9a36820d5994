//! The console's server side over real HTTP on PostgreSQL: the page and its assets (embedded,
//! with a strict content security policy), `ETag`/`304` on the operator reads the page polls,
//! `GET /v1/admin/status` (breaker and lane refusals, operators only) and the day list's
//! `mobile_masked` that the page searches by. The page itself is driven in a real browser by
//! the root crate's `tests/console.rs`.

#![allow(clippy::unwrap_used)]

mod common;
use common::{aadhaar, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let srv = TestServer::postgres().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = srv
            .http
            .get(format!("{}{path}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = r.text().await.unwrap();
        assert!(body.len() > 500, "{path}");
    }
    srv.finish().await;
}

#[tokio::test]
async fn operator_reads_answer_304_until_a_counter_changes() {
    let srv = TestServer::postgres().await;
    let key = srv.admin_key.clone();
    let url = format!("{}/v1/admin/capacity?district_id=312&days=7", srv.base);
    let first = srv.http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(first.headers()["cache-control"], "private, no-cache");
    let cap: Value = first.json().await.unwrap();
    let again = srv
        .http
        .get(&url)
        .bearer_auth(&key)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    // A list of tags and a weak form of the tag match too; another tag does not.
    for header in [
        format!("\"x\", {etag}"),
        format!("W/{etag}"),
        "*".to_string(),
    ] {
        let r = srv
            .http
            .get(&url)
            .bearer_auth(&key)
            .header("If-None-Match", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    }
    let other = srv
        .http
        .get(&url)
        .bearer_auth(&key)
        .header("If-None-Match", "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    // A walk-in changes the counters: the old tag no longer matches.
    let session = &cap["centres"][0]["sessions"][0];
    let slot = session["pools"][0]["slot_id"].clone();
    let (_, detail) = srv
        .get(
            &format!("/v1/admin/sessions/{}", session["session_id"]),
            Some(&key),
        )
        .await;
    // Old enough for the session's age band (and inside its upper bound, if any).
    let birth_year = chrono::Datelike::year(&chrono::Utc::now()) as u64
        - detail["min_age"].as_u64().unwrap()
        - 1;
    let (s, v) = srv
        .post(
            "/v1/admin/walkins",
            Some(&key),
            json!({"session_id": session["session_id"], "slot_id": slot, "dose": 1,
                "beneficiary": {"name": "Sita Ram", "birth_year": birth_year, "gender": "female",
                    "id_type": "aadhaar", "id_number": aadhaar(5150), "mobile": "9876501234"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let changed = srv
        .http
        .get(&url)
        .bearer_auth(&key)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);

    // The day list carries the masked mobile the console searches by.
    let (s, list) = srv
        .get(
            &format!("/v1/admin/bookings?session_id={}", session["session_id"]),
            Some(&key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let b = list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["booking_id"] == v["booking_id"])
        .unwrap();
    assert_eq!(b["mobile_masked"], "XXXXXX1234");
    // An error is never given a tag.
    let r = srv
        .http
        .get(format!("{}/v1/admin/capacity", srv.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("etag").is_none());
    srv.finish().await;
}

#[tokio::test]
async fn status_shows_the_breaker_and_lane_refusals_to_operators_only() {
    // A browse lane of one request per second refuses most of a burst of reads.
    let srv = TestServer::postgres_with(|c| {
        for (k, v) in [
            ("browse_rate_per_s", toml::Value::Float(1.0)),
            ("browse_burst", toml::Value::Integer(1)),
            ("browse_queue_max", toml::Value::Integer(1)),
        ] {
            c.admission.insert(k.into(), v);
        }
    })
    .await;
    let (s, v) = srv.get("/v1/admin/status", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "unauthenticated");
    let (s, first) = srv.get("/v1/admin/status", Some(&srv.admin_key)).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["breaker"], "closed");
    let lanes: Vec<&str> = first["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lane"].as_str().unwrap())
        .collect();
    assert_eq!(lanes, ["operator", "booking", "auth", "browse"]);
    let mut refused = 0;
    for _ in 0..30 {
        let (s, _) = srv.get("/v1/states", None).await;
        if s == StatusCode::SERVICE_UNAVAILABLE || s == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused > 0);
    // The next sample is taken once the previous one is a sampling period old.
    let mut browse = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, now) = srv.get("/v1/admin/status", Some(&srv.admin_key)).await;
        browse = now["lanes"][3].clone();
        if browse["refused_per_s"].as_f64().unwrap_or(0.0) > 0.0 {
            break;
        }
    }
    assert!(browse["refused_per_s"].as_f64().unwrap() > 0.0, "{browse}");
    assert!(
        browse["refused_per_s_by_reason"]["overloaded"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "{browse}"
    );
    srv.finish().await;
}
