//! [`Pending`]: the bumps one process owes the cache, and the reads they
//! keep out of it.
//!
//! A write commits, then its bump (`end_write` / `invalidate`) must reach
//! the cache. When that call fails (the server is frozen, partitioned, or
//! slow past the command timeout) the change goes into this table instead
//! of being forgotten, and the process's driver re-applies it later:
//!
//! - **Retries** follow one schedule for the whole table: the first round
//!   [`RetryPolicy::first`] after the table stops being empty, then twice
//!   the previous delay after each failed round, never more than
//!   [`RetryPolicy::max`]. A round probes with the oldest change and, only
//!   if that succeeds, applies the rest: a dead server costs one call per
//!   round, not one per pending change.
//! - **Reads the writer's own process serves** while a change is pending:
//!   a view with one of the change's scopes and a range overlapping one of
//!   its ranges bypasses the cache ([`Pending::covers`]; the flow counts
//!   it as [`Outcome::pending_bypass`](crate::flow::Outcome::pending_bypass)):
//!   no hit, no coalescing, no fill. Other processes cannot know; the bound
//!   on what they serve is the retry schedule (see below).
//!
//! No I/O and no clock, like [`Flights`](crate::flow::Flights): the driver
//! passes the time and performs the calls. [`RangeCache`](crate::RangeCache)
//! drives it with Tokio's timer; the simulator in virtual time.
//!
//! # The bound
//!
//! Once the server answers again, a pending change is applied by the next
//! round, at most [`RetryPolicy::max`] later (plus the round's own round
//! trips; a round already waiting on the frozen server is answered as soon
//! as the server resumes). Until then other processes may be served
//! entries the change should have invalidated; after it, none.
//!
//! What this table does not survive: the process itself. A writer that
//! crashes between its commit and a successful bump takes its pending
//! changes with it. The transactional outbox ([`crate::outbox`]) covers
//! that case; this table covers a freeze.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use crate::view::{Change, Scope, View};

/// Identifies one pending change in its table.
pub type PendingId = u64;

/// Most changes one table holds. Past it a failed bump is not queued
/// ([`Added::Full`]): the driver counts and logs it, and only the outbox
/// (if any) still has it. 10 000 writes during one outage of one process
/// is far beyond what a calendar sees; the cap keeps a server that stays
/// down for days from growing the table without bound.
pub const MAX_PENDING: usize = 10_000;

/// When failed bumps are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Delay before the first round, and the start of the doubling.
    pub first: Duration,
    /// Longest delay between two rounds: the bound on how long after the
    /// server's return a pending change is applied.
    pub max: Duration,
}

impl RetryPolicy {
    /// `first`, doubling up to `max` (`max` is raised to `first` if lower).
    pub fn new(first: Duration, max: Duration) -> Self {
        RetryPolicy {
            first,
            max: max.max(first),
        }
    }

    /// The delay after `failed_rounds` consecutive failed rounds (0: the
    /// first round).
    pub fn delay(&self, failed_rounds: u32) -> Duration {
        let factor = 1u32.checked_shl(failed_rounds).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

impl Default for RetryPolicy {
    /// 10 ms, doubling up to 100 ms.
    fn default() -> Self {
        RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(100))
    }
}

/// What [`Pending::add`] did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Added {
    /// Queued under this id.
    Queued(PendingId),
    /// Not queued: the table holds [`MAX_PENDING`] changes already.
    Full,
}

#[derive(Debug)]
struct Entry<T> {
    change: Change,
    tag: T,
    since: SystemTime,
}

/// The changes one process failed to apply, with the retry schedule; see
/// the [module docs](self). `T` is whatever the driver keeps with each (an
/// outbox row id, whether the write was fenced).
#[derive(Debug)]
pub struct Pending<T> {
    entries: BTreeMap<PendingId, Entry<T>>,
    /// Which entries name each scope, for [`Pending::covers`].
    by_scope: HashMap<Scope, Vec<PendingId>>,
    next_id: PendingId,
    policy: RetryPolicy,
    failed_rounds: u32,
    next_round: Option<SystemTime>,
}

