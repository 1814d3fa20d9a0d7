//! The event-driven replay of one (strategy, backend) cell in virtual time:
//! the simulator's driver of cache-core's sans-IO cache-aside core
//! ([`cache_core::flow`]).
//!
//! A feed request is a [`ReadFlow`]: the same decisions, by the same code,
//! as an application's [`RangeCache`](cache_core::RangeCache). This driver
//! performs each step the flow asks for at one virtual instant and charges
//! it its modelled latency before the next:
//!
//! ```text
//! Plan ──plan──▶ Get ──get──▶ hit: served
//!                      └────▶ miss ─▶ Join ─▶ another load in this process: wait for it (coalesced)
//!                                       └──▶ Load (DB query) ──db──▶ served; Publish to waiters ─▶ Store ──store──▶ Finish
//! ```
//!
//! Single-flight is per simulated app process, as in an application: each
//! process has its own [`Flights`] table. A write is announced
//! ([`Aside::begin_write`](cache_core::flow::Aside::begin_write)) and
//! commits to the database at its trace time, and is ended (invalidated)
//! `invalidate_us` later; only `stamped` fences reads in between, the
//! other strategies do nothing at the announcement. Steps of all
//! requests sit in one priority queue ordered by (time, sequence number), so
//! concurrent requests interleave deterministically and races such as the
//! stale-set race happen by themselves. Trace events go before queued steps
//! at the same instant.
//!
//! Why steps are awaited one at a time rather than spawned: the simulation is
//! sequential in virtual time by definition, so there is nothing to gain from
//! concurrency inside a cell, and awaiting an already-complete locmem future
//! costs nothing, while remote backends still work (each step just waits).
//! Parallelism comes from running independent cells on separate threads.
//!
//! # Layout
//!
//! - `mod.rs`: [`Cell`], [`Latencies`], a cell's run: events, serving
//!   and judging a read.
//! - `drive.rs`: a read's flow driven step by step at its virtual
//!   latencies, the database's answer to a load, hand-over to waiters.
//! - `replay.rs`: the event loop, fed a chunk of inputs at a time
//!   ([`run_cell`], and the runner's cells sharing one trace).
//! - `input.rs`: trace events with their views interned, made once per
//!   reading of a trace and shared by the cells replaying it.
//! - `payload.rs`: the simulated feed payload (what the DB answered, as of
//!   when), its padding written or declared ([`declared_len`]).
//! - `views.rs`: views interned once (digest, JSON) and each cell's state
//!   per view (query, remembered answer), found by the view's id.
//! - `judge.rs`: the stale-read judgement; the dead-key count.
//! - `outage.rs`: ends a cell whose backend stays down (`--max-outage-s`).
//! - `relay.rs`: failed bumps queued and retried per process, the
//!   transactional outbox and its relays, and the faults that need them
//!   (`--freeze`, `--crash-writer-at`), with what they cost.
//! - `dbfault.rs`: database faults (`--db-fault`, `db-outage`) in virtual
//!   time, the loader's soft and hard timeouts, fail-safe answers and
//!   what they cost.
//! - `metrics.rs`: [`Metrics`] and the recorder (sparse timeline, latency
//!   percentiles).
//! - `part.rs`: a replay's metrics in a form that adds up over the shards
//!   of a cell (`Shard`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::flow::{Aside, Flights, Handoff, ReadFlow, Served, Step};
use cache_core::CacheOptions;
use cache_core::{Backend, Change, Instrumented, ManualClock, Strategy};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::trace::Event;

mod dbfault;
mod drive;
mod input;
mod judge;
mod metrics;
mod outage;
mod part;
mod payload;
mod relay;
mod replay;
mod views;

pub(crate) use input::{Chunk, Inputs};

pub use dbfault::DbFaultMetrics;
pub use metrics::{LatencySummary, Metrics};
pub(crate) use part::{Part, PartWire};
pub use payload::declared_len;
pub(crate) use payload::stand_in;
pub use relay::FaultMetrics;
pub use replay::run_cell;
pub(crate) use replay::Replay;

use input::Input;
use judge::judge;
use metrics::Recorder;
use payload::Payload;
use views::{ViewInfo, ViewStates};

