//! The report: `report.json` (figures, ratios, one section per run, the verdicts), a human
//! `summary.md`, one SVG chart per run (offered / admitted / refused / failed per second, and
//! p50 / p99 / p99.9 latency per second), and `report.html`, the same as one page readable
//! without a network (charts inline, see [`crate::html`]).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::pgbench::PgbenchRun;
use crate::stats::RunSummary;
use crate::verdict::Verdict;

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// Memory (bytes), from `/proc/meminfo`.
    pub memory_bytes: Option<u64>,
    /// PostgreSQL server version, if read.
    pub postgres_version: Option<String>,
}

impl Machine {
    /// Reads what it can about this machine.
    pub fn probe() -> Self {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
        Self {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            memory_bytes,
            postgres_version: None,
        }
    }
}

/// How processes were pinned.
#[derive(Debug, Clone, Serialize)]
pub struct Pinning {
    /// Whether `taskset` was used.
    pub taskset: bool,
    /// CPUs of the server under test (and of pgbench's server side: PostgreSQL is not pinned).
    pub server_cpus: Option<String>,
    /// CPUs of the load generator (and of pgbench).
    pub loadgen_cpus: Option<String>,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSection {
    /// Unique name (`engine_hot_closed`, `baseline_uniform`, …), also the chart's file stem.
    pub name: String,
    /// `engine`, `baseline` or `hello`.
    pub target: String,
    /// `hot`, `uniform`, `read`, `overload_10x`, `launch_day`, ….
    pub workload: String,
    /// `closed` (ceiling) or `open` (schedule).
    pub model: String,
    /// Closed model: concurrency; open model: offered rate (first attempts, mean).
    pub load: f64,
    /// What it measured.
    pub summary: RunSummary,
    /// The verdict after it, if checked.
    pub verdict: Option<Verdict>,
    /// CPU seconds the server used during the run.
    pub server_cpu_s: Option<f64>,
    /// Chart file, relative to the report directory.
    pub chart: Option<String>,
}

/// Everything `compare` writes to `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When (RFC 3339 UTC).
    pub generated_at: String,
    /// The exact command line.
    pub command: String,
    /// `--quick`?
    pub quick: bool,
    /// Machine.
    pub machine: Machine,
    /// Pinning.
    pub pinning: Pinning,
    /// Named figures (req/s, tps, ms, …); `null` when not measured.
    pub figures: BTreeMap<String, Option<f64>>,
    /// The ratios `performance.md` asks for; `null` when a side was not measured.
    pub ratios: BTreeMap<String, Option<f64>>,
    /// pgbench measurements.
    pub pgbench: Vec<PgbenchRun>,
    /// Every run.
    pub runs: Vec<RunSection>,
    /// Whether every checked verdict passed.
    pub verdict_pass: bool,
    /// How verdicts were checked (`database`, `operators_api`).
    pub verdict_via: Vec<String>,
    /// What was skipped or approximated, and why.
    pub notes: Vec<String>,
}

/// `a / b` when both exist and `b > 0`.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

/// Errors writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// JSON failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Drawing failed.
    #[error("chart: {0}")]
    Chart(String),
}

fn chart_err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// Reads a count from a second of the series.
type CountOf = fn(&crate::stats::SecondSummary) -> u64;
/// Reads a latency from a second of the series.
type MsOf = fn(&crate::stats::SecondSummary) -> f64;

/// A run chart's size in pixels.
pub const CHART_PX: (u32, u32) = (900, 640);

/// Draws one run's chart to `path`.
pub fn chart(path: &Path, title: &str, s: &RunSummary) -> Result<(), ReportError> {
    draw(
        SVGBackend::new(path, CHART_PX).into_drawing_area(),
        title,
        s,
    )
}

