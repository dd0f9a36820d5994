//! The real `kataar` binary end to end: `migrate`, `serve`, `admin create-key` against the same
//! store while the server runs, a citizen booking and an operator check-in over real HTTP, a
//! SIGKILL in the middle of the day and a restart that still has every acknowledged booking, and
//! a server log that never carries an OTP or a photo-ID number. On PostgreSQL (a fresh database,
//! dropped after) and on the embedded store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KATAAR: &str = env!("CARGO_BIN_EXE_kataar");
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn kataar() -> Command {
    let mut cmd = Command::new(KATAAR);
    for (key, _) in std::env::vars() {
        if key.starts_with("KATAAR_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Where the store lives: a PostgreSQL URL or nothing (embedded, in the data dir).
#[derive(Clone)]
struct Target {
    database_url: Option<String>,
    data_dir: PathBuf,
}

impl Target {
    fn args(&self) -> Vec<String> {
        let mut v = vec!["--data-dir".into(), self.data_dir.display().to_string()];
        if let Some(url) = &self.database_url {
            v.push("--database-url".into());
            v.push(url.clone());
        }
        v
    }
}

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(target: &Target, otp_file: &Path) -> Server {
        Server::spawn(target, otp_file, false)
    }

    /// `--demo` publishes the demo drive into a store without centres.
    fn start_with_demo(target: &Target, otp_file: &Path) -> Server {
        Server::spawn(target, otp_file, true)
    }

    fn spawn(target: &Target, otp_file: &Path, demo: bool) -> Server {
        Server::spawn_full(target, otp_file, demo, &[])
    }

    fn spawn_with_env(target: &Target, otp_file: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn_full(target, otp_file, false, env)
    }

    fn spawn_full(target: &Target, otp_file: &Path, demo: bool, env: &[(&str, &str)]) -> Server {
        let mut child = kataar()
            .arg("serve")
            .args(target.args())
            .args(["--listen", "127.0.0.1:0"])
            .args(demo.then_some("--demo"))
            .envs(env.iter().copied())
            .arg("--otp-sender")
            .arg(format!("file:{}", otp_file.display()))
            .env("KATAAR_LOG", "debug")
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
        let addr = line
            .trim()
            .strip_prefix("kataar listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", log.lock().unwrap()))
            .to_string();
        Server {
            child,
            base: addr,
            log,
        }
    }

    fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log.lock().unwrap().clone();
        log
    }

    fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().clone();
        (status.code().unwrap_or(-1), log)
    }
}

fn create_key(target: &Target, role: &[&str]) -> String {
    create_key_with_id(target, role).0
}

