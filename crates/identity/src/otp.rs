//! The OTP manager: issues 6-digit OTPs for mobiles and verifies them, in memory and bounded.
//!
//! Rules (defaults in the `OTP_*` constants, all in [`OtpConfig`]):
//! - an OTP lives `ttl_s` (180 s); a new one for the same mobile is refused for `resend_after_s`
//!   (30 s) after the last one ([`OtpError::ResendTooSoon`]), and beyond `per_mobile_hour_max`
//!   in any rolling hour or `per_mobile_day_max` in any rolling 24 h ([`OtpError::LimitReached`]);
//! - a new OTP for a mobile kills that mobile's previous transaction (one live OTP per mobile);
//! - a wrong OTP answers [`OtpError::Invalid`] with 2, 1, then 0 attempts left; after the third
//!   wrong try, or after expiry, the transaction is dead and answers [`OtpError::Expired`], even
//!   for the right OTP; an unknown or already used `txn_id` is also `Expired`;
//! - the right OTP gives an [`OtpClaim`]: the transaction is held (a second verify of it answers
//!   `Expired`) until the claim is consumed, once the caller has durably done what the OTP
//!   proves ([`OtpClaim::consume`]); a claim dropped unconsumed (the commit failed) hands the
//!   transaction back, so the same OTP can be tried again while it lives;
//! - an OTP whose delivery cannot be queued ([`OtpManager::request_then`]) is not issued: it
//!   answers [`OtpError::Busy`] and counts neither against the caps nor the resend cooldown.
//!
//! Storage: the OTP itself is never kept. Each transaction holds
//! `HMAC-SHA256(otp_key, txn_id || lowercase_hex(SHA-256(otp)))`, which lets both the v1 API
//! (clear OTP, [`OtpManager::claim`]) and the CoWIN API (hex SHA-256 of the OTP,
//! [`OtpManager::claim_sha256`]) be checked, in constant time.
//!
//! Bounds, both evicting the oldest first, never refusing a new mobile. Memory, measured in
//! `tests/otp_memory.rs`: at most 450 heap bytes per mobile holding a live OTP (both tables
//! counted), so at most about 450 bytes × `mobiles_max` (1.7 GiB at the default), less in
//! practice since at most `txns_max` mobiles hold a live OTP.
//! - `txns_max` transactions (default [`OTP_TXNS_MAX`]): the transactions
//!   issued within the last `ttl_s`. At the bound the oldest transaction is dropped (its OTP then
//!   answers `Expired`); the default covers 5,500 OTPs/s sustained over the TTL, several times
//!   the peak of a launch day like CoWIN's first day of 18+ registration (13 million people in a
//!   day: 150/s on average).
//! - `mobiles_max` mobiles (default [`OTP_MOBILES_MAX`]): a mobile is remembered 24 h after its
//!   last OTP, for the daily cap. At the bound the mobile whose last OTP is the oldest is
//!   forgotten, and its caps start again. At the default and 13 million new mobiles a day, a
//!   mobile is forgotten only after about 7 h without an OTP: the hourly cap and the resend
//!   cooldown always hold, the daily cap for all but the quietest mobiles.
//!
//! The caps are in memory only: a restart forgets them (a mobile may then receive up to its caps
//! again). Persisting them would put a store write on every OTP request, the one request of a
//! launch that comes before any account exists; the per-address admission limits still apply
//! across a restart's boundary, and the daily cap's purpose (bounding SMS cost per mobile) is
//! met to within one extra day's worth per restart.
//!
//! Cleaning: each request drops up to [`OTP_STEP_MAX`] expired entries, and
//! [`OtpManager::purge`] (call it periodically, e.g. every [`OTP_PURGE_EVERY_S`], off the async
//! workers) drops the rest in steps of [`OTP_PURGE_STEP_MAX`] entries, taking the lock once per
//! step; its work is what expired since the last purge, not the table's size.
//!
//! Time is passed in as `now: Instant` on every call.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::mobile::Mobile;

