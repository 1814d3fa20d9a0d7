//! `cache-sim`'s command line: the commands, the options every run takes
//! ([`Common`]) and their valid ranges, and the run configuration they make.

use clap::{Args, Parser, Subcommand, ValueEnum};
use sim::backends::BackendSpec;
use sim::engine::Latencies;
use sim::runner::RunConfig;
use sim::trace::MAX_PROCESSES;
use sim::traffic::{MAX_ACTIONS, MAX_DAYS, MAX_USERS};
use sim::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

// The valid range of every numeric option, checked by clap before anything
// runs (the error names the option; exit status 2). Each bound keeps the
// run's memory and arithmetic bounded: durations stay far below i64 µs,
// sizes far below what a 4 GB address space holds.

/// `--ttl`, `--short-ttl`: 1 s to 365 days.
const MAX_TTL_S: u64 = 365 * 86_400;
/// `--cache-latency-us`, `--db-latency-us`: at most 60 s.
const MAX_LATENCY_US: u64 = 60_000_000;
/// `--invalidate-delay-us`: at most 1 hour.
const MAX_INVALIDATE_DELAY_US: u64 = 3_600_000_000;
/// `--item-bytes`: at most 16 KiB per feed item.
const MAX_ITEM_BYTES: u64 = 16_384;
/// `--bucket-s`: 1 s to 365 days.
const MAX_BUCKET_S: u64 = 365 * 86_400;
/// `--threads`: 1 to 64.
const MAX_THREADS: u64 = 64;
/// `--backend locmem:N`: 1 MiB to 1 TiB per store.
const MAX_LOCMEM_MIB: u64 = 1 << 20;

/// A fraction in 0..=1 (`--max-error-rate`).
fn fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a fraction in 0..=1 (0.01 is 1%), found {s:?}")),
    }
}

/// Checks a `--backend` value's `locmem:N[,N…]` sizes; other specs are
/// checked when the backend is connected.
fn backend_arg(s: &str) -> std::result::Result<String, String> {
    if let Some(list) = s.strip_prefix("locmem:") {
        for n in list.split(',') {
            match n.trim().parse::<u64>() {
                Ok(mib) if (1..=MAX_LOCMEM_MIB).contains(&mib) => {}
                _ => return Err(format!("locmem:N takes N in 1..={MAX_LOCMEM_MIB} (MiB), found {n:?}")),
            }
        }
    }
    Ok(s.to_owned())
}

/// `--disconnect SECONDS:PROCESS`.
fn disconnect(s: &str) -> std::result::Result<sim::config::TierFault, String> {
    sim::config::TierFault::parse(s, sim::config::TierFaultKind::Disconnect)
}

/// `--lose-notice SECONDS:PROCESS`.
fn lose_notice(s: &str) -> std::result::Result<sim::config::TierFault, String> {
    sim::config::TierFault::parse(s, sim::config::TierFaultKind::LoseNotice)
}

