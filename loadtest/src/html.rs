//! `report.html`: the whole report as one page that needs no network: the verdict first, the
//! ratios against their goals (`performance.md`, "Goals") with a bar chart of each ratio as a
//! share of its goal, then every run with its chart inline (offered / admitted / refused /
//! failed per second, p50 / p99 / p99.9 latency per second, drawn by plotters as SVG), its
//! outcomes and latency per lane, and the figures, pgbench runs and notes.

use plotters::prelude::*;
use serde::Serialize;

use crate::report::{chart_svg, Report, RunSection};

/// A ratio's goal: at least or at most a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// The ratio should be this or more.
    AtLeast(f64),
    /// The ratio should be this or less.
    AtMost(f64),
}

impl Goal {
    /// Whether `v` meets the goal.
    pub fn met(self, v: f64) -> bool {
        match self {
            Goal::AtLeast(g) => v >= g,
            Goal::AtMost(g) => v <= g,
        }
    }

    /// How far along the goal `v` is (1.0 = exactly met; above 1 is better for both kinds).
    pub fn share(self, v: f64) -> f64 {
        match self {
            Goal::AtLeast(g) if g > 0.0 => v / g,
            Goal::AtMost(g) if v > 0.0 => g / v,
            _ => 1.0,
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!("≥ {}", num(g)),
            Goal::AtMost(g) => format!("≤ {}", num(g)),
        }
    }
}

/// The goal of a ratio `compare` reports, from `performance.md`; `None` for ratios that are
/// context only (yardstick against yardstick).
pub fn goal(ratio: &str) -> Option<Goal> {
    Some(match ratio {
        "engine_vs_baseline_hot" => Goal::AtLeast(20.0),
        "engine_vs_baseline_uniform" => Goal::AtLeast(5.0),
        "engine_vs_pgbench_naive_hot" => Goal::AtLeast(15.0),
        "bookings_per_commit" => Goal::AtLeast(50.0),
        "goodput_10x" => Goal::AtLeast(0.95),
        "goodput_100x" => Goal::AtLeast(0.90),
        "reads_vs_hello" | "reads_vs_hello_wrk" => Goal::AtLeast(0.5),
        "reject_cpu_vs_admit_cpu" => Goal::AtMost(0.5),
        _ => return None,
    })
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), num)
}

fn name_of<T: Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1000px;\
padding:1rem;color:#1b1f24}h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}\
td,th{border:1px solid #ccd;padding:.2rem .5rem;text-align:left}\
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:6px;font-weight:700;color:#fff}\
.pass{background:#146c2e}.fail{background:#b00020}.met{color:#146c2e}.missed{color:#b00020;font-weight:700}\
figure{margin:.5rem 0}figure svg{max-width:100%;height:auto;border:1px solid #ddd}\
.muted{color:#5b6472}";

/// The ratios that have a goal and a value, as a horizontal bar chart of value / goal (1 = met).
fn ratios_svg(r: &Report) -> Option<String> {
    let rows: Vec<(String, f64, bool)> = r
        .ratios
        .iter()
        .filter_map(|(k, v)| {
            let g = goal(k)?;
            let v = (*v)?;
            Some((k.clone(), g.share(v), g.met(v)))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut out = String::new();
    let h = 60 + 34 * rows.len() as u32;
    {
        let root = SVGBackend::with_string(&mut out, (900, h)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let x_max = rows.iter().map(|r| r.1).fold(1.2f64, f64::max) * 1.1;
        let n = rows.len();
        let mut c = ChartBuilder::on(&root)
            .caption(
                "ratio as a share of its goal (1 = goal met)",
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..x_max, 0f64..n as f64)
            .ok()?;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = (*y - 0.5).round();
                if i >= 0.0 && (i as usize) < labels.len() && (*y - 0.5 - i).abs() < 1e-6 {
                    labels[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .draw()
            .ok()?;
        c.draw_series(rows.iter().enumerate().map(|(i, (_, share, met))| {
            let color = if *met { GREEN } else { RED };
            Rectangle::new(
                [(0.0, i as f64 + 0.15), (*share, i as f64 + 0.85)],
                color.mix(0.7).filled(),
            )
        }))
        .ok()?;
        c.draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n as f64)],
            BLACK.stroke_width(2),
        )))
        .ok()?;
        root.present().ok()?;
    }
    Some(out)
}

fn run_html(run: &RunSection) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "<section class=\"run\" id=\"run-{id}\"><h3>{id}</h3><p>{target} · {workload} · {model} \
         model · load {load} · offered {offered}/s · 2xx {ok}/s · bookings 201 {bk}/s{cpu}</p>",
        id = esc(&run.name),
        target = esc(&run.target),
        workload = esc(&run.workload),
        model = esc(&run.model),
        load = num(run.load),
        offered = num(run.summary.offered_per_s),
        ok = num(run.summary.ok_per_s),
        bk = num(run.summary.bookings_ok_per_s),
        cpu = run
            .server_cpu_s
            .map_or(String::new(), |c| format!(" · server CPU {}", num(c))
                + " s"),
    ));
    match &run.verdict {
        Some(v) => s.push_str(&format!(
            "<p>verdict <span class=\"verdict {cls}\" data-run-verdict=\"{word}\">{word}</span> \
             (checked via {via}): O {o} · L {l} · D {d}</p>",
            cls = if v.pass { "pass" } else { "fail" },
            word = if v.pass { "PASS" } else { "FAIL" },
            via = esc(&v.via),
            o = check(&v.o),
            l = check(&v.l),
            d = check(&v.d),
        )),
        None => s.push_str("<p class=\"muted\">no verdict checked for this run</p>"),
    }
    match chart_svg(&run.name, &run.summary) {
        Ok(svg) => s.push_str(&format!(
            "<figure data-chart=\"{}\">{svg}<figcaption>requests per second and latency from the \
             intended send time, per second of the run</figcaption></figure>",
            esc(&run.name)
        )),
        Err(e) => s.push_str(&format!(
            "<p class=\"missed\">chart not drawn: {}</p>",
            esc(&e.to_string())
        )),
    }
    s.push_str("<table><tr><th>outcome</th><th>answers</th></tr>");
    for (k, v) in &run.summary.outcomes {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{v}</td></tr>",
            esc(&name_of(k))
        ));
    }
    s.push_str(&format!(
        "<tr><td>dropped by the client</td><td>{}</td></tr></table>",
        run.summary.dropped_by_client
    ));
    s.push_str(
        "<table><tr><th>lane</th><th>outcome</th><th>count</th><th>p50 ms</th><th>p99 ms</th>\
         <th>p99.9 ms</th><th>max ms</th></tr>",
    );
    for (lane, by) in &run.summary.lanes {
        for (outcome, l) in by {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&name_of(lane)),
                esc(&name_of(outcome)),
                l.count,
                num(l.p50_ms),
                num(l.p99_ms),
                num(l.p999_ms),
                num(l.max_ms)
            ));
        }
    }
    s.push_str("</table></section>");
    s
}