/// How long an OTP is valid, in seconds.
pub const OTP_TTL_S: u32 = 180;
/// Minimum time between two OTPs for one mobile, in seconds.
pub const OTP_RESEND_AFTER_S: u32 = 30;
/// Wrong tries allowed per transaction; the last one answers `attempts_left: 0` and kills it.
pub const OTP_ATTEMPTS_MAX: u8 = 3;
/// OTPs per mobile in any rolling hour.
pub const OTP_PER_MOBILE_HOUR_MAX: u32 = 10;
/// OTPs per mobile in any rolling 24 hours.
pub const OTP_PER_MOBILE_DAY_MAX: u32 = 50;
/// Transactions kept at most (config `otp_txns_max`): 5,500 OTPs/s sustained over the default
/// TTL.
pub const OTP_TXNS_MAX: usize = 1_000_000;
/// Mobiles tracked at most (config `otp_mobiles_max`): about 7 h of a 13-million-a-day launch;
/// at most 1.7 GiB at the bound.
pub const OTP_MOBILES_MAX: usize = 4_000_000;
/// `retry_after_s` answered when an OTP cannot be queued for delivery.
pub const OTP_BUSY_RETRY_AFTER_S: u32 = 5;
/// Suggested interval between two calls of [`OtpManager::purge`].
pub const OTP_PURGE_EVERY_S: u32 = 30;
/// Expired entries a request drops on its way (bounded work on the request path).
pub const OTP_STEP_MAX: usize = 32;
/// Entries [`OtpManager::purge`] drops per taking of the lock.
pub const OTP_PURGE_STEP_MAX: usize = 4096;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Limits of the OTP manager. [`OtpConfig::defaults`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtpConfig {
    /// How long an OTP is valid, in seconds (default [`OTP_TTL_S`]).
    pub ttl_s: u32,
    /// Minimum seconds between two OTPs for one mobile (default [`OTP_RESEND_AFTER_S`]).
    pub resend_after_s: u32,
    /// Wrong tries per transaction (default [`OTP_ATTEMPTS_MAX`]).
    pub attempts_max: u8,
    /// OTPs per mobile per rolling hour (default [`OTP_PER_MOBILE_HOUR_MAX`]).
    pub per_mobile_hour_max: u32,
    /// OTPs per mobile per rolling 24 h (default [`OTP_PER_MOBILE_DAY_MAX`]).
    pub per_mobile_day_max: u32,
    /// Transactions kept at most, the oldest evicted beyond (default [`OTP_TXNS_MAX`]).
    pub txns_max: usize,
    /// Mobiles tracked at most, the oldest forgotten beyond (default [`OTP_MOBILES_MAX`]).
    pub mobiles_max: usize,
}

impl OtpConfig {
    /// The documented defaults.
    pub const fn defaults() -> OtpConfig {
        OtpConfig {
            ttl_s: OTP_TTL_S,
            resend_after_s: OTP_RESEND_AFTER_S,
            attempts_max: OTP_ATTEMPTS_MAX,
            per_mobile_hour_max: OTP_PER_MOBILE_HOUR_MAX,
            per_mobile_day_max: OTP_PER_MOBILE_DAY_MAX,
            txns_max: OTP_TXNS_MAX,
            mobiles_max: OTP_MOBILES_MAX,
        }
    }
}

/// Why an OTP request or verification was refused. Messages never carry an OTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// Another OTP was sent to this mobile less than `resend_after_s` ago (`otp_resend_too_soon`).
    #[error("an OTP was sent to this mobile moments ago; retry in {retry_after_s} s")]
    ResendTooSoon {
        /// Whole seconds until a new OTP may be asked for (at least 1).
        retry_after_s: u32,
    },
    /// The hourly or daily cap for this mobile is reached (`otp_limit_reached`).
    #[error("too many OTPs for this mobile; retry in {retry_after_s} s")]
    LimitReached {
        /// Whole seconds until the cap lets one more through (at least 1).
        retry_after_s: u32,
    },
    /// The OTP could not be queued for delivery, so none was issued (`overloaded`).
    #[error("OTP service busy; retry in {retry_after_s} s")]
    Busy {
        /// Whole seconds to wait (at least 1).
        retry_after_s: u32,
    },
    /// Wrong OTP (`otp_invalid`); at 0 the transaction is dead.
    #[error("wrong OTP; {attempts_left} attempts left")]
    Invalid {
        /// Tries left on this transaction.
        attempts_left: u8,
    },
    /// Expired, used up, already consumed or unknown transaction (`otp_expired`).
    #[error("this OTP transaction has expired; ask for a new OTP")]
    Expired,
}

/// Six ASCII digits. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SixDigits(String);

impl std::fmt::Debug for SixDigits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SixDigits(<redacted>)")
    }
}

impl SixDigits {
    /// A uniformly random value in 000000..=999999 from the thread's CSPRNG.
    pub fn random() -> SixDigits {
        let n: u32 = rand::thread_rng().gen_range(0..1_000_000);
        SixDigits(format!("{n:06}"))
    }

