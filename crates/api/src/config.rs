//! The process configuration: every key, its default, and how it is loaded.
//!
//! Precedence, highest first: command-line flag ([`ConfigOverrides`]) > environment variable
//! `KATAAR_<KEY>` (upper case; admission keys `KATAAR_ADMISSION_<KEY>`) > the TOML file given
//! with `--config` > the defaults below. Unknown keys in the file are errors (typos must not pass
//! silently); unknown `KATAAR_*` variables are ignored (`KATAAR_LOG` is the log filter, not a
//! key). Every key ends with its unit (`_s`, `_ms`, `_max` counts, `_bytes_max`).
//!
//! Secrets (`token_secret`, `person_key_secret`, `otp_secret`, `otp_webhook_secret`,
//! `certificate_secret`, the password in `database_url`) are never printed:
//! [`Config::to_toml_redacted`] replaces them. Prefer the environment for
//! secrets (flags show up in `ps`), so they have no flag.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use kataar_admission::{Cidr, TrustedProxies};

use crate::server::ServerLimits;

/// Environment variable prefix.
pub const ENV_PREFIX: &str = "KATAAR_";
/// Shown instead of a secret.
pub const REDACTED: &str = "<redacted>";
/// Shortest `otp_webhook_secret`, in bytes.
pub const OTP_WEBHOOK_SECRET_BYTES_MIN: usize = 16;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    Json,
    /// Human-readable lines.
    Text,
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// `postgres://…` for PostgreSQL; absent: the embedded SQLite store in `data_dir`. Secret
    /// (its password is redacted when printed).
    pub database_url: Option<String>,
    /// Directory for the embedded store and generated secrets (`./kataar-data`).
    pub data_dir: PathBuf,
    /// Load the demo drive if the store is empty (false).
    pub demo: bool,
    /// Run PostgreSQL migrations at start (true; `--no-migrate`).
    pub migrate: bool,
    /// Seconds for a request head to arrive (10).
    pub header_read_timeout_s: u32,
    /// Seconds for a handler to answer before `503 overloaded` (30).
    pub request_timeout_s: u32,
    /// Seconds an idle keep-alive connection is kept (60).
    pub keepalive_idle_s: u32,
    /// Largest request body in bytes (65536).
    pub body_bytes_max: u32,
    /// Connections served at once; beyond, a fast `503` (20000).
    pub connections_max: u32,
    /// Seconds shutdown waits for in-flight requests and the store queue (20).
    pub shutdown_grace_s: u32,
    /// Serve `/metrics` on this separate address instead of the main one (absent).
    pub metrics_listen: Option<SocketAddr>,
    /// OTP delivery: `log`, `file:PATH` or `webhook:URL`. Absent means `log` (the OTP appears in
    /// the log, marked as a demo), which `serve` accepts with `demo` only.
    pub otp_sender: Option<String>,
    /// IANA time zone of the drive's calendar days (`Asia/Kolkata`).
    pub timezone: String,
    /// Citizen token lifetime in seconds (900).
    pub token_ttl_s: u32,
    /// Token signing secret; absent: generated into `data_dir`. Secret.
    pub token_secret: Option<String>,
    /// Person-key HMAC secret; absent: generated into `data_dir`. Secret.
    pub person_key_secret: Option<String>,
    /// OTP hashing secret; absent: generated into `data_dir`. Secret.
    pub otp_secret: Option<String>,
    /// Seed of the Ed25519 key that signs vaccination certificates (32 bytes or more, hex or
    /// base64); absent: generated into `data_dir`. Secret.
    pub certificate_secret: Option<String>,
    /// Header carrying the client address when behind a trusted proxy (absent: the peer).
    pub trusted_proxy_header: Option<String>,
    /// `json` (default) or `text`.
    pub log_format: LogFormat,
    /// Require the captcha on the compatibility `schedule` call (false).
    pub compat_captcha_required: bool,
    /// Most writes the store writer commits in one batch, one per request that made them: a
    /// booking counts one, as does a cancellation or a check-in (512).
    pub batch_bookings_max: u32,
    /// Most events the store writer commits in one batch (4096; a booking is two).
    pub batch_events_max: u32,
    /// Most events queued to the store writer (65536; beyond, `503 store_unavailable`).
    pub writer_queue_events_max: u32,
    /// Milliseconds a commit may take before it is treated as in doubt (5000).
    pub commit_timeout_ms: u32,
    /// PostgreSQL pool size (8).
    pub pg_pool_size_max: u32,
    /// Milliseconds an availability answer may be served from the in-memory answer cache
    /// (1000; 0 turns the cache off). Answers already say `Cache-Control: max-age=5`.
    pub availability_cache_ms: u32,
    // Bounds of the availability cache and the OTP service.
    /// Bytes the availability answer cache may hold (67108864 = 64 MiB): bodies, ETags and a
    /// fixed per-entry overhead; the oldest answers go first at the bound.
    pub availability_cache_bytes_max: u64,
    /// OTP transactions kept at most (1000000); the oldest go first at the bound.
    pub otp_txns_max: u64,
    /// Mobiles whose OTP caps are tracked at most (4000000); the one with the oldest last OTP is
    /// forgotten first at the bound.
    pub otp_mobiles_max: u64,
    /// OTPs waiting for the sender at most (10000); beyond, `POST /v1/auth/otp` answers
    /// `503 overloaded` and issues nothing.
    pub otp_queue_max: u32,
    /// Key of the `Kataar-Signature` HMAC on webhook OTP deliveries, at least 16 bytes; required
    /// with `otp_sender = webhook:URL`. Secret.
    pub otp_webhook_secret: Option<String>,
    /// Connections open at once from one peer address (IPv6: its /64); beyond, a fast `429`
    /// (512). Peers in `trusted_proxy_cidrs` are not capped per address.
    pub connections_per_client_max: u32,
    /// Largest request head (request line and headers) in bytes; beyond, `431` and the
    /// connection is closed (16384; 8192 to 1048576).
    pub header_bytes_max: u32,
    /// Seconds for a whole request body to arrive; it is read before the request takes an
    /// admission place, so slow senders hold none (10). Beyond: `400 invalid_request`, closed.
    pub body_read_timeout_s: u32,
    /// Launch releases kept at once (100); beyond, `POST /v1/admin/releases` answers `429`.
    pub releases_max: u32,
    /// Waiting-room tickets in one release at most (1000000); beyond, `POST /v1/queue` answers
    /// `429 too_many_requests` with `Retry-After`.
    pub queue_tickets_max: u32,
    /// Seconds past the poll time it was given that a waiting ticket keeps its place (60).
    pub queue_keepalive_s: u32,
    /// Polls per second a whole release's queue is paced to by `poll_after_s` (2000).
    pub queue_poll_budget_per_s: u32,
    /// Shortest `poll_after_s` given, seconds (2).
    pub queue_poll_min_s: u32,
    /// Longest `poll_after_s` given, seconds (60).
    pub queue_poll_max_s: u32,
    /// Queue polls held open at once (`GET /v1/queue/{id}?wait_s=`) across the releases
    /// (10000); beyond, a poll asking to be held is answered at once, as one that does not ask.
    pub queue_held_polls_max: u32,
    /// Networks (CIDRs, e.g. `["10.0.0.0/8"]`, or `10.0.0.0/8,192.0.2.7` in the environment)
    /// of the proxies whose `trusted_proxy_header` is believed; from any other peer the header
    /// is ignored. Empty (default): no peer is trusted, so `trusted_proxy_header` needs this.
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxy_cidrs: Vec<String>,
    /// Admission settings, passed through to the admission crate (`KATAAR_ADMISSION_<KEY>`).
    pub admission: toml::Table,
}

