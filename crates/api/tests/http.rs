//! End-to-end tests of the HTTP edge: a tiny router built from the crate's pieces, served by
//! `run_server` on port 0, driven with reqwest and raw TCP sockets.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use kataar_api::{
    build_app, init_metrics, openapi_base, run_server, ApiError, ApiJson, ApiPath, ApiQuery, Ops,
    OptionalJson, Readiness, ServerLimits,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

/// Upper bound on any single wait in these tests (a hang fails instead of blocking CI).
const WAIT_MAX: Duration = Duration::from_secs(15);

#[derive(Clone)]
struct AppState {
    /// Poked when `/slow` has started.
    slow_entered: Arc<Notify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoRequest {
    name: String,
    birth_year: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    district_id: u32,
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn cancel(
    ApiPath(id): ApiPath<u64>,
    OptionalJson(r): OptionalJson<CancelRequest>,
) -> axum::Json<Value> {
    axum::Json(json!({"id": id, "reason": r.reason}))
}

fn api() -> Router<AppState> {
    Router::new()
        .route(
            "/echo",
            post(|ApiJson(r): ApiJson<EchoRequest>| async move {
                axum::Json(json!({"name": r.name, "birth_year": r.birth_year}))
            }),
        )
        .route("/items/{id}/cancel", post(cancel))
        .route(
            "/items/{id}",
            get(|ApiPath(id): ApiPath<u64>| async move { axum::Json(json!({"id": id})) }),
        )
        .route(
            "/search",
            get(|ApiQuery(q): ApiQuery<SearchQuery>| async move {
                axum::Json(json!({"district_id": q.district_id}))
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                "unreachable"
            }),
        )
        .route(
            "/spawned-error",
            get(|| async {
                tokio::spawn(async { Err::<(), _>(ApiError::pool_full()) })
                    .await
                    .unwrap()
            }),
        )
        .route(
            "/slow",
            get(
                |State(s): State<AppState>, ApiQuery(q): ApiQuery<SlowQuery>| async move {
                    s.slow_entered.notify_one();
                    tokio::time::sleep(Duration::from_millis(q.ms)).await;
                    axum::Json(json!({"slept_ms": q.ms}))
                },
            ),
        )
}

struct TestServer {
    addr: SocketAddr,
    base: String,
    readiness: Readiness,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start(limits: ServerLimits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let readiness = Readiness::new();
        let ops = Ops::new(readiness.clone(), init_metrics(), true, &openapi_base());
        let state = AppState {
            slow_entered: Arc::new(Notify::new()),
        };
        let app = build_app(api(), state.clone(), &ops, &limits);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            run_server(listener, None, app, &ops, limits, shutdown).await
        });
        Self {
            addr,
            base: format!("http://{addr}"),
            readiness,
            state,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT_MAX, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn test_limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        keepalive_idle: Duration::from_secs(60),
        body_bytes_max: 1024,
        connections_max: 64,
        shutdown_grace: Duration::from_secs(10),
        ..ServerLimits::DEFAULT
    }
}

/// Check a contract-shaped error: status, code, request id in body equal to the header.
async fn check_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["request_id"], header_id.as_str(), "{body}");
    assert!(!header_id.is_empty());
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    body
}

