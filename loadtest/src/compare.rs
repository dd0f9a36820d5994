//! `kataar-loadgen compare`: starts everything on this box (fresh PostgreSQL databases, the
//! engine, the naive baseline, the hello-world server), runs the hot, uniform, read and overload
//! workloads (and in the full run the launch-day replay), checks O/L/D after every booking run,
//! and writes the report. The ratios are taken within one run, so they survive a noisy box.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::exec::{BaselineExec, ClientSet, HelloExec};
use crate::kataar::{self, EngineCmd, Fixture, KataarExec, Spread};
use crate::lean::LeanClients;
use crate::pg::{self, FreshDb};
use crate::pgbench;
use crate::procs::{self, Server};
use crate::report::{self, Machine, Pinning, Report, RunSection};
use crate::sched::{self, Executor, Kind, OpenConfig, RetryPolicy, Shape, ShapePlan};
use crate::stats::{Lane, Outcome, Stats};
use crate::trace::{self, TraceHeader, TraceReader};
use crate::verdict;
use crate::wrk;

/// Highest rate the open-model runs offer (the client's own ceiling on a small box); a run asked
/// for more is capped and the report says the multiplier it really offered.
pub const OFFERED_RPS_MAX: f64 = 60_000.0;
/// Concurrency of the closed-loop ceiling runs.
pub const CLOSED_CONCURRENCY: u32 = 64;
/// Concurrency of the engine's closed booking runs: a group-committing engine answers a booking
/// when its batch commits, so with 64 requests in flight no batch can exceed 64 and Little's law
/// caps the rate at 64 / commit latency. The baseline cannot use more than its pool of 8.
pub const ENGINE_BOOKING_CONCURRENCY: u32 = 512;
/// In-flight cap of the overload runs (above the engine's own booking in-flight cap of 4096, so
/// the engine's admission, not the client's cap, decides what is refused).
pub const OVERLOAD_INFLIGHT_MAX: usize = 16_384;
/// Share of an overload run's persons that capacity x duration may use: the rest stay bookable
/// so the persons never bound the goodput.
pub const OVERLOAD_PERSONS_SHARE: f64 = 0.6;
/// Seed of the launch-day trace (the date of the opening it imitates).
pub const TRACE_SEED: u64 = 20_210_428;
/// Pools of the UNIFORM workload.
pub const UNIFORM_POOLS: i64 = 10_000;
/// Admission limits the engine under test runs with (`KATAAR_ADMISSION_<KEY>`): the kit's
/// clients share a few hundred loopback addresses, each standing for many citizens, so the
/// per-address bucket is opened wide; every lane limit and the per-account limit keep their
/// defaults. The report's notes list these.
pub const ENGINE_ENV: &[(&str, &str)] = &[
    ("KATAAR_ADMISSION_CLIENT_RATE_PER_S", "1000000"),
    ("KATAAR_ADMISSION_CLIENT_BURST", "1000000"),
    ("KATAAR_ADMISSION_CLIENT_IN_FLIGHT_MAX", "1000000"),
    ("KATAAR_CONNECTIONS_PER_CLIENT_MAX", "20000"),
    ("KATAAR_LOG", "warn"),
];

/// The engine's environment for a run ([`ENGINE_ENV`]).
pub fn engine_env() -> Vec<(String, String)> {
    ENGINE_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Capacity of the baseline's and pgbench's pools (never reached: these runs measure speed).
pub const POOL_CAPACITY_UNBOUNDED: i32 = 1_000_000_000;

/// What `compare` does.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Short runs (under 5 minutes on 2 cores).
    pub quick: bool,
    /// Report directory.
    pub out: PathBuf,
    /// The engine binary.
    pub kataar_bin: PathBuf,
    /// Any URL of the PostgreSQL server (the database name is replaced).
    pub database_url: String,
    /// Simulated source addresses.
    pub clients: u32,
    /// Counter of committed events on the engine's `/metrics`.
    pub metric_events: String,
    /// Counter of committed batches on the engine's `/metrics`.
    pub metric_batches: String,
    /// Launch-day replay peak rate (full run only).
    pub launch_peak_rps: f64,
    /// Launch-day replay length (full run only).
    pub launch_duration_s: f64,
    /// Citizens (beneficiaries) prepared for the engine's booking runs.
    pub persons: usize,
    /// The command line (for the report).
    pub command: String,
    /// The HTTP client of the timed runs (setup always uses reqwest).
    pub client: ClientKind,
    /// Also measure the raw ceilings with `wrk` when it is installed.
    pub wrk: bool,
}

/// The HTTP client of the timed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// hyper's connection-level HTTP/1.1 client ([`crate::lean`]).
    Lean,
    /// `reqwest` (several times the CPU per request).
    Reqwest,
}

impl ClientKind {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lean => "kataar-loadgen lean hyper http1 client",
            Self::Reqwest => "kataar-loadgen reqwest client",
        }
    }
}

impl CompareConfig {
    fn run_s(&self) -> u64 {
        if self.quick {
            5
        } else {
            15
        }
    }
}

