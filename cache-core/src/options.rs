//! [`CacheOptions`]: every setting of a cache in one place — the
//! strategy's (TTLs, key namespace, buckets), the read policy's
//! (single-flight, XFetch, fail-open), and the clock and seed they share.
//!
//! Applications set them through [`RangeCache::builder`](crate::RangeCache::builder);
//! the strategies and the sans-IO core read them from here, so a clock or a
//! seed is set once and every part sees the same one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Offset;

use crate::clock::{system_clock, Clock};
use crate::error::{Error, Result};
use crate::strategy::{BucketSize, StampGranularity};

/// The shortest TTL of a control key (see [`CacheOptions::control_ttl`]).
pub const CONTROL_TTL_FLOOR: Duration = Duration::from_secs(24 * 3600);

/// The longest view TTL [`CacheOptions::validate`] accepts: 365 days. Longer
/// TTLs make no sense for a feed and would overflow some servers' expiry
/// arithmetic.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The longest [`CacheOptions::bump_retry_max`]: a minute. Longer waits
/// would make the bound on staleness after an outage meaningless.
pub const MAX_BUMP_RETRY: Duration = Duration::from_secs(60);

/// The longest [`CacheOptions::outbox_poll`] and
/// [`CacheOptions::outbox_grace`]: an hour.
pub const MAX_OUTBOX_TIMING: Duration = Duration::from_secs(3600);

/// The longest [`CacheOptions::soft_timeout`] and
/// [`CacheOptions::hard_timeout`]: an hour. A feed request that waits
/// longer has long been abandoned by its client.
pub const MAX_LOAD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Every setting of a cache: the strategy's, the read policy's, and the
/// clock and seed both use. Each part reads the fields it needs.
///
/// ```
/// use std::time::Duration;
/// use cache_core::strategy::{by_name, BucketSize};
/// use cache_core::CacheOptions;
/// let options = CacheOptions::default()
///     .with_seed(7)
///     .with_ttl(Duration::from_secs(120))
///     .with_bucket(BucketSize::Week)
///     .with_namespace("feed");
/// options.validate().unwrap();
/// let strategy = by_name("bucketed", &options).unwrap();
/// assert_eq!(strategy.name(), "bucketed");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheOptions {
    /// The clock strategies read "now" from (`fixed-month` invalidates
    /// months around today; generation starts mix in the reading) and
    /// logical expiry follows (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// Seed of every random choice: generation starts, XFetch's draws.
    pub seed: u64,
    /// TTL of cached views (default 300 s, the seed's).
    pub ttl: Duration,
    /// TTL used by `short-ttl` (default 60 s, the seed's Solution D).
    pub short_ttl: Duration,
    /// First part of every key (default `"feed"`). Must be non-empty and free
    /// of braces, whitespace and glob characters; tests sharing one server
    /// give each run its own.
    pub namespace: String,
    /// Bucket size of `bucketed`, and of `stamped` with bucket granularity
    /// (default: month).
    pub bucket: BucketSize,
    /// Generation granularity of `stamped` (default: one per scope).
    pub stamp_granularity: StampGranularity,
    /// The filter combinations `fixed-month` and `range-expansion` delete keys
    /// for, as the seed's loops over work types × statuses did. Each map is one
    /// view's `params`; the default is one combination, no filters (the
    /// seed's `None:None`).
    pub filter_combinations: Vec<BTreeMap<String, String>>,
    /// Most keys `wildcard`'s per-scope key index holds (default 1000); when
    /// it is full, new entries for the scope are not cached at all, because an
    /// entry missing from the index could never be invalidated.
    pub index_cap: usize,
    /// The UTC offset `range-expansion` writes its guessed keys in: the
    /// offset most of the application's clients send (default UTC, `Z`).
    /// Clients using any other offset or a named zone are the variants it
    /// misses by design.
    pub home_offset: chrono::FixedOffset,
    /// Concurrent misses on one key in one process load once; the others
    /// wait for that load (default on).
    pub single_flight: bool,
    /// XFetch's β; `None` (the default) turns early refresh off. 1.0 is
    /// the paper's recommendation; larger refreshes earlier.
    pub xfetch_beta: Option<f64>,
    /// A backend error while reading is answered by the loader (default
    /// on). Off, the read fails with the backend's error instead, so a
    /// cache outage does not turn into a database stampede.
    pub fail_open: bool,
    /// How soon a bump that failed is first retried (default 10 ms); the
    /// delay doubles after each failed round up to
    /// [`Self::bump_retry_max`] (see the sans-IO core's pending table).
    pub bump_retry_min: Duration,
    /// The longest wait between two retries of failed bumps (default
    /// 100 ms): once the server answers again, other processes are served
    /// what a lost bump should have invalidated for at most about this
    /// long.
    pub bump_retry_max: Duration,
    /// How often the outbox relay asks the application's outbox for
    /// changes whose bump may have been lost (default 1 s; see
    /// [`crate::outbox`]).
    pub outbox_poll: Duration,
    /// How old an outbox row must be before the relay applies it (default
    /// 5 s): younger rows belong to writers that are still applying them
    /// (their own retries delete them), so a relay only steps in for a
    /// writer that crashed or is stuck.
    pub outbox_grace: Duration,
    /// Fail-safe (default off): when the loader fails or times out, the
    /// read is answered by the entry stored for the view, even though it
    /// is past its logical expiry or was computed under generations that
    /// are no longer current, as long as its logical expiry passed less
    /// than this long ago (an entry with old stamps that has not expired
    /// yet always qualifies). Entries are then stored for `ttl` + this
    /// long, so that they are still there when needed. Which entries a
    /// strategy can offer is in the guide's docs/failures.md ("Fail-safe").
    pub fail_safe_max_age: Option<Duration>,
    /// Soft timeout of the loader (default none; needs
    /// [`Self::fail_safe_max_age`]): a read that has a fail-safe entry and
    /// has waited this long for the database is answered with that entry,
    /// while the load goes on and refreshes the entry when it ends.
    pub soft_timeout: Option<Duration>,
    /// Hard timeout of the loader (default none): past it the load is
    /// given up, and the read is answered by fail-safe if it can be, or
    /// fails with [`LoadError::Timeout`](crate::aside::LoadError::Timeout).
    pub hard_timeout: Option<Duration>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            clock: system_clock(),
            seed: 0,
            ttl: Duration::from_secs(300),
            short_ttl: Duration::from_secs(60),
            namespace: "feed".to_owned(),
            bucket: BucketSize::Month,
            stamp_granularity: StampGranularity::Scope,
            filter_combinations: vec![BTreeMap::new()],
            index_cap: 1000,
            home_offset: chrono::Utc.fix(),
            single_flight: true,
            xfetch_beta: None,
            fail_open: true,
            bump_retry_min: Duration::from_millis(10),
            bump_retry_max: Duration::from_millis(100),
            outbox_poll: Duration::from_secs(1),
            outbox_grace: Duration::from_secs(5),
            fail_safe_max_age: None,
            soft_timeout: None,
            hard_timeout: None,
        }
    }
}

