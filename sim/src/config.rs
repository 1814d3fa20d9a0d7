//! [`RunConfig`]: what a comparison runs, shared by the runner (which runs
//! it) and the report (which states it).

use std::time::Duration;

use cache_core::CacheOptions;
use chrono::Offset;

use crate::backends::BackendSpec;
use crate::engine::Latencies;

/// A stretch of the run during which the cache server is frozen: it keeps
/// its data, but every call to it fails (`--freeze START_S:DURATION_S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Freeze {
    /// Start, µs after the trace's start.
    pub start_us: u64,
    /// End (exclusive), µs after the trace's start.
    pub end_us: u64,
}

impl Freeze {
    /// Parses `START_S:DURATION_S` (seconds, decimals allowed, e.g.
    /// `12.5:3`); the error names what is wrong.
    pub fn parse(s: &str) -> Result<Freeze, String> {
        let (start, duration) = s
            .split_once(':')
            .ok_or_else(|| format!("expected START_S:DURATION_S (e.g. 10:5), found {s:?}"))?;
        let secs = |v: &str, what: &str| -> Result<u64, String> {
            match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && (0.0..=MAX_FAULT_S).contains(&x) => Ok((x * 1e6).round() as u64),
                _ => Err(format!(
                    "{what} must be a number of seconds in 0..={MAX_FAULT_S}, found {v:?}"
                )),
            }
        };
        let start_us = secs(start, "the freeze's start")?;
        let duration_us = secs(duration, "the freeze's duration")?;
        if duration_us == 0 {
            return Err(format!("a freeze needs a duration > 0, found {s:?}"));
        }
        Ok(Freeze {
            start_us,
            end_us: start_us + duration_us,
        })
    }
}

/// The latest instant a fault may be placed at, and the longest freeze:
/// a year, in seconds (far below i64 µs).
pub const MAX_FAULT_S: f64 = 365.0 * 86_400.0;

/// The longest latency a slow database window may give a query: 10
/// minutes (in ms).
pub const MAX_DB_FAULT_LATENCY_MS: u64 = 600_000;

/// What the database does during a [`DbFault`] window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum DbFaultKind {
    /// Every feed query fails (after the usual query latency).
    Outage,
    /// Every feed query takes this long.
    Slow {
        /// The query latency, µs.
        latency_us: u64,
    },
}

/// A stretch of the run during which the database fails or is slow for
/// feed queries (the loader): `--db-fault outage:START_S:DURATION_S` or
/// `--db-fault slow:START_S:DURATION_S:LATENCY_MS`. Writes still commit
/// (think of a read replica, or the feed query alone timing out): a
/// trace's writes must stay consistent with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DbFault {
    /// Start, µs after the trace's start.
    pub start_us: u64,
    /// End (exclusive), µs after the trace's start.
    pub end_us: u64,
    /// What the database does meanwhile.
    #[serde(flatten)]
    pub kind: DbFaultKind,
}

impl DbFault {
    /// Parses `outage:START_S:DURATION_S` or
    /// `slow:START_S:DURATION_S:LATENCY_MS` (seconds, decimals allowed);
    /// the error names what is wrong.
    pub fn parse(s: &str) -> Result<DbFault, String> {
        let usage = || {
            format!("expected outage:START_S:DURATION_S or slow:START_S:DURATION_S:LATENCY_MS (e.g. outage:120:300, slow:60:30:800), found {s:?}")
        };
        let parts: Vec<&str> = s.split(':').collect();
        let window = |start: &str, duration: &str| -> Result<(u64, u64), String> {
            let w = Freeze::parse(&format!("{start}:{duration}"))
                .map_err(|e| format!("{e} (in the database fault {s:?})"))?;
            Ok((w.start_us, w.end_us))
        };
        match parts.as_slice() {
            ["outage", start, duration] => {
                let (start_us, end_us) = window(start, duration)?;
                Ok(DbFault {
                    start_us,
                    end_us,
                    kind: DbFaultKind::Outage,
                })
            }
            ["slow", start, duration, latency] => {
                let (start_us, end_us) = window(start, duration)?;
                let latency_ms = match latency.trim().parse::<u64>() {
                    Ok(ms) if (1..=MAX_DB_FAULT_LATENCY_MS).contains(&ms) => ms,
                    _ => {
                        return Err(format!(
                            "the slow window's latency must be 1..={MAX_DB_FAULT_LATENCY_MS} ms, found {latency:?} (in {s:?})"
                        ))
                    }
                };
                Ok(DbFault {
                    start_us,
                    end_us,
                    kind: DbFaultKind::Slow {
                        latency_us: latency_ms * 1000,
                    },
                })
            }
            _ => Err(usage()),
        }
    }
}

/// A fault of the connections that keep two tiers coherent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TierFaultKind {
    /// `--disconnect`: the process's tracking connection, or its backplane
    /// subscription, drops and is made again at once: it forgets every
    /// generation that connection vouched for, and its reads ask L2 until
    /// they are tracked (or learnt) again.
    Disconnect,
    /// `--lose-notice`: the next backplane notice the process publishes is
    /// lost on the way, every connection staying up. Its number is spent,
    /// so the others notice at the process's next notice. Nothing with
    /// tracking: the server loses no invalidation while connected.
    LoseNotice,
}

