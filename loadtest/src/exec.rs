//! HTTP executors: a set of clients each bound to its own loopback source address (127.0.0.2,
//! 127.0.0.3, …) so per-client limits behave as in the field, and the simple executors for the
//! hello-world server and the naive baseline.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::Rng;

use crate::lean::{LeanClients, LeanRequest};
use crate::sched::{Executor, Planned};
use crate::stats::{Answer, Lane, Outcome};

/// Most distinct loopback source addresses (127.0.0.2 ..= 127.0.0.201).
pub const SOURCE_ADDRS_MAX: u32 = 200;
/// Per-request timeout of the load clients.
pub const REQUEST_TIMEOUT_S: u64 = 30;
/// Connect timeout of the load clients.
pub const CONNECT_TIMEOUT_S: u64 = 5;

/// One `reqwest::Client` per simulated source address.
#[derive(Clone)]
pub struct ClientSet {
    clients: Arc<Vec<reqwest::Client>>,
}

impl ClientSet {
    /// `n` clients (clamped to 1..=[`SOURCE_ADDRS_MAX`]) bound to 127.0.0.2, 127.0.0.3, ….
    pub fn new(n: u32) -> Result<Self, reqwest::Error> {
        let n = n.clamp(1, SOURCE_ADDRS_MAX);
        let mut clients = Vec::with_capacity(n as usize);
        for i in 0..n {
            let octet = u8::try_from(2 + i).unwrap_or(255);
            let addr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet));
            clients.push(
                reqwest::Client::builder()
                    .local_address(addr)
                    .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
                    .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_S))
                    .tcp_nodelay(true)
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build()?,
            );
        }
        Ok(Self {
            clients: Arc::new(clients),
        })
    }

    /// The client for simulated client `c`.
    pub fn get(&self, c: u32) -> &reqwest::Client {
        let i = (c as usize) % self.clients.len().max(1);
        &self.clients[i]
    }

    /// How many source addresses.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Never true (at least one client).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// `Retry-After` in whole seconds, if present and numeric.
pub fn retry_after_s(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Classifies a response; for a 201 booking, reads `booking_id` from the body.
pub async fn classify(
    lane: Lane,
    resp: Result<reqwest::Response, reqwest::Error>,
    want_booking_id: bool,
) -> Answer {
    let Ok(resp) = resp else {
        return Answer::failed(lane);
    };
    let status = resp.status().as_u16();
    let retry = retry_after_s(&resp);
    let booking_id = if want_booking_id && status == 201 {
        match resp.json::<serde_json::Value>().await {
            Ok(v) => v.get("booking_id").and_then(serde_json::Value::as_i64),
            Err(_) => return Answer::failed(lane),
        }
    } else {
        // Read the body so the connection can be reused.
        if resp.bytes().await.is_err() {
            return Answer::failed(lane);
        }
        None
    };
    Answer {
        lane,
        outcome: Outcome::from_status(status),
        status,
        retry_after_s: retry,
        booking_id,
    }
}

/// `GET /` against the hello-world server.
pub struct HelloExec {
    /// Clients.
    pub clients: ClientSet,
    /// `http://addr/`.
    pub url: String,
    /// The lean client of the same server, used instead of `clients` when set.
    pub lean: Option<LeanClients>,
}

impl Executor for HelloExec {
    fn execute(&self, item: Planned, _seq: u64, _attempt: u32) -> BoxFuture<'static, Answer> {
        if let Some(lean) = &self.lean {
            return lean.send(
                item.client,
                Lane::Browse,
                LeanRequest::get("/".into()),
                false,
            );
        }
        let fut = self.clients.get(item.client).get(&self.url).send();
        async move { classify(Lane::Browse, fut.await, false).await }.boxed()
    }
}

/// `POST /v1/bookings {"pool_id","person_key"}` against the naive baseline.
pub struct BaselineExec {
    /// Clients.
    pub clients: ClientSet,
    /// `http://addr`.
    pub base: String,
    /// Pools are 1..=npools; 1 means HOT.
    pub npools: i64,
    /// Distinguishes person keys across runs on one database.
    pub run_tag: String,
    /// The lean client of the same server, used instead of `clients` when set.
    pub lean: Option<LeanClients>,
}

impl Executor for BaselineExec {
    fn execute(&self, item: Planned, seq: u64, _attempt: u32) -> BoxFuture<'static, Answer> {
        let pool_id = if self.npools <= 1 {
            1
        } else {
            rand::thread_rng().gen_range(1..=self.npools)
        };
        let body = serde_json::json!({
            "pool_id": pool_id,
            "person_key": format!("{}-{seq}", self.run_tag),
        });
        if let Some(lean) = &self.lean {
            let mut req = LeanRequest::post_json("/v1/bookings".into(), &body);
            req.idempotency_key = Some(format!("{}-{seq}", self.run_tag));
            return lean.send(item.client, Lane::Booking, req, true);
        }
        let fut = self
            .clients
            .get(item.client)
            .post(format!("{}/v1/bookings", self.base))
            .header("Idempotency-Key", format!("{}-{seq}", self.run_tag))
            .json(&body)
            .send();
        async move { classify(Lane::Booking, fut.await, true).await }.boxed()
    }
}
