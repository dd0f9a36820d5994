//! Driving the real engine through its v1 contract: starting `kataar serve`, creating an operator
//! key, publishing centres and sessions (the setup phase, not timed), logging citizens in through
//! the real OTP flow (the `file:` sender's JSON lines), registering beneficiaries, and the
//! executor that sends the timed requests (availability, OTP, verify, beneficiary, booking,
//! operators). Also reads the store's batch counters from `/metrics`.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{json, Value};

use crate::exec::{classify, ClientSet};
use crate::lean::{LeanClients, LeanRequest};
use crate::procs::{self, Server};
use crate::sched::{Executor, Kind, Planned};
use crate::stats::Answer;
use crate::verhoeff;

/// Default metric: events (bookings and other writes) committed by the store.
pub const METRIC_EVENTS_DEFAULT: &str = "kataar_store_events_committed_total";
/// Default metric: batches (transactions) committed by the store.
pub const METRIC_BATCHES_DEFAULT: &str = "kataar_store_batches_committed_total";
/// District used for every centre the kit publishes (Bhopal).
pub const DISTRICT_ID: i64 = 312;
/// State of [`DISTRICT_ID`] (Madhya Pradesh).
pub const STATE_ID: i64 = 20;
/// Most slots in one session (the contract's `SLOTS_PER_SESSION_MAX`).
pub const SLOTS_PER_SESSION_MAX: usize = 48;
/// Most places in one pool (the contract's `POOL_CAPACITY_MAX`).
pub const POOL_CAPACITY_MAX: u32 = 100_000;
/// District of the uniform workload's centres (Indore, same state): kept out of
/// [`DISTRICT_ID`] so the availability page that reads poll stays the size of a real district's.
pub const UNIFORM_DISTRICT_ID: i64 = 314;
/// Concurrent setup requests (the engine group-commits writes: setup is only fast when many are
/// in flight).
pub const SETUP_CONCURRENCY: usize = 256;
/// Attempts per setup request when refused for load.
pub const SETUP_ATTEMPTS_MAX: u32 = 20;
/// Beneficiaries per account (the contract's limit).
pub const BENEFICIARIES_PER_ACCOUNT: usize = 4;
/// Most OTPs remembered by the trace executor's file tailer.
pub const OTP_MAP_MAX: usize = 200_000;
/// Most issued OTP transactions waiting to be verified in a trace replay.
pub const ISSUED_TXNS_MAX: usize = 100_000;

/// Errors driving the engine.
#[derive(Debug, thiserror::Error)]
pub enum KataarError {
    /// A setup step was answered with something unexpected.
    #[error("setup: {0}")]
    Setup(String),
    /// HTTP failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The process failed.
    #[error("process: {0}")]
    Proc(#[from] procs::ProcError),
}

/// How to run the engine binary.
#[derive(Debug, Clone)]
pub struct EngineCmd {
    /// Path to `kataar`.
    pub bin: PathBuf,
    /// PostgreSQL URL of its (fresh) database.
    pub database_url: String,
    /// The OTP file (`--otp-sender file:PATH`).
    pub otp_file: PathBuf,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// CPUs to pin to.
    pub taskset_cpus: Option<String>,
    /// Extra environment of the engine (admission limits for the run, log filter).
    pub env: Vec<(String, String)>,
}

impl EngineCmd {
    /// Starts `kataar serve --demo` on port 0 and waits for its listen line. The demo drive
    /// publishes the states and districts (incl. [`DISTRICT_ID`]) that centres need.
    pub async fn start(&self, stderr_log: Option<&Path>) -> Result<Server, KataarError> {
        let args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--database-url".to_owned(),
            self.database_url.clone(),
            "--otp-sender".to_owned(),
            format!("file:{}", self.otp_file.display()),
            "--data-dir".to_owned(),
            self.data_dir.display().to_string(),
            "--demo".to_owned(),
        ];
        let mut cmd = procs::command(&self.bin, &args, self.taskset_cpus.as_deref());
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Ok(procs::start("kataar", cmd, "kataar listening on", stderr_log).await?)
    }