/// Virtual duration of each step, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Latencies {
    /// The strategy's plan (generation fetches; with `stamped` also the entry).
    pub plan_us: u64,
    /// The cache `get`.
    pub get_us: u64,
    /// The database query of a miss.
    pub db_us: u64,
    /// The cache fill after a miss.
    pub store_us: u64,
    /// From a write's commit to its invalidation (the app's post-commit hook).
    pub invalidate_us: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        // Same-datacenter cache round trips, a feed query of a few ms, and a
        // post-commit hook that runs right after the transaction.
        Latencies {
            plan_us: 300,
            get_us: 300,
            db_us: 8_000,
            store_us: 300,
            invalidate_us: 1_000,
        }
    }
}

/// A function listing the live keys of one process's store with their value
/// sizes (e.g. [`backend_locmem::LocmemBackend::live_entries`]); used to
/// count dead keys at the end. Backends that cannot enumerate have none.
pub type LiveKeys = Arc<dyn Fn() -> Vec<(String, usize)> + Send + Sync>;

/// A function returning how many round trips to the shared store one
/// process's backend has made so far (e.g. a [`TwoTier`](cache_core::tier::TwoTier)'s
/// `l2_round_trips`), so a step is charged per round trip it made.
pub type RoundTrips = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What a [`TierFault`](crate::config::TierFault) does to one process's two
/// tiers (drops its tracking connection, loses its next backplane notice).
pub type TierFaultFn = Arc<dyn Fn(crate::config::TierFaultKind) + Send + Sync>;

/// Everything one cell needs.
#[derive(Clone)]
#[non_exhaustive]
pub struct Cell {
    /// The strategy under test.
    pub strategy: Arc<dyn Strategy>,
    /// One store per app process; a single entry is shared by all processes.
    pub backends: Vec<Arc<dyn Backend>>,
    /// Live-key listers, parallel to `backends` (empty when unavailable).
    pub live_keys: Vec<LiveKeys>,
    /// Round-trip counters, parallel to `backends`; empty (the default):
    /// every plan and `get` is charged one round trip. With them, the
    /// [`Latencies::plan_us`] and [`Latencies::get_us`] of a step are
    /// charged once per round trip it made: a two-tier read served from L1
    /// with known generations takes no virtual time, one that had to fetch
    /// a newer entry after the generations takes two.
    pub round_trips: Vec<RoundTrips>,
    /// The virtual clock the backends and the strategy read.
    pub clock: ManualClock,
    /// Step latencies.
    pub latencies: Latencies,
    /// Bytes of payload per feed item (a feed's JSON is about this big per event).
    pub item_bytes: usize,
    /// Declare the padding (`item_bytes` per item) in a trailer instead of
    /// writing it (default off). Only for stores that count the trailer as
    /// the padding, i.e. locmem built with [`declared_len`] as its
    /// `value_size` ([`crate::backends::connect`] does so for `locmem`):
    /// then results are byte-identical and fills far cheaper. Elsewhere the
    /// store would see small values and evict differently.
    pub declared_padding: bool,
    /// Width of the staleness-over-time buckets, µs.
    pub bucket_us: u64,
    /// Time every backend call (for `--timings`); off, calls are only
    /// counted, which is all the report needs and a few percent faster.
    pub time_calls: bool,
    /// The read policy: single-flight (per process) and XFetch.
    pub aside: CacheOptions,
    /// End the cell with [`Error::BackendDown`] when backend calls keep
    /// failing, with no read served cleanly in between, for this long in
    /// real time (a server that died and stays down); `None` never does.
    pub outage_limit: Option<Duration>,
    /// Judge stale reads against the simulated database. Off for an access
    /// log: its items are modelled, not known, so only `at_risk_reads` is
    /// meaningful there.
    pub judge_stale: bool,
    /// The app announces each write before its commit and ends it after
    /// ([`Aside::begin_write`](cache_core::flow::Aside::begin_write) /
    /// `end_write`, which `stamped` uses to fence reads); off, it only
    /// invalidates after the commit.
    pub fenced_writes: bool,
    /// Faults injected into the run: the crash of a writer (freezes are
    /// applied to [`Self::backends`] by whoever builds the cell, with
    /// [`cache_core::fault::Frozen`]; listed here so that reads and errors
    /// are counted against them) and whether the app keeps an outbox.
    pub faults: crate::config::Faults,
    /// Per app process: what the run's tier faults
    /// ([`Faults::tier`](crate::config::Faults::tier), scheduled from
    /// [`Self::faults`]) do to it; empty (the default): nothing (no two
    /// tiers).
    pub tier_faults: Vec<TierFaultFn>,
    /// One strategy instance per store of [`Self::backends`], for stores
    /// that are each one app process's own: every process of an
    /// application builds its own, so its generation starts and XFetch
    /// draws do not depend on what the other processes did. Empty (the
    /// default): [`Self::strategy`] serves every store.
    pub store_strategies: Vec<Arc<dyn Strategy>>,
    /// Serve only the app processes of this shard (see [`Shard`]); `None`
    /// (the default): every process.
    pub(crate) shard: Option<Shard>,
}

