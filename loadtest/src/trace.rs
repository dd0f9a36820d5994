//! The launch-day trace: shaped like the national portal's opening of 28 April 2021 (a ramp to
//! the peak within the first minute, then a long decay), with the field's request mix (about 48
//! requests per registration, browse-heavy). Written as JSON lines so a run can be replayed.
//!
//! # File format (`kataar-trace/1`)
//!
//! Line 1, a header: `{"format":"kataar-trace/1","peak_rps":…,"duration_s":…,"ramp_s":…,
//! "tau_s":…,"floor_ratio":…,"clients":…,"seed":…,"requests_per_registration":48}`.
//! Every other line, one request, ordered by time:
//! `{"t_ms":12.345,"kind":"availability","client":42}` where `t_ms` is the intended send time in
//! milliseconds after the start (fractional, µs resolution), `kind` one of `availability`, `otp`,
//! `verify`, `beneficiary`, `booking`, `operator`, `hello`, and `client` the simulated client
//! (mapped by the replayer to a source address and an account). Lines that do not parse are
//! counted and skipped by the reader.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sched::{Kind, Planned, Shape, ShapePlan};

/// Requests per registration seen in the field.
pub const REQUESTS_PER_REGISTRATION: u32 = 48;

/// The launch-day mix per registration: 40 availability polls, 2 OTP sends (one resend), 2
/// verifies, 1 beneficiary, 3 booking attempts (retries included) = 48; plus a trickle of
/// operators (not part of the 48).
pub const TRACE_MIX: [(Kind, f64); 6] = [
    (Kind::Availability, 40.0),
    (Kind::Otp, 2.0),
    (Kind::Verify, 2.0),
    (Kind::Beneficiary, 1.0),
    (Kind::Booking, 3.0),
    (Kind::Operator, 0.05),
];

/// Default ramp (s): the peak is reached within the first minute.
pub const RAMP_S_DEFAULT: f64 = 45.0;
/// Simulated clients in a trace (distinct people at their browsers).
pub const CLIENTS_DEFAULT: u32 = 100_000;
/// The rate decays to this fraction of the peak and stays there.
pub const FLOOR_RATIO_DEFAULT: f64 = 0.1;

/// The trace file's header line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceHeader {
    /// `kataar-trace/1`.
    pub format: String,
    /// Peak offered rate.
    pub peak_rps: f64,
    /// Length.
    pub duration_s: f64,
    /// Ramp length.
    pub ramp_s: f64,
    /// Decay time constant.
    pub tau_s: f64,
    /// Floor as a fraction of the peak.
    pub floor_ratio: f64,
    /// Simulated clients.
    pub clients: u32,
    /// RNG seed.
    pub seed: u64,
    /// Requests per registration in the mix.
    pub requests_per_registration: u32,
}

impl TraceHeader {
    /// The launch-day header for `peak_rps` over `duration_s` (ramp within the first minute and
    /// at most a quarter of the run; decay constant a third of the run).
    pub fn launch_day(peak_rps: f64, duration_s: f64, seed: u64) -> Self {
        Self {
            format: "kataar-trace/1".to_owned(),
            peak_rps,
            duration_s,
            ramp_s: RAMP_S_DEFAULT.min(duration_s / 4.0),
            tau_s: (duration_s / 3.0).max(1.0),
            floor_ratio: FLOOR_RATIO_DEFAULT,
            clients: CLIENTS_DEFAULT,
            seed,
            requests_per_registration: REQUESTS_PER_REGISTRATION,
        }
    }

    /// The schedule this header describes.
    pub fn plan(&self) -> ShapePlan {
        ShapePlan::new(
            Shape::LaunchDay {
                peak: self.peak_rps,
                ramp_s: self.ramp_s,
                tau_s: self.tau_s,
                floor_ratio: self.floor_ratio,
            },
            self.duration_s,
            TRACE_MIX.to_vec(),
            self.clients,
            self.seed,
        )
    }
}

/// One trace line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceLine {
    /// Intended send time (ms after start, fractional).
    pub t_ms: f64,
    /// Request kind.
    pub kind: Kind,
    /// Simulated client.
    pub client: u32,
}

/// Writes the trace for `header` to `out`; returns the number of requests written.
pub fn write_trace(header: &TraceHeader, out: &Path) -> std::io::Result<u64> {
    let mut w = BufWriter::new(File::create(out)?);
    serde_json::to_writer(&mut w, header)?;
    w.write_all(b"\n")?;
    let mut n = 0u64;
    for p in header.plan() {
        let line = TraceLine {
            t_ms: p.t_us as f64 / 1000.0,
            kind: p.kind,
            client: p.client,
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}

/// Reads a trace file lazily as a schedule (header first, then requests).
pub struct TraceReader {
    lines: std::io::Lines<BufReader<File>>,
    /// The header, if the first line was one.
    pub header: Option<TraceHeader>,
    /// Lines that did not parse.
    pub skipped: u64,
}

impl TraceReader {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut lines = BufReader::new(File::open(path)?).lines();
        let header = match lines.next() {
            Some(Ok(l)) => serde_json::from_str::<TraceHeader>(&l).ok(),
            _ => None,
        };
        Ok(Self {
            lines,
            header,
            skipped: 0,
        })
    }
}

impl Iterator for TraceReader {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        loop {
            let line = self.lines.next()?.ok()?;
            match serde_json::from_str::<TraceLine>(&line) {
                Ok(t) => {
                    return Some(Planned {
                        t_us: (t.t_ms.max(0.0) * 1000.0).round() as u64,
                        kind: t.kind,
                        client: t.client,
                    })
                }
                Err(_) => self.skipped += 1,
            }
        }
    }
}