/// A [`TierFaultKind`] happening to one process at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TierFault {
    /// When, µs after the trace's start.
    pub at_us: u64,
    /// The app process it happens to.
    pub process: u32,
    /// What happens.
    pub kind: TierFaultKind,
}

impl TierFault {
    /// `kind` to `process` at `at_us`.
    pub fn new(at_us: u64, process: u32, kind: TierFaultKind) -> Self {
        TierFault { at_us, process, kind }
    }

    /// Parses `SECONDS:PROCESS` (seconds after the trace's start, decimals
    /// allowed, e.g. `21.5:1`) as a `kind`; the error names what is wrong.
    pub fn parse(s: &str, kind: TierFaultKind) -> Result<TierFault, String> {
        let (at, process) = s
            .split_once(':')
            .ok_or_else(|| format!("expected SECONDS:PROCESS (e.g. 21:1), found {s:?}"))?;
        let at_us = match at.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && (0.0..=MAX_FAULT_S).contains(&x) => (x * 1e6).round() as u64,
            _ => {
                return Err(format!(
                    "the instant must be seconds in 0..={MAX_FAULT_S}, found {at:?}"
                ))
            }
        };
        let process = process
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("the process must be a process number, found {process:?}"))?;
        Ok(TierFault::new(at_us, process, kind))
    }
}

/// Faults a run injects (none by default: reports of runs without faults
/// do not mention them).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// When the cache server is frozen (`--freeze`, repeatable).
    pub freezes: Vec<Freeze>,
    /// The writer of the first write at or after this instant (µs after
    /// the trace's start) crashes between its commit and its bump
    /// (`--crash-writer-at`): the bump never runs and the process loses
    /// its queue of failed bumps.
    pub crash_writer_at_us: Option<u64>,
    /// The app records every write's change in a transactional outbox in
    /// the write's own transaction, which every process's relay applies
    /// once it is [`outbox_grace`](cache_core::CacheOptions::outbox_grace)
    /// old (`--outbox on`, the default, as the calendar service does);
    /// off, a crashed writer's bump is lost.
    pub outbox: bool,
    /// When the database fails or is slow for feed queries (`--db-fault`,
    /// repeatable; the `db-outage` scenario).
    pub db: Vec<DbFault>,
    /// Faults of what keeps two tiers coherent (`--disconnect`,
    /// `--lose-notice`, repeatable; `multi-process-two-tier`), in time
    /// order. They act on two-tier backends with a backplane or modelled
    /// tracking and change nothing elsewhere.
    pub tier: Vec<TierFault>,
}

impl Faults {
    /// No fault, outbox on.
    pub fn none() -> Self {
        Faults {
            freezes: Vec::new(),
            crash_writer_at_us: None,
            outbox: true,
            db: Vec::new(),
            tier: Vec::new(),
        }
    }

    /// Adds `other`'s freezes and crash (its own if this one has none);
    /// the outbox is on if both say so.
    pub fn merge(&mut self, other: &Faults) {
        self.freezes.extend(other.freezes.iter().copied());
        self.freezes.sort_by_key(|f| f.start_us);
        self.crash_writer_at_us = self.crash_writer_at_us.or(other.crash_writer_at_us);
        self.outbox &= other.outbox;
        self.db.extend(other.db.iter().copied());
        self.db.sort_by_key(|f| f.start_us);
        self.tier.extend(other.tier.iter().copied());
        self.tier.sort_by_key(|f| f.at_us);
    }

    /// True when the run injects a fault of the cache or of a writer
    /// (freeze, crash): what the relay and the report's `faults` section
    /// are about. Database faults are [`Faults::db`].
    pub fn any(&self) -> bool {
        !self.freezes.is_empty() || self.crash_writer_at_us.is_some()
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::none()
    }
}

