//! Shared by the tests that drive the real `kataar` binary from outside: a server on port 0
//! (a fresh PostgreSQL database, dropped after, or the embedded store), operator keys made by
//! the CLI, plain HTTP calls, and a citizen who logs in with an OTP and books.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The binary under test.
pub const KATAAR: &str = env!("CARGO_BIN_EXE_kataar");
/// The PostgreSQL server the tests use.
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `kataar` with no `KATAAR_*` variable inherited.
pub fn kataar() -> Command {
    let mut cmd = Command::new(KATAAR);
    for (key, _) in std::env::vars() {
        if key.starts_with("KATAAR_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running at 127.0.0.1:5432");
    tokio::spawn(conn);
    client
}

/// A running `kataar serve --demo` and its store.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Everything the server wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
    /// Where OTPs are written (one JSON line each).
    pub otp_file: PathBuf,
    /// `--data-dir` and, on PostgreSQL, `--database-url`.
    pub store_args: Vec<String>,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `kataar serve --demo` on a fresh PostgreSQL database.
    pub async fn postgres() -> Server {
        Server::postgres_full(KATAAR, &[]).await
    }

    /// `bin serve --demo` on a fresh PostgreSQL database, with `env` set.
    pub async fn postgres_full(bin: &str, env: &[(&str, &str)]) -> Server {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("kataar_bin_{nanos:x}{:x}", std::process::id());
        pg_admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Server::spawn_full(bin, Some((name, url)), &[], env)
    }

    /// `kataar serve --demo` on the embedded store in a temporary directory.
    pub fn embedded() -> Server {
        Server::spawn(None, &[])
    }

    /// Starts the binary with `extra` arguments after the usual ones.
    pub fn spawn(db: Option<(String, String)>, extra: &[&str]) -> Server {
        Server::spawn_full(KATAAR, db, extra, &[])
    }

    /// Starts `bin` (this build's `kataar` or another, e.g. a release build) with `extra`
    /// arguments and `env` variables.
    pub fn spawn_full(
        bin: &str,
        db: Option<(String, String)>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let otp_file = dir.path().join("otp.jsonl");
        let mut store_args = vec![
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ];
        if let Some((_, url)) = &db {
            store_args.push("--database-url".into());
            store_args.push(url.clone());
        }
        let mut cmd = kataar();
        if bin != KATAAR {
            cmd = Command::new(bin);
        }
        let mut child = cmd
            .envs(env.iter().copied())
            .arg("serve")
            .args(&store_args)
            .args(["--listen", "127.0.0.1:0", "--demo"])
            .arg("--otp-sender")
            .arg(format!("file:{}", otp_file.display()))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("kataar listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", log.lock().unwrap()))
            .to_string();
        Server {
            child,
            base,
            log,
            otp_file,
            store_args,
            database: db.map(|(n, _)| n),
            _dir: dir,
        }
    }

    /// An operator key made by `kataar admin create-key` against the server's store.
    pub fn create_key(&self, role_args: &[&str]) -> String {
        let out = kataar()
            .args(["admin", "create-key"])
            .args(role_args)
            .args(&self.store_args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_string();
        assert!(key.starts_with("kop_"), "{key}");
        key
    }

    /// Stops the server (SIGTERM, then waits) and drops its database.
    pub async fn finish(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
        if let Some(name) = self.database.take() {
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
    }

    /// The server's process id (for CPU readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP call; returns (status, headers, JSON body or the text as a JSON string).
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    bearer: Option<&str>,
    body: Option<Value>,
    idem: Option<&str>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn otp_for(file: &Path, mobile: &str) -> (String, String) {
    for _ in 0..1000 {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Some(line) = text.lines().rev().find(|l| l.contains(mobile)) {
                let v: Value = serde_json::from_str(line).unwrap();
                return (
                    v["txn_id"].as_str().unwrap().into(),
                    v["otp"].as_str().unwrap().into(),
                );
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no OTP for {mobile}");
}

/// A valid Aadhaar number made from `seed`.
pub fn aadhaar(seed: u64) -> String {
    let body = format!("{}{:010}", 2 + seed % 8, seed % 10_000_000_000);
    let check = kataar_identity::photo_id::verhoeff_check_digit(&body).unwrap();
    format!("{body}{check}")
}

/// A citizen with one beneficiary: (token, beneficiary id).
pub async fn citizen(
    srv: &Server,
    http: &reqwest::Client,
    mobile: &str,
    seed: u64,
) -> (String, u64) {
    let base = &srv.base;
    let (s, v) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/auth/otp"),
        None,
        Some(json!({ "mobile": mobile })),
        None,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let (txn, otp) = otp_for(&srv.otp_file, mobile);
    let (s, v) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/auth/otp/verify"),
        None,
        Some(json!({ "txn_id": txn, "otp": otp })),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let (s, v) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/beneficiaries"),
        Some(&token),
        Some(
            json!({"name": format!("Citizen {seed}"), "birth_year": 1980, "gender": "female",
            "id_type": "aadhaar", "id_number": aadhaar(seed)}),
        ),
        None,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    (token, v["beneficiary_id"].as_u64().unwrap())
}

/// Books dose 1 of `session_id` / `slot_id`; returns the booking.
pub async fn book(
    srv: &Server,
    http: &reqwest::Client,
    token: &str,
    beneficiary_id: u64,
    session_id: u64,
    slot_id: u64,
) -> Value {
    let (s, v) = call(
        http,
        reqwest::Method::POST,
        format!("{}/v1/bookings", srv.base),
        Some(token),
        Some(
            json!({"beneficiary_id": beneficiary_id, "session_id": session_id,
            "slot_id": slot_id, "dose": 1}),
        ),
        Some(&format!("book-{beneficiary_id}-{session_id}")),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v
}

/// A session of the demo drive a 1980-born citizen can book dose 1 of, in `district_id`:
/// (centre id, session id, slot id).
pub async fn bookable(srv: &Server, http: &reqwest::Client, district_id: u64) -> (u64, u64, u64) {
    let (s, v) = call(
        http,
        reqwest::Method::GET,
        format!("{}/v1/availability?district_id={district_id}", srv.base),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for c in v["centres"].as_array().unwrap() {
        for sess in c["sessions"].as_array().unwrap() {
            let fits = sess["min_age"].as_u64().unwrap_or(99) <= 45
                && sess["max_age"].as_u64().is_none_or(|m| m >= 60);
            let slot = sess["slots"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["available_dose1"].as_u64().unwrap_or(0) > 0);
            if let (true, Some(slot)) = (fits, slot) {
                return (
                    c["centre_id"].as_u64().unwrap(),
                    sess["session_id"].as_u64().unwrap(),
                    slot["slot_id"].as_u64().unwrap(),
                );
            }
        }
    }
    panic!("no bookable demo session in district {district_id}: {v}");
}
