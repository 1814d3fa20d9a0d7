//! Runs every (strategy, backend) cell of a comparison and assembles the
//! report.
//!
//! Cells are independent (each replays the whole trace on fresh stores with
//! its own database, clock and single-threaded Tokio runtime), and results
//! are placed by cell index: the report does not depend on which thread ran
//! what. Cells on in-process stores share one reading of the trace and take
//! turns on the worker threads (`lockstep.rs`); cells on a server run one
//! after the other, each reading the trace afresh.
//!
//! # Layout
//!
//! - `mod.rs`: [`run`], what a cell is made of, the report.
//! - `cells.rs`: the cells of a run (whole, or split into shards) on the
//!   worker threads, and their rows.
//! - `lockstep.rs`: cells sharing one trace, read once, in chunks.
//! - `processes.rs`: cells in worker processes (`cache-sim --processes`).
//! - `shards.rs`: a cell's app processes replayed in parallel, when the
//!   cells are fewer than the threads.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use cache_core::tier::TierStats;
use cache_core::CacheOptions;
use cache_core::{ManualClock, Strategy};

use crate::backends::{connect, BackendSpec};
pub use crate::config::RunConfig;
use crate::engine::{Cell, Chunk, Part, Replay, RoundTrips, Shard};
use crate::error::{Error, Result};
use crate::report::{CellResult, Report};
use crate::trace::{Header, Source};
use crate::verdict::Shape;

/// Makes a fresh event source (each cell replays from the start).
pub type SourceFactory = Arc<dyn Fn() -> Result<Source> + Send + Sync>;
/// Builds a strategy by name ([`cache_core::strategy::by_name`] by default;
/// tests inject their own).
pub type StrategyFactory = Arc<dyn Fn(&str, &CacheOptions) -> cache_core::Result<Arc<dyn Strategy>> + Send + Sync>;

/// The registry's strategy factory.
pub fn registry() -> StrategyFactory {
    Arc::new(|name: &str, opts: &CacheOptions| cache_core::strategy::by_name(name, opts))
}

mod cells;
mod lockstep;
mod processes;
mod shards;

use cells::{cells_of, rows_of, run_cells, run_shard};

pub use processes::{own_strategies, run_in_processes, run_worker, worker_from_env, Worker, MAX_PROCESSES, WORKER_ENV};

/// Most cells replaying one reading of a trace together.
const LOCKSTEP_CELLS: usize = 8;

/// Store capacity (declared, summed over a group's cells and processes)
/// that cells on plain `locmem` may hold at once: the 8 cells of
/// `realistic` at the default 256 MiB, ~350 MB resident. With declared
/// padding a store holds a few hundred bytes per entry whatever the
/// feed's modelled size, about a seventh of its capacity.
const LOCKSTEP_CAPACITY: u64 = 8 << 28;

/// How many cells replay one reading of the trace together.
///
/// Every cell of a group holds its stores all along, so: on plain `locmem`
/// as many as [`LOCKSTEP_CAPACITY`] allows (more cells, fewer readings of
/// the trace); on stores that hold the written padding (two-tier) as many
/// as there are threads, the memory cells running side by side always
/// took; on a server one at a time (cells sharing it at once would compete
/// for its memory, and evict differently than alone).
fn group_size(cfg: &RunConfig, processes: u32) -> usize {
    let mut declared = 0u64;
    for b in &cfg.backends {
        match b {
            BackendSpec::Locmem { capacity_bytes } => declared = declared.max(*capacity_bytes),
            b if b.isolated_per_cell() => return cfg.threads.max(1),
            _ => return 1,
        }
    }
    let per_cell = declared.saturating_mul(u64::from(processes.max(1))).max(1);
    let fits = usize::try_from(LOCKSTEP_CAPACITY / per_cell).unwrap_or(LOCKSTEP_CELLS);
    fits.clamp(cfg.threads.max(1), LOCKSTEP_CELLS.max(cfg.threads))
}

/// A cell in progress: its runtime (its stores' connections live there)
/// and its replay.
struct CellTask {
    rt: tokio::runtime::Runtime,
    replay: Replay,
    tiers: Vec<cache_core::tier::TwoTier>,
    /// The server's eviction counter before the cell ran, and the store to
    /// read it from again after (servers only: see [`evictions`]).
    evictions_before: Option<(Arc<dyn cache_core::Backend>, u64)>,
    /// Advances the progress counter: every shard of a cell replays every
    /// event, and only its first one counts them.
    counts_progress: bool,
}

