//! Cells in worker processes (`cache-sim --processes N`).
//!
//! Two cells on two threads of one process slow each other's stores: moka
//! frees entries through crossbeam-epoch's process-global collector and
//! flushes to it after every update, so the threads contend on it and free
//! each other's entries (the crate docs, "Performance", have the
//! measurements). Two processes share nothing, and run side by side as fast
//! as alone. So with `--processes N` the parent splits the strategies into
//! `N` groups, runs the first itself and each other one in a child: the same
//! executable with the same arguments, told its group and where to write
//! its rows by [`WORKER_ENV`]. Rows come back as JSON (floats round-trip
//! exactly) and are put back in report order, so the report is the same,
//! byte for byte, as from one process.
//!
//! With fewer cells than processes, and cells that can be split by app
//! process (`shards.rs`), the workers split the cells instead: each
//! replays one shard of every cell and sends back its counts in a form
//! that adds up ([`crate::engine`]'s parts, histograms as their buckets),
//! and the parent adds them up into the rows.
//!
//! Only cells on in-process stores are independent enough for this: cells
//! on a server share it and run one after the other anyway.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cells::TimedPart;
use super::{
    assemble, cells_of, rows_of, run_cells, run_shard, shards, CellTiming, RunConfig, SourceFactory, StrategyFactory,
};
use crate::engine::{Part, PartWire, Shard};
use crate::error::{Error, Result};
use crate::report::{CellResult, Report};

/// The environment variable that makes `cache-sim` a worker: the parent's
/// process id, `<path>` and `<strategy>,<strategy>…`, and for a worker
/// replaying one shard of every cell `<index>/<shards>`, separated by tabs. A
/// worker checks that its parent is that process, so a stray variable in a
/// user's environment is an error, never a silent run that prints nothing.
pub const WORKER_ENV: &str = "CACHE_SIM_WORKER";

/// Most worker processes.
pub const MAX_PROCESSES: usize = 16;

/// A worker's assignment, from [`WORKER_ENV`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Worker {
    /// Where to write the rows.
    pub out: PathBuf,
    /// The strategies to run (on every backend of the run).
    pub strategies: Vec<String>,
    /// Replay only shard `.0` of `.1` of every cell (its app processes
    /// `p` with `p % .1 == .0`) and send back parts, not rows; `None`:
    /// whole cells.
    pub shard: Option<(u32, u32)>,
}

/// The assignment in [`WORKER_ENV`], if this process is a worker.
pub fn worker_from_env() -> Result<Option<Worker>> {
    let Some(value) = std::env::var_os(WORKER_ENV) else {
        return Ok(None);
    };
    let value = value
        .into_string()
        .map_err(|_| Error::Invalid(format!("{WORKER_ENV}: not UTF-8")))?;
    let mut fields = value.splitn(4, '\t');
    let (Some(parent), Some(out), Some(strategies)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(Error::Invalid(format!(
            "{WORKER_ENV} is set but is not a worker's assignment (<parent pid>TAB<path>TAB<strategies>): unset it"
        )));
    };
    if parent.parse::<u32>().ok() != Some(std::os::unix::process::parent_id()) {
        return Err(Error::Invalid(format!(
            "{WORKER_ENV} is set, but this process was not started by `cache-sim --processes`: unset it"
        )));
    }
    let shard = match fields.next() {
        None => None,
        Some(f) => {
            let bad = || Error::Invalid(format!("{WORKER_ENV}: bad shard {f:?} (<index>/<shards>)"));
            let (i, n) = f.split_once('/').ok_or_else(bad)?;
            let (i, n) = (
                i.parse::<u32>().map_err(|_| bad())?,
                n.parse::<u32>().map_err(|_| bad())?,
            );
            if i >= n {
                return Err(bad());
            }
            Some((i, n))
        }
    };
    Ok(Some(Worker {
        out: PathBuf::from(out),
        strategies: strategies.split(',').map(str::to_owned).collect(),
        shard,
    }))
}

