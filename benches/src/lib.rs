//! The whole router in process, for benchmarks and allocation counts.
//!
//! [`InProcess`] starts the engine on the embedded store with the demo drive, as
//! `kataar serve --demo` does but without a listener, signs a citizen in through the real OTP
//! flow, publishes a session for it, and sends requests through `tower::ServiceExt::oneshot`:
//! every layer a request meets on the wire (the outer middleware, admission, the handler, the
//! writer's commit) runs, and only the socket and the HTTP/1 codec are left out.
//!
//! [`Counting`] is the global allocator of every binary that links this crate: mimalloc, as the
//! server uses, with every allocation counted ([`allocations`]). Allocation counts are
//! deterministic, so a test can bound them (`tests/allocations.rs`) where a timing could not.
//!
//! # Layout
//! - this file: the counting allocator and the harness.
//! - `benches/router.rs`: criterion benchmarks of a booking, a cached read and a refusal.
//! - `tests/allocations.rs`: allocations per request, bounded.

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kataar_api::Config;
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use tower::ServiceExt;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// mimalloc with every allocation (and reallocation) counted, process-wide.
pub struct Counting;

// SAFETY: each method forwards to mimalloc with the caller's arguments unchanged; counting
// touches only two atomics.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (mimalloc) with `layout`.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` came from this allocator with `layout`; the caller upholds the rest.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) and bytes asked for so far, in the whole process.
pub fn allocations() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        ALLOCATED_BYTES.load(Ordering::Relaxed),
    )
}

/// The engine and its router in this process, with signed-in citizens, a beneficiary each and
/// a session they can book (dose 1, online, [`SESSION_PLACES`] places, tomorrow).
pub struct InProcess {
    app: axum::Router,
    /// The application state.
    pub state: kataar_app::state::AppState,
    /// The citizens: token and beneficiary. Bookings go round them, since an account keeps
    /// at most 64 booking answers under their idempotency keys for a day.
    pub citizens: Vec<(String, u64)>,
    /// The session and slot it books.
    pub session_id: u64,
    /// See `session_id`.
    pub slot_id: u64,
    /// The availability query of the read benchmark (the demo district, from today).
    pub availability: String,
    next_key: AtomicU64,
    _dir: tempfile::TempDir,
}

/// Online dose-1 places of the harness's session (each booking is cancelled again).
pub const SESSION_PLACES: u32 = 1_000;

/// Bookings one account may make in the harness (an account keeps at most 64 booking answers
/// for a day).
pub const BOOKINGS_PER_ACCOUNT: u64 = 64;

