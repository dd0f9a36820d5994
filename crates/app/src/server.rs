//! The whole server: core start-up, the demo drive, the router, the listener, `/readyz` from
//! live state, and an orderly stop (stop accepting → drain requests → the writer commits its
//! last batch → exit), also when the store writer can no longer commit (exit non-zero).

use crate::demo::{self, DemoDrive};
use crate::startup;
use crate::state::AppState;
use anyhow::Context;
use kataar_admission::BreakerState;
use kataar_api::{
    bind, build_app_with, init_metrics, openapi_base, run_server, Config, Ops, Readiness,
};
use kataar_store::WriterHealth;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the store is pinged for `/readyz`, in milliseconds.
pub const READYZ_PING_EVERY_MS: u64 = 1_000;
/// `/readyz` reports `store unreachable` when no ping succeeded for this long, in
/// milliseconds (also the deadline of one ping).
pub const READYZ_PING_STALE_MS: u64 = 5_000;

/// What the caller learns once the server is listening.
pub struct Listening {
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    /// The demo drive, when one was published in this start.
    pub demo: Option<DemoDrive>,
    /// The application state (tests use it to create keys or inspect the engine).
    pub state: AppState,
}

/// The engine and its whole router, started but not listening: what [`run`] serves, and what
/// the in-process benchmarks drive with `tower::ServiceExt::oneshot`.
pub struct Assembled {
    /// The router with every layer (the one outer stack, ops routes, admission).
    pub app: axum::Router,
    /// The application state.
    pub state: AppState,
    /// The demo drive, when one was published in this start.
    pub demo: Option<DemoDrive>,
    /// `/readyz`'s state (ready once assembled).
    pub readiness: Readiness,
    ops: Ops,
    writer_join: tokio::task::JoinHandle<()>,
}

/// Starts the engine below HTTP, publishes the demo drive if asked and builds the router.
pub async fn assemble(config: &Config) -> anyhow::Result<Assembled> {
    let readiness = Readiness::new();
    let started = startup::start(config).await?;
    let state = started.state.clone();
    let demo = if config.demo && state.inv.centres().is_empty() {
        let drive = demo::load(&state)
            .await
            .map_err(|e| anyhow::anyhow!("loading the demo drive failed: {}", e.message))?;
        Some(drive)
    } else {
        None
    };
    let limits = config.server_limits();
    let mut doc = openapi_base();
    doc.merge(crate::v1::openapi());
    doc.merge(crate::compat::openapi());
    let ops = Ops::new(
        readiness.clone(),
        init_metrics(),
        config.metrics_listen.is_none(),
        &doc,
    );
    // Admission stays in each route, where the route's template is known, so that its
    // refusals are counted by route; the operators' conditional GET runs once around the router.
    let api = crate::v1::router(&state)
        .merge(crate::compat::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::admission::admit,
        ));
    let inner = axum::middleware::from_fn(crate::console::conditional_get);
    let app = build_app_with(api, state.clone(), &ops, &limits, inner);
    crate::metrics::spawn_capacity_gauges(state.clone());
    readiness.set_probe(readiness_probe(&state));
    readiness.set_ready();
    Ok(Assembled {
        app,
        state,
        demo,
        readiness,
        ops,
        writer_join: started.writer_join,
    })
}

/// Runs the server until `shutdown` completes. `on_listening` is called once the listener is
/// bound and the inventory is loaded, before the first request is served.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(Listening),
) -> anyhow::Result<()> {
    let Assembled {
        app,
        state,
        demo,
        readiness,
        ops,
        writer_join,
    } = assemble(&config).await?;
    let limits = config.server_limits();
    let (listener, metrics_listener) = bind(&config)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    on_listening(Listening {
        addr,
        demo,
        state: state.clone(),
    });
    // A writer that can no longer commit (fenced by a newer server, or panicked) stops the
    // process the orderly way: stop accepting, drain, exit non-zero.
    let writer_failure = Arc::new(parking_lot::Mutex::new(None::<&'static str>));
    let stop = {
        let writer = state.writer.clone();
        let failure = writer_failure.clone();
        let readiness = readiness.clone();
        let waitroom = state.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                reason = writer.failed() => {
                    tracing::error!(reason, "the store writer can no longer commit; stopping");
                    readiness.set_not_ready("store writer stopped");
                    *failure.lock() = Some(reason);
                }
            }
            // Held queue polls are answered now, not cut off at the end of the grace period.
            waitroom.waitroom.stop_holding();
        }
    };
    let served = run_server(listener, metrics_listener, app, &ops, limits.clone(), stop).await;
    state.writer.shutdown();
    let grace = limits.shutdown_grace;
    if tokio::time::timeout(grace, writer_join).await.is_err() {
        tracing::warn!("the store writer did not drain within the grace period");
    }
    state.otp_sender.close(grace).await;
    served.context("serving failed")?;
    let failure = *writer_failure.lock();
    match failure {
        Some(reason) => Err(anyhow::anyhow!(
            "stopped: the store writer was {reason}; nothing more could be made durable"
        )),
        None => Ok(()),
    }
}

