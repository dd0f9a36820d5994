//! The whole server: core start-up, the demo drive, the router, the listener, and an orderly
//! stop (stop accepting → drain requests → the writer commits its last batch → exit).

use crate::demo::{self, DemoDrive};
use crate::startup;
use crate::state::AppState;
use anyhow::Context;
use kataar_api::{bind, build_app, init_metrics, openapi_base, run_server, Config, Ops, Readiness};
use std::future::Future;
use std::net::SocketAddr;

/// What the caller learns once the server is listening.
pub struct Listening {
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    /// The demo drive, when one was published in this start.
    pub demo: Option<DemoDrive>,
    /// The application state (tests use it to create keys or inspect the engine).
    pub state: AppState,
}

/// Runs the server until `shutdown` completes. `on_listening` is called once the listener is
/// bound and the inventory is loaded, before the first request is served.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(Listening),
) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    let started = startup::start(&config).await?;
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
    let (listener, metrics_listener) = bind(&config)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let mut doc = openapi_base();
    doc.merge(crate::v1::openapi());
    doc.merge(crate::compat::openapi());
    let ops = Ops::new(
        readiness.clone(),
        init_metrics(),
        metrics_listener.is_none(),
        &doc,
    );
    let api = crate::v1::router().merge(crate::compat::router()).layer(
        axum::middleware::from_fn_with_state(state.clone(), crate::admission::admit),
    );
    let app = build_app(api, state.clone(), &ops, &limits);
    let addr = listener.local_addr()?;
    crate::metrics::spawn_capacity_gauges(state.clone());
    readiness.set_ready();
    on_listening(Listening {
        addr,
        demo,
        state: state.clone(),
    });
    let served = run_server(
        listener,
        metrics_listener,
        app,
        &ops,
        limits.clone(),
        shutdown,
    )
    .await;
    state.writer.shutdown();
    let grace = limits.shutdown_grace;
    if tokio::time::timeout(grace, started.writer_join)
        .await
        .is_err()
    {
        tracing::warn!("the store writer did not drain within the grace period");
    }
    state.otp_sender.close(grace).await;
    served.context("serving failed")
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
  curl -s 'http://{addr}/v1/availability?district_id=312'
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
