//! Cache-aside for range views: [`RangeCache::get_or_load`] reads through a
//! [`Strategy`], calls the loader on a miss and stores the result;
//! [`RangeCache::invalidate`] is called after a write commits (or
//! [`RangeCache::begin_write`] before it and [`RangeCache::end_write`]
//! after it, which closes the commit-to-bump window with `stamped`).
//!
//! `RangeCache` is a thin async driver of the sans-IO core in
//! `cache_core::flow`: every decision below is taken there, by the same code
//! the simulator drives in virtual time. What it adds over the strategy's
//! steps:
//!
//! - **Logical expiry.** Entries are stored as an envelope whose expiry
//!   and load time follow the injected [`Clock`](crate::Clock), so a simulation on a
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
//!   round trips split into the read path and the write path
//!   ([`RangeCache::read_stats`], [`RangeCache::write_stats`]: two counting
//!   wrappers over the same backend); the same events go
//!   to the `metrics` facade and to `tracing` spans (below).
//!
//! - **Fail-open reads** can be turned off
//!   ([`RangeCacheBuilder::fail_open`]): a backend error then ends the read
//!   with [`LoadError::Cache`], so a cache outage does not become a
//!   database stampede.
//! - **A committed write always invalidates.** An `end_write` or
//!   `invalidate` that fails is not forgotten: the change is queued in this
//!   cache (the sans-IO core's pending table) and re-applied in the background, the
//!   first time [`CacheOptions::bump_retry_min`] later, then backing off to
//!   [`CacheOptions::bump_retry_max`] (100 ms by default), until it goes
//!   through. Meanwhile this process reads the views the change covers from
//!   the loader alone ([`CacheMetrics::pending_bypassed`]). Other processes
//!   can be served what the change should have invalidated until the
//!   server answers again and the next retry lands: at most about
//!   `bump_retry_max` after the server's return. The queue lives in
//!   memory: it survives a frozen or unreachable server, not a crash of
//!   this process. For that, record each change in the application's
//!   database with the write ([`crate::outbox`]) and end the write with
//!   [`RangeCache::end_recorded_write`]; every process then runs
//!   [`RangeCache::outbox_relay`].
//! - **Fail-safe and loader timeouts** (off by default;
//!   [`RangeCacheBuilder::fail_safe`], [`RangeCacheBuilder::soft_timeout`],
//!   [`RangeCacheBuilder::hard_timeout`]). When the loader fails or passes
//!   the hard timeout, the read is answered by the entry stored for the
//!   view (past its logical expiry, or with old stamps) if its expiry
//!   passed less than the max age ago; [`RangeCache::fetch`] returns which
//!   kind ([`Answer::fail_safe`]: `current` stamps or `stale` ones) so the
//!   service can mark the response, and [`CacheMetrics::fail_safe_served`]
//!   counts them. Entries are stored for their TTL plus the max age. The
//!   soft timeout answers a read that has such an entry once it has waited
//!   that long, while the load goes on and refreshes the entry; with
//!   [`RangeCache::fetch`] only the requests waiting on another's load can
//!   be answered early (the loader borrows from its caller), with
//!   [`RangeCache::fetch_detached`] every one (see `read.rs` for what that
//!   means for p99). What each strategy can offer is in the `flow` module's
//!   docs ("Fail-safe") and in docs/failures.md.
//!
//! ```
//! # async fn demo(backend: std::sync::Arc<dyn cache_core::Backend>, view: cache_core::View)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use cache_core::{Bytes, RangeCache};
//! let cache = RangeCache::builder(backend).strategy("versioned").build()?;
//! let feed = cache
//!     .get_or_load(&view, || async { Ok::<_, std::io::Error>(Bytes::from_static(b"[]")) })
//!     .await?;
//! assert_eq!(cache.metrics().loader_calls, 1);
//! # Ok(()) }
//! ```
//!
//! # Observability
//!
//! Every cache counts in [`RangeCache::metrics`] and also reports through
//! the [`metrics`](https://docs.rs/metrics) facade, so a Prometheus or
//! OpenTelemetry exporter the application installs picks it up. Install the
//! recorder **before** building the cache: its instruments are registered
//! once, at [`RangeCacheBuilder::build`]. Every instrument carries the
//! labels `cache` ([`RangeCacheBuilder::name`]) and `strategy`:
//!
//! | name | kind | what |
//! |---|---|---|
//! | `range_cache_hits_total` | counter | feed requests served from the cache |
//! | `range_cache_misses_total` | counter | feed requests not served from the cache |
//! | `range_cache_bypassed_total` | counter | reads that skipped the cache during an open write |
//! | `range_cache_coalesced_total` | counter | misses answered by another request's load |
//! | `range_cache_loads_total` | counter | loader (database) calls |
//! | `range_cache_load_errors_total` | counter | loader calls that failed |
//! | `range_cache_backend_errors_total` | counter | backend errors; label `path` = `read`, `store`, `write` |
//! | `range_cache_early_refreshes_total` | counter | entries recomputed early by XFetch |
//! | `range_cache_invalidations_total` | counter | write invalidations that reached the cache |
//! | `range_cache_fail_safe_total` | counter | reads answered by fail-safe; label `kind` = `current`, `stale` |
//! | `range_cache_failed_reads_total` | counter | reads that returned no view (loader failed or timed out, no fail-safe entry) |
//! | `range_cache_soft_timeouts_total` | counter | reads answered by fail-safe at the soft timeout while the load went on |
//! | `range_cache_load_timeouts_total` | counter | loads given up at the hard timeout |
//! | `range_cache_load_seconds` | histogram | loader latency |
//! | `range_cache_backend_seconds` | histogram | backend latency; label `step` = `plan`, `get`, `store`, `write` |
//!
//! The names are constants in [`meters`]. `tracing` spans (level DEBUG):
//! `range_cache.get_or_load` with the decision taken (`outcome` = `hit`,
//! `loaded`, `coalesced`, `load_failed`, `cache_failed`, `fail_safe`;
//! `bypassed`; `fail_safe` = `current` or `stale`), and
//! `range_cache.begin_write`, `range_cache.end_write`,
//! `range_cache.invalidate` with the scope and `ok`.
//!
//! # Layout
//!
//! - `mod.rs` (here): [`RangeCache`], its reads and writes.
//! - `read.rs`: the read driver (the flow's steps with real awaits), the
//!   load timeouts, loads that finish after their answer, [`Answer`].
//! - `meters.rs`: the `metrics` instruments and their names.
//! - `builder.rs`: [`RangeCacheBuilder`], every setting, validated.
//! - `error.rs`: [`LoadError`], why a read returned no view.
//! - `relay.rs`: the background retries of failed bumps, and
//!   [`OutboxRelay`], which drains the application's outbox.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use bytes::Bytes;