impl CacheOptions {
    /// Sets [`Self::clock`].
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`Self::seed`].
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`Self::ttl`].
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`Self::short_ttl`].
    #[must_use]
    pub fn with_short_ttl(mut self, ttl: Duration) -> Self {
        self.short_ttl = ttl;
        self
    }

    /// Sets [`Self::namespace`].
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets [`Self::bucket`].
    #[must_use]
    pub fn with_bucket(mut self, bucket: BucketSize) -> Self {
        self.bucket = bucket;
        self
    }

    /// Sets [`Self::stamp_granularity`].
    #[must_use]
    pub fn with_stamp_granularity(mut self, granularity: StampGranularity) -> Self {
        self.stamp_granularity = granularity;
        self
    }

    /// Sets [`Self::filter_combinations`].
    #[must_use]
    pub fn with_filter_combinations(mut self, combos: Vec<BTreeMap<String, String>>) -> Self {
        self.filter_combinations = combos;
        self
    }

    /// Sets [`Self::index_cap`].
    #[must_use]
    pub fn with_index_cap(mut self, cap: usize) -> Self {
        self.index_cap = cap;
        self
    }

    /// Sets [`Self::home_offset`].
    #[must_use]
    pub fn with_home_offset(mut self, offset: chrono::FixedOffset) -> Self {
        self.home_offset = offset;
        self
    }

    /// Sets [`Self::single_flight`].
    #[must_use]
    pub fn with_single_flight(mut self, on: bool) -> Self {
        self.single_flight = on;
        self
    }

    /// Sets [`Self::xfetch_beta`].
    #[must_use]
    pub fn with_xfetch(mut self, beta: Option<f64>) -> Self {
        self.xfetch_beta = beta;
        self
    }

    /// Sets [`Self::fail_open`].
    #[must_use]
    pub fn with_fail_open(mut self, on: bool) -> Self {
        self.fail_open = on;
        self
    }

    /// Sets [`Self::bump_retry_min`] and [`Self::bump_retry_max`].
    #[must_use]
    pub fn with_bump_retry(mut self, min: Duration, max: Duration) -> Self {
        self.bump_retry_min = min;
        self.bump_retry_max = max;
        self
    }

    /// Sets [`Self::outbox_poll`] and [`Self::outbox_grace`].
    #[must_use]
    pub fn with_outbox_timing(mut self, poll: Duration, grace: Duration) -> Self {
        self.outbox_poll = poll;
        self.outbox_grace = grace;
        self
    }

    /// Sets [`Self::fail_safe_max_age`] (`None`: fail-safe off).
    #[must_use]
    pub fn with_fail_safe(mut self, max_age: Option<Duration>) -> Self {
        self.fail_safe_max_age = max_age;
        self
    }

    /// Sets [`Self::soft_timeout`] and [`Self::hard_timeout`].
    #[must_use]
    pub fn with_load_timeouts(mut self, soft: Option<Duration>, hard: Option<Duration>) -> Self {
        self.soft_timeout = soft;
        self.hard_timeout = hard;
        self
    }

    /// How long past its logical expiry an entry is kept in the store:
    /// [`Self::fail_safe_max_age`] with fail-safe on, nothing without. The
    /// read path stores every entry for its TTL plus this.
    pub fn keep_expired_for(&self) -> Duration {
        self.fail_safe_max_age.unwrap_or(Duration::ZERO)
    }

    /// TTL of every control key a strategy writes (generations, versions):
    /// [`CONTROL_TTL_FLOOR`] (a day), or twice the longest time an entry is
    /// stored (its TTL, plus [`Self::fail_safe_max_age`] with fail-safe
    /// on) if that is longer.
    ///
    /// Why this long: a generation must outlive the entries written under
    /// it. The backends' `incr` keeps a key's expiry, so a generation dies
    /// a fixed time after it was created, however busy its scope; entries
    /// written in its last entry-TTL then lose the rest of their life (one
    /// miss each). A day makes that a once-a-day event per scope instead of
    /// one every few minutes (twice the entry TTL cut `versioned`'s hit
    /// rate on `realistic` from 16.6% to 10.6%), while a replay or an
    /// abandoned namespace still leaves nothing behind for more than a day.
    ///
    /// Why an expired generation is safe: `versioned`, `bucketed` and
    /// `stamped` re-create it at a fresh random start, so the entries it
    /// guarded become unreadable (misses), never readable again with
    /// changed data. `naive-versioned` restarts at 1, its known hazard
    /// (`version-eviction`); its entries from that far back have expired.
    pub fn control_ttl(&self) -> Duration {
        self.ttl
            .max(self.short_ttl)
            .saturating_add(self.keep_expired_for())
            .saturating_mul(2)
            .max(CONTROL_TTL_FLOOR)
    }

    /// Checks every setting; the error ([`Error::Setting`]) names the first
    /// one out of range, as its builder method is called.
    ///
    /// ```
    /// use cache_core::{CacheOptions, Error};
    /// let bad = CacheOptions::default().with_xfetch(Some(-1.0));
    /// assert!(matches!(bad.validate(), Err(Error::Setting { setting: "xfetch", .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |c: char| matches!(c, '{' | '}' | '*' | '?' | '[' | ']' | '\\') || c.is_whitespace();
        if self.namespace.is_empty() || self.namespace.chars().any(bad) {
            return Err(setting(
                "namespace",
                format!(
                    "{:?} must be non-empty, without braces, glob characters or whitespace",
                    self.namespace
                ),
            ));
        }
        for (name, ttl) in [("ttl", self.ttl), ("short_ttl", self.short_ttl)] {
            if ttl.is_zero() || ttl > MAX_TTL {
                return Err(setting(name, format!("must be between 1 ns and 365 days, got {ttl:?}")));
            }
        }
        if self.index_cap == 0 {
            return Err(setting("index_cap", "must be at least 1".to_owned()));
        }
        if self.filter_combinations.is_empty() {
            return Err(setting(
                "filter_combinations",
                "needs at least one combination (an empty map means no filters)".to_owned(),
            ));
        }
        if let Some(b) = self.xfetch_beta.filter(|b| !(b.is_finite() && *b > 0.0)) {
            return Err(setting("xfetch", format!("beta must be a finite number > 0, got {b}")));
        }
        let (min, max) = (self.bump_retry_min, self.bump_retry_max);
        if min.is_zero() || min > max || max > MAX_BUMP_RETRY {
            return Err(setting(
                "bump_retry",
                format!("needs 0 < min <= max <= {MAX_BUMP_RETRY:?}, got min {min:?}, max {max:?}"),
            ));
        }
        if self.outbox_poll.is_zero() || self.outbox_poll > MAX_OUTBOX_TIMING {
            return Err(setting(
                "outbox_poll",
                format!(
                    "must be between 1 ns and {MAX_OUTBOX_TIMING:?}, got {:?}",
                    self.outbox_poll
                ),
            ));
        }
        if self.outbox_grace > MAX_OUTBOX_TIMING {
            return Err(setting(
                "outbox_grace",
                format!("must be at most {MAX_OUTBOX_TIMING:?}, got {:?}", self.outbox_grace),
            ));
        }
        self.validate_fail_safe()
    }

    /// The fail-safe and timeout settings of [`Self::validate`].
    fn validate_fail_safe(&self) -> Result<()> {
        if let Some(age) = self.fail_safe_max_age.filter(|a| a.is_zero() || *a > MAX_TTL) {
            return Err(setting(
                "fail_safe",
                format!("the max age must be between 1 ns and 365 days, got {age:?}"),
            ));
        }
        for (name, t) in [("soft_timeout", self.soft_timeout), ("hard_timeout", self.hard_timeout)] {
            if let Some(t) = t.filter(|t| t.is_zero() || *t > MAX_LOAD_TIMEOUT) {
                return Err(setting(
                    name,
                    format!("must be between 1 ns and {MAX_LOAD_TIMEOUT:?}, got {t:?}"),
                ));
            }
        }
        if self.soft_timeout.is_some() && self.fail_safe_max_age.is_none() {
            return Err(setting(
                "soft_timeout",
                "needs fail-safe on: past a soft timeout a read is answered by its fail-safe entry".to_owned(),
            ));
        }
        if let (Some(soft), Some(hard)) = (self.soft_timeout, self.hard_timeout) {
            if soft >= hard {
                return Err(setting(
                    "soft_timeout",
                    format!("must be below the hard timeout, got soft {soft:?} and hard {hard:?}"),
                ));
            }
        }
        Ok(())
    }
}