/// A cell's timing as it crosses the process boundary.
#[derive(Debug, Serialize, Deserialize)]
struct Timing {
    strategy: String,
    backend: String,
    reads: u64,
    wall_ns: u64,
    backend_ns: u64,
    backend_calls: u64,
    ops: Vec<(String, String, u64, u64, u64)>,
    shards: u32,
}

/// What a worker writes.
#[derive(Debug, Serialize, Deserialize)]
struct Output {
    rows: Vec<CellResult>,
    timings: Vec<Timing>,
    /// A shard worker's parts, one per cell in report order, with the
    /// nanoseconds spent on each (instead of rows and timings).
    parts: Vec<(PartWire, u64)>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl From<&CellTiming> for Timing {
    fn from(t: &CellTiming) -> Self {
        Timing {
            strategy: t.strategy.clone(),
            backend: t.backend.clone(),
            reads: t.reads,
            wall_ns: nanos(t.wall),
            backend_ns: nanos(t.backend_time),
            backend_calls: t.backend_calls,
            ops: t
                .ops
                .iter()
                .map(|(side, op, calls, keys, time)| {
                    ((*side).to_owned(), op.as_str().to_owned(), *calls, *keys, nanos(*time))
                })
                .collect(),
            shards: t.shards,
        }
    }
}

impl Timing {
    fn into_cell_timing(self) -> Result<CellTiming> {
        let mut ops = Vec::with_capacity(self.ops.len());
        for (side, op, calls, keys, ns) in self.ops {
            let side = match side.as_str() {
                "read" => "read",
                "write" => "write",
                other => return Err(Error::Invalid(format!("worker timing: unknown side {other:?}"))),
            };
            let op = cache_core::Op::ALL
                .into_iter()
                .find(|o| o.as_str() == op)
                .ok_or_else(|| Error::Invalid(format!("worker timing: unknown operation {op:?}")))?;
            ops.push((side, op, calls, keys, Duration::from_nanos(ns)));
        }
        Ok(CellTiming {
            strategy: self.strategy,
            backend: self.backend,
            reads: self.reads,
            wall: Duration::from_nanos(self.wall_ns),
            backend_time: Duration::from_nanos(self.backend_ns),
            backend_calls: self.backend_calls,
            ops,
            shards: self.shards,
        })
    }
}

/// Runs `worker`'s cells and writes their rows and timings to its path.
pub fn run_worker(
    cfg: &RunConfig,
    worker: &Worker,
    sources: SourceFactory,
    strategies: &StrategyFactory,
) -> Result<()> {
    let mut cfg = cfg.clone();
    cfg.strategies.clone_from(&worker.strategies);
    cfg.threads = 1;
    let out = if let Some((index, of)) = worker.shard {
        let (_, parts, _) = run_shard(&cfg, sources, strategies, None, Shard { index, of })?;
        Output {
            rows: Vec::new(),
            timings: Vec::new(),
            parts: parts
                .into_iter()
                .map(|(p, wall)| Ok((p.into_wire()?, nanos(wall))))
                .collect::<Result<_>>()?,
        }
    } else {
        let cells = run_cells(&cfg, sources, strategies, None)?;
        Output {
            rows: cells.rows,
            timings: cells.timings.iter().map(Timing::from).collect(),
            parts: Vec::new(),
        }
    };
    let json = serde_json::to_vec(&out).map_err(|e| Error::Invalid(format!("worker rows: {e}")))?;
    std::fs::write(&worker.out, json).map_err(|e| Error::Io {
        path: worker.out.clone(),
        source: e,
    })
}

/// The strategies of each process: interleaved, so that each gets a mix of
/// cheap and expensive cells.
fn groups(strategies: &[String], processes: usize) -> Vec<Vec<String>> {
    let n = processes.clamp(1, strategies.len().max(1));
    (0..n)
        .map(|k| strategies.iter().skip(k).step_by(n).cloned().collect())
        .collect()
}

/// The strategies this process runs itself with `--processes processes`
/// on a trace of `app_processes` app processes: all of them with one
/// process, or when the cells are split by app process (each process then
/// replays a shard of every cell).
pub fn own_strategies(cfg: &RunConfig, processes: usize, app_processes: u32) -> Vec<String> {
    let cells = cfg.strategies.len() * cfg.backends.len();
    if shards::across_processes(cfg, cells, app_processes, processes) > 1 {
        return cfg.strategies.clone();
    }
    groups(&cfg.strategies, processes)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// A started worker.
struct Started {
    child: Child,
    out: PathBuf,
    /// What it was given, for its error.
    what: String,
}

impl Started {
    /// Waits for the worker and reads what it wrote.
    fn output(&mut self) -> Result<Output> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::Invalid(format!("--processes: waiting for a worker: {e}")))?;
        if !status.success() {
            return Err(Error::Invalid(format!(
                "--processes: the worker for {} failed ({status}); its error is above",
                self.what
            )));
        }
        let bytes = std::fs::read(&self.out).map_err(|e| Error::Io {
            path: self.out.clone(),
            source: e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("--processes: a worker's rows: {e}")))
    }
}