struct Ctx {
    cfg: CompareConfig,
    clients: ClientSet,
    server_cpus: Option<String>,
    loadgen_cpus: Option<String>,
    figures: BTreeMap<String, Option<f64>>,
    runs: Vec<RunSection>,
    notes: Vec<String>,
    pgbench: Vec<pgbench::PgbenchRun>,
    wrk_runs: BTreeMap<String, wrk::WrkRun>,
    /// The kit's own CPU time at the start of the current run ([`Ctx::mark`]).
    mark_cpu_s: Option<f64>,
}

impl Ctx {
    fn fig(&mut self, k: &str, v: Option<f64>) {
        self.figures.insert(k.to_owned(), v);
    }

    /// Notes the kit's own CPU time: the next [`Ctx::push`] reports the client's CPU since.
    fn mark(&mut self) {
        self.mark_cpu_s = procs::cpu_s(std::process::id());
    }

    fn get(&self, k: &str) -> Option<f64> {
        self.figures.get(k).copied().flatten()
    }

    /// Measures `url` with `wrk` (closed loop, [`wrk::WRK_CONNECTIONS_DEFAULT`] connections,
    /// pinned like the kit) into figure `name`, and the server's CPU per request beside it.
    async fn wrk_ceiling(&mut self, name: &str, url: &str, srv: &Server) {
        if !self.cfg.wrk {
            return;
        }
        if !wrk::available() {
            self.notes.push(format!(
                "{name}: wrk is not installed (apt-get install wrk)"
            ));
            return;
        }
        let cpu0 = srv.cpu_s();
        match wrk::run(
            url,
            wrk::WRK_THREADS_DEFAULT,
            wrk::WRK_CONNECTIONS_DEFAULT,
            self.cfg.run_s(),
            self.loadgen_cpus.as_deref(),
        )
        .await
        {
            Ok(r) => {
                eprintln!(
                    "wrk {name}: {:.0} ok/s ({} non-2xx, {} socket errors)",
                    r.ok_per_s(),
                    r.non_2xx,
                    r.socket_errors
                );
                let cpu = cpu_delta(srv, cpu0);
                self.fig(name, Some(r.ok_per_s()));
                self.fig(
                    &format!("{name}_server_cpu_s_per_request"),
                    report::ratio(cpu, Some(r.requests as f64)),
                );
                self.wrk_runs.insert(name.to_owned(), r);
            }
            Err(e) => self.notes.push(format!("{name}: wrk failed: {e}")),
        }
    }