use crate::backend::Backend;
use crate::error::Result;
use crate::flow::{Aside, CacheMetrics, Flights};
use crate::instrumented::{Instrumented, StatsSnapshot};
use crate::options::CacheOptions;
use crate::outbox::{Outbox, OutboxId};
use crate::strategy::Strategy;
use crate::view::{Change, View};

mod builder;
mod error;
pub mod meters;
mod read;
mod relay;

use meters::{BackendStep, Meters};

pub use builder::{RangeCacheBuilder, MAX_NAME_BYTES};
pub use error::LoadError;
pub use read::Answer;
use read::Reader;
pub use relay::{OutboxRelay, RelayRound, OUTBOX_BATCH};

/// The strategy a [`RangeCacheBuilder`] uses unless told otherwise: the
/// one the measurements recommend (README, "Which strategy?").
pub const DEFAULT_STRATEGY: &str = "stamped";

/// Cache-aside over one backend and one strategy; see the [module
/// docs](self). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RangeCache {
    /// The read path, shared with the loads that outlive their request
    /// (`read.rs`).
    reader: Arc<Reader>,
    write_backend: Instrumented<Arc<dyn Backend>>,
    /// Failed bumps, retried in the background (`relay.rs`).
    relay: Arc<relay::Relay>,
}

impl RangeCache {
    /// Starts building a cache over `backend`; see [`RangeCacheBuilder`].
    pub fn builder(backend: Arc<dyn Backend>) -> RangeCacheBuilder {
        RangeCacheBuilder::new(backend)
    }

