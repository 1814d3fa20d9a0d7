//! `calendar-load` (feature `load`): the calendar service under real load.
//!
//! K real `calendar-service` processes on one SQLite file, a real Redis or
//! Memcached (started here, on free loopback ports), a trace from
//! `cache-sim generate` replayed as real HTTP with its time compressed,
//! faults injected into the servers and the services, every feed response
//! judged against the database's history, and the simulator's prediction
//! for the same traffic beside each row. The guide with the measured table
//! is `docs/world.md`.
//!
//! ```sh
//! cargo run --release -p calendar-service --features load --bin calendar-load -- --out load/
//! cargo run -p calendar-service --features load --bin calendar-load -- --smoke   # the test suite's run
//! ```
//!
//! # Layout
//!
//! - [`args`]: the flags, the full run's rows and `--smoke`'s.
//! - [`spec`]: rows (`STRATEGY@CACHE[@FAULT,…]`), caches, faults.
//! - [`workload`]: the trace mapped onto the service (calendars, users,
//!   seeded items, requests) and onto the simulator's events.
//! - [`mapping`]: the value mapping it uses (dates, work types, statuses).
//! - [`procs`]: service processes (free ports, start, kill, restart by pid).
//! - [`servers`]: the cache servers (cache-core's testkit) and the faults
//!   that act on them (signals by pid, `CLIENT KILL`).
//! - [`rig`]: one row's processes together, and the services' counters.
//! - [`driver`]: the replay over HTTP, paced or closed loop.
//! - [`record`]: what the replay records.
//! - [`faults`]: injecting a row's faults on time, and their log (database
//!   faults are posted to every service's `/test/db-fault`).
//! - [`judge`]: the stale-read checker.
//! - [`dbfault`]: fail-safe answers and failed reads in rows with a
//!   database fault, split by each view's history.
//! - [`predict`]: the simulator's prediction.
//! - [`backplane`]: an independent subscriber timing the backplane's notices.
//! - `bench.rs`: the throughput table ("what the cache buys").
//! - `goals.rs`: the issue's goals checked against the figures.
//! - [`report`]: `load.json` and the Markdown table.
//! - `run.rs`: a whole run, row by row.
//! - `score.rs`: a row's figures from its recording (verdicts, errors,
//!   latencies, delivery, the self-check).

use std::sync::Arc;

pub mod args;
pub mod backplane;
mod bench;
pub mod dbfault;
pub mod driver;
pub mod faults;
mod goals;
pub mod judge;
pub mod mapping;
pub mod predict;
pub mod procs;
pub mod record;
pub mod report;
pub mod rig;
mod run;
mod score;
pub mod servers;
pub mod spec;
pub mod workload;

pub use args::Args;
pub use run::run;

/// Where progress lines go (the binary prints them on stderr).
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// Why a run stopped. Every variant names what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A flag's value cannot be used.
    #[error("{0}")]
    Flag(String),
    /// The trace could not be read (the message names file, line, field).
    #[error("trace: {0}")]
    Trace(#[source] sim::Error),
    /// The trace cannot be mapped onto the service.
    #[error("trace line {line}: {message}")]
    Workload {
        /// The trace line (0: not from a line).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A cache server could not be started (the message names the package
    /// to install when the binary is missing).
    #[error("{0}")]
    Harness(#[source] cache_testkit::HarnessError),
    /// A service process failed.
    #[error("service {index}: {message}")]
    Service {
        /// Which process.
        index: usize,
        /// What happened, with its log's last lines.
        message: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
    /// The simulator's prediction failed.
    #[error("prediction: {0}")]
    Sim(#[source] sim::Error),
    /// SIGINT or SIGTERM: every process was stopped.
    #[error("interrupted by {0}; every process started was stopped")]
    Interrupted(&'static str),
}
