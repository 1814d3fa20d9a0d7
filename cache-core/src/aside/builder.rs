//! [`RangeCacheBuilder`]: every setting of a [`RangeCache`], validated once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::aside::RangeCache;
use crate::backend::Backend;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::options::CacheOptions;
use crate::outbox::Outbox;
use crate::strategy::{by_name, BucketSize, StampGranularity, Strategy};

/// The longest cache name [`RangeCacheBuilder::name`] accepts (it becomes a
/// metrics label and a tracing field).
pub const MAX_NAME_BYTES: usize = 64;

/// How the builder gets its strategy.
enum Choice {
    /// By registry name, built from the builder's options.
    Name(String),
    /// By type: a constructor handed the builder's validated options.
    Build(Box<dyn FnOnce(CacheOptions) -> Arc<dyn Strategy> + Send>),
    /// An instance shared with other caches.
    Shared(Arc<dyn Strategy>),
}

impl std::fmt::Debug for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Choice::Name(n) => write!(f, "Name({n:?})"),
            Choice::Build(_) => f.write_str("Build(..)"),
            Choice::Shared(s) => write!(f, "Shared({:?})", s.name()),
        }
    }
}

/// Builds a [`RangeCache`]: the strategy (by name, by type, or shared), its
/// TTLs and keys, the clock and the seed (set once, for the strategy and
/// the read path alike), single-flight, XFetch, fail-open, fail-safe and
/// the loader's timeouts, and a name for metrics. [`build`](Self::build) checks every setting and names the
/// first bad one.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cache_core::strategy::Stamped;
/// use cache_core::{Backend, RangeCache};
/// # fn demo(backend: Arc<dyn Backend>) -> cache_core::Result<()> {
/// // By name, with the defaults for everything else:
/// let feeds = RangeCache::builder(backend.clone()).strategy("stamped").build()?;
/// // By type, with settings:
/// let feeds = RangeCache::builder(backend)
///     .strategy_with(Stamped::new)
///     .name("calendar-feed")
///     .ttl(Duration::from_secs(120))
///     .namespace("cal")
///     .xfetch(1.0)
///     .build()?;
/// assert_eq!(feeds.strategy().name(), "stamped");
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Debug)]
pub struct RangeCacheBuilder {
    backend: Arc<dyn Backend>,
    strategy: Choice,
    options: CacheOptions,
    name: String,
    outbox: Option<Arc<dyn Outbox>>,
}

impl RangeCacheBuilder {
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Self {
        RangeCacheBuilder {
            backend,
            strategy: Choice::Name(super::DEFAULT_STRATEGY.to_owned()),
            options: CacheOptions::default(),
            name: "default".to_owned(),
            outbox: None,
        }
    }

    /// The strategy by registry name (default: `stamped`, the one the
    /// measurements recommend). An unknown name fails at [`build`](Self::build)
    /// with the list of valid ones.
    pub fn strategy(mut self, name: impl Into<String>) -> Self {
        self.strategy = Choice::Name(name.into());
        self
    }

    /// The strategy by type: `build` is called with the builder's
    /// validated options, e.g. `.strategy_with(Stamped::new)`.
    pub fn strategy_with<S: Strategy>(mut self, build: impl FnOnce(CacheOptions) -> S + Send + 'static) -> Self {
        self.strategy = Choice::Build(Box::new(move |o| Arc::new(build(o)) as Arc<dyn Strategy>));
        self
    }