/// A key made by the CLI and its id (from the CLI's `operator key N (…) created`).
fn create_key_with_id(target: &Target, role: &[&str]) -> (String, u64) {
    let out = kataar()
        .args(["admin", "create-key"])
        .args(role)
        .args(target.args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().next().unwrap().trim().to_string();
    assert!(key.starts_with("kop_"), "{key}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&key));
    let id = stderr
        .split("operator key ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no key id in {stderr:?}"));
    (key, id)
}

async fn call(
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
    for _ in 0..500 {
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

fn verhoeff_aadhaar(seed: u64) -> String {
    let body = format!("{}{:010}", 2 + seed % 8, seed % 10_000_000_000);
    let check = kataar_identity::photo_id::verhoeff_check_digit(&body).unwrap();
    format!("{body}{check}")
}

/// The whole day.
async fn journey(target: Target, otp_file: PathBuf) {
    let migrate = kataar()
        .arg("migrate")
        .args(target.args())
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let server = Server::start_with_demo(&target, &otp_file);
    let base = server.base.clone();
    let http = reqwest::Client::new();
    // A key created by the CLI while the server runs works at once.
    let admin = create_key(&target, &["--role", "admin", "--name", "district office"]);
    let (s, v) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/admin/centres"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // A key revoked by the CLI while the server runs stops working within seconds.
    let (spare, spare_id) = create_key_with_id(&target, &["--role", "admin"]);
    let centres = format!("{base}/v1/admin/centres");
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        centres.clone(),
        Some(&spare),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let revoke = kataar()
        .args(["admin", "revoke-key", &spare_id.to_string()])
        .args(target.args())
        .output()
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let revoked_at = std::time::Instant::now();
    loop {
        let (s, _) = call(
            &http,
            reqwest::Method::GET,
            centres.clone(),
            Some(&spare),
            None,
            None,
        )
        .await;
        if s == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "a revoked key still works after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other keys are untouched; an unknown key id is exit 1 with a message.
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        centres.clone(),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let unknown = kataar()
        .args(["admin", "revoke-key", "999999"])
        .args(target.args())
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no operator key 999999"));
    // Bad usage is exit 2.
    let bad = kataar()
        .args(["admin", "create-key", "--role", "centre"])
        .args(target.args())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let centre_body = json!({"name": "PHC Kolar", "state_id": 20, "district_id": 312, "pincode": "462001",
        "address": "Kolar Road", "block_name": "Huzur", "lat": 23.2, "long": 77.4, "fee_type": "free"});
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/admin/centres"),
        Some(&admin),
        Some(centre_body),
        None,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let centre_id = v["centre_id"].as_u64().unwrap();
    let session = json!({"centre_id": centre_id, "date": tomorrow, "vaccine": "COVAXIN", "min_age": 18, "max_age": null,
        "slots": [{"start": "09:00", "end": "11:00", "capacity": {"dose1_online": 3, "dose1_walkin": 1, "dose2_online": 0, "dose2_walkin": 0}}]});
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/admin/sessions"),
        Some(&admin),
        Some(session),
        None,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let session_id = v["session_id"].as_u64().unwrap();
    let slot_id = v["slots"][0]["slot_id"].as_u64().unwrap();

    // A citizen logs in with an OTP, adds a beneficiary and books.
    let mobile = "9812345678";
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/auth/otp"),
        None,
        Some(json!({"mobile": mobile})),
        None,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let (txn, otp) = otp_for(&otp_file, mobile);
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/auth/otp/verify"),
        None,
        Some(json!({"txn_id": txn, "otp": otp})),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let aadhaar = verhoeff_aadhaar(4242);
    let (s, v) = call(&http, reqwest::Method::POST, format!("{base}/v1/beneficiaries"), Some(&token),
        Some(json!({"name": "Asha Devi", "birth_year": 1985, "gender": "female", "id_type": "aadhaar", "id_number": aadhaar})), None).await;
    assert_eq!(s, 201, "{v}");
    let beneficiary_id = v["beneficiary_id"].as_u64().unwrap();
    let (s, v) = call(&http, reqwest::Method::POST, format!("{base}/v1/bookings"), Some(&token),
        Some(json!({"beneficiary_id": beneficiary_id, "session_id": session_id, "slot_id": slot_id, "dose": 1})), Some("k-1")).await;
    assert_eq!(s, 201, "{v}");
    let booking_id = v["booking_id"].as_u64().unwrap();
    assert_eq!(v["token_number"], 1);

    // The centre checks the person in.
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/admin/bookings/{booking_id}/check-in"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "checked_in");
    // The revoked key stays revoked after the restart; the others still work.
    let centres = format!("{base}/v1/admin/centres");
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        centres.clone(),
        Some(&spare),
        None,
        None,
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        centres,
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);

    // SIGKILL mid-day: every acknowledged change is there after a restart.
    let first_log = server.kill9();
    let server = Server::start(&target, &otp_file);
    let base = server.base.clone();
    let (s, v) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/bookings/{booking_id}"),
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "checked_in");
    let (s, v) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/availability?centre_id={centre_id}&date={tomorrow}&days=1"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["centres"][0]["sessions"][0]["available_dose1"], 2);
    // The idempotent replay survives the restart too.
    let (s, v) = call(&http, reqwest::Method::POST, format!("{base}/v1/bookings"), Some(&token),
        Some(json!({"beneficiary_id": beneficiary_id, "session_id": session_id, "slot_id": slot_id, "dose": 1})), Some("k-1")).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["booking_id"], booking_id);

    let (code, third_log) = server.terminate();
    assert_eq!(code, 0, "SIGTERM exits 0: {third_log}");
    for log in [&first_log, &third_log] {
        assert!(!log.contains(&otp), "an OTP reached the log");
        assert!(!log.contains(&aadhaar), "a photo-ID number reached the log");
        assert!(!log.contains(&admin), "an operator key reached the log");
        assert!(!log.contains(&token), "a token reached the log");
    }
    assert!(third_log.contains("SIGTERM"), "{third_log}");
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A fresh database `name` (dropped first if a failed run left it), a temporary directory and
/// the target naming both.
async fn fresh_postgres(name: &str) -> (tokio_postgres::Client, tempfile::TempDir, Target) {
    let admin = pg_admin().await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        database_url: Some(format!("postgres://postgres@127.0.0.1:5432/{name}")),
        data_dir: dir.path().join("data"),
    };
    (admin, dir, target)
}

/// Cuts the database's connections and drops it.
async fn drop_postgres(admin: &tokio_postgres::Client, name: &str) {
    let _ = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_day_with_sigkill_and_restart() {
    let name = format!("kataar_bin_{}", std::process::id());
    let (admin, dir, target) = fresh_postgres(&name).await;
    let outcome = tokio::spawn(journey(target, dir.path().join("otp.jsonl"))).await;
    drop_postgres(&admin, &name).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn embedded_day_with_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        database_url: None,
        data_dir: dir.path().join("data"),
    };
    journey(target, dir.path().join("otp.jsonl")).await;
}

/// Starts `kataar serve` expecting it to refuse: returns its exit code and stderr. Fails at
/// once if it starts listening instead.
fn serve_refused(target: &Target, otp_file: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut child = kataar()
        .arg("serve")
        .args(target.args())
        .args(["--listen", "127.0.0.1:0"])
        .arg("--otp-sender")
        .arg(format!("file:{}", otp_file.display()))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server started where it must refuse: {line}");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Logs `mobile` in and registers `pan` on its account; returns the token and the status.
async fn register(base: &str, otp_file: &Path, mobile: &str, pan: &str) -> (String, u16, Value) {
    let http = reqwest::Client::new();
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/auth/otp"),
        None,
        Some(json!({"mobile": mobile})),
        None,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let (txn, otp) = otp_for(otp_file, mobile);
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/auth/otp/verify"),
        None,
        Some(json!({"txn_id": txn, "otp": otp})),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let (s, v) = call(&http, reqwest::Method::POST, format!("{base}/v1/beneficiaries"), Some(&token),
        Some(json!({"name": "Ravi Kumar", "birth_year": 1979, "gender": "male", "id_type": "pan", "id_number": pan})), None).await;
    (token, s, v)
}

/// The secrets in a data directory's `secrets.toml`: (token_key, person_key).
fn stored_secrets(data_dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(data_dir.join("secrets.toml")).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap()
            .trim_matches('"')
            .to_string()
    };
    (field("token_key"), field("person_key"))
}

/// A second host (a fresh data directory) on a database that already holds people: without the
/// database's secrets it refuses to start (exit 2, naming the key), instead of generating new
/// ones that would let the same photo-ID register twice and refuse every token; with them it
/// serves, the old token works and the photo-ID is still taken.
async fn fresh_data_dir_beside_existing_database(database_url: Option<String>, dir: &Path) {
    let first = Target {
        database_url: database_url.clone(),
        data_dir: dir.join("host-a"),
    };
    let otp_file = dir.join("otp.jsonl");
    let server = Server::start(&first, &otp_file);
    let base = format!("http://{}", server.base.trim_start_matches("http://"));
    let (token, s, v) = register(&base, &otp_file, "9811111111", "ABCDE1234F").await;
    assert_eq!(s, 201, "{v}");
    let (code, _) = server.terminate();
    assert_eq!(code, 0);
    let (token_key, person_key) = stored_secrets(&first.data_dir);

    // The embedded store lives in the data directory: what a "new host" loses there is the
    // secrets file alone.
    let second = match &database_url {
        Some(_) => Target {
            database_url: database_url.clone(),
            data_dir: dir.join("host-b"),
        },
        None => {
            std::fs::rename(
                first.data_dir.join("secrets.toml"),
                dir.join("secrets.toml.moved"),
            )
            .unwrap();
            first.clone()
        }
    };
    let (code, err) = serve_refused(&second, &otp_file, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("person_key_secret"), "{err}");
    assert!(
        !second.data_dir.join("secrets.toml").exists(),
        "secrets were generated"
    );

    // A wrong secret is refused too, naming the key; the value is not echoed.
    let wrong = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let (code, err) = serve_refused(
        &second,
        &otp_file,
        &[
            ("KATAAR_PERSON_KEY_SECRET", wrong),
            ("KATAAR_TOKEN_SECRET", &token_key),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("person_key_secret"), "{err}");
    assert!(!err.contains(wrong), "{err}");
    let (code, err) = serve_refused(
        &second,
        &otp_file,
        &[
            ("KATAAR_PERSON_KEY_SECRET", &person_key),
            ("KATAAR_TOKEN_SECRET", wrong),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("token_secret"), "{err}");

    // With the database's secrets configured, the second host serves as the first did.
    let server = Server::spawn_with_env(
        &second,
        &otp_file,
        &[
            ("KATAAR_PERSON_KEY_SECRET", &person_key),
            ("KATAAR_TOKEN_SECRET", &token_key),
        ],
    );
    let base = format!("http://{}", server.base.trim_start_matches("http://"));
    let http = reqwest::Client::new();
    let (s, v) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/beneficiaries"),
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "the first host's token is refused: {v}");
    let (_, s, v) = register(&base, &otp_file, "9822222222", "ABCDE1234F").await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "id_already_registered", "{v}");
    let (code, log) = server.terminate();
    assert_eq!(code, 0, "{log}");
    assert!(
        !log.contains(&person_key) && !log.contains(&token_key),
        "a secret reached the log"
    );
}

#[tokio::test]
async fn postgres_fresh_data_dir_needs_the_database_secrets() {
    let name = format!("kataar_bin_secrets_{}", std::process::id());
    let admin = pg_admin().await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let path = dir.path().to_path_buf();
    let outcome =
        tokio::spawn(
            async move { fresh_data_dir_beside_existing_database(Some(url), &path).await },
        )
        .await;
    drop_postgres(&admin, &name).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn embedded_store_without_its_secrets_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    fresh_data_dir_beside_existing_database(None, dir.path()).await;
}

/// A server whose writer is fenced by a newer server on the same database stops the orderly
/// way and exits 1, saying why; the newer one serves and is ready.
#[tokio::test]
async fn a_fenced_server_stops_and_exits_non_zero() {
    let name = format!("kataar_bin_fence_{}", std::process::id());
    let (admin, dir, target) = fresh_postgres(&name).await;
    let otp_file = dir.path().join("otp.jsonl");
    let http = reqwest::Client::new();
    let old = Server::start_with_demo(&target, &otp_file);
    let key = create_key(&target, &["--role", "admin"]);
    let ready = http
        .get(format!("{}/readyz", old.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // A second server on the same database takes the writer epoch.
    let new = Server::start(&target, &otp_file);
    let ready = http
        .get(format!("{}/readyz", new.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The old server's next commit is refused by the fence: it answers 503 and stops.
    let body = json!({"name": "PHC Fenced", "state_id": 20, "district_id": 312, "pincode": "462001",
        "address": "Kolar Road", "block_name": "Huzur", "lat": 23.2, "long": 77.4, "fee_type": "free"});
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/v1/admin/centres", old.base),
        Some(&key),
        Some(body.clone()),
        None,
    )
    .await;
    assert_eq!(s, 503, "{v}");
    let mut old = old;
    let mut code = None;
    for _ in 0..300 {
        if let Some(status) = old.child.try_wait().unwrap() {
            code = status.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = old.log.lock().unwrap().clone();
    assert_eq!(code, Some(1), "the fenced server did not exit 1: {log}");
    assert!(log.contains("fenced"), "{log}");

    // The newer server commits.
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/v1/admin/centres", new.base),
        Some(&key),
        Some(body),
        None,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let _ = new.kill9();
    drop_postgres(&admin, &name).await;
}

/// `/readyz` follows the store: when the database stops taking connections it turns `503
/// not_ready` with the reason within seconds, and `200` again once the database is back.
#[tokio::test]
async fn readyz_follows_the_stores_reachability() {
    let name = format!("kataar_bin_ready_{}", std::process::id());
    let (admin, dir, target) = fresh_postgres(&name).await;
    let server = Server::start(&target, &dir.path().join("otp.jsonl"));
    let http = reqwest::Client::new();
    let readyz = format!("{}/readyz", server.base);
    let ready = http.get(&readyz).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // The database refuses every connection, and those it had are cut.
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap();
    let cut = std::time::Instant::now();
    let body = loop {
        let r = http.get(&readyz).send().await.unwrap();
        if r.status() == 503 {
            break r.json::<Value>().await.unwrap();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(15),
            "still ready 15 s after the cut"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    assert!(
        body["error"]["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("store")),
        "{body}"
    );

    // Back: ready again without a restart.
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let back = std::time::Instant::now();
    loop {
        let r = http.get(&readyz).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "not ready 15 s after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = server.kill9();
    drop_postgres(&admin, &name).await;
}
