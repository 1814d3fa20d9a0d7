//! Runs every (strategy, backend) cell of a comparison and assembles the
//! report.
//!
//! Cells are independent (each replays the whole trace on fresh stores with
//! its own database and clock), so they run on worker threads, each with a
//! single-threaded Tokio runtime, and results are placed by cell index: the
//! report does not depend on which thread finished first.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::strategy::StrategyOptions;
use cache_core::tier::TierStats;
use cache_core::{ManualClock, Strategy};

use crate::backends::{connect, BackendSpec};
pub use crate::config::RunConfig;
use crate::engine::{run_cell, Cell, Metrics, RoundTrips};
use crate::error::{Error, Result};
use crate::report::{CellResult, Report};
use crate::trace::{Event, EventIter, Source};

/// Makes a fresh event source (each cell replays from the start).
pub type SourceFactory = Arc<dyn Fn() -> Result<Source> + Send + Sync>;
/// Builds a strategy by name ([`cache_core::strategy::by_name`] by default;
/// tests inject their own).
pub type StrategyFactory = Arc<dyn Fn(&str, &StrategyOptions) -> cache_core::Result<Arc<dyn Strategy>> + Send + Sync>;

/// The registry's strategy factory.
pub fn registry() -> StrategyFactory {
    Arc::new(|name: &str, opts: &StrategyOptions| cache_core::strategy::by_name(name, opts))
}

/// Events per batch handed from a reader thread to its cell.
const PREFETCH_BATCH: usize = 1024;
/// Batches in flight between a reader thread and its cell: enough to ride
/// out jitter, few enough that memory stays at a few thousand events.
const PREFETCH_DEPTH: usize = 4;

/// Moves reading (parsing a trace, generating traffic) to its own thread,
/// handing events over in order, in batches.
///
/// Why: with fewer cells than worker threads a core would sit idle while the
/// cell's thread both reads and simulates; reading is a good share of a
/// replay. Order is kept, so results are unchanged. The reader stops at the
/// first error (passed on in order) or when the cell drops the iterator.
fn prefetch(mut events: EventIter) -> Result<EventIter> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<Event>>>(PREFETCH_DEPTH);
    std::thread::Builder::new()
        .name("cache-sim-reader".into())
        .spawn(move || loop {
            let mut batch = Vec::with_capacity(PREFETCH_BATCH);
            let mut done = false;
            while batch.len() < PREFETCH_BATCH {
                match events.next() {
                    Some(ev) => {
                        let failed = ev.is_err();
                        batch.push(ev);
                        if failed {
                            done = true;
                            break;
                        }
                    }
                    None => {
                        done = true;
                        break;
                    }
                }
            }
            if tx.send(batch).is_err() || done {
                break;
            }
        })
        .map_err(|e| Error::Invalid(format!("cannot start a reader thread: {e}")))?;
    Ok(Box::new(rx.into_iter().flatten()))
}