fn check(c: &crate::verdict::Check) -> String {
    format!(
        "<span class=\"{}\">{} ({} violations)</span>",
        if c.pass { "met" } else { "missed" },
        if c.pass { "held" } else { "VIOLATED" },
        c.violations
    )
}

/// The page.
pub fn page(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>Kataar load-test report</title>\
         <style>{STYLE}</style></head><body><h1>Kataar load-test report</h1>"
    ));
    s.push_str(&format!(
        "<p>verdict <span class=\"verdict {cls}\" id=\"verdict\" data-verdict=\"{word}\">{word}</span> \
         — O (no overbooking), L (nothing acknowledged lost), D (no duplicates), checked via {via}</p>",
        cls = if r.verdict_pass { "pass" } else { "fail" },
        word = if r.verdict_pass { "PASS" } else { "FAIL" },
        via = esc(&if r.verdict_via.is_empty() {
            "-".to_owned()
        } else {
            r.verdict_via.join(", ")
        }),
    ));
    s.push_str(&format!(
        "<p class=\"muted\">generated {} · <code>{}</code> · {} cores, {} GiB, PostgreSQL {} · \
         pinning: {}{}</p>",
        esc(&r.generated_at),
        esc(&r.command),
        r.machine.cores,
        r.machine.memory_bytes.map_or(0, |b| b >> 30),
        esc(r.machine.postgres_version.as_deref().unwrap_or("?")),
        if r.pinning.taskset {
            format!(
                "server on CPU {}, load generator on CPU {}",
                esc(r.pinning.server_cpus.as_deref().unwrap_or("?")),
                esc(r.pinning.loadgen_cpus.as_deref().unwrap_or("?"))
            )
        } else {
            "none".to_owned()
        },
        if r.quick { " · quick" } else { "" },
    ));
    s.push_str("<h2>Ratios against their goals</h2>");
    if r.ratios.is_empty() {
        s.push_str("<p class=\"muted\">no ratios in this run</p>");
    } else {
        s.push_str("<table><tr><th>ratio</th><th>value</th><th>goal</th><th></th></tr>");
        for (k, v) in &r.ratios {
            let g = goal(k);
            let state = match (g, v) {
                (Some(g), Some(v)) if g.met(*v) => "<span class=\"met\">met</span>",
                (Some(_), Some(_)) => "<span class=\"missed\">missed</span>",
                (Some(_), None) => "<span class=\"muted\">not measured</span>",
                (None, _) => "<span class=\"muted\">context</span>",
            };
            s.push_str(&format!(
                "<tr data-ratio=\"{k}\"><td>{k}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
                opt(*v),
                g.map_or_else(|| "-".to_owned(), Goal::text),
                k = esc(k),
            ));
        }
        s.push_str("</table>");
        if let Some(svg) = ratios_svg(r) {
            s.push_str(&format!("<figure data-chart=\"ratios\">{svg}</figure>"));
        }
    }
    s.push_str(&format!("<h2>Runs ({})</h2>", r.runs.len()));
    for run in &r.runs {
        s.push_str(&run_html(run));
    }
    if !r.pgbench.is_empty() {
        s.push_str("<h2>pgbench (naive transaction)</h2><table><tr><th>pools</th><th>clients</th><th>s</th><th>tps</th></tr>");
        for p in &r.pgbench {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.npools,
                p.clients,
                p.duration_s,
                num(p.tps)
            ));
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>Figures</h2><table><tr><th>figure</th><th>value</th></tr>");
    for (k, v) in &r.figures {
        s.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", esc(k), opt(*v)));
    }
    s.push_str("</table>");
    if !r.notes.is_empty() {
        s.push_str("<h2>Notes</h2><ul>");
        for n in &r.notes {
            s.push_str(&format!("<li>{}</li>", esc(n)));
        }
        s.push_str("</ul>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_are_met_in_their_direction() {
        assert!(Goal::AtLeast(20.0).met(20.0));
        assert!(!Goal::AtLeast(20.0).met(19.9));
        assert!(Goal::AtMost(0.5).met(0.4));
        assert!(!Goal::AtMost(0.5).met(0.6));
        assert!((Goal::AtMost(0.5).share(0.25) - 2.0).abs() < 1e-9);
        assert_eq!(goal("engine_vs_baseline_hot"), Some(Goal::AtLeast(20.0)));
        assert_eq!(goal("baseline_vs_pgbench_naive_hot"), None);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