    /// `kataar admin create-key --role admin`: the clear key (never logged).
    pub async fn create_admin_key(&self) -> Result<String, KataarError> {
        let out = tokio::process::Command::new(&self.bin)
            .args(["admin", "create-key", "--role", "admin", "--database-url"])
            .arg(&self.database_url)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--name")
            .arg("kataar-loadgen")
            .output()
            .await?;
        if !out.status.success() {
            return Err(KataarError::Setup("kataar admin create-key failed".into()));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .next()
            .map(|l| l.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| KataarError::Setup("create-key printed no key".into()))
    }
}

/// A run's engine on a fresh database: the database, how to start the engine again, an
/// operator key, the running server and the directory holding its data and OTP file.
pub struct FreshEngine {
    /// The database (drop it after the run).
    pub db: crate::pg::FreshDb,
    /// The engine's command (a restart reuses it).
    pub engine: EngineCmd,
    /// An admin key.
    pub key: String,
    /// The running server.
    pub server: Server,
    /// The data directory and OTP file live here.
    pub dir: tempfile::TempDir,
}

/// Makes a fresh database named from `prefix` on `database_url`, creates an admin key and
/// starts `bin` on it with `env`, its log in `log`.
pub async fn start_fresh(
    bin: &Path,
    database_url: &str,
    prefix: &str,
    env: Vec<(String, String)>,
    log: &Path,
) -> anyhow::Result<FreshEngine> {
    let dir = tempfile::tempdir()?;
    let db = crate::pg::FreshDb::create(database_url, prefix).await?;
    let engine = EngineCmd {
        bin: bin.to_path_buf(),
        database_url: db.url.clone(),
        otp_file: dir.path().join("otp.jsonl"),
        data_dir: dir.path().join("data"),
        taskset_cpus: None,
        env,
    };
    let key = engine.create_admin_key().await?;
    let server = engine.start(Some(log)).await?;
    Ok(FreshEngine {
        db,
        engine,
        key,
        server,
        dir,
    })
}

/// Tomorrow in India (sessions are published for tomorrow so "today" rules never close them).
pub fn session_date() -> String {
    let ist = chrono::Utc::now() + chrono::Duration::minutes(330) + chrono::Duration::days(1);
    ist.format("%Y-%m-%d").to_string()
}

/// A bookable target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Session.
    pub session_id: i64,
    /// Slot.
    pub slot_id: i64,
}

/// A citizen ready to book.
#[derive(Debug, Clone)]
pub struct Person {
    /// Bearer token of the account.
    pub token: Arc<str>,
    /// Beneficiary.
    pub beneficiary_id: i64,
}

/// What the setup phase built.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// Operator key (admin).
    pub operator_key: String,
    /// Centres.
    pub centre_ids: Vec<i64>,
    /// Sessions.
    pub session_ids: Vec<i64>,
    /// Bookable (session, slot) pairs.
    pub targets: Vec<Target>,
    /// Citizens with a beneficiary each.
    pub persons: Vec<Person>,
    /// Tokens of accounts with room for more beneficiaries.
    pub spare_tokens: Vec<Arc<str>>,
    /// The sessions' date.
    pub date: String,
}

/// Sends a setup request, retrying load refusals (honouring Retry-After, bounded).
async fn setup_call(
    rb: impl Fn() -> reqwest::RequestBuilder,
    what: &str,
) -> Result<(u16, Value), KataarError> {
    for _ in 0..SETUP_ATTEMPTS_MAX {
        let resp = rb().send().await?;
        let status = resp.status().as_u16();
        if status == 429 || status == 503 {
            let ra = crate::exec::retry_after_s(&resp).unwrap_or(1).min(5);
            let jitter = rand::thread_rng().gen_range(0..500u64);
            tokio::time::sleep(Duration::from_millis(ra * 1000 + jitter)).await;
            continue;
        }
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        return Ok((status, v));
    }
    Err(KataarError::Setup(format!(
        "{what}: still refused for load"
    )))
}

fn id_of(v: &Value, field: &str, what: &str) -> Result<i64, KataarError> {
    v.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| KataarError::Setup(format!("{what}: no {field} in answer")))
}