    /// The lean client of the server at `base`, unless the run uses reqwest throughout.
    fn lean(&self, base: &str) -> anyhow::Result<Option<LeanClients>> {
        Ok(match self.cfg.client {
            ClientKind::Lean => Some(LeanClients::new(base, self.cfg.clients)?),
            ClientKind::Reqwest => None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        target: &str,
        workload: &str,
        model: &str,
        load: f64,
        stats: &Stats,
        duration_s: f64,
        verdict: Option<verdict::Verdict>,
        cpu: Option<f64>,
    ) {
        eprintln!(
            "run {name}: offered {:.0}/s, 2xx {:.0}/s, dropped {}",
            stats.offered as f64 / duration_s.max(1e-9),
            stats.count(None, Outcome::Ok) as f64 / duration_s.max(1e-9),
            stats.dropped
        );
        if let (Some(c0), Some(c1)) = (self.mark_cpu_s.take(), procs::cpu_s(std::process::id())) {
            self.fig(&format!("{name}_client_cpu_s"), Some(c1 - c0));
        }
        self.runs.push(RunSection {
            name: name.to_owned(),
            target: target.to_owned(),
            workload: workload.to_owned(),
            model: model.to_owned(),
            load,
            summary: stats.summary(duration_s),
            verdict,
            server_cpu_s: cpu,
            chart: None,
        });
    }
}

fn self_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the kataar-loadgen executable")
}

async fn start_self(
    what: &str,
    args: &[String],
    cpus: Option<&str>,
    log: &Path,
) -> anyhow::Result<Server> {
    let cmd = procs::command(&self_exe()?, args, cpus);
    Ok(procs::start(what, cmd, &format!("{what} listening on"), Some(log)).await?)
}

fn cpu_delta(srv: &Server, before: Option<f64>) -> Option<f64> {
    Some(srv.cpu_s()? - before?)
}

async fn hello_phase(cx: &mut Ctx) -> anyhow::Result<()> {
    let log = cx.cfg.out.join("hello.stderr.log");
    let args = vec!["hello".into(), "--listen".into(), "127.0.0.1:0".into()];
    let srv = start_self("hello", &args, cx.server_cpus.as_deref(), &log).await?;
    let exec: Arc<dyn Executor> = Arc::new(HelloExec {
        clients: cx.clients.clone(),
        url: format!("{}/", srv.base),
        lean: cx.lean(&srv.base)?,
    });
    let d = cx.cfg.run_s();
    let cpu0 = srv.cpu_s();
    cx.mark();
    let (st, d) = sched::run_closed(
        exec,
        CLOSED_CONCURRENCY,
        Duration::from_secs(d),
        u64::MAX,
        |_| Kind::Hello,
    )
    .await;
    let cpu = cpu_delta(&srv, cpu0);
    cx.fig("hello_rps", Some(st.count(None, Outcome::Ok) as f64 / d));
    cx.wrk_ceiling("wrk_hello_rps", &format!("{}/", srv.base), &srv)
        .await;
    cx.push(
        "hello_closed",
        "hello",
        "hello",
        "closed",
        64.0,
        &st,
        d,
        None,
        cpu,
    );
    srv.stop().await;
    Ok(())
}

async fn baseline_run(
    cx: &mut Ctx,
    srv: &Server,
    db: &FreshDb,
    npools: i64,
    workload: &str,
) -> anyhow::Result<f64> {
    let c = pg::connect(&db.url).await?;
    pg::seed_pools(&c, npools, POOL_CAPACITY_UNBOUNDED).await?;
    let exec: Arc<dyn Executor> = Arc::new(BaselineExec {
        clients: cx.clients.clone(),
        base: srv.base.clone(),
        npools,
        run_tag: workload.to_owned(),
        lean: cx.lean(&srv.base)?,
    });
    let d = cx.cfg.run_s();
    let cpu0 = srv.cpu_s();
    cx.mark();
    let (st, d) = sched::run_closed(
        exec,
        CLOSED_CONCURRENCY,
        Duration::from_secs(d),
        u64::MAX,
        |_| Kind::Booking,
    )
    .await;
    let cpu = cpu_delta(srv, cpu0);
    let rps = st.count(Some(Lane::Booking), Outcome::Ok) as f64 / d;
    let v = verdict::check_db(&db.url, &st.booking_ids, st.booking_ids_truncated).await?;
    let name = format!("baseline_{workload}_closed");
    cx.push(
        &name,
        "baseline",
        workload,
        "closed",
        64.0,
        &st,
        d,
        Some(v),
        cpu,
    );
    Ok(rps)
}

async fn baseline_phase(cx: &mut Ctx) -> anyhow::Result<()> {
    let db = FreshDb::create(&cx.cfg.database_url, "kataar_lg_baseline").await?;
    let log = cx.cfg.out.join("baseline.stderr.log");
    let args = vec![
        "baseline".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        db.url.clone(),
    ];
    let res = async {
        let srv = start_self("baseline", &args, cx.server_cpus.as_deref(), &log).await?;
        let hot = baseline_run(cx, &srv, &db, 1, "hot").await;
        let uni = baseline_run(cx, &srv, &db, UNIFORM_POOLS, "uniform").await;
        srv.stop().await;
        cx.fig("baseline_hot_rps", Some(hot?));
        cx.fig("baseline_uniform_rps", Some(uni?));
        anyhow::Ok(())
    }
    .await;
    db.drop_db().await?;
    res
}

async fn pgbench_phase(cx: &mut Ctx) -> anyhow::Result<()> {
    let db = FreshDb::create(&cx.cfg.database_url, "kataar_lg_pgbench").await?;
    let res = async {
        let c = pg::connect(&db.url).await?;
        pg::create_baseline_schema(&c).await?;
        let script = cx.cfg.out.join("naive.pgbench.sql");
        std::fs::write(&script, pgbench::naive_script())?;
        let d = cx.cfg.run_s().min(10);
        let cpus = cx.loadgen_cpus.clone();
        pg::seed_pools(&c, 1, POOL_CAPACITY_UNBOUNDED).await?;
        let mut best: Option<f64> = None;
        for clients in pgbench::HOT_CLIENTS {
            let r = pgbench::run(&db.url, &script, 1, clients, d, cpus.as_deref()).await?;
            cx.fig(&format!("pgbench_naive_hot_c{clients}_tps"), Some(r.tps));
            best = Some(best.map_or(r.tps, |b: f64| b.max(r.tps)));
            cx.pgbench.push(r);
        }
        cx.fig("pgbench_naive_hot_best_tps", best);
        pg::seed_pools(&c, UNIFORM_POOLS, POOL_CAPACITY_UNBOUNDED).await?;
        let r = pgbench::run(
            &db.url,
            &script,
            UNIFORM_POOLS as u64,
            pgbench::UNIFORM_CLIENTS,
            d,
            cpus.as_deref(),
        )
        .await?;
        cx.fig("pgbench_naive_uniform_tps", Some(r.tps));
        cx.pgbench.push(r);
        let fsync = fsync_rate().await;
        cx.fig("fdatasync_per_s", fsync);
        anyhow::Ok(())
    }
    .await;
    db.drop_db().await?;
    res
}

/// `pg_test_fsync -s 2`'s fdatasync rate (ops/s), if the tool is found.
async fn fsync_rate() -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let file = dir.path().join("fsync.test");
    let bins = ["pg_test_fsync", "/usr/lib/postgresql/15/bin/pg_test_fsync"];
    for b in bins {
        let out = tokio::process::Command::new(b)
            .arg("-s")
            .arg("2")
            .arg("-f")
            .arg(&file)
            .output()
            .await;
        if let Ok(o) = out {
            let text = String::from_utf8_lossy(&o.stdout);
            return text
                .lines()
                .find(|l| l.trim_start().starts_with("fdatasync") && l.contains("ops/sec"))
                .and_then(|l| l.split_whitespace().find_map(|w| w.parse::<f64>().ok()));
        }
    }
    None
}

