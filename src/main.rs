//! The `kataar` binary: command-line parsing, configuration, logging and process wiring.
//!
//! `kataar serve` loads the configuration (flag > `KATAAR_*` env > `--config` file > default),
//! binds, prints exactly one line to stdout (`kataar listening on http://ADDR`, the real bound
//! address) and serves until SIGTERM or SIGINT, then drains within `shutdown_grace_s` and exits 0.
//! Exit codes: 0 ok, 2 bad usage or configuration (the message names the key), 1 anything else.

/// mimalloc instead of glibc malloc: under booking load glibc's malloc/free/consolidate were
/// ~17% of the process's CPU (see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kataar_api::{Config, ConfigOverrides, LogFormat};

/// Exit code for bad usage or configuration.
const EXIT_USAGE: u8 = 2;
/// Exit code for any other failure.
const EXIT_FAILURE: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "kataar",
    version,
    about = "Slot-booking engine for public drives"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Apply the store's migrations and exit (PostgreSQL, or the embedded store in
    /// --data-dir when no URL is given).
    Migrate {
        /// PostgreSQL URL (`KATAAR_DATABASE_URL`).
        #[arg(long)]
        database_url: Option<String>,
        /// Data directory of the embedded store.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Operator administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Check a vaccination certificate offline: a certificate PDF, a file holding its payload,
    /// or the payload itself (the text of its QR code). Prints what it certifies as JSON; exit
    /// 0 genuine, 1 not genuine, 2 bad usage.
    VerifyCertificate(VerifyCertificateArgs),
    /// Check a launch release's published draw: recompute the shuffle of its sorted pre-queue
    /// from the revealed secret and compare it with the published order and with the
    /// commitment published before the opening. Prints the verdict as JSON; exit 0 it matches,
    /// 1 it does not, 2 bad usage.
    VerifyDraw(VerifyDrawArgs),
}

/// `kataar verify-draw` arguments.
#[derive(Args, Debug)]
struct VerifyDrawArgs {
    /// `http://HOST/v1/releases/ID/draw`, or a file holding that JSON.
    source: String,
    /// The `draw_commitment` noted from `GET /v1/releases/ID` before the opening (hex); without
    /// it the commitment in the draw itself is used.
    #[arg(long)]
    commitment: Option<String>,
    /// A ticket id: also print its rank in the drawn order (1 = first admitted).
    #[arg(long)]
    ticket: Option<String>,
}

