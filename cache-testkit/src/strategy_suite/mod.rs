//! The strategy scenarios as functions any backend's tests can call
//! (this crate), so the same acceptance runs on locmem, Redis and
//! Memcached:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn versioned_passes_the_seed_scenarios() {
//!     cache_testkit::strategy_suite::assert_seed_scenarios_pass(my_backend(), "versioned").await;
//! }
//! ```
//!
//! Every scenario runs a [`Harness`]: a [`RangeCache`] over the backend, a
//! [`ModelDb`] standing in for the database, and a [`ManualClock`] set to the
//! seed's date (2025-10-06). Each harness uses a fresh key namespace, so
//! scenarios can share one server. Functions return what they observed
//! (`assert_*` functions panic with a message naming the backend and
//! strategy): they are test code.
//!
//! # Layout
//!
//! - `mod.rs` (here): dates and views of the seed, [`ModelDb`], [`Harness`].
//! - `hazards.rs`: the seed's scenarios, lost generations and entries, the
//!   stale-set race, the commit-to-bump window, concurrent misses, the
//!   wildcard index cap.
//! - `freeze.rs`: a freeze during a write: the bump fails, is queued and
//!   re-applied; how long after the thaw another process is served stale
//!   data (a [`Freezer`]: a `FreezeSwitch` on any backend, or `SIGSTOP` of
//!   a real server).
//! - `workloads.rs`: `bucketed` against `versioned`, a year of edits.
//! - `model.rs`: random operation sequences against the model database.
//! - `macros.rs`: [`strategy_tests!`](crate::strategy_tests), the suite as
//!   tests for one backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, TimeDelta};
use serde::Serialize;

use crate::conformance::unique_namespace;
use cache_core::aside::{LoadError, RangeCache};
use cache_core::backend::{Backend, Capabilities, Ttl};
use cache_core::clock::{Clock, ManualClock};
use cache_core::error::{Error, Result};
use cache_core::key::Key;
use cache_core::strategy::{by_name, BucketSize};
use cache_core::view::{Change, Scope, TimeRange, View};
use cache_core::CacheOptions;

/// 2025-10-06T09:00:00Z, the date of the seed's incident: "today" for
/// `fixed-month`.
pub const SEED_DAY_UNIX_MILLIS: u64 = 1_759_741_200_000;

/// Parses an RFC 3339 instant (test helper).
pub fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("bad instant {s:?}: {e}"))
}

/// `[start, end)` from two RFC 3339 instants (test helper).
pub fn range(start: &str, end: &str) -> TimeRange {
    TimeRange::new(at(start), at(end)).unwrap()
}

/// A scope by name (test helper).
pub fn scope(name: &str) -> Scope {
    Scope::new(name).unwrap()
}

/// The October 2025 month view as FullCalendar requests it with
/// `firstDay: 1` from a `+08:00` browser: `2025-09-29 .. 2025-11-10`.
pub fn october_view(calendar: &str) -> View {
    View::new(
        [scope(calendar)],
        range("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00"),
    )
    .unwrap()
}

/// A backend wrapper that hides [`Backend::delete_prefix`], as Memcached
/// lacks it, so `wildcard` falls back to its key index on any backend.
#[derive(Debug)]
pub struct WithoutPrefixDelete<B>(pub B);

#[async_trait]
impl<B: Backend> Backend for WithoutPrefixDelete<B> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities().with_prefix_delete(false)
    }
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.0.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.0.get_many(keys).await
    }
    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.0.set(key, value, ttl).await
    }
    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        self.0.set_many(entries, ttl).await
    }
    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.0.add(key, value, ttl).await
    }
    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        self.0.incr(key, delta).await
    }
    async fn delete(&self, key: &Key) -> Result<bool> {
        self.0.delete(key).await
    }
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.0.delete_many(keys).await
    }
    async fn delete_prefix(&self, _prefix: &str) -> Result<u64> {
        Err(Error::NotSupported {
            backend: self.0.name().to_owned(),
            operation: "delete_prefix",
        })
    }
}

/// One calendar item of the model database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Primary key.
    pub id: u64,
    /// The calendar it belongs to.
    pub scope: Scope,
    /// When it happens.
    pub range: TimeRange,
    /// Changes on edits, so an edit that keeps the dates is still visible.
    pub title: String,
    /// A filterable attribute (views may carry a `kind` parameter).
    pub kind: String,
}

/// The ground truth: items, and the feed every view should show.
#[derive(Debug, Default, Clone)]
pub struct ModelDb {
    items: BTreeMap<u64, Item>,
    next_id: u64,
}

impl ModelDb {
    /// The feed of `view`: the items of its scopes overlapping its range
    /// (and matching its `kind` parameter, if any), as JSON ordered by id.
    pub fn query(&self, view: &View) -> Bytes {
        let visible: Vec<&Item> = self
            .items
            .values()
            .filter(|i| view.scopes.contains(&i.scope))
            .filter(|i| i.range.overlaps(&view.range))
            .filter(|i| view.params.get("kind").is_none_or(|k| *k == i.kind))
            .collect();
        Bytes::from(serde_json::to_vec(&visible).unwrap())
    }