fn chunk(fx: &Fixture, i: usize, n: usize) -> Arc<Fixture> {
    let per = fx.persons.len() / n.max(1);
    let mut f = fx.clone();
    f.persons =
        fx.persons[(i * per).min(fx.persons.len())..((i + 1) * per).min(fx.persons.len())].to_vec();
    Arc::new(f)
}

struct Engine<'a> {
    srv: &'a Server,
    db: &'a FreshDb,
    cmd: &'a EngineCmd,
    fx: &'a Fixture,
}

impl Engine<'_> {
    fn exec(&self, cx: &Ctx, fx: Arc<Fixture>, spread: Spread, tag: &str, i: u64) -> KataarExec {
        let lean = cx.lean(&self.srv.base).ok().flatten();
        KataarExec::new(
            cx.clients.clone(),
            self.srv.base.clone(),
            fx,
            spread,
            tag.to_owned(),
            500_000_000 + i * 10_000_000,
            30_000_000_000 + i * 100_000_000,
            self.cmd.otp_file.clone(),
        )
        .with_lean(lean)
    }

    /// Saves the engine's `/metrics` page as `engine_metrics_<stage>.txt` (the store's batch-size
    /// and commit-time histograms are the profile of a booking run).
    async fn save_metrics(&self, cx: &mut Ctx, stage: &str) {
        let page = match reqwest::get(format!("{}/metrics", self.srv.base)).await {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        };
        let path = cx.cfg.out.join(format!("engine_metrics_{stage}.txt"));
        if page.and_then(|p| std::fs::write(&path, p).ok()).is_none() {
            cx.notes
                .push(format!("/metrics could not be saved after {stage}"));
        }
    }

    async fn verdict(&self, st: &Stats) -> Option<verdict::Verdict> {
        match verdict::check_db(&self.db.url, &st.booking_ids, st.booking_ids_truncated).await {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("verdict in the database failed ({e}); trying the operators' API");
                verdict::check_api(
                    &self.srv.base,
                    &self.fx.operator_key,
                    &[kataar::DISTRICT_ID, kataar::UNIFORM_DISTRICT_ID],
                    &self.fx.date,
                    1,
                    &self.fx.session_ids,
                    &st.booking_ids,
                )
                .await
                .ok()
            }
        }
    }
}

const BOOKING_RUNS: usize = 8;

