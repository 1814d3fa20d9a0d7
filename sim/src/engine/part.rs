//! What a replay measured before it becomes a cell's [`Metrics`]: in a
//! form that adds up, so that the shards of one cell (its app processes
//! replayed apart, see [`Shard`](super::Shard)) give the cell's metrics,
//! exactly as one replay of all its processes would; and their wire form,
//! for shards replayed in worker processes.

use cache_core::StatsSnapshot;

use super::judge::DeadCount;
use super::metrics::{Metrics, Recorder, RecorderWire};
use super::{DbFaultMetrics, FaultMetrics};
use crate::error::{Error, Result};

/// A replay's counts, histograms and end-of-run figures.
pub(crate) struct Part {
    pub(super) rec: Recorder,
    pub(super) read_ops: StatsSnapshot,
    pub(super) write_ops: StatsSnapshot,
    pub(super) db_queries: u64,
    pub(super) duration_us: u64,
    pub(super) dead: Option<DeadCount>,
    /// Only runs with injected faults have these, and those are never
    /// split (the runner's choice): merging keeps the first.
    pub(super) faults: Option<FaultMetrics>,
    pub(super) db_faults: Option<DbFaultMetrics>,
    /// Set by the runner, which owns the tiers ([`Metrics::tier`]).
    pub(crate) tier: Option<cache_core::tier::TierStats>,
    /// Set by the runner, which reads the server ([`Metrics::server_evictions`]).
    pub(crate) server_evictions: Option<u64>,
}

/// `a + b`, operation by operation. Quantiles of call latency (real time,
/// never in a report) cannot be added: the larger stands for both.
fn add_stats(a: &mut StatsSnapshot, b: &StatsSnapshot) {
    for (x, y) in a.ops.iter_mut().zip(&b.ops) {
        x.calls += y.calls;
        x.keys += y.keys;
        x.errors += y.errors;
        x.total_nanos += y.total_nanos;
        x.max_nanos = x.max_nanos.max(y.max_nanos);
        x.p50_nanos = x.p50_nanos.max(y.p50_nanos);
        x.p99_nanos = x.p99_nanos.max(y.p99_nanos);
    }
    a.bytes_read += b.bytes_read;
}

impl Part {
    /// This part and `other` (another shard of the same cell) as one.
    pub(crate) fn merge(mut self, other: Part) -> Part {
        self.rec.merge(other.rec);
        add_stats(&mut self.read_ops, &other.read_ops);
        add_stats(&mut self.write_ops, &other.write_ops);
        self.db_queries += other.db_queries;
        // Every shard replays every event: the run ends at the latest step.
        self.duration_us = self.duration_us.max(other.duration_us);
        self.dead = match (self.dead, other.dead) {
            (Some(a), Some(b)) => Some(DeadCount {
                dead: a.dead + b.dead,
                bytes: a.bytes + b.bytes,
                orphaned: a.orphaned + b.orphaned,
                live: a.live + b.live,
            }),
            (a, b) => a.or(b),
        };
        self.tier = match (self.tier, other.tier) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.server_evictions = match (self.server_evictions, other.server_evictions) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.faults = self.faults.or(other.faults);
        self.db_faults = self.db_faults.or(other.db_faults);
        self
    }

    /// The cell's metrics.
    pub(crate) fn into_metrics(self) -> Metrics {
        let dead = self.dead;
        let mut m = self.rec.finish(self.read_ops, self.write_ops, self.db_queries);
        m.duration_us = self.duration_us;
        m.dead_keys = dead.map(|d| d.dead);
        m.dead_bytes = dead.map(|d| d.bytes);
        m.orphaned_keys = dead.map(|d| d.orphaned);
        m.live_keys = dead.map(|d| d.live);
        m.faults = self.faults;
        m.fail_safe_stale = self.db_faults.map_or(0, |d| d.fail_safe_stale);
        m.db_faults = self.db_faults;
        m.tier = self.tier;
        m.server_evictions = self.server_evictions;
        m
    }
}

/// One operation's counters as JSON carries them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OpWire {
    op: String,
    /// Calls, keys, errors, total, slowest, p50 and p99 nanoseconds.
    n: [u64; 7],
}

