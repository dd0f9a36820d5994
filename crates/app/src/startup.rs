//! Start-up: open the store, check the secrets against it, take the writer epoch, rebuild the
//! engine from the store, start the writer and the identity services, and (with `--demo`) publish the demo drive into an empty store.

use crate::state::{AppState, Inner, SystemClock};
use anyhow::Context;
use kataar_admission::Admission;
use kataar_api::Config;
use kataar_domain::BatchId;
use kataar_identity::{
    DispatcherConfig, OtpConfig, OtpDispatcher, OtpManager, OtpSenderSpec, PersonKeyer,
    SecretOverrides, Secrets, SecretsError, TokenSigner, WebhookSecret,
};
use kataar_inventory::Inventory;
use kataar_store::{PgOptions, PgStore, SqliteStore, Store, Writer, WriterConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// File name of the embedded store inside `data_dir`.
pub const SQLITE_FILE: &str = "kataar.sqlite3";

/// Extra time a handler waits for a commit beyond the commit deadline, in milliseconds (the
/// in-doubt read-back needs a moment).
pub const COMMIT_WAIT_SLACK_MS: u64 = 2_000;

/// Seconds between housekeeping passes (expired OTPs, idempotency records, holds).
pub const HOUSEKEEPING_EVERY_S: u64 = 30;

/// A running application core.
pub struct Started {
    /// The shared state for handlers.
    pub state: AppState,
    /// The writer task (ends after `writer.shutdown()` once the queue is drained).
    pub writer_join: JoinHandle<()>,
    /// How long the rebuild took.
    pub recovery: Duration,
}

/// Opens the store the configuration names.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match &config.database_url {
        Some(url) => {
            let options = PgOptions {
                pool_size_max: usize::try_from(config.pg_pool_size_max).unwrap_or(8),
                migrate: config.migrate,
                ..PgOptions::default()
            };
            let store = PgStore::connect(url, options)
                .await
                .context("cannot open the PostgreSQL store")?;
            Ok(Arc::new(store))
        }
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
            let store = SqliteStore::open(config.data_dir.join(SQLITE_FILE))
                .await
                .context("cannot open the embedded store")?;
            Ok(Arc::new(store))
        }
    }
}

/// A start-up refusal caused by the configuration (the CLI exits 2 on it, per the contract's
/// exit codes); the message names the key to set.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// The secrets stored data depends on, each with the configuration key and environment
/// variable that sets it. Their check values are kept in the store.
pub const CHECKED_SECRETS: [(&str, &str, &str); 2] = [
    (
        "person_key",
        "person_key_secret",
        "KATAAR_PERSON_KEY_SECRET",
    ),
    ("token_key", "token_secret", "KATAAR_TOKEN_SECRET"),
];

/// Loads the secrets and checks them against the store.
///
/// Secrets are generated (into `data_dir`, with a warning) only when the database is new:
/// it stores no check value and holds no account or beneficiary. Otherwise every secret
/// must be configured or be in `data_dir/secrets.toml`, and each of [`CHECKED_SECRETS`]
/// must reproduce the check value the database stores (a database without one, from before
/// check values, records the current one). A wrong or missing secret is a [`ConfigError`]
/// naming the key: serving with it would key photo-IDs differently (dedup, D, silently
/// off) and refuse every citizen's token.
pub async fn load_secrets(config: &Config, store: &dyn Store) -> anyhow::Result<Secrets> {
    let overrides = SecretOverrides {
        token_key: config.token_secret.clone(),
        person_key: config.person_key_secret.clone(),
        otp_key: config.otp_secret.clone(),
        certificate_key: config.certificate_secret.clone(),
    };
    let mut any_check = false;
    for (name, _, _) in CHECKED_SECRETS {
        any_check |= store
            .secret_check(name)
            .await
            .context("cannot read the secret check values")?
            .is_some();
    }
    let new_database = !any_check
        && !store
            .holds_people()
            .await
            .context("cannot read the store")?;
    let secrets = if new_database {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let (secrets, generated) = Secrets::load_or_generate(&config.data_dir, overrides)
            .context("cannot load the secrets")?;
        for name in generated {
            tracing::warn!(
                secret = %name,
                data_dir = %config.data_dir.display(),
                backend = store.backend(),
                "secret not configured; generated one into the data directory for this new \
                 database (every other server on this database must be given the same secret)"
            );
        }
        secrets
    } else {
        match Secrets::load_existing(&config.data_dir, overrides) {
            Ok(secrets) => secrets,
            Err(SecretsError::Missing { name, path }) => {
                let (key, env) = secret_key_names(name);
                return Err(ConfigError(format!(
                    "key `{key}` ({env}) is not set and {} does not hold it, but the database \
                     already holds data keyed with the server's secrets; set \
                     `person_key_secret` (KATAAR_PERSON_KEY_SECRET) and `token_secret` \
                     (KATAAR_TOKEN_SECRET) to the secrets this database was started with (new \
                     ones would switch off duplicate detection and refuse every token)",
                    path.display()
                ))
                .into());
            }
            Err(e) => return Err(anyhow::Error::new(e).context("cannot load the secrets")),
        }
    };
    for (name, key, env) in CHECKED_SECRETS {
        let mine = secrets
            .check_value(name)
            .ok_or_else(|| anyhow::anyhow!("no check value for secret {name}"))?;
        let stored = store
            .record_secret_check(name, &mine)
            .await
            .context("cannot store the secret check values")?;
        if stored != mine {
            return Err(ConfigError(format!(
                "key `{key}` ({env}, or {name} in the data directory's secrets file) does not \
                 match the secret this database was started with (the database keeps a check \
                 value of it); set `{key}` to that secret"
            ))
            .into());
        }
    }
    Ok(secrets)
}

