//! Cache-aside for range views: [`RangeCache::get_or_load`] reads through a
//! [`Strategy`], calls the loader on a miss and stores the result;
//! [`RangeCache::invalidate`] is called after a write commits (or
//! [`RangeCache::begin_write`] before it and [`RangeCache::end_write`]
//! after it, which closes the commit-to-bump window with `stamped`).
//!
//! `RangeCache` is a thin async driver of the sans-IO core in
//! [`crate::flow`]: every decision below is taken there, by the same code
//! the simulator drives in virtual time. What it adds over the strategy's
//! steps:
//!
//! - **Logical expiry.** Entries are stored as an [`Envelope`](crate::envelope::Envelope) whose expiry
//!   and load time follow the injected [`Clock`], so a simulation on a
//!   [`ManualClock`](crate::ManualClock) expires entries exactly.
//! - **Single-flight** (on by default). Concurrent misses on one key in one
//!   process call the loader once; the others wait for its result, and
//!   requests arriving while the leader stores it take it at once. If the
//!   leader fails or is cancelled, a waiter takes over with its own loader.
//!   (Across processes nothing is coordinated: that would need a lock in
//!   the backend.)
//! - **XFetch** (optional): probabilistic early refresh (Vattani, Chierichetti,
//!   Lowenstein, VLDB 2015). A reader recomputes a fresh entry early when
//!   `now − Δ·β·ln(rand) ≥ expiry`, `Δ` being how long the last load took, so
//!   a popular entry is usually refreshed by one reader before it expires
//!   instead of by all of them after. `rand` comes from a seeded PRNG.
//! - **Fail-open reads.** A backend error while planning or reading counts in
//!   [`CacheMetrics::read_errors`] and the view is served from the loader; an
//!   error while storing counts in [`CacheMetrics::store_errors`]. Errors of
//!   [`RangeCache::invalidate`] are returned: a lost invalidation means stale
//!   reads, which the caller must know about.
//! - **Metrics**: hits, misses, loader calls, invalidations, and backend
//!   round trips split into the read path and the write path (two
//!   [`Instrumented`] wrappers over the same backend).
//!
//! ```
//! # async fn demo(backend: std::sync::Arc<dyn cache_core::Backend>, view: cache_core::View)
//! # -> Result<(), std::io::Error> {
//! use cache_core::aside::{RangeCache, RangeCacheOptions};
//! use cache_core::strategy::{by_name, StrategyOptions};
//! use cache_core::Bytes;
//! let strategy = by_name("versioned", &StrategyOptions::default()).expect("known name");
//! let cache = RangeCache::new(backend, strategy, RangeCacheOptions::default());
//! let feed = cache
//!     .get_or_load(&view, || async { Ok::<_, std::io::Error>(Bytes::from_static(b"[]")) })
//!     .await?;
//! assert_eq!(cache.metrics().loader_calls, 1);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::clock::{system_clock, Clock};
use crate::envelope::EntryBuf;
use crate::error::Result;
use crate::flow::{Aside, AsideOptions, FlightId, Flights, Step, Tally};
use crate::instrumented::{Instrumented, OpStats, StatsSnapshot};
use crate::key::Key;
use crate::strategy::Strategy;
use crate::view::{Change, View};

/// Options of a [`RangeCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RangeCacheOptions {
    /// The clock logical expiry and load times follow (default: system).
    pub clock: Arc<dyn Clock>,
    /// XFetch's β; `None` (the default) turns early refresh off. 1.0 is the
    /// paper's recommendation; larger refreshes earlier.
    pub xfetch_beta: Option<f64>,
    /// Seed of XFetch's random draws.
    pub seed: u64,
    /// Coalesce concurrent misses on one key (default on).
    pub single_flight: bool,
}

impl Default for RangeCacheOptions {
    fn default() -> Self {
        RangeCacheOptions {
            clock: system_clock(),
            xfetch_beta: None,
            seed: 0,
            single_flight: true,
        }
    }
}

impl RangeCacheOptions {
    /// Sets [`Self::clock`].
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`Self::xfetch_beta`].
    #[must_use]
    pub fn with_xfetch(mut self, beta: Option<f64>) -> Self {
        self.xfetch_beta = beta;
        self
    }

    /// Sets [`Self::seed`].
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`Self::single_flight`].
    #[must_use]
    pub fn with_single_flight(mut self, on: bool) -> Self {
        self.single_flight = on;
        self
    }
}

