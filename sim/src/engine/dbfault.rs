//! Database faults in virtual time (`--db-fault`, the `db-outage`
//! scenario) and what the read path does about them: fail-safe answers,
//! the loader's soft and hard timeouts. The decisions are cache-core's
//! flow's ([`ReadFlow::soft_timed_out`], [`ReadFlow::load_timed_out`],
//! [`ReadFlow::handed`]); this file only decides when, in virtual time:
//!
//! - A load that starts inside an outage window fails after the usual
//!   query latency; one inside a slow window takes the window's latency.
//!   Writes are not affected (see [`crate::config::DbFault`]).
//! - A load that would take longer than the hard timeout is given up at
//!   it. A leader with a fail-safe entry is answered at the soft timeout
//!   and its load goes on (the simulator models
//!   `RangeCache::fetch_detached`, whose loader runs as its own task): the
//!   result is published to whoever still waits and stored when it ends.
//! - A request waiting on another's load is answered at its own soft
//!   timeout (a `Wake` slot); its waiter stays in the flight, and the
//!   leader's handoff finds it answered and only frees its slot.
//!
//! Only when the run injects a database fault or sets a timeout do loads
//! take this path; otherwise the engine's own `Load` step runs, unchanged.
//!
//! What is measured: fail-safe answers, and among them the ones the
//! database's truth judges stale (counted apart from `stale_reads`, which
//! are about invalidation), reads that failed, and the latency of the reads
//! that started inside a fault window.

use std::time::Duration;

use cache_core::envelope::EntryBuf;
use cache_core::flow::{Outcome, Served, Step};
use hdrhistogram::Histogram;

use super::metrics::{summarize, LatencySummary, LATENCY_CAP_US};
use super::{instant, us, Read, Run, Slot};
use crate::config::{DbFault, DbFaultKind};

/// What the database faults and fail-safe did in one cell (reported when
/// the run uses them, see [`crate::config::RunConfig::uses_db_faults`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DbFaultMetrics {
    /// Reads answered by fail-safe.
    pub fail_safe_served: u64,
    /// Of those, answered from an entry with old stamps (what the header
    /// says: `stale`).
    pub fail_safe_old_stamps: u64,
    /// Of those, the ones the database's truth judges stale (the same
    /// judgement as `stale_reads`, which never counts fail-safe answers).
    pub fail_safe_stale: u64,
    /// The longest such answer lagged the first write it missed, µs.
    pub max_fail_safe_staleness_us: u64,
    /// Reads answered with an error: the database failed or timed out and
    /// fail-safe had nothing.
    pub failed_reads: u64,
    /// Loads that failed (reached the database during an outage).
    pub loads_failed: u64,
    /// Loads given up at the hard timeout.
    pub load_timeouts: u64,
    /// Reads answered by fail-safe at the soft timeout.
    pub soft_timeouts: u64,
    /// Loads that went on after their read was answered at the soft
    /// timeout and refreshed the entry.
    pub background_refreshes: u64,
    /// Reads that started inside a fault window.
    pub reads_in_fault: u64,
    /// Their latency, virtual time.
    pub latency_in_fault: LatencySummary,
}

/// How a load started in a fault ends.
enum LoadEnd {
    /// The database answered this (built when the query started).
    Loaded(EntryBuf),
    /// The database failed.
    Failed,
    /// Given up at the hard timeout.
    TimedOut,
}

/// A load in progress on the fault path: when its soft timeout fires, when
/// it ends and how.
pub(super) struct Deferred {
    soft_at: Option<i64>,
    done_at: i64,
    took_us: u64,
    end: LoadEnd,
}

/// The database faults of one cell and their counts.
pub(super) struct DbFaults {
    /// Absolute `[start, end)` µs.
    windows: Vec<(i64, i64, DbFaultKind)>,
    /// Loads take the fault path (faults or timeouts configured).
    pub(super) active: bool,
    /// The run reports database faults.
    report: bool,
    m: DbFaultMetrics,
    latency: Option<Histogram<u64>>,
    max_latency_us: u64,
    next_wait: u64,
}

impl DbFaults {
    pub(super) fn new(faults: &[DbFault], options: &cache_core::CacheOptions, base_us: i64) -> DbFaults {
        let abs = |d: u64| base_us.saturating_add(us(d));
        let timeouts = options.soft_timeout.is_some() || options.hard_timeout.is_some();
        let report = !faults.is_empty() || timeouts || options.fail_safe_max_age.is_some();
        DbFaults {
            windows: faults
                .iter()
                .map(|f| (abs(f.start_us), abs(f.end_us), f.kind))
                .collect(),
            active: !faults.is_empty() || timeouts,
            report,
            m: DbFaultMetrics::default(),
            // Only for runs that report it: a histogram is a few KB per cell.
            latency: report
                .then(|| Histogram::new_with_bounds(1, LATENCY_CAP_US, 3).ok())
                .flatten(),
            max_latency_us: 0,
            next_wait: 0,
        }
    }

    /// The fault window `t` falls in.
    fn at(&self, t: i64) -> Option<DbFaultKind> {
        self.windows.iter().find(|(s, e, _)| *s <= t && t < *e).map(|w| w.2)
    }

    /// A feed query starting at `t`: its latency and whether it fails.
    fn query(&self, t: i64, db_us: u64) -> (u64, bool) {
        match self.at(t) {
            Some(DbFaultKind::Outage) => (db_us, true),
            Some(DbFaultKind::Slow { latency_us }) => (latency_us, false),
            None => (db_us, false),
        }
    }