fn secret_key_names(name: &str) -> (&'static str, &'static str) {
    match name {
        "person_key" => ("person_key_secret", "KATAAR_PERSON_KEY_SECRET"),
        "token_key" => ("token_secret", "KATAAR_TOKEN_SECRET"),
        _ => ("otp_secret", "KATAAR_OTP_SECRET"),
    }
}

/// Starts everything below the HTTP layer: secrets checked against the store, then the
/// writer epoch taken (which fences any older writer: its later commits fail), then the
/// inventory loaded, so the load sees every batch the old writer committed and the new
/// writer's batch and entity ids start above all of them.
pub async fn start(config: &Config) -> anyhow::Result<Started> {
    config.validate_serve()?;
    let store = open_store(config).await?;
    let secrets = load_secrets(config, store.as_ref()).await?;
    let began = Instant::now();
    let (epoch, snapshot) = kataar_store::take_over(store.as_ref())
        .await
        .context("cannot take the writer epoch and load the store")?;
    let first_batch = BatchId(snapshot.batch_id_max + 1);
    let mut snapshot = snapshot;
    let releases = std::mem::take(&mut snapshot.releases);
    let queue_tickets = std::mem::take(&mut snapshot.queue_tickets);
    let queue_admissions = std::mem::take(&mut snapshot.queue_admissions);
    let loaded = began.elapsed();
    let inv = Inventory::from_snapshot(snapshot)
        .map_err(|e| anyhow::anyhow!("the store holds inconsistent data: {e}"))?;
    let recovery = began.elapsed();
    tracing::info!(
        pools = inv.pools_len(),
        bookings = inv.bookings_len(),
        load_ms = loaded.as_millis() as u64,
        rebuild_ms = (recovery - loaded).as_millis() as u64,
        recovery_ms = recovery.as_millis() as u64,
        "inventory rebuilt from the store"
    );
    let writer_cfg = WriterConfig {
        batch_bookings_max: usize::try_from(config.batch_bookings_max)
            .unwrap_or(kataar_domain::limits::BATCH_BOOKINGS_MAX),
        batch_events_max: usize::try_from(config.batch_events_max)
            .unwrap_or(kataar_domain::limits::BATCH_EVENTS_MAX),
        queue_events_max: usize::try_from(config.writer_queue_events_max).unwrap_or(65_536),
        commit_timeout: Duration::from_millis(u64::from(config.commit_timeout_ms)),
    };
    let commit_wait = writer_cfg.commit_timeout + Duration::from_millis(COMMIT_WAIT_SLACK_MS);
    let (writer, writer_join) = Writer::spawn(store.clone(), writer_cfg, epoch, first_batch);

    let (otp_sender, otp) = otp_services(config, &secrets.otp_key)?;
    let tz: chrono_tz::Tz = config
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("timezone is not a known IANA zone"))?;
    let admission = start_admission(config)?;
    crate::durable::connect_breaker(&writer, admission.breaker().clone());
    let waitroom = crate::waitroom::Waitroom::restore(
        &secrets.token_key,
        crate::waitroom::Limits {
            releases_max: config.releases_max,
            tickets_max: config.queue_tickets_max,
            keepalive_s: config.queue_keepalive_s,
            poll_budget_per_s: config.queue_poll_budget_per_s,
            poll_min_s: config.queue_poll_min_s,
            poll_max_s: config.queue_poll_max_s,
            default_admit_per_s: admission.config().booking_rate_per_s,
            held_polls_max: config.queue_held_polls_max,
            hold_s_max: kataar_domain::limits::QUEUE_WAIT_S_MAX
                .min(config.queue_keepalive_s)
                .min(config.request_timeout_s.saturating_sub(2)),
        },
        releases,
        queue_tickets,
        queue_admissions,
        chrono::Utc::now(),
    );
    waitroom.mark_restored_bookings(&inv);
    let state = AppState(Arc::new(Inner {
        inv: Arc::new(inv),
        store,
        writer,
        otp,
        otp_sender,
        tokens: TokenSigner::new(
            &secrets.token_key,
            Duration::from_secs(u64::from(config.token_ttl_s)),
        ),
        keyer: PersonKeyer::new(&secrets.person_key),
        certificates: Arc::new(
            kataar_documents::CertificateSigner::from_secret(&secrets.certificate_key)
                .context("certificate_secret is not usable")?,
        ),
        tz,
        commit_wait,
        clock: Arc::new(SystemClock),
        availability_cache: crate::v1::public::AnswerCache::new(
            Duration::from_millis(u64::from(config.availability_cache_ms)),
            config.availability_cache_bytes_max,
        ),
        admission,
        trusted_proxies: config.trusted_proxies()?,
        compat: crate::compat::Compat::new(config.compat_captcha_required),
        unknown_operator_keys: crate::auth::UnknownKeys::default(),
        waitroom,
    }));
    spawn_housekeeping(state.clone());
    crate::waitroom::spawn_steps(state.clone());
    crate::auth::spawn_key_refresh(state.clone());
    Ok(Started {
        state,
        writer_join,
        recovery,
    })
}