    /// The cache from a validated builder.
    fn assemble(
        backend: Arc<dyn Backend>,
        strategy: Arc<dyn Strategy>,
        options: CacheOptions,
        name: String,
        outbox: Option<Arc<dyn Outbox>>,
    ) -> Self {
        let meters = Meters::new(&name, strategy.name());
        let aside = Arc::new(Aside::new(strategy, options));
        let write_backend = Instrumented::new(backend.clone());
        let relay_backend = Instrumented::with_stats(backend.clone(), write_backend.stats().clone());
        let relay = Arc::new(relay::Relay::new(aside.clone(), relay_backend, outbox));
        let reader = Reader {
            name,
            meters,
            clock: aside.options().clock.clone(),
            relay: relay.clone(),
            aside,
            backend: Instrumented::new(backend),
            flights: Mutex::new(Flights::new()),
            tally: Mutex::new(CacheMetrics::default()),
        };
        RangeCache {
            reader: Arc::new(reader),
            write_backend,
            relay,
        }
    }

    /// The name given to [`RangeCacheBuilder::name`] (metrics label).
    pub fn name(&self) -> &str {
        &self.reader.name
    }

    /// The strategy in use.
    pub fn strategy(&self) -> &Arc<dyn Strategy> {
        self.reader.aside.strategy()
    }