/// The eviction counter of the server behind `store`
/// ([`Backend::server_stats`](cache_core::Backend::server_stats)); `None`
/// for an in-process store, or when the server will not say (an ACL that
/// forbids `INFO`): the report then shows nothing rather than a guess.
async fn evictions(store: &dyn cache_core::Backend) -> Option<u64> {
    store.server_stats().await.ok().flatten().map(|s| s.evicted_keys)
}

impl lockstep::Task for CellTask {
    fn feed(&mut self, chunk: &Chunk, progress: Option<&AtomicU64>) -> Result<()> {
        let progress = progress.filter(|_| self.counts_progress);
        self.rt.block_on(self.replay.feed(&chunk.inputs, progress))
    }

    fn finish(self: Box<Self>, progress: Option<&AtomicU64>) -> Result<Part> {
        let CellTask {
            rt,
            replay,
            tiers,
            evictions_before,
            counts_progress,
        } = *self;
        let mut part = rt.block_on(replay.finish_part(progress.filter(|_| counts_progress)))?;
        if !tiers.is_empty() {
            part.tier = Some(tiers.iter().map(|t| t.stats()).fold(TierStats::default(), |a, b| a + b));
        }
        if let Some((store, before)) = evictions_before {
            // Cells on a server run one at a time: what moved, moved during
            // this cell (or for another client of the same server).
            part.server_evictions = rt
                .block_on(evictions(store.as_ref()))
                .map(|after| after.saturating_sub(before));
        }
        Ok(part)
    }
}

/// Makes a cell (or shard `shard` of it): its strategy, its stores
/// (connected), its replay.
fn start_cell(
    cfg: &RunConfig,
    header: &Header,
    namespace: Option<String>,
    strategies: &StrategyFactory,
    (strategy, backend): (&str, &BackendSpec),
    shard: Option<Shard>,
) -> Result<Box<dyn lockstep::Task>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start a runtime: {e}")))?;
    let mut made = rt.block_on(make_cell(cfg, header, namespace, strategies, strategy, backend))?;
    made.cell.shard = shard;
    let replay = Replay::new(made.cell, header)?;
    Ok(Box::new(CellTask {
        rt,
        replay,
        tiers: made.tiers,
        evictions_before: made.evictions_before,
        counts_progress: shard.is_none_or(|s| s.index == 0),
    }))
}

/// A cell made by [`make_cell`], with what its task needs beside it.
pub(crate) struct MadeCell {
    pub(crate) cell: Cell,
    /// With a `two-tier` backend the tiers, for their counters.
    pub(crate) tiers: Vec<cache_core::tier::TwoTier>,
    /// On a server, its eviction count before the cell ran.
    pub(crate) evictions_before: Option<(Arc<dyn cache_core::Backend>, u64)>,
}

