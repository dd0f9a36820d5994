//! Child processes the kit starts: the engine, the baseline, the hello-world server. Reads the
//! one "… listening on http://ADDR" line, measures CPU time from `/proc/PID/stat`, stops with
//! SIGTERM, and pins with `taskset` when it is available.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a child has to print its listen line.
pub const LISTEN_LINE_TIMEOUT_S: u64 = 60;
/// How long a child has to exit after SIGTERM before it is killed.
pub const STOP_GRACE_S: u64 = 25;

/// Errors around child processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// Spawn or IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The child exited or went quiet without its listen line.
    #[error("{0} did not print its listen line")]
    NoListenLine(String),
}

/// Whether `taskset` can be run here.
pub fn taskset_available() -> bool {
    std::process::Command::new("taskset")
        .args(["-c", "0", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command for `program args`, under `taskset -c cpus` if given.
pub fn command(program: &Path, args: &[String], taskset_cpus: Option<&str>) -> Command {
    match taskset_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program).args(args);
            c
        }
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

/// A started server.
pub struct Server {
    /// What it is (for messages).
    pub name: String,
    /// The child.
    pub child: Child,
    /// Its pid (for CPU time and SIGTERM).
    pub pid: u32,
    /// `http://ADDR`.
    pub base: String,
}

/// Spawns `cmd` (stderr to `stderr_log`, if given) and waits for the stdout line that contains
/// `marker` followed by `http://ADDR`.
pub async fn start(
    name: &str,
    mut cmd: Command,
    marker: &str,
    stderr_log: Option<&Path>,
) -> Result<Server, ProcError> {
    cmd.stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match stderr_log {
        Some(p) => {
            cmd.stderr(std::fs::File::create(p)?);
        }
        None => {
            cmd.stderr(Stdio::null());
        }
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ProcError::NoListenLine(name.to_owned()))?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(LISTEN_LINE_TIMEOUT_S), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split(marker).nth(1) {
                if let Some(url) = rest.split_whitespace().find(|w| w.starts_with("http://")) {
                    return Some(url.trim_end_matches('/').to_owned());
                }
            }
        }
        None
    })
    .await;
    let Ok(Some(base)) = found else {
        let _ = child.start_kill();
        return Err(ProcError::NoListenLine(name.to_owned()));
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server {
        name: name.to_owned(),
        child,
        pid,
        base,
    })
}

impl Server {
    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_s(&self) -> Option<f64> {
        cpu_s(self.pid)
    }

    /// SIGTERM, wait up to [`STOP_GRACE_S`], then kill. Returns whether it exited cleanly.
    pub async fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(STOP_GRACE_S), self.child.wait()).await {
            Ok(Ok(st)) => st.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        }
    }
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, 100 if unknown).
pub fn clock_ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0)
}

/// CPU seconds (utime + stime) of `pid` from `/proc/PID/stat`.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks_per_s())
}