/// The OTP manager and its sender, from the `otp_*` keys (the sender checked for serving).
fn otp_services(
    config: &Config,
    otp_key: &[u8],
) -> anyhow::Result<(OtpDispatcher, Arc<OtpManager>)> {
    let spec =
        OtpSenderSpec::parse(config.otp_sender_effective()).context("otp_sender is not valid")?;
    let webhook_secret = config
        .otp_webhook_secret
        .as_deref()
        .map(WebhookSecret::new)
        .transpose()
        .context("otp_webhook_secret is not valid")?;
    let dispatcher = DispatcherConfig {
        queue_max: usize::try_from(config.otp_queue_max).unwrap_or(usize::MAX),
        webhook_secret,
        ..DispatcherConfig::defaults()
    };
    let sender =
        OtpDispatcher::spawn_with(spec, dispatcher).context("cannot start the OTP sender")?;
    let limits = OtpConfig {
        txns_max: usize::try_from(config.otp_txns_max).unwrap_or(usize::MAX),
        mobiles_max: usize::try_from(config.otp_mobiles_max).unwrap_or(usize::MAX),
        ..OtpConfig::defaults()
    };
    Ok((sender, Arc::new(OtpManager::new(limits, otp_key))))
}

/// Builds admission control from `config.admission` (a bad key fails start-up, named) and
/// starts its housekeeping. Installs the metrics recorder first: admission registers its
/// metrics when it is built.
pub fn start_admission(config: &Config) -> anyhow::Result<Arc<Admission>> {
    let _ = kataar_api::init_metrics();
    let limits = config.admission_config()?;
    let every = limits.housekeeping_interval();
    let admission = Admission::new(limits).context("admission configuration")?;
    let admission = Arc::new(admission);
    admission.spawn_housekeeping(every);
    Ok(admission)
}

fn spawn_housekeeping(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(HOUSEKEEPING_EVERY_S));
        loop {
            tick.tick().await;
            // Off the async workers: the purge's work grows with what expired since the last.
            let otp = state.otp.clone();
            let _ = tokio::task::spawn_blocking(move || otp.purge(Instant::now())).await;
            let ttl = i64::try_from(kataar_domain::limits::IDEMPOTENCY_TTL_S).unwrap_or(i64::MAX);
            let cutoff = state.now() - chrono::Duration::seconds(ttl);
            // One shard at a time, yielding between them: the sweep never holds the worker
            // (or a shard's lock) for more than one shard's scan.
            for shard in 0..kataar_inventory::idem::SHARDS {
                state.inv.idem_purge_shard(shard, state.now());
                tokio::task::yield_now().await;
            }
            let (records, bytes) = state.inv.idem_size();
            metrics::gauge!("kataar_idempotency_records").set(records as f64);
            metrics::gauge!("kataar_idempotency_bytes").set(bytes as f64);
            state.inv.expire_holds(state.now());
            if let Err(e) = state.store.prune_idempotency(cutoff).await {
                tracing::warn!(error = %e, "pruning idempotency records failed");
            }
        }
    });
}
