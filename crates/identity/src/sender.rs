//! OTP senders: how an issued OTP leaves the process, always off the request path.
//!
//! [`OtpDispatcher::dispatch`] only does a `try_send` into a bounded queue (full: the message is
//! refused, counted in `kataar_otp_dropped_total`, and the caller answers `503` without issuing
//! the OTP); one background task delivers:
//! - `log`: a `warn!` line marked as a demo OTP, the one place an OTP may appear in a log (the
//!   server accepts it with `--demo` only);
//! - `file:PATH`: one JSON line `{"mobile","otp","txn_id","sent_at"}` appended and flushed per
//!   batch (how tests and the load kit log in); the file is created `0600` (an existing file is
//!   narrowed to `0600`);
//! - `webhook:URL`: an HTTP POST of that JSON (`http://` or `https://`, TLS by rustls with the
//!   Mozilla roots) with a timeout and retries with exponential backoff, at most
//!   [`WEBHOOK_IN_FLIGHT_MAX`] at once. Each POST carries [`SIGNATURE_HEADER`]
//!   `sha256=<lowercase hex HMAC-SHA256(secret, body)>`, the secret being the bytes of
//!   `otp_webhook_secret`; a gateway recomputes it over the raw body, compares in constant time,
//!   and may refuse a `sent_at` older than the OTP's 180 s.
//!
//! Metrics: `kataar_otp_sent_total{sender}`, `kataar_otp_failed_total{sender}`,
//! `kataar_otp_dropped_total{sender}`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::mobile::Mobile;
use crate::otp::SixDigits;

/// Default queue length between the request path and the delivery task.
pub const OTP_QUEUE_MAX_DEFAULT: usize = 10_000;
/// Timeout of one webhook POST (connect and response), in milliseconds.
pub const WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// Webhook attempts per OTP, the first one included.
pub const WEBHOOK_ATTEMPTS_MAX: u32 = 4;
/// Wait before the first webhook retry; doubled after each failure.
pub const WEBHOOK_BACKOFF_FIRST_MS: u64 = 200;
/// Longest wait between two webhook attempts.
pub const WEBHOOK_BACKOFF_MAX_MS: u64 = 5_000;
/// Webhook deliveries in flight at once.
pub const WEBHOOK_IN_FLIGHT_MAX: usize = 32;
/// Messages written to the file per batch (one flush each).
pub const FILE_BATCH_MAX: usize = 256;
/// The header carrying the webhook body's signature.
pub const SIGNATURE_HEADER: &str = "Kataar-Signature";
/// Shortest webhook secret accepted, in bytes.
pub const WEBHOOK_SECRET_BYTES_MIN: usize = 16;

/// The key webhook bodies are signed with. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// The secret of `otp_webhook_secret`: its bytes, at least [`WEBHOOK_SECRET_BYTES_MIN`].
    pub fn new(secret: &str) -> Result<WebhookSecret, SenderError> {
        if secret.len() < WEBHOOK_SECRET_BYTES_MIN {
            return Err(SenderError::Spec(
                "otp_webhook_secret must be at least 16 bytes",
            ));
        }
        Ok(WebhookSecret(secret.as_bytes().to_vec()))
    }

    /// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`, the [`SIGNATURE_HEADER`] value.
    pub fn sign(&self, body: &[u8]) -> String {
        use hmac::Mac;
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Where OTPs go: the `otp_sender` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpSenderSpec {
    /// `log`: printed to the console log, marked as a demo.
    Log,
    /// `file:PATH`: one JSON line per OTP appended to `PATH`.
    File(PathBuf),
    /// `webhook:URL`: JSON POSTed to `URL` (`http://` or `https://`), signed.
    Webhook(String),
}

impl OtpSenderSpec {
    /// Parses `log`, `file:PATH` or `webhook:URL`.
    pub fn parse(s: &str) -> Result<OtpSenderSpec, SenderError> {
        if s == "log" {
            return Ok(OtpSenderSpec::Log);
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SenderError::Spec(
                    "file: needs a path, as in file:/var/tmp/otps.jsonl",
                ));
            }
            return Ok(OtpSenderSpec::File(PathBuf::from(path)));
        }
        if let Some(url) = s.strip_prefix("webhook:") {
            let parsed = reqwest::Url::parse(url).map_err(|_| {
                SenderError::Spec("webhook: needs a URL, as in webhook:https://host/path")
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(SenderError::Spec(
                    "webhook URL must be https://host/... or http://host/...",
                ));
            }
            return Ok(OtpSenderSpec::Webhook(url.to_owned()));
        }
        Err(SenderError::Spec(
            "otp_sender must be log, file:PATH or webhook:URL",
        ))
    }

    /// The metric label: `log`, `file` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            OtpSenderSpec::Log => "log",
            OtpSenderSpec::File(_) => "file",
            OtpSenderSpec::Webhook(_) => "webhook",
        }
    }
}