async fn engine_runs(cx: &mut Ctx, e: &Engine<'_>) -> anyhow::Result<()> {
    let d = cx.cfg.run_s();
    // Reads.
    let exec: Arc<dyn Executor> = Arc::new(e.exec(cx, Arc::new(e.fx.clone()), Spread::Hot, "r", 0));
    let cpu0 = e.srv.cpu_s();
    cx.mark();
    let (st, ds) = sched::run_closed(
        exec,
        CLOSED_CONCURRENCY,
        Duration::from_secs(d),
        u64::MAX,
        |_| Kind::Availability,
    )
    .await;
    let cpu = cpu_delta(e.srv, cpu0);
    let reads_ok = st.count(None, Outcome::Ok);
    cx.fig("engine_read_rps", Some(reads_ok as f64 / ds));
    cx.fig(
        "engine_cpu_s_per_read",
        report::ratio(cpu, Some(st.sent as f64)),
    );
    cx.push(
        "engine_read_closed",
        "engine",
        "read",
        "closed",
        f64::from(CLOSED_CONCURRENCY),
        &st,
        ds,
        None,
        cpu,
    );
    cx.wrk_ceiling(
        "wrk_engine_read_rps",
        &format!(
            "{}/v1/availability?district_id={}",
            e.srv.base,
            kataar::DISTRICT_ID
        ),
        e.srv,
    )
    .await;
    // Hot and uniform ceilings.
    let mut cpu_per_admitted = None;
    for (i, (spread, w)) in [(Spread::Hot, "hot"), (Spread::Uniform, "uniform")]
        .into_iter()
        .enumerate()
    {
        let fx = chunk(e.fx, i, BOOKING_RUNS);
        let persons = fx.persons.len();
        let exec: Arc<dyn Executor> = Arc::new(e.exec(cx, fx, spread, w, i as u64 + 1));
        let m0 =
            kataar::read_counters(&e.srv.base, &cx.cfg.metric_events, &cx.cfg.metric_batches).await;
        let cpu0 = e.srv.cpu_s();
        cx.mark();
        // Stops when every prepared person of this slice has been tried once.
        let (st, ds) = sched::run_closed(
            exec,
            ENGINE_BOOKING_CONCURRENCY,
            Duration::from_secs(d),
            persons as u64,
            |_| Kind::Booking,
        )
        .await;
        let cpu = cpu_delta(e.srv, cpu0);
        let m1 =
            kataar::read_counters(&e.srv.base, &cx.cfg.metric_events, &cx.cfg.metric_batches).await;
        let ok = st.count(Some(Lane::Booking), Outcome::Ok);
        if ds < 1.0 {
            cx.notes.push(format!(
                "engine {w}: the {persons} persons prepared for it lasted {ds:.2} s; raise \
                 --persons for a steadier figure"
            ));
        }
        cx.fig(&format!("engine_{w}_rps"), Some(ok as f64 / ds));
        if spread == Spread::Hot {
            if let (Some((e0, b0)), Some((e1, b1))) = (m0, m1) {
                // Bookings acknowledged per committed batch; a booking is more than one event
                // (its place and its token), so events per batch are reported apart.
                cx.fig(
                    "engine_hot_bookings_per_commit",
                    report::ratio(Some(ok as f64), Some(b1 - b0)),
                );
                cx.fig(
                    "engine_hot_events_per_commit",
                    report::ratio(Some(e1 - e0), Some(b1 - b0)),
                );
            } else {
                cx.notes
                    .push("store batch counters not found on /metrics".to_owned());
            }
            cpu_per_admitted = report::ratio(cpu, Some(st.sent as f64));
            cx.fig("engine_cpu_s_per_admitted_request", cpu_per_admitted);
        }
        e.save_metrics(cx, &format!("after_{w}")).await;
        let v = e.verdict(&st).await;
        cx.push(
            &format!("engine_{w}_closed"),
            "engine",
            w,
            "closed",
            f64::from(ENGINE_BOOKING_CONCURRENCY),
            &st,
            ds,
            v,
            cpu,
        );
    }
    // Overload, open model, against the hot session.
    let cap = cx.get("engine_hot_rps").unwrap_or(0.0).max(100.0);
    let mut goodput_1x = None;
    for (i, mult) in [1.0f64, 2.0, 10.0, 100.0].into_iter().enumerate() {
        let rate = (cap * mult).min(OFFERED_RPS_MAX);
        let fx = chunk(e.fx, i + 2, BOOKING_RUNS);
        // Admitted bookings are at most capacity x duration: size the run so the persons of
        // this slice last (at least a second, at most the configured run length).
        let ds = (fx.persons.len() as f64 * OVERLOAD_PERSONS_SHARE / cap).clamp(1.0, d as f64);
        let exec: Arc<dyn Executor> =
            Arc::new(e.exec(cx, fx, Spread::Hot, &format!("o{mult}"), i as u64 + 3));
        let plan = ShapePlan::new(
            Shape::Constant { rate },
            ds,
            vec![(Kind::Booking, 1.0)],
            cx.clients.len() as u32 * 8,
            42 + i as u64,
        );
        let cfg = OpenConfig {
            inflight_max: OVERLOAD_INFLIGHT_MAX,
            retry: RetryPolicy::polite(),
            drain_s: sched::DRAIN_S_DEFAULT,
        };
        let cpu0 = e.srv.cpu_s();
        cx.mark();
        let st = sched::run_open(plan, exec, &cfg).await;
        let cpu = cpu_delta(e.srv, cpu0);
        let name = format!("engine_overload_{mult}x");
        let good = st.count(Some(Lane::Booking), Outcome::Ok) as f64 / ds;
        cx.fig(&format!("{name}_offered_multiplier"), Some(rate / cap));
        cx.fig(&format!("{name}_goodput_rps"), Some(good));
        let refused = st.merged(Some(Lane::Booking), Some(Outcome::Throttled429));
        let mut refused_all = st.merged(Some(Lane::Booking), Some(Outcome::Overloaded503));
        let _ = refused_all.add(&refused);
        if !refused_all.is_empty() {
            cx.fig(
                &format!("{name}_refusal_p99_ms"),
                Some(refused_all.value_at_quantile(0.99) as f64 / 1000.0),
            );
        }
        let admitted = st.merged(Some(Lane::Booking), Some(Outcome::Ok));
        if !admitted.is_empty() {
            cx.fig(
                &format!("{name}_admitted_p99_ms"),
                Some(admitted.value_at_quantile(0.99) as f64 / 1000.0),
            );
        }
        if mult == 1.0 {
            goodput_1x = Some(good);
        }
        if mult == 100.0 {
            // CPU per refusal: what the overload run cost beyond its admitted requests.
            let n_ref = refused_all.len() as f64;
            // Requests the engine processed past admission (transport failures cost it nothing).
            let n_adm = [Outcome::Ok, Outcome::Refused409, Outcome::ClientError]
                .into_iter()
                .map(|o| st.count(Some(Lane::Booking), o))
                .sum::<u64>() as f64;
            if let (Some(c), Some(per_adm)) = (cpu, cpu_per_admitted) {
                let per_ref = report::ratio(Some((c - n_adm * per_adm).max(0.0)), Some(n_ref));
                cx.fig("engine_cpu_s_per_refusal", per_ref);
            }
        }
        cx.fig(
            &format!("goodput_{mult}x_vs_1x"),
            report::ratio(Some(good), goodput_1x),
        );
        let v = e.verdict(&st).await;
        cx.push(
            &name,
            "engine",
            &format!("overload_{mult}x"),
            "open",
            rate,
            &st,
            ds,
            v,
            cpu,
        );
    }
    e.save_metrics(cx, "after_overload").await;
    if !cx.cfg.quick {
        launch_day(cx, e).await?;
        e.save_metrics(cx, "after_launch_day").await;
    }
    Ok(())
}

