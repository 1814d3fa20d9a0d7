//! The strategy scenarios as functions any backend's tests can call
//! (feature `conformance`), so the same acceptance runs on locmem, Redis and
//! Memcached:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn versioned_passes_the_seed_scenarios() {
//!     cache_core::strategy_suite::assert_seed_scenarios_pass(my_backend(), "versioned").await;
//! }
//! ```
//!
//! Every scenario runs a [`Harness`]: a [`RangeCache`] over the backend, a
//! [`ModelDb`] standing in for the database, and a [`ManualClock`] set to the
//! seed's date (2025-10-06). Each harness uses a fresh key namespace, so
//! scenarios can share one server. Functions return what they observed
//! (`assert_*` functions panic with a message naming the backend and
//! strategy): they are test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, TimeDelta};
use serde::Serialize;

use crate::aside::{RangeCache, RangeCacheOptions};
use crate::backend::{Backend, Capabilities, Ttl};
use crate::clock::{Clock, ManualClock};
use crate::conformance::unique_namespace;
use crate::error::{Error, Result};
use crate::hash::splitmix64;
use crate::key::Key;
use crate::strategy::{by_name, BucketSize, StrategyOptions};
use crate::view::{Change, Scope, TimeRange, View};

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
        Self::with_options(backend, strategy, StrategyOptions::default())
    }

    /// As [`Harness::new`], starting from `options` (namespace and clock are
    /// replaced).
    pub fn with_options(backend: Arc<dyn Backend>, strategy: &str, options: StrategyOptions) -> Self {
        let clock = ManualClock::at_unix_millis(SEED_DAY_UNIX_MILLIS);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let options = options
            .with_clock(shared.clone())
            .with_namespace(unique_namespace(&format!("strat-{strategy}")));
        let strategy = by_name(strategy, &options).unwrap();
        let cache = RangeCache::new(backend, strategy, RangeCacheOptions::default().with_clock(shared));
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
        match loaded {
            Ok(bytes) => bytes,
            Err(never) => match never {},
        }
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

/// Which of the seed's three verification scenarios a strategy passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedOutcome {
    /// "Create work item, refresh calendar: the new item appears."
    pub create: bool,
    /// "Edit title or dates, refresh: the changes show."
    pub edit: bool,
    /// "Delete work item, refresh: the item no longer appears."
    pub delete: bool,
}

/// The views the seed scenarios refresh: the October grid as the seed's
/// (+08:00, Monday-first) client sends it, the same month from a UTC
/// Sunday-first client, and the week of the 13th.
pub fn seed_views(calendar: &str) -> Vec<View> {
    vec![
        october_view(calendar),
        View::new([scope(calendar)], range("2025-09-28T00:00:00Z", "2025-11-09T00:00:00Z")).unwrap(),
        View::new(
            [scope(calendar)],
            range("2025-10-13T00:00:00+08:00", "2025-10-20T00:00:00+08:00"),
        )
        .unwrap(),
    ]
}

/// Runs one seed scenario: a calendar with two items, every view read twice
/// (the second read must be a hit, or the scenario proves nothing), then
/// `write`, then a refresh of every view. True when every refresh is fresh.
async fn seed_scenario(
    backend: Arc<dyn Backend>,
    strategy: &str,
    write: fn(&mut ModelDb, u64) -> Option<Change>,
) -> bool {
    let h = Harness::new(backend, strategy);
    let cal = "cal:1";
    let standup = {
        let mut db = h.db.lock().unwrap();
        let (id, _) = db.create(
            scope(cal),
            range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00"),
            "standup",
            "meeting",
        );
        db.create(
            scope(cal),
            range("2025-10-02T00:00:00+08:00", "2025-10-03T00:00:00+08:00"),
            "offsite",
            "task",
        );
        id
    };
    let views = seed_views(cal);
    for view in &views {
        h.read(view).await;
        let hits = h.cache.metrics().hits;
        assert!(!h.read_is_stale(view).await, "{}: warm read", h.describe());
        assert_eq!(
            h.cache.metrics().hits,
            hits + 1,
            "{}: second read must hit",
            h.describe()
        );
    }
    h.commit(|db| write(db, standup)).await;
    let mut fresh = true;
    for view in &views {
        fresh &= !h.read_is_stale(view).await;
    }
    fresh
}

