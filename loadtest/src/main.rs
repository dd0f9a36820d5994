//! The `kataar-loadgen` command line: yardstick servers, pgbench ceiling, open-model runs, the
//! launch-day trace and its replay, and `compare`, which runs everything and writes the report.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kataar_loadgen::exec::{BaselineExec, ClientSet, HelloExec};
use kataar_loadgen::sched::{self, Executor, Kind, OpenConfig, RetryPolicy, Shape, ShapePlan};
use kataar_loadgen::{baseline, compare, kataar, pg, pgbench, report, trace};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(name = "kataar-loadgen", version, about = "Load-test kit for Kataar")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShapeArg {
    Constant,
    Ramp,
    Spike,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Hello,
    Baseline,
}

#[derive(Subcommand)]
enum Cmd {
    /// The naive booking server (one transaction per request, pool of 8, no admission control).
    Baseline {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        #[arg(long, env = "KATAAR_LOADGEN_DATABASE_URL")]
        database_url: String,
    },
    /// A hello-world hyper server (the HTTP ceiling).
    Hello {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// pgbench ceiling of the naive transaction (HOT best of 1/8/64 clients, UNIFORM 8 clients)
    /// on a fresh database.
    Pgbench {
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        #[arg(long, default_value_t = 10)]
        duration_s: u64,
        #[arg(long, default_value_t = 10_000)]
        uniform_pools: u64,
    },
    /// One open-model run against a hello or baseline server already running at --url.
    Run {
        #[arg(long, value_enum)]
        target: TargetArg,
        #[arg(long)]
        url: String,
        #[arg(long, value_enum, default_value = "constant")]
        shape: ShapeArg,
        /// Constant rate, ramp start, spike base (req/s).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Ramp end or spike peak (req/s).
        #[arg(long, default_value_t = 5000.0)]
        to: f64,
        #[arg(long, default_value_t = 1.0)]
        spike_at_s: f64,
        #[arg(long, default_value_t = 1.0)]
        spike_width_s: f64,
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
        /// Baseline: pools 1..=N (1 = HOT); the pools must exist.
        #[arg(long, default_value_t = 1)]
        npools: i64,
        #[arg(long, default_value_t = sched::INFLIGHT_MAX_DEFAULT)]
        inflight_max: usize,
        #[arg(long, default_value_t = 64)]
        clients: u32,
        /// Retry 429/503 honouring Retry-After with jitter and a budget.
        #[arg(long)]
        retry: bool,
        #[arg(long, default_value = "loadtest-out/run")]
        out: PathBuf,
    },
    /// Writes a launch-day trace (28 April 2021 shape) as JSON lines.
    Trace {
        #[arg(long)]
        peak_rps: f64,
        #[arg(long)]
        duration_s: f64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = compare::TRACE_SEED)]
        seed: u64,
    },
    /// Replays a trace file against a hello server (--url) or a freshly started engine
    /// (--kataar-bin, with a fresh database); writes a report with the verdict.
    Replay {
        #[arg(long)]
        trace: PathBuf,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        kataar_bin: Option<PathBuf>,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        #[arg(long, default_value_t = 2_000)]
        persons: usize,
        #[arg(long, default_value_t = 64)]
        clients: u32,
        #[arg(long, default_value = "loadtest-out/replay")]
        out: PathBuf,
    },
    /// The hardening drill: ordinary citizens under hostile traffic (tricklers, idle
    /// connections, failing bookings, noisy queries); writes drill.json.
    Drill {
        /// The `kataar` binary (a release build).
        #[arg(long, default_value = "target/release/kataar")]
        bin: PathBuf,
        /// PostgreSQL server (a fresh database is made on it and dropped after).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        #[arg(long, default_value_t = 60.0)]
        duration_s: f64,
        #[arg(long, default_value_t = 1_000)]
        tricklers: usize,
        #[arg(long, default_value_t = 5_000)]
        idle: usize,
        #[arg(long, default_value_t = 100_000)]
        failing: u64,
        #[arg(long, default_value_t = 100_000)]
        noisy: u64,
        #[arg(long, default_value_t = 600)]
        citizens: usize,
        /// Seconds to keep the server up afterwards before reading RSS and the idempotency
        /// index again (660: the refusals have expired and been swept).
        #[arg(long, default_value_t = 0)]
        hold_s: u64,
        #[arg(long, default_value = "loadtest-out/drill")]
        out: PathBuf,
    },
    /// The launch through the waiting room: tickets before the opening, polls at
    /// `poll_after_s` (a share of clients 100x faster), bookings with the pass; writes
    /// launch.json.
    Launch {
        /// The `kataar` binary (a release build).
        #[arg(long, default_value = "target/release/kataar")]
        bin: PathBuf,
        /// PostgreSQL server (a fresh database is made on it and dropped after).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        #[arg(long, default_value_t = 2_000)]
        citizens: usize,
        #[arg(long, default_value_t = 500)]
        places: u32,
        /// Share of clients that poll 100x faster than told.
        #[arg(long, default_value_t = 0.1)]
        aggressive_share: f64,
        #[arg(long, default_value_t = 50)]
        admit_per_s: u32,
        /// The queue's poll budget, requests per second.
        #[arg(long, default_value_t = 200)]
        poll_budget_per_s: u32,
        /// Seconds from the release's creation to its opening.
        #[arg(long, default_value_t = 20)]
        opens_in_s: u64,
        /// Seconds the clients that follow the queue ask their polls to be held (`wait_s`, at
        /// most 25; 0: plain polls at `poll_after_s`).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=25))]
        hold_s: u32,
        /// Requests in each cost measurement (polls, cached availability reads).
        #[arg(long, default_value_t = 20_000)]
        cost_requests: usize,
        #[arg(long, default_value = "loadtest-out/launch")]
        out: PathBuf,
    },
    /// Everything side by side on this box; writes report.json, summary.md and charts.
    Compare {
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "loadtest-out")]
        out: PathBuf,
        #[arg(long, default_value = "target/release/kataar")]
        kataar_bin: PathBuf,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        #[arg(long, default_value_t = 64)]
        clients: u32,
        #[arg(long, default_value = kataar::METRIC_EVENTS_DEFAULT)]
        metric_events: String,
        #[arg(long, default_value = kataar::METRIC_BATCHES_DEFAULT)]
        metric_batches: String,
        #[arg(long, default_value_t = 55_000.0)]
        launch_peak_rps: f64,
        #[arg(long, default_value_t = 60.0)]
        launch_duration_s: f64,
        /// Beneficiaries prepared for the engine's booking runs (default 80000 quick, 160000 full).
        #[arg(long)]
        persons: Option<usize>,
        /// HTTP client of the timed runs (setup always uses reqwest).
        #[arg(long, value_enum, default_value = "lean")]
        client: compare::ClientKind,
        /// Skip the `wrk` ceilings even when `wrk` is installed.
        #[arg(long)]
        no_wrk: bool,
    },
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn bind(listen: &str, what: &str) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(listen)
        .await
        .with_context(|| format!("bind {listen}"))?;
    println!("{what} listening on http://{}", l.local_addr()?);
    Ok(l)
}