/// A snapshot of a [`RangeCache`]'s counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheMetrics {
    /// The strategy's name.
    pub strategy: String,
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests not served from the cache (includes coalesced ones, early
    /// refreshes and fail-open reads).
    pub misses: u64,
    /// Loader invocations.
    pub loader_calls: u64,
    /// Loader invocations that returned an error.
    pub loader_errors: u64,
    /// Misses answered by another request's load (single-flight).
    pub coalesced: u64,
    /// Fresh entries recomputed early by XFetch.
    pub early_refreshes: u64,
    /// Backend errors on the read path (plan or get) answered by the loader.
    pub read_errors: u64,
    /// Backend errors while storing a loaded view (the view was served).
    pub store_errors: u64,
    /// Entries that did not open in their strategy's stored form (treated as misses).
    pub corrupt_entries: u64,
    /// Reads that went to the loader alone because a write to their scopes
    /// was open ([`RangeCache::begin_write`]).
    pub bypassed: u64,
    /// Successful invalidations.
    pub invalidations: u64,
    /// Invalidations that returned an error.
    pub invalidation_errors: u64,
    /// Backend round trips of reads (plan, get, store).
    pub read_ops: StatsSnapshot,
    /// Backend round trips of invalidations.
    pub write_ops: StatsSnapshot,
}

/// A waiter of this driver: where the leader sends its value (`None`: it
/// failed; a dropped sender means the same).
type Waiter = oneshot::Sender<Option<Bytes>>;

/// Cache-aside over one backend and one strategy; see the [module
/// docs](self). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RangeCache {
    aside: Aside,
    read_backend: Instrumented<Arc<dyn Backend>>,
    write_backend: Instrumented<Arc<dyn Backend>>,
    clock: Arc<dyn Clock>,
    // std mutexes, not Tokio's: each is held only to update a map or a few
    // counters, never across an await, and std's is cheaper for that.
    flights: Mutex<Flights<Waiter>>,
    tally: Mutex<Tally>,
}

/// Ends a leader's flight when the leader is dropped mid-load (its future
/// cancelled): the waiters' senders drop with it, so they take over instead
/// of waiting on a ghost.
struct LeadGuard<'a> {
    flights: &'a Mutex<Flights<Waiter>>,
    key: Key,
    id: FlightId,
    armed: bool,
}

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut f = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            drop(f.abandon(&self.key, self.id));
        }
    }
}