impl<T> Pending<T> {
    /// An empty table retrying with `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Pending {
            entries: BTreeMap::new(),
            by_scope: HashMap::new(),
            next_id: 0,
            policy,
            failed_rounds: 0,
            next_round: None,
        }
    }

    /// The retry policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Changes pending.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is pending (the common case: one branch per read).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues `change`, which failed to apply at `now`, with the driver's
    /// `tag`. The first change of an empty table schedules a round
    /// [`RetryPolicy::first`] later; others join the schedule in place.
    pub fn add(&mut self, change: Change, tag: T, now: SystemTime) -> Added {
        if self.entries.len() >= MAX_PENDING {
            return Added::Full;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_scope.entry(change.scope.clone()).or_default().push(id);
        self.entries.insert(
            id,
            Entry {
                change,
                tag,
                since: now,
            },
        );
        if self.next_round.is_none() {
            self.failed_rounds = 0;
            self.next_round = Some(now + self.policy.delay(0));
        }
        Added::Queued(id)
    }

    /// True when a pending change may have changed what `view` shows: one
    /// of its scopes is the change's and one of its ranges overlaps the
    /// view's (an item is in a view exactly when their ranges overlap).
    pub fn covers(&self, view: &View) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        view.scopes.iter().any(|scope| {
            self.by_scope.get(scope).is_some_and(|ids| {
                ids.iter()
                    .filter_map(|id| self.entries.get(id))
                    .any(|e| e.change.ranges.iter().any(|r| r.overlaps(&view.range)))
            })
        })
    }

    /// When the next round is due (`None`: nothing pending).
    pub fn next_round(&self) -> Option<SystemTime> {
        self.next_round
    }

    /// The changes to attempt at `now`, oldest first: all of them when a
    /// round is due, none otherwise. Attempt the first alone (the probe);
    /// when it fails, call [`Pending::failed`] and stop; when it succeeds,
    /// [`Pending::applied`] it and attempt the rest.
    pub fn due(&self, now: SystemTime) -> Vec<PendingId> {
        match self.next_round {
            Some(at) if at <= now => self.entries.keys().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// The change pending under `id`.
    pub fn change(&self, id: PendingId) -> Option<&Change> {
        self.entries.get(&id).map(|e| &e.change)
    }

    /// The driver's tag of `id`.
    pub fn tag(&self, id: PendingId) -> Option<&T> {
        self.entries.get(&id).map(|e| &e.tag)
    }

    /// The ids whose tag matches `f`, oldest first (a linear scan: for
    /// the rare moments a table is not empty).
    pub fn ids_where(&self, f: impl Fn(&T) -> bool) -> Vec<PendingId> {
        self.entries
            .iter()
            .filter(|(_, e)| f(&e.tag))
            .map(|(id, _)| *id)
            .collect()
    }

    /// When `id` first failed.
    pub fn since(&self, id: PendingId) -> Option<SystemTime> {
        self.entries.get(&id).map(|e| e.since)
    }

    /// `id` was applied: it leaves the table (with its change and tag).
    /// The backoff starts over; an emptied table has no next round.
    pub fn applied(&mut self, id: PendingId) -> Option<(Change, T)> {
        let entry = self.remove(id)?;
        self.failed_rounds = 0;
        Some(entry)
    }

    /// Removes `id` without counting a success (someone else applied it).
    pub fn remove(&mut self, id: PendingId) -> Option<(Change, T)> {
        let entry = self.entries.remove(&id)?;
        if let Some(ids) = self.by_scope.get_mut(&entry.change.scope) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_scope.remove(&entry.change.scope);
            }
        }
        if self.entries.is_empty() {
            self.next_round = None;
        }
        Some((entry.change, entry.tag))
    }

    /// A round that started at or before `now` failed (its probe, or some
    /// of the rest): the next one is due after the backoff.
    pub fn failed(&mut self, now: SystemTime) {
        if self.entries.is_empty() {
            self.next_round = None;
            return;
        }
        self.failed_rounds = self.failed_rounds.saturating_add(1);
        self.next_round = Some(now + self.policy.delay(self.failed_rounds));
    }

    /// Everything pending, oldest first, leaving the table empty: what a
    /// crash of the process loses.
    pub fn drain(&mut self) -> Vec<(Change, T)> {
        self.by_scope.clear();
        self.next_round = None;
        self.failed_rounds = 0;
        std::mem::take(&mut self.entries)
            .into_values()
            .map(|e| (e.change, e.tag))
            .collect()
    }
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending::new(RetryPolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::TimeRange;
    use chrono::DateTime;
    use std::time::UNIX_EPOCH;

    fn range(a: &str, b: &str) -> TimeRange {
        TimeRange::new(
            DateTime::parse_from_rfc3339(a).unwrap(),
            DateTime::parse_from_rfc3339(b).unwrap(),
        )
        .unwrap()
    }

    fn change(scope: &str, a: &str, b: &str) -> Change {
        Change::new(Scope::new(scope).unwrap(), [range(a, b)]).unwrap()
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn covers_only_views_of_the_scope_that_overlap_the_change() {
        let mut p = Pending::default();
        let oct = View::new(
            [Scope::new("cal:1").unwrap()],
            range("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00"),
        )
        .unwrap();
        assert!(!p.covers(&oct));
        let id = match p.add(
            change("cal:1", "2025-10-15T00:00:00Z", "2025-10-16T00:00:00Z"),
            (),
            at(0),
        ) {
            Added::Queued(id) => id,
            Added::Full => panic!(),
        };
        assert!(p.covers(&oct));
        let other_scope = View::new([Scope::new("cal:2").unwrap()], oct.range).unwrap();
        assert!(!p.covers(&other_scope));
        let both = View::new([Scope::new("cal:2").unwrap(), Scope::new("cal:1").unwrap()], oct.range).unwrap();
        assert!(p.covers(&both), "a view over several scopes is covered by any of them");
        let december = View::new(
            [Scope::new("cal:1").unwrap()],
            range("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        )
        .unwrap();
        assert!(!p.covers(&december), "the write cannot show in December");
        p.applied(id);
        assert!(!p.covers(&oct) && p.is_empty());
    }

    #[test]
    fn rounds_back_off_to_the_cap_and_start_over_after_a_success() {
        let policy = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(100));
        let mut p = Pending::new(policy);
        assert!(p.due(at(1_000)).is_empty() && p.next_round().is_none());
        p.add(
            change("cal:1", "2025-10-15T00:00:00Z", "2025-10-16T00:00:00Z"),
            'a',
            at(0),
        );
        p.add(
            change("cal:2", "2025-10-15T00:00:00Z", "2025-10-16T00:00:00Z"),
            'b',
            at(5),
        );
        assert_eq!(p.next_round(), Some(at(10)), "the second joins the first's schedule");
        assert!(p.due(at(9)).is_empty());
        let mut now = 10;
        let mut gaps = Vec::new();
        for _ in 0..6 {
            assert_eq!(p.due(at(now)).len(), 2);
            p.failed(at(now));
            let next = p.next_round().unwrap().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            gaps.push(next - now);
            now = next;
        }
        assert_eq!(gaps, [20, 40, 80, 100, 100, 100]);
        let ids = p.due(at(now));
        assert_eq!(p.tag(ids[0]), Some(&'a'), "oldest first: the probe");
        assert_eq!(p.since(ids[1]), Some(at(5)));
        assert_eq!(p.applied(ids[0]).map(|(_, t)| t), Some('a'));
        p.failed(at(now));
        assert_eq!(p.next_round(), Some(at(now + 20)), "a success restarts the doubling");
        p.applied(ids[1]);
        assert_eq!(p.next_round(), None);
        assert_eq!(RetryPolicy::default().delay(u32::MAX), Duration::from_millis(100));
    }

    #[test]
    fn a_crash_loses_everything_and_the_table_is_bounded() {
        let mut p = Pending::default();
        for i in 0..MAX_PENDING {
            assert!(matches!(
                p.add(
                    change("cal:1", "2025-10-15T00:00:00Z", "2025-10-16T00:00:00Z"),
                    i,
                    at(0)
                ),
                Added::Queued(_)
            ));
        }
        assert_eq!(
            p.add(
                change("cal:1", "2025-10-15T00:00:00Z", "2025-10-16T00:00:00Z"),
                0,
                at(0)
            ),
            Added::Full
        );
        let lost = p.drain();
        assert_eq!(lost.len(), MAX_PENDING);
        assert_eq!(lost[0].1, 0);
        assert!(p.is_empty() && p.next_round().is_none() && p.by_scope.is_empty());
    }
}