    /// Parses exactly six ASCII digits.
    pub fn parse(s: &str) -> Option<SixDigits> {
        (s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())).then(|| SixDigits(s.to_owned()))
    }

    /// The clear digits: only for the OTP sender.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Lowercase hex SHA-256 of the six digits (what CoWIN clients send).
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A freshly issued OTP: hand `otp` to the sender, `txn_id` and the timings to the client.
#[derive(Debug, Clone)]
pub struct OtpIssued {
    /// The transaction id (a UUID v4, hyphenated lowercase).
    pub txn_id: String,
    /// The OTP (redacted `Debug`).
    pub otp: SixDigits,
    /// Seconds the OTP stays valid.
    pub expires_in_s: u32,
    /// Seconds before another OTP may be asked for.
    pub resend_after_s: u32,
}

/// A mobile proven by OTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMobile {
    /// The mobile the OTP was sent to.
    pub mobile: Mobile,
}

struct Txn {
    mobile: u64,
    tag: [u8; 32],
    expires_at_ms: u64,
    attempts_left: u8,
    /// Held by an [`OtpClaim`].
    claimed: bool,
}

/// One mobile: times of the OTPs sent in the last 24 h, oldest first (at most
/// `per_mobile_day_max`). Its live transaction is the one issued at the last time.
type Sends = VecDeque<u64>;

#[derive(Default)]
struct Inner {
    txns: HashMap<Uuid, Txn>,
    /// (expiry, txn) in issue order: oldest first.
    expiry: VecDeque<(u64, Uuid)>,
    mobiles: HashMap<u64, Sends>,
    /// (send time, mobile) in send order: oldest first. An entry is current when it is its
    /// mobile's last send; others are stale and skipped.
    sends: VecDeque<(u64, u64)>,
    /// Per mobile, the transaction issued at its last send.
    live: HashMap<u64, Uuid>,
}

/// What a cleaning pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeStats {
    /// Expired transaction slots released.
    pub txns: usize,
    /// Mobiles forgotten (no OTP in the last 24 h).
    pub mobiles: usize,
}

impl Inner {
    /// Drops up to `budget` queue entries past their time; returns what went and whether
    /// anything is left to drop.
    fn clean(&mut self, now_ms: u64, budget: usize) -> (PurgeStats, bool) {
        let mut stats = PurgeStats::default();
        let mut left = budget;
        while left > 0 {
            match self.expiry.front() {
                Some(&(at, _)) if at <= now_ms => {
                    self.drop_oldest_txn();
                    stats.txns += 1;
                    left -= 1;
                }
                _ => break,
            }
        }
        while left > 0 {
            match self.sends.front() {
                Some(&(at, _)) if at.saturating_add(DAY_MS) <= now_ms => {
                    if self.drop_oldest_send() {
                        stats.mobiles += 1;
                    }
                    left -= 1;
                }
                _ => break,
            }
        }
        let more = self.expiry.front().is_some_and(|&(at, _)| at <= now_ms)
            || self
                .sends
                .front()
                .is_some_and(|&(at, _)| at.saturating_add(DAY_MS) <= now_ms);
        (stats, more)
    }

    /// Removes the oldest transaction slot (expired or not); true if it held a transaction.
    fn drop_oldest_txn(&mut self) -> bool {
        let Some((at, id)) = self.expiry.pop_front() else {
            return false;
        };
        if self.txns.get(&id).is_none_or(|t| t.expires_at_ms != at) {
            return false;
        }
        if let Some(txn) = self.txns.remove(&id) {
            if self.live.get(&txn.mobile) == Some(&id) {
                self.live.remove(&txn.mobile);
            }
        }
        true
    }

    /// Pops the oldest send entry; if it is its mobile's last send, forgets the mobile.
    /// Returns true when a mobile was forgotten.
    fn drop_oldest_send(&mut self) -> bool {
        let Some((at, mobile)) = self.sends.pop_front() else {
            return false;
        };
        if self.mobiles.get(&mobile).and_then(|s| s.back()) == Some(&at) {
            // A transaction still live keeps its own slot until it expires.
            self.mobiles.remove(&mobile);
            self.live.remove(&mobile);
            return true;
        }
        false
    }
}

/// The OTP manager. `Send + Sync`; share it in an `Arc`.
pub struct OtpManager {
    config: OtpConfig,
    mac: Hmac<Sha256>,
    epoch: Instant,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for OtpManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpManager")
            .field("config", &self.config)
            .field("otp_key", &"<redacted>")
            .finish()
    }
}

fn ceil_s(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX).max(1)
}

/// A verified transaction held until its proof is used: [`OtpClaim::consume`] ends it; dropping
/// the claim unconsumed hands it back (same OTP, same attempts left).
pub struct OtpClaim<'a> {
    manager: &'a OtpManager,
    id: Uuid,
    mobile: Mobile,
    consumed: bool,
}

impl std::fmt::Debug for OtpClaim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpClaim")
            .field("mobile", &self.mobile)
            .finish()
    }
}

