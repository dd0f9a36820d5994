//! The OTP flow over real HTTP against its failure modes: a full delivery queue, a commit that
//! fails under a verified OTP.

#![allow(clippy::unwrap_used)]

mod common;
use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A webhook receiver on 127.0.0.1:0 that holds every request until `open` is sent `true`.
async fn gated_receiver() -> (String, watch::Sender<bool>, Arc<AtomicUsize>) {
    use axum::{extract::State, http::StatusCode, routing::post, Router};
    let (open, gate) = watch::channel(false);
    let seen = Arc::new(AtomicUsize::new(0));
    let handler = |State((mut gate, seen)): State<(watch::Receiver<bool>, Arc<AtomicUsize>)>,
                   _body: String| async move {
        let _ = gate.wait_for(|open| *open).await;
        seen.fetch_add(1, Ordering::SeqCst);
        StatusCode::NO_CONTENT
    };
    let app = Router::new()
        .route("/otp", post(handler))
        .with_state((gate, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/otp"), open, seen)
}

#[tokio::test]
async fn a_full_delivery_queue_answers_503_and_the_refusal_does_not_count() {
    let (url, open, delivered) = gated_receiver().await;
    let srv = TestServer::postgres_with(|c| {
        c.otp_sender = Some(format!("webhook:{url}"));
        c.otp_webhook_secret = Some("gateway-shared-secret-0123".into());
        c.otp_queue_max = 1;
    })
    .await;
    // Deliveries hang at the gateway: the in-flight deliveries, then the queue, fill up.
    let mut accepted = 0usize;
    let mut refused = None;
    for i in 0..200u64 {
        let mobile = format!("97{:08}", i);
        let (s, h, v) = srv
            .call(
                reqwest::Method::POST,
                "/v1/auth/otp",
                None,
                Some(json!({ "mobile": mobile })),
            )
            .await;
        match s {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(v["error"]["code"], "overloaded", "{v}");
                let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(retry >= 1);
                assert_eq!(v["error"]["details"]["retry_after_s"], retry, "{v}");
                refused = Some(mobile);
                break;
            }
            other => panic!("{other}: {v}"),
        }
    }
    let refused = refused.expect("a full delivery queue must refuse with 503");
    assert!(accepted >= 1);
    // Every accepted OTP is delivered once the gateway answers; none was dropped.
    open.send(true).unwrap();
    for _ in 0..600 {
        if delivered.load(Ordering::SeqCst) >= accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered.load(Ordering::SeqCst), accepted);
    assert_eq!(srv.state.otp_sender.stats().sent, accepted as u64);
    // The refused mobile may ask again at once: neither the cooldown nor the caps saw it.
    let (s, v) = srv
        .post("/v1/auth/otp", None, json!({ "mobile": refused }))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    srv.finish().await;
}

#[tokio::test]
async fn an_otp_is_consumed_only_once_its_account_is_committed() {
    let srv = TestServer::postgres().await;
    let mobile = "9822222222";
    let (s, v) = srv
        .post("/v1/auth/otp", None, json!({ "mobile": mobile }))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (txn, otp) = srv.otp_for(mobile).await;

    // The store refuses new accounts for now.
    let (db, conn) =
        tokio_postgres::connect(srv.database_url.as_deref().unwrap(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    db.batch_execute(
        "ALTER TABLE accounts ADD CONSTRAINT refuse_new_accounts CHECK (account_id < 0) NOT VALID",
    )
    .await
    .unwrap();
    let verify = json!({ "txn_id": txn, "otp": otp });
    let (s, v) = srv.post("/v1/auth/otp/verify", None, verify.clone()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "store_unavailable", "{v}");

    // Once the store takes accounts again, the same OTP signs the citizen in.
    db.batch_execute("ALTER TABLE accounts DROP CONSTRAINT refuse_new_accounts")
        .await
        .unwrap();
    let mut answer = None;
    for _ in 0..100 {
        let (s, v) = srv.post("/v1/auth/otp/verify", None, verify.clone()).await;
        if s == StatusCode::SERVICE_UNAVAILABLE && v["error"]["code"] == "store_unavailable" {
            // The store's breaker may still be cooling down.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        answer = Some((s, v));
        break;
    }
    let (s, v) = answer.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["token"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    let rows = db
        .query_one(
            "SELECT count(*) FROM accounts WHERE mobile = $1",
            &[&mobile],
        )
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 1);
    // Consumed now: a third try is refused.
    let (s, v) = srv.post("/v1/auth/otp/verify", None, verify).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("otp_expired"))
    );
    srv.finish().await;
}
