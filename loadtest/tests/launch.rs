//! A small launch through the waiting room against the real `kataar` binary on a fresh
//! database: every place is booked, nobody books twice, the draw verifies, the aggressive
//! clients' bookings come from the draw like everyone's, and the cost figures are measured.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::Command;

mod common;
use common::{kataar_bin, LOADGEN};

#[test]
fn a_small_launch_books_every_place_through_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("launch");
    let run = Command::new(LOADGEN)
        .arg("launch")
        .arg("--bin")
        .arg(kataar_bin())
        .args([
            "--citizens",
            "40",
            "--places",
            "10",
            "--aggressive-share",
            "0.25",
            "--admit-per-s",
            "20",
            "--opens-in-s",
            "3",
            "--cost-requests",
            "200",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("launch.json")).unwrap()).unwrap();
    assert_eq!(r["bookings"], 10, "{r}");
    assert_eq!(r["verdict"]["pass"], true, "{r}");
    assert_eq!(r["draw_verifies"], true, "{r}");
    assert_eq!(r["polite"]["clients"], 30);
    assert_eq!(r["aggressive"]["clients"], 10);
    let booked =
        r["polite"]["booked"].as_u64().unwrap() + r["aggressive"]["booked"].as_u64().unwrap();
    assert_eq!(booked, 10);
    // Every citizen asked at least for a ticket and heard the outcome.
    assert!(
        r["polite"]["requests_per_client"].as_f64().unwrap() >= 2.0,
        "{r}"
    );
    assert_eq!(r["cost"]["polls_ok"], 200, "{r}");
    assert_eq!(r["cost"]["reads_ok"], 200, "{r}");
    assert!(r["cost"]["poll_cpu_us"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["clean_stop"], true);
}