impl std::fmt::Display for OtpSenderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OtpSenderSpec::Log => f.write_str("log"),
            OtpSenderSpec::File(p) => write!(f, "file:{}", p.display()),
            OtpSenderSpec::Webhook(u) => write!(f, "webhook:{u}"),
        }
    }
}

/// Why a sender could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The `otp_sender` value is not understood.
    #[error("invalid otp_sender: {0}")]
    Spec(&'static str),
    /// The file sender's file cannot be opened for appending.
    #[error("cannot open OTP file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    Client,
    /// `spawn` was called outside a tokio runtime.
    #[error("the OTP dispatcher must be started inside a tokio runtime")]
    NoRuntime,
}

/// One OTP to deliver. `Debug` hides the OTP and masks the mobile.
#[derive(Debug, Clone)]
pub struct OtpMessage {
    /// The mobile it is for.
    pub mobile: Mobile,
    /// The OTP.
    pub otp: SixDigits,
    /// Its transaction id.
    pub txn_id: String,
    /// When it was issued.
    pub sent_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    mobile: &'a str,
    otp: &'a str,
    txn_id: &'a str,
    sent_at: String,
}

impl OtpMessage {
    /// The JSON line / webhook body: `{"mobile","otp","txn_id","sent_at"}` (RFC 3339 UTC).
    pub fn to_json(&self) -> String {
        let wire = WireMessage {
            mobile: self.mobile.as_str(),
            otp: self.otp.expose_secret(),
            txn_id: &self.txn_id,
            sent_at: self.sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        // A struct of strings always serialises.
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// Tunables of a dispatcher; [`DispatcherConfig::defaults`] gives the documented ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// Queue length (at least 1; default [`OTP_QUEUE_MAX_DEFAULT`]).
    pub queue_max: usize,
    /// One POST's timeout (default [`WEBHOOK_TIMEOUT_MS`]).
    pub webhook_timeout: Duration,
    /// Attempts per OTP (at least 1; default [`WEBHOOK_ATTEMPTS_MAX`]).
    pub webhook_attempts_max: u32,
    /// First backoff (default [`WEBHOOK_BACKOFF_FIRST_MS`]).
    pub webhook_backoff_first: Duration,
    /// Longest backoff (default [`WEBHOOK_BACKOFF_MAX_MS`]).
    pub webhook_backoff_max: Duration,
    /// Deliveries in flight at once (at least 1; default [`WEBHOOK_IN_FLIGHT_MAX`]).
    pub webhook_in_flight_max: usize,
    /// The key webhook bodies are signed with (required by the `webhook:` sender).
    pub webhook_secret: Option<WebhookSecret>,
}

impl DispatcherConfig {
    /// The documented defaults.
    pub const fn defaults() -> DispatcherConfig {
        DispatcherConfig {
            queue_max: OTP_QUEUE_MAX_DEFAULT,
            webhook_timeout: Duration::from_millis(WEBHOOK_TIMEOUT_MS),
            webhook_attempts_max: WEBHOOK_ATTEMPTS_MAX,
            webhook_backoff_first: Duration::from_millis(WEBHOOK_BACKOFF_FIRST_MS),
            webhook_backoff_max: Duration::from_millis(WEBHOOK_BACKOFF_MAX_MS),
            webhook_in_flight_max: WEBHOOK_IN_FLIGHT_MAX,
            webhook_secret: None,
        }
    }
}

/// Counters of one dispatcher (also exported as metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderStats {
    /// Delivered.
    pub sent: u64,
    /// Given up on (file write error, webhook out of attempts).
    pub failed: u64,
    /// Dropped because the queue was full or the dispatcher closed.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

struct Shared {
    kind: &'static str,
    counters: Counters,
}

impl Shared {
    fn sent(&self, n: u64) {
        self.counters.sent.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("kataar_otp_sent_total", "sender" => self.kind).increment(n);
    }
    fn failed(&self, n: u64) {
        self.counters.failed.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("kataar_otp_failed_total", "sender" => self.kind).increment(n);
    }
    fn dropped(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kataar_otp_dropped_total", "sender" => self.kind).increment(1);
    }
}

/// The handle the request path holds. `Send + Sync`; share it in an `Arc`.
pub struct OtpDispatcher {
    tx: mpsc::Sender<OtpMessage>,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for OtpDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpDispatcher")
            .field("sender", &self.shared.kind)
            .finish()
    }
}

enum Sink {
    Log,
    File(Arc<std::sync::Mutex<std::fs::File>>),
    Webhook {
        client: reqwest::Client,
        url: String,
        secret: WebhookSecret,
        in_flight: Arc<Semaphore>,
    },
}

/// Opens `path` for appending, created `0600`; an existing file readable by others is
/// narrowed to `0600` (it holds OTPs in clear).
fn open_otp_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl OtpDispatcher {
    /// Starts the delivery task with a queue of `queue_max` and the default webhook tunables.
    /// Must be called inside a tokio runtime. A `file:` path is opened (created) here.
    pub fn spawn(spec: OtpSenderSpec, queue_max: usize) -> Result<OtpDispatcher, SenderError> {
        OtpDispatcher::spawn_with(
            spec,
            DispatcherConfig {
                queue_max,
                ..DispatcherConfig::defaults()
            },
        )
    }

    /// [`OtpDispatcher::spawn`] with every tunable given.
    pub fn spawn_with(
        spec: OtpSenderSpec,
        cfg: DispatcherConfig,
    ) -> Result<OtpDispatcher, SenderError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SenderError::NoRuntime)?;
        let sink = match &spec {
            OtpSenderSpec::Log => Sink::Log,
            OtpSenderSpec::File(path) => {
                let file = open_otp_file(path).map_err(|source| SenderError::File {
                    path: path.clone(),
                    source,
                })?;
                Sink::File(Arc::new(std::sync::Mutex::new(file)))
            }
            OtpSenderSpec::Webhook(url) => {
                let secret = cfg.webhook_secret.clone().ok_or(SenderError::Spec(
                    "the webhook sender needs otp_webhook_secret to sign its requests",
                ))?;
                let client = reqwest::Client::builder()
                    .timeout(cfg.webhook_timeout)
                    .build()
                    .map_err(|_| SenderError::Client)?;
                let in_flight = Arc::new(Semaphore::new(cfg.webhook_in_flight_max.max(1)));
                Sink::Webhook {
                    client,
                    url: url.clone(),
                    secret,
                    in_flight,
                }
            }
        };
        let (tx, rx) = mpsc::channel(cfg.queue_max.max(1));
        let shared = Arc::new(Shared {
            kind: spec.kind(),
            counters: Counters::default(),
        });
        let stop = Arc::new(Notify::new());
        let worker = runtime.spawn(run(rx, sink, cfg, shared.clone(), stop.clone()));
        Ok(OtpDispatcher {
            tx,
            shared,
            stop,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Queues `msg` for delivery without waiting. Returns false (and counts a drop) if the queue
    /// is full or the dispatcher is closed.
    pub fn dispatch(&self, msg: OtpMessage) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(_) => {
                self.shared.dropped();
                false
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> SenderStats {
        let c = &self.shared.counters;
        SenderStats {
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// The sender kind (`log`, `file`, `webhook`).
    pub fn kind(&self) -> &'static str {
        self.shared.kind
    }

    /// Stops taking messages, delivers what is queued (webhook retries included) and waits for
    /// it up to `grace`. Returns true if everything finished in time. Later calls return true.
    pub async fn close(&self, grace: Duration) -> bool {
        self.stop.notify_one();
        let worker = self.worker.lock().take();
        match worker {
            None => true,
            Some(handle) => tokio::time::timeout(grace, handle).await.is_ok(),
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<OtpMessage>,
    sink: Sink,
    cfg: DispatcherConfig,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
) {
    let mut stopping = false;
    loop {
        let first = if stopping {
            rx.recv().await
        } else {
            tokio::select! {
                m = rx.recv() => m,
                () = stop.notified() => {
                    stopping = true;
                    rx.close();
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        deliver(first, &mut rx, &sink, &cfg, &shared).await;
    }
    // Wait for webhook deliveries still in flight.
    if let Sink::Webhook { in_flight, .. } = &sink {
        let all = u32::try_from(cfg.webhook_in_flight_max.max(1)).unwrap_or(u32::MAX);
        let _ = in_flight.acquire_many(all).await;
    }
}

async fn deliver(
    first: OtpMessage,
    rx: &mut mpsc::Receiver<OtpMessage>,
    sink: &Sink,
    cfg: &DispatcherConfig,
    shared: &Arc<Shared>,
) {
    match sink {
        Sink::Log => {
            tracing::warn!(
                target: "kataar::otp",
                mobile = %first.mobile.masked(),
                txn_id = %first.txn_id,
                otp = %first.otp.expose_secret(),
                "DEMO OTP (otp_sender=log; never use the log sender in production)"
            );
            shared.sent(1);
        }
        Sink::File(file) => {
            let mut lines = first.to_json();
            lines.push('\n');
            let mut n = 1u64;
            while n < FILE_BATCH_MAX as u64 {
                let Ok(more) = rx.try_recv() else { break };
                lines.push_str(&more.to_json());
                lines.push('\n');
                n += 1;
            }
            let file = file.clone();
            let written = tokio::task::spawn_blocking(move || {
                let mut f = file
                    .lock()
                    .map_err(|_| std::io::Error::other("OTP file lock poisoned"))?;
                f.write_all(lines.as_bytes())?;
                f.flush()
            })
            .await;
            match written {
                Ok(Ok(())) => shared.sent(n),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, count = n, "cannot write OTPs to the OTP file");
                    shared.failed(n);
                }
                Err(_) => shared.failed(n),
            }
        }
        Sink::Webhook {
            client,
            url,
            secret,
            in_flight,
        } => {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                shared.failed(1);
                return;
            };
            let (client, url, secret, cfg, shared) = (
                client.clone(),
                url.clone(),
                secret.clone(),
                cfg.clone(),
                shared.clone(),
            );
            tokio::spawn(async move {
                let ok = post_with_retries(&client, &url, &secret, &first, &cfg).await;
                if ok {
                    shared.sent(1);
                } else {
                    tracing::warn!(
                        mobile = %first.mobile.masked(),
                        txn_id = %first.txn_id,
                        attempts = cfg.webhook_attempts_max,
                        "OTP webhook delivery failed; giving up"
                    );
                    shared.failed(1);
                }
                drop(permit);
            });
        }
    }
}

async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    secret: &WebhookSecret,
    msg: &OtpMessage,
    cfg: &DispatcherConfig,
) -> bool {
    let body = msg.to_json();
    let signature = secret.sign(body.as_bytes());
    let mut backoff = cfg.webhook_backoff_first;
    let attempts = cfg.webhook_attempts_max.max(1);
    for attempt in 1..=attempts {
        let sent = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => return true,
            Ok(resp) => tracing::debug!(
                status = resp.status().as_u16(),
                attempt,
                "OTP webhook refused"
            ),
            Err(e) => tracing::debug!(timeout = e.is_timeout(), attempt, "OTP webhook unreachable"),
        }
        if attempt < attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(cfg.webhook_backoff_max);
        }
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mobile::normalize_mobile;
    use std::sync::atomic::AtomicUsize;

    fn message(otp: &str, txn: &str) -> OtpMessage {
        OtpMessage {
            mobile: normalize_mobile("9876543210").unwrap(),
            otp: SixDigits::parse(otp).unwrap(),
            txn_id: txn.to_owned(),
            sent_at: DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn parse_specs() {
        assert_eq!(OtpSenderSpec::parse("log").unwrap(), OtpSenderSpec::Log);
        assert_eq!(
            OtpSenderSpec::parse("file:/tmp/o.jsonl").unwrap(),
            OtpSenderSpec::File(PathBuf::from("/tmp/o.jsonl"))
        );
        let w = OtpSenderSpec::parse("webhook:http://127.0.0.1:9000/otp").unwrap();
        assert_eq!(
            w,
            OtpSenderSpec::Webhook("http://127.0.0.1:9000/otp".into())
        );
        assert_eq!(w.to_string(), "webhook:http://127.0.0.1:9000/otp");
        assert_eq!(w.kind(), "webhook");
        assert_eq!(
            OtpSenderSpec::parse("webhook:https://sms.example.in/otp").unwrap(),
            OtpSenderSpec::Webhook("https://sms.example.in/otp".into())
        );
        for bad in [
            "",
            "LOG",
            "sms",
            "file:",
            "webhook:",
            "webhook:not a url",
            "webhook:ftp://x/y",
        ] {
            assert!(OtpSenderSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_shape_and_redacted_debug() {
        let m = message("012345", "t-1");
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"mobile": "9876543210", "otp": "012345", "txn_id": "t-1", "sent_at": "2026-05-01T10:00:00.000Z"})
        );
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("012345") && !dbg.contains("987654"), "{dbg}");
    }

    #[tokio::test]
    async fn file_sender_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otps.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let d = OtpDispatcher::spawn(OtpSenderSpec::File(path.clone()), 16).unwrap();
        for i in 0..3 {
            assert!(d.dispatch(message(&format!("00000{i}"), &format!("txn-{i}"))));
        }
        assert!(d.close(Duration::from_secs(10)).await);
        assert!(
            !d.dispatch(message("111111", "late")),
            "closed dispatchers drop"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        for (i, line) in lines[1..].iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["otp"], format!("00000{i}"));
            assert_eq!(v["txn_id"], format!("txn-{i}"));
            assert_eq!(v["mobile"], "9876543210");
            assert_eq!(v["sent_at"], "2026-05-01T10:00:00.000Z");
        }
        assert_eq!(
            d.stats(),
            SenderStats {
                sent: 3,
                failed: 0,
                dropped: 1
            }
        );
    }

    #[tokio::test]
    async fn otp_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.jsonl");
        let d = OtpDispatcher::spawn(OtpSenderSpec::File(fresh.clone()), 4).unwrap();
        assert!(d.close(Duration::from_secs(10)).await);
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        // A file left readable by others is narrowed.
        let old = dir.path().join("old.jsonl");
        std::fs::write(&old, "").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let d = OtpDispatcher::spawn(OtpSenderSpec::File(old.clone()), 4).unwrap();
        assert!(d.close(Duration::from_secs(10)).await);
        let mode = std::fs::metadata(&old).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }

    #[test]
    fn file_sender_reports_an_unopenable_path() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let err = OtpDispatcher::spawn(
            OtpSenderSpec::File("/nonexistent-dir/x/otps.jsonl".into()),
            4,
        )
        .unwrap_err();
        assert!(matches!(err, SenderError::File { .. }));
        drop(_guard);
        assert!(matches!(
            OtpDispatcher::spawn(OtpSenderSpec::Log, 4),
            Err(SenderError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn full_queue_drops_without_waiting() {
        // Single-threaded runtime: the delivery task cannot run until this test yields.
        let d = OtpDispatcher::spawn(OtpSenderSpec::Log, 1).unwrap();
        assert!(d.dispatch(message("123456", "a")));
        assert!(!d.dispatch(message("123456", "b")));
        assert!(!d.dispatch(message("123456", "c")));
        assert!(d.close(Duration::from_secs(10)).await);
        assert_eq!(
            d.stats(),
            SenderStats {
                sent: 1,
                failed: 0,
                dropped: 2
            }
        );
    }

    /// Requests seen by the test receiver, and the (signature, body) pairs it accepted.
    type Seen = (Arc<AtomicUsize>, Arc<Mutex<Vec<(String, String)>>>);

    const SECRET: &str = "gateway-shared-secret-0123";

    /// A receiver on 127.0.0.1:0 that fails the first `fail_first` requests with 500.
    async fn receiver(fail_first: usize) -> (String, Seen) {
        use axum::{extract::State, http::StatusCode, routing::post, Router};
        let seen: Seen = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let handler = move |State((hits, bodies)): State<Seen>,
                            headers: axum::http::HeaderMap,
                            body: String| async move {
            let n = hits.fetch_add(1, Ordering::SeqCst);
            if n < fail_first {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            let signature = headers
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            bodies.lock().push((signature, body));
            StatusCode::NO_CONTENT
        };
        let app = Router::new()
            .route("/otp", post(handler))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/otp"), seen)
    }

    fn fast_retries(queue_max: usize) -> DispatcherConfig {
        DispatcherConfig {
            queue_max,
            webhook_backoff_first: Duration::from_millis(20),
            webhook_backoff_max: Duration::from_millis(50),
            webhook_secret: Some(WebhookSecret::new(SECRET).unwrap()),
            ..DispatcherConfig::defaults()
        }
    }

    #[tokio::test]
    async fn webhook_retries_after_a_failure_then_delivers() {
        let (url, (hits, bodies)) = receiver(1).await;
        let d = OtpDispatcher::spawn_with(
            OtpSenderSpec::parse(&format!("webhook:{url}")).unwrap(),
            fast_retries(8),
        )
        .unwrap();
        let msg = message("654321", "txn-w");
        let expected = msg.to_json();
        assert!(d.dispatch(msg));
        assert!(d.close(Duration::from_secs(20)).await);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // The signature a gateway computes independently over the raw body.
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        hmac::Mac::update(&mut mac, expected.as_bytes());
        let want = format!(
            "sha256={}",
            hex::encode(hmac::Mac::finalize(mac).into_bytes())
        );
        assert_eq!(bodies.lock().clone(), vec![(want, expected)]);
        assert_eq!(
            d.stats(),
            SenderStats {
                sent: 1,
                failed: 0,
                dropped: 0
            }
        );
    }

    #[tokio::test]
    async fn webhook_needs_a_secret_of_sixteen_bytes() {
        assert!(WebhookSecret::new(&"k".repeat(WEBHOOK_SECRET_BYTES_MIN - 1)).is_err());
        let ok = WebhookSecret::new(&"k".repeat(WEBHOOK_SECRET_BYTES_MIN)).unwrap();
        assert!(!format!("{ok:?}").contains("kkkk"));
        let err = OtpDispatcher::spawn_with(
            OtpSenderSpec::Webhook("https://sms.example.in/otp".into()),
            DispatcherConfig::defaults(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("otp_webhook_secret"), "{err}");
        // With a secret, an https webhook starts (the TLS client builds).
        let d = OtpDispatcher::spawn_with(
            OtpSenderSpec::Webhook("https://sms.example.in/otp".into()),
            DispatcherConfig {
                webhook_secret: Some(ok),
                ..DispatcherConfig::defaults()
            },
        )
        .unwrap();
        assert!(d.close(Duration::from_secs(10)).await);
    }

    #[tokio::test]
    async fn https_webhook_speaks_tls() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cfg = DispatcherConfig {
            webhook_attempts_max: 1,
            ..fast_retries(4)
        };
        let d = OtpDispatcher::spawn_with(
            OtpSenderSpec::parse(&format!("webhook:https://{addr}/otp")).unwrap(),
            cfg,
        )
        .unwrap();
        assert!(d.dispatch(message("654321", "txn-tls")));
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 3];
        conn.read_exact(&mut head).await.unwrap();
        // A TLS record: handshake (22), protocol version 3.x: a ClientHello, not clear HTTP.
        assert_eq!((head[0], head[1]), (22, 3), "{head:?}");
        drop(conn);
        assert!(d.close(Duration::from_secs(20)).await);
        assert_eq!(d.stats().failed, 1);
    }

    #[tokio::test]
    async fn webhook_gives_up_after_max_attempts() {
        let (url, (hits, bodies)) = receiver(usize::MAX).await;
        let cfg = DispatcherConfig {
            webhook_attempts_max: 3,
            ..fast_retries(8)
        };
        let d = OtpDispatcher::spawn_with(OtpSenderSpec::Webhook(url), cfg).unwrap();
        assert!(d.dispatch(message("654321", "txn-x")));
        assert!(d.close(Duration::from_secs(20)).await);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert!(bodies.lock().is_empty());
        assert_eq!(
            d.stats(),
            SenderStats {
                sent: 0,
                failed: 1,
                dropped: 0
            }
        );
    }
}
