//! A lean HTTP/1.1 client for the ceiling runs: hyper's connection-level client on plain
//! keep-alive connections (no pipelining), one small idle list per loopback source address, no
//! URL parsing, redirects, decompression or per-request timers on the hot path. `reqwest` costs
//! several times more CPU per request, and on a 2-core box the client shares the machine with the
//! server: with `reqwest` the kit measured its own ceiling, not the server's.
//!
//! Each request checks a connection out of its address's idle list (or dials a new one bound to
//! that address), sends, reads the whole body, and checks the connection back in if it is still
//! usable. Transport errors and timeouts are `failed` answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

use crate::exec::{CONNECT_TIMEOUT_S, REQUEST_TIMEOUT_S, SOURCE_ADDRS_MAX};
use crate::stats::{Answer, Lane, Outcome};

/// Most idle connections kept per source address (more are closed on check-in).
pub const IDLE_PER_ADDR_MAX: usize = 4096;

/// Errors building a lean client.
#[derive(Debug, thiserror::Error)]
pub enum LeanError {
    /// The base URL is not `http://IP:PORT`.
    #[error("not an http://IP:PORT base URL: {0}")]
    BadBase(String),
}

type Sender = SendRequest<Full<Bytes>>;

struct Addr {
    local: IpAddr,
    idle: Mutex<Vec<Sender>>,
}

/// Lean clients of one server, one per loopback source address (127.0.0.2, 127.0.0.3, …).
#[derive(Clone)]
pub struct LeanClients {
    server: SocketAddr,
    host: Arc<str>,
    addrs: Arc<Vec<Addr>>,
}

/// What a lean request sends.
pub struct LeanRequest {
    /// Method.
    pub method: http::Method,
    /// Path and query (origin form).
    pub path: String,
    /// Bearer token, if any.
    pub bearer: Option<Arc<str>>,
    /// `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// JSON body, if any.
    pub json: Option<Bytes>,
}

impl LeanRequest {
    /// `GET path`.
    pub fn get(path: String) -> Self {
        Self {
            method: http::Method::GET,
            path,
            bearer: None,
            idempotency_key: None,
            json: None,
        }
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: String, body: &serde_json::Value) -> Self {
        Self {
            method: http::Method::POST,
            path,
            bearer: None,
            idempotency_key: None,
            json: Some(Bytes::from(body.to_string())),
        }
    }
}

impl LeanClients {
    /// Clients of the server at `base` (`http://IP:PORT`), `n` source addresses (clamped to
    /// 1..=[`SOURCE_ADDRS_MAX`]).
    pub fn new(base: &str, n: u32) -> Result<Self, LeanError> {
        let hostport = base
            .strip_prefix("http://")
            .map(|s| s.trim_end_matches('/'))
            .ok_or_else(|| LeanError::BadBase(base.to_owned()))?;
        let server: SocketAddr = hostport
            .parse()
            .map_err(|_| LeanError::BadBase(base.to_owned()))?;
        let n = n.clamp(1, SOURCE_ADDRS_MAX);
        let addrs = (0..n)
            .map(|i| Addr {
                local: IpAddr::V4(Ipv4Addr::new(127, 0, 0, u8::try_from(2 + i).unwrap_or(255))),
                idle: Mutex::new(Vec::new()),
            })
            .collect();
        Ok(Self {
            server,
            host: hostport.into(),
            addrs: Arc::new(addrs),
        })
    }

    async fn connect(&self, local: IpAddr) -> Option<Sender> {
        let sock = tokio::net::TcpSocket::new_v4().ok()?;
        sock.bind(SocketAddr::new(local, 0)).ok()?;
        let stream = tokio::time::timeout(
            Duration::from_secs(CONNECT_TIMEOUT_S),
            sock.connect(self.server),
        )
        .await
        .ok()?
        .ok()?;
        stream.set_nodelay(true).ok()?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Some(sender)
    }

    /// Sends `req` from simulated client `client`'s address and classifies the answer; for a
    /// 201 with `want_booking_id`, reads `booking_id` from the body.
    pub fn send(
        &self,
        client: u32,
        lane: Lane,
        req: LeanRequest,
        want_booking_id: bool,
    ) -> BoxFuture<'static, Answer> {
        let this = self.clone();
        async move {
            let fut = this.send_inner(client, lane, req, want_booking_id);
            tokio::time::timeout(Duration::from_secs(REQUEST_TIMEOUT_S), fut)
                .await
                .unwrap_or_else(|_| Answer::failed(lane))
        }
        .boxed()
    }

    async fn send_inner(
        &self,
        client: u32,
        lane: Lane,
        req: LeanRequest,
        want_booking_id: bool,
    ) -> Answer {
        let i = (client as usize) % self.addrs.len().max(1);
        let Some(addr) = self.addrs.get(i) else {
            return Answer::failed(lane);
        };
        let pooled = {
            let mut idle = addr.idle.lock();
            let mut found = None;
            while let Some(s) = idle.pop() {
                if !s.is_closed() {
                    found = Some(s);
                    break;
                }
            }
            found
        };
        let mut sender = match pooled {
            Some(s) => s,
            None => match self.connect(addr.local).await {
                Some(s) => s,
                None => return Answer::failed(lane),
            },
        };
        if sender.ready().await.is_err() {
            return Answer::failed(lane);
        }
        let mut b = http::Request::builder()
            .method(req.method)
            .uri(req.path)
            .header(http::header::HOST, &*self.host);
        if let Some(t) = &req.bearer {
            b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(k) = &req.idempotency_key {
            b = b.header("idempotency-key", k.as_str());
        }
        let body = match req.json {
            Some(j) => {
                b = b.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(j)
            }
            None => Full::new(Bytes::new()),
        };
        let Ok(request) = b.body(body) else {
            return Answer::failed(lane);
        };
        let Ok(resp) = sender.send_request(request).await else {
            return Answer::failed(lane);
        };
        let status = resp.status().as_u16();
        let retry_after_s = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let Ok(collected) = resp.into_body().collect().await else {
            return Answer::failed(lane);
        };
        if !sender.is_closed() {
            let mut idle = addr.idle.lock();
            if idle.len() < IDLE_PER_ADDR_MAX {
                idle.push(sender);
            }
        }
        let booking_id = if want_booking_id && status == 201 {
            match serde_json::from_slice::<serde_json::Value>(&collected.to_bytes()) {
                Ok(v) => v.get("booking_id").and_then(serde_json::Value::as_i64),
                Err(_) => return Answer::failed(lane),
            }
        } else {
            None
        };
        Answer {
            lane,
            outcome: Outcome::from_status(status),
            status,
            retry_after_s,
            booking_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_must_be_an_ip_and_port() {
        assert!(LeanClients::new("http://127.0.0.1:8080", 4).is_ok());
        assert!(LeanClients::new("http://127.0.0.1:8080/", 4).is_ok());
        assert!(LeanClients::new("https://127.0.0.1:8080", 4).is_err());
        assert!(LeanClients::new("http://localhost:8080", 4).is_err());
    }
}