impl OtpClaim<'_> {
    /// The mobile the OTP was sent to.
    pub fn mobile(&self) -> &Mobile {
        &self.mobile
    }

    /// Ends the transaction: its OTP no longer verifies.
    pub fn consume(mut self) -> VerifiedMobile {
        self.consumed = true;
        let mut inner = self.manager.inner.lock();
        if let Some(txn) = inner.txns.remove(&self.id) {
            if inner.live.get(&txn.mobile) == Some(&self.id) {
                inner.live.remove(&txn.mobile);
            }
        }
        drop(inner);
        VerifiedMobile {
            mobile: self.mobile.clone(),
        }
    }
}

impl Drop for OtpClaim<'_> {
    fn drop(&mut self) {
        if !self.consumed {
            if let Some(txn) = self.manager.inner.lock().txns.get_mut(&self.id) {
                txn.claimed = false;
            }
        }
    }
}

impl OtpManager {
    /// A manager with `config` whose stored OTP hashes are keyed with `otp_key`.
    ///
    /// Instants passed to later calls are measured from an epoch taken here; earlier instants
    /// count as the epoch.
    pub fn new(config: OtpConfig, otp_key: &[u8]) -> OtpManager {
        let mac = match Hmac::<Sha256>::new_from_slice(otp_key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        OtpManager {
            config,
            mac,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &OtpConfig {
        &self.config
    }

    /// Milliseconds since the epoch, plus one day so that window starts (`now - 24 h`) never
    /// saturate at 0 and swallow a send made at the epoch.
    fn ms(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.epoch);
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(DAY_MS)
    }

    fn tag(&self, txn_id: &Uuid, otp_sha256_hex: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(txn_id.as_bytes());
        mac.update(otp_sha256_hex.as_bytes());
        mac
    }

    /// Issues an OTP for `mobile` at `now`, or says why not.
    pub fn request(&self, mobile: &Mobile, now: Instant) -> Result<OtpIssued, OtpError> {
        self.request_then(mobile, now, |_| true)
    }

    /// Issues an OTP for `mobile` at `now` if `deliver` (called once, under the manager's lock,
    /// after every check passed; it must not block, e.g. a queue's `try_send`) accepts it.
    /// When `deliver` returns false nothing is recorded and the answer is [`OtpError::Busy`].
    pub fn request_then(
        &self,
        mobile: &Mobile,
        now: Instant,
        deliver: impl FnOnce(&OtpIssued) -> bool,
    ) -> Result<OtpIssued, OtpError> {
        let now_ms = self.ms(now);
        let cfg = &self.config;
        let key = mobile.as_u64();
        let txn_id = Uuid::new_v4();
        let otp = SixDigits::random();
        let tag: [u8; 32] = self
            .tag(&txn_id, &otp.sha256_hex())
            .finalize()
            .into_bytes()
            .into();
        let resend_ms = u64::from(cfg.resend_after_s) * 1000;
        let expires_at_ms = now_ms.saturating_add(u64::from(cfg.ttl_s) * 1000);
        let issued = OtpIssued {
            txn_id: txn_id.hyphenated().to_string(),
            otp,
            expires_in_s: cfg.ttl_s,
            resend_after_s: cfg.resend_after_s,
        };

        let mut inner = self.inner.lock();
        inner.clean(now_ms, OTP_STEP_MAX);
        if let Some(sends) = inner.mobiles.get_mut(&key) {
            while sends
                .front()
                .is_some_and(|&t| t.saturating_add(DAY_MS) <= now_ms)
            {
                sends.pop_front();
            }
            if let Some(&last) = sends.back() {
                let next = last.saturating_add(resend_ms);
                if now_ms < next {
                    return Err(OtpError::ResendTooSoon {
                        retry_after_s: ceil_s(next - now_ms),
                    });
                }
            }
            let hour_start = now_ms.saturating_sub(HOUR_MS);
            let in_hour = sends.iter().rev().take_while(|&&t| t > hour_start).count();
            let hour_max = cfg.per_mobile_hour_max as usize;
            if in_hour >= hour_max {
                // The send that must leave the hour window for one more to fit.
                let idx = sends.len() - in_hour + (in_hour - hour_max);
                let free_at = sends[idx].saturating_add(HOUR_MS);
                return Err(OtpError::LimitReached {
                    retry_after_s: ceil_s(free_at.saturating_sub(now_ms)),
                });
            }
            let day_max = cfg.per_mobile_day_max as usize;
            if sends.len() >= day_max {
                let idx = sends.len() - day_max;
                let free_at = sends[idx].saturating_add(DAY_MS);
                return Err(OtpError::LimitReached {
                    retry_after_s: ceil_s(free_at.saturating_sub(now_ms)),
                });
            }
        }
        if !deliver(&issued) {
            return Err(OtpError::Busy {
                retry_after_s: OTP_BUSY_RETRY_AFTER_S,
            });
        }

        // Make room: the oldest first.
        let mut evicted_txns = 0u64;
        while inner.expiry.len() >= cfg.txns_max.max(1) {
            if inner.drop_oldest_txn() {
                evicted_txns += 1;
            }
        }
        let mut evicted_mobiles = 0u64;
        if !inner.mobiles.contains_key(&key) {
            while inner.mobiles.len() >= cfg.mobiles_max.max(1) {
                if inner.drop_oldest_send() {
                    evicted_mobiles += 1;
                }
            }
        }
        // Stale send entries (a mobile's earlier sends) are bounded too.
        while inner.sends.len() >= cfg.mobiles_max.max(1).saturating_mul(2) {
            if inner.drop_oldest_send() {
                evicted_mobiles += 1;
            }
        }

        inner.mobiles.entry(key).or_default().push_back(now_ms);
        inner.sends.push_back((now_ms, key));
        if let Some(old) = inner.live.insert(key, txn_id) {
            inner.txns.remove(&old);
        }
        inner.txns.insert(
            txn_id,
            Txn {
                mobile: key,
                tag,
                expires_at_ms,
                attempts_left: cfg.attempts_max,
                claimed: false,
            },
        );
        inner.expiry.push_back((expires_at_ms, txn_id));
        drop(inner);
        if evicted_txns > 0 {
            metrics::counter!("kataar_otp_evicted_total", "table" => "txns")
                .increment(evicted_txns);
        }
        if evicted_mobiles > 0 {
            metrics::counter!("kataar_otp_evicted_total", "table" => "mobiles")
                .increment(evicted_mobiles);
        }
        Ok(issued)
    }

    /// Verifies the clear 6-digit `otp` of `txn_id` (v1 API) and consumes the transaction.
    /// Anything other than six digits counts as a wrong try.
    pub fn verify(
        &self,
        txn_id: &str,
        otp: &str,
        now: Instant,
    ) -> Result<VerifiedMobile, OtpError> {
        self.claim(txn_id, otp, now).map(OtpClaim::consume)
    }

    /// Verifies `otp_sha256_hex`, the hex SHA-256 of the 6 digits (CoWIN API; either case), and
    /// consumes the transaction. Anything other than 64 hex characters counts as a wrong try.
    pub fn verify_sha256(
        &self,
        txn_id: &str,
        otp_sha256_hex: &str,
        now: Instant,
    ) -> Result<VerifiedMobile, OtpError> {
        self.claim_sha256(txn_id, otp_sha256_hex, now)
            .map(OtpClaim::consume)
    }

    /// Verifies the clear 6-digit `otp` of `txn_id` and holds the transaction until the claim is
    /// consumed (or handed back by dropping it).
    pub fn claim(&self, txn_id: &str, otp: &str, now: Instant) -> Result<OtpClaim<'_>, OtpError> {
        let hexed = SixDigits::parse(otp).map(|d| d.sha256_hex());
        self.claim_hex(txn_id, hexed, now)
    }

    /// [`OtpManager::claim`] with the hex SHA-256 of the 6 digits (either case).
    pub fn claim_sha256(
        &self,
        txn_id: &str,
        otp_sha256_hex: &str,
        now: Instant,
    ) -> Result<OtpClaim<'_>, OtpError> {
        let ok =
            otp_sha256_hex.len() == 64 && otp_sha256_hex.bytes().all(|b| b.is_ascii_hexdigit());
        let hexed = ok.then(|| otp_sha256_hex.to_ascii_lowercase());
        self.claim_hex(txn_id, hexed, now)
    }

