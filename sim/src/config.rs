//! [`RunConfig`]: what a comparison runs, shared by the runner (which runs
//! it) and the report (which states it).

use std::time::Duration;

use cache_core::flow::AsideOptions;
use chrono::Offset;

use crate::backends::BackendSpec;
use crate::engine::Latencies;

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
    /// Worker threads for cells.
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
    pub aside: AsideOptions,
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
            aside: AsideOptions::default(),
            outage_limit: Some(DEFAULT_OUTAGE_LIMIT),
            judge_stale: true,
            fenced_writes: true,
            verdict: true,
        }
    }

    /// The strategy options a cell of this run builds its strategy with:
    /// TTLs, seed and home offset from this configuration, time from
    /// `clock` (the cell's virtual clock). An application that wants to
    /// see what a cell saw builds its `RangeCache` from the same options.
    pub fn strategy_options(&self, clock: &cache_core::ManualClock) -> cache_core::strategy::StrategyOptions {
        let mut opts = cache_core::strategy::StrategyOptions::default();
        opts.clock = std::sync::Arc::new(clock.clone());
        opts.ttl = self.ttl;
        opts.short_ttl = self.short_ttl;
        opts.seed = self.seed;
        opts.home_offset = self.home_offset;
        opts
    }
}