    /// Ids of the items, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.items.keys().copied().collect()
    }

    /// Inserts an item; returns its id and the change to invalidate.
    pub fn create(&mut self, scope: Scope, range: TimeRange, title: &str, kind: &str) -> (u64, Change) {
        self.next_id += 1;
        let id = self.next_id;
        let change = Change::new(scope.clone(), [range]).unwrap();
        self.items.insert(
            id,
            Item {
                id,
                scope,
                range,
                title: title.to_owned(),
                kind: kind.to_owned(),
            },
        );
        (id, change)
    }

    /// Moves and renames item `id`; the change names the old and new dates.
    pub fn edit(&mut self, id: u64, range: TimeRange, title: &str) -> Option<Change> {
        let item = self.items.get_mut(&id)?;
        let old = item.range;
        item.range = range;
        item.title = title.to_owned();
        Some(Change::new(item.scope.clone(), [old, range]).unwrap())
    }

    /// Deletes item `id`.
    pub fn delete(&mut self, id: u64) -> Option<Change> {
        let item = self.items.remove(&id)?;
        Some(Change::new(item.scope, [item.range]).unwrap())
    }
}

/// A cache, a model database and a manual clock wired together.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The cache-aside layer under test.
    pub cache: Arc<RangeCache>,
    /// The ground truth.
    pub db: Arc<Mutex<ModelDb>>,
    /// Time for the strategy and the cache.
    pub clock: ManualClock,
}

impl Harness {
    /// A harness for `strategy` on `backend` in a fresh namespace, with the
    /// clock at the seed's date.
    pub fn new(backend: Arc<dyn Backend>, strategy: &str) -> Self {
        Self::with_options(backend, strategy, CacheOptions::default())
    }

    /// As [`Harness::new`], starting from `options` (namespace and clock are
    /// replaced).
    pub fn with_options(backend: Arc<dyn Backend>, strategy: &str, options: CacheOptions) -> Self {
        let clock = ManualClock::at_unix_millis(SEED_DAY_UNIX_MILLIS);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let options = options
            .with_clock(shared.clone())
            .with_namespace(unique_namespace(&format!("strat-{strategy}")));
        let cache = RangeCache::builder(backend)
            .options(options.with_clock(shared))
            .strategy(strategy)
            .build()
            .unwrap();
        Harness {
            cache: Arc::new(cache),
            db: Arc::new(Mutex::new(ModelDb::default())),
            clock,
        }
    }

    /// What the database says `view` shows now.
    pub fn truth(&self, view: &View) -> Bytes {
        self.db.lock().unwrap().query(view)
    }

    /// Serves `view` through the cache, loading from the model on a miss.
    pub async fn read(&self, view: &View) -> Bytes {
        let db = self.db.clone();
        let v = view.clone();
        let loaded = self
            .cache
            .get_or_load(view, move || async move {
                Ok::<_, Infallible>(db.lock().unwrap().query(&v))
            })
            .await;
        // Fail-open is on, so only the (infallible) loader could fail.
        loaded.expect("a fail-open read with an infallible loader")
    }

    /// Serves `view` and reports whether the response was stale (differs
    /// from the database at the moment it was served).
    pub async fn read_is_stale(&self, view: &View) -> bool {
        let served = self.read(view).await;
        served != self.truth(view)
    }

    /// October's month view of `cal:1` and the id of a stand-up on
    /// 15 October created in it (the setup the hazard checks share).
    pub fn october_standup(&self) -> (View, u64) {
        let id = self
            .db
            .lock()
            .unwrap()
            .create(
                scope("cal:1"),
                range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00"),
                "standup",
                "meeting",
            )
            .0;
        (october_view("cal:1"), id)
    }

    /// Commits `write` to the model, then invalidates (in that order).
    pub async fn commit(&self, write: impl FnOnce(&mut ModelDb) -> Option<Change>) {
        let change = write(&mut self.db.lock().unwrap());
        if let Some(change) = change {
            self.cache.invalidate(&change).await.unwrap();
        }
    }

    fn describe(&self) -> String {
        format!("{} on {}", self.cache.strategy().name(), self.cache.backend().name())
    }
}

/// [`SEED_DAY_UNIX_MILLIS`] as a `SystemTime`.
pub fn seed_day() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(SEED_DAY_UNIX_MILLIS)
}

mod freeze;
mod hazards;
mod macros;
mod model;
mod workloads;

pub use freeze::*;
pub use hazards::*;
pub use model::*;
pub use workloads::*;

/// SplitMix64 (Steele, Lea, Flood 2014): the suite's seeded random
/// sequences. A copy of cache-core's internal one, so the suite uses only
/// the public API.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