    fn claim_hex(
        &self,
        txn_id: &str,
        otp_sha256_hex: Option<String>,
        now: Instant,
    ) -> Result<OtpClaim<'_>, OtpError> {
        let id = Uuid::try_parse(txn_id).map_err(|_| OtpError::Expired)?;
        let now_ms = self.ms(now);
        let candidate = otp_sha256_hex.map(|h| self.tag(&id, &h));

        let mut inner = self.inner.lock();
        let txn = inner.txns.get_mut(&id).ok_or(OtpError::Expired)?;
        if now_ms >= txn.expires_at_ms || txn.attempts_left == 0 || txn.claimed {
            return Err(OtpError::Expired);
        }
        let right = candidate.is_some_and(|mac| mac.verify_slice(&txn.tag).is_ok());
        if !right {
            txn.attempts_left -= 1;
            return Err(OtpError::Invalid {
                attempts_left: txn.attempts_left,
            });
        }
        txn.claimed = true;
        let number = txn.mobile;
        drop(inner);
        let Some(mobile) = Mobile::from_u64(number) else {
            // Keys are made from valid mobiles only.
            return Err(OtpError::Expired);
        };
        Ok(OtpClaim {
            manager: self,
            id,
            mobile,
            consumed: false,
        })
    }

    /// Drops expired transactions and mobiles with no OTP in the last 24 h, in steps of
    /// [`OTP_PURGE_STEP_MAX`] entries (the lock is released between steps). Its work is what
    /// expired since the last call; run it off the async workers (`spawn_blocking`).
    pub fn purge(&self, now: Instant) -> PurgeStats {
        let now_ms = self.ms(now);
        let mut total = PurgeStats::default();
        loop {
            let (stats, more) = self.inner.lock().clean(now_ms, OTP_PURGE_STEP_MAX);
            total.txns += stats.txns;
            total.mobiles += stats.mobiles;
            if !more {
                break;
            }
        }
        let (txns, mobiles) = (self.txn_slots_used(), self.mobiles_tracked());
        metrics::gauge!("kataar_otp_txns").set(txns as f64);
        metrics::gauge!("kataar_otp_mobiles").set(mobiles as f64);
        total
    }

    /// Transaction slots in use (live, dead or used but not yet past their expiry).
    pub fn txn_slots_used(&self) -> usize {
        self.inner.lock().expiry.len()
    }

    /// Mobiles tracked.
    pub fn mobiles_tracked(&self) -> usize {
        self.inner.lock().mobiles.len()
    }
}