/// A list, or one string of comma-separated items (how a list arrives from the environment).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(d)? {
        ListOrCommas::List(items) => items,
        ListOrCommas::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Every top-level key (the environment is matched against this list).
pub const CONFIG_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "data_dir",
    "demo",
    "migrate",
    "header_read_timeout_s",
    "request_timeout_s",
    "keepalive_idle_s",
    "body_bytes_max",
    "connections_max",
    "shutdown_grace_s",
    "metrics_listen",
    "otp_sender",
    "timezone",
    "token_ttl_s",
    "token_secret",
    "person_key_secret",
    "otp_secret",
    "certificate_secret",
    "trusted_proxy_header",
    "log_format",
    "compat_captcha_required",
    "batch_bookings_max",
    "batch_events_max",
    "writer_queue_events_max",
    "commit_timeout_ms",
    "pg_pool_size_max",
    "availability_cache_ms",
    "availability_cache_bytes_max",
    "otp_txns_max",
    "otp_mobiles_max",
    "otp_queue_max",
    "otp_webhook_secret",
    "connections_per_client_max",
    "header_bytes_max",
    "body_read_timeout_s",
    "trusted_proxy_cidrs",
    "releases_max",
    "queue_tickets_max",
    "queue_keepalive_s",
    "queue_poll_budget_per_s",
    "queue_poll_min_s",
    "queue_poll_max_s",
    "queue_held_polls_max",
    "admission",
];

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConfigOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_idle_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_bytes_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp_sender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxy_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxy_cidrs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_per_client_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_bytes_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_read_timeout_s: Option<u32>,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, the environment or a flag holds a value of the wrong shape.
    #[error("configuration error: {0}")]
    Load(String),
    /// A value has the right shape but is not acceptable.
    #[error("configuration error: key `{key}`: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// The documented defaults.
    pub fn defaults() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from("./kataar-data"),
            demo: false,
            migrate: true,
            header_read_timeout_s: 10,
            request_timeout_s: 30,
            keepalive_idle_s: 60,
            body_bytes_max: 65_536,
            connections_max: 20_000,
            shutdown_grace_s: 20,
            metrics_listen: None,
            otp_sender: None,
            timezone: "Asia/Kolkata".to_owned(),
            token_ttl_s: 900,
            token_secret: None,
            person_key_secret: None,
            otp_secret: None,
            certificate_secret: None,
            trusted_proxy_header: None,
            log_format: LogFormat::Json,
            compat_captcha_required: false,
            batch_bookings_max: 512,
            batch_events_max: 4_096,
            writer_queue_events_max: 65_536,
            commit_timeout_ms: 5_000,
            pg_pool_size_max: 8,
            availability_cache_ms: 1_000,
            availability_cache_bytes_max: 64 * 1024 * 1024,
            otp_txns_max: 1_000_000,
            otp_mobiles_max: 4_000_000,
            otp_queue_max: 10_000,
            otp_webhook_secret: None,
            connections_per_client_max: 512,
            header_bytes_max: 16_384,
            body_read_timeout_s: 10,
            trusted_proxy_cidrs: Vec::new(),
            releases_max: 100,
            queue_tickets_max: 1_000_000,
            queue_keepalive_s: 60,
            queue_poll_budget_per_s: 2_000,
            queue_poll_min_s: 2,
            queue_poll_max_s: 60,
            queue_held_polls_max: 10_000,
            admission: toml::Table::new(),
        }
    }

    /// Load with precedence flag > `KATAAR_*` environment (the process's) > file > default,
    /// then validate.
    pub fn load(file: Option<&Path>, overrides: &ConfigOverrides) -> Result<Self, ConfigError> {
        let env = Env::prefixed(ENV_PREFIX).filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            if let Some(rest) = key.strip_prefix("admission_") {
                Some(format!("admission.{rest}").into())
            } else if CONFIG_KEYS.contains(&key.as_str()) && key != "admission" {
                Some(key.into())
            } else {
                None
            }
        });
        Self::load_from(file, env, overrides)
    }

    fn load_from(
        file: Option<&Path>,
        env: Env,
        overrides: &ConfigOverrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::defaults()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Invalid {
                    key: "config",
                    message: format!("no such file: {}", path.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment.merge(env).merge(Serialized::defaults(overrides));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Check values whose type alone does not say they are acceptable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        for (key, value) in [
            ("header_read_timeout_s", self.header_read_timeout_s),
            ("request_timeout_s", self.request_timeout_s),
            ("keepalive_idle_s", self.keepalive_idle_s),
            ("body_bytes_max", self.body_bytes_max),
            ("connections_max", self.connections_max),
            ("token_ttl_s", self.token_ttl_s),
            ("batch_bookings_max", self.batch_bookings_max),
            ("batch_events_max", self.batch_events_max),
            ("writer_queue_events_max", self.writer_queue_events_max),
            ("commit_timeout_ms", self.commit_timeout_ms),
            ("pg_pool_size_max", self.pg_pool_size_max),
            ("otp_queue_max", self.otp_queue_max),
            ("otp_txns_max", u32::from(self.otp_txns_max > 0)),
            ("otp_mobiles_max", u32::from(self.otp_mobiles_max > 0)),
            (
                "connections_per_client_max",
                self.connections_per_client_max,
            ),
            ("body_read_timeout_s", self.body_read_timeout_s),
            ("releases_max", self.releases_max),
            ("queue_tickets_max", self.queue_tickets_max),
            ("queue_keepalive_s", self.queue_keepalive_s),
            ("queue_poll_budget_per_s", self.queue_poll_budget_per_s),
            ("queue_poll_min_s", self.queue_poll_min_s),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.queue_poll_max_s < self.queue_poll_min_s {
            return invalid("queue_poll_max_s", "must be at least queue_poll_min_s");
        }
        if self.batch_bookings_max > self.batch_events_max {
            return invalid(
                "batch_bookings_max",
                "must not exceed batch_events_max (every write is at least one event)",
            );
        }
        if self.batch_events_max > self.writer_queue_events_max {
            return invalid(
                "batch_events_max",
                "must not exceed writer_queue_events_max",
            );
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return invalid("timezone", "not an IANA time zone name (e.g. Asia/Kolkata)");
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return invalid(
                    "database_url",
                    "must start with postgres:// or postgresql://",
                );
            }
        }
        if let Some(sender) = &self.otp_sender {
            let ok = sender == "log"
                || sender.strip_prefix("file:").is_some_and(|p| !p.is_empty())
                || sender
                    .strip_prefix("webhook:")
                    .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
            if !ok {
                return invalid("otp_sender", "must be `log`, `file:PATH` or `webhook:URL`");
            }
        }
        if self
            .otp_webhook_secret
            .as_ref()
            .is_some_and(|s| s.len() < OTP_WEBHOOK_SECRET_BYTES_MIN)
        {
            return invalid("otp_webhook_secret", "must be at least 16 bytes");
        }
        if !(8_192..=1_048_576).contains(&self.header_bytes_max) {
            return invalid("header_bytes_max", "must be between 8192 and 1048576");
        }
        if let Some(header) = &self.trusted_proxy_header {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return invalid("trusted_proxy_header", "not a valid header name");
            }
            if self.trusted_proxy_cidrs.is_empty() {
                return invalid(
                    "trusted_proxy_header",
                    "is believed only from the proxies named in trusted_proxy_cidrs; set \
                     trusted_proxy_cidrs to their networks (e.g. [\"10.0.0.0/8\"])",
                );
            }
        }
        self.trusted_proxies()?;
        self.admission_config()?;
        Ok(())
    }

    /// The admission limits: the `admission` table over the admission crate's defaults,
    /// checked. A bad or unknown key is named (`admission.<key>`).
    pub fn admission_config(&self) -> Result<kataar_admission::AdmissionConfig, ConfigError> {
        let table = toml::Value::Table(self.admission.clone());
        let config: kataar_admission::AdmissionConfig = serde_path_to_error::deserialize(table)
            .map_err(|e| {
                let path = e.path().to_string();
                let at = if path.is_empty() || path == "." {
                    String::new()
                } else {
                    format!("`admission.{path}`: ")
                };
                ConfigError::Invalid {
                    key: "admission",
                    message: format!("{at}{}", e.inner()),
                }
            })?;
        config.validate().map_err(|e| ConfigError::Invalid {
            key: "admission",
            message: format!("`admission.{}` {}", e.key, e.reason),
        })?;
        Ok(config)
    }

    /// The forwarding header and the proxies allowed to set it (`trusted_proxy_header`,
    /// `trusted_proxy_cidrs`), parsed.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies, ConfigError> {
        let header = match &self.trusted_proxy_header {
            Some(name) => Some(http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::Invalid {
                    key: "trusted_proxy_header",
                    message: "not a valid header name".to_owned(),
                }
            })?),
            None => None,
        };
        let cidrs = self
            .trusted_proxy_cidrs
            .iter()
            .map(|text| {
                text.parse::<Cidr>().map_err(|e| ConfigError::Invalid {
                    key: "trusted_proxy_cidrs",
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { header, cidrs })
    }

    /// The connection limits for [`crate::server::serve`].
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            connections_per_client_max: self.connections_per_client_max,
            header_bytes_max: self.header_bytes_max as usize,
            body_read_timeout: Duration::from_secs(self.body_read_timeout_s.into()),
            trusted_proxies: self.trusted_proxies().unwrap_or_default(),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_s.into()),
            request_timeout: Duration::from_secs(self.request_timeout_s.into()),
            keepalive_idle: Duration::from_secs(self.keepalive_idle_s.into()),
            body_bytes_max: self.body_bytes_max as usize,
            connections_max: self.connections_max,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_s.into()),
        }
    }

    /// The OTP sender in force (`log` when none is configured).
    pub fn otp_sender_effective(&self) -> &str {
        self.otp_sender.as_deref().unwrap_or("log")
    }

    /// What serving needs beyond [`Config::validate`]: the `log` sender (the default) only with
    /// `demo`, since it prints OTPs to the console; a webhook sender only with
    /// `otp_webhook_secret`, since gateways must be able to tell Kataar's requests apart.
    pub fn validate_serve(&self) -> Result<(), ConfigError> {
        let sender = self.otp_sender_effective();
        if sender == "log" && !self.demo {
            return Err(ConfigError::Invalid {
                key: "otp_sender",
                message: "the `log` sender prints OTPs to the console and is for --demo only; \
                          set otp_sender to file:PATH or webhook:URL"
                    .to_owned(),
            });
        }
        if sender.starts_with("webhook:") && self.otp_webhook_secret.is_none() {
            return Err(ConfigError::Invalid {
                key: "otp_webhook_secret",
                message: "required with a webhook otp_sender: every delivery is signed with it \
                          (header Kataar-Signature)"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// A copy with every secret replaced by [`REDACTED`] (and the URL password hidden).
    pub fn redacted(&self) -> Self {
        let hide = |s: &Option<String>| s.as_ref().map(|_| REDACTED.to_owned());
        Self {
            database_url: self.database_url.as_deref().map(redact_url_password),
            token_secret: hide(&self.token_secret),
            person_key_secret: hide(&self.person_key_secret),
            otp_secret: hide(&self.otp_secret),
            otp_webhook_secret: hide(&self.otp_webhook_secret),
            certificate_secret: hide(&self.certificate_secret),
            ..self.clone()
        }
    }

    /// The effective configuration as TOML, secrets redacted (for `--print-config`).
    pub fn to_toml_redacted(&self) -> String {
        let mut shown = self.redacted();
        // Every admission key with its effective value (defaults included).
        if let Ok(toml::Value::Table(table)) = self
            .admission_config()
            .map_err(|e| e.to_string())
            .and_then(|a| toml::Value::try_from(a).map_err(|e| e.to_string()))
        {
            shown.admission = table;
        }
        let mut text = toml::to_string(&shown)
            .unwrap_or_else(|e| format!("# configuration could not be rendered: {e}\n"));
        let unset: Vec<&str> = [
            ("database_url", self.database_url.is_none()),
            ("metrics_listen", self.metrics_listen.is_none()),
            ("otp_sender", self.otp_sender.is_none()),
            ("token_secret", self.token_secret.is_none()),
            ("person_key_secret", self.person_key_secret.is_none()),
            ("otp_secret", self.otp_secret.is_none()),
            ("otp_webhook_secret", self.otp_webhook_secret.is_none()),
            ("certificate_secret", self.certificate_secret.is_none()),
            ("trusted_proxy_header", self.trusted_proxy_header.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, is_unset)| is_unset.then_some(key))
        .collect();
        if !unset.is_empty() {
            text = format!("# unset: {}\n{text}", unset.join(", "));
        }
        text
    }
}

/// Hide the password of a `scheme://user:password@host/...` URL (and any `password=` value).
pub fn redact_url_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end]
            .rfind('@')
            .map(|i| rest_start + i)
        {
            if let Some(colon) = out[rest_start..at].find(':').map(|i| rest_start + i) {
                out.replace_range(colon + 1..at, REDACTED);
            }
        }
    }
    if let Some(at) = out.find("password=") {
        let start = at + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |i| start + i);
        out.replace_range(start..end, REDACTED);
    }
    out
}