// One call site; a struct for these would only rename them.
#[allow(clippy::too_many_arguments)]
fn run_one(
    cfg: &RunConfig,
    read_ahead: bool,
    namespace: Option<String>,
    sources: &SourceFactory,
    strategies: &StrategyFactory,
    strategy: &str,
    backend: &BackendSpec,
    progress: Option<&AtomicU64>,
) -> Result<Metrics> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start a runtime: {e}")))?;
    let mut source = sources()?;
    if read_ahead {
        source.events = prefetch(source.events)?;
    }
    let clock = ManualClock::at_unix_millis(u64::try_from(source.header.start.timestamp_millis()).unwrap_or(0));
    let mut opts = StrategyOptions::default();
    opts.clock = Arc::new(clock.clone());
    opts.ttl = cfg.ttl;
    opts.short_ttl = cfg.short_ttl;
    opts.seed = cfg.seed;
    opts.home_offset = cfg.home_offset;
    if let Some(ns) = namespace {
        opts = opts.with_namespace(ns);
    }
    let strat = strategies(strategy, &opts)?;
    let processes = source.header.processes;
    rt.block_on(async {
        let stores = connect(backend, processes, &clock).await?;
        let mut cell = Cell::new(strat, stores.backends, clock);
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
        let mut m = run_cell(source, &cell, progress).await?;
        if !stores.tiers.is_empty() {
            m.tier = Some(
                stores
                    .tiers
                    .iter()
                    .map(|t| t.stats())
                    .fold(TierStats::default(), |a, b| a + b),
            );
        }
        Ok(m)
    })
    .map_err(|e| match e {
        Error::BackendDown {
            errors, after, streak, ..
        } => Error::BackendDown {
            backend: backend.label(),
            errors,
            after,
            streak,
        },
        e => e,
    })
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
    /// Wall time of the cell on its worker thread (connecting included).
    pub wall: Duration,
    /// Time spent inside backend calls (reads and invalidations), as
    /// measured around each call; zero unless [`RunConfig::timings`].
    pub backend_time: Duration,
    /// Backend calls made.
    pub backend_calls: u64,
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
    let header = sources()?.header;
    // Fail before anything runs on an unusable backend.
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start a runtime: {e}")))?;
        for b in &cfg.backends {
            rt.block_on(connect(b, 1, &ManualClock::at_unix_millis(0)))?;
        }
    }
    let cells: Vec<(String, BackendSpec)> = cfg
        .backends
        .iter()
        .flat_map(|b| cfg.strategies.iter().map(move |s| (s.clone(), b.clone())))
        .collect();
    // On a shared server each cell writes under its own namespace. The run
    // nonce only names keys: no result depends on it, so reports stay
    // byte-identical across runs.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(40);
    let namespaces: Vec<Option<String>> = cells
        .iter()
        .enumerate()
        .map(|(i, (s, b))| (!b.isolated_per_cell()).then(|| format!("sim-{nonce:x}-{i}-{s}")))
        .collect();
    let parallel = cfg.backends.iter().all(BackendSpec::isolated_per_cell);
    let threads = if parallel {
        cfg.threads.clamp(1, cells.len().max(1))
    } else {
        1
    };
    // A spare core per cell: read each cell's events on it.
    let read_ahead = cfg.threads >= 2 * threads.max(1);
    type Timed = (Result<Metrics>, Duration);
    let results: Mutex<Vec<Option<Timed>>> = Mutex::new((0..cells.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    // After a cell fails the run fails: start no more cells.
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((s, b)) = cells.get(i) else { break };
                let started = std::time::Instant::now();
                let r = run_one(
                    cfg,
                    read_ahead,
                    namespaces[i].clone(),
                    &sources,
                    &strategies,
                    s,
                    b,
                    progress.as_deref(),
                );
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                if let Ok(mut all) = results.lock() {
                    all[i] = Some((r, started.elapsed()));
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| Error::Invalid("a worker thread panicked".into()))?;
    let mut rows = Vec::with_capacity(cells.len());
    let mut timings = Vec::with_capacity(cells.len());
    let mut results = results;
    // The first failed cell's error, not "did not run" for those skipped after it.
    if let Some(i) = results.iter().position(|r| matches!(r, Some((Err(_), _)))) {
        if let Some((Err(e), _)) = results.swap_remove(i) {
            return Err(e);
        }
    }
    for ((strategy, backend), r) in cells.iter().zip(results) {
        let (m, wall) =
            r.ok_or_else(|| Error::Invalid(format!("cell {strategy} × {} did not run", backend.label())))?;
        let m = m?;
        let sides = [("read", &m.read_ops), ("write", &m.write_ops)];
        let ops: Vec<_> = sides
            .iter()
            .flat_map(|(side, s)| s.ops.iter().map(move |o| (*side, o)))
            .filter(|(_, o)| o.calls > 0)
            .map(|(side, o)| (side, o.op, o.calls, o.keys, Duration::from_nanos(o.total_nanos)))
            .collect();
        let nanos: u64 = ops.iter().map(|o| o.4.as_nanos() as u64).sum();
        let calls: u64 = ops.iter().map(|o| o.2).sum();
        timings.push(CellTiming {
            strategy: strategy.clone(),
            backend: backend.label(),
            reads: m.reads,
            wall,
            backend_time: Duration::from_nanos(nanos),
            backend_calls: calls,
            ops,
        });
        rows.push(CellResult::new(strategy, &backend.label(), &m, cfg.bucket));
    }
    Ok((Report::new(cfg, &header, rows), timings))
}