/// A part of a cell: the app processes `p` with `p % of == index`. Every
/// shard applies every write to its own database (the truth every
/// response is judged against) but serves, invalidates and counts only its
/// own processes' requests, so the shards of a cell whose processes share
/// nothing but the database (a store and a strategy instance each, no
/// injected faults) add up to the whole cell, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// This shard's number, `0..of`.
    pub(crate) index: u32,
    /// How many shards the cell is split into.
    pub(crate) of: u32,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("strategy", &self.strategy.name())
            .field("backends", &self.backends)
            .field("latencies", &self.latencies)
            .finish_non_exhaustive()
    }
}

impl Cell {
    /// A cell with default latencies, 160 bytes per item, one-minute buckets,
    /// single-flight on and XFetch off.
    pub fn new(strategy: Arc<dyn Strategy>, backends: Vec<Arc<dyn Backend>>, clock: ManualClock) -> Self {
        Cell {
            strategy,
            backends,
            live_keys: Vec::new(),
            round_trips: Vec::new(),
            clock,
            latencies: Latencies::default(),
            item_bytes: 160,
            declared_padding: false,
            bucket_us: 60_000_000,
            time_calls: false,
            aside: CacheOptions::default(),
            outage_limit: None,
            judge_stale: true,
            fenced_writes: true,
            faults: crate::config::Faults::none(),
            tier_faults: Vec::new(),
            store_strategies: Vec::new(),
            shard: None,
        }
    }
}

/// Commits between two prunings of the database history: often enough that
/// history stays a small multiple of one TTL's writes, rarely enough that the
/// pass over all items costs nothing per write.
const PRUNE_EVERY: u64 = 4096;

/// One feed request in flight.
struct Read {
    info: Arc<ViewInfo>,
    start_us: i64,
    /// The trace's app process (its single-flight table).
    process: u32,
    /// Index of the process's store in [`Run::read`].
    store: usize,
    flow: ReadFlow,
    /// When the DB answered this request's own load, as of which instant.
    as_of_excl: i64,
    /// The wait whose soft timeout is armed for it while it waits on
    /// another's load (0: none; `dbfault.rs`).
    wait: u64,
    /// Its load on the database-fault path (`dbfault.rs`).
    deferred: Option<Box<dbfault::Deferred>>,
}

enum Slot {
    Free,
    Read(Box<Read>),
    Invalidate {
        store: usize,
        change: Change,
        /// The writing process and its commit's instant (for a retry).
        process: u32,
        committed: i64,
    },
    /// A round of `process`'s failed bumps (`relay.rs`).
    Retry {
        process: u32,
    },
    /// The outbox relays poll (`relay.rs`).
    Poll,
    /// The soft timeout of the read at slot `read`, waiting on another's
    /// load as wait `wait` (`dbfault.rs`).
    Wake {
        read: u32,
        wait: u64,
    },
    /// A fault of `process`'s two tiers (`Faults::tier`).
    TierFault {
        process: u32,
        kind: crate::config::TierFaultKind,
    },
}

fn instant(t_us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(t_us).unwrap_or(0))
}

fn us(d: u64) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

struct Run {
    cell: Cell,
    /// One per store when the cell has [`Cell::store_strategies`], else
    /// one for every store (see [`Run::aside`]).
    asides: Vec<Aside>,
    read: Vec<Instrumented<Arc<dyn Backend>>>,
    write: Vec<Instrumented<Arc<dyn Backend>>>,
    /// Single-flight tables by app process (index = process id, grown on
    /// demand; the trace format bounds process ids); waiters are slot
    /// numbers.
    flights: Vec<Flights<u32>>,
    db: Db,
    views: ViewStates,
    /// Longest TTL any fill used so far, µs; `None` before the first fill.
    max_ttl_us: Option<u64>,
    /// A fill without TTL happened: its payload may be judged at any later
    /// time, so history can never be pruned.
    unbounded_ttl: bool,
    commits_since_prune: u64,
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    seq: u64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    base_us: i64,
    now_us: i64,
    rec: Recorder,
    /// Per scope (by its id in [`Run::db`]), the last two commit instants
    /// (older, newer), for `at_risk_reads`; `i64::MIN` for none.
    commits: Vec<(i64, i64)>,
    /// Failed bumps, the outbox, injected faults (`relay.rs`).
    relay: relay::Relay,
    /// Database faults, timeouts, fail-safe (`dbfault.rs`).
    dbf: dbfault::DbFaults,
}

