//! The event loop of one cell: trace events and queued steps in time
//! order, fed a chunk of inputs at a time so that cells sharing one reading
//! of a trace can take turns ([`Replay`]), or all at once ([`run_cell`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

use cache_core::flow::Aside;
use cache_core::{Instrumented, OpStats};

use super::input::{Input, Inputs};
use super::metrics::{Metrics, Recorder};
use super::outage::Outage;
use super::part::Part;
use super::views::ViewStates;
use super::{declared_len, judge, Cell, Run};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::trace::{Header, Source};

/// Events replayed between two updates of the shared progress counter.
const PROGRESS_EVERY: u64 = 4096;

/// One cell's replay, fed its inputs a chunk at a time ([`Replay::feed`])
/// and then finished ([`Replay::finish`]), so that cells sharing one trace
/// can take turns on worker threads.
pub(crate) struct Replay {
    run: Run,
    read_stats: OpStats,
    write_stats: OpStats,
    outage: Outage,
    pending_progress: u64,
}

impl Replay {
    /// A replay of a trace with `header` through `cell`.
    pub(crate) fn new(cell: Cell, header: &Header) -> Result<Replay> {
        if cell.backends.is_empty() {
            return Err(Error::Invalid("a cell needs at least one backend".into()));
        }
        cell.aside.validate()?;
        let stats = || {
            let s = if cell.time_calls {
                OpStats::new()
            } else {
                OpStats::counts_only()
            };
            // Bytes read count a feed's modelled size, padding included,
            // whether the padding is written or declared.
            if cell.declared_padding {
                s.with_value_size(declared_len)
            } else {
                s
            }
        };
        let (read_stats, write_stats) = (stats(), stats());
        let base_us = header.start_us();
        let asides: Vec<Aside> = if cell.store_strategies.is_empty() {
            vec![Aside::new(cell.strategy.clone(), cell.aside.clone())]
        } else if cell.store_strategies.len() == cell.backends.len() {
            cell.store_strategies
                .iter()
                .map(|s| Aside::new(s.clone(), cell.aside.clone()))
                .collect()
        } else {
            return Err(Error::Invalid(format!(
                "a cell has {} stores and {} strategy instances for them",
                cell.backends.len(),
                cell.store_strategies.len()
            )));
        };
        // Every instance has the same options: the first stands for all.
        let first = &asides[0];
        let mut run = Run {
            relay: super::relay::Relay::new(&cell.faults, first, base_us),
            dbf: super::dbfault::DbFaults::new(&cell.faults.db, first.options(), base_us),
            asides,
            read: cell
                .backends
                .iter()
                .map(|b| Instrumented::with_stats(b.clone(), read_stats.clone()))
                .collect(),
            write: cell
                .backends
                .iter()
                .map(|b| Instrumented::with_stats(b.clone(), write_stats.clone()))
                .collect(),
            flights: Vec::new(),
            db: Db::new(),
            views: ViewStates::new(),
            max_ttl_us: None,
            unbounded_ttl: false,
            commits_since_prune: 0,
            heap: BinaryHeap::new(),
            seq: 0,
            slots: Vec::new(),
            free: Vec::new(),
            base_us,
            now_us: base_us,
            rec: Recorder::new(cell.bucket_us),
            commits: Vec::new(),
            cell,
        };
        run.set_time(base_us);
        for f in run.cell.faults.tier.clone() {
            let slot = run.alloc(super::Slot::TierFault {
                process: f.process,
                kind: f.kind,
            });
            let at = base_us.saturating_add(i64::try_from(f.at_us).unwrap_or(i64::MAX));
            run.schedule(at, slot);
        }
        let outage = Outage {
            limit: run.cell.outage_limit,
            errors: 0,
            served: 0,
            since: None,
        };
        Ok(Replay {
            run,
            read_stats,
            write_stats,
            outage,
            pending_progress: 0,
        })
    }

    /// Replays `inputs` (the trace's next events, in order): each event,
    /// preceded by the queued steps due strictly before it (events go
    /// before steps at the same instant). `progress` is advanced by one per
    /// event, in batches.
    pub(crate) async fn feed(&mut self, inputs: &[Input], progress: Option<&AtomicU64>) -> Result<()> {
        let run = &mut self.run;
        let base_us = run.base_us;
        for input in inputs {
            let te = base_us.saturating_add(i64::try_from(input.t_us()).unwrap_or(i64::MAX));
            loop {
                self.outage.check(&run.rec)?;
                match run.heap.peek() {
                    Some(top) if top.0 .0 < te => {
                        if let Some(Reverse((t, _, slot))) = run.heap.pop() {
                            run.set_time(t);
                            run.step(slot, t).await;
                        }
                    }
                    _ => break,
                }
            }
            // Name the trace line of an event the database refuses
            // ("create of item 1 which exists").
            run.on_event(input).await.map_err(|e| e.at_line(input.line()))?;
            self.pending_progress += 1;
            if self.pending_progress == PROGRESS_EVERY {
                if let Some(p) = progress {
                    p.fetch_add(self.pending_progress, Ordering::Relaxed);
                }
                self.pending_progress = 0;
            }
        }
        Ok(())
    }

    /// Runs what is still queued after the last event, counts dead keys and
    /// returns the cell's metrics.
    pub(crate) async fn finish(self, progress: Option<&AtomicU64>) -> Result<Metrics> {
        Ok(self.finish_part(progress).await?.into_metrics())
    }

    /// [`Replay::finish`], with the metrics still in a form that adds up
    /// with the other shards of the same cell ([`Part::merge`]).
    pub(crate) async fn finish_part(mut self, progress: Option<&AtomicU64>) -> Result<Part> {
        let run = &mut self.run;
        loop {
            self.outage.check(&run.rec)?;
            let Some(Reverse((t, _, slot))) = run.heap.pop() else {
                break;
            };
            run.set_time(t);
            run.step(slot, t).await;
        }
        if let Some(p) = progress {
            p.fetch_add(self.pending_progress, Ordering::Relaxed);
        }
        let cell = &run.cell;
        let duration_us = u64::try_from(run.now_us.saturating_sub(run.base_us)).unwrap_or(0);
        let dead = if cell.live_keys.is_empty() {
            None
        } else {
            Some(judge::count_dead(&run.asides, &cell.backends, &cell.live_keys, &cell.clock).await)
        };
        let db_queries = run.db.queries();
        let faults = run.relay.summary().map(|mut f| {
            f.pending_bypassed = run.rec.tally.pending_bypassed;
            f
        });
        let db_faults = run.dbf.summary(&run.rec.tally);
        Ok(Part {
            rec: self.run.rec,
            read_ops: self.read_stats.snapshot(),
            write_ops: self.write_stats.snapshot(),
            db_queries,
            duration_us,
            dead,
            faults,
            db_faults,
            tier: None,
            server_evictions: None,
        })
    }
}

/// Inputs per chunk when a cell reads its source alone ([`run_cell`]).
const CHUNK: usize = 1024;

/// Replays `source` through `cell`. `progress` (if given) is advanced by one
/// per trace event, for a progress bar on another thread.
pub async fn run_cell(source: Source, cell: &Cell, progress: Option<&AtomicU64>) -> Result<Metrics> {
    let mut replay = Replay::new(cell.clone(), &source.header)?;
    let mut inputs = Inputs::new(source.events);
    loop {
        let (chunk, failed) = inputs.chunk(CHUNK);
        replay.feed(&chunk.inputs, progress).await?;
        if let Some(e) = failed {
            return Err(e);
        }
        if chunk.last {
            return replay.finish(progress).await;
        }
    }
}