fn write_single(
    out: &std::path::Path,
    name: &str,
    stats: &kataar_loadgen::stats::Stats,
    d: f64,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let summary = stats.summary(d);
    report::chart(&out.join(format!("{name}.svg")), name, &summary)?;
    std::fs::write(
        out.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    println!(
        "{name}: offered {:.0}/s, answered {:.0}/s, 2xx {:.0}/s, dropped by client {}, written to {}",
        summary.offered_per_s,
        summary.answered_per_s,
        summary.ok_per_s,
        summary.dropped_by_client,
        out.display()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Baseline {
            listen,
            database_url,
        } => {
            let router = baseline::baseline_router(&database_url).await?;
            let l = bind(&listen, "baseline").await?;
            axum::serve(l, router)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
        }
        Cmd::Hello { listen } => {
            let l = bind(&listen, "hello").await?;
            baseline::serve_hello(l, shutdown_signal()).await?;
        }
        Cmd::Pgbench {
            database_url,
            duration_s,
            uniform_pools,
        } => {
            let db = pg::FreshDb::create(&database_url, "kataar_lg_pgbench").await?;
            let res = async {
                let c = pg::connect(&db.url).await?;
                pg::create_baseline_schema(&c).await?;
                let dir = tempfile::tempdir()?;
                let script = dir.path().join("naive.sql");
                std::fs::write(&script, pgbench::naive_script())?;
                pg::seed_pools(&c, 1, compare::POOL_CAPACITY_UNBOUNDED).await?;
                for clients in pgbench::HOT_CLIENTS {
                    let r = pgbench::run(&db.url, &script, 1, clients, duration_s, None).await?;
                    println!("HOT clients={clients} tps={:.0}", r.tps);
                }
                let n = i64::try_from(uniform_pools).unwrap_or(10_000);
                pg::seed_pools(&c, n, compare::POOL_CAPACITY_UNBOUNDED).await?;
                let r = pgbench::run(
                    &db.url,
                    &script,
                    uniform_pools,
                    pgbench::UNIFORM_CLIENTS,
                    duration_s,
                    None,
                )
                .await?;
                println!(
                    "UNIFORM pools={uniform_pools} clients={} tps={:.0}",
                    r.clients, r.tps
                );
                anyhow::Ok(())
            }
            .await;
            db.drop_db().await?;
            res?;
        }
        Cmd::Run {
            target,
            url,
            shape,
            rate,
            to,
            spike_at_s,
            spike_width_s,
            duration_s,
            npools,
            inflight_max,
            clients,
            retry,
            out,
        } => {
            let clients = ClientSet::new(clients)?;
            let url = url.trim_end_matches('/').to_owned();
            let (exec, kind): (Arc<dyn Executor>, Kind) = match target {
                TargetArg::Hello => (
                    Arc::new(HelloExec {
                        clients,
                        url: format!("{url}/"),
                        lean: None,
                    }),
                    Kind::Hello,
                ),
                TargetArg::Baseline => (
                    Arc::new(BaselineExec {
                        clients,
                        base: url,
                        npools,
                        run_tag: format!("run{}", std::process::id()),
                        lean: None,
                    }),
                    Kind::Booking,
                ),
            };
            let shape = match shape {
                ShapeArg::Constant => Shape::Constant { rate },
                ShapeArg::Ramp => Shape::Ramp { from: rate, to },
                ShapeArg::Spike => Shape::Spike {
                    base: rate,
                    peak: to,
                    at_s: spike_at_s,
                    width_s: spike_width_s,
                },
            };
            let plan = ShapePlan::new(shape, duration_s, vec![(kind, 1.0)], 1024, 1);
            let cfg = OpenConfig {
                inflight_max,
                retry: if retry {
                    RetryPolicy::polite()
                } else {
                    RetryPolicy::none()
                },
                drain_s: sched::DRAIN_S_DEFAULT,
            };
            let st = sched::run_open(plan, exec, &cfg).await;
            write_single(&out, "run", &st, duration_s)?;
        }
        Cmd::Trace {
            peak_rps,
            duration_s,
            out,
            seed,
        } => {
            let h = trace::TraceHeader::launch_day(peak_rps, duration_s, seed);
            let n = trace::write_trace(&h, &out)?;
            println!("{n} requests written to {}", out.display());
        }
        Cmd::Replay {
            trace: path,
            url,
            kataar_bin,
            database_url,
            persons,
            clients,
            out,
        } => {
            let reader = trace::TraceReader::open(&path)?;
            let d = reader.header.as_ref().map_or(60.0, |h| h.duration_s);
            if let Some(bin) = kataar_bin {
                let r = compare::replay_engine(&bin, &database_url, &path, persons, clients, &out)
                    .await?;
                if !r {
                    std::process::exit(1);
                }
            } else {
                let url = url.context("--url or --kataar-bin is required")?;
                let exec: Arc<dyn Executor> = Arc::new(HelloExec {
                    clients: ClientSet::new(clients)?,
                    url: format!("{}/", url.trim_end_matches('/')),
                    lean: None,
                });
                let cfg = OpenConfig {
                    inflight_max: sched::INFLIGHT_MAX_DEFAULT,
                    retry: RetryPolicy::none(),
                    drain_s: sched::DRAIN_S_DEFAULT,
                };
                let st = sched::run_open(reader, exec, &cfg).await;
                write_single(&out, "replay", &st, d)?;
            }
        }
        Cmd::Drill {
            bin,
            database_url,
            duration_s,
            tricklers,
            idle,
            failing,
            noisy,
            citizens,
            hold_s,
            out,
        } => {
            let plan = kataar_loadgen::drill::DrillPlan {
                bin,
                database_url,
                duration: std::time::Duration::from_secs_f64(duration_s.max(1.0)),
                tricklers,
                idle,
                failing,
                noisy,
                citizens,
                hold: std::time::Duration::from_secs(hold_s),
                out,
            };
            let report = kataar_loadgen::drill::run(plan).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Launch {
            bin,
            database_url,
            citizens,
            places,
            aggressive_share,
            admit_per_s,
            poll_budget_per_s,
            opens_in_s,
            hold_s,
            cost_requests,
            out,
        } => {
            let plan = kataar_loadgen::launch::LaunchPlan {
                bin,
                database_url,
                citizens,
                places,
                aggressive_share: aggressive_share.clamp(0.0, 1.0),
                admit_per_s,
                poll_budget_per_s,
                opens_in_s,
                hold_s,
                cost_requests,
                out,
            };
            let report = kataar_loadgen::launch::run(plan).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Compare {
            quick,
            out,
            kataar_bin,
            database_url,
            clients,
            metric_events,
            metric_batches,
            launch_peak_rps,
            launch_duration_s,
            persons,
            client,
            no_wrk,
        } => {
            let cfg = compare::CompareConfig {
                quick,
                out: out.clone(),
                kataar_bin,
                database_url,
                clients,
                metric_events,
                metric_batches,
                launch_peak_rps,
                launch_duration_s,
                persons: persons.unwrap_or(if quick { 80_000 } else { 160_000 }),
                command: std::env::args().collect::<Vec<_>>().join(" "),
                client,
                wrk: !no_wrk,
            };
            let r = compare::run(cfg).await?;
            println!("report written to {}", out.display());
            for (k, v) in &r.ratios {
                println!(
                    "{k} = {}",
                    v.map_or("n/a".to_owned(), |x| format!("{x:.3}"))
                );
            }
            println!("verdict: {}", if r.verdict_pass { "PASS" } else { "FAIL" });
            if !r.verdict_pass {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
