//! `report.html` from a real run: a small launch-day trace replayed against the real `kataar`
//! binary on a fresh database (the same report writer `compare` uses) must give a page with an
//! inline SVG chart for every run and the verdict that `report.json` holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::Command;

mod common;
use common::{kataar_bin, LOADGEN};

#[test]
fn a_small_replay_writes_report_html_with_a_chart_per_run_and_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let out = dir.path().join("report");
    let made = Command::new(LOADGEN)
        .args(["trace", "--peak-rps", "40", "--duration-s", "4", "--out"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let run = Command::new(LOADGEN)
        .args(["replay", "--trace"])
        .arg(&trace)
        .arg("--kataar-bin")
        .arg(kataar_bin())
        .args(["--persons", "40", "--clients", "4", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap_or_else(|e| {
            panic!(
                "no report.json ({e}): {}",
                String::from_utf8_lossy(&run.stderr)
            )
        }))
        .unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert!(!runs.is_empty());
    for r in runs {
        let name = r["name"].as_str().unwrap();
        let at = html
            .find(&format!("<figure data-chart=\"{name}\">"))
            .unwrap_or_else(|| panic!("no chart for run {name}"));
        let figure_end = html[at..].find("</figure>").unwrap();
        let figure = &html[at..at + figure_end];
        assert!(
            figure.contains("<svg") && figure.contains("</svg>"),
            "{name}"
        );
        assert!(figure.contains("requests per second"), "{name}");
    }
    let word = if json["verdict_pass"] == Value::Bool(true) {
        "PASS"
    } else {
        "FAIL"
    };
    assert!(
        html.contains(&format!("data-verdict=\"{word}\"")),
        "report.html does not carry the verdict {word}"
    );
    // The exit code agrees with the verdict; the page needs nothing from the network.
    assert_eq!(run.status.success(), word == "PASS");
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
}