/// Publishes `centres` centres in `district_id` (of [`STATE_ID`]), each with one session of `slots_per_session` slots (at most
/// [`SLOTS_PER_SESSION_MAX`]) whose dose-1 online pool has `capacity` places (at most
/// [`POOL_CAPACITY_MAX`]).
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    district_id: i64,
    centres: usize,
    slots_per_session: usize,
    capacity: u32,
    fx: &mut Fixture,
) -> Result<(), KataarError> {
    fx.date = session_date();
    let slots_per_session = slots_per_session.clamp(1, SLOTS_PER_SESSION_MAX);
    let capacity = capacity.min(POOL_CAPACITY_MAX);
    for c in 0..centres {
        let body = json!({
            "name": format!("Loadgen centre {c}"), "state_id": STATE_ID,
            "district_id": district_id, "pincode": "462001",
            "address": format!("{c} Loadgen Road, Bhopal"), "block_name": "Huzur",
            "lat": 23.25, "long": 77.41, "fee_type": "free"
        });
        let (st, v) = setup_call(
            || {
                http.post(format!("{base}/v1/admin/centres"))
                    .bearer_auth(key)
                    .json(&body)
            },
            "create centre",
        )
        .await?;
        if st != 201 {
            return Err(KataarError::Setup(format!("create centre: status {st}")));
        }
        let centre_id = id_of(&v, "centre_id", "create centre")?;
        fx.centre_ids.push(centre_id);
        let slots: Vec<Value> = (0..slots_per_session)
            .map(|i| {
                let start = 6 * 60 + i * 7;
                let end = start + 5;
                json!({
                    "start": format!("{:02}:{:02}", start / 60 % 24, start % 60),
                    "end": format!("{:02}:{:02}", end / 60 % 24, end % 60),
                    "capacity": {"dose1_online": capacity, "dose1_walkin": 0,
                                 "dose2_online": 0, "dose2_walkin": 0}
                })
            })
            .collect();
        let body = json!({
            "centre_id": centre_id, "date": fx.date, "vaccine": "COVISHIELD",
            "min_age": 18, "max_age": null, "slots": slots
        });
        let (st, v) = setup_call(
            || {
                http.post(format!("{base}/v1/admin/sessions"))
                    .bearer_auth(key)
                    .json(&body)
            },
            "create session",
        )
        .await?;
        if st != 201 {
            return Err(KataarError::Setup(format!("create session: status {st}")));
        }
        let session_id = id_of(&v, "session_id", "create session")?;
        fx.session_ids.push(session_id);
        for s in v
            .get("slots")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            fx.targets.push(Target {
                session_id,
                slot_id: id_of(s, "slot_id", "create session")?,
            });
        }
    }
    Ok(())
}

/// Every `(txn_id, otp)` in the file sender's file.
pub fn read_otps(path: &Path) -> Result<HashMap<String, String>, KataarError> {
    let mut m = HashMap::new();
    let f = std::fs::File::open(path)?;
    for line in BufReader::new(f).lines() {
        let line = line?;
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if let (Some(t), Some(o)) = (
                v.get("txn_id").and_then(Value::as_str),
                v.get("otp").and_then(Value::as_str),
            ) {
                m.insert(t.to_owned(), o.to_owned());
            }
        }
    }
    Ok(m)
}

/// Mobile number `i` of a run (10 digits starting with 9).
pub fn mobile(run_base: u64, i: u64) -> String {
    format!("9{:09}", (run_base + i) % 1_000_000_000)
}

/// A logged-in account: its token and its beneficiaries.
type LoginResult = Result<(Arc<str>, Vec<i64>), KataarError>;