fn setting(setting: &'static str, message: String) -> Error {
    Error::Setting { setting, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_setting_is_named() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let fail_safe = CacheOptions::default().with_fail_safe(Some(s(60)));
        let cases: [(CacheOptions, &str); 17] = [
            (CacheOptions::default().with_namespace("a b"), "namespace"),
            (CacheOptions::default().with_namespace(""), "namespace"),
            (CacheOptions::default().with_ttl(Duration::ZERO), "ttl"),
            (CacheOptions::default().with_short_ttl(MAX_TTL * 2), "short_ttl"),
            (CacheOptions::default().with_index_cap(0), "index_cap"),
            (
                CacheOptions::default().with_filter_combinations(Vec::new()),
                "filter_combinations",
            ),
            (CacheOptions::default().with_xfetch(Some(f64::NAN)), "xfetch"),
            (CacheOptions::default().with_bump_retry(ms(0), ms(100)), "bump_retry"),
            (CacheOptions::default().with_bump_retry(ms(200), ms(100)), "bump_retry"),
            (
                CacheOptions::default().with_outbox_timing(Duration::ZERO, ms(1)),
                "outbox_poll",
            ),
            (
                CacheOptions::default().with_outbox_timing(ms(1), MAX_OUTBOX_TIMING * 2),
                "outbox_grace",
            ),
            (
                CacheOptions::default().with_fail_safe(Some(Duration::ZERO)),
                "fail_safe",
            ),
            (CacheOptions::default().with_fail_safe(Some(MAX_TTL * 2)), "fail_safe"),
            (
                CacheOptions::default().with_load_timeouts(Some(ms(50)), None),
                "soft_timeout",
            ),
            (
                fail_safe.clone().with_load_timeouts(Some(ms(500)), Some(ms(500))),
                "soft_timeout",
            ),
            (
                fail_safe.clone().with_load_timeouts(None, Some(Duration::ZERO)),
                "hard_timeout",
            ),
            (
                fail_safe.clone().with_load_timeouts(None, Some(MAX_LOAD_TIMEOUT * 2)),
                "hard_timeout",
            ),
        ];
        for (options, name) in cases {
            match options.validate() {
                Err(Error::Setting { setting, message }) => {
                    assert_eq!(setting, name, "{message}");
                    assert!(!message.is_empty());
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        CacheOptions::default().with_xfetch(Some(1.0)).validate().unwrap();
        fail_safe
            .clone()
            .with_load_timeouts(Some(ms(50)), Some(ms(500)))
            .validate()
            .unwrap();
        CacheOptions::default()
            .with_load_timeouts(None, Some(ms(500)))
            .validate()
            .unwrap();
    }

    #[test]
    fn fail_safe_keeps_entries_and_generations_longer() {
        let base = CacheOptions::default().with_ttl(Duration::from_secs(20 * 3600));
        assert_eq!(base.keep_expired_for(), Duration::ZERO);
        assert_eq!(base.control_ttl(), Duration::from_secs(40 * 3600));
        let on = base.with_fail_safe(Some(Duration::from_secs(4 * 3600)));
        assert_eq!(on.keep_expired_for(), Duration::from_secs(4 * 3600));
        assert_eq!(
            on.control_ttl(),
            Duration::from_secs(48 * 3600),
            "generations outlive kept entries"
        );
    }
}