/// `kataar verify-certificate` arguments.
#[derive(Args, Debug)]
struct VerifyCertificateArgs {
    /// A certificate PDF, a file with the payload, or the payload (`KC1.…`).
    input: String,
    /// The published keys: a file with the JSON of `GET /v1/certificates/keys`, or with one
    /// public key (base64url or hex).
    #[arg(long, conflicts_with = "key_url", required_unless_present = "key_url")]
    key: Option<PathBuf>,
    /// Where the keys are published, e.g. `http://HOST/v1/certificates/keys` (plain HTTP).
    #[arg(long)]
    key_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an operator key (printed once, alone, on the first line of stdout).
    CreateKey {
        /// `admin` (everything) or `centre` (the listed centres).
        #[arg(long, value_enum)]
        role: Role,
        /// Centre ids for a `centre` key, comma-separated.
        #[arg(long, value_delimiter = ',')]
        centres: Vec<u64>,
        /// What the key is for.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an operator key by its id: it stops working at once on a new start and within
    /// seconds on a running server.
    RevokeKey {
        /// The key's id (`operator_id`, printed by `create-key`, named in the audit log).
        id: u64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the admin commands find the store.
#[derive(Args, Debug)]
struct StoreArgs {
    /// Configuration file (to find the store).
    #[arg(long)]
    config: Option<PathBuf>,
    /// PostgreSQL URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Data directory of the embedded store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// Runs `f` on the store these arguments name (see [`with_store`]).
    fn with_store<F, Fut>(self, f: F) -> ExitCode
    where
        F: FnOnce(std::sync::Arc<dyn kataar_store::Store>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let overrides = ConfigOverrides {
            database_url: self.database_url,
            data_dir: self.data_dir,
            ..ConfigOverrides::default()
        };
        with_store(self.config.as_deref(), &overrides, f)
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Role {
    Admin,
    Centre,
}

/// `kataar serve` flags; each maps to the config key of the same name.
#[derive(Args, Debug)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (`listen`, default 127.0.0.1:8080; port 0 picks one).
    #[arg(long)]
    listen: Option<String>,
    /// PostgreSQL URL (`database_url`); absent: the embedded store in --data-dir.
    #[arg(long)]
    database_url: Option<String>,
    /// Data directory (`data_dir`, default ./kataar-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Load the demo drive if the store is empty (`demo`).
    #[arg(long)]
    demo: bool,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    /// Do not run migrations at start (`migrate = false`).
    #[arg(long)]
    no_migrate: bool,
    /// OTP sender: log, file:PATH or webhook:URL (`otp_sender`).
    #[arg(long)]
    otp_sender: Option<String>,
    /// Seconds for a request head to arrive (`header_read_timeout_s`, 10).
    #[arg(long)]
    header_read_timeout_s: Option<u32>,
    /// Seconds for a handler to answer (`request_timeout_s`, 30).
    #[arg(long)]
    request_timeout_s: Option<u32>,
    /// Seconds an idle keep-alive connection is kept (`keepalive_idle_s`, 60).
    #[arg(long)]
    keepalive_idle_s: Option<u32>,
    /// Largest request body (`body_bytes_max`, 65536).
    #[arg(long)]
    body_bytes_max: Option<u32>,
    /// Connections served at once (`connections_max`, 20000).
    #[arg(long)]
    connections_max: Option<u32>,
    /// Seconds to drain at shutdown (`shutdown_grace_s`, 20).
    #[arg(long)]
    shutdown_grace_s: Option<u32>,
    /// Separate address for /metrics (`metrics_listen`).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Drive time zone (`timezone`, Asia/Kolkata).
    #[arg(long)]
    timezone: Option<String>,
    /// json or text (`log_format`).
    #[arg(long)]
    log_format: Option<String>,
    /// Client-address header set by a trusted proxy (`trusted_proxy_header`).
    #[arg(long)]
    trusted_proxy_header: Option<String>,
    /// Networks of the proxies whose header is believed, comma-separated
    /// (`trusted_proxy_cidrs`, none).
    #[arg(long, value_delimiter = ',')]
    trusted_proxy_cidrs: Option<Vec<String>>,
    /// Connections open at once from one address (`connections_per_client_max`, 512).
    #[arg(long)]
    connections_per_client_max: Option<u32>,
    /// Largest request head in bytes (`header_bytes_max`, 16384).
    #[arg(long)]
    header_bytes_max: Option<u32>,
    /// Seconds for a request body to arrive (`body_read_timeout_s`, 10).
    #[arg(long)]
    body_read_timeout_s: Option<u32>,
}

impl ServeArgs {
    fn overrides(&self) -> ConfigOverrides {
        ConfigOverrides {
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            demo: self.demo.then_some(true),
            migrate: self.no_migrate.then_some(false),
            header_read_timeout_s: self.header_read_timeout_s,
            request_timeout_s: self.request_timeout_s,
            keepalive_idle_s: self.keepalive_idle_s,
            body_bytes_max: self.body_bytes_max,
            connections_max: self.connections_max,
            shutdown_grace_s: self.shutdown_grace_s,
            metrics_listen: self.metrics_listen.clone(),
            otp_sender: self.otp_sender.clone(),
            timezone: self.timezone.clone(),
            log_format: self.log_format.clone(),
            trusted_proxy_header: self.trusted_proxy_header.clone(),
            trusted_proxy_cidrs: self.trusted_proxy_cidrs.clone(),
            connections_per_client_max: self.connections_per_client_max,
            header_bytes_max: self.header_bytes_max,
            body_read_timeout_s: self.body_read_timeout_s,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve_command(&args),
        Command::VerifyCertificate(args) => verify_certificate_command(&args),
        Command::VerifyDraw(args) => verify_draw_command(&args),
        Command::Migrate {
            database_url,
            data_dir,
        } => {
            let overrides = ConfigOverrides {
                database_url,
                data_dir,
                ..ConfigOverrides::default()
            };
            with_store(None, &overrides, |store| async move {
                store.migrate().await?;
                eprintln!("kataar: migrations applied ({})", store.backend());
                Ok(())
            })
        }
        Command::Admin {
            command:
                AdminCommand::CreateKey {
                    role,
                    centres,
                    name,
                    store,
                },
        } => {
            let role = match (role, centres.is_empty()) {
                (Role::Admin, true) => kataar_domain::Role::Admin,
                (Role::Centre, false) => kataar_domain::Role::Centre,
                (Role::Admin, false) => {
                    eprintln!("kataar: --centres applies only to --role centre");
                    return ExitCode::from(EXIT_USAGE);
                }
                (Role::Centre, true) => {
                    eprintln!("kataar: --role centre needs --centres (e.g. --centres 12,13)");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            store.with_store(|store| async move {
                let (clear, hash) = kataar_identity::generate_operator_key();
                let key = kataar_domain::OperatorKey {
                    operator_id: kataar_domain::OperatorId(0),
                    key_hash: hash,
                    role,
                    centres: centres.into_iter().map(kataar_domain::CentreId).collect(),
                    name: name.unwrap_or_else(|| "operator".into()),
                    created_at: chrono::Utc::now(),
                };
                let stored = store.create_operator_key(&key).await?;
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{}", clear.expose_secret())?;
                stdout.flush()?;
                let scope = if stored.centres.is_empty() {
                    "all centres".to_string()
                } else {
                    let ids: Vec<String> = stored.centres.iter().map(|c| c.0.to_string()).collect();
                    format!("centres {}", ids.join(","))
                };
                eprintln!(
                    "kataar: operator key {} ({}, {}, \"{}\") created; it is shown only once \
                     and stored hashed",
                    stored.operator_id.0,
                    stored.role.as_str(),
                    scope,
                    stored.name
                );
                Ok(())
            })
        }
        Command::Admin {
            command: AdminCommand::RevokeKey { id, store },
        } => store.with_store(|store| async move {
            let found = store
                .revoke_operator_key(kataar_domain::OperatorId(id), chrono::Utc::now())
                .await?;
            anyhow::ensure!(found, "there is no operator key {id}");
            eprintln!(
                "kataar: operator key {id} revoked; a running server stops accepting it \
                     within {} s",
                kataar_app::auth::OPERATOR_KEY_REFRESH_MS.div_ceil(1000) + 1
            );
            Ok(())
        }),
    }
}

/// Loads the configuration (exit 2 when it is bad), opens the store it names and runs `f`
/// (exit 1 when that fails).
fn with_store<F, Fut>(file: Option<&std::path::Path>, overrides: &ConfigOverrides, f: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<dyn kataar_store::Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = match Config::load(file, overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kataar: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(err) => {
            eprintln!("kataar: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(async {
        let store = kataar_app::startup::open_store(&config).await?;
        f(store).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kataar: {err:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn serve_command(args: &ServeArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref(), &args.overrides()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kataar: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.print_config {
        print!("{}", config.to_toml_redacted());
        return ExitCode::SUCCESS;
    }
    if let Err(err) = config.validate_serve() {
        eprintln!("kataar: {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    init_logging(config.log_format);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "kataar serve failed");
            eprintln!("kataar: {err:#}");
            if err
                .downcast_ref::<kataar_app::startup::ConfigError>()
                .is_some()
            {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

/// Logs go to stderr; the level comes from `KATAAR_LOG`, else `RUST_LOG`, else `info`.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("KATAAR_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Shortest time between two returns of a thread's freed memory to the OS (10 s).
const ALLOCATOR_COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Called when a runtime thread goes idle: at most every [`ALLOCATOR_COLLECT_EVERY`], gives
/// the thread's freed allocator pages back to the OS. mimalloc keeps freed pages for reuse and
/// collects blocks freed by other threads only when their owner allocates again, so without
/// this a burst's memory stays resident for as long as the server is quiet after it (the
/// drill's RSS stayed at 2.1x its start after a ten-minute hold).
#[allow(unsafe_code)]
fn return_freed_memory() {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    let due = LAST.with(|last| match last.get() {
        Some(at) if now.duration_since(at) < ALLOCATOR_COLLECT_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    if due {
        // SAFETY: mi_collect takes no pointers; it only walks the calling thread's own heap.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    match kataar_api::raise_nofile_limit() {
        Ok((before, after)) => tracing::info!(before, after, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "could not raise the open-file limit"),
    }
    if let Err(err) = kataar_api::disable_transparent_huge_pages() {
        tracing::warn!(error = %err, "could not turn transparent huge pages off");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(return_freed_memory)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_async(config))
}

async fn serve_async(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let otp_sender = config.otp_sender_effective().to_string();
    kataar_app::server::run(config, shutdown, move |listening| {
        let addr = listening.addr;
        tracing::info!(%addr, otp_sender = %otp_sender, "listening");
        if let Some(drive) = &listening.demo {
            eprintln!("{}", kataar_app::server::demo_banner(addr, drive));
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "kataar listening on http://{addr}");
        let _ = stdout.flush();
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

/// Reads the published keys: the JSON of `GET /v1/certificates/keys`, or one bare key.
fn parse_keys(text: &str) -> anyhow::Result<Vec<kataar_documents::PublicKey>> {
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) {
        let keys = doc["keys"]
            .as_array()
            .context("the keys document has no `keys` list")?;
        return keys
            .iter()
            .map(|k| {
                let encoded = k["public_key"]
                    .as_str()
                    .context("a key has no `public_key`")?;
                let key = kataar_documents::PublicKey::decode(encoded)?;
                match k["key_id"].as_str() {
                    Some(id) if id != key.key_id => {
                        anyhow::bail!("key_id {id} does not match its public key")
                    }
                    _ => Ok(key),
                }
            })
            .collect();
    }
    Ok(vec![kataar_documents::PublicKey::decode(text)?])
}

fn fetch_keys(url: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let resp = client.get(url).send().await?.error_for_status()?;
        Ok(resp.text().await?)
    })
}

/// The payload to check: from a PDF's `Keywords`, a file's text, or the argument itself.
fn certificate_input(input: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(input);
    if !input.starts_with(kataar_documents::sign::PAYLOAD_VERSION) && path.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.starts_with(b"%PDF-") {
            return kataar_documents::certificate_payload(&bytes)
                .context("this PDF holds no Kataar certificate payload");
        }
        return Ok(String::from_utf8_lossy(&bytes).trim().to_string());
    }
    Ok(input.trim().to_string())
}

fn verify_draw_command(args: &VerifyDrawArgs) -> ExitCode {
    let text = if args.source.starts_with("http://") || args.source.starts_with("https://") {
        fetch_keys(&args.source).with_context(|| format!("cannot fetch {}", args.source))
    } else {
        std::fs::read_to_string(&args.source)
            .with_context(|| format!("cannot read {}", args.source))
    };
    let parsed = text.and_then(|t| {
        let v: serde_json::Value = serde_json::from_str(&t).context("the draw is not JSON")?;
        let list = |key: &str| -> anyhow::Result<Vec<String>> {
            v[key]
                .as_array()
                .with_context(|| format!("the draw has no `{key}` list"))?
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .with_context(|| format!("`{key}` holds a non-string"))
                })
                .collect()
        };
        let secret_hex = v["secret"].as_str().context("the draw has no `secret`")?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(secret_hex, &mut secret).context("`secret` is not 64 hex digits")?;
        let published = v["commitment"].as_str().unwrap_or_default().to_owned();
        Ok((secret, list("tickets")?, list("order")?, published))
    });
    let (secret, tickets, order, published) = match parsed {
        Ok(x) => x,
        Err(e) => {
            eprintln!("kataar: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Without a commitment noted before the opening, the draw can only be checked against the
    // one it carries itself; the answer says so.
    let (commitment, source) = match &args.commitment {
        Some(c) => (c.clone(), "given"),
        None => (
            published,
            "the draw's own (give --commitment noted before the opening)",
        ),
    };
    let verdict = kataar_waitroom::draw::verify(&commitment, &secret, &tickets, &order);
    let matches = verdict == kataar_waitroom::draw::Verdict::Matches;
    let mut out = serde_json::json!({
        "matches": matches,
        "verdict": format!("{verdict:?}"),
        "commitment": commitment,
        "commitment_from": source,
        "tickets": tickets.len(),
    });
    if let (Some(ticket), Some(m)) = (&args.ticket, out.as_object_mut()) {
        let rank = order.iter().position(|t| t == ticket).map(|r| r + 1);
        m.insert("ticket".into(), serde_json::json!(ticket));
        m.insert("rank".into(), serde_json::json!(rank));
    }
    println!("{out}");
    if matches {
        ExitCode::SUCCESS
    } else {
        eprintln!("kataar: the draw does not verify: {verdict:?}");
        ExitCode::from(EXIT_FAILURE)
    }
}

fn verify_certificate_command(args: &VerifyCertificateArgs) -> ExitCode {
    let keys = match (&args.key, &args.key_url) {
        (Some(file), _) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --key {}", file.display())),
        (None, Some(url)) => {
            fetch_keys(url).with_context(|| format!("cannot fetch --key-url {url}"))
        }
        (None, None) => Err(anyhow::anyhow!("give --key FILE or --key-url URL")),
    }
    .and_then(|text| parse_keys(&text));
    let keys = match keys {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("kataar: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let payload = match certificate_input(&args.input) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kataar: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match kataar_documents::verify(&payload, &keys) {
        Ok(v) => {
            println!("{}", kataar_app::v1::documents::verified_json(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({"valid": false, "reason": e.to_string()})
            );
            eprintln!("kataar: not a genuine certificate: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