/// The seed's three verification scenarios (create, edit, delete an item,
/// then refresh the October 2025 month view and its variants), each in a
/// fresh namespace.
pub async fn seed_scenarios(backend: Arc<dyn Backend>, strategy: &str) -> SeedOutcome {
    let create = seed_scenario(backend.clone(), strategy, |db, _| {
        let (_, change) = db.create(
            scope("cal:1"),
            range("2025-10-16T14:00:00+08:00", "2025-10-16T15:00:00+08:00"),
            "retro",
            "meeting",
        );
        Some(change)
    })
    .await;
    let edit = seed_scenario(backend.clone(), strategy, |db, id| {
        // New title and new dates: out of the week view, still in the month.
        db.edit(
            id,
            range("2025-11-05T10:00:00+08:00", "2025-11-05T11:00:00+08:00"),
            "standup (moved)",
        )
    })
    .await;
    let delete = seed_scenario(backend, strategy, |db, id| db.delete(id)).await;
    SeedOutcome { create, edit, delete }
}

/// Panics unless `strategy` passes all three seed scenarios on `backend`.
pub async fn assert_seed_scenarios_pass(backend: Arc<dyn Backend>, strategy: &str) {
    let name = backend.name().to_owned();
    let outcome = seed_scenarios(backend, strategy).await;
    assert_eq!(
        outcome,
        SeedOutcome {
            create: true,
            edit: true,
            delete: true
        },
        "{strategy} on {name}: seed scenarios"
    );
}

/// The `version-eviction` hazard: cache the October view, delete an item,
/// cache the view again, then delete the strategy's control keys
/// (generations) while data keys stay. Returns whether the next read served
/// the deleted item.
pub async fn generation_eviction_serves_stale(backend: Arc<dyn Backend>, strategy: &str) -> bool {
    let h = Harness::new(backend.clone(), strategy);
    let (view, id) = h.october_standup();
    assert!(!h.read_is_stale(&view).await);
    h.commit(|db| db.delete(id)).await;
    assert!(!h.read_is_stale(&view).await, "{}: read after the delete", h.describe());
    let control = h.cache.strategy().control_keys(&view);
    assert!(!control.is_empty(), "{}: no control keys to evict", h.describe());
    backend.delete_many(&control).await.unwrap();
    h.read_is_stale(&view).await
}

/// Losing an entry: cache a view, change it, read it again (refilling),
/// then delete the entry itself (eviction) while its generations stay.
/// Returns whether any read served stale data (it must not: a lost entry is
/// a miss).
pub async fn entry_loss_serves_stale(backend: Arc<dyn Backend>, strategy: &str) -> bool {
    let h = Harness::new(backend.clone(), strategy);
    let (view, id) = h.october_standup();
    let mut stale = h.read_is_stale(&view).await;
    h.commit(|db| db.delete(id)).await;
    stale |= h.read_is_stale(&view).await;
    let plan = h.cache.strategy().plan_read(backend.as_ref(), &view).await.unwrap();
    assert!(
        backend.delete(&plan.key).await.unwrap(),
        "{}: the entry was stored",
        h.describe()
    );
    stale |= h.read_is_stale(&view).await;
    stale | h.read_is_stale(&view).await
}

/// The `stale-set-race`: a reader plans, misses and queries the database;
/// while its (slow) loader is still running, an item is deleted and the
/// cache invalidated; then the loader returns the old feed, which the
/// reader stores. Returns whether a later read serves the deleted item.
pub async fn stale_set_race_serves_stale(backend: Arc<dyn Backend>, strategy: &str) -> bool {
    let h = Harness::new(backend, strategy);
    let (view, id) = h.october_standup();
    let (queried_tx, queried_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let (cache, db, view) = (h.cache.clone(), h.db.clone(), view.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&view.clone(), move || async move {
                    let snapshot = db.lock().unwrap().query(&view);
                    let _ = queried_tx.send(());
                    // The slow part of the load: the write lands meanwhile.
                    let _ = release_rx.await;
                    Ok::<_, Infallible>(snapshot)
                })
                .await
        })
    };
    queried_rx.await.unwrap();
    h.commit(|db| db.delete(id)).await;
    release_tx.send(()).unwrap();
    let served_old = reader.await.unwrap().unwrap();
    // The racing request started before the commit: serving the old feed to
    // it is allowed. The question is what it left behind.
    assert_ne!(served_old, h.truth(&view), "the loader must have seen the old feed");
    h.read_is_stale(&view).await
}