/// One run's chart as an SVG document in a string (for inlining).
pub fn chart_svg(title: &str, s: &RunSummary) -> Result<String, ReportError> {
    let mut out = String::new();
    draw(
        SVGBackend::with_string(&mut out, CHART_PX).into_drawing_area(),
        title,
        s,
    )?;
    Ok(out)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    s: &RunSummary,
) -> Result<(), ReportError> {
    root.fill(&WHITE).map_err(chart_err)?;
    let (top, bottom) = root.split_vertically(320);
    let t_max = (s.series.len().max(1)) as f64;
    let rate_max = s
        .series
        .iter()
        .map(|x| x.offered.max(x.admitted).max(x.refused).max(x.failed))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut c = ChartBuilder::on(&top)
        .caption(format!("{title}: requests per second"), ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..rate_max)
        .map_err(chart_err)?;
    c.configure_mesh()
        .x_desc("s")
        .y_desc("req/s")
        .draw()
        .map_err(chart_err)?;
    let series: [(&str, RGBColor, CountOf); 4] = [
        ("offered", BLACK, |x| x.offered),
        ("admitted", GREEN, |x| x.admitted),
        ("refused", BLUE, |x| x.refused),
        ("failed+dropped", RED, |x| x.failed),
    ];
    for (name, color, f) in series {
        c.draw_series(LineSeries::new(
            s.series.iter().map(|x| (x.t_s as f64 + 0.5, f(x) as f64)),
            color,
        ))
        .map_err(chart_err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(chart_err)?;
    let lat_max = s.series.iter().map(|x| x.p999_ms).fold(1.0f64, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&bottom)
        .caption("latency from intended send time (ms)", ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..lat_max)
        .map_err(chart_err)?;
    c.configure_mesh()
        .x_desc("s")
        .y_desc("ms")
        .draw()
        .map_err(chart_err)?;
    let lat: [(&str, RGBColor, MsOf); 3] = [
        ("p50", GREEN, |x| x.p50_ms),
        ("p99", BLUE, |x| x.p99_ms),
        ("p99.9", RED, |x| x.p999_ms),
    ];
    for (name, color, f) in lat {
        c.draw_series(LineSeries::new(
            s.series.iter().map(|x| (x.t_s as f64 + 0.5, f(x))),
            color,
        ))
        .map_err(chart_err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(chart_err)?;
    root.present().map_err(chart_err)?;
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
        None => "n/a".to_owned(),
    }
}

/// The human summary.
pub fn summary_md(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("# Kataar load-test report\n\n");
    s.push_str(&format!(
        "- generated: {}\n- command: `{}`\n- machine: {} cores, {} GiB, PostgreSQL {}\n\
         - pinning: {}\n- verdict: **{}** (checked via {})\n\n",
        r.generated_at,
        r.command,
        r.machine.cores,
        r.machine.memory_bytes.map_or(0, |b| b >> 30),
        r.machine.postgres_version.as_deref().unwrap_or("?"),
        if r.pinning.taskset {
            format!(
                "taskset, server on CPU {}, load generator on CPU {}",
                r.pinning.server_cpus.as_deref().unwrap_or("?"),
                r.pinning.loadgen_cpus.as_deref().unwrap_or("?")
            )
        } else {
            "none".to_owned()
        },
        if r.verdict_pass { "PASS" } else { "FAIL" },
        if r.verdict_via.is_empty() {
            "-".to_owned()
        } else {
            r.verdict_via.join(", ")
        },
    ));
    s.push_str("## Ratios\n\n| ratio | value |\n|---|---|\n");
    for (k, v) in &r.ratios {
        s.push_str(&format!("| {k} | {} |\n", fmt_opt(*v)));
    }
    s.push_str("\n## Figures\n\n| figure | value |\n|---|---|\n");
    for (k, v) in &r.figures {
        s.push_str(&format!("| {k} | {} |\n", fmt_opt(*v)));
    }
    s.push_str(
        "\n## Runs\n\n| run | model | load | offered/s | 2xx/s | bookings 201/s | 409 | 429 | \
         503 | failed | dropped | p99 ms | verdict | chart |\n|---|---|---|---|---|---|---|---|\
         ---|---|---|---|---|---|\n",
    );
    for run in &r.runs {
        let o = &run.summary.outcomes;
        let g = |k: crate::stats::Outcome| o.get(&k).copied().unwrap_or(0);
        let p99 = run
            .summary
            .lanes
            .values()
            .flat_map(|m| m.values())
            .map(|l| l.p99_ms)
            .fold(0.0f64, f64::max);
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {} | {} |\n",
            run.name,
            run.model,
            run.load,
            run.summary.offered_per_s,
            run.summary.ok_per_s,
            run.summary.bookings_ok_per_s,
            g(crate::stats::Outcome::Refused409),
            g(crate::stats::Outcome::Throttled429),
            g(crate::stats::Outcome::Overloaded503),
            g(crate::stats::Outcome::Failed),
            run.summary.dropped_by_client,
            p99,
            run.verdict.as_ref().map_or("-".to_owned(), |v| format!(
                "{} ({})",
                if v.pass { "pass" } else { "FAIL" },
                v.via
            )),
            run.chart.as_deref().map_or("-".to_owned(), |c| format!("[svg]({c})")),
        ));
    }
    if !r.pgbench.is_empty() {
        s.push_str("\n## pgbench (naive transaction)\n\n| pools | clients | s | tps |\n|---|---|---|---|\n");
        for p in &r.pgbench {
            s.push_str(&format!(
                "| {} | {} | {} | {:.0} |\n",
                p.npools, p.clients, p.duration_s, p.tps
            ));
        }
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

/// Writes `report.json`, `summary.md`, `report.html` and every run's chart into `dir`.
pub fn write(dir: &Path, r: &mut Report) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir)?;
    for run in &mut r.runs {
        let file = format!("{}.svg", run.name);
        match chart(&dir.join(&file), &run.name, &run.summary) {
            Ok(()) => run.chart = Some(file),
            Err(e) => r.notes.push(format!("chart {} not drawn: {e}", run.name)),
        }
    }
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(r)?)?;
    std::fs::write(dir.join("summary.md"), summary_md(r))?;
    std::fs::write(dir.join("report.html"), crate::html::page(r))?;
    Ok(())
}