    /// The backend (unwrapped, uncounted).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        self.reader.backend.inner()
    }

    /// The read path's backend round trips so far, per operation (calls,
    /// keys, errors, latency).
    pub fn read_stats(&self) -> StatsSnapshot {
        self.reader.backend.stats().snapshot()
    }

    /// The write path's backend round trips so far, per operation.
    pub fn write_stats(&self) -> StatsSnapshot {
        self.write_backend.stats().snapshot()
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, CacheMetrics> {
        self.reader.tally()
    }

    /// The counters now. Backend round trips are in
    /// [`RangeCache::read_stats`] and [`RangeCache::write_stats`].
    pub fn metrics(&self) -> CacheMetrics {
        let mut m = *self.tally();
        self.relay.add_counts(&mut m);
        m
    }

    /// Failed bumps waiting for a retry now (0 when nothing failed).
    pub fn pending_bumps(&self) -> usize {
        self.relay.len()
    }

    /// The cached payload of `view`, or `loader`'s result, which is then
    /// stored. Backend errors fall back to the loader (see the module
    /// docs), so the error is the loader's ([`LoadError::Loader`]) unless
    /// fail-open is off ([`LoadError::Cache`]) or the hard timeout passed
    /// ([`LoadError::Timeout`]). With fail-safe on, a failed or timed-out
    /// load may be answered by the entry stored for the view:
    /// [`RangeCache::fetch`] says when.
    pub async fn get_or_load<F, Fut, E>(&self, view: &View, loader: F) -> Result<Bytes, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        self.fetch(view, loader).await.map(|a| a.value)
    }

    /// [`RangeCache::get_or_load`], also saying whether fail-safe answered
    /// ([`Answer::fail_safe`]), so a service can mark such answers (a
    /// response header). The loader runs in the caller's task: past the
    /// soft timeout the requests waiting on this one's load are answered
    /// by fail-safe, while this one waits for its loader up to the hard
    /// timeout (see [`RangeCache::fetch_detached`] for the alternative).
    ///
    /// ```
    /// # async fn demo(cache: cache_core::RangeCache, view: cache_core::View) -> Result<(), Box<dyn std::error::Error>> {
    /// let answer = cache.fetch(&view, || async { Ok::<_, std::io::Error>(cache_core::Bytes::from_static(b"[]")) }).await?;
    /// if let Some(kind) = answer.fail_safe {
    ///     // e.g. a response header `x-cache-fail-safe: current`
    ///     println!("served by fail-safe: {}", kind.as_str());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn fetch<F, Fut, E>(&self, view: &View, loader: F) -> Result<Answer, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let span = self.read_span();
        self.reader.read(view, loader).instrument(span).await
    }

    /// [`RangeCache::fetch`] with a loader that owns what it needs
    /// (`Send + 'static`): it runs as its own Tokio task, so past the soft
    /// timeout this request too is answered by fail-safe while the task
    /// finishes the load, hands it to the requests still waiting, and
    /// stores it ([`CacheMetrics::background_refreshes`]). With a fail-safe
    /// entry, a read then waits at most the soft timeout for the database.
    /// Needs a Tokio runtime. Without a soft timeout it behaves as
    /// [`RangeCache::fetch`] (one task more per load).
    pub async fn fetch_detached<F, Fut, E>(&self, view: &View, loader: F) -> Result<Answer, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: Send + 'static,
    {
        let span = self.read_span();
        self.reader.read_detached(view, loader).instrument(span).await
    }

    /// The span of a read; `outcome`, `bypassed` and `fail_safe` are
    /// recorded when it is answered.
    fn read_span(&self) -> tracing::Span {
        tracing::debug_span!(
            "range_cache.get_or_load",
            cache = %self.reader.name,
            strategy = self.strategy().name(),
            outcome = tracing::field::Empty,
            bypassed = tracing::field::Empty,
            fail_safe = tracing::field::Empty,
        )
    }

    /// As [`RangeCache::get_or_load`], for a loader that returns a value
    /// rather than bytes: the value is stored as JSON and read back with
    /// serde. An entry that no longer decodes as `T` (the type changed
    /// since it was stored) is answered by the loader, uncached, as any
    /// unreadable entry is; a value that cannot be encoded is
    /// [`LoadError::Cache`] with [`Error::Codec`](crate::Error::Codec).
    ///
    /// ```
    /// # async fn demo(cache: cache_core::RangeCache, view: cache_core::View) -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Event { id: u64, title: String }
    /// let events: Vec<Event> = cache
    ///     .get_or_load_json(&view, || async { Ok::<_, std::io::Error>(vec![Event { id: 1, title: "Standup".into() }]) })
    ///     .await?;
    /// assert_eq!(events[0].title, "Standup");
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_json<T, F, Fut, E>(&self, view: &View, loader: F) -> Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let loader = Mutex::new(Some(loader));
        let take = || loader.lock().unwrap_or_else(PoisonError::into_inner).take();
        let loaded = Mutex::new(None::<T>);
        let bytes = self
            .get_or_load(view, || async {
                let Some(load) = take() else {
                    return Err(JsonLoad::Gone);
                };
                let value = load().await.map_err(JsonLoad::Loader)?;
                let bytes = serde_json::to_vec(&value).map_err(|e| JsonLoad::Encode(codec(view, e)))?;
                *loaded.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
                Ok(Bytes::from(bytes))
            })
            .await
            .map_err(|e| match e {
                LoadError::Loader(JsonLoad::Loader(e)) => LoadError::Loader(e),
                LoadError::Loader(JsonLoad::Encode(e)) => LoadError::Cache(e),
                LoadError::Loader(JsonLoad::Gone) => LoadError::Cache(codec(view, "the loader was already used")),
                LoadError::Cache(e) => LoadError::Cache(e),
                LoadError::Timeout { after } => LoadError::Timeout { after },
            })?;
        if let Some(value) = loaded.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Ok(value);
        }
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(value),
            Err(e) => match take() {
                Some(load) => {
                    tracing::warn!(cache = %self.reader.name, error = %e, "a cached entry did not decode; answered by the loader");
                    self.tally().corrupt_entries += 1;
                    load().await.map_err(LoadError::Loader)
                }
                None => Err(LoadError::Cache(codec(view, e))),
            },
        }
    }

    /// Invalidates what `change` affects; call it after the write commits.
    /// Between the commit and this call, readers may still be served the
    /// previous data (the commit-to-bump window); [`RangeCache::begin_write`]
    /// closes it where the strategy can (`stamped`).
    ///
    /// An error says the invalidation did not go through now: the change
    /// is then queued and retried in the background until it does (see
    /// the module docs), unless the error is one no retry can fix
    /// ([`CacheMetrics::bumps_dropped`]).
    pub async fn invalidate(&self, change: &Change) -> Result<()> {
        let span = self.write_span("range_cache.invalidate", change);
        async {
            let t = Instant::now();
            let r = self.reader.aside.invalidate(&self.write_backend, change).await;
            self.reader.meters.backend(BackendStep::Write, t.elapsed());
            self.wrote(r.is_ok());
            if let Err(e) = &r {
                self.relay.failed(change, false, None, e);
            }
            r
        }
        .instrument(span)
        .await
    }

    /// The span of a write: the cache, the strategy, the scope, and
    /// (recorded when done) whether it reached the cache.
    fn write_span(&self, name: &'static str, change: &Change) -> tracing::Span {
        match name {
            "range_cache.begin_write" => tracing::debug_span!(
                "range_cache.begin_write",
                cache = %self.reader.name, strategy = self.strategy().name(), scope = %change.scope, ok = tracing::field::Empty
            ),
            "range_cache.end_write" => tracing::debug_span!(
                "range_cache.end_write",
                cache = %self.reader.name, strategy = self.strategy().name(), scope = %change.scope, ok = tracing::field::Empty
            ),
            _ => tracing::debug_span!(
                "range_cache.invalidate",
                cache = %self.reader.name, strategy = self.strategy().name(), scope = %change.scope, ok = tracing::field::Empty
            ),
        }
    }

    /// Counts a write's invalidation and records it on the current span.
    fn wrote(&self, ok: bool) {
        self.tally().record_invalidation(ok);
        self.reader.meters.write(ok);
        tracing::Span::current().record("ok", ok);
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
    /// # async fn demo(cache: cache_core::RangeCache, change: cache_core::Change) -> cache_core::Result<()> {
    /// let announced = cache.begin_write(&change).await;
    /// // … commit the write to the database here …
    /// cache.end_write(&change).await?;
    /// announced?;
    /// # Ok(()) }
    /// ```
    pub async fn begin_write(&self, change: &Change) -> Result<()> {
        let span = self.write_span("range_cache.begin_write", change);
        async {
            let t = Instant::now();
            let r = self.reader.aside.begin_write(&self.write_backend, change).await;
            self.reader.meters.backend(BackendStep::Write, t.elapsed());
            if r.is_err() {
                self.wrote(false);
            } else {
                tracing::Span::current().record("ok", true);
            }
            r
        }
        .instrument(span)
        .await
    }

    /// After a write announced with [`RangeCache::begin_write`] committed
    /// (or failed): invalidates what `change` affects and lifts the fence.
    ///
    /// An error says the invalidation did not go through now: the change
    /// is then queued and retried in the background until it does, and
    /// this process reads the views it covers from the loader meanwhile
    /// (see the module docs).
    pub async fn end_write(&self, change: &Change) -> Result<()> {
        self.end(change, None).await
    }

    /// [`RangeCache::end_write`] for a write that recorded `change` in the
    /// application's outbox as row `row` ([`crate::outbox`]), in its own
    /// transaction: once the bump is applied (now, or by a retry) the row
    /// is deleted ([`Outbox::done`]). Without an outbox
    /// ([`RangeCacheBuilder::outbox`]) this is `end_write`.
    ///
    /// ```
    /// # async fn demo(cache: cache_core::RangeCache, change: cache_core::Change) {
    /// let announced = cache.begin_write(&change).await;
    /// // BEGIN; …the write…; INSERT INTO cache_outbox (record, …)
    /// //   VALUES (cache_core::outbox::encode(&change), …) → row; COMMIT
    /// # let row = 1;
    /// if let Err(e) = cache.end_recorded_write(&change, row).await {
    ///     // Queued for retry; the outbox still has it if this process dies.
    ///     eprintln!("invalidation pending: {e}");
    /// }
    /// # let _ = announced;
    /// # }
    /// ```
    pub async fn end_recorded_write(&self, change: &Change, row: OutboxId) -> Result<()> {
        self.end(change, Some(row)).await
    }

    async fn end(&self, change: &Change, row: Option<OutboxId>) -> Result<()> {
        let span = self.write_span("range_cache.end_write", change);
        async {
            let t = Instant::now();
            let r = self.reader.aside.end_write(&self.write_backend, change).await;
            self.reader.meters.backend(BackendStep::Write, t.elapsed());
            self.wrote(r.is_ok());
            match &r {
                Ok(()) => self.relay.outbox_done(row).await,
                Err(e) => self.relay.failed(change, true, row, e),
            }
            r
        }
        .instrument(span)
        .await
    }

    /// The relay that drains the outbox given to
    /// [`RangeCacheBuilder::outbox`], polling every
    /// [`CacheOptions::outbox_poll`] for rows older than
    /// [`CacheOptions::outbox_grace`]; `None` without an outbox. Run one in
    /// every process: `tokio::spawn(relay.run())`.
    pub fn outbox_relay(&self) -> Option<OutboxRelay> {
        let options = self.reader.aside.options();
        self.relay.outbox().map(|outbox| {
            OutboxRelay::new(
                self.relay.clone(),
                outbox.clone(),
                options.outbox_poll,
                options.outbox_grace,
            )
        })
    }
}

/// Why [`RangeCache::get_or_load_json`]'s inner loader failed.
enum JsonLoad<E> {
    Loader(E),
    Encode(crate::error::Error),
    Gone,
}

/// A codec error about `view`'s entry.
fn codec(view: &View, e: impl Into<crate::error::BoxError>) -> crate::error::Error {
    crate::error::Error::Codec {
        key: format!("view over {} scope(s)", view.scopes.len()),
        source: e.into(),
    }
}