/// A temporary directory for the workers' output, removed after the run.
fn worker_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("cache-sim-workers")
        .tempdir()
        .map_err(|e| Error::Invalid(format!("--processes: cannot create a temporary directory: {e}")))
}

/// Starts `exe args…` as a worker running `strategies` (shard `shard` of
/// each cell, if given), writing to `out`.
fn start_worker(
    exe: &Path,
    args: &[OsString],
    out: PathBuf,
    strategies: Vec<String>,
    shard: Option<Shard>,
) -> Result<Started> {
    let mut assignment = OsString::from(format!("{}\t", std::process::id()));
    assignment.push(out.as_os_str());
    assignment.push("\t");
    assignment.push(strategies.join(","));
    let mut what = strategies.join(",");
    if let Some(s) = shard {
        assignment.push(format!("\t{}/{}", s.index, s.of));
        what = format!("shard {} of {} of {what}", s.index + 1, s.of);
    }
    let child = Command::new(exe)
        .args(args)
        .env(WORKER_ENV, assignment)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Invalid(format!("--processes: cannot start {}: {e}", exe.display())))?;
    Ok(Started { child, out, what })
}

/// Kills workers still running when the parent gives up (an error of its
/// own, or of another worker).
struct Workers(Vec<Started>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// [`run_timed`](super::run_timed) over `processes` processes: this one
/// and children started as `exe args…` (normally `cache-sim` and its own
/// arguments). The report is the one a single process builds, byte for
/// byte; the timings are every cell's, in report order.
pub fn run_in_processes(
    cfg: &RunConfig,
    processes: usize,
    exe: &Path,
    args: &[OsString],
    sources: SourceFactory,
    strategies: &StrategyFactory,
    progress: Option<Arc<AtomicU64>>,
) -> Result<(Report, Vec<CellTiming>)> {
    if let Some(b) = cfg.backends.iter().find(|b| !b.isolated_per_cell()) {
        return Err(Error::Invalid(format!(
            "--processes: {} is not an in-process store; cells on a server run one after the other, in one process",
            b.label()
        )));
    }
    let header = sources()?.header;
    let cells = cfg.strategies.len() * cfg.backends.len();
    let split = shards::across_processes(cfg, cells, header.processes, processes);
    if split > 1 {
        return run_shards_in_processes(cfg, split, exe, args, sources, strategies, progress);
    }
    let groups = groups(&cfg.strategies, processes);
    let dir = worker_dir()?;
    let mut workers = Workers(Vec::new());
    for (k, group) in groups.iter().enumerate().skip(1) {
        let out = dir.path().join(format!("worker-{k}.json"));
        workers.0.push(start_worker(exe, args, out, group.clone(), None)?);
    }
    let mut own = cfg.clone();
    own.strategies = groups.first().cloned().unwrap_or_default();
    own.threads = 1;
    let mine = run_cells(&own, sources, strategies, progress)?;

    // Every cell's row and timing, by (strategy, backend label).
    let mut cells: HashMap<(String, String), (CellResult, CellTiming)> = HashMap::new();
    let mut add = |r: CellResult, t: CellTiming| {
        cells.insert((r.strategy.clone(), r.backend.clone()), (r, t));
    };
    for (r, t) in mine.rows.into_iter().zip(mine.timings) {
        add(r, t);
    }
    for w in &mut workers.0 {
        let out = w.output()?;
        for (r, t) in out.rows.into_iter().zip(out.timings) {
            add(r, t.into_cell_timing()?);
        }
    }
    workers.0.clear();

    let mut rows = Vec::new();
    let mut timings = Vec::new();
    for b in &cfg.backends {
        for s in &cfg.strategies {
            let Some((r, t)) = cells.remove(&(s.clone(), b.label())) else {
                return Err(Error::Invalid(format!("--processes: no row for {s} × {}", b.label())));
            };
            rows.push(r);
            timings.push(t);
        }
    }
    Ok((assemble(cfg, &mine.header, rows, &mine.shape, strategies), timings))
}

/// [`run_in_processes`] with every cell split into `split` shards by app
/// process: this process replays shard 0 of every cell, worker `k` shard
/// `k`, and the parts add up to each cell's row (`shards.rs`).
fn run_shards_in_processes(
    cfg: &RunConfig,
    split: u32,
    exe: &Path,
    args: &[OsString],
    sources: SourceFactory,
    strategies: &StrategyFactory,
    progress: Option<Arc<AtomicU64>>,
) -> Result<(Report, Vec<CellTiming>)> {
    let dir = worker_dir()?;
    let mut workers = Workers(Vec::new());
    for index in 1..split {
        let out = dir.path().join(format!("worker-{index}.json"));
        let shard = Shard { index, of: split };
        workers
            .0
            .push(start_worker(exe, args, out, cfg.strategies.clone(), Some(shard))?);
    }
    let mut own = cfg.clone();
    own.threads = 1;
    let (header, mine, shape) = run_shard(&own, sources, strategies, progress, Shard { index: 0, of: split })?;
    // By shard, then by cell; `rows_of` wants them by cell, then by shard.
    let cells = mine.len();
    let mut by_shard: Vec<std::vec::IntoIter<TimedPart>> = vec![mine.into_iter()];
    for w in &mut workers.0 {
        let out = w.output()?;
        if out.parts.len() != cells {
            return Err(Error::Invalid(format!(
                "--processes: a worker sent {} parts for {cells} cells",
                out.parts.len()
            )));
        }
        let parts = out
            .parts
            .into_iter()
            .map(|(p, ns)| Ok((Part::from_wire(p)?, Duration::from_nanos(ns))))
            .collect::<Result<Vec<_>>>()?;
        by_shard.push(parts.into_iter());
    }
    workers.0.clear();
    let mut parts = Vec::with_capacity(cells * by_shard.len());
    for _ in 0..cells {
        for shard in &mut by_shard {
            parts.extend(shard.next());
        }
    }
    let (rows, timings) = rows_of(cfg, &cells_of(cfg), parts, split)?;
    Ok((assemble(cfg, &header, rows, &shape, strategies), timings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_interleave_and_never_leave_one_empty() {
        let s: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(groups(&s, 2), vec![vec!["a", "c", "e"], vec!["b", "d"]]);
        assert_eq!(groups(&s, 9).len(), 5);
        assert_eq!(groups(&s, 1), vec![s.clone()]);
    }
}
