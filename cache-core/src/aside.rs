//! Cache-aside for range views: [`RangeCache::get_or_load`] reads through a
//! [`Strategy`], calls the loader on a miss and stores the result;
//! [`RangeCache::invalidate`] is called after a write commits.
//!
//! What it adds over the strategy's steps:
//!
//! - **Logical expiry.** Entries are stored as an [`Envelope`] whose expiry
//!   and load time follow the injected [`Clock`], so a simulation on a
//!   [`ManualClock`](crate::ManualClock) expires entries exactly.
//! - **Single-flight.** Concurrent misses on one key in one process call
//!   the loader once; the others wait for its result. (Across processes
//!   nothing is coordinated: that would need a lock in the backend.)
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

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use crate::backend::Backend;
use crate::clock::{system_clock, Clock};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::instrumented::{Instrumented, OpStats, StatsSnapshot};
use crate::key::Key;
use crate::strategy::keys::splitmix64;
use crate::strategy::{ReadPlan, Strategy};
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
}

impl Default for RangeCacheOptions {
    fn default() -> Self {
        RangeCacheOptions {
            clock: system_clock(),
            xfetch_beta: None,
            seed: 0,
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
    /// Entries that did not decode as an envelope (treated as misses).
    pub corrupt_entries: u64,
    /// Successful invalidations.
    pub invalidations: u64,
    /// Invalidations that returned an error.
    pub invalidation_errors: u64,
    /// Backend round trips of reads (plan, get, store).
    pub read_ops: StatsSnapshot,
    /// Backend round trips of invalidations.
    pub write_ops: StatsSnapshot,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    loader_calls: AtomicU64,
    loader_errors: AtomicU64,
    coalesced: AtomicU64,
    early_refreshes: AtomicU64,
    read_errors: AtomicU64,
    store_errors: AtomicU64,
    corrupt_entries: AtomicU64,
    invalidations: AtomicU64,
    invalidation_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One load in progress: followers watch for its value. `None` until the
/// leader sends; a closed channel with `None` means the leader failed or was
/// cancelled.
#[derive(Debug)]
struct Flight {
    id: u64,
    rx: watch::Receiver<Option<Bytes>>,
}

/// Cache-aside over one backend and one strategy; see the [module
/// docs](self). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RangeCache {
    strategy: Arc<dyn Strategy>,
    read_backend: Instrumented<Arc<dyn Backend>>,
    write_backend: Instrumented<Arc<dyn Backend>>,
    options: RangeCacheOptions,
    // A std mutex, not Tokio's: it is held only to look up or insert a map
    // entry, never across an await, and std's is cheaper for that.
    inflight: Mutex<HashMap<Key, Flight>>,
    next_flight: AtomicU64,
    rng: AtomicU64,
    counters: Counters,
}

/// Removes the leader's flight from the map when the leader finishes, fails
/// or is cancelled (dropped mid-load), so followers never wait on a ghost.
struct FlightGuard<'a> {
    cache: &'a RangeCache,
    key: Key,
    id: u64,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.cache.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&self.key).is_some_and(|f| f.id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl RangeCache {
    /// A cache-aside layer over `backend` with `strategy`.
    pub fn new(backend: Arc<dyn Backend>, strategy: Arc<dyn Strategy>, options: RangeCacheOptions) -> Self {
        RangeCache {
            strategy,
            read_backend: Instrumented::new(backend.clone()),
            write_backend: Instrumented::new(backend),
            rng: AtomicU64::new(options.seed),
            options,
            inflight: Mutex::new(HashMap::new()),
            next_flight: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> &Arc<dyn Strategy> {
        &self.strategy
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

    /// The counters now.
    pub fn metrics(&self) -> CacheMetrics {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheMetrics {
            strategy: self.strategy.name().to_owned(),
            hits: load(&c.hits),
            misses: load(&c.misses),
            loader_calls: load(&c.loader_calls),
            loader_errors: load(&c.loader_errors),
            coalesced: load(&c.coalesced),
            early_refreshes: load(&c.early_refreshes),
            read_errors: load(&c.read_errors),
            store_errors: load(&c.store_errors),
            corrupt_entries: load(&c.corrupt_entries),
            invalidations: load(&c.invalidations),
            invalidation_errors: load(&c.invalidation_errors),
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
        // Step 1, before any database access: this ordering is what makes
        // generation-based strategies immune to the stale-set race.
        let plan = match self.strategy.plan_read(&self.read_backend, view).await {
            Ok(plan) => plan,
            Err(e) => {
                tracing::warn!(error = %e, strategy = self.strategy.name(), "plan_read failed; loading uncached");
                bump(&self.counters.read_errors);
                bump(&self.counters.misses);
                return self.call_loader(loader).await.map(|(v, _)| v);
            }
        };
        match self.read_backend.get(&plan.key).await {
            Ok(Some(bytes)) => match Envelope::decode(&plan.key, &bytes) {
                Ok(envelope) => {
                    let now = self.options.clock.now();
                    if envelope.is_fresh(now) {
                        if !self.refresh_early(&envelope, now) {
                            bump(&self.counters.hits);
                            return Ok(envelope.payload);
                        }
                        bump(&self.counters.early_refreshes);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cached entry is not an envelope; reloading");
                    bump(&self.counters.corrupt_entries);
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, key = %plan.key, "cache read failed; loading");
                bump(&self.counters.read_errors);
            }
        }
        bump(&self.counters.misses);
        self.load_once(view, &plan, loader).await
    }

    /// Invalidates what `change` affects; call it after the write commits.
    pub async fn invalidate(&self, change: &Change) -> Result<()> {
        match self.strategy.invalidate(&self.write_backend, change).await {
            Ok(()) => {
                bump(&self.counters.invalidations);
                Ok(())
            }
            Err(e) => {
                bump(&self.counters.invalidation_errors);
                Err(e)
            }
        }
    }

    /// XFetch: true when this reader should recompute a still-fresh entry.
    fn refresh_early(&self, envelope: &Envelope, now: SystemTime) -> bool {
        let (Some(beta), Some(expires)) = (self.options.xfetch_beta, envelope.expires_at) else {
            return false;
        };
        // A uniform draw in (0, 1]: 53 random bits, shifted off zero so the
        // logarithm is finite.
        let mut state = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let bits = splitmix64(&mut state) >> 11;
        let r = (bits as f64 + 1.0) / (1u64 << 53) as f64;
        let gap = -envelope.load_time.as_secs_f64() * beta * r.ln();
        if !gap.is_finite() || gap <= 0.0 {
            return false;
        }
        now + Duration::from_secs_f64(gap.min(1e9)) >= expires
    }

    async fn call_loader<F, Fut, E>(&self, loader: F) -> Result<(Bytes, Duration), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        bump(&self.counters.loader_calls);
        let start = self.options.clock.now();
        match loader().await {
            Ok(v) => {
                let took = self.options.clock.now().duration_since(start).unwrap_or_default();
                Ok((v, took))
            }
            Err(e) => {
                bump(&self.counters.loader_errors);
                Err(e)
            }
        }
    }

    /// Loads `plan.key` once per process: the first caller leads, the others
    /// wait for its value; if the leader fails, a waiter takes over with its
    /// own loader.
    async fn load_once<F, Fut, E>(&self, view: &View, plan: &ReadPlan, loader: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let (tx, guard) = loop {
            let mut rx = {
                let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                match map.get(&plan.key) {
                    Some(flight) => flight.rx.clone(),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
                        map.insert(plan.key.clone(), Flight { id, rx });
                        let guard = FlightGuard {
                            cache: self,
                            key: plan.key.clone(),
                            id,
                        };
                        break (tx, guard);
                    }
                }
            };
            // Either the value arrives or the leader goes away; check the
            // value in both cases (it may have been sent just before).
            let _ = rx.changed().await;
            let sent = rx.borrow().clone();
            if let Some(value) = sent {
                bump(&self.counters.coalesced);
                return Ok(value);
            }
        };
        let (value, load_time) = self.call_loader(loader).await?;
        let envelope = Envelope {
            expires_at: plan.ttl.map(|ttl| self.options.clock.now() + ttl),
            load_time,
            payload: value.clone(),
        };
        if let Err(e) = self
            .strategy
            .store(&self.read_backend, view, plan, envelope.encode())
            .await
        {
            tracing::warn!(error = %e, key = %plan.key, "storing the loaded view failed");
            bump(&self.counters.store_errors);
        }
        // Waiters get the value even if storing failed.
        let _ = tx.send(Some(value.clone()));
        drop(guard);
        Ok(value)
    }
}
