//! `kataar-loadgen`: the load-test kit for Kataar.
//!
//! # Layout
//!
//! - [`verhoeff`]: valid Aadhaar-shaped numbers for registering beneficiaries.
//! - [`pg`]: fresh PostgreSQL databases and the schema shared by the yardsticks.
//! - [`baseline`]: the naive one-transaction-per-booking server and the hello-world server.
//! - [`pgbench`]: PostgreSQL's own ceiling for the naive transaction.
//! - [`stats`]: HDR histograms per lane and outcome, per-second series.
//! - [`sched`]: the open-model scheduler (no coordinated omission), closed-loop runner, shapes.
//! - [`exec`]: HTTP clients on many loopback source addresses; hello and baseline executors.
//! - [`lean`]: the lean hyper HTTP/1.1 client of the ceiling runs (reqwest costs too much CPU).
//! - [`wrk`]: `wrk` (C, Lua-scripted) as an independent generator for the raw ceilings.
//! - [`trace`]: the launch-day trace (28 April 2021 shape): generator, file format, reader.
//! - [`kataar`]: driving the real engine: processes, setup through the v1 API, executors.
//! - [`launch`]: the launch through the waiting room (polite and aggressive pollers).
//! - [`verdict`]: O, L, D after every run, in the database or through the operators' API.
//! - [`procs`]: child processes (listen line, CPU time from `/proc`, SIGTERM, taskset).
//! - [`report`]: `report.json`, `summary.md`, SVG charts.
//! - [`html`]: `report.html`, the report as one self-contained page (inline SVG charts).
//! - [`compare`]: the side-by-side run that writes the report.
//!
//! The kit owns only load generation and measurement. It must never talk to anything but
//! loopback, never print secrets (OTPs, tokens, operator keys, ID numbers), and never hide a
//! request it failed to send: every drop is counted and reported.

pub mod baseline;
pub mod compare;
pub mod drill;
pub mod exec;
pub mod html;
pub mod kataar;
pub mod launch;
pub mod lean;
pub mod pg;
pub mod pgbench;
pub mod procs;
pub mod report;
pub mod sched;
pub mod stats;
pub mod trace;
pub mod verdict;
pub mod verhoeff;
pub mod wrk;
