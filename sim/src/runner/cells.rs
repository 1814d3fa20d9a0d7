//! The cells of a run on this process's worker threads: whole, or each
//! split into shards of its app processes (`shards.rs`), in groups that
//! share one reading of the trace (`lockstep.rs`); and the rows their
//! parts add up to.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use cache_core::ManualClock;

use super::{group_size, lockstep, shards, start_cell, CellTiming, RunConfig, SourceFactory, StrategyFactory};
use crate::backends::{connect, BackendSpec};
use crate::engine::{Inputs, Metrics, Part, Shard};
use crate::error::{Error, Result};
use crate::report::CellResult;
use crate::trace::Header;
use crate::verdict::{Shape, ShapeCell};

/// A part and the time spent on it.
pub(crate) type TimedPart = (Part, Duration);

/// What `run_cells` measured: every cell's row and timing, in report
/// order, with what the report is built from besides them.
#[derive(Debug)]
pub(crate) struct Cells {
    /// The trace's header.
    pub(crate) header: Header,
    /// One row per cell: backends × strategies, backend-major.
    pub(crate) rows: Vec<CellResult>,
    /// Each cell's timing, in the same order.
    pub(crate) timings: Vec<CellTiming>,
    /// What the traffic shows (zones, shared calendars), for the verdict.
    pub(crate) shape: Shape,
}

/// Runs every cell of `cfg` and returns their rows, unassembled.
pub(crate) fn run_cells(
    cfg: &RunConfig,
    sources: SourceFactory,
    strategies: &StrategyFactory,
    progress: Option<Arc<AtomicU64>>,
) -> Result<Cells> {
    let (header, cells) = prepare(cfg, &sources)?;
    // Fewer cells than threads: a cell's processes may replay apart.
    let shards = shards::per_cell(cfg, cells.len(), header.processes);
    let tasks = shards::tasks(cells.len(), shards);
    let (parts, shape) = run_tasks(cfg, &sources, strategies, progress, &header, &cells, &tasks)?;
    let (rows, timings) = rows_of(cfg, &cells, parts, shards)?;
    Ok(Cells {
        header,
        rows,
        timings,
        shape,
    })
}

/// Shard `shard` of every cell of `cfg` (a worker of `--processes`
/// splitting cells by app process): each cell's part and time, in report
/// order.
pub(crate) fn run_shard(
    cfg: &RunConfig,
    sources: SourceFactory,
    strategies: &StrategyFactory,
    progress: Option<Arc<AtomicU64>>,
    shard: Shard,
) -> Result<(Header, Vec<TimedPart>, Shape)> {
    let (header, cells) = prepare(cfg, &sources)?;
    let tasks: Vec<(usize, Option<Shard>)> = (0..cells.len()).map(|i| (i, Some(shard))).collect();
    let (parts, shape) = run_tasks(cfg, &sources, strategies, progress, &header, &cells, &tasks)?;
    Ok((header, parts, shape))
}

/// The trace's header and the cells of `cfg` (backends × strategies,
/// backend-major), after checking that every backend connects.
fn prepare(cfg: &RunConfig, sources: &SourceFactory) -> Result<(Header, Vec<(String, BackendSpec)>)> {
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
    Ok((header, cells_of(cfg)))
}

/// The cells of `cfg`: backends × strategies, backend-major (report order).
pub(crate) fn cells_of(cfg: &RunConfig) -> Vec<(String, BackendSpec)> {
    cfg.backends
        .iter()
        .flat_map(|b| cfg.strategies.iter().map(move |s| (s.clone(), b.clone())))
        .collect()
}

