//! `calendar-load`'s flags, and the two presets (the full run and
//! `--smoke`).

use std::path::PathBuf;

use super::spec::{FailSafeSettings, RowSpec};

/// Rows of the full run: every strategy the goals name, on every store,
/// without faults and under each fault.
pub const FULL_ROWS: &[&str] = &[
    "stamped@redis",
    "versioned@redis",
    "fixed-month@redis",
    "stamped@memcache",
    "versioned@memcache",
    "stamped@two-tier/backplane:locmem:64+redis",
    "stamped@two-tier/tracking:locmem:64+redis",
    "stamped@locmem",
    "stamped@redis@kill",
    "versioned@redis@kill",
    "stamped@memcache@kill",
    "versioned@memcache@kill",
    "stamped@redis@stop=2s",
    "versioned@redis@stop=2s",
    "stamped@memcache@stop=2s",
    "versioned@memcache@stop=2s",
    "stamped@two-tier/backplane:locmem:64+redis@pubsub-kill",
    "stamped@two-tier/tracking:locmem:64+redis@kill",
    "stamped@redis@service-restart",
    "stamped@redis@maxmemory=2mb",
    "versioned@redis@maxmemory=2mb",
    "stamped@redis@db-outage",
    "stamped@redis@db-outage,fail-safe=off",
];

/// Rows of `--smoke`: the acceptance test's run.
pub const SMOKE_ROWS: &[&str] = &["stamped@redis@kill", "fixed-month@redis"];

/// Caches of the throughput table ("what the cache buys"), all `stamped`.
pub const THROUGHPUT_CACHES: &[&str] = &["none", "locmem", "redis", "two-tier/backplane:locmem:64+redis"];

/// Generated trace of the full run (when no `--trace` is given): the
/// `realistic` model (300 users, 20 team calendars, 40 items each: 12,800
/// items), one day of 400,000 user actions, of which the first hour is
/// replayed.
pub const FULL_ACTIONS: u64 = 400_000;
/// `--smoke`'s generated trace: the same model, sparser.
pub const SMOKE_ACTIONS: u64 = 200_000;

fn parse_row(s: &str) -> Result<RowSpec, String> {
    RowSpec::parse(s)
}

fn milliseconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=10_000.0).contains(&v) => Ok(v),
        _ => Err(format!("expected milliseconds in 0..=10000, found {s:?}")),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.001..=1_000_000.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number in 0.001..=1000000, found {s:?}")),
    }
}

