//! Public reads over real HTTP: states, districts, availability with ETag.

#![allow(clippy::unwrap_used)]

mod common;
use common::TestServer;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn states_districts_and_availability_from_memory() {
    let srv = TestServer::postgres().await;
    let (s, v) = srv.get("/v1/states", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["states"].as_array().unwrap().len(), 37);
    let (s, v) = srv.get("/v1/states/20/districts", None).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["districts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["district_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Bhopal"));
    let (s, v) = srv.get("/v1/states/99/districts", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (s, h, v) = srv
        .call(Method::GET, "/v1/availability?district_id=312", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let centres = v["centres"].as_array().unwrap();
    assert_eq!(centres.len(), 2);
    assert_eq!(centres[0]["pincode"], "462001");
    let session = &centres[0]["sessions"][0];
    assert!(session["available_dose1"].as_u64().unwrap() > 0);
    assert_eq!(h["cache-control"], "public, max-age=5");
    let etag = h["etag"].to_str().unwrap().to_string();
    let resp = srv
        .http
        .get(format!("{}/v1/availability?district_id=312", srv.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    for bad in [
        "/v1/availability",
        "/v1/availability?district_id=312&pincode=462001",
        "/v1/availability?district_id=312&days=15",
        "/v1/availability?district_id=312&date=2021-13-01",
        "/v1/availability?pincode=12",
        "/v1/availability?district_id=312&dose=3",
        "/v1/availability?district_id=312&colour=red",
    ] {
        let (s, v) = srv.get(bad, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{bad}");
    }
    // Live capacity per district is exported from memory.
    let mut seen = String::new();
    for _ in 0..100 {
        let (_, v) = srv.get("/metrics", None).await;
        seen = v.as_str().unwrap_or_default().to_string();
        if seen.contains("kataar_available_places{district=\"312\",dose=\"1\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let line = seen
        .lines()
        .find(|l| l.starts_with("kataar_available_places{district=\"312\",dose=\"1\"}"))
        .unwrap_or_else(|| panic!("no capacity gauge for district 312:\n{seen}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value > 0.0, "{line}");
    srv.finish().await;
}

#[tokio::test]
async fn availability_answers_are_cached_for_their_ttl() {
    let srv = TestServer::postgres_with(|c| c.availability_cache_ms = 60_000).await;
    let path = "/v1/availability?district_id=358&days=1";
    let (s, first) = srv.get(path, None).await;
    assert_eq!(s, StatusCode::OK);
    let before = first["centres"][0]["sessions"][0]["available_dose1"]
        .as_u64()
        .unwrap();
    // Take a place directly in the engine: the inventory changes at once.
    let session = first["centres"][0]["sessions"][0]["session_id"]
        .as_u64()
        .unwrap();
    let slot = first["centres"][0]["sessions"][0]["slots"][0]["slot_id"]
        .as_u64()
        .unwrap();
    let token = srv.login("9811111111").await;
    let (s, b) = srv
        .post(
            "/v1/beneficiaries",
            Some(&token),
            serde_json::json!({"name": "Ravi", "birth_year": 1990, "gender": "male",
                "id_type": "pan", "id_number": "ABCDE1234F"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let resp = srv
        .http
        .post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "cache-1")
        .json(
            &serde_json::json!({"beneficiary_id": b["beneficiary_id"], "session_id": session,
            "slot_id": slot, "dose": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "{}",
        resp.text().await.unwrap()
    );
    // The same query within the TTL is the cached answer; another query is rendered afresh.
    let (_, again) = srv.get(path, None).await;
    assert_eq!(again, first);
    let (_, fresh) = srv
        .get("/v1/availability?district_id=358&days=1&dose=1", None)
        .await;
    let after = fresh["centres"][0]["sessions"][0]["available_dose1"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before - 1);
    srv.finish().await;
}

/// Books one place in the first session and slot of `first` (an availability answer).
async fn book_first_place(srv: &TestServer, first: &serde_json::Value, mobile: &str, id: &str) {
    let session = first["centres"][0]["sessions"][0]["session_id"]
        .as_u64()
        .unwrap();
    let slot = first["centres"][0]["sessions"][0]["slots"][0]["slot_id"]
        .as_u64()
        .unwrap();
    let token = srv.login(mobile).await;
    let (s, b) = srv
        .post(
            "/v1/beneficiaries",
            Some(&token),
            serde_json::json!({"name": "Ravi", "birth_year": 1990, "gender": "male",
                "id_type": "pan", "id_number": id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let resp = srv
        .http
        .post(format!("{}/v1/bookings", srv.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", format!("book-{mobile}"))
        .json(
            &serde_json::json!({"beneficiary_id": b["beneficiary_id"], "session_id": session,
            "slot_id": slot, "dose": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

fn dose1(v: &serde_json::Value) -> u64 {
    v["centres"][0]["sessions"][0]["available_dose1"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn availability_cache_is_keyed_on_the_parsed_query() {
    let srv = TestServer::postgres_with(|c| c.availability_cache_ms = 60_000).await;
    let today = srv.state.today().format("%Y-%m-%d").to_string();
    let (s, first) = srv
        .get("/v1/availability?district_id=358&days=1", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let before = dose1(&first);
    book_first_place(&srv, &first, "9811111112", "ABCDE1235F").await;
    // Spellings of the same query: leading zeros, another order, defaults written out. Each is
    // the cached answer (rendered before the booking), so they share one entry.
    for same in [
        "/v1/availability?district_id=0000358&days=1".to_string(),
        "/v1/availability?days=1&district_id=358".to_string(),
        "/v1/availability?days=01&district_id=358".to_string(),
        format!("/v1/availability?district_id=358&days=1&date={today}"),
    ] {
        let (s, v) = srv.get(&same, None).await;
        assert_eq!(s, StatusCode::OK, "{same}");
        assert_eq!(dose1(&v), before, "{same} was rendered afresh");
    }
    assert_eq!(srv.state.availability_cache.len(), 1);
    // Unknown and repeated parameters are refused, never cached.
    for bad in [
        "/v1/availability?district_id=358&days=1&noise=1",
        "/v1/availability?district_id=358&district_id=358&days=1",
    ] {
        let (s, v) = srv.get(bad, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{bad}");
    }
    assert_eq!(srv.state.availability_cache.len(), 1);
    // Another query is another entry, rendered afresh.
    let (_, v) = srv
        .get("/v1/availability?district_id=358&days=2", None)
        .await;
    assert_eq!(dose1(&v), before - 1);
    assert_eq!(srv.state.availability_cache.len(), 2);
    srv.finish().await;
}

#[tokio::test]
async fn availability_cache_holds_no_more_than_its_byte_bound() {
    // One byte: no answer fits, so every answer is rendered afresh and none is kept.
    let srv = TestServer::postgres_with(|c| {
        c.availability_cache_ms = 60_000;
        c.availability_cache_bytes_max = 1;
    })
    .await;
    let path = "/v1/availability?district_id=358&days=1";
    let (s, first) = srv.get(path, None).await;
    assert_eq!(s, StatusCode::OK);
    book_first_place(&srv, &first, "9811111113", "ABCDE1236F").await;
    let (_, again) = srv.get(path, None).await;
    assert_eq!(dose1(&again), dose1(&first) - 1);
    assert_eq!(srv.state.availability_cache.bytes(), 0);
    assert!(srv.state.availability_cache.is_empty());
    srv.finish().await;
}
