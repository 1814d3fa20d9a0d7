//! The app's answer to a lost bump, in virtual time: each process's queue
//! of failed bumps ([`Pending`], cache-core's sans-IO table, the one
//! `RangeCache` drives) retried on its schedule, the transactional outbox
//! drained by the relays, and the faults that make bumps fail: freezes of
//! the cache (`--freeze`) and a writer that crashes between its commit and
//! its bump (`--crash-writer-at`).
//!
//! - A bump that fails goes into its process's table; a `Retry` slot runs
//!   the table's rounds (the oldest change as a probe, then the rest) when
//!   they are due. Reads in that process that the table covers skip the
//!   cache (`Aside::read_for`).
//! - With the outbox (`--outbox on`, the default), the change is also a
//!   row of the database's outbox from its commit until its bump
//!   succeeds. Rows only matter once a bump failed or its writer died, so
//!   the simulation writes them then (with the commit's instant), and
//!   costs nothing per healthy write. A `Poll` slot, every
//!   `outbox_poll` from the trace's start (one relay's ticks stand for
//!   every process's), applies the rows at least `outbox_grace` old.
//! - A crash drops the write's bump and its process's table: with the
//!   outbox a relay applies the rows later; without it the bumps are lost
//!   (counted).
//!
//! What is measured: stale reads served while the cache is frozen (fail-
//! open answers reads from the database, so expect none), stale reads
//! served after a freeze ended and the latest of them (the bound: the
//! retry schedule's `bump_retry_max`), bumps queued, retried, re-applied,
//! lost, rows the relays applied, and backend errors inside a freeze
//! (expected; the CLI's error-rate check leaves them out).

use std::collections::BTreeMap;
use std::time::Duration;

use cache_core::flow::{Added, Aside, Outcome, Pending, ReadFlow, RetryPolicy};
use cache_core::{Change, View};

use super::{instant, us, Run, Slot};
use crate::config::Faults;

/// What a pending change keeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tag {
    /// Re-applied with `end_write` (announced writes) or `invalidate`.
    fenced: bool,
    /// Its outbox row.
    row: Option<u64>,
}

/// What the faults did in one cell (only reported when a fault was
/// injected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FaultMetrics {
    /// Bumps that failed and were queued for retry.
    pub bumps_queued: u64,
    /// Retry calls (probes and catch-up calls).
    pub bump_retries: u64,
    /// Queued bumps a retry applied.
    pub bumps_reapplied: u64,
    /// Bumps never applied: a crashed writer's without the outbox
    /// (its own, and the queue it lost), or a full queue.
    pub bumps_lost: u64,
    /// Outbox rows the relays applied.
    pub outbox_applied: u64,
    /// Writers that crashed between commit and bump.
    pub writer_crashes: u64,
    /// Stale reads served while the cache was frozen.
    pub stale_during_freeze: u64,
    /// Stale reads served after a freeze ended.
    pub stale_after_thaw: u64,
    /// The latest of them, µs after the end of the freeze before it.
    pub max_stale_after_thaw_us: u64,
    /// Backend errors of reads and writes that overlapped a freeze.
    pub errors_in_freeze: u64,
    /// Reads that skipped the cache because their process had a bump
    /// pending for them.
    pub pending_bypassed: u64,
}

/// The outbox's rows whose bump has not succeeded yet.
struct Outbox {
    rows: BTreeMap<u64, (Change, i64)>,
    next: u64,
    grace_us: i64,
    poll_us: i64,
    /// A `Poll` slot is queued for this instant.
    poll_at: Option<i64>,
}

/// The relay state of one cell.
pub(super) struct Relay {
    /// Failed bumps by app process (index = process id), grown on demand.
    pending: Vec<Pending<Tag>>,
    policy: RetryPolicy,
    /// A `Retry` slot is queued for the process at this instant.
    retry_at: Vec<Option<i64>>,
    outbox: Option<Outbox>,
    /// Absolute `[start, end)` µs.
    freezes: Vec<(i64, i64)>,
    crash_at: Option<i64>,
    base_us: i64,
    enabled: bool,
    pub(super) m: FaultMetrics,
}