impl InProcess {
    /// Starts the engine (embedded store in a temporary directory, demo drive) and prepares
    /// `accounts` citizens, their beneficiaries and the session: room for
    /// `accounts × BOOKINGS_PER_ACCOUNT` bookings. The auth lane's burst is the sign-ins' two
    /// requests each; every later auth request is refused (`503 overloaded`), which is what
    /// the refusal benchmark sends.
    pub async fn start(accounts: u32) -> anyhow::Result<InProcess> {
        let dir = tempfile::tempdir()?;
        let otp_file = dir.path().join("otp.jsonl");
        let mut config = Config::defaults();
        config.data_dir = dir.path().join("data");
        config.demo = true;
        config.otp_sender = Some(format!("file:{}", otp_file.display()));
        // One client address sends everything, as fast as it can: its own buckets and the
        // browse and booking lanes' are opened up (at their defaults a benchmark would time
        // their token rates: 15,000 reads a second is 67 µs a read); the auth lane refuses
        // after the sign-ins.
        for (key, value) in [
            ("browse_rate_per_s", toml::Value::Float(1e9)),
            ("browse_burst", toml::Value::Integer(1_000_000_000)),
            ("booking_rate_per_s", toml::Value::Float(1e9)),
            ("booking_burst", toml::Value::Integer(1_000_000_000)),
            ("client_rate_per_s", toml::Value::Float(1e9)),
            ("client_burst", toml::Value::Integer(1_000_000_000)),
            ("account_rate_per_s", toml::Value::Float(1e9)),
            ("account_burst", toml::Value::Integer(1_000_000_000)),
            ("client_in_flight_max", toml::Value::Integer(1_000_000)),
            ("account_in_flight_max", toml::Value::Integer(1_000_000)),
            ("auth_rate_per_s", toml::Value::Float(0.001)),
            ("auth_burst", toml::Value::Integer(2 * i64::from(accounts))),
        ] {
            config.admission.insert(key.into(), value);
        }
        let assembled = kataar_app::server::assemble(&config).await?;
        let admin_key = assembled
            .demo
            .as_ref()
            .map(|d| d.admin_key.clone())
            .ok_or_else(|| anyhow::anyhow!("the demo drive was not published"))?;
        let state = assembled.state.clone();
        let mut h = InProcess {
            app: assembled.app,
            state,
            citizens: Vec::new(),
            session_id: 0,
            slot_id: 0,
            availability: String::new(),
            next_key: AtomicU64::new(0),
            _dir: dir,
        };
        for n in 0..accounts {
            let citizen = h.sign_up(&otp_file, n).await?;
            h.citizens.push(citizen);
        }
        let centre = h
            .state
            .inv
            .centres()
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the demo drive has no centre"))?;
        let date = h.state.today() + chrono::Days::new(1);
        let body = json!({"centre_id": centre.centre_id.0,
            "date": date.format("%Y-%m-%d").to_string(),
            "vaccine": "COVISHIELD", "min_age": 18, "max_age": null,
            "slots": [{"start": "09:00", "end": "11:00", "capacity": {
                "dose1_online": SESSION_PLACES, "dose1_walkin": 0,
                "dose2_online": 0, "dose2_walkin": 0}}]});
        let (s, v) = h
            .json(Method::POST, "/v1/admin/sessions", Some(&admin_key), body)
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "session: {s} {v}");
        h.session_id = number(&v, "session_id")?;
        h.slot_id = v["slots"][0]["slot_id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no slot id in {v}"))?;
        h.availability = format!(
            "/v1/availability?district_id={}&date={}",
            centre.district_id.0,
            h.state.today().format("%Y-%m-%d")
        );
        Ok(h)
    }

    /// Signs citizen `n` in through the OTP flow and registers its beneficiary.
    async fn sign_up(&self, otp_file: &std::path::Path, n: u32) -> anyhow::Result<(String, u64)> {
        let mobile = format!("98{:08}", 10_000 + n);
        let (s, v) = self
            .json(
                Method::POST,
                "/v1/auth/otp",
                None,
                json!({"mobile": mobile}),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::ACCEPTED, "otp: {s} {v}");
        let otp = otp_of(otp_file, &mobile)?;
        let (s, v) = self
            .json(
                Method::POST,
                "/v1/auth/otp/verify",
                None,
                json!({"txn_id": v["txn_id"], "otp": otp}),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "verify: {s} {v}");
        let token = field(&v, "token")?.to_owned();
        let body = json!({"name": format!("Bench {n}"), "birth_year": 1990, "gender": "female",
            "id_type": "aadhaar", "id_number": aadhaar(4_242_000_000 + u64::from(n))?});
        let (s, v) = self
            .json(Method::POST, "/v1/beneficiaries", Some(&token), body)
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "beneficiary: {s} {v}");
        Ok((token, number(&v, "beneficiary_id")?))
    }

    /// Sends one request through the whole router; the status and the body.
    pub async fn send(&self, req: Request<Body>) -> anyhow::Result<(StatusCode, Bytes)> {
        let resp = self.app.clone().oneshot(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let (s, bytes) = self
            .send(req.body(Body::from(serde_json::to_vec(&body)?))?)
            .await?;
        Ok((s, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// The next booking (the citizens in turn), under a fresh idempotency key, with the index
    /// of its citizen; refused once every account has made [`BOOKINGS_PER_ACCOUNT`].
    pub fn booking(&self) -> anyhow::Result<(Request<Body>, usize)> {
        let n = self.next_key.fetch_add(1, Ordering::Relaxed);
        let accounts = self.citizens.len().max(1) as u64;
        anyhow::ensure!(
            n < accounts * BOOKINGS_PER_ACCOUNT,
            "the harness's {accounts} accounts have made all their bookings"
        );
        let who = usize::try_from(n % accounts)?;
        let (token, beneficiary) = &self.citizens[who];
        let body = format!(
            r#"{{"beneficiary_id":{beneficiary},"session_id":{},"slot_id":{},"dose":1}}"#,
            self.session_id, self.slot_id
        );
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/bookings")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", format!("bench-{n}"))
            .body(Body::from(body))?;
        Ok((req, who))
    }

    /// The cancellation of a booking by citizen `who`.
    pub fn cancel(&self, who: usize, booking_id: u64) -> anyhow::Result<Request<Body>> {
        let (token, _) = &self.citizens[who];
        Ok(Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/bookings/{booking_id}/cancel"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())?)
    }

    /// The availability read of the demo district (served from the answer cache after the
    /// first).
    pub fn read(&self) -> anyhow::Result<Request<Body>> {
        Ok(Request::builder()
            .method(Method::GET)
            .uri(&self.availability)
            .body(Body::empty())?)
    }

    /// An OTP request, refused by the auth lane (`503 overloaded`) before any work.
    pub fn refused(&self) -> anyhow::Result<Request<Body>> {
        Ok(Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/otp")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"mobile":"9812345671"}"#))?)
    }

    /// Books and cancels once: the booking's id.
    pub async fn book_and_cancel(&self) -> anyhow::Result<u64> {
        let (req, who) = self.booking()?;
        let (s, b) = self.send(req).await?;
        self.cancel_booked(who, s, &b).await
    }

    /// Cancels what a booking by citizen `who` answered (`201` and its body): the booking's id.
    pub async fn cancel_booked(
        &self,
        who: usize,
        s: StatusCode,
        body: &[u8],
    ) -> anyhow::Result<u64> {
        anyhow::ensure!(s == StatusCode::CREATED, "booking: {s} {body:?}");
        let v: Value = serde_json::from_slice(body)?;
        let id = number(&v, "booking_id")?;
        let (s, b) = self.send(self.cancel(who, id)?).await?;
        anyhow::ensure!(s == StatusCode::OK, "cancel: {s} {b:?}");
        Ok(id)
    }
}

fn field<'a>(v: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    v[name]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no {name} in {v}"))
}

fn number(v: &Value, name: &str) -> anyhow::Result<u64> {
    v[name]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no {name} in {v}"))
}

/// The OTP the file sender wrote for `mobile`.
fn otp_of(file: &std::path::Path, mobile: &str) -> anyhow::Result<String> {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(file) {
            // A line still being written does not parse yet: read again.
            let found = text
                .lines()
                .rev()
                .filter(|l| l.contains(mobile))
                .find_map(|l| serde_json::from_str::<Value>(l).ok());
            if let Some(v) = found {
                return Ok(field(&v, "otp")?.to_owned());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    anyhow::bail!("no OTP was written for {mobile}")
}

/// A valid Aadhaar number (Verhoeff check digit) made from `seed`.
fn aadhaar(seed: u64) -> anyhow::Result<String> {
    let body = format!("{}{:010}", 2 + seed % 8, seed % 10_000_000_000);
    let check = kataar_identity::photo_id::verhoeff_check_digit(&body)
        .ok_or_else(|| anyhow::anyhow!("no check digit for {body}"))?;
    Ok(format!("{body}{check}"))
}