/// What readers inside the commit-to-bump window were served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOutcome {
    /// A read after the commit, before the invalidation, answered from the
    /// entry cached before the write: was it stale?
    pub cached_read_stale: bool,
    /// A read after the commit that found a load from before the commit in
    /// progress (single-flight): was it handed that load's stale result?
    pub joined_read_stale: bool,
}

/// The commit-to-bump window: reads that arrive after a write committed
/// but before the cache heard of it. With `fenced`, writes go through
/// [`RangeCache::begin_write`] before the commit and
/// [`RangeCache::end_write`] after; otherwise [`RangeCache::invalidate`]
/// after. Either way, the reads after the invalidation must be fresh.
pub async fn commit_window(backend: Arc<dyn Backend>, strategy: &str, fenced: bool) -> WindowOutcome {
    let h = Harness::new(backend, strategy);
    let (view, id) = h.october_standup();
    let change = Change::new(
        scope("cal:1"),
        [range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00")],
    )
    .unwrap();
    let begin = |c: Change| {
        let cache = h.cache.clone();
        async move {
            if fenced {
                cache.begin_write(&c).await.unwrap();
            }
        }
    };
    let end = |c: Change| {
        let cache = h.cache.clone();
        async move {
            if fenced {
                cache.end_write(&c).await.unwrap();
            } else {
                cache.invalidate(&c).await.unwrap();
            }
        }
    };

    // 1. A cached entry, then a write: a read between commit and bump.
    assert!(!h.read_is_stale(&view).await);
    begin(change.clone()).await;
    assert!(h.db.lock().unwrap().delete(id).is_some());
    let cached_read_stale = h.read_is_stale(&view).await;
    end(change.clone()).await;
    assert!(!h.read_is_stale(&view).await, "{}: read after the end", h.describe());

    // 2. A load that read the database before a write, still running when
    //    a reader arrives after the commit.
    end(change.clone()).await; // drop the cached entry: the next read loads
    let (queried_tx, queried_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = {
        let (cache, db, view) = (h.cache.clone(), h.db.clone(), view.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&view.clone(), move || async move {
                    let snapshot = db.lock().unwrap().query(&view);
                    let _ = queried_tx.send(());
                    let _ = release_rx.await;
                    Ok::<_, Infallible>(snapshot)
                })
                .await
        })
    };
    queried_rx.await.unwrap();
    begin(change.clone()).await;
    h.db.lock().unwrap().create(
        scope("cal:1"),
        range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00"),
        "retro",
        "meeting",
    );
    let late = {
        let h = h.clone();
        let view = view.clone();
        tokio::spawn(async move { h.read(&view).await })
    };
    // Let the late reader plan and (without a fence) join the slow load.
    tokio::time::sleep(Duration::from_millis(50)).await;
    release_tx.send(()).unwrap();
    let late = late.await.unwrap();
    let joined_read_stale = late != h.truth(&view);
    let _ = slow.await.unwrap();
    end(change).await;
    assert!(!h.read_is_stale(&view).await, "{}: read after the end", h.describe());
    WindowOutcome {
        cached_read_stale,
        joined_read_stale,
    }
}

/// Misses of `bucketed` (month buckets) and `versioned` on one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketComparison {
    /// Misses under `bucketed`.
    pub bucketed_misses: u64,
    /// Misses under `versioned`.
    pub versioned_misses: u64,
    /// Reads per strategy.
    pub reads: u64,
    /// Stale reads seen under either strategy (must be 0).
    pub stale_reads: u64,
}