impl Relay {
    pub(super) fn new(faults: &Faults, aside: &Aside, base_us: i64) -> Relay {
        let options = aside.options();
        let abs = |d: u64| base_us.saturating_add(us(d));
        let dur = |d: Duration| us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Relay {
            pending: Vec::new(),
            policy: aside.retry_policy(),
            retry_at: Vec::new(),
            outbox: faults.outbox.then(|| Outbox {
                rows: BTreeMap::new(),
                next: 1,
                grace_us: dur(options.outbox_grace),
                poll_us: dur(options.outbox_poll).max(1),
                poll_at: None,
            }),
            freezes: faults
                .freezes
                .iter()
                .map(|f| (abs(f.start_us), abs(f.end_us)))
                .collect(),
            crash_at: faults.crash_writer_at_us.map(abs),
            base_us,
            enabled: faults.any(),
            m: FaultMetrics::default(),
        }
    }

    /// The faults' counts, when the run injected any.
    pub(super) fn summary(&self) -> Option<FaultMetrics> {
        self.enabled.then_some(self.m)
    }

    /// A new read of `view` by `process` (see `Aside::read_for`).
    pub(super) fn read_for(&self, aside: &Aside, process: u32, view: &View) -> ReadFlow {
        match self.pending.get(process as usize) {
            Some(p) if !p.is_empty() => aside.read_for(view, p),
            _ => aside.read(),
        }
    }

    fn in_freeze(&self, from: i64, to: i64) -> bool {
        self.freezes.iter().any(|&(s, e)| from < e && s <= to)
    }

    /// A write's announcement failed at `t`.
    pub(super) fn begin_failed(&mut self, t: i64) {
        if self.in_freeze(t, t) {
            self.m.errors_in_freeze += 1;
        }
    }

    /// A read started at `start`, served at `at`, with `outcome` and
    /// `staleness`: counts it against the freezes.
    pub(super) fn served(&mut self, start: i64, at: i64, outcome: &Outcome, staleness: Option<u64>) {
        if self.freezes.is_empty() {
            return;
        }
        if (outcome.read_error || outcome.store_error) && self.in_freeze(start, at) {
            self.m.errors_in_freeze += 1;
        }
        if staleness.is_none() {
            return;
        }
        if self.freezes.iter().any(|&(s, e)| s <= at && at < e) {
            self.m.stale_during_freeze += 1;
        } else if let Some(thaw) = self.freezes.iter().map(|&(_, e)| e).filter(|e| *e <= at).max() {
            self.m.stale_after_thaw += 1;
            let after = u64::try_from(at - thaw).unwrap_or(0);
            self.m.max_stale_after_thaw_us = self.m.max_stale_after_thaw_us.max(after);
        }
    }

    /// True (once) when the write committing at `t` is the one whose
    /// writer crashes.
    pub(super) fn crashes_now(&mut self, t: i64) -> bool {
        match self.crash_at {
            Some(at) if t >= at => {
                self.crash_at = None;
                true
            }
            _ => false,
        }
    }

    fn pending_mut(&mut self, process: u32) -> &mut Pending<Tag> {
        let i = process as usize;
        if self.pending.len() <= i {
            let policy = self.policy;
            self.pending.resize_with(i + 1, || Pending::new(policy));
            self.retry_at.resize(i + 1, None);
        }
        &mut self.pending[i]
    }

    /// Writes `change`, committed at `committed`, into the outbox; `None`
    /// without one.
    fn record(&mut self, change: &Change, committed: i64) -> Option<u64> {
        let o = self.outbox.as_mut()?;
        let id = o.next;
        o.next += 1;
        o.rows.insert(id, (change.clone(), committed));
        Some(id)
    }
}

impl Run {
    /// The writer of `change` (committed at `t` by `process`) dies before
    /// its bump: the bump never runs, and the process's queue goes with
    /// it. The outbox keeps both.
    pub(super) fn crash_writer(&mut self, process: u32, change: &Change, t: i64) {
        self.relay.m.writer_crashes += 1;
        let lost = self.relay.pending_mut(process).drain();
        if self.relay.outbox.is_some() {
            // Queued changes already have rows; the crashed write gets its.
            self.relay.record(change, t);
            self.schedule_poll(t);
        } else {
            self.relay.m.bumps_lost += 1 + lost.len() as u64;
        }
    }

    /// After the bump of `change` (written by `process`, committed at
    /// `committed`) ran at `now`: queue it for retry when it failed.
    pub(super) fn bumped(&mut self, process: u32, change: Change, committed: i64, ok: bool, now: i64) {
        if ok {
            return;
        }
        if self.relay.in_freeze(now, now) {
            self.relay.m.errors_in_freeze += 1;
        }
        let row = self.relay.record(&change, committed);
        let fenced = self.cell.fenced_writes;
        match self
            .relay
            .pending_mut(process)
            .add(change, Tag { fenced, row }, instant(now))
        {
            Added::Queued(_) => self.relay.m.bumps_queued += 1,
            _ => {
                if row.is_none() {
                    self.relay.m.bumps_lost += 1;
                }
            }
        }
        self.schedule_retry(process);
        if row.is_some() {
            self.schedule_poll(committed);
        }
    }