#[tokio::test]
async fn framework_errors_have_the_contract_shape() {
    let server = TestServer::start(test_limits()).await;
    let client = reqwest::Client::new();
    let b = &server.base;

    check_error(
        client.get(format!("{b}/nope")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let r = client.delete(format!("{b}/echo")).send().await.unwrap();
    assert!(r.headers().contains_key("allow"));
    check_error(r, 405, "method_not_allowed").await;
    let r = client
        .post(format!("{b}/echo"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    check_error(r, 415, "unsupported_media_type").await;
    let r = client
        .post(format!("{b}/echo"))
        .body("{}")
        .send()
        .await
        .unwrap();
    check_error(r, 415, "unsupported_media_type").await;
    let big = json!({"name": "x".repeat(2000), "birth_year": 1990});
    let r = client
        .post(format!("{b}/echo"))
        .json(&big)
        .send()
        .await
        .unwrap();
    check_error(r, 413, "payload_too_large").await;
    // Non-numeric ids are 404 (no such resource can exist).
    check_error(
        client.get(format!("{b}/items/abc")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let r = client.get(format!("{b}/items/7")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["id"], 7);
    server.stop().await;
}

#[tokio::test]
async fn json_errors_name_the_field() {
    let server = TestServer::start(test_limits()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/echo", server.base);

    let r = client
        .post(&url)
        .json(&json!({"name": "a", "birth_year": 1990, "nmae": 1}))
        .send();
    let body = check_error(r.await.unwrap(), 400, "invalid_request").await;
    assert_eq!(body["error"]["details"]["field"], "nmae");
    let r = client
        .post(&url)
        .json(&json!({"name": "a", "birth_year": "1990"}))
        .send();
    let body = check_error(r.await.unwrap(), 400, "invalid_request").await;
    assert_eq!(body["error"]["details"]["field"], "birth_year");
    let r = client.post(&url).json(&json!({"name": "a"})).send();
    let body = check_error(r.await.unwrap(), 400, "invalid_request").await;
    assert_eq!(body["error"]["details"]["field"], "birth_year");
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"name\":");
    check_error(r.send().await.unwrap(), 400, "invalid_request").await;
    let r = client
        .post(&url)
        .json(&json!({"name": "a", "birth_year": 1990}))
        .send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));

    let q = client
        .get(format!("{}/search?district_id=abc", server.base))
        .send();
    let body = check_error(q.await.unwrap(), 400, "invalid_request").await;
    assert_eq!(body["error"]["details"]["field"], "district_id");
    server.stop().await;
}

#[tokio::test]
async fn optional_json_accepts_an_empty_body() {
    let server = TestServer::start(test_limits()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/items/5/cancel", server.base);
    let r = client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id": 5, "reason": null})
    );
    let r = client
        .post(&url)
        .json(&json!({"reason": "moved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "moved");
    let r = client
        .post(&url)
        .json(&json!({"why": "x"}))
        .send()
        .await
        .unwrap();
    let body = check_error(r, 400, "invalid_request").await;
    assert_eq!(body["error"]["details"]["field"], "why");
    let r = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("x")
        .send();
    check_error(r.await.unwrap(), 415, "unsupported_media_type").await;
    server.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let server = TestServer::start(test_limits()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/healthz", server.base);
    let r = client
        .get(&url)
        .header("x-request-id", "client-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-id-42");
    let r = client.get(&url).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    let long = "a".repeat(65);
    let r = client
        .get(&url)
        .header("x-request-id", long.as_str())
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], long.as_str());
    // Errors echo it in the body too.
    let r = client
        .get(format!("{}/nope", server.base))
        .header("x-request-id", "abc")
        .send();
    let body = check_error(r.await.unwrap(), 404, "not_found").await;
    assert_eq!(body["error"]["request_id"], "abc");
    // An error built in a spawned task (outside the request scope) still carries the id.
    let r = client
        .get(format!("{}/spawned-error", server.base))
        .header("x-request-id", "sp1");
    let body = check_error(r.send().await.unwrap(), 409, "pool_full").await;
    assert_eq!(body["error"]["request_id"], "sp1");
    server.stop().await;
}

#[tokio::test]
async fn a_panic_becomes_500_internal() {
    let server = TestServer::start(test_limits()).await;
    let r = reqwest::get(format!("{}/panic", server.base))
        .await
        .unwrap();
    let body = check_error(r, 500, "internal").await;
    assert!(!body.to_string().contains("boom"));
    // The server still serves.
    let r = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_handler_is_answered_503_overloaded() {
    let limits = ServerLimits {
        request_timeout: Duration::from_secs(1),
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let r = reqwest::get(format!("{}/slow?ms=10000", server.base))
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let body = check_error(r, 503, "overloaded").await;
    assert_eq!(body["error"]["details"]["retry_after_s"], 1);
    server.stop().await;
}

/// Read until the peer closes; true if it closed (EOF or reset) before `WAIT_MAX`.
async fn closed_by_peer(stream: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut seen = Vec::new();
    let result = tokio::time::timeout(WAIT_MAX, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (result.is_ok(), seen)
}

#[tokio::test]
async fn a_stalled_request_head_is_closed() {
    let server = TestServer::start(test_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x")
        .await
        .unwrap();
    let (closed, seen) = closed_by_peer(&mut stream).await;
    assert!(closed, "connection with a stalled head stayed open");
    assert!(seen.is_empty(), "no response is written for a stalled head");

    // A kept-alive connection that starts a second head and stalls is closed too.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    stream.write_all(b"GET /heal").await.unwrap();
    let (closed, seen) = closed_by_peer(&mut stream).await;
    assert!(closed && seen.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keepalive_connection_is_closed() {
    let limits = ServerLimits {
        keepalive_idle: Duration::from_secs(1),
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (closed, seen) = closed_by_peer(&mut stream).await;
    assert!(closed);
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    server.stop().await;
}

async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT_MAX, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn over_the_connection_cap_is_a_fast_503() {
    let limits = ServerLimits {
        connections_max: 4,
        ..test_limits()
    };
    let limits = ServerLimits {
        header_read_timeout: Duration::from_secs(10),
        ..limits
    };
    let server = TestServer::start(limits).await;
    // Connections that have not sent their first request yet (idle keep-alive ones would be
    // evicted near the cap; see the eviction test). The kernel hands them to the accept loop
    // in order, so these four are accepted before the extra ones.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    for _ in 0..3 {
        let mut extra = TcpStream::connect(server.addr).await.unwrap();
        let answer = get_on(&mut extra, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");
        assert!(answer.contains("\"retry_after_s\":1"), "{answer}");
        let (closed, _) = closed_by_peer(&mut extra).await;
        assert!(closed);
    }
    // The held connections are still served.
    assert!(get_on(&mut held[0], "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // Closing one frees its place (once the server has seen the close).
    drop(held.pop());
    let mut served = false;
    for _ in 0..100 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        if get_on(&mut s, "/healthz").await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed place was never reused");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight() {
    let server = TestServer::start(test_limits()).await;
    let url = format!("{}/slow?ms=1000", server.base);
    let entered = server.state.slow_entered.clone();
    let entered_wait = entered.notified();
    let in_flight = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::timeout(WAIT_MAX, entered_wait).await.unwrap();
    let addr = server.addr;
    server.stop().await;
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["slept_ms"], 1000);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn health_readiness_metrics_openapi() {
    let server = TestServer::start(test_limits()).await;
    let b = &server.base;
    let r = reqwest::get(format!("{b}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    let r = reqwest::get(format!("{b}/readyz")).await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let body = check_error(r, 503, "not_ready").await;
    assert_eq!(body["error"]["details"]["reason"], "starting");
    server.readiness.set_ready();
    let r = reqwest::get(format!("{b}/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready"}));
    server.readiness.set_not_ready("store unreachable");
    let r = reqwest::get(format!("{b}/readyz")).await.unwrap();
    let body = check_error(r, 503, "not_ready").await;
    assert_eq!(body["error"]["details"]["reason"], "store unreachable");

    let _ = reqwest::get(format!("{b}/no/such/path/12345"))
        .await
        .unwrap();
    let text = reqwest::get(format!("{b}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("kataar_http_requests_total{"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("kataar_http_requests_total")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(!text.contains("12345"), "raw paths must not be labels");
    assert!(
        text.contains("kataar_http_request_duration_seconds_bucket"),
        "{text}"
    );

    let r = reqwest::get(format!("{b}/openapi.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/healthz"]["get"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    server.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let server = TestServer::start(test_limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("800\r\n{}\r\n", " ".repeat(0x800));
    stream.write_all(chunk.as_bytes()).await.unwrap();
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let (_, seen) = closed_by_peer_or_answer(&mut stream).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    server.stop().await;
}

/// Read one response (until the body's JSON closes or the peer closes).
async fn closed_by_peer_or_answer(stream: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut seen = Vec::new();
    let result = tokio::time::timeout(WAIT_MAX, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.ends_with(b"}}") {
                        return;
                    }
                }
            }
        }
    })
    .await;
    (result.is_ok(), seen)
}

#[tokio::test]
async fn metrics_can_live_on_their_own_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, metrics_addr) = (
        listener.local_addr().unwrap(),
        metrics_listener.local_addr().unwrap(),
    );
    let ops = Ops::new(Readiness::new(), init_metrics(), false, &openapi_base());
    let state = AppState {
        slow_entered: Arc::new(Notify::new()),
    };
    let app = build_app(api(), state, &ops, &test_limits());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        run_server(
            listener,
            Some(metrics_listener),
            app,
            &ops,
            test_limits(),
            shutdown,
        )
        .await
    });
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    check_error(r, 404, "not_found").await;
    let r = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("kataar_http_requests_total"));
    let r = reqwest::get(format!("http://{metrics_addr}/healthz"))
        .await
        .unwrap();
    check_error(r, 404, "not_found").await;
    let _ = stop.send(());
    tokio::time::timeout(WAIT_MAX, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A connection from `ip` (a loopback address) to `to`.
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{ip}:0").parse::<SocketAddr>().unwrap())
        .unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn one_address_is_capped_at_connections_per_client_max() {
    let limits = ServerLimits {
        connections_per_client_max: 3,
        header_read_timeout: Duration::from_secs(10),
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.1", server.addr).await;
        assert!(get_on(&mut s, "/healthz").await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // The fourth from the same address: a fast 429 in the contract shape, then closed.
    let mut extra = connect_from("127.0.0.1", server.addr).await;
    let answer = get_on(&mut extra, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains("\"code\":\"too_many_requests\""),
        "{answer}"
    );
    assert!(closed_by_peer(&mut extra).await.0);
    // Another address is served meanwhile, and the held connections still are.
    let mut other = connect_from("127.0.0.2", server.addr).await;
    assert!(get_on(&mut other, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(get_on(&mut held[2], "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // A closed connection gives its address's place back.
    drop(held.pop());
    let mut served = false;
    for _ in 0..100 {
        let mut s = connect_from("127.0.0.1", server.addr).await;
        if get_on(&mut s, "/healthz").await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed place was never reused");
    server.stop().await;
}

#[tokio::test]
async fn trusted_proxies_are_not_capped_per_address() {
    let limits = ServerLimits {
        connections_per_client_max: 2,
        trusted_proxies: kataar_admission::TrustedProxies {
            header: Some(http::HeaderName::from_static("x-forwarded-for")),
            cidrs: vec!["127.0.0.3/32".parse().unwrap()],
        },
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = connect_from("127.0.0.3", server.addr).await;
        assert!(get_on(&mut s, "/healthz").await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut others = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.4", server.addr).await;
        assert!(get_on(&mut s, "/healthz").await.starts_with("HTTP/1.1 200"));
        others.push(s);
    }
    let mut extra = connect_from("127.0.0.4", server.addr).await;
    assert!(get_on(&mut extra, "/healthz")
        .await
        .starts_with("HTTP/1.1 429"));
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_evicted_near_the_connection_cap() {
    // 90 % of 10: the ninth open connection puts the server near its cap.
    let limits = ServerLimits {
        connections_max: 10,
        keepalive_idle: Duration::from_secs(600),
        header_read_timeout: Duration::from_secs(10),
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_on(&mut s, "/healthz").await.starts_with("HTTP/1.1 200"));
        idle.push(s);
    }
    // Below the threshold, idle connections stay (keepalive_idle is 10 minutes).
    assert!(get_on(&mut idle[0], "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // The ninth connection puts the server near its cap: idle connections are closed by the
    // server (as many as it takes to fall below the threshold again), the newcomer is served.
    let mut newcomer = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_on(&mut newcomer, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    let mut evicted = vec![false; idle.len()];
    for _ in 0..400 {
        for (i, s) in idle.iter_mut().enumerate() {
            let mut buf = [0u8; 64];
            if evicted[i] {
                continue;
            }
            match s.try_read(&mut buf) {
                Ok(0) => evicted[i] = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => evicted[i] = true,
                Ok(_) => {}
            }
        }
        if evicted.iter().any(|e| *e) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        evicted.iter().any(|e| *e),
        "no idle connection was evicted near the cap"
    );
    // The survivors are still served (below the threshold they are kept alive again).
    for (s, gone) in idle.iter_mut().zip(&evicted) {
        if !gone {
            assert!(get_on(s, "/healthz").await.starts_with("HTTP/1.1 200"));
            break;
        }
    }
    for _ in 0..5 {
        let r = reqwest::get(format!("{}/healthz", server.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    server.stop().await;
}

/// A request whose head carries one header of `value_len` bytes.
fn head_with_header(value_len: usize) -> Vec<u8> {
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', value_len));
    head.extend_from_slice(b"\r\n\r\n");
    head
}

#[tokio::test]
async fn a_request_head_over_header_bytes_max_is_431() {
    let limits = ServerLimits {
        header_bytes_max: 16 * 1024,
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    // Just under the bound: served.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&head_with_header(15 * 1024)).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT_MAX, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Over it: 431 (or a plain close), never served, and the connection ends.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let _ = s.write_all(&head_with_header(17 * 1024)).await;
    let (closed, seen) = closed_by_peer(&mut s).await;
    assert!(closed);
    assert!(
        seen.is_empty() || seen.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    // A huge head is cut off too, not buffered.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let _ = s.write_all(&head_with_header(1024 * 1024)).await;
    assert!(closed_by_peer(&mut s).await.0);
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused_and_closed() {
    let limits = ServerLimits {
        body_read_timeout: Duration::from_secs(1),
        ..test_limits()
    };
    let server = TestServer::start(limits).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 40\r\n\r\n{\"na",
    )
    .await
    .unwrap();
    let (closed, seen) = closed_by_peer(&mut s).await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(closed, "a trickled body kept its connection");
    assert!(seen.starts_with("HTTP/1.1 400"), "{seen}");
    assert!(seen.contains("\"code\":\"invalid_request\""), "{seen}");
    assert!(
        seen.to_ascii_lowercase().contains("connection: close"),
        "{seen}"
    );
    // A whole body is read and handled as before.
    let r = reqwest::Client::new()
        .post(format!("{}/echo", server.base))
        .json(&json!({"name": "Asha", "birth_year": 1980}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}