/// Logs in `accounts` citizens through the OTP flow and registers `per_account` beneficiaries on
/// each (0 = none: spare accounts). Aadhaar numbers come from `aadhaar_base + n`.
#[allow(clippy::too_many_arguments)]
pub async fn citizens(
    clients: &ClientSet,
    base: &str,
    otp_file: &Path,
    accounts: usize,
    per_account: usize,
    mobile_base: u64,
    aadhaar_base: u64,
    fx: &mut Fixture,
) -> Result<(), KataarError> {
    // 1. OTPs out.
    let txns: Vec<Result<String, KataarError>> = futures::stream::iter(0..accounts)
        .map(|i| {
            let http = clients.get(i as u32).clone();
            let body = json!({"mobile": mobile(mobile_base, i as u64)});
            let url = format!("{base}/v1/auth/otp");
            async move {
                let (st, v) = setup_call(|| http.post(&url).json(&body), "otp").await?;
                if st != 202 {
                    return Err(KataarError::Setup(format!("otp: status {st}")));
                }
                v.get("txn_id")
                    .and_then(|t| {
                        t.as_str()
                            .map(str::to_owned)
                            .or_else(|| Some(t.to_string()))
                    })
                    .ok_or_else(|| KataarError::Setup("otp: no txn_id".into()))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    // 2. OTPs in (the sender writes asynchronously: wait until every txn is in the file).
    let mut otps = HashMap::new();
    for _ in 0..100 {
        otps = read_otps(otp_file).unwrap_or_default();
        if txns.iter().flatten().all(|t| otps.contains_key(t)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let otps = Arc::new(otps);
    let seq = Arc::new(AtomicU64::new(aadhaar_base));
    let results: Vec<LoginResult> = futures::stream::iter(txns.into_iter().enumerate())
        .map(|(i, txn)| {
            let http = clients.get(i as u32).clone();
            let otps = otps.clone();
            let seq = seq.clone();
            let base = base.to_owned();
            async move {
                let txn = txn?;
                let otp = otps
                    .get(&txn)
                    .cloned()
                    .ok_or_else(|| KataarError::Setup("otp not in the sender's file".into()))?;
                let body = json!({"txn_id": txn, "otp": otp});
                let url = format!("{base}/v1/auth/otp/verify");
                let (st, v) = setup_call(|| http.post(&url).json(&body), "verify").await?;
                if st != 200 {
                    return Err(KataarError::Setup(format!("verify: status {st}")));
                }
                let token: Arc<str> = v
                    .get("token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| KataarError::Setup("verify: no token".into()))?
                    .into();
                let mut bens = Vec::new();
                for b in 0..per_account.min(BENEFICIARIES_PER_ACCOUNT) {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let body = json!({
                        "name": format!("Loadgen Person {n}"), "birth_year": 1985 + (b as i64),
                        "gender": "female", "id_type": "aadhaar",
                        "id_number": verhoeff::aadhaar_from_seq(n)
                    });
                    let url = format!("{base}/v1/beneficiaries");
                    let (st, v) = setup_call(
                        || http.post(&url).bearer_auth(&*token).json(&body),
                        "beneficiary",
                    )
                    .await?;
                    if st != 201 {
                        return Err(KataarError::Setup(format!("beneficiary: status {st}")));
                    }
                    bens.push(id_of(&v, "beneficiary_id", "beneficiary")?);
                }
                Ok((token, bens))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    for r in results {
        let (token, bens) = r?;
        if bens.is_empty() {
            fx.spare_tokens.push(token);
        } else {
            fx.persons.extend(bens.into_iter().map(|b| Person {
                token: token.clone(),
                beneficiary_id: b,
            }));
        }
    }
    Ok(())
}

/// How bookings pick their slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Every booking to the first target.
    Hot,
    /// Uniformly over all targets.
    Uniform,
}

/// Issued OTP transactions and the OTPs the tailer found, for trace replays.
#[derive(Default)]
struct OtpTail {
    offset: u64,
    otps: HashMap<String, String>,
    issued: VecDeque<String>,
}

/// The executor for the engine's v1 API.
pub struct KataarExec {
    /// Clients.
    pub clients: ClientSet,
    /// `http://addr`.
    pub base: String,
    /// What setup built.
    pub fx: Arc<Fixture>,
    /// Hot or uniform bookings.
    pub spread: Spread,
    /// Prefix of idempotency keys (unique per run).
    pub run_tag: String,
    /// Base of fresh mobiles for `otp` requests.
    pub mobile_base: u64,
    /// Base of fresh Aadhaar numbers for `beneficiary` requests.
    pub aadhaar_base: u64,
    /// OTP file (for `verify`).
    pub otp_file: PathBuf,
    /// The lean client used for availability reads and bookings, when set.
    pub lean: Option<LeanClients>,
    tail: Arc<Mutex<OtpTail>>,
    fresh: AtomicU64,
}

impl KataarExec {
    /// A new executor.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        clients: ClientSet,
        base: String,
        fx: Arc<Fixture>,
        spread: Spread,
        run_tag: String,
        mobile_base: u64,
        aadhaar_base: u64,
        otp_file: PathBuf,
    ) -> Self {
        Self {
            clients,
            base,
            fx,
            spread,
            run_tag,
            mobile_base,
            aadhaar_base,
            otp_file,
            lean: None,
            tail: Arc::new(Mutex::new(OtpTail::default())),
            fresh: AtomicU64::new(0),
        }
    }

    /// Sends availability reads and bookings through `lean` (the other kinds keep reqwest).
    pub fn with_lean(mut self, lean: Option<LeanClients>) -> Self {
        self.lean = lean;
        self
    }

    fn booking_parts(&self, seq: u64) -> Option<(Target, &Person)> {
        let target = match self.spread {
            Spread::Hot => self.fx.targets.first().copied(),
            Spread::Uniform => {
                let n = self.fx.targets.len();
                (n > 0).then(|| self.fx.targets[rand::thread_rng().gen_range(0..n)])
            }
        };
        Some((target?, self.person(seq)?))
    }

    /// Reads OTP lines appended since the last call (call every few hundred ms during replays).
    pub fn tail_otps(&self) {
        let offset = self.tail.lock().offset;
        let Ok(mut f) = std::fs::File::open(&self.otp_file) else {
            return;
        };
        if f.seek(SeekFrom::Start(offset)).is_err() {
            return;
        }
        let mut read = 0u64;
        let mut found = Vec::new();
        for line in BufReader::new(&mut f).lines() {
            let Ok(line) = line else { break };
            read += line.len() as u64 + 1;
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let (Some(t), Some(o)) = (
                    v.get("txn_id").and_then(Value::as_str),
                    v.get("otp").and_then(Value::as_str),
                ) {
                    found.push((t.to_owned(), o.to_owned()));
                }
            }
        }
        let mut tail = self.tail.lock();
        tail.offset += read;
        if tail.otps.len() + found.len() > OTP_MAP_MAX {
            tail.otps.clear();
        }
        tail.otps.extend(found);
    }

    fn person(&self, seq: u64) -> Option<&Person> {
        let n = self.fx.persons.len();
        (n > 0).then(|| &self.fx.persons[(seq % n as u64) as usize])
    }
}

impl Executor for KataarExec {
    fn execute(&self, item: Planned, seq: u64, _attempt: u32) -> BoxFuture<'static, Answer> {
        if let Some(lean) = &self.lean {
            let lane = item.kind.lane();
            match item.kind {
                Kind::Availability | Kind::Hello => {
                    let req =
                        LeanRequest::get(format!("/v1/availability?district_id={DISTRICT_ID}"));
                    return lean.send(item.client, lane, req, false);
                }
                Kind::Booking => {
                    let Some((t, p)) = self.booking_parts(seq) else {
                        return futures::future::ready(Answer::failed(lane)).boxed();
                    };
                    let mut req = LeanRequest::post_json(
                        "/v1/bookings".into(),
                        &json!({"beneficiary_id": p.beneficiary_id, "session_id": t.session_id,
                                "slot_id": t.slot_id, "dose": 1}),
                    );
                    req.bearer = Some(p.token.clone());
                    req.idempotency_key = Some(format!("{}-{seq}", self.run_tag));
                    return lean.send(item.client, lane, req, true);
                }
                _ => {}
            }
        }
        let http = self.clients.get(item.client).clone();
        let base = &self.base;
        let lane = item.kind.lane();
        let rb = match item.kind {
            Kind::Availability | Kind::Hello => {
                http.get(format!("{base}/v1/availability?district_id={DISTRICT_ID}"))
            }
            Kind::Operator => http
                .get(format!(
                    "{base}/v1/admin/capacity?district_id={DISTRICT_ID}&date={}",
                    self.fx.date
                ))
                .bearer_auth(&self.fx.operator_key),
            Kind::Otp => {
                let n = self.fresh.fetch_add(1, Ordering::Relaxed);
                let http2 = http.clone();
                let url = format!("{base}/v1/auth/otp");
                let body = json!({"mobile": mobile(self.mobile_base, n)});
                let tail = self.tail.clone();
                return async move {
                    let resp = http2.post(url).json(&body).send().await;
                    let Ok(resp) = resp else {
                        return Answer::failed(lane);
                    };
                    let status = resp.status().as_u16();
                    let ra = crate::exec::retry_after_s(&resp);
                    if status == 202 {
                        if let Ok(v) = resp.json::<Value>().await {
                            if let Some(t) = v.get("txn_id").and_then(Value::as_str) {
                                let mut tail = tail.lock();
                                if tail.issued.len() >= ISSUED_TXNS_MAX {
                                    tail.issued.pop_front();
                                }
                                tail.issued.push_back(t.to_owned());
                            }
                        }
                    }
                    Answer {
                        lane,
                        outcome: crate::stats::Outcome::from_status(status),
                        status,
                        retry_after_s: ra,
                        booking_id: None,
                    }
                }
                .boxed();
            }
            Kind::Verify => {
                let (txn, otp) = {
                    let mut tail = self.tail.lock();
                    match tail.issued.pop_front() {
                        Some(t) => {
                            let otp = tail.otps.remove(&t).unwrap_or_else(|| "000000".into());
                            (t, otp)
                        }
                        None => (
                            "00000000-0000-0000-0000-000000000000".into(),
                            "000000".into(),
                        ),
                    }
                };
                http.post(format!("{base}/v1/auth/otp/verify"))
                    .json(&json!({"txn_id": txn, "otp": otp}))
            }
            Kind::Beneficiary => {
                let n = self.fresh.fetch_add(1, Ordering::Relaxed);
                let spare = &self.fx.spare_tokens;
                let mut rb = http.post(format!("{base}/v1/beneficiaries")).json(&json!({
                    "name": format!("Loadgen Walker {n}"), "birth_year": 1990, "gender": "male",
                    "id_type": "aadhaar", "id_number": verhoeff::aadhaar_from_seq(self.aadhaar_base + n)
                }));
                if !spare.is_empty() {
                    rb = rb.bearer_auth(
                        &*spare[(n as usize / BENEFICIARIES_PER_ACCOUNT) % spare.len()],
                    );
                }
                rb
            }
            Kind::Booking => {
                let Some((t, p)) = self.booking_parts(seq) else {
                    return futures::future::ready(Answer::failed(lane)).boxed();
                };
                http.post(format!("{base}/v1/bookings"))
                    .bearer_auth(&*p.token)
                    .header("Idempotency-Key", format!("{}-{seq}", self.run_tag))
                    .json(
                        &json!({"beneficiary_id": p.beneficiary_id, "session_id": t.session_id,
                                  "slot_id": t.slot_id, "dose": 1}),
                    )
            }
        };
        let want_id = item.kind == Kind::Booking;
        let fut = rb.send();
        async move { classify(lane, fut.await, want_id).await }.boxed()
    }
}

/// The value of counter `name` (summed over label sets) in a Prometheus text page.
pub fn metric_value(page: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

/// Reads two counters from `{base}/metrics`.
pub async fn read_counters(base: &str, events: &str, batches: &str) -> Option<(f64, f64)> {
    let page = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some((metric_value(&page, events)?, metric_value(&page, batches)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_sum_label_sets() {
        let page = "# TYPE kataar_store_batches_committed_total counter\n\
                    kataar_store_batches_committed_total 12\n\
                    kataar_store_events_committed_total{backend=\"pg\"} 600\n\
                    kataar_store_events_committed_total{backend=\"x\"} 4\n\
                    kataar_store_events_committed_total_other 99\n";
        assert_eq!(metric_value(page, METRIC_BATCHES_DEFAULT), Some(12.0));
        assert_eq!(metric_value(page, METRIC_EVENTS_DEFAULT), Some(604.0));
        assert_eq!(metric_value(page, "absent"), None);
    }
}