    /// A read started at `start`, answered at `at` with `outcome`;
    /// `staleness` when the truth judges its answer stale.
    pub(super) fn served(&mut self, start: i64, at: i64, outcome: &Outcome, staleness: Option<u64>) {
        if !self.report {
            return;
        }
        if outcome.served == Served::FailSafe {
            if let Some(s) = staleness {
                self.m.fail_safe_stale += 1;
                self.m.max_fail_safe_staleness_us = self.m.max_fail_safe_staleness_us.max(s);
            }
        }
        if self.at(start).is_some() {
            self.m.reads_in_fault += 1;
            let took = u64::try_from(at.saturating_sub(start)).unwrap_or(0);
            self.max_latency_us = self.max_latency_us.max(took);
            if let Some(h) = &mut self.latency {
                h.saturating_record(took.clamp(1, LATENCY_CAP_US));
            }
        }
    }

    /// The counts, with what the tally saw; `None` when the run does not
    /// report database faults.
    pub(super) fn summary(&self, tally: &cache_core::CacheMetrics) -> Option<DbFaultMetrics> {
        self.report.then(|| DbFaultMetrics {
            fail_safe_served: tally.fail_safe_served,
            fail_safe_old_stamps: tally.fail_safe_stale,
            failed_reads: tally.failed_reads,
            loads_failed: tally.loader_errors,
            load_timeouts: tally.load_timeouts,
            soft_timeouts: tally.soft_timeouts,
            background_refreshes: tally.background_refreshes,
            latency_in_fault: summarize(self.latency.as_ref(), self.max_latency_us),
            ..self.m
        })
    }
}

fn dur_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Run {
    /// [`Step::Load`] on the fault path: starts the load (its end decided
    /// now: the query's latency and result, the hard timeout) or, when the
    /// slot comes back, fires its soft timeout or ends it. Returns when
    /// the read's next step is due, or `None` when the flow moved on at
    /// this instant.
    pub(super) fn faulty_load(&mut self, r: &mut Read, now: i64) -> Option<i64> {
        let Some(mut d) = r.deferred.take() else {
            let d = self.start_load(r, now);
            let next = d.soft_at.unwrap_or(d.done_at);
            r.deferred = Some(d);
            return Some(next);
        };
        if d.soft_at.take().is_some() && now < d.done_at {
            r.flow.soft_timed_out();
            if r.flow.is_answered() {
                self.serve(r, now);
            }
            let done_at = d.done_at;
            r.deferred = Some(d);
            return Some(done_at);
        }
        let took = Duration::from_micros(d.took_us);
        match d.end {
            LoadEnd::Loaded(buf) => r.flow.loaded(Some(buf), took, instant(now)),
            LoadEnd::Failed => r.flow.loaded(None, took, instant(now)),
            LoadEnd::TimedOut => r.flow.load_timed_out(),
        }
        if r.flow.outcome().soft_timed_out {
            // Answered at its soft timeout: only the load's end is new.
            self.rec.tally.record_late(r.flow.outcome());
        } else {
            self.serve(r, now);
        }
        None
    }

    /// Decides how a load starting at `now` ends.
    fn start_load(&mut self, r: &mut Read, now: i64) -> Box<Deferred> {
        let db_us = self.cell.latencies.db_us;
        let (latency, fails) = self.dbf.query(now, db_us);
        let hard = r.flow.hard_timeout().map(dur_us);
        let (took_us, end) = match hard {
            Some(h) if latency > h => (h, LoadEnd::TimedOut),
            _ if fails => (latency, LoadEnd::Failed),
            _ => {
                let entry = self.query(r, now);
                (latency, LoadEnd::Loaded(entry))
            }
        };
        let soft_at = r
            .flow
            .soft_timeout()
            .map(dur_us)
            .filter(|s| *s < took_us)
            .map(|s| now.saturating_add(us(s)));
        Box::new(Deferred {
            soft_at,
            done_at: now.saturating_add(us(took_us)),
            took_us,
            end,
        })
    }

    /// A read parked at `slot` to wait for another's load: arms its soft
    /// timeout, if it has one.
    pub(super) fn arm_wait(&mut self, slot: u32, r: &mut Read, now: i64) {
        let Some(soft) = r.flow.soft_timeout() else {
            return;
        };
        self.dbf.next_wait += 1;
        r.wait = self.dbf.next_wait;
        let wake = self.alloc(Slot::Wake {
            read: slot,
            wait: r.wait,
        });
        self.schedule(now.saturating_add(us(dur_us(soft))), wake);
    }

    /// A `Wake` slot: the read at `slot`, if it still waits the wait
    /// `wait`, is answered by fail-safe. Its slot stays taken until the
    /// leader's handoff (its waiter is still in the flight).
    pub(super) fn wake(&mut self, slot: u32, wait: u64, now: i64) {
        let Some(Slot::Read(r)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if r.wait != wait || r.flow.step() != Step::Join {
            return;
        }
        r.wait = 0;
        r.flow.soft_timed_out();
        if r.flow.step() != Step::Done {
            return;
        }
        if let Slot::Read(r) = std::mem::replace(&mut self.slots[slot as usize], Slot::Free) {
            self.serve(&r, now);
            self.slots[slot as usize] = Slot::Read(r);
        }
    }
}