impl RangeCache {
    /// A cache-aside layer over `backend` with `strategy`.
    pub fn new(backend: Arc<dyn Backend>, strategy: Arc<dyn Strategy>, options: RangeCacheOptions) -> Self {
        let policy = AsideOptions::default()
            .with_single_flight(options.single_flight)
            .with_xfetch(options.xfetch_beta)
            .with_seed(options.seed);
        RangeCache {
            aside: Aside::new(strategy, policy),
            read_backend: Instrumented::new(backend.clone()),
            write_backend: Instrumented::new(backend),
            clock: options.clock,
            flights: Mutex::new(Flights::new()),
            tally: Mutex::new(Tally::default()),
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> &Arc<dyn Strategy> {
        self.aside.strategy()
    }

    /// The backend (unwrapped, uncounted).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        self.read_backend.inner()
    }

    /// Live round-trip counters of the read path.
    pub fn read_stats(&self) -> &OpStats {
        self.read_backend.stats()
    }

    /// Live round-trip counters of the write path.
    pub fn write_stats(&self) -> &OpStats {
        self.write_backend.stats()
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, Flights<Waiter>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters now.
    pub fn metrics(&self) -> CacheMetrics {
        let t = *self.tally();
        CacheMetrics {
            strategy: self.strategy().name().to_owned(),
            hits: t.hits,
            misses: t.misses,
            loader_calls: t.loader_calls,
            loader_errors: t.loader_errors,
            coalesced: t.coalesced,
            early_refreshes: t.early_refreshes,
            read_errors: t.read_errors,
            store_errors: t.store_errors,
            corrupt_entries: t.corrupt_entries,
            bypassed: t.bypassed,
            invalidations: t.invalidations,
            invalidation_errors: t.invalidation_errors,
            read_ops: self.read_backend.stats().snapshot(),
            write_ops: self.write_backend.stats().snapshot(),
        }
    }

    /// The cached payload of `view`, or `loader`'s result, which is then
    /// stored. Only the loader's own error is returned; backend errors fall
    /// back to the loader (see the module docs).
    pub async fn get_or_load<F, Fut, E>(&self, view: &View, loader: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let aside = &self.aside;
        let backend: &dyn Backend = &self.read_backend;
        let mut flow = aside.read();
        let mut loader = Some(loader);
        let mut load_error = None;
        let mut guard: Option<LeadGuard<'_>> = None;
        loop {
            match flow.step() {
                Step::Plan => flow.planned(aside.plan(backend, view).await),
                Step::Get => {
                    let got = match flow.fetch_key() {
                        Some(key) => backend.get(key).await,
                        None => Ok(None),
                    };
                    flow.fetched(got, self.clock.now(), aside);
                }
                Step::Join => {
                    let (tx, rx) = oneshot::channel();
                    let wait = flow.join(&mut self.flights(), tx);
                    if wait {
                        flow.joined(rx.await.ok().flatten());
                    } else if let (Some(id), Some(key)) = (flow.flight(), flow.key()) {
                        guard = Some(LeadGuard {
                            flights: &self.flights,
                            key: key.clone(),
                            id,
                            armed: true,
                        });
                    }
                }
                Step::Load => {
                    let start = self.clock.now();
                    let result = match loader.take() {
                        Some(load) => load().await,
                        // Unreachable: a flow loads at most once.
                        None => break,
                    };
                    let now = self.clock.now();
                    let took = now.duration_since(start).unwrap_or(Duration::ZERO);
                    match result {
                        Ok(v) => flow.loaded(Some(EntryBuf::from_payload(&v)), took, now),
                        Err(e) => {
                            load_error = Some(e);
                            flow.loaded(None, took, now);
                        }
                    }
                }
                Step::Publish => {
                    let (waiters, value) = flow.publish(&mut self.flights());
                    if value.is_none() {
                        // The flight is over; nothing for the guard to do.
                        if let Some(g) = guard.as_mut() {
                            g.armed = false;
                        }
                    }
                    for w in waiters {
                        let _ = w.send(value.clone());
                    }
                }
                Step::Store => {
                    let r = aside.store(backend, view, &flow).await;
                    if let Err(e) = &r {
                        tracing::warn!(error = %e, key = ?flow.key().map(Key::as_str), "storing the loaded view failed");
                    }
                    flow.stored(r);
                }
                Step::Finish => {
                    flow.finish(&mut self.flights());
                    if let Some(g) = guard.as_mut() {
                        g.armed = false;
                    }
                }
                _ => break,
            }
        }
        let outcome = *flow.outcome();
        if outcome.read_error {
            tracing::warn!(
                strategy = self.strategy().name(),
                "cache read failed; answered by the loader"
            );
        }
        self.tally().record(&outcome);
        match (flow.into_payload(), load_error) {
            (Some(v), _) => Ok(v),
            (None, Some(e)) => Err(e),
            // A loader that failed in another request cannot reach here: a
            // waiter that gets `None` leads its own load.
            (None, None) => match loader.take() {
                Some(load) => load().await,
                None => unreachable_payload(),
            },
        }
    }

    /// Invalidates what `change` affects; call it after the write commits.
    /// Between the commit and this call, readers may still be served the
    /// previous data (the commit-to-bump window); [`RangeCache::begin_write`]
    /// closes it where the strategy can (`stamped`).
    pub async fn invalidate(&self, change: &Change) -> Result<()> {
        let r = self.aside.invalidate(&self.write_backend, change).await;
        self.tally().record_invalidation(r.is_ok());
        r
    }

    /// Announces a write before it commits; pair it with
    /// [`RangeCache::end_write`] after the commit, whether the commit
    /// succeeded or not. Until then, reads of what `change` affects go to
    /// the loader alone (with `stamped`; other strategies ignore this and
    /// invalidate at `end_write`), so no reader is served pre-commit data
    /// after the commit.
    ///
    /// An error here means the fence is not up: commit anyway (a cache
    /// outage should not stop writes) and call `end_write`, which then
    /// likely fails too and says the invalidation was lost.
    ///
    /// ```
    /// # async fn demo(cache: cache_core::aside::RangeCache, change: cache_core::Change) -> cache_core::Result<()> {
    /// let announced = cache.begin_write(&change).await;
    /// // … commit the write to the database here …
    /// cache.end_write(&change).await?;
    /// announced?;
    /// # Ok(()) }
    /// ```
    pub async fn begin_write(&self, change: &Change) -> Result<()> {
        let r = self.aside.begin_write(&self.write_backend, change).await;
        if r.is_err() {
            self.tally().record_invalidation(false);
        }
        r
    }

    /// After a write announced with [`RangeCache::begin_write`] committed
    /// (or failed): invalidates what `change` affects and lifts the fence.
    pub async fn end_write(&self, change: &Change) -> Result<()> {
        let r = self.aside.end_write(&self.write_backend, change).await;
        self.tally().record_invalidation(r.is_ok());
        r
    }
}

/// The flow ended without a payload and without having called the loader:
/// it cannot (every path to `Done` either serves a value or loads), so this
/// is a bug in [`crate::flow`], reported as a panic in debug builds only.
fn unreachable_payload<E>() -> Result<Bytes, E> {
    debug_assert!(false, "a read flow ended with neither a value nor a load");
    Ok(Bytes::new())
}