impl Run {
    fn set_time(&mut self, t_us: i64) {
        self.now_us = t_us;
        self.cell.clock.advance_to(instant(t_us));
    }

    fn alloc(&mut self, slot: Slot) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) {
        self.slots[i as usize] = Slot::Free;
        self.free.push(i);
    }

    fn schedule(&mut self, at_us: i64, slot: u32) {
        self.seq += 1;
        self.heap.push(Reverse((at_us, self.seq, slot)));
    }

    /// The cache-aside core of the processes served by store `store`.
    fn aside(&self, store: usize) -> &Aside {
        &self.asides[store % self.asides.len()]
    }

    /// Whether this run serves app process `process` (see [`Shard`]).
    fn serves(&self, process: u32) -> bool {
        self.cell.shard.is_none_or(|s| process % s.of == s.index)
    }

    /// Round trips store `store` has made so far, if it counts them.
    fn trips(&self, store: usize) -> Option<u64> {
        self.cell.round_trips.get(store).map(|f| f())
    }

    /// The virtual time of a step that started when the store had made
    /// `before` round trips, at `per_trip_us` each: one trip when the store
    /// does not count them.
    fn charge(&self, store: usize, before: Option<u64>, per_trip_us: u64) -> i64 {
        let trips = match (before, self.trips(store)) {
            (Some(b), Some(a)) => a.saturating_sub(b),
            _ => 1,
        };
        us(per_trip_us.saturating_mul(trips))
    }

    /// The single-flight table of app process `process`.
    fn flights_of(&mut self, process: u32) -> &mut Flights<u32> {
        let i = process as usize;
        if self.flights.len() <= i {
            self.flights.resize_with(i + 1, Flights::new);
        }
        &mut self.flights[i]
    }

    fn store_index(&self, process: u32) -> usize {
        // One shared store serves every process.
        process as usize % self.read.len()
    }

    fn since_base(&self, t_us: i64) -> u64 {
        u64::try_from(t_us.saturating_sub(self.base_us)).unwrap_or(0)
    }

    async fn on_event(&mut self, input: &Input) -> Result<()> {
        let t = i64::try_from(input.t_us())
            .ok()
            .and_then(|d| self.base_us.checked_add(d))
            .ok_or_else(|| Error::Invalid(format!("event time {} µs is out of range", input.t_us())))?;
        self.set_time(t);
        let ev = match input {
            Input::Read { process, .. } if !self.serves(*process) => return Ok(()),
            Input::Read { process, view, .. } => {
                self.rec.reads += 1;
                // Resolved now, as each read arrives, so that the database
                // registers scopes in trace order whatever the flow does.
                self.views.get(view, &mut self.db);
                let store = self.store_index(*process);
                let slot = self.alloc(Slot::Read(Box::new(Read {
                    info: view.clone(),
                    start_us: t,
                    process: *process,
                    store,
                    flow: self.relay.read_for(self.aside(store), *process, &view.view),
                    as_of_excl: t,
                    wait: 0,
                    deferred: None,
                })));
                self.step(slot, t).await;
                return Ok(());
            }
            Input::Other(ev) => &**ev,
        };
        match ev {
            Event::Read { .. } => {
                return Err(Error::Invalid("a read reached the engine uninterned".into()));
            }
            Event::Write { process, write, .. } => {
                let c = self.db.commit(write, t)?;
                self.commits_since_prune += 1;
                if self.commits_since_prune >= PRUNE_EVERY {
                    self.commits_since_prune = 0;
                    self.prune(t);
                }
                if write.kind == crate::db::WriteKind::Load {
                    return Ok(());
                }
                if let Some(s) = self.db.scope_index(&c.scope) {
                    let s = s as usize;
                    if self.commits.len() <= s {
                        self.commits.resize(s + 1, (i64::MIN, i64::MIN));
                    }
                    let last = &mut self.commits[s];
                    *last = (last.1, t);
                }
                // Another shard's process: the truth above is every
                // shard's, the invalidation and the count are its own.
                if !self.serves(*process) {
                    return Ok(());
                }
                self.rec.writes += 1;
                let change = c.change()?;
                let store = self.store_index(*process);
                // The app announces the write before its commit and ends it
                // after: nothing runs between this and the commit above at
                // this virtual instant, so the order is the app's.
                if self.cell.fenced_writes
                    && self
                        .aside(store)
                        .begin_write(&self.write[store], &change)
                        .await
                        .is_err()
                {
                    self.rec.tally.record_invalidation(false);
                    self.relay.begin_failed(t);
                }
                if self.relay.crashes_now(t) {
                    self.crash_writer(*process, &change, t);
                    return Ok(());
                }
                let slot = self.alloc(Slot::Invalidate {
                    store,
                    change,
                    process: *process,
                    committed: t,
                });
                self.schedule(t.saturating_add(us(self.cell.latencies.invalidate_us)), slot);
            }
            Event::EvictControl { process, .. } if !self.serves(*process) => {}
            Event::EvictControl { process, view, .. } => {
                self.rec.control_evictions += 1;
                let p = self.store_index(*process);
                let keys = self.aside(p).strategy().control_keys(view);
                if !keys.is_empty() {
                    // The raw store: an eviction is not app traffic.
                    if self.cell.backends[p].delete_many(&keys).await.is_err() {
                        self.rec.other_errors += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops database history no later question can reach: judgements ask
    /// about instants from the start of an in-flight request, or from the
    /// query time of a payload that is still fresh, which is at most the
    /// longest TTL (plus the DB and fill latencies) ago.
    fn prune(&mut self, now: i64) {
        if self.unbounded_ttl {
            return;
        }
        let lat = self.cell.latencies;
        // A second of slack covers the envelope's millisecond rounding.
        let reach = [lat.db_us, lat.store_us, lat.get_us, lat.plan_us, 1_000_000]
            .iter()
            .fold(self.max_ttl_us.unwrap_or(0), |a, b| a.saturating_add(*b));
        let mut horizon = now.saturating_sub(us(reach));
        for s in &self.slots {
            if let Slot::Read(r) = s {
                horizon = horizon.min(r.start_us);
            }
        }
        self.db.prune(horizon);
    }

    /// Counts a read answered at `at`, judging what it was served. A
    /// fail-safe answer is judged the same way, and counted apart
    /// (`dbfault.rs`): never a stale read nor an at-risk read.
    fn serve(&mut self, r: &Read, at: i64) {
        let outcome = *r.flow.outcome();
        let payload = match (outcome.served, r.flow.payload()) {
            // Its own load: the database's answer after the request started.
            (Served::Loaded, _) | (Served::Failed, _) | (_, None) => None,
            // Not ours (a foreign entry on a shared server): unjudgeable.
            (_, Some(bytes)) => Payload::decode(bytes),
        };
        let mut staleness = None;
        let fail_safe = outcome.served == Served::FailSafe;
        if let Some(p) = &payload {
            let state = self.views.get(&r.info, &mut self.db);
            if self.cell.judge_stale {
                staleness = judge(
                    &self.db,
                    &state.query,
                    &mut state.memo,
                    r.info.digest,
                    r.start_us,
                    at,
                    p,
                );
            }
            // At risk: a write to one of the view's scopes committed before
            // the request started but at or after the instant the entry's
            // answer was taken. Needs no database truth.
            let at_risk = !fail_safe
                && state.query.scope_ids().iter().any(|&s| {
                    self.commits.get(s as usize).is_some_and(|&(older, newer)| {
                        let c = if newer < r.start_us { newer } else { older };
                        c >= p.as_of_excl && c < r.start_us
                    })
                });
            if at_risk {
                self.rec.at_risk_reads += 1;
            }
        }
        self.dbf.served(r.start_us, at, &outcome, staleness);
        let staleness = staleness.filter(|_| !fail_safe);
        self.relay.served(r.start_us, at, &outcome, staleness);
        let (start, at) = (self.since_base(r.start_us), self.since_base(at));
        self.rec.served(start, at, &outcome, staleness);
    }
}
