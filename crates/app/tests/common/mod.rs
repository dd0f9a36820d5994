//! End-to-end harness: the real server on port 0 over real HTTP, on a fresh PostgreSQL
//! database per test (dropped afterwards) or on the embedded store in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use kataar_api::Config;
use kataar_app::server::{run, Listening};
use kataar_app::AppState;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

/// The PostgreSQL server tests use.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// An administrator key.
    pub admin_key: String,
    /// The application state (for direct checks).
    pub state: AppState,
    /// Where OTPs are written (one JSON line each).
    pub otp_file: PathBuf,
    /// The HTTP client.
    pub http: Client,
    /// `Some(name)` when on PostgreSQL.
    pub database: Option<String>,
    /// The database URL, when on PostgreSQL.
    pub database_url: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running at 127.0.0.1:5432");
    tokio::spawn(conn);
    client
}

/// A fresh database; returns (name, url).
pub async fn fresh_database() -> (String, String) {
    let name = format!("kataar_e2e_{}", uuid_like());
    pg_admin()
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    (name, url)
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// Drops a test database (terminating its connections first).
pub async fn drop_database(name: &str) {
    let admin = pg_admin().await;
    let _ = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await;
}

impl TestServer {
    /// The server on a fresh PostgreSQL database, with the demo drive.
    pub async fn postgres() -> TestServer {
        let (name, url) = fresh_database().await;
        TestServer::start(Some((name, url)), None).await
    }

    /// The server on the embedded store, with the demo drive.
    pub async fn embedded() -> TestServer {
        TestServer::start(None, None).await
    }

    /// Starts the server (reusing `dir` keeps the embedded store and secrets across restarts).
    pub async fn start(db: Option<(String, String)>, dir: Option<tempfile::TempDir>) -> TestServer {
        TestServer::start_with(db, dir, |_| {}).await
    }

    /// The server on a fresh PostgreSQL database, with the demo drive, after `tweak` has
    /// adjusted the configuration (admission limits, timeouts).
    pub async fn postgres_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let (name, url) = fresh_database().await;
        TestServer::start_with(Some((name, url)), None, tweak).await
    }

    /// Like [`TestServer::start`], with `tweak` applied to the configuration last.
    ///
    /// Every test client connects from 127.0.0.1, like citizens behind one proxy, so the
    /// per-address and per-account admission limits are raised here (tests/admission.rs sets
    /// its own); lane limits keep their defaults.
    pub async fn start_with(
        db: Option<(String, String)>,
        dir: Option<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let otp_file = dir.path().join("otp.jsonl");
        let mut config = Config::defaults();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.data_dir = dir.path().join("data");
        config.demo = true;
        config.otp_sender = Some(format!("file:{}", otp_file.display()));
        config.database_url = db.as_ref().map(|(_, url)| url.clone());
        config.shutdown_grace_s = 5;
        // Tests read availability right after changing it; the answer cache has its own test.
        config.availability_cache_ms = 0;
        for key in [
            "client_rate_per_s",
            "client_burst",
            "account_rate_per_s",
            "account_burst",
            "client_in_flight_max",
            "account_in_flight_max",
        ] {
            config
                .admission
                .insert(key.into(), toml::Value::Integer(1_000_000));
        }
        tweak(&mut config);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<Listening>();
        let join = tokio::spawn(run(
            config,
            async move {
                let _ = stop_rx.await;
            },
            move |l| {
                let _ = ready_tx.send(l);
            },
        ));
        let listening = match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
            Ok(Ok(l)) => l,
            _ => {
                let outcome = join.await;
                panic!("server did not start: {outcome:?}");
            }
        };
        let admin_key = match listening.demo {
            Some(d) => d.admin_key,
            None => create_admin_key(&listening.state).await,
        };
        TestServer {
            base: format!("http://{}", listening.addr),
            admin_key,
            state: listening.state,
            otp_file,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            database: db.as_ref().map(|(n, _)| n.clone()),
            database_url: db.map(|(_, u)| u),
            stop: Some(stop_tx),
            join: Some(join),
            _dir: dir,
        }
    }

    /// Stops the server gracefully and returns its data directory (for a restart).
    pub async fn stop(mut self) -> (Option<(String, String)>, tempfile::TempDir) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(j) = self.join.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), j).await;
        }
        let db = self.database.take().zip(self.database_url.take());
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        (db, dir)
    }

    /// Stops the server and drops its database.
    pub async fn finish(self) {
        let (db, _dir) = self.stop().await;
        if let Some((name, _)) = db {
            drop_database(&name).await;
        }
    }

    /// A request with an optional bearer and JSON body; returns (status, headers, json body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
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

    /// GET returning (status, json).
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::GET, path, bearer, None).await;
        (s, v)
    }

    /// POST JSON returning (status, json).
    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::POST, path, bearer, Some(body)).await;
        (s, v)
    }

    /// The last OTP sent to `mobile` (from the file sender).
    pub async fn otp_for(&self, mobile: &str) -> (String, String) {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&self.otp_file) {
                if let Some(line) = text.lines().rev().find(|l| l.contains(mobile)) {
                    let v: Value = serde_json::from_str(line).unwrap();
                    return (
                        v["txn_id"].as_str().unwrap().to_string(),
                        v["otp"].as_str().unwrap().to_string(),
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no OTP was written for {mobile}");
    }

    /// Logs a citizen in through the real OTP flow; returns the token.
    pub async fn login(&self, mobile: &str) -> String {
        let (s, v) = self
            .post("/v1/auth/otp", None, json!({ "mobile": mobile }))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let (txn, otp) = self.otp_for(mobile).await;
        assert_eq!(v["txn_id"], txn);
        let (s, v) = self
            .post(
                "/v1/auth/otp/verify",
                None,
                json!({ "txn_id": txn, "otp": otp }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

/// Creates an administrator key directly in the engine and returns the clear key.
pub async fn create_admin_key(state: &AppState) -> String {
    let (clear, hash) = kataar_identity::generate_operator_key();
    let key = kataar_domain::OperatorKey {
        operator_id: state.inv.ids.operator(),
        key_hash: hash,
        role: kataar_domain::Role::Admin,
        centres: Vec::new(),
        name: "test admin".into(),
        created_at: state.now(),
    };
    kataar_app::durable::commit(state, state.inv.add_operator_key(key))
        .await
        .unwrap();
    clear.expose_secret().to_string()
}

/// Creates a centre-scoped operator key and returns the clear key.
pub async fn create_centre_key(state: &AppState, centres: &[u64]) -> String {
    let (clear, hash) = kataar_identity::generate_operator_key();
    let key = kataar_domain::OperatorKey {
        operator_id: state.inv.ids.operator(),
        key_hash: hash,
        role: kataar_domain::Role::Centre,
        centres: centres
            .iter()
            .map(|c| kataar_domain::CentreId(*c))
            .collect(),
        name: "test centre".into(),
        created_at: state.now(),
    };
    kataar_app::durable::commit(state, state.inv.add_operator_key(key))
        .await
        .unwrap();
    clear.expose_secret().to_string()
}

/// A valid Aadhaar number made from `seed` (12 digits, first 2-9, Verhoeff check digit).
pub fn aadhaar(seed: u64) -> String {
    let body = format!("{}{:010}", 2 + seed % 8, seed % 10_000_000_000);
    let check = kataar_identity::photo_id::verhoeff_check_digit(&body).unwrap();
    format!("{body}{check}")
}