async fn launch_day(cx: &mut Ctx, e: &Engine<'_>) -> anyhow::Result<()> {
    let header =
        TraceHeader::launch_day(cx.cfg.launch_peak_rps, cx.cfg.launch_duration_s, TRACE_SEED);
    let path = cx.cfg.out.join("launch-day.trace.jsonl");
    let n = trace::write_trace(&header, &path)?;
    eprintln!("launch-day trace: {n} requests in {}", path.display());
    let reader = TraceReader::open(&path)?;
    let fx = chunk(e.fx, 6, BOOKING_RUNS);
    let exec = Arc::new(e.exec(cx, fx, Spread::Uniform, "launch", 7));
    let tailer = {
        let exec = exec.clone();
        tokio::spawn(async move {
            loop {
                exec.tail_otps();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let cfg = OpenConfig {
        inflight_max: sched::INFLIGHT_MAX_DEFAULT * 2,
        retry: RetryPolicy::polite(),
        drain_s: sched::DRAIN_S_DEFAULT,
    };
    let cpu0 = e.srv.cpu_s();
    cx.mark();
    let st = sched::run_open(reader, exec as Arc<dyn Executor>, &cfg).await;
    tailer.abort();
    let cpu = cpu_delta(e.srv, cpu0);
    let failed = st.count(None, Outcome::Failed) + st.dropped;
    cx.fig("launch_day_offered", Some(st.offered as f64));
    cx.fig("launch_day_unanswered", Some(failed as f64));
    let v = e.verdict(&st).await;
    let ds = cx.cfg.launch_duration_s;
    cx.push(
        "engine_launch_day",
        "engine",
        "launch_day",
        "open",
        st.offered as f64 / ds,
        &st,
        ds,
        v,
        cpu,
    );
    Ok(())
}

async fn engine_phase(cx: &mut Ctx) -> anyhow::Result<()> {
    if !cx.cfg.kataar_bin.exists() {
        cx.notes.push(format!(
            "engine binary {} not found: engine runs skipped (build it with cargo build --release)",
            cx.cfg.kataar_bin.display()
        ));
        return Ok(());
    }
    let db = FreshDb::create(&cx.cfg.database_url, "kataar_lg_engine").await?;
    let dir = tempfile::tempdir()?;
    let cmd = EngineCmd {
        bin: cx.cfg.kataar_bin.clone(),
        database_url: db.url.clone(),
        otp_file: dir.path().join("otp.jsonl"),
        data_dir: dir.path().join("data"),
        taskset_cpus: cx.server_cpus.clone(),
        env: engine_env(),
    };
    cx.notes.push(format!(
        "engine environment: {}",
        ENGINE_ENV
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let res = async {
        let log = cx.cfg.out.join("kataar.stderr.log");
        let srv = cmd.start(Some(&log)).await?;
        let res = async {
            let mut fx = Fixture {
                operator_key: cmd.create_admin_key().await?,
                ..Fixture::default()
            };
            let http = reqwest::Client::new();
            let key = fx.operator_key.clone();
            kataar::publish(
                &http,
                &srv.base,
                &key,
                kataar::DISTRICT_ID,
                1,
                1,
                kataar::POOL_CAPACITY_MAX,
                &mut fx,
            )
            .await?;
            // Uniform: about 10^3 (quick) or 10^4 (full) dose-1 online pools.
            let slots = kataar::SLOTS_PER_SESSION_MAX;
            let centres = (if cx.cfg.quick { 1_000 } else { 10_000 }) / slots + 1;
            kataar::publish(
                &http,
                &srv.base,
                &key,
                kataar::UNIFORM_DISTRICT_ID,
                centres,
                slots,
                1_000,
                &mut fx,
            )
            .await?;
            let accounts = cx.cfg.persons.div_ceil(kataar::BENEFICIARIES_PER_ACCOUNT);
            let t0 = std::time::Instant::now();
            kataar::citizens(
                &cx.clients,
                &srv.base,
                &cmd.otp_file,
                accounts,
                4,
                0,
                20_000_000_000,
                &mut fx,
            )
            .await?;
            kataar::citizens(
                &cx.clients,
                &srv.base,
                &cmd.otp_file,
                2_000,
                0,
                100_000_000,
                0,
                &mut fx,
            )
            .await?;
            cx.fig("engine_setup_s", Some(t0.elapsed().as_secs_f64()));
            cx.fig(
                "engine_pools_published",
                Some((fx.targets.len() * 4) as f64),
            );
            let e = Engine {
                srv: &srv,
                db: &db,
                cmd: &cmd,
                fx: &fx,
            };
            engine_runs(cx, &e).await
        }
        .await;
        let clean = srv.stop().await;
        if !clean {
            cx.notes
                .push("kataar did not exit 0 after SIGTERM".to_owned());
        }
        res
    }
    .await;
    db.drop_db().await?;
    res
}

fn ratios(cx: &Ctx) -> BTreeMap<String, Option<f64>> {
    let g = |k: &str| cx.get(k);
    let mut r = BTreeMap::new();
    r.insert(
        "engine_vs_baseline_hot".into(),
        report::ratio(g("engine_hot_rps"), g("baseline_hot_rps")),
    );
    r.insert(
        "engine_vs_baseline_uniform".into(),
        report::ratio(g("engine_uniform_rps"), g("baseline_uniform_rps")),
    );
    r.insert(
        "engine_vs_pgbench_naive_hot".into(),
        report::ratio(g("engine_hot_rps"), g("pgbench_naive_hot_best_tps")),
    );
    r.insert(
        "baseline_vs_pgbench_naive_hot".into(),
        report::ratio(g("baseline_hot_rps"), g("pgbench_naive_hot_best_tps")),
    );
    r.insert(
        "baseline_vs_pgbench_naive_uniform".into(),
        report::ratio(g("baseline_uniform_rps"), g("pgbench_naive_uniform_tps")),
    );
    r.insert("goodput_2x".into(), g("goodput_2x_vs_1x"));
    r.insert("goodput_10x".into(), g("goodput_10x_vs_1x"));
    r.insert("goodput_100x".into(), g("goodput_100x_vs_1x"));
    r.insert(
        "reads_vs_hello".into(),
        report::ratio(g("engine_read_rps"), g("hello_rps")),
    );
    r.insert(
        "reads_vs_hello_wrk".into(),
        report::ratio(g("wrk_engine_read_rps"), g("wrk_hello_rps")),
    );
    r.insert(
        "bookings_per_commit".into(),
        g("engine_hot_bookings_per_commit"),
    );
    r.insert(
        "reject_cpu_vs_admit_cpu".into(),
        report::ratio(
            g("engine_cpu_s_per_refusal"),
            g("engine_cpu_s_per_admitted_request"),
        ),
    );
    r.insert(
        "engine_hot_vs_fdatasync".into(),
        report::ratio(g("engine_hot_rps"), g("fdatasync_per_s")),
    );
    r
}

/// Runs everything and writes the report into `cfg.out`. The report's `verdict_pass` is false if
/// any checked verdict failed.
pub async fn run(cfg: CompareConfig) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&cfg.out)?;
    // Probe before pinning: once pinned, this process sees only its own CPU.
    let mut machine = Machine::probe();
    let machine_cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let pin = machine_cores >= 2 && procs::taskset_available();
    let (server_cpus, loadgen_cpus) = if pin {
        // Move this process (all threads) onto CPU 1; servers go on CPU 0.
        let _ = tokio::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
            .output()
            .await;
        (Some("0".to_owned()), Some("1".to_owned()))
    } else {
        (None, None)
    };
    let mut cx = Ctx {
        clients: ClientSet::new(cfg.clients)?,
        cfg,
        server_cpus,
        loadgen_cpus,
        figures: BTreeMap::new(),
        runs: Vec::new(),
        notes: Vec::new(),
        pgbench: Vec::new(),
        wrk_runs: BTreeMap::new(),
        mark_cpu_s: None,
    };
    if let Ok(c) = pg::connect(&pg::url_with_db(&cx.cfg.database_url, "postgres")?).await {
        if let Ok(row) = c.query_one("SHOW server_version", &[]).await {
            machine.postgres_version = row.try_get::<_, String>(0).ok();
        }
    }
    if pin {
        cx.notes.push(
            "PostgreSQL itself is not pinned: it shares both cores with whichever side is busy"
                .to_owned(),
        );
    }
    type Phase = for<'a> fn(&'a mut Ctx) -> futures::future::BoxFuture<'a, anyhow::Result<()>>;
    let phases: [(&str, Phase); 4] = [
        ("hello", |c| Box::pin(hello_phase(c))),
        ("baseline", |c| Box::pin(baseline_phase(c))),
        ("pgbench", |c| Box::pin(pgbench_phase(c))),
        ("engine", |c| Box::pin(engine_phase(c))),
    ];
    for (name, phase) in phases {
        eprintln!("phase {name}");
        if let Err(e) = phase(&mut cx).await {
            eprintln!("phase {name} failed: {e:#}");
            cx.notes.push(format!("phase {name} failed: {e:#}"));
        }
    }
    cx.notes.push(format!(
        "generators: every figure of a run in `runs` (hello_rps, baseline_*, engine_*) comes from \
         the {} ({} source addresses); wrk_* figures from wrk {} threads x {} connections \
         (one source address); pgbench_* from pgbench",
        cx.cfg.client.name(),
        cx.clients.len(),
        wrk::WRK_THREADS_DEFAULT,
        wrk::WRK_CONNECTIONS_DEFAULT
    ));
    let ratios = ratios(&cx);
    let out = cx.cfg.out.clone();
    let verdicts: Vec<&verdict::Verdict> =
        cx.runs.iter().filter_map(|r| r.verdict.as_ref()).collect();
    let mut via: Vec<String> = verdicts.iter().map(|v| v.via.clone()).collect();
    via.sort();
    via.dedup();
    let mut report = Report {
        generated_at: chrono::Utc::now().to_rfc3339(),
        command: cx.cfg.command.clone(),
        quick: cx.cfg.quick,
        machine,
        pinning: Pinning {
            taskset: pin,
            server_cpus: cx.server_cpus.clone(),
            loadgen_cpus: cx.loadgen_cpus.clone(),
        },
        verdict_pass: verdicts.iter().all(|v| v.pass),
        verdict_via: via,
        figures: cx.figures,
        ratios,
        pgbench: cx.pgbench,
        runs: cx.runs,
        notes: cx.notes,
    };
    report::write(&out, &mut report)?;
    Ok(report)
}

/// Starts the engine on a fresh database, sets up a drive (`persons` beneficiaries), replays the
/// trace at `trace_path`, checks the verdict and writes a report into `out`. Returns whether the
/// verdict passed.
pub async fn replay_engine(
    bin: &Path,
    database_url: &str,
    trace_path: &Path,
    persons: usize,
    clients: u32,
    out: &Path,
) -> anyhow::Result<bool> {
    std::fs::create_dir_all(out)?;
    let db = FreshDb::create(database_url, "kataar_lg_replay").await?;
    let dir = tempfile::tempdir()?;
    let cmd = EngineCmd {
        bin: bin.to_owned(),
        database_url: db.url.clone(),
        otp_file: dir.path().join("otp.jsonl"),
        data_dir: dir.path().join("data"),
        taskset_cpus: None,
        env: engine_env(),
    };
    let cs = ClientSet::new(clients)?;
    let res = async {
        let srv = cmd.start(Some(&out.join("kataar.stderr.log"))).await?;
        let res = async {
            let mut fx = Fixture {
                operator_key: cmd.create_admin_key().await?,
                ..Fixture::default()
            };
            let http = reqwest::Client::new();
            let key = fx.operator_key.clone();
            kataar::publish(
                &http,
                &srv.base,
                &key,
                kataar::UNIFORM_DISTRICT_ID,
                10,
                10,
                1_000,
                &mut fx,
            )
            .await?;
            let accounts = persons.div_ceil(kataar::BENEFICIARIES_PER_ACCOUNT);
            kataar::citizens(
                &cs,
                &srv.base,
                &cmd.otp_file,
                accounts,
                4,
                0,
                20_000_000_000,
                &mut fx,
            )
            .await?;
            kataar::citizens(
                &cs,
                &srv.base,
                &cmd.otp_file,
                500,
                0,
                100_000_000,
                0,
                &mut fx,
            )
            .await?;
            let exec = Arc::new(
                KataarExec::new(
                    cs.clone(),
                    srv.base.clone(),
                    Arc::new(fx.clone()),
                    Spread::Uniform,
                    "replay".to_owned(),
                    500_000_000,
                    30_000_000_000,
                    cmd.otp_file.clone(),
                )
                .with_lean(LeanClients::new(&srv.base, clients).ok()),
            );
            let tailer = {
                let exec = exec.clone();
                tokio::spawn(async move {
                    loop {
                        exec.tail_otps();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                })
            };
            let reader = TraceReader::open(trace_path)?;
            let d = reader.header.as_ref().map_or(60.0, |h| h.duration_s);
            let cfg = OpenConfig {
                inflight_max: sched::INFLIGHT_MAX_DEFAULT * 2,
                retry: RetryPolicy::polite(),
                drain_s: sched::DRAIN_S_DEFAULT,
            };
            let cpu0 = srv.cpu_s();
            let st = sched::run_open(reader, exec as Arc<dyn Executor>, &cfg).await;
            tailer.abort();
            let cpu = cpu_delta(&srv, cpu0);
            let e = Engine {
                srv: &srv,
                db: &db,
                cmd: &cmd,
                fx: &fx,
            };
            let v = e.verdict(&st).await;
            let pass = v.as_ref().is_some_and(|v| v.pass);
            let mut report = Report {
                generated_at: chrono::Utc::now().to_rfc3339(),
                command: std::env::args().collect::<Vec<_>>().join(" "),
                quick: false,
                machine: Machine::probe(),
                pinning: Pinning {
                    taskset: false,
                    server_cpus: None,
                    loadgen_cpus: None,
                },
                figures: BTreeMap::new(),
                ratios: BTreeMap::new(),
                pgbench: Vec::new(),
                runs: Vec::new(),
                verdict_pass: pass,
                verdict_via: v.iter().map(|v| v.via.clone()).collect(),
                notes: Vec::new(),
            };
            report.runs.push(RunSection {
                name: "engine_replay".to_owned(),
                target: "engine".to_owned(),
                workload: "trace".to_owned(),
                model: "open".to_owned(),
                load: st.offered as f64 / d.max(1e-9),
                summary: st.summary(d),
                verdict: v,
                server_cpu_s: cpu,
                chart: None,
            });
            report::write(out, &mut report)?;
            anyhow::Ok(pass)
        }
        .await;
        srv.stop().await;
        res
    }
    .await;
    db.drop_db().await?;
    res
}