    /// A strategy instance shared with other caches (strategies keep no
    /// state in memory, so one instance serves any number of caches). It
    /// keeps the options it was built with: the builder's strategy settings
    /// (TTL, namespace, …) do not reach it, only the read policy and the
    /// clock of the read path.
    pub fn shared_strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = Choice::Shared(strategy);
        self
    }

    /// Every option at once, replacing what was set before (for
    /// configuration read from elsewhere; the methods below set one each).
    pub fn options(mut self, options: CacheOptions) -> Self {
        self.options = options;
        self
    }

    /// The name of this cache: a label on its metrics and a field of its
    /// tracing spans (default `"default"`; 1..=64 bytes of ASCII letters,
    /// digits, `-`, `_`, `.`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The clock logical expiry and the strategies follow (default: the
    /// system clock; a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.options.clock = clock;
        self
    }

    /// The seed of every random choice (generation starts, XFetch's draws).
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = seed;
        self
    }

    /// TTL of cached views (default 300 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = ttl;
        self
    }

    /// TTL of `short-ttl`'s entries (default 60 s).
    pub fn short_ttl(mut self, ttl: Duration) -> Self {
        self.options.short_ttl = ttl;
        self
    }

    /// First part of every key (default `feed`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.options.namespace = namespace.into();
        self
    }

    /// Bucket size of `bucketed` and of bucket-stamped `stamped`.
    pub fn bucket(mut self, bucket: BucketSize) -> Self {
        self.options.bucket = bucket;
        self
    }

    /// Generation granularity of `stamped`.
    pub fn stamp_granularity(mut self, granularity: StampGranularity) -> Self {
        self.options.stamp_granularity = granularity;
        self
    }

    /// Filter combinations `fixed-month` and `range-expansion` delete.
    pub fn filter_combinations(mut self, combos: Vec<BTreeMap<String, String>>) -> Self {
        self.options.filter_combinations = combos;
        self
    }

    /// Single-flight: concurrent misses on one key load once (default on).
    pub fn single_flight(mut self, on: bool) -> Self {
        self.options.single_flight = on;
        self
    }

    /// XFetch early refresh with β (1.0 is the paper's choice; off by
    /// default).
    pub fn xfetch(mut self, beta: f64) -> Self {
        self.options.xfetch_beta = Some(beta);
        self
    }

    /// Fail-open: a backend error while reading is answered by the loader
    /// (default on). Off, `get_or_load` returns
    /// [`LoadError::Cache`](crate::aside::LoadError::Cache) instead.
    pub fn fail_open(mut self, on: bool) -> Self {
        self.options.fail_open = on;
        self
    }

    /// Fail-safe (off by default): when the loader fails or times out, the
    /// read is answered by the entry stored for the view if its logical
    /// expiry passed less than `max_age` ago (an entry with old stamps
    /// that has not expired yet always qualifies), preferring what the
    /// strategy keeps: see [`CacheOptions::fail_safe_max_age`].
    /// [`RangeCache::fetch`] says which answers it gave; entries are then
    /// stored for their TTL plus `max_age`. 1 ns to 365 days.
    pub fn fail_safe(mut self, max_age: Duration) -> Self {
        self.options.fail_safe_max_age = Some(max_age);
        self
    }

    /// Soft timeout of the loader (needs [`Self::fail_safe`]): a read that
    /// has a fail-safe entry and has waited this long for the database is
    /// answered with it, and the load goes on to refresh the entry. Who
    /// is answered depends on the call: the requests waiting on a load
    /// with [`RangeCache::fetch`] and `get_or_load`, every read with
    /// [`RangeCache::fetch_detached`]. Below the hard timeout. Measured
    /// with Tokio's timers: reads then need a Tokio runtime with time
    /// enabled.
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.options.soft_timeout = Some(timeout);
        self
    }

    /// Hard timeout of the loader: past it the load is given up, and the
    /// read is answered by fail-safe if it can be, or fails with
    /// [`LoadError::Timeout`](crate::aside::LoadError::Timeout). Up to an
    /// hour. Measured with Tokio's timers, as the soft timeout.
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.options.hard_timeout = Some(timeout);
        self
    }

    /// Retries of failed bumps: the first `min` after the failure, then
    /// doubling up to `max` (defaults 10 ms and 100 ms; `max` bounds how
    /// long after the server's return other processes can be served what
    /// a lost bump should have invalidated).
    pub fn bump_retry(mut self, min: Duration, max: Duration) -> Self {
        self.options.bump_retry_min = min;
        self.options.bump_retry_max = max;
        self
    }

    /// The application's outbox of committed changes
    /// ([`crate::outbox`]): writes ended with
    /// [`RangeCache::end_recorded_write`] delete their row once applied,
    /// and [`RangeCache::outbox_relay`] drains the rows of writers that
    /// crashed. `poll` and `grace`: [`Self::outbox_timing`].
    pub fn outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// How often the outbox relay polls (default 1 s) and how old a row
    /// must be before it steps in for the row's writer (default 5 s).
    pub fn outbox_timing(mut self, poll: Duration, grace: Duration) -> Self {
        self.options.outbox_poll = poll;
        self.options.outbox_grace = grace;
        self
    }

    /// Checks every setting and builds the cache. The error
    /// ([`Error::Setting`], or [`Error::Config`] for an unknown strategy
    /// name) names the first bad setting.
    pub fn build(self) -> Result<RangeCache> {
        validate_name(&self.name)?;
        self.options.validate()?;
        let strategy = match self.strategy {
            Choice::Name(name) => by_name(&name, &self.options)?,
            Choice::Build(build) => build(self.options.clone()),
            Choice::Shared(strategy) => strategy,
        };
        Ok(RangeCache::assemble(
            self.backend,
            strategy,
            self.options,
            self.name,
            self.outbox,
        ))
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.chars().all(ok) {
        return Err(Error::Setting {
            setting: "name",
            message: format!("{name:?} must be 1..={MAX_NAME_BYTES} bytes of ASCII letters, digits, '-', '_' or '.'"),
        });
    }
    Ok(())
}