/// The default [`RunConfig::outage_limit`]: 10 s.
pub const DEFAULT_OUTAGE_LIMIT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunConfig {
    /// Scenario name (or a description of the trace) for the report.
    pub scenario: String,
    /// The seed (strategies' random choices; generated traffic).
    pub seed: u64,
    /// The trace file replayed, if any.
    pub trace: Option<String>,
    /// Backends to compare.
    pub backends: Vec<BackendSpec>,
    /// Strategy names, in report order.
    pub strategies: Vec<String>,
    /// Step latencies.
    pub latencies: Latencies,
    /// Cached views' TTL.
    pub ttl: Duration,
    /// `short-ttl`'s TTL.
    pub short_ttl: Duration,
    /// Payload bytes per feed item.
    pub item_bytes: usize,
    /// Staleness-over-time bucket width.
    pub bucket: Duration,
    /// Worker threads for cells. With fewer cells than threads, a cell on
    /// plain `locmem` whose trace has several app processes (and no
    /// injected faults) is split by process into shards that replay in
    /// parallel ([`crate::runner`]); the report is the same, byte for byte.
    pub threads: usize,
    /// Time backend calls (for [`CellTiming::backend_time`](crate::runner::CellTiming::backend_time)); off, only
    /// counted.
    pub timings: bool,
    /// The application's home offset (`+08:00`, the seed's): the single
    /// offset `range-expansion` guesses keys in. In the scripted scenarios
    /// most clients send it; in `realistic` about a quarter do (Manila
    /// browsers and named Manila), the rest are other zones, many with
    /// daylight saving, which is what `range-expansion` misses.
    pub home_offset: chrono::FixedOffset,
    /// The read policy every simulated app process uses: single-flight (on
    /// by default, as in `RangeCache`) and XFetch (off). The XFetch seed is
    /// derived from [`Self::seed`].
    pub aside: CacheOptions,
    /// How long backend calls may keep failing (no read served cleanly in
    /// between), in real time, before the run stops with
    /// [`crate::Error::BackendDown`]; `None`: never.
    pub outage_limit: Option<Duration>,
    /// Judge stale reads against the simulated database (off for access
    /// logs, whose items are modelled: see `at_risk_reads`).
    pub judge_stale: bool,
    /// Writes are announced before their commit and ended after it (on by
    /// default: what an app using `RangeCache::begin_write`/`end_write`
    /// does); off, they are only invalidated after the commit
    /// (`RangeCache::invalidate`), which leaves `stamped` the
    /// commit-to-bump window every strategy has.
    pub fenced_writes: bool,
    /// After the cells, run the built-in hazard scenarios that apply and
    /// recommend a cell ([`crate::verdict`]); on by default. The hazard
    /// runs themselves set it off.
    pub verdict: bool,
    /// Faults to inject: cache freezes, a writer crash, database faults
    /// (none by default). What the relay does about them follows
    /// [`Self::aside`]'s `bump_retry_*` and `outbox_*` settings; what reads
    /// do about a database fault, its `fail_safe_max_age`, `soft_timeout`
    /// and `hard_timeout`.
    pub faults: Faults,
}

impl RunConfig {
    /// Defaults: locmem, all strategies, seed 1, TTL 300 s / 60 s, two threads.
    pub fn new(scenario: impl Into<String>) -> Self {
        RunConfig {
            scenario: scenario.into(),
            seed: 1,
            trace: None,
            backends: vec![BackendSpec::Locmem {
                capacity_bytes: backend_locmem::DEFAULT_CAPACITY_BYTES,
            }],
            strategies: cache_core::strategy::NAMES.iter().map(|s| (*s).to_owned()).collect(),
            latencies: Latencies::default(),
            ttl: Duration::from_secs(300),
            short_ttl: Duration::from_secs(60),
            item_bytes: 160,
            bucket: Duration::from_secs(60),
            threads: 2,
            timings: false,
            home_offset: chrono::FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Utc.fix()),
            aside: CacheOptions::default(),
            outage_limit: Some(DEFAULT_OUTAGE_LIMIT),
            judge_stale: true,
            fenced_writes: true,
            verdict: true,
            faults: Faults::none(),
        }
    }

    /// [`Self::new`] with the faults scenario `scenario` is about
    /// ([`crate::scenarios::faults`]) and its default backends
    /// ([`crate::scenarios::default_backends`]): what `cache-sim run
    /// --scenario` runs without other options.
    pub fn for_scenario(scenario: &str) -> Self {
        let mut cfg = RunConfig::new(scenario);
        cfg.faults.merge(&crate::scenarios::faults(scenario));
        let defaults: Vec<BackendSpec> = crate::scenarios::default_backends(scenario)
            .iter()
            .filter_map(|b| BackendSpec::parse(b).ok())
            .collect();
        if !defaults.is_empty() {
            cfg.backends = defaults;
        }
        cfg
    }

    /// The strategy options a cell of this run builds its strategy with:
    /// TTLs, seed and home offset from this configuration, time from
    /// `clock` (the cell's virtual clock). An application that wants to
    /// see what a cell saw builds its `RangeCache` from the same options.
    pub fn strategy_options(&self, clock: &cache_core::ManualClock) -> cache_core::CacheOptions {
        let mut opts = cache_core::CacheOptions::default();
        opts.clock = std::sync::Arc::new(clock.clone());
        opts.ttl = self.ttl;
        opts.short_ttl = self.short_ttl;
        opts.seed = self.seed;
        opts.home_offset = self.home_offset;
        // Generations outlive entries kept for fail-safe (`control_ttl`).
        opts.fail_safe_max_age = self.aside.fail_safe_max_age;
        opts
    }

    /// True when the run injects a database fault or sets fail-safe or a
    /// loader timeout: its report then has the database-fault columns.
    pub fn uses_db_faults(&self) -> bool {
        !self.faults.db.is_empty()
            || self.aside.fail_safe_max_age.is_some()
            || self.aside.soft_timeout.is_some()
            || self.aside.hard_timeout.is_some()
    }
}