/// Runs `tasks` (a cell of `cells`, whole or one shard of it, each) on a
/// trace with `header` and returns each task's part and the time spent on
/// it, in task order, and what the traffic shows.
fn run_tasks(
    cfg: &RunConfig,
    sources: &SourceFactory,
    strategies: &StrategyFactory,
    progress: Option<Arc<AtomicU64>>,
    header: &Header,
    cells: &[(String, BackendSpec)],
    tasks: &[(usize, Option<Shard>)],
) -> Result<(Vec<TimedPart>, Shape)> {
    // What the traffic shows (zones, shared calendars), for the verdict:
    // seen while the first group reads the trace.
    let shape = ShapeCell::new(header.processes);
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
    let group = group_size(cfg, header.processes);
    let mut results: Vec<Option<(std::result::Result<Part, lockstep::Stop>, Duration)>> = Vec::new();
    let mut source_error = None;
    for (g, members) in tasks.chunks(group).enumerate() {
        let mut source = sources()?;
        if g == 0 {
            source.events = shape.probe(source.events);
        }
        let header = source.header.clone();
        let start = |t: usize| {
            let (i, shard) = members[t];
            let (s, b) = &cells[i];
            start_cell(cfg, &header, namespaces[i].clone(), strategies, (s, b), shard)
        };
        // A worker per cell, and one more to read ahead while they replay.
        let workers = cfg.threads.clamp(1, members.len() + 1);
        let out = lockstep::run(
            Inputs::new(source.events),
            members.len(),
            workers,
            &start,
            progress.as_deref(),
        );
        let failed = out.cells.iter().any(|c| !matches!(c, Some((Ok(_), _))));
        results.extend(out.cells);
        source_error = out.source_error;
        if failed {
            break;
        }
    }
    results.resize_with(tasks.len(), || None);
    // The first failed cell's error, not "did not run" for those skipped after it.
    if let Some(t) = results.iter().position(|r| matches!(r, Some((Err(_), _)))) {
        if let Some((Err(stop), _)) = results.swap_remove(t) {
            let i = tasks[t].0;
            return Err(match stop {
                lockstep::Stop::Cell(Error::BackendDown {
                    errors, after, streak, ..
                }) => Error::BackendDown {
                    backend: cells[i].1.label(),
                    errors,
                    after,
                    streak,
                },
                lockstep::Stop::Cell(e) => e,
                lockstep::Stop::Source => {
                    source_error.unwrap_or_else(|| Error::Invalid("the trace failed to read".into()))
                }
            });
        }
    }
    let parts = results
        .into_iter()
        .zip(tasks)
        .map(|(r, &(i, _))| {
            let (strategy, backend) = &cells[i];
            let (part, wall) =
                r.ok_or_else(|| Error::Invalid(format!("cell {strategy} × {} did not run", backend.label())))?;
            let part = part.map_err(|_| Error::Invalid(format!("cell {strategy} × {} failed", backend.label())))?;
            Ok((part, wall))
        })
        .collect::<Result<_>>()?;
    Ok((parts, shape.shape()))
}

/// Each cell's row and timing from `parts`: `shards` parts per cell, cell
/// by cell, in the order of `cells`, added up (see `shards.rs`).
pub(crate) fn rows_of(
    cfg: &RunConfig,
    cells: &[(String, BackendSpec)],
    parts: Vec<TimedPart>,
    shards: u32,
) -> Result<(Vec<CellResult>, Vec<CellTiming>)> {
    let mut rows = Vec::with_capacity(cells.len());
    let mut timings = Vec::with_capacity(cells.len());
    let mut parts = parts.into_iter();
    for (strategy, backend) in cells {
        let mut whole: Option<TimedPart> = None;
        for _ in 0..shards.max(1) {
            let (part, wall) = parts
                .next()
                .ok_or_else(|| Error::Invalid(format!("cell {strategy} × {} did not run", backend.label())))?;
            whole = Some(match whole {
                None => (part, wall),
                Some((p, w)) => (p.merge(part), w + wall),
            });
        }
        let (part, wall) =
            whole.ok_or_else(|| Error::Invalid(format!("cell {strategy} × {} did not run", backend.label())))?;
        let m: Metrics = part.into_metrics();
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
            shards: shards.max(1),
        });
        rows.push(CellResult::new(strategy, &backend.label(), &m, cfg.bucket));
    }
    Ok((rows, timings))
}
