//! `wrk` as an independent generator for the raw ceilings (hello-world and availability reads):
//! a C client with an event loop per thread costs far less CPU per request than any Rust client
//! the kit builds, so on a 2-core box it shows how much of a figure is the client's own limit.
//! `wrk` cannot bind source addresses (all its connections come from 127.0.0.1) and runs a closed
//! loop, so its figures are throughput only and are reported beside the kit's, never instead.

use std::path::Path;
use std::process::Stdio;

/// `wrk` threads (one per core of the box is the usual choice; the kit pins it to one CPU).
pub const WRK_THREADS_DEFAULT: u32 = 2;
/// `wrk` connections.
pub const WRK_CONNECTIONS_DEFAULT: u32 = 64;

/// Errors running `wrk`.
#[derive(Debug, thiserror::Error)]
pub enum WrkError {
    /// Spawn or IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// `wrk` printed no summary.
    #[error("wrk printed no summary (exit {0})")]
    NoSummary(i32),
}

/// What one `wrk` run measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WrkRun {
    /// Requests completed.
    pub requests: u64,
    /// Length of the run.
    pub duration_s: f64,
    /// `Requests/sec` as `wrk` printed it.
    pub rps: f64,
    /// Answers with a status outside 2xx/3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors together.
    pub socket_errors: u64,
}

impl WrkRun {
    /// Answered 2xx/3xx per second.
    pub fn ok_per_s(&self) -> f64 {
        self.requests.saturating_sub(self.non_2xx) as f64 / self.duration_s.max(1e-9)
    }
}

/// Whether `wrk` can be run here.
pub fn available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn duration_s(text: &str) -> Option<f64> {
    let (num, mult) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// Parses `wrk`'s summary.
pub fn parse(text: &str) -> Option<WrkRun> {
    let mut requests = None;
    let mut dur = None;
    let mut rps = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            requests = n.trim().parse::<u64>().ok();
            dur = rest.split(',').next().and_then(|d| duration_s(d.trim()));
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            socket_errors = v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    Some(WrkRun {
        requests: requests?,
        duration_s: dur?,
        rps: rps?,
        non_2xx,
        socket_errors,
    })
}

/// Runs `wrk -t threads -c connections -d secs url` (under `taskset -c cpus` if given).
pub async fn run(
    url: &str,
    threads: u32,
    connections: u32,
    duration_s: u64,
    cpus: Option<&str>,
) -> Result<WrkRun, WrkError> {
    let args = vec![
        "-t".to_owned(),
        threads.max(1).to_string(),
        "-c".to_owned(),
        connections.max(threads.max(1)).to_string(),
        "-d".to_owned(),
        format!("{}s", duration_s.max(1)),
        url.to_owned(),
    ];
    let mut cmd = crate::procs::command(Path::new("wrk"), &args, cpus);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await?;
    parse(&String::from_utf8_lossy(&out.stdout))
        .ok_or(WrkError::NoSummary(out.status.code().unwrap_or(-1)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_summary() {
        let text = "Running 5s test @ http://127.0.0.1:4000/\n  2 threads and 64 connections\n\
            \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
            \x20   Latency     1.02ms  300.00us   9.00ms   80.00%\n\
            \x20 350123 requests in 5.00s, 30.05MB read\n\
            \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
            \x20 Non-2xx or 3xx responses: 23\n\
            Requests/sec:  70012.34\nTransfer/sec:      6.01MB\n";
        let r = parse(text).unwrap();
        assert_eq!(r.requests, 350_123);
        assert_eq!(r.duration_s, 5.0);
        assert_eq!(r.rps, 70_012.34);
        assert_eq!(r.non_2xx, 23);
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.ok_per_s(), 350_100.0 / 5.0);
        assert!(parse("no summary").is_none());
        assert_eq!(duration_s("1.00m"), Some(60.0));
        assert_eq!(duration_s("500.00ms"), Some(0.5));
    }
}
