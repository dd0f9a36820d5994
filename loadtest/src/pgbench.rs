//! PostgreSQL's own ceiling for the naive transaction: the baseline's two statements as a pgbench
//! script, run straight into a fresh database, tps parsed from pgbench's output.

use std::path::Path;

use serde::Serialize;
use tokio::process::Command;

/// Client counts tried for the HOT ceiling (best one wins).
pub const HOT_CLIENTS: [u32; 3] = [1, 8, 64];
/// Client count for the UNIFORM ceiling.
pub const UNIFORM_CLIENTS: u32 = 8;
/// pgbench worker threads (at most the client count).
pub const PGBENCH_THREADS_MAX: u32 = 2;

/// Errors running pgbench.
#[derive(Debug, thiserror::Error)]
pub enum PgbenchError {
    /// Spawning or writing the script failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// pgbench exited non-zero.
    #[error("pgbench failed: {0}")]
    Failed(String),
    /// No `tps = ` line in its output.
    #[error("no tps in pgbench output")]
    NoTps,
}

/// The naive transaction as a pgbench script (`-D npools=N` picks the pool range).
pub fn naive_script() -> String {
    "\\set pool random(1, :npools)\n\
     BEGIN;\n\
     UPDATE pools SET booked = booked + 1 WHERE pool_id = :pool AND booked < capacity;\n\
     INSERT INTO bookings (person_key, dose, status, pool_id, account_id) \
     VALUES (decode(md5(random()::text || clock_timestamp()::text), 'hex'), 1, 'booked', :pool, 0);\n\
     END;\n"
        .to_owned()
}

/// The tps figure from pgbench's output (`tps = 1234.56 (without initial connection time)`).
pub fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .filter(|l| l.trim_start().starts_with("tps = "))
        .filter_map(|l| l.trim_start()["tps = ".len()..].split_whitespace().next())
        .filter_map(|v| v.parse::<f64>().ok())
        .next_back()
}

/// One pgbench measurement.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchRun {
    /// Pools the script picks from.
    pub npools: u64,
    /// `-c`.
    pub clients: u32,
    /// `-T`.
    pub duration_s: u64,
    /// Transactions per second.
    pub tps: f64,
}

/// Runs `pgbench -n -f script -D npools=N -c C -j J -T secs URL`, optionally under `taskset -c CPUS`.
pub async fn run(
    database_url: &str,
    script_path: &Path,
    npools: u64,
    clients: u32,
    duration_s: u64,
    taskset_cpus: Option<&str>,
) -> Result<PgbenchRun, PgbenchError> {
    let threads = clients.clamp(1, PGBENCH_THREADS_MAX);
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-f".into(),
        script_path.display().to_string(),
        "-D".into(),
        format!("npools={npools}"),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        threads.to_string(),
        "-T".into(),
        duration_s.to_string(),
        database_url.into(),
    ];
    let mut cmd = match taskset_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            args.splice(
                0..0,
                ["-c".to_owned(), cpus.to_owned(), "pgbench".to_owned()],
            );
            c.args(&args);
            c
        }
        None => {
            let mut c = Command::new("pgbench");
            c.args(&args);
            c
        }
    };
    let out = cmd.output().await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(PgbenchError::Failed(
            stderr.lines().take(5).collect::<Vec<_>>().join(" | "),
        ));
    }
    let tps = parse_tps(&stdout).ok_or(PgbenchError::NoTps)?;
    Ok(PgbenchRun {
        npools,
        clients,
        duration_s,
        tps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tps_line() {
        let out = "latency average = 1.2 ms\ninitial connection time = 3.1 ms\n\
                   tps = 1450.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(1450.123456));
        assert_eq!(parse_tps("nothing"), None);
    }

    #[test]
    fn script_has_both_statements() {
        let s = naive_script();
        assert!(s.contains("\\set pool random(1, :npools)"));
        assert!(s.contains("UPDATE pools SET booked = booked + 1"));
        assert!(s.contains("INSERT INTO bookings"));
    }
}