/// A cell of `cfg`: its strategy, its stores connected (behind `cfg`'s
/// freezes), its options. Called on the runtime the cell will run on (its
/// stores' connections live there).
pub(crate) async fn make_cell(
    cfg: &RunConfig,
    header: &Header,
    namespace: Option<String>,
    strategies: &StrategyFactory,
    strategy: &str,
    backend: &BackendSpec,
) -> Result<MadeCell> {
    let clock = ManualClock::at_unix_millis(u64::try_from(header.start.timestamp_millis()).unwrap_or(0));
    let mut opts = cfg.strategy_options(&clock);
    if let Some(ns) = namespace {
        opts = opts.with_namespace(ns);
    }
    let strat = strategies(strategy, &opts)?;
    let mut stores = connect(backend, header.processes, &clock).await?;
    // In-process stores answer `None` at once.
    let evictions_before = match stores.backends.first() {
        Some(store) => evictions(store.as_ref()).await.map(|n| (store.clone(), n)),
        None => None,
    };
    if !cfg.faults.freezes.is_empty() {
        stores.backends = frozen(stores.backends, cfg, header, &clock);
    }
    // A store per process and nothing shared: each process has its own
    // strategy instance, as an application's processes do (and as a cell
    // split by process needs, see `shards.rs`). On a shared store they
    // share one, as they always have here.
    let store_strategies = if matches!(backend, BackendSpec::Locmem { .. }) && stores.backends.len() > 1 {
        // The first process's is the cell's own.
        std::iter::once(Ok(strat.clone()))
            .chain((1..stores.backends.len()).map(|_| strategies(strategy, &opts)))
            .collect::<cache_core::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let mut cell = Cell::new(strat, stores.backends, clock);
    cell.store_strategies = store_strategies;
    cell.live_keys = stores.live_keys;
    // Two tiers: a read is charged per L2 round trip it made.
    cell.round_trips = stores
        .tiers
        .iter()
        .map(|t| {
            let t = t.clone();
            Arc::new(move || t.stats().l2_round_trips) as RoundTrips
        })
        .collect();
    cell.latencies = cfg.latencies;
    cell.item_bytes = cfg.item_bytes;
    cell.declared_padding = stores.declared_padding;
    cell.bucket_us = u64::try_from(cfg.bucket.as_micros()).unwrap_or(u64::MAX).max(1);
    cell.time_calls = cfg.timings;
    cell.aside = cfg.aside.clone().with_seed(cfg.seed);
    cell.outage_limit = cfg.outage_limit;
    cell.judge_stale = cfg.judge_stale;
    cell.fenced_writes = cfg.fenced_writes;
    cell.faults = cfg.faults.clone();
    cell.tier_faults = stores.tier_faults;
    Ok(MadeCell {
        cell,
        tiers: stores.tiers,
        evictions_before,
    })
}

/// `backends` behind one [`FreezeSwitch`](cache_core::fault::FreezeSwitch)
/// following `cfg`'s freezes on the cell's virtual clock: the server (one
/// store per process, or the shared one) refuses every call meanwhile.
fn frozen(
    backends: Vec<Arc<dyn cache_core::Backend>>,
    cfg: &RunConfig,
    header: &Header,
    clock: &ManualClock,
) -> Vec<Arc<dyn cache_core::Backend>> {
    use cache_core::fault::{FreezeSwitch, Frozen};
    // The engine's virtual instants: the trace's start in µs, plus offsets.
    let start = std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(header.start_us()).unwrap_or(0));
    let windows = cfg
        .faults
        .freezes
        .iter()
        .map(|f| start + Duration::from_micros(f.start_us)..start + Duration::from_micros(f.end_us))
        .collect();
    let switch = FreezeSwitch::scheduled(Arc::new(clock.clone()), windows);
    backends
        .into_iter()
        .map(|b| Arc::new(Frozen::new(b, switch.clone())) as Arc<dyn cache_core::Backend>)
        .collect()
}

/// How long one cell took in real time: not part of any report (reports
/// depend only on their inputs), printed by `cache-sim --timings`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CellTiming {
    /// The strategy.
    pub strategy: String,
    /// The backend's label.
    pub backend: String,
    /// Feed requests the cell replayed.
    pub reads: u64,
    /// Wall time spent on the cell by the worker threads, connecting
    /// included (reading the trace, shared by the cells, is not).
    pub wall: Duration,
    /// Time spent inside backend calls (reads and invalidations), as
    /// measured around each call; zero unless [`RunConfig::timings`].
    pub backend_time: Duration,
    /// Backend calls made.
    pub backend_calls: u64,
    /// App-process shards the cell was replayed as, in parallel (1: whole;
    /// see [`RunConfig::threads`]). `wall` is their sum.
    pub shards: u32,
    /// The same per side and operation: (`"read"` or `"write"`, operation,
    /// calls, keys, time inside the calls), operations with calls only.
    pub ops: Vec<(&'static str, cache_core::Op, u64, u64, Duration)>,
}

/// Runs every cell and builds the report. `progress` counts replayed events
/// across cells.
pub fn run(
    cfg: &RunConfig,
    sources: SourceFactory,
    strategies: StrategyFactory,
    progress: Option<Arc<AtomicU64>>,
) -> Result<Report> {
    run_timed(cfg, sources, strategies, progress).map(|(report, _)| report)
}

/// [`run`], also returning each cell's [`CellTiming`], in report order.
pub fn run_timed(
    cfg: &RunConfig,
    sources: SourceFactory,
    strategies: StrategyFactory,
    progress: Option<Arc<AtomicU64>>,
) -> Result<(Report, Vec<CellTiming>)> {
    let cells = run_cells(cfg, sources, &strategies, progress)?;
    let report = assemble(cfg, &cells.header, cells.rows, &cells.shape, &strategies);
    Ok((report, cells.timings))
}

/// The report of `rows` (every cell of `cfg`, backend-major, as
/// `run_cells` gives them), with the verdict when `cfg` asks for one.
/// Rows measured apart (in worker processes) and put back in order make
/// the same report, byte for byte.
pub fn assemble(
    cfg: &RunConfig,
    header: &Header,
    rows: Vec<CellResult>,
    shape: &Shape,
    strategies: &StrategyFactory,
) -> Report {
    let mut report = Report::new(cfg, header, rows);
    if cfg.verdict {
        report.recommendation = Some(crate::verdict::judge(cfg, &report, shape, strategies));
    }
    report
}