/// Views spanning three months each (one per month of 2025), changes that
/// only touch October: ten rounds of "read every view, edit an October
/// item".
pub async fn bucketed_vs_versioned(backend: Arc<dyn Backend>) -> BucketComparison {
    let options = StrategyOptions::default().with_bucket(BucketSize::Month);
    let bucketed = year_of_edits(backend.clone(), "bucketed", options.clone()).await;
    let versioned = year_of_edits(backend, "versioned", options).await;
    BucketComparison {
        bucketed_misses: bucketed.misses,
        versioned_misses: versioned.misses,
        reads: versioned.reads,
        stale_reads: bucketed.stale_reads + versioned.stale_reads,
    }
}

/// What [`year_of_edits`] measured for one strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Reads made.
    pub reads: u64,
    /// Reads not served from the cache.
    pub misses: u64,
    /// Reads that served data the database no longer holds.
    pub stale_reads: u64,
}

/// Twelve three-month views (one per month of 2025, as a month grid with
/// its spill-over) read ten times, with an October item edited between
/// rounds: a strategy that invalidates per time bucket keeps the views that
/// do not show October cached.
pub async fn year_of_edits(backend: Arc<dyn Backend>, strategy: &str, options: StrategyOptions) -> Workload {
    let views: Vec<View> = (1..=12)
        .map(|m: u32| {
            let start = chrono::NaiveDate::from_ymd_opt(2025, m, 1).unwrap();
            let s = start.checked_sub_months(chrono::Months::new(1)).unwrap();
            let e = start.checked_add_months(chrono::Months::new(2)).unwrap();
            View::new(
                [scope("cal:1")],
                TimeRange::new(
                    s.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset(),
                    e.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset(),
                )
                .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let h = Harness::with_options(backend, strategy, options);
    let id = {
        let mut db = h.db.lock().unwrap();
        db.create(
            scope("cal:1"),
            range("2025-03-03T09:00:00Z", "2025-03-03T10:00:00Z"),
            "march",
            "task",
        );
        db.create(
            scope("cal:1"),
            range("2025-10-10T09:00:00Z", "2025-10-10T10:00:00Z"),
            "october",
            "task",
        )
        .0
    };
    let (mut reads, mut stale_reads) = (0, 0);
    for round in 0..10u32 {
        for view in &views {
            reads += 1;
            if h.read_is_stale(view).await {
                stale_reads += 1;
            }
        }
        let day = 10 + round;
        h.commit(|db| {
            db.edit(
                id,
                range(
                    &format!("2025-10-{day:02}T09:00:00Z"),
                    &format!("2025-10-{day:02}T10:00:00Z"),
                ),
                &format!("october v{round}"),
            )
        })
        .await;
    }
    Workload {
        reads,
        misses: h.cache.metrics().misses,
        stale_reads,
    }
}

/// One step of a model-checking run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOp {
    /// Serve view number `view` of [`model_views`] (modulo their count) and
    /// compare with the database.
    Read {
        /// Index into the view catalogue.
        view: usize,
    },
    /// Create an item in scope `scope % 2` starting `start_hour` hours after
    /// 2025-09-01T00:00Z, lasting `hours` hours.
    Create {
        /// Which calendar (0 or 1).
        scope: usize,
        /// Start, hours after 2025-09-01T00:00Z.
        start_hour: u32,
        /// Duration in hours (at least 1).
        hours: u32,
        /// Which kind (0: meeting, 1: task).
        kind: usize,
    },
    /// Move and rename the `item`-th existing item (modulo their count).
    Edit {
        /// Index among existing items.
        item: usize,
        /// New start, hours after 2025-09-01T00:00Z.
        start_hour: u32,
        /// New duration in hours.
        hours: u32,
    },
    /// Delete the `item`-th existing item (modulo their count).
    Delete {
        /// Index among existing items.
        item: usize,
    },
    /// Move the clock forward (entries may expire logically).
    Advance {
        /// Seconds.
        secs: u32,
    },
}

/// The views a model run reads: month grids (both `firstDay`s, several
/// offsets), weeks, a day, a filtered list month, a view over both
/// calendars and a four-month view crossing many buckets.
pub fn model_views() -> Vec<View> {
    let one = |start: &str, end: &str| View::new([scope("cal:1")], range(start, end)).unwrap();
    vec![
        october_view("cal:1"),
        one("2025-09-28T00:00:00Z", "2025-11-09T00:00:00Z"),
        View::new(
            [scope("cal:2")],
            range("2025-10-27T00:00:00-05:00", "2025-12-08T00:00:00-05:00"),
        )
        .unwrap(),
        one("2025-10-13T00:00:00+08:00", "2025-10-20T00:00:00+08:00"),
        one("2025-10-15T00:00:00Z", "2025-10-16T00:00:00Z"),
        one("2025-10-01T00:00:00Z", "2025-11-01T00:00:00Z").with_param("kind", "meeting"),
        View::new(
            [scope("cal:2"), scope("cal:1")],
            range("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00"),
        )
        .unwrap(),
        one("2025-09-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        View::new(
            [scope("cal:2")],
            range("2025-09-01T00:00:00+02:00", "2025-10-01T00:00:00+02:00"),
        )
        .unwrap(),
    ]
}

fn hour_range(start_hour: u32, hours: u32) -> TimeRange {
    let base = at("2025-09-01T00:00:00Z");
    let start = base + TimeDelta::hours(i64::from(start_hour));
    TimeRange::new(start, start + TimeDelta::hours(i64::from(hours.max(1)))).unwrap()
}

/// A deterministic random sequence of `len` operations (splitmix64 from
/// `seed`): dates over September to December 2025, reads twice as likely
/// as each kind of write.
pub fn random_ops(seed: u64, len: usize) -> Vec<ModelOp> {
    let mut state = seed;
    let mut next = |n: u64| splitmix64(&mut state) % n;
    (0..len)
        .map(|_| match next(10) {
            0..=4 => ModelOp::Read {
                view: next(64) as usize,
            },
            5 | 6 => ModelOp::Create {
                scope: next(2) as usize,
                start_hour: next(24 * 120) as u32,
                hours: 1 + next(72) as u32,
                kind: next(2) as usize,
            },
            7 => ModelOp::Edit {
                item: next(64) as usize,
                start_hour: next(24 * 120) as u32,
                hours: 1 + next(72) as u32,
            },
            8 => ModelOp::Delete {
                item: next(64) as usize,
            },
            _ => ModelOp::Advance { secs: next(120) as u32 },
        })
        .collect()
}

/// Runs `ops` sequentially on a fresh harness and checks every read
/// against the model. Returns the number of reads, or a description of the
/// first stale one. Ends by reading every view once more.
pub async fn model_check(backend: Arc<dyn Backend>, strategy: &str, ops: &[ModelOp]) -> Result<usize, String> {
    model_check_with(backend, strategy, StrategyOptions::default(), ops).await
}

/// [`model_check`] with strategy options (e.g. week buckets for `bucketed`).
pub async fn model_check_with(
    backend: Arc<dyn Backend>,
    strategy: &str,
    options: StrategyOptions,
    ops: &[ModelOp],
) -> Result<usize, String> {
    let h = Harness::with_options(backend, strategy, options);
    let views = model_views();
    let mut reads = 0;
    let check = |served: Bytes, view: &View, step: usize, h: &Harness| -> Result<(), String> {
        let truth = h.truth(view);
        if served == truth {
            Ok(())
        } else {
            Err(format!(
                "{}: stale read at step {step} of view {view:?}:\n served {}\n truth  {}",
                h.describe(),
                String::from_utf8_lossy(&served),
                String::from_utf8_lossy(&truth)
            ))
        }
    };
    for (step, op) in ops.iter().enumerate() {
        match *op {
            ModelOp::Read { view } => {
                let view = &views[view % views.len()];
                reads += 1;
                check(h.read(view).await, view, step, &h)?;
            }
            ModelOp::Create {
                scope: s,
                start_hour,
                hours,
                kind,
            } => {
                let cal = if s % 2 == 0 { "cal:1" } else { "cal:2" };
                let kind = if kind % 2 == 0 { "meeting" } else { "task" };
                h.commit(|db| {
                    Some(
                        db.create(scope(cal), hour_range(start_hour, hours), &format!("item {step}"), kind)
                            .1,
                    )
                })
                .await;
            }
            ModelOp::Edit {
                item,
                start_hour,
                hours,
            } => {
                h.commit(|db| {
                    let ids = db.ids();
                    let id = *ids.get(item % ids.len().max(1))?;
                    db.edit(id, hour_range(start_hour, hours), &format!("edited at {step}"))
                })
                .await;
            }
            ModelOp::Delete { item } => {
                h.commit(|db| {
                    let ids = db.ids();
                    let id = *ids.get(item % ids.len().max(1))?;
                    db.delete(id)
                })
                .await;
            }
            ModelOp::Advance { secs } => h.clock.advance(Duration::from_secs(u64::from(secs))),
        }
    }
    for view in &views {
        reads += 1;
        check(h.read(view).await, view, ops.len(), &h)?;
    }
    Ok(reads)
}

/// [`model_check`] over `random_ops(seed, len)` for every seed in `seeds`;
/// panics on the first stale read, naming the seed.
pub async fn assert_model_check_seeds(
    backend: Arc<dyn Backend>,
    strategy: &str,
    seeds: std::ops::Range<u64>,
    len: usize,
) {
    for seed in seeds {
        if let Err(e) = model_check(backend.clone(), strategy, &random_ops(seed, len)).await {
            panic!("seed {seed}: {e}");
        }
    }
}

/// Single-flight: `n` concurrent reads of one cold view call the loader
/// once. Returns the loader call count.
pub async fn concurrent_misses_load_once(backend: Arc<dyn Backend>, strategy: &str, n: usize) -> u64 {
    let h = Harness::new(backend, strategy);
    let view = october_view("cal:1");
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (cache, view, calls, gate) = (h.cache.clone(), view.clone(), calls.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&view, || async move {
                        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Hold the load open until every reader has arrived.
                        tokio::time::timeout(Duration::from_millis(200), gate.notified())
                            .await
                            .ok();
                        Ok::<_, Infallible>(Bytes::from_static(b"[]"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.notify_waiters();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Bytes::from_static(b"[]"));
    }
    let m = h.cache.metrics();
    assert_eq!(m.hits + m.misses, n as u64, "every read is a hit or a miss");
    calls.load(std::sync::atomic::Ordering::SeqCst)
}

/// [`SEED_DAY_UNIX_MILLIS`] as a `SystemTime`.
pub fn seed_day() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(SEED_DAY_UNIX_MILLIS)
}

/// What [`wildcard_index_overflow`] observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOverflow {
    /// Views whose entry was readable after `store`.
    pub cached: usize,
    /// Of those, entries still readable after the scope's invalidation.
    pub stale: usize,
}

/// Issue 15's `wildcard` index overflow: `views` views over `scopes`, each
/// with a key of ~7 KB (a long filter parameter), are stored through
/// `wildcard`, then the **last** scope (the one whose index a multi-scope
/// view relies on even where prefix deletion exists) is invalidated over
/// every range. A correct strategy leaves `stale == 0`: an entry that did
/// not fit in the index must not have been cached.
pub async fn wildcard_index_overflow(backend: Arc<dyn Backend>, scopes: &[&str], views: usize) -> IndexOverflow {
    let options = StrategyOptions::default().with_namespace(unique_namespace("wc_overflow"));
    let strategy = by_name("wildcard", &options).unwrap();
    let scopes: Vec<Scope> = scopes.iter().map(|s| Scope::new(*s).unwrap()).collect();
    let day = |i: usize| -> TimeRange {
        let start = DateTime::parse_from_rfc3339("2025-10-01T00:00:00Z").unwrap() + TimeDelta::days(i as i64);
        TimeRange::new(start, start + TimeDelta::days(1)).unwrap()
    };
    let filler = "f".repeat(7_000);
    let view = |i: usize| {
        View::new(scopes.iter().cloned(), day(i))
            .unwrap()
            .with_param("work_type", format!("{filler}{i}"))
    };
    let mut cached = Vec::new();
    for i in 0..views {
        let v = view(i);
        let plan = strategy.plan_read(&*backend, &v).await.unwrap();
        // A refused store is allowed (the view is then served uncached).
        let _ = strategy.store(&*backend, &v, &plan, Bytes::from(format!("v{i}"))).await;
        if backend.get(&plan.key).await.unwrap().is_some() {
            cached.push(plan.key.clone());
        }
    }
    let last = scopes.last().unwrap().clone();
    let change = Change::new(last, (0..views).map(day)).unwrap();
    strategy.invalidate(&*backend, &change).await.unwrap();
    let mut stale = 0;
    for key in &cached {
        if backend.get(key).await.unwrap().is_some() {
            stale += 1;
        }
    }
    IndexOverflow {
        cached: cached.len(),
        stale,
    }
}

/// Generates issue #5's strategy acceptance tests for one backend
/// configuration, in a module named after it (e.g.
/// `strategies_redis_cluster::stale_set_race_hits_wildcard_not_versioned`),
/// the way [`conformance_tests!`](crate::conformance_tests) does for the
/// backend contract. `$make` is an async expression yielding
/// `(guard, Arc<dyn Backend>)`; the guard (a server, `()` for none) lives as
/// long as the test. Memcached-like backends without prefix deletion run
/// `wildcard` on its key index.
#[macro_export]
macro_rules! strategy_tests {
    ($module:ident, $make:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            use $crate::strategy_suite as suite;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn seed_scenarios_pass_for_versioned_bucketed_wildcard() {
                let (_guard, backend) = $make.await;
                for strategy in ["versioned", "bucketed", "wildcard", "naive-versioned", "stamped"] {
                    suite::assert_seed_scenarios_pass(backend.clone(), strategy).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fixed_month_serves_the_deleted_item() {
                let (_guard, backend) = $make.await;
                let outcome = suite::seed_scenarios(backend, "fixed-month").await;
                assert!(
                    !outcome.delete,
                    "fixed-month must serve the deleted item: {outcome:?}"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lost_generation_versioned_fresh_naive_stale() {
                let (_guard, backend) = $make.await;
                assert!(!suite::generation_eviction_serves_stale(backend.clone(), "versioned").await);
                assert!(!suite::generation_eviction_serves_stale(backend.clone(), "bucketed").await);
                assert!(!suite::generation_eviction_serves_stale(backend.clone(), "stamped").await);
                assert!(!suite::entry_loss_serves_stale(backend.clone(), "stamped").await);
                assert!(suite::generation_eviction_serves_stale(backend, "naive-versioned").await);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_set_race_hits_wildcard_not_versioned() {
                let (_guard, backend) = $make.await;
                assert!(suite::stale_set_race_serves_stale(backend.clone(), "wildcard").await);
                assert!(!suite::stale_set_race_serves_stale(backend.clone(), "versioned").await);
                assert!(!suite::stale_set_race_serves_stale(backend.clone(), "stamped").await);
                assert!(!suite::stale_set_race_serves_stale(backend, "bucketed").await);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stamped_fence_closes_the_commit_to_bump_window() {
                let (_guard, backend) = $make.await;
                let open = suite::WindowOutcome {
                    cached_read_stale: true,
                    joined_read_stale: true,
                };
                let closed = suite::WindowOutcome {
                    cached_read_stale: false,
                    joined_read_stale: false,
                };
                assert_eq!(
                    suite::commit_window(backend.clone(), "stamped", true).await,
                    closed
                );
                assert_eq!(
                    suite::commit_window(backend.clone(), "stamped", false).await,
                    open
                );
                // Only `stamped` fences: the others keep the window.
                assert_eq!(suite::commit_window(backend, "versioned", true).await, open);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bucketed_misses_less_than_versioned() {
                let (_guard, backend) = $make.await;
                let c = suite::bucketed_vs_versioned(backend).await;
                assert_eq!(c.stale_reads, 0, "{c:?}");
                assert!(c.bucketed_misses < c.versioned_misses, "{c:?}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn seeded_random_sequences_never_read_stale() {
                let (_guard, backend) = $make.await;
                for strategy in ["versioned", "bucketed", "wildcard", "stamped"] {
                    suite::assert_model_check_seeds(backend.clone(), strategy, 0..8, 60).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_misses_call_the_loader_once() {
                let (_guard, backend) = $make.await;
                assert_eq!(
                    suite::concurrent_misses_load_once(backend, "versioned", 16).await,
                    1
                );
            }
        }
    };
}
