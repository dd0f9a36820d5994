//! The `kataar` binary's command line: version, configuration precedence and redaction, exit
//! codes, the listening line, `/healthz` and a clean exit on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KATAAR: &str = env!("CARGO_BIN_EXE_kataar");

/// A command with no `KATAAR_*` or log variables inherited from the test's environment.
fn kataar() -> Command {
    let mut cmd = Command::new(KATAAR);
    for (key, _) in std::env::vars() {
        if key.starts_with("KATAAR_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let (code, out, _) = run(kataar().arg("--version"));
    assert_eq!(code, 0);
    assert!(out.starts_with("kataar "), "{out}");
    let (code, out, _) = run(kataar().arg("--help"));
    assert_eq!(code, 0);
    assert!(
        out.contains("serve") && out.contains("migrate") && out.contains("admin"),
        "{out}"
    );
    let (code, _, _) = run(kataar().arg("serve").arg("--no-such-flag"));
    assert_eq!(code, 2);
}

#[test]
fn print_config_shows_precedence_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kataar.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7001\"\nconnections_max = 111\nrequest_timeout_s = 7\n\
         token_secret = \"file-secret-abc\"\n[admission]\nbrowse_rate_per_s = 5\n",
    )
    .unwrap();
    let (code, out, err) = run(kataar()
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .args(["--connections-max", "333"])
        .env("KATAAR_CONNECTIONS_MAX", "222")
        .env("KATAAR_LISTEN", "127.0.0.1:7002")
        .env(
            "KATAAR_DATABASE_URL",
            "postgres://kataar:hunter2@127.0.0.1:5432/kataar",
        )
        .env("KATAAR_OTP_SECRET", "env-otp-secret-xyz")
        .env("KATAAR_ADMISSION_BOOKING_RATE_PER_S", "9"));
    assert_eq!(code, 0, "{err}");
    let config: toml::Table = out.parse().unwrap();
    assert_eq!(
        config["connections_max"].as_integer(),
        Some(333),
        "flag over env"
    );
    assert_eq!(
        config["listen"].as_str(),
        Some("127.0.0.1:7002"),
        "env over file"
    );
    assert_eq!(
        config["request_timeout_s"].as_integer(),
        Some(7),
        "file over default"
    );
    assert_eq!(config["keepalive_idle_s"].as_integer(), Some(60), "default");
    assert_eq!(
        config["admission"]["browse_rate_per_s"].as_float(),
        Some(5.0)
    );
    assert_eq!(
        config["admission"]["booking_rate_per_s"].as_float(),
        Some(9.0)
    );
    assert_eq!(
        config["admission"]["client_burst"].as_integer(),
        Some(100),
        "admission defaults are printed too"
    );
    for secret in ["file-secret-abc", "hunter2", "env-otp-secret-xyz"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} leaked:\n{out}"
        );
    }
    assert_eq!(config["token_secret"].as_str(), Some("<redacted>"));
    assert_eq!(
        config["database_url"].as_str(),
        Some("postgres://kataar:<redacted>@127.0.0.1:5432/kataar")
    );
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let (code, _, err) = run(kataar()
        .args(["serve", "--print-config"])
        .env("KATAAR_REQUEST_TIMEOUT_S", "soon"));
    assert_eq!(code, 2);
    assert!(err.contains("request_timeout_s"), "{err}");

    let (code, _, err) = run(kataar().args(["serve", "--print-config", "--timezone", "Mars/Base"]));
    assert_eq!(code, 2);
    assert!(err.contains("timezone"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kataar.toml");
    std::fs::write(&file, "conections_max = 5\n").unwrap();
    let (code, _, err) = run(kataar()
        .args(["serve", "--print-config", "--config"])
        .arg(&file));
    assert_eq!(code, 2);
    assert!(err.contains("conections_max"), "{err}");

    let (code, _, err) = run(kataar().args(["serve", "--config", "/nonexistent/kataar.toml"]));
    assert_eq!(code, 2);
    assert!(err.contains("config"), "{err}");
}

#[test]
fn the_log_otp_sender_is_refused_outside_demo() {
    let dir = tempfile::tempdir().unwrap();
    for sender in [None, Some("log")] {
        let mut cmd = kataar();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path());
        if let Some(s) = sender {
            cmd.args(["--otp-sender", s]);
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 2, "{sender:?}: {out} {err}");
        assert!(
            err.contains("otp_sender") && err.contains("--demo"),
            "{err}"
        );
        assert!(!out.contains("listening"), "{out}");
    }
    // A webhook sender needs the secret it signs with.
    let (code, _, err) = run(kataar()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--otp-sender", "webhook:https://sms.example.in/otp"]));
    assert_eq!(code, 2);
    assert!(err.contains("otp_webhook_secret"), "{err}");
}

#[test]
fn store_commands_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = run(kataar().arg("migrate").arg("--data-dir").arg(&data));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(kataar()
        .args([
            "admin",
            "create-key",
            "--role",
            "centre",
            "--centres",
            "12,13",
        ])
        .arg("--data-dir")
        .arg(&data));
    assert_eq!(code, 0, "{err}");
    let key = out.lines().next().unwrap();
    assert!(key.starts_with("kop_"), "{out}");
    assert!(err.contains("centres 12,13"), "{err}");
    assert!(
        !err.contains(key),
        "the key is printed once, on stdout only"
    );
    // Bad usage is exit 2: an unknown role, a centre key without centres, an admin with them.
    let (code, _, _) = run(kataar().args(["admin", "create-key", "--role", "nobody"]));
    assert_eq!(code, 2);
    let (code, _, err) = run(kataar()
        .args(["admin", "create-key", "--role", "centre"])
        .arg("--data-dir")
        .arg(&data));
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(kataar()
        .args(["admin", "create-key", "--role", "admin", "--centres", "1"])
        .arg("--data-dir")
        .arg(&data));
    assert_eq!(code, 2);
    // A store that cannot be opened is exit 1 with a message, not a panic.
    let (code, _, err) = run(kataar().args([
        "migrate",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/none",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("kataar:"), "{err}");
}

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_prints_the_address_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = kataar()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--otp-sender")
        .arg(format!("file:{}", dir.path().join("otp.jsonl").display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line
        .strip_prefix("kataar listening on http://")
        .unwrap()
        .to_owned();
    assert!(!addr.ends_with(":0"), "{line}");

    let response = http_get(&addr, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("{\"status\":\"ok\"}"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-request-id: "),
        "{response}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = running.0.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    // Exactly one line on stdout.
    assert!(lines.next().is_none());
}

#[test]
fn verify_certificate_offline_from_a_pdf_a_payload_and_the_published_keys() {
    use kataar_documents::{render_certificate, CertificateRecord, CertificateSigner, DoseEntry};
    let dir = tempfile::tempdir().unwrap();
    let secret = "6b".repeat(32);
    let signer = CertificateSigner::from_secret(&[0x6b; 32]).unwrap();
    let record = CertificateRecord::new(
        5,
        "Asha Devi".into(),
        1980,
        "XXXX-XXXX-0123".into(),
        vec![DoseEntry {
            dose: 1,
            vaccine: "COVISHIELD".into(),
            batch: "4121Z025".into(),
            date: "2026-12-01".into(),
            centre_id: 3,
            centre_name: "District Hospital".into(),
        }],
    );
    let pdf = dir.path().join("certificate.pdf");
    std::fs::write(
        &pdf,
        render_certificate(&record, &signer, kataar_documents::Lang::En).unwrap(),
    )
    .unwrap();
    let payload = signer.sign(&record);

    // The server started with this secret publishes the key: fetch it with --key-url.
    let data = dir.path().join("data");
    let child = kataar()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("KATAAR_CERTIFICATE_SECRET", &secret)
        .env(
            "KATAAR_OTP_SENDER",
            format!("file:{}", dir.path().join("otp.jsonl").display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let addr = line
        .strip_prefix("kataar listening on http://")
        .unwrap()
        .to_owned();
    let url = format!("http://{addr}/v1/certificates/keys");
    let (code, out, err) = run(kataar()
        .args(["verify-certificate", "--key-url", &url])
        .arg(&pdf));
    assert_eq!(code, 0, "{out} {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["beneficiary"]["name"], "Asha Devi");
    assert_eq!(v["doses"][0]["batch"], "4121Z025");
    assert_eq!(v["fully_vaccinated"], false);
    // The keys saved to a file do the same, offline; so does the bare payload.
    let keys = http_get(&addr, "/v1/certificates/keys");
    let body = keys.split("\r\n\r\n").nth(1).unwrap().to_owned();
    drop(running);
    let keys_file = dir.path().join("keys.json");
    std::fs::write(&keys_file, &body).unwrap();
    let (code, out, _) = run(kataar()
        .args(["verify-certificate", "--key"])
        .arg(&keys_file)
        .arg(&payload));
    assert_eq!(code, 0, "{out}");
    // One byte changed: exit 1, not valid.
    let mut changed = payload.clone().into_bytes();
    let i = changed.len() - 10;
    changed[i] = if changed[i] == b'Q' { b'R' } else { b'Q' };
    let (code, out, _) = run(kataar()
        .args(["verify-certificate", "--key"])
        .arg(&keys_file)
        .arg(String::from_utf8(changed).unwrap()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"valid\":false"), "{out}");
    // Another server's key: exit 1.
    let other = CertificateSigner::from_secret(&[1u8; 32]).unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, other.public_key().encoded()).unwrap();
    let (code, _, _) = run(kataar()
        .args(["verify-certificate", "--key"])
        .arg(&other_key)
        .arg(&pdf));
    assert_eq!(code, 1);
    // No key given, or a PDF that is not a certificate: bad usage.
    let (code, _, _) = run(kataar().args(["verify-certificate", &payload]));
    assert_eq!(code, 2);
    let not_cert = dir.path().join("other.pdf");
    std::fs::write(&not_cert, b"%PDF-1.7\nnot really").unwrap();
    let (code, _, err) = run(kataar()
        .args(["verify-certificate", "--key"])
        .arg(&keys_file)
        .arg(&not_cert));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn verify_draw_recomputes_a_published_draw_and_catches_a_change() {
    use kataar_waitroom::{Key, Queue, QueueConfig};
    let t0 = 1_800_000_000_000u64;
    let cfg = QueueConfig {
        release_id: 3,
        created_at_ms: t0,
        opens_at_ms: t0 + 1_000,
        admit_per_s: 10.0,
        pass_ttl_s: 300,
        keepalive_s: 60,
        tickets_max: 1_000,
        poll_budget_per_s: 100.0,
        poll_min_s: 2,
        poll_max_s: 60,
    };
    let mut q = Queue::new(cfg, [5; 32], Key::new([6; 32]));
    for a in 0..40 {
        q.enqueue(a, t0).unwrap();
    }
    let commitment = q.commitment_hex();
    q.advance(t0 + 1_000, 100);
    let (secret, tickets, order) = q.published_draw().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, order: &[String]| {
        let path = dir.path().join(name);
        let body = serde_json::json!({"release_id": 3, "commitment": commitment,
            "secret": hex::encode(secret), "tickets": tickets, "order": order,
            "algorithm": kataar_waitroom::draw::ALGORITHM});
        std::fs::write(&path, body.to_string()).unwrap();
        path
    };
    let good = write("draw.json", &order);
    let (code, out, err) = run(kataar().arg("verify-draw").arg(&good).args([
        "--commitment",
        &commitment,
        "--ticket",
        &order[7],
    ]));
    assert_eq!(code, 0, "{out} {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["matches"], true);
    assert_eq!(v["rank"], 8);
    assert_eq!(v["tickets"], 40);

    // Two places swapped, or a commitment other than the one published before: not genuine.
    let mut swapped = order.clone();
    swapped.swap(0, 1);
    let (code, out, _) = run(kataar()
        .arg("verify-draw")
        .arg(write("swapped.json", &swapped)));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("OrderMismatch"), "{out}");
    let (code, out, _) = run(kataar()
        .arg("verify-draw")
        .arg(&good)
        .args(["--commitment", &"0".repeat(64)]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CommitmentMismatch"), "{out}");
    // Not a draw at all: bad usage.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{}").unwrap();
    let (code, _, err) = run(kataar().arg("verify-draw").arg(&junk));
    assert_eq!(code, 2, "{err}");
}