/// Counters of every operation as JSON carries them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StatsWire {
    ops: Vec<OpWire>,
    bytes_read: u64,
}

fn stats_to_wire(s: &StatsSnapshot) -> StatsWire {
    StatsWire {
        ops: s
            .ops
            .iter()
            .map(|o| OpWire {
                op: o.op.as_str().to_owned(),
                n: [
                    o.calls,
                    o.keys,
                    o.errors,
                    o.total_nanos,
                    o.max_nanos,
                    o.p50_nanos,
                    o.p99_nanos,
                ],
            })
            .collect(),
        bytes_read: s.bytes_read,
    }
}

fn stats_from_wire(w: StatsWire) -> Result<StatsSnapshot> {
    // Every operation in its place, whatever the sender listed.
    let mut s = cache_core::OpStats::counts_only().snapshot();
    for o in w.ops {
        let Some(mine) = s.ops.iter_mut().find(|m| m.op.as_str() == o.op) else {
            return Err(Error::Invalid(format!(
                "a shard's counters name an unknown operation {:?}",
                o.op
            )));
        };
        [
            mine.calls,
            mine.keys,
            mine.errors,
            mine.total_nanos,
            mine.max_nanos,
            mine.p50_nanos,
            mine.p99_nanos,
        ] = o.n;
    }
    s.bytes_read = w.bytes_read;
    Ok(s)
}

/// A [`Part`] as JSON carries it from a worker process (`cache-sim
/// --processes` splitting cells by app process).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PartWire {
    rec: RecorderWire,
    read_ops: StatsWire,
    write_ops: StatsWire,
    db_queries: u64,
    duration_us: u64,
    /// Dead, their bytes, orphaned, live.
    dead: Option<[u64; 4]>,
}

impl Part {
    /// This part as it crosses a process boundary. Only parts of runs
    /// without faults or tiers cross (the runner splits no others): the
    /// rest is an error rather than a silently thinner report.
    pub(crate) fn into_wire(self) -> Result<PartWire> {
        if self.faults.is_some() || self.db_faults.is_some() || self.tier.is_some() || self.server_evictions.is_some() {
            return Err(Error::Invalid(
                "a cell with faults, tiers or a server cannot be split across processes".into(),
            ));
        }
        Ok(PartWire {
            read_ops: stats_to_wire(&self.read_ops),
            write_ops: stats_to_wire(&self.write_ops),
            rec: self.rec.into_wire(),
            db_queries: self.db_queries,
            duration_us: self.duration_us,
            dead: self.dead.map(|d| [d.dead, d.bytes, d.orphaned, d.live]),
        })
    }

    /// The part [`Part::into_wire`] sent.
    pub(crate) fn from_wire(w: PartWire) -> Result<Part> {
        Ok(Part {
            rec: Recorder::from_wire(w.rec)?,
            read_ops: stats_from_wire(w.read_ops)?,
            write_ops: stats_from_wire(w.write_ops)?,
            db_queries: w.db_queries,
            duration_us: w.duration_us,
            dead: w.dead.map(|[dead, bytes, orphaned, live]| DeadCount {
                dead,
                bytes,
                orphaned,
                live,
            }),
            faults: None,
            db_faults: None,
            tier: None,
            server_evictions: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::Op;

    fn stats(calls: u64) -> StatsSnapshot {
        let mut s = cache_core::OpStats::counts_only().snapshot();
        if let Some(get) = s.ops.iter_mut().find(|o| o.op == Op::Get) {
            get.calls = calls;
            get.max_nanos = calls * 10;
        }
        s.bytes_read = calls * 100;
        s
    }

    #[test]
    fn stats_add_up_and_maxima_stay_maxima() {
        let mut a = stats(3);
        add_stats(&mut a, &stats(4));
        assert_eq!(a.op(Op::Get).calls, 7);
        assert_eq!(a.op(Op::Get).max_nanos, 40);
        assert_eq!(a.bytes_read, 700);
        assert_eq!(a.op(Op::Set).calls, 0);
    }
}