/// `locmem:16,64,256` (a memory sweep) as one spec per size; anything else
/// as itself.
fn expand_backend(s: &str) -> Vec<String> {
    match s.strip_prefix("locmem:") {
        Some(list) if list.contains(',') => list.split(',').map(|n| format!("locmem:{}", n.trim())).collect(),
        _ => vec![s.to_owned()],
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "cache-sim",
    version,
    about = "Replay calendar-feed traffic against cache backends × invalidation strategies and report stale reads, hit rate and cost"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run a named scenario (default: seed-october-2025).
    Run {
        /// Scenario name (`cache-sim scenarios` lists them).
        #[arg(long, default_value = "seed-october-2025")]
        scenario: String,
        #[command(flatten)]
        common: Common,
    },
    /// Write a scenario's events (e.g. generated `realistic` traffic) as a trace.
    Generate {
        /// Scenario name.
        #[arg(long, default_value = "realistic")]
        scenario: String,
        /// Seed of the generated traffic.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Trace file to write (JSON Lines).
        #[arg(long)]
        out: PathBuf,
        /// `realistic` only: user actions over the run (1..=100000000).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_ACTIONS))]
        actions: Option<u64>,
        /// `realistic` only: users (1..=100000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_USERS)))]
        users: Option<u32>,
        /// `realistic` only: simulated days (1..=3650).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
        days: Option<u32>,
        /// `realistic` only: app processes (1..=1024).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PROCESSES)))]
        processes: Option<u32>,
        /// `realistic` only: users' time zones and shares, e.g.
        /// `local:America/New_York=60,offset:+08:00=30,utc=5,named:Europe/Berlin=5`
        /// (default: `sim::traffic::default_zone_mix`).
        #[arg(long)]
        zone_mix: Option<String>,
    },
    /// Replay a trace file (or an access log with --format access-log).
    Replay {
        /// The trace or log file.
        file: PathBuf,
        /// Input format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Access logs: a TOML file mapping method + path patterns to item
        /// creates, edits and deletes (default: common REST shapes, see
        /// TRACE_FORMAT.md).
        #[arg(long, value_name = "FILE")]
        routes: Option<PathBuf>,
        /// Access logs: where a request's scope comes from: `user` (the
        /// logged user; a `-` user falls back to the client address), `ip`,
        /// or `query:NAME` (a query parameter).
        #[arg(long, default_value = "user", value_name = "user|ip|query:NAME")]
        scope_from: String,
        /// Access logs: stop at the first line that cannot be used, instead
        /// of skipping it and counting it in the report.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List the scenarios and what each shows.
    Scenarios,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Format {
    /// A cache-sim JSON Lines trace (TRACE_FORMAT.md).
    Jsonl,
    /// A Common/Combined Log Format access log of feed requests.
    AccessLog,
}

/// `on` or `off`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct Common {
    /// Backend: `locmem`, `locmem:N` (N MiB per process, 1..=1048576; `locmem:16,64,256` sweeps sizes), `shared-locmem[:N]` (one in-process store shared by every process, standing in for a server), `redis://[user:password@]host:port`, `redis+cluster://host:port[,host:port…]`, `memcache://host:port[,host:port…]`, `two-tier[/backplane=<µs>[,trust=<s>] | /tracking[=<µs>]]:<locmem|locmem:N>+<L2>` (an in-process L1 per process in front of a shared L2, kept coherent by a modelled backplane or tracking with that delivery latency, or Redis's own tracking for `tracking` on a Redis L2, e.g. `two-tier/tracking:locmem:64+redis://127.0.0.1:6379`), or `env:NAME` to read the spec from environment variable NAME (repeatable). Passwords show as `***` everywhere. Default: `locmem`; for the `freeze`, `writer-crash` and `db-outage` scenarios, whose point is a store the processes share, `shared-locmem`; for `multi-process-two-tier`, five side by side (locmem, shared-locmem, two-tier, +backplane, +tracking).
    #[arg(long = "backend", value_parser = backend_arg)]
    pub(crate) backends: Vec<String>,
    /// Strategies: a comma list or `all`.
    #[arg(long, default_value = "all")]
    pub(crate) strategies: String,
    /// Seed for strategies' random choices and generated traffic.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Write report.{json,csv,md,html} into this directory.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Worker threads (cells run in parallel on locmem), 1..=64. With
    /// fewer cells than threads, a cell on plain `locmem` whose trace has
    /// several app processes (and no injected faults) replays them in
    /// parallel, as shards; the report is the same. On in-process stores
    /// `--processes` is faster: two cells on two threads of one process
    /// slow each other's stores.
    #[arg(long, default_value_t = 2,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS))]
    pub(crate) threads: usize,
    /// Cached views' TTL, seconds (1..=31536000, i.e. up to 365 days).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_S))]
    pub(crate) ttl: u64,
    /// short-ttl's TTL, seconds (1..=31536000).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_S))]
    pub(crate) short_ttl: u64,
    /// Virtual latency of a cache round trip, µs (plan, get, store), 0..=60000000.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=MAX_LATENCY_US))]
    pub(crate) cache_latency_us: u64,
    /// Virtual latency of a feed query on the database, µs (0..=60000000).
    #[arg(long, default_value_t = 8_000, value_parser = clap::value_parser!(u64).range(0..=MAX_LATENCY_US))]
    pub(crate) db_latency_us: u64,
    /// Virtual delay from a write's commit to its invalidation, µs (0..=3600000000).
    #[arg(long, default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(0..=MAX_INVALIDATE_DELAY_US))]
    pub(crate) invalidate_delay_us: u64,
    /// Payload bytes per feed item (stored feed size = items × this + a header), 0..=16384.
    #[arg(long, default_value_t = 160,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_ITEM_BYTES))]
    pub(crate) item_bytes: usize,
    /// Staleness-over-time bucket width, seconds (1..=31536000).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=MAX_BUCKET_S))]
    pub(crate) bucket_s: u64,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Per-process single-flight: concurrent misses on one key in one app
    /// process load once (`on`, as `RangeCache` does by default) or each
    /// load on its own (`off`, an app without it).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub(crate) single_flight: OnOff,
    /// Writes announced before their commit and ended after it (`on`, as
    /// with `RangeCache::begin_write`/`end_write`: `stamped` then fences
    /// the commit-to-bump window) or only invalidated after it (`off`).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub(crate) fence: OnOff,
    /// XFetch early refresh with this β (e.g. 1.0); off by default.
    #[arg(long, value_name = "BETA")]
    pub(crate) xfetch: Option<f64>,
    /// Exit non-zero (after printing and writing the report) when any
    /// cell's backend errors per read exceed this fraction (0..=1; 0.01 is 1%).
    #[arg(long, default_value_t = 0.01, value_parser = fraction)]
    pub(crate) max_error_rate: f64,
    /// Stop the run when backend calls keep failing, with no read served
    /// cleanly, for this many seconds of real time (a server that died and
    /// stays down), 1..=3600.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) max_outage_s: u64,
    /// After the table, print each cell's wall time, requests per second and
    /// time inside backend calls (and the store's share of the run) to
    /// stderr (real time: never in the report).
    #[arg(long)]
    pub(crate) timings: bool,
    /// Run the cells in this many processes of cache-sim instead of threads
    /// of one, 1..=16 (in-process stores only): two cells in one process
    /// slow each other's stores, two processes do not. Every process reads
    /// the trace itself. The report is the same, byte for byte.
    #[arg(long, default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=sim::runner::MAX_PROCESSES as u64))]
    pub(crate) processes: usize,
    /// Freeze the cache server from START_S for DURATION_S (seconds after
    /// the trace's start, decimals allowed; repeatable): it keeps its data
    /// but every call fails, so bumps of writes meanwhile fail and are
    /// queued and retried by their process. The report then gets a faults
    /// section: bumps queued, retried, re-applied, stale reads during and
    /// after the freeze and the latest of them after the thaw.
    #[arg(long = "freeze", value_name = "START_S:DURATION_S", value_parser = sim::config::Freeze::parse)]
    pub(crate) freezes: Vec<sim::config::Freeze>,
    /// The writer of the first write at or after this many seconds crashes
    /// between its commit and its bump (its process also loses its queue
    /// of failed bumps); with `--outbox on` a relay applies the change
    /// after `--outbox-grace-ms`, with `off` it is lost.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub(crate) crash_writer_at: Option<u64>,
    /// Writes record their change in a transactional outbox (`on`, as the
    /// calendar service does) that every process's relay drains, or not
    /// (`off`: only each process's in-memory retry queue).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub(crate) outbox: OnOff,
    /// First retry of a failed bump, ms (1..=60000); doubles per failed
    /// round up to --bump-retry-max-ms.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) bump_retry_min_ms: u64,
    /// Longest wait between retries of failed bumps, ms (1..=60000): the
    /// bound on staleness after the server's return.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) bump_retry_max_ms: u64,
    /// How often the outbox relays poll, ms (1..=3600000).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) outbox_poll_ms: u64,
    /// How old an outbox row must be before a relay applies it, ms
    /// (0..=3600000).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub(crate) outbox_grace_ms: u64,
    /// The database fails (`outage:START_S:DURATION_S`) or is slow
    /// (`slow:START_S:DURATION_S:LATENCY_MS`) for feed queries, from START_S
    /// for DURATION_S seconds after the trace's start (decimals allowed;
    /// repeatable). Writes still commit. The report then gets a
    /// database-faults section: fail-safe answers (and how many were
    /// stale), errors returned, timeouts, latency inside the windows.
    #[arg(long = "db-fault", value_name = "outage:START_S:DURATION_S|slow:START_S:DURATION_S:LATENCY_MS", value_parser = sim::config::DbFault::parse)]
    pub(crate) db_faults: Vec<sim::config::DbFault>,
    /// Two tiers: PROCESS's tracking connection (or backplane
    /// subscription) drops and is made again, SECONDS after the trace's
    /// start (decimals allowed; repeatable): it forgets what that
    /// connection vouched for and reads L2 until tracked again. Changes
    /// nothing on other backends.
    #[arg(long = "disconnect", value_name = "SECONDS:PROCESS", value_parser = disconnect)]
    pub(crate) disconnects: Vec<sim::config::TierFault>,
    /// Two tiers with a backplane: the next notice PROCESS publishes after
    /// SECONDS is lost on the way (repeatable); the others notice at its
    /// next one. Changes nothing elsewhere.
    #[arg(long = "lose-notice", value_name = "SECONDS:PROCESS", value_parser = lose_notice)]
    pub(crate) lost_notices: Vec<sim::config::TierFault>,
    /// Fail-safe: when the database fails or times out, answer with the
    /// entry stored for the view if it expired less than MAX_AGE_S seconds
    /// ago (an entry with old stamps, not yet expired, always qualifies);
    /// entries are stored that much longer (1..=31536000). Off by default.
    #[arg(long = "fail-safe", value_name = "MAX_AGE_S", value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_S))]
    pub(crate) fail_safe: Option<u64>,
    /// The loader's soft timeout, ms (1..=3600000; needs --fail-safe): a
    /// read with a fail-safe entry that has waited this long for the
    /// database is answered with it while the load goes on and refreshes
    /// the entry (as `RangeCache::fetch_detached`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) soft_timeout_ms: Option<u64>,
    /// The loader's hard timeout, ms (1..=3600000): past it the load is
    /// given up and the read answered by fail-safe, or with an error.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) hard_timeout_ms: Option<u64>,
}

/// A number of seconds (decimals allowed) within the faults' range, as µs.
fn seconds(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=sim::config::MAX_FAULT_S).contains(&x) => Ok((x * 1e6).round() as u64),
        _ => Err(format!(
            "expected seconds in 0..={} (decimals allowed), found {s:?}",
            sim::config::MAX_FAULT_S
        )),
    }
}