/// `calendar-load`: see the crate docs' `load` module and `docs/world.md`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "calendar-load",
    about = "Runs calendar-service processes under a trace's traffic with real Redis/Memcached and faults, \
             judges every feed response against the database's history, and puts the simulator's prediction \
             beside each row",
    after_help = "Rows are STRATEGY@CACHE[@FAULT,…]. CACHE is a calendar-service --cache URL in which `redis` and \
                  `memcache` stand for servers the tool starts: locmem, locmem:<MiB>, redis, memcache, none, \
                  two-tier:locmem+memcache, two-tier/backplane:locmem:64+redis, \
                  two-tier/tracking:locmem:64+redis. FAULT is kill (kill -9 of the \
                  cache server and a restart on the same port, empty), stop[=2s] (SIGSTOP, then SIGCONT), \
                  pubsub-kill (CLIENT KILL TYPE pubsub; two-tier/backplane only), service-restart (kill -9 of \
                  service 0 and a restart), maxmemory[=2mb] (Redis with that maxmemory and allkeys-lru), \
                  db-outage[=10s] (the services' feed query fails), db-slow=<latency ms>[/10s] (it takes that \
                  much longer), each optionally :<seconds after the row's start> (default: half-way). Rows with a \
                  database fault run their services with --test-db-faults and the fail-safe flags below; any row \
                  may set its own: fail-safe=off|<s>, soft-timeout=off|<ms>, hard-timeout=off|<ms> in the same \
                  list. Example: --row stamped@redis@kill:10 --row fixed-month@redis \
                  --row stamped@redis@db-outage=5s,fail-safe=off"
)]
pub struct Args {
    /// A trace written by `cache-sim generate` (JSON Lines). Without it, the
    /// realistic model is generated with --seed and --processes (1 day; see
    /// docs/world.md). With --out, the replayed traffic as the simulator saw
    /// it goes to DIR/world-trace.jsonl.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Seed of the generated trace and of the items added to reach --min-items.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Trace seconds replayed per row, from the trace's start (default: 3600;
    /// --smoke: 1500), 1..=31536000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub window_s: Option<u64>,
    /// Time compression: trace seconds per real second (0.001..=1000000). TTLs
    /// are divided by it too (the services get --cache-ttl-ms and
    /// --short-ttl-ms).
    #[arg(long, default_value_t = 120.0, value_parser = positive)]
    pub speed: f64,
    /// Service processes (1..=16); a --trace must declare as many.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub processes: u32,
    /// A row, `STRATEGY@CACHE[@FAULT,…]` (repeatable; default: the full run's
    /// 21 rows, or --smoke's 2). See below.
    #[arg(long = "row", value_name = "ROW", value_parser = parse_row)]
    pub rows: Vec<RowSpec>,
    /// The acceptance run: 3 processes, ~25 s of traffic over two rows
    /// (stamped@redis@kill, fixed-month@redis), no throughput table.
    #[arg(long)]
    pub smoke: bool,
    /// Write load.json, load.md and world-trace.jsonl into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The calendar-service binary (default: next to this one).
    #[arg(long, value_name = "PATH")]
    pub service_bin: Option<PathBuf>,
    /// Client timeout per request, ms (100..=600000).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub timeout_ms: u64,
    /// Seed at least this many items (0..=5000000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=5_000_000))]
    pub min_items: u64,
    /// The throughput table's client concurrency (closed loop), 1..=1024.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// The throughput table replays the window's requests once per cache and
    /// round; this caps how long one such replay may take, s (0 skips the
    /// table; 0..=3600).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub throughput_s: Option<u64>,
    /// Rounds of the throughput table (each runs every cache once, in
    /// alternating order), 1..=10.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=10))]
    pub rounds: u64,
    /// The modelled backplane delivery in the prediction, real ms (multiplied
    /// by --speed into trace time), 0..=10000.
    #[arg(long, default_value_t = 1.0, value_parser = milliseconds)]
    pub backplane_ms: f64,
    /// Fail-safe max age of rows with a database fault, real seconds (the
    /// services' --fail-safe-s; the prediction gets it times --speed):
    /// longer than a row, so that every view answered earlier in the row
    /// can be answered by fail-safe. 0 turns it off; a row's
    /// `fail-safe=off|<s>` wins. 0..=86400.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub fail_safe_s: u64,
    /// Soft timeout of the feed query in rows with a database fault, real
    /// ms (needs fail-safe). 0: none (the default: on this shared machine a
    /// query under load can take a few hundred ms without any fault, and a
    /// soft timeout would answer those by fail-safe too). A row's
    /// `soft-timeout=off|<ms>` wins. 0..=600000.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub soft_timeout_ms: u64,
    /// Hard timeout of the feed query in rows with a database fault, real
    /// ms: past it the request gets fail-safe or 504. Below the client's
    /// --timeout-ms, so that a 504 is seen rather than a client timeout.
    /// 0: none. A row's `hard-timeout=off|<ms>` wins. 0..=600000.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub hard_timeout_ms: u64,
    /// No prediction (the simulator's columns stay empty).
    #[arg(long)]
    pub no_predict: bool,
    /// Only the throughput table: no judged rows.
    #[arg(long, conflicts_with_all = ["rows", "smoke"])]
    pub throughput_only: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// The rows to run: `--row`s, else the preset's.
    pub fn rows(&self) -> Vec<RowSpec> {
        if self.throughput_only {
            return Vec::new();
        }
        if !self.rows.is_empty() {
            return self.rows.clone();
        }
        let preset = if self.smoke { SMOKE_ROWS } else { FULL_ROWS };
        preset.iter().filter_map(|r| RowSpec::parse(r).ok()).collect()
    }

    /// The trace window, seconds.
    pub fn window_s(&self) -> u64 {
        self.window_s.unwrap_or(if self.smoke { 1_500 } else { 3_600 })
    }

    /// The fail-safe flags as the defaults of rows with a database fault.
    pub fn fail_safe_defaults(&self) -> FailSafeSettings {
        let some = |v: u64| (v > 0).then_some(v);
        FailSafeSettings {
            fail_safe_s: some(self.fail_safe_s),
            soft_timeout_ms: some(self.soft_timeout_ms),
            hard_timeout_ms: some(self.hard_timeout_ms),
        }
    }

    /// Seconds per cache and round of the throughput table.
    pub fn throughput_s(&self) -> u64 {
        self.throughput_s.unwrap_or(if self.smoke { 0 } else { 60 })
    }
}