    /// Queues a `Retry` slot for `process` at its table's next round,
    /// unless one is queued already.
    fn schedule_retry(&mut self, process: u32) {
        let i = process as usize;
        let Some(next) = self.relay.pending.get(i).and_then(Pending::next_round) else {
            return;
        };
        if self.relay.retry_at.get(i).copied().flatten().is_some() {
            return;
        }
        let at = next
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
            .unwrap_or(self.now_us);
        self.relay.retry_at[i] = Some(at);
        let slot = self.alloc(Slot::Retry { process });
        self.schedule(at, slot);
    }

    /// Queues a `Poll` slot at the first relay tick at which a row
    /// committed at `committed` is old enough, unless one comes sooner.
    fn schedule_poll(&mut self, committed: i64) {
        let base = self.relay.base_us;
        let Some(o) = self.relay.outbox.as_mut() else {
            return;
        };
        let due = committed.saturating_add(o.grace_us);
        let ticks = (due.saturating_sub(base) + o.poll_us - 1).div_euclid(o.poll_us).max(0);
        let at = base.saturating_add(ticks.saturating_mul(o.poll_us)).max(self.now_us);
        if o.poll_at.is_some_and(|p| p <= at) {
            return;
        }
        o.poll_at = Some(at);
        let slot = self.alloc(Slot::Poll);
        self.schedule(at, slot);
    }

    /// A `Retry` slot: one round of `process`'s table at `now`.
    pub(super) async fn retry_round(&mut self, process: u32, now: i64) {
        let i = process as usize;
        if let Some(at) = self.relay.retry_at.get_mut(i) {
            *at = None;
        }
        let ids = match self.relay.pending.get(i) {
            Some(p) => p.due(instant(now)),
            None => return,
        };
        let store = self.store_index(process);
        let mut failed = false;
        for id in ids {
            let Some((change, tag)) = self.relay.pending[i]
                .change(id)
                .cloned()
                .zip(self.relay.pending[i].tag(id).copied())
            else {
                continue;
            };
            self.relay.m.bump_retries += 1;
            let ok = self
                .aside(store)
                .reapply(&self.write[store], &change, tag.fenced)
                .await
                .is_ok();
            if ok {
                self.relay.pending[i].applied(id);
                self.relay.m.bumps_reapplied += 1;
                if let (Some(o), Some(row)) = (self.relay.outbox.as_mut(), tag.row) {
                    o.rows.remove(&row);
                }
            } else {
                // The server is still away (or away again): the rest
                // waits for the next round.
                failed = true;
                break;
            }
        }
        if failed {
            self.relay.pending[i].failed(instant(now));
        }
        self.schedule_retry(process);
    }

    /// A `Poll` slot: the relays apply the rows at least `outbox_grace`
    /// old, oldest first, and stop at the first that fails.
    pub(super) async fn poll_outbox(&mut self, now: i64) {
        let Some(o) = self.relay.outbox.as_mut() else {
            return;
        };
        o.poll_at = None;
        let due: Vec<(u64, Change)> = o
            .rows
            .iter()
            .filter(|(_, (_, committed))| committed.saturating_add(o.grace_us) <= now)
            .map(|(id, (c, _))| (*id, c.clone()))
            .collect();
        // Any process's relay: the first store serves (they share one,
        // or each process has its own and only the writer's matters; the
        // relays of all processes poll, so each store is reached).
        let stores: Vec<usize> = (0..self.write.len()).collect();
        for (id, change) in due {
            let mut ok = true;
            for &s in &stores {
                ok &= self.aside(s).reapply(&self.write[s], &change, true).await.is_ok();
            }
            if !ok {
                break;
            }
            self.relay.m.outbox_applied += 1;
            if let Some(o) = self.relay.outbox.as_mut() {
                o.rows.remove(&id);
            }
            for p in &mut self.relay.pending {
                for pid in p.ids_where(|t| t.row == Some(id)) {
                    p.remove(pid);
                }
            }
        }
        let next = match &self.relay.outbox {
            Some(o) if !o.rows.is_empty() => Some(now.saturating_add(o.poll_us)),
            _ => None,
        };
        if let Some(at) = next {
            if let Some(o) = self.relay.outbox.as_mut() {
                o.poll_at = Some(at);
            }
            let slot = self.alloc(Slot::Poll);
            self.schedule(at, slot);
        }
    }
}