impl Common {
    pub(crate) fn config(&self, scenario: &str) -> Result<RunConfig> {
        let mut cfg = RunConfig::new(scenario);
        cfg.seed = self.seed;
        let defaults: Vec<String> = sim::scenarios::default_backends(scenario)
            .iter()
            .map(|b| (*b).to_owned())
            .collect();
        let backends = if self.backends.is_empty() {
            &defaults[..]
        } else {
            &self.backends[..]
        };
        cfg.backends = backends
            .iter()
            .flat_map(|b| expand_backend(b))
            .map(|b| BackendSpec::parse(&b))
            .collect::<Result<_>>()?;
        if self.strategies != "all" {
            let mut names = Vec::new();
            for n in self.strategies.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !cache_core::strategy::NAMES.contains(&n) {
                    return Err(Error::Invalid(format!(
                        "unknown strategy {n:?}; known: {}",
                        cache_core::strategy::NAMES.join(", ")
                    )));
                }
                names.push(n.to_owned());
            }
            if names.is_empty() {
                return Err(Error::Invalid(format!(
                    "--strategies {:?} names no strategy; give a comma list of {} or `all`",
                    self.strategies,
                    cache_core::strategy::NAMES.join(", ")
                )));
            }
            cfg.strategies = names;
        }
        let mut lat = Latencies::default();
        lat.plan_us = self.cache_latency_us;
        lat.get_us = self.cache_latency_us;
        lat.store_us = self.cache_latency_us;
        lat.db_us = self.db_latency_us;
        lat.invalidate_us = self.invalidate_delay_us;
        cfg.latencies = lat;
        cfg.ttl = Duration::from_secs(self.ttl);
        cfg.short_ttl = Duration::from_secs(self.short_ttl);
        cfg.bucket = Duration::from_secs(self.bucket_s);
        cfg.threads = self.threads;
        cfg.item_bytes = self.item_bytes;
        cfg.timings = self.timings;
        cfg.outage_limit = Some(Duration::from_secs(self.max_outage_s));
        cfg.fenced_writes = self.fence == OnOff::On;
        cfg.faults.freezes = self.freezes.clone();
        cfg.faults.freezes.sort_by_key(|f| f.start_us);
        cfg.faults.crash_writer_at_us = self.crash_writer_at;
        cfg.faults.outbox = self.outbox == OnOff::On;
        cfg.faults.db = self.db_faults.clone();
        cfg.faults.db.sort_by_key(|f| f.start_us);
        cfg.faults.tier = self.disconnects.iter().chain(&self.lost_notices).copied().collect();
        cfg.faults.tier.sort_by_key(|f| f.at_us);
        if self.bump_retry_min_ms > self.bump_retry_max_ms {
            return Err(Error::Invalid(format!(
                "--bump-retry-min-ms {} is above --bump-retry-max-ms {}",
                self.bump_retry_min_ms, self.bump_retry_max_ms
            )));
        }
        let ms = Duration::from_millis;
        cfg.aside = cfg
            .aside
            .clone()
            .with_single_flight(self.single_flight == OnOff::On)
            .with_xfetch(self.xfetch)
            .with_bump_retry(ms(self.bump_retry_min_ms), ms(self.bump_retry_max_ms))
            .with_outbox_timing(ms(self.outbox_poll_ms), ms(self.outbox_grace_ms))
            .with_fail_safe(self.fail_safe.map(Duration::from_secs))
            .with_load_timeouts(self.soft_timeout_ms.map(ms), self.hard_timeout_ms.map(ms));
        cfg.aside.validate().map_err(|e| match e {
            cache_core::Error::Setting { setting: "xfetch", .. } => Error::Invalid(format!("--xfetch: {e}")),
            cache_core::Error::Setting {
                setting: "fail_safe", ..
            } => Error::Invalid(format!("--fail-safe: {e}")),
            cache_core::Error::Setting {
                setting: "soft_timeout",
                ..
            } => Error::Invalid(format!("--soft-timeout-ms: {e}")),
            cache_core::Error::Setting {
                setting: "hard_timeout",
                ..
            } => Error::Invalid(format!("--hard-timeout-ms: {e}")),
            e => Error::Invalid(e.to_string()),
        })?;
        Ok(cfg)
    }
}

impl Common {
    pub(crate) fn parse_default() -> Common {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            common: Common,
        }
        Wrapper::parse_from(["cache-sim"]).common
    }
}
