//! [`AppState`]: shared by every handler, cheap to clone.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use kataar_admission::Admission;
use kataar_identity::{OtpDispatcher, OtpManager, PersonKeyer, TokenSigner};
use kataar_inventory::Inventory;
use kataar_store::{Store, WriterHandle};
use std::sync::Arc;
use std::time::Duration;

/// A source of the current instant (injected so tests can move time).
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Everything a handler needs.
pub struct Inner {
    /// The in-memory engine.
    pub inv: Arc<Inventory>,
    /// The durable store (reads that are not kept in memory: audit log, operator keys).
    pub store: Arc<dyn Store>,
    /// The group-commit writer.
    pub writer: WriterHandle,
    /// OTP transactions.
    pub otp: Arc<OtpManager>,
    /// OTP delivery (never on the request path).
    pub otp_sender: OtpDispatcher,
    /// Citizen tokens.
    pub tokens: TokenSigner,
    /// Photo-ID → person key.
    pub keyer: PersonKeyer,
    /// Signs vaccination certificates (the key published at `/v1/certificates/keys`).
    pub certificates: Arc<kataar_documents::CertificateSigner>,
    /// The drive's time zone (calendar days).
    pub tz: Tz,
    /// How long a handler waits for its commit before answering `503 store_unavailable`
    /// (the commit itself goes on and its effect is applied whenever it ends).
    pub commit_wait: Duration,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Recent availability answers (see [`crate::v1::public::AnswerCache`]).
    pub availability_cache: crate::v1::public::AnswerCache,
    /// Admission control (lanes, per-client and per-account limits, the store breaker).
    pub admission: Arc<Admission>,
    /// The header naming the client address and the proxies allowed to set it
    /// (`trusted_proxy_header`, `trusted_proxy_cidrs`).
    pub trusted_proxies: kataar_admission::TrustedProxies,
    /// The CoWIN v2 layer's state (captcha answers and switch).
    pub compat: crate::compat::Compat,
    /// Operator key hashes the store did not know (see [`crate::auth::UnknownKeys`]).
    pub unknown_operator_keys: crate::auth::UnknownKeys,
    /// The launch releases' waiting rooms.
    pub waitroom: crate::waitroom::Waitroom,
}

/// Shared application state.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today in the drive's time zone.
    pub fn today(&self) -> NaiveDate {
        self.now().with_timezone(&self.tz).date_naive()
    }
}