/// `/readyz` from live state: the writer can commit, the store breaker is closed, and the
/// store answered a ping within [`READYZ_PING_STALE_MS`] (pinged every
/// [`READYZ_PING_EVERY_MS`] by a task started here). The inventory is loaded before the
/// probe is set.
fn readiness_probe(state: &AppState) -> kataar_api::ReadinessProbe {
    let began = Instant::now();
    let last_ok_ms = Arc::new(AtomicU64::new(0));
    {
        let store = state.store.clone();
        let last_ok_ms = last_ok_ms.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(READYZ_PING_EVERY_MS));
            loop {
                tick.tick().await;
                let ping =
                    tokio::time::timeout(Duration::from_millis(READYZ_PING_STALE_MS), store.ping())
                        .await;
                if let Ok(Ok(())) = ping {
                    let now = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
                    last_ok_ms.store(now.max(1), Ordering::Relaxed);
                } else {
                    tracing::warn!("store ping failed");
                }
            }
        });
    }
    let writer = state.writer.clone();
    let breaker = state.admission.breaker().clone();
    Arc::new(move || {
        if writer.health() != WriterHealth::Running {
            return Err("store writer stopped".into());
        }
        if breaker.state() == BreakerState::Open {
            return Err("store breaker open".into());
        }
        let last = last_ok_ms.load(Ordering::Relaxed);
        let now = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Until the first ping answers, start-up's own load stands in for it.
        if last != 0 && now.saturating_sub(last) > READYZ_PING_STALE_MS {
            return Err("store unreachable".into());
        }
        if last == 0 && now > READYZ_PING_STALE_MS {
            return Err("store unreachable".into());
        }
        Ok(())
    })
}

/// The walk-through printed with `--demo` (to stderr; stdout carries only the listening line).
pub fn demo_banner(addr: SocketAddr, drive: &DemoDrive) -> String {
    format!(
        "\
Kataar demo drive: {centres} centres, {sessions} sessions over the next 7 days.
Administrator key (shown once): {key}

Book as a citizen:
  curl -s -X POST http://{addr}/v1/auth/otp -H 'Content-Type: application/json' -d '{{\"mobile\":\"9876543210\"}}'
  # the OTP is printed in this console (demo sender); then:
  curl -s -X POST http://{addr}/v1/auth/otp/verify -H 'Content-Type: application/json' -d '{{\"txn_id\":\"TXN\",\"otp\":\"123456\"}}'
  export T=<token>
  curl -s -X POST http://{addr}/v1/beneficiaries -H \"Authorization: Bearer $T\" -H 'Content-Type: application/json' \\
       -d '{{\"name\":\"Asha Devi\",\"birth_year\":1980,\"gender\":\"female\",\"id_type\":\"pan\",\"id_number\":\"ABCDE1234F\"}}'
  # sessions open to her age (born 1980: 45+) with first-dose places:
  curl -s 'http://{addr}/v1/availability?district_id=312&age=46&dose=1'
  curl -s -X POST http://{addr}/v1/bookings -H \"Authorization: Bearer $T\" -H 'Idempotency-Key: first-try' \\
       -H 'Content-Type: application/json' -d '{{\"beneficiary_id\":1,\"session_id\":SESSION,\"slot_id\":SLOT,\"dose\":1}}'
Check in as the centre:
  curl -s -X POST http://{addr}/v1/admin/bookings/BOOKING/check-in -H 'Authorization: Bearer {key}'
",
        centres = drive.centres,
        sessions = drive.sessions,
        key = drive.admin_key,
    )
}