fn describe_figment_error(error: figment::Error) -> String {
    let mut parts = Vec::new();
    for e in error {
        let key = e.path.join(".");
        let from = match &e.metadata {
            Some(m) if m.name.contains("environment") && !key.is_empty() => {
                format!(
                    " (from environment variable {ENV_PREFIX}{})",
                    env_name(&key)
                )
            }
            Some(m) => format!(" (from {})", m.name),
            None => String::new(),
        };
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("key `{key}`: ")
        };
        parts.push(format!("{key}{}{from}", e.kind));
    }
    parts.join("; ")
}

/// `admission.browse_per_s` → `ADMISSION_BROWSE_PER_S`.
fn env_name(key: &str) -> String {
    key.replace('.', "_").to_ascii_uppercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// No environment layer (the environment layer is tested through the binary).
    fn no_env() -> Env {
        Env::raw().only(&[])
    }

    #[test]
    fn keys_list_matches_struct() {
        let value = toml::Value::try_from(Config::defaults()).unwrap();
        let table = value.as_table().unwrap();
        for key in table.keys() {
            assert!(
                CONFIG_KEYS.contains(&key.as_str()),
                "{key} missing from CONFIG_KEYS"
            );
        }
        for &key in CONFIG_KEYS {
            let optional = matches!(
                key,
                "database_url"
                    | "metrics_listen"
                    | "otp_sender"
                    | "token_secret"
                    | "person_key_secret"
                    | "otp_secret"
                    | "otp_webhook_secret"
                    | "certificate_secret"
                    | "trusted_proxy_header"
            );
            assert!(optional || table.contains_key(key), "{key} is not a key");
        }
    }

    #[test]
    fn admission_keys_are_checked_named_and_printed() {
        let mut c = Config::defaults();
        c.admission
            .insert("booking_burst".into(), toml::Value::Integer(0));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("admission.booking_burst"), "{err}");
        let mut c = Config::defaults();
        c.admission
            .insert("booking_rate".into(), toml::Value::Integer(5));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("booking_rate"), "{err}");
        let mut c = Config::defaults();
        c.admission.insert(
            "browse_rate_per_s".into(),
            toml::Value::String("fast".into()),
        );
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("admission.browse_rate_per_s"), "{err}");
        let mut c = Config::defaults();
        c.admission
            .insert("booking_rate_per_s".into(), toml::Value::Integer(50));
        c.validate().unwrap();
        assert_eq!(c.admission_config().unwrap().booking_rate_per_s, 50.0);
        let text = c.to_toml_redacted();
        assert!(text.contains("booking_rate_per_s = 50.0"), "{text}");
        assert!(text.contains("client_burst = 100"), "{text}");
    }

    #[test]
    fn writer_batch_bounds_are_checked_at_their_bounds() {
        let mut c = Config::defaults();
        c.batch_bookings_max = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("batch_bookings_max"), "{err}");
        c.batch_bookings_max = 1;
        c.validate().unwrap();
        c.batch_bookings_max = c.batch_events_max;
        c.validate().unwrap();
        c.batch_bookings_max += 1;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("batch_bookings_max"), "{err}");
        let mut c = Config::defaults();
        c.batch_events_max = c.writer_queue_events_max;
        c.validate().unwrap();
        c.batch_events_max += 1;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("batch_events_max"), "{err}");
    }

    #[test]
    fn defaults_validate_and_flags_win() {
        let c = Config::load_from(None, no_env(), &ConfigOverrides::default()).unwrap();
        assert_eq!(c, Config::defaults());
        let o = ConfigOverrides {
            connections_max: Some(4),
            ..Default::default()
        };
        let c = Config::load_from(None, no_env(), &o).unwrap();
        assert_eq!(c.connections_max, 4);
        let o = ConfigOverrides {
            connections_max: Some(0),
            ..Default::default()
        };
        let e = Config::load_from(None, no_env(), &o).unwrap_err();
        assert!(e.to_string().contains("connections_max"), "{e}");
        let o = ConfigOverrides {
            listen: Some("nope".into()),
            ..Default::default()
        };
        let e = Config::load_from(None, no_env(), &o).unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
    }

    #[test]
    fn serving_needs_a_real_otp_sender_outside_demo() {
        let mut c = Config::defaults();
        let e = c.validate_serve().unwrap_err().to_string();
        assert!(e.contains("otp_sender") && e.contains("--demo"), "{e}");
        c.otp_sender = Some("log".into());
        assert!(c.validate_serve().is_err());
        c.demo = true;
        c.validate_serve().unwrap();
        c.demo = false;
        c.otp_sender = Some("file:/var/tmp/otps.jsonl".into());
        c.validate_serve().unwrap();
        c.otp_sender = Some("webhook:https://sms.example.in/otp".into());
        let e = c.validate_serve().unwrap_err().to_string();
        assert!(e.contains("otp_webhook_secret"), "{e}");
        c.otp_webhook_secret = Some("x".repeat(OTP_WEBHOOK_SECRET_BYTES_MIN - 1));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("otp_webhook_secret"), "{e}");
        c.otp_webhook_secret = Some("x".repeat(OTP_WEBHOOK_SECRET_BYTES_MIN));
        c.validate().unwrap();
        c.validate_serve().unwrap();
        let text = c.to_toml_redacted();
        assert!(!text.contains(&"x".repeat(16)), "{text}");
        c.otp_queue_max = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("otp_queue_max"), "{e}");
    }

    #[test]
    fn trusted_proxy_header_needs_cidrs_and_cidrs_are_checked() {
        let mut c = Config::defaults();
        c.trusted_proxy_header = Some("x-forwarded-for".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("trusted_proxy_cidrs"), "{e}");
        c.trusted_proxy_cidrs = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
        c.validate().unwrap();
        let proxies = c.trusted_proxies().unwrap();
        assert!(proxies.trusts("10.2.3.4".parse().unwrap()));
        assert!(!proxies.trusts("192.0.2.1".parse().unwrap()));
        assert_eq!(c.server_limits().trusted_proxies, proxies);
        c.trusted_proxy_cidrs = vec!["10.0.0.0/33".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("trusted_proxy_cidrs") && e.contains("10.0.0.0/33"),
            "{e}"
        );
        let from_env: Config = Figment::from(Serialized::defaults(Config::defaults()))
            .merge(("trusted_proxy_cidrs", "10.0.0.0/8, 192.0.2.7"))
            .extract()
            .unwrap();
        assert_eq!(from_env.trusted_proxy_cidrs, ["10.0.0.0/8", "192.0.2.7"]);
    }

    #[test]
    fn header_bytes_max_is_bounded() {
        let mut c = Config::defaults();
        assert_eq!(c.server_limits().header_bytes_max, 16_384);
        c.header_bytes_max = 8_192;
        c.validate().unwrap();
        c.header_bytes_max = 8_191;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("header_bytes_max"), "{e}");
        c.header_bytes_max = 1_048_577;
        assert!(c.validate().is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url_password("postgres://u:secret@h:5432/db"),
            "postgres://u:<redacted>@h:5432/db"
        );
        assert_eq!(
            redact_url_password("postgres://u@h/db"),
            "postgres://u@h/db"
        );
        assert_eq!(
            redact_url_password("postgres://h/db?password=xyz&a=b"),
            "postgres://h/db?password=<redacted>&a=b"
        );
        let mut c = Config::defaults();
        c.token_secret = Some("t0ps3cret".into());
        c.database_url = Some("postgres://u:pw123@h/db".into());
        let text = c.to_toml_redacted();
        assert!(
            !text.contains("t0ps3cret") && !text.contains("pw123"),
            "{text}"
        );
        assert!(text.contains("token_secret = \"<redacted>\""), "{text}");
    }
}