/// A `Duration` of whole seconds, for callers that schedule [`OtpManager::purge`].
pub fn purge_interval() -> Duration {
    Duration::from_secs(u64::from(OTP_PURGE_EVERY_S))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mobile::normalize_mobile;

    fn mgr(config: OtpConfig) -> (OtpManager, Instant) {
        let m = OtpManager::new(config, b"otp-test-key");
        (m, Instant::now())
    }

    fn mob(s: &str) -> Mobile {
        normalize_mobile(s).unwrap()
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn wrong(otp: &SixDigits) -> String {
        let n: u32 = otp.expose_secret().parse().unwrap();
        format!("{:06}", (n + 1) % 1_000_000)
    }

    #[test]
    fn request_then_verify_consumes() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let a = mob("9876543210");
        let issued = m.request(&a, t0).unwrap();
        assert_eq!(issued.expires_in_s, 180);
        assert_eq!(issued.resend_after_s, 30);
        assert!(Uuid::try_parse(&issued.txn_id).is_ok());
        assert_eq!(issued.otp.expose_secret().len(), 6);
        let v = m
            .verify(&issued.txn_id, issued.otp.expose_secret(), t0 + s(10))
            .unwrap();
        assert_eq!(v.mobile, a);
        assert_eq!(
            m.verify(&issued.txn_id, issued.otp.expose_secret(), t0 + s(11)),
            Err(OtpError::Expired)
        );
    }

    #[test]
    fn wrong_tries_count_down_then_dead_even_for_right_otp() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let issued = m.request(&mob("9876543210"), t0).unwrap();
        let bad = wrong(&issued.otp);
        assert_eq!(
            m.verify(&issued.txn_id, &bad, t0),
            Err(OtpError::Invalid { attempts_left: 2 })
        );
        assert_eq!(
            m.verify(&issued.txn_id, "12ab56", t0),
            Err(OtpError::Invalid { attempts_left: 1 })
        );
        assert_eq!(
            m.verify(&issued.txn_id, &bad, t0),
            Err(OtpError::Invalid { attempts_left: 0 })
        );
        assert_eq!(
            m.verify(&issued.txn_id, issued.otp.expose_secret(), t0),
            Err(OtpError::Expired)
        );
    }

    #[test]
    fn expiry_kills_the_right_otp() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let issued = m.request(&mob("9876543210"), t0).unwrap();
        let otp = issued.otp.expose_secret().to_owned();
        assert_eq!(
            m.verify(&issued.txn_id, &otp, t0 + s(180)),
            Err(OtpError::Expired)
        );
        let issued = m.request(&mob("9876543211"), t0).unwrap();
        assert!(m
            .verify(
                &issued.txn_id,
                issued.otp.expose_secret(),
                t0 + Duration::from_millis(179_999)
            )
            .is_ok());
    }

    #[test]
    fn unknown_or_malformed_txn_is_expired() {
        let (m, t0) = mgr(OtpConfig::defaults());
        assert_eq!(m.verify("not-a-uuid", "123456", t0), Err(OtpError::Expired));
        let id = Uuid::new_v4().to_string();
        assert_eq!(m.verify(&id, "123456", t0), Err(OtpError::Expired));
    }

    #[test]
    fn sha256_variant_checks_the_same_otp() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let issued = m.request(&mob("9876543210"), t0).unwrap();
        let good = hex::encode(Sha256::digest(issued.otp.expose_secret().as_bytes()));
        let bad = hex::encode(Sha256::digest(wrong(&issued.otp).as_bytes()));
        assert_eq!(
            m.verify_sha256(&issued.txn_id, &bad, t0),
            Err(OtpError::Invalid { attempts_left: 2 })
        );
        // A clear OTP is not its hash.
        assert_eq!(
            m.verify_sha256(&issued.txn_id, issued.otp.expose_secret(), t0),
            Err(OtpError::Invalid { attempts_left: 1 })
        );
        let v = m
            .verify_sha256(&issued.txn_id, &good.to_uppercase(), t0)
            .unwrap();
        assert_eq!(v.mobile.as_str(), "9876543210");
    }

    #[test]
    fn resend_cooldown() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let a = mob("9876543210");
        let first = m.request(&a, t0).unwrap();
        assert_eq!(
            m.request(&a, t0 + s(1)).unwrap_err(),
            OtpError::ResendTooSoon { retry_after_s: 29 }
        );
        assert_eq!(
            m.request(&a, t0 + Duration::from_millis(29_500))
                .unwrap_err(),
            OtpError::ResendTooSoon { retry_after_s: 1 }
        );
        // Another mobile is not affected.
        assert!(m.request(&mob("9876543211"), t0 + s(1)).is_ok());
        let second = m.request(&a, t0 + s(30)).unwrap();
        // The new OTP kills the previous transaction.
        assert_eq!(
            m.verify(&first.txn_id, first.otp.expose_secret(), t0 + s(31)),
            Err(OtpError::Expired)
        );
        assert!(m
            .verify(&second.txn_id, second.otp.expose_secret(), t0 + s(31))
            .is_ok());
    }

    #[test]
    fn hourly_cap_then_daily_cap() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let a = mob("9876543210");
        for i in 0..10 {
            m.request(&a, t0 + s(i * 30)).unwrap();
        }
        // 11th within the hour: the first one (t0) leaves the window at t0 + 3600.
        assert_eq!(
            m.request(&a, t0 + s(300)).unwrap_err(),
            OtpError::LimitReached {
                retry_after_s: 3300
            }
        );
        assert!(m.request(&a, t0 + s(3600)).is_ok());
        // Fill the day: 10 per hour, spread out.
        let mut sent = 11u64;
        let mut t = 3600 + 30;
        while sent < 50 {
            match m.request(&a, t0 + s(t)) {
                Ok(_) => sent += 1,
                Err(OtpError::LimitReached { retry_after_s }) => t += u64::from(retry_after_s),
                Err(e) => panic!("{e:?}"),
            }
            t += 30;
        }
        assert!(t < 86_400);
        let err = m.request(&a, t0 + s(t + 3600)).unwrap_err();
        assert_eq!(
            err,
            OtpError::LimitReached {
                retry_after_s: u32::try_from(86_400 - (t + 3600)).unwrap()
            }
        );
        assert!(m.request(&a, t0 + s(86_400)).is_ok());
    }

    #[test]
    fn bound_on_transactions_evicts_the_oldest() {
        let cfg = OtpConfig {
            txns_max: 3,
            ..OtpConfig::defaults()
        };
        let (m, t0) = mgr(cfg);
        let issued: Vec<OtpIssued> = (0..3)
            .map(|i| {
                m.request(&mob(&format!("987654321{i}")), t0 + s(i))
                    .unwrap()
            })
            .collect();
        assert_eq!(m.txn_slots_used(), 3);
        // At the bound a new mobile is served; the oldest transaction makes room.
        let fourth = m.request(&mob("9876543219"), t0 + s(10)).unwrap();
        assert_eq!(m.txn_slots_used(), 3);
        assert_eq!(
            m.verify(&issued[0].txn_id, issued[0].otp.expose_secret(), t0 + s(11)),
            Err(OtpError::Expired)
        );
        for t in [&issued[1], &issued[2], &fourth] {
            assert!(m
                .verify(&t.txn_id, t.otp.expose_secret(), t0 + s(11))
                .is_ok());
        }
    }

    #[test]
    fn bound_on_mobiles_forgets_the_oldest_and_purge_cleans() {
        let cfg = OtpConfig {
            mobiles_max: 2,
            ..OtpConfig::defaults()
        };
        let (m, t0) = mgr(cfg);
        let a = mob("9000000001");
        m.request(&a, t0).unwrap();
        m.request(&mob("9000000002"), t0 + s(1)).unwrap();
        // A known mobile is still capped.
        assert!(matches!(
            m.request(&a, t0 + s(2)),
            Err(OtpError::ResendTooSoon { .. })
        ));
        // A third mobile is served: the mobile whose last OTP is oldest (a) is forgotten.
        let c = m.request(&mob("9000000003"), t0 + s(2)).unwrap();
        assert_eq!(m.mobiles_tracked(), 2);
        assert!(
            m.request(&a, t0 + s(3)).is_ok(),
            "a's cooldown was forgotten"
        );
        assert_eq!(m.mobiles_tracked(), 2);
        assert!(m
            .verify(&c.txn_id, c.otp.expose_secret(), t0 + s(4))
            .is_ok());
        let p = m.purge(t0 + s(3600));
        assert_eq!(p.txns, 4);
        assert_eq!(p.mobiles, 0);
        assert_eq!(m.mobiles_tracked(), 2);
        let p = m.purge(t0 + s(86_400 + 30));
        assert_eq!(
            p,
            PurgeStats {
                txns: 0,
                mobiles: 2
            }
        );
        assert_eq!(m.txn_slots_used(), 0);
        assert_eq!(m.mobiles_tracked(), 0);
    }

    #[test]
    fn purge_works_in_steps_and_finishes() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let n = OTP_PURGE_STEP_MAX * 2 + 7;
        for i in 0..n {
            let raw = format!("9{:09}", i);
            m.request(&mob(&raw), t0).unwrap();
        }
        let p = m.purge(t0 + s(86_400));
        assert_eq!(
            p,
            PurgeStats {
                txns: n,
                mobiles: n
            }
        );
        assert_eq!((m.txn_slots_used(), m.mobiles_tracked()), (0, 0));
    }

    #[test]
    fn an_undelivered_otp_is_not_issued_and_not_counted() {
        let cfg = OtpConfig {
            per_mobile_hour_max: 1,
            ..OtpConfig::defaults()
        };
        let (m, t0) = mgr(cfg);
        let a = mob("9876543210");
        let mut offered = None;
        let refused = m.request_then(&a, t0, |issued| {
            offered = Some(issued.txn_id.clone());
            false
        });
        assert_eq!(
            refused.unwrap_err(),
            OtpError::Busy {
                retry_after_s: OTP_BUSY_RETRY_AFTER_S
            }
        );
        let offered = offered.unwrap();
        assert_eq!(m.verify(&offered, "000000", t0), Err(OtpError::Expired));
        // Neither the cooldown nor the hourly cap (1) saw it.
        let issued = m.request(&a, t0 + s(1)).unwrap();
        assert!(m
            .verify(&issued.txn_id, issued.otp.expose_secret(), t0 + s(2))
            .is_ok());
        assert_eq!(m.mobiles_tracked(), 1);
    }

    #[test]
    fn a_claim_dropped_unconsumed_hands_the_otp_back() {
        let (m, t0) = mgr(OtpConfig::defaults());
        let issued = m.request(&mob("9876543210"), t0).unwrap();
        let otp = issued.otp.expose_secret().to_owned();
        let claim = m.claim(&issued.txn_id, &otp, t0).unwrap();
        assert_eq!(claim.mobile().as_str(), "9876543210");
        // Held: a second verify of the same transaction is refused meanwhile.
        assert_eq!(m.verify(&issued.txn_id, &otp, t0), Err(OtpError::Expired));
        drop(claim);
        // Handed back: the same OTP works, once.
        let claim = m.claim(&issued.txn_id, &otp, t0 + s(1)).unwrap();
        assert_eq!(claim.consume().mobile.as_str(), "9876543210");
        assert_eq!(
            m.verify(&issued.txn_id, &otp, t0 + s(2)),
            Err(OtpError::Expired)
        );
    }

    #[test]
    fn otps_are_uniform_enough_and_redacted() {
        let mut seen_low = false;
        let mut counts = [0u32; 10];
        for _ in 0..5000 {
            let d = SixDigits::random();
            assert!(SixDigits::parse(d.expose_secret()).is_some());
            seen_low |= d.expose_secret().starts_with('0');
            counts[usize::from(d.expose_secret().as_bytes()[0] - b'0')] += 1;
        }
        assert!(seen_low, "leading zeros must occur");
        assert!(counts.iter().all(|&c| c > 300), "{counts:?}");
        let (m, t0) = mgr(OtpConfig::defaults());
        let issued = m.request(&mob("9876543210"), t0).unwrap();
        let dbg = format!("{issued:?} {m:?}");
        assert!(!dbg.contains(issued.otp.expose_secret()), "{dbg}");
        assert!(!dbg.contains("otp-test-key"));
        assert!(SixDigits::parse("12345").is_none());
        assert!(SixDigits::parse("1234567").is_none());
        assert!(SixDigits::parse("12345a").is_none());
    }
}
