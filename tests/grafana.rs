//! The Grafana dashboard (`ops/grafana/kataar.json`) names only metrics the server exports:
//! every metric name in its PromQL (panels and template variables) must appear on a running
//! `kataar`'s `/metrics` after some ordinary traffic (reads, a login, a booking, an operator
//! read), and the Prometheus scrape config must point at `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use support::{book, bookable, call, citizen, Server};

/// Every `kataar_…` metric name in a PromQL expression.
fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("kataar_") {
        let start = i + at;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
}

/// Every PromQL string of the dashboard: panel targets' `expr` and query variables' queries.
fn expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => expressions(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| expressions(x, out)),
        _ => {}
    }
}

/// The sample names on a `/metrics` page.
fn exported(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_extractor_finds_names_and_ignores_lookalikes() {
    let mut names = BTreeSet::new();
    metric_names(
        "sum by (le) (rate(kataar_a_bucket{x=\"kataar_label_value\"}[1m])) / notkataar_b + kataar_c",
        &mut names,
    );
    // A label value that looks like a name is still taken as one: the check stays strict.
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["kataar_a_bucket", "kataar_c", "kataar_label_value"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_names_is_exported() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ops/grafana/kataar.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    let mut names = BTreeSet::new();
    for e in &exprs {
        metric_names(e, &mut names);
    }
    assert!(names.len() >= 15, "too few metric names found: {names:?}");
    let scrape =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/prometheus.yml"))
            .unwrap();
    assert!(scrape.contains("metrics_path: /metrics"), "{scrape}");

    let srv = Server::postgres().await;
    let http = reqwest::Client::new();
    // Traffic that makes the lazily created series appear: a read, a login, a booking, and an
    // operator read.
    let (_, session, slot) = bookable(&srv, &http, 312).await;
    let (token, beneficiary) = citizen(&srv, &http, "9811100001", 1001).await;
    book(&srv, &http, &token, beneficiary, session, slot).await;
    let admin = srv.create_key(&["--role", "admin"]);
    let (s, v) = call(
        &http,
        reqwest::Method::GET,
        format!("{}/v1/admin/capacity?district_id=312", srv.base),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Gauges refreshed by the server's own ticker (available places) may need a moment.
    let mut missing = Vec::new();
    for _ in 0..100 {
        let page = reqwest::get(format!("{}/metrics", srv.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let have = exported(&page);
        missing = names
            .iter()
            .filter(|n| !have.contains(*n))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    srv.finish().await;
    assert!(
        missing.is_empty(),
        "the dashboard names metrics /metrics does not export: {missing:?}"
    );
}
