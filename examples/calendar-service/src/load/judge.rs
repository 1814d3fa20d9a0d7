//! The checker: every feed response judged against the database's history,
//! with SPEC's definition of a stale read (a response is stale if it misses
//! a write committed before its request started).
//!
//! # How
//!
//! The service appends each write to a commit log inside the write's own
//! transaction ([`crate::db::history`]): the log's order is the commit
//! order, and each write's commit instant is bracketed by the instant just
//! before its `COMMIT` (in the log) and the instant just after it returned
//! (its `x-commit-us` header; also bounded by the client's receipt of the
//! answer and by the next write's bracket, since writes are serialised).
//! The seeded items plus the log give every state the database went
//! through: state `n` is the seed with the first `n` writes applied.
//!
//! A response whose request started at `S` and ended at `E` must show a
//! state at least as new as `L`, the writes that had certainly committed
//! before `S` (upper bound < `S`), and can show none newer than `U`, the
//! writes that had begun committing before `E` (lower bound < `E`). Writes
//! in between may or may not be included. The judge renders the feed of
//! each state that can differ in that window with the service's own code
//! ([`crate::api::feed_body`], [`crate::db::shows`],
//! [`crate::db::feed_order`]) and compares digests:
//!
//! - a match anywhere in `[L, U]`: **fresh**;
//! - otherwise, the newest older state that matches says what the response
//!   missed: **stale**, and its staleness is `E` minus the commit (upper
//!   bound) of the oldest write it misses that changes the feed;
//! - no state matches at all: **unmatched**, counted with the stale ones
//!   and reported on its own (a response no database state explains).
//!
//! Where the commit instant is uncertain the judge leans to "fresh" (a
//! write that may have committed after `S` is not required), so a stale
//! verdict always names a write that had committed before the request.

use std::collections::HashMap;

use cache_core::fullcalendar;
use cache_core::View;

use crate::api::{feed_body, filter_of, FILTERS};
use crate::db::history::Entry;
use crate::db::{feed_order, shown_days, shows, Calendar, Item, Seed};

use super::record::digest;
use super::workload::scope_of;

/// The verdict on one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It shows a state the database could have been in during the request.
    Fresh,
    /// It misses a write committed before the request started.
    Stale {
        /// `E` minus the commit of the oldest write it misses, µs.
        staleness_us: i64,
        /// That write's `seq` in the commit log.
        missed_seq: i64,
    },
    /// No state of the database renders to this body.
    Unmatched,
}

/// A response to judge.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The calendars the user's feed shows.
    pub calendars: &'a [i64],
    /// The requested view (range and filters).
    pub view: &'a View,
    /// Just before the request was sent, µs since the epoch.
    pub start_us: i64,
    /// When the body had arrived.
    pub end_us: i64,
    /// The body's digest ([`digest`]).
    pub digest: u64,
}

/// The database's history, ready to answer "what did the feed look like in
/// state `n`"; see the [module docs](self).
#[derive(Debug)]
pub struct Judge {
    calendars: HashMap<i64, Calendar>,
    /// Per item: `(state from which it holds, the item or deleted)`.
    versions: HashMap<i64, Vec<(usize, Option<Item>)>>,
    /// Per calendar: every item that ever was in it.
    items_of: HashMap<i64, Vec<i64>>,
    /// Per calendar: indices of the log entries that touched it.
    writes_of: HashMap<i64, Vec<usize>>,
    /// Per log entry: its `seq`.
    seqs: Vec<i64>,
    /// Per log entry: an upper bound of its commit instant, non-decreasing.
    committed_by: Vec<i64>,
    /// Per log entry: a lower bound of its commit instant, non-decreasing.
    committed_after: Vec<i64>,
}

/// The most older states a stale response is compared with before it is
/// called unmatched.
const MAX_LOOKBACK: usize = 10_000;

impl Judge {
    /// The history of a run: the `seed` it started from, the commit `log`
    /// (in order), and for each write the client saw answered `(seq,
    /// x-commit-us, client receipt)`.
    pub fn new(seed: &Seed, log: Vec<Entry>, answered: &[(i64, Option<i64>, i64)]) -> Judge {
        let mut versions: HashMap<i64, Vec<(usize, Option<Item>)>> = HashMap::new();
        let mut items_of: HashMap<i64, Vec<i64>> = HashMap::new();
        for item in &seed.items {
            items_of.entry(item.calendar_id).or_default().push(item.id);
            versions.entry(item.id).or_default().push((0, Some(item.clone())));
        }
        let answered: HashMap<i64, i64> = answered
            .iter()
            .map(|(seq, header, receipt)| (*seq, header.map_or(*receipt, |h| h.min(*receipt))))
            .collect();
        let mut writes_of: HashMap<i64, Vec<usize>> = HashMap::new();
        let (mut seqs, mut upper, mut lower) = (Vec::new(), Vec::new(), Vec::new());
        for (k, entry) in log.into_iter().enumerate() {
            let list = versions.entry(entry.item_id).or_default();
            let old_calendar = list.last().and_then(|(_, i)| i.as_ref()).map(|i| i.calendar_id);
            let new_calendar = entry.item.as_ref().map(|i| i.calendar_id);
            for calendar in [old_calendar, new_calendar].into_iter().flatten() {
                let touched = writes_of.entry(calendar).or_default();
                if touched.last() != Some(&k) {
                    touched.push(k);
                }
                let items = items_of.entry(calendar).or_default();
                if !items.contains(&entry.item_id) {
                    items.push(entry.item_id);
                }
            }
            list.push((k + 1, entry.item));
            seqs.push(entry.seq);
            upper.push(answered.get(&entry.seq).copied().unwrap_or(i64::MAX));
            lower.push(entry.before_commit_us);
        }
        // Writes are serialised: write k committed before write k+1 began
        // its commit, so the next write's lower bound caps this one's upper
        // bound, and an upper bound caps every earlier write's.
        for (bound, &next) in upper.iter_mut().zip(lower.iter().skip(1)) {
            *bound = (*bound).min(next);
        }
        for k in (0..upper.len().saturating_sub(1)).rev() {
            upper[k] = upper[k].min(upper[k + 1]);
        }
        for k in 1..lower.len() {
            lower[k] = lower[k].max(lower[k - 1]);
        }
        Judge {
            calendars: seed.calendars.iter().map(|c| (c.id, c.clone())).collect(),
            versions,
            items_of,
            writes_of,
            seqs,
            committed_by: upper,
            committed_after: lower,
        }
    }

    /// Writes in the log.
    pub fn writes(&self) -> usize {
        self.seqs.len()
    }

    /// The upper bound of the commit instant of the write `seq`.
    pub fn committed_by(&self, seq: i64) -> Option<i64> {
        let k = self.seqs.binary_search(&seq).ok()?;
        self.committed_by.get(k).copied()
    }

    /// Whether the write `seq` touched one of `calendars` (its item was in
    /// one before or after it).
    pub fn touches(&self, seq: i64, calendars: &[i64]) -> bool {
        let Ok(k) = self.seqs.binary_search(&seq) else {
            return false;
        };
        calendars
            .iter()
            .any(|c| self.writes_of.get(c).is_some_and(|ks| ks.binary_search(&k).is_ok()))
    }

    /// The view of `query` for a user seeing `calendars`, as the service
    /// reads it; `None` when the service would refuse it.
    pub fn view(calendars: &[i64], query: &str) -> Option<View> {
        fullcalendar::view(calendars.iter().filter_map(|&c| scope_of(c)), query, FILTERS).ok()
    }

    fn state_of(&self, item: i64, n: usize) -> Option<&Item> {
        let list = self.versions.get(&item)?;
        let at = list.partition_point(|(from, _)| *from <= n);
        list.get(at.checked_sub(1)?)?.1.as_ref()
    }

    /// The feed's body in state `n`, rendered by the service's own code.
    pub fn body(&self, calendars: &[i64], view: &View, n: usize) -> cache_core::Bytes {
        let days = shown_days(view.range);
        let filter = filter_of(view);
        let mut rows: Vec<(Item, Calendar)> = Vec::new();
        for c in calendars {
            for id in self.items_of.get(c).into_iter().flatten() {
                let Some(item) = self.state_of(*id, n) else { continue };
                if item.calendar_id == *c && shows(item, days, &filter) {
                    if let Some(cal) = self.calendars.get(c) {
                        rows.push((item.clone(), cal.clone()));
                    }
                }
            }
        }
        rows.sort_by(|a, b| feed_order(&a.0, &b.0));
        feed_body(&rows)
    }

    /// The feed's body after every write: what the database serves at the
    /// end (the self-check compares the two).
    pub fn final_body(&self, calendars: &[i64], view: &View) -> cache_core::Bytes {
        self.body(calendars, view, self.seqs.len())
    }

    /// Judges one response.
    pub fn judge(&self, r: &Response<'_>) -> Verdict {
        let low = self.committed_by.partition_point(|&c| c < r.start_us);
        let high = self.committed_after.partition_point(|&b| b < r.end_us).max(low);
        let mut touched: Vec<usize> = r
            .calendars
            .iter()
            .flat_map(|c| self.writes_of.get(c).into_iter().flatten().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let matches = |n: usize| digest(&self.body(r.calendars, r.view, n)) == r.digest;
        if matches(low) {
            return Verdict::Fresh;
        }
        let in_window = touched.partition_point(|&k| k < low);
        for &k in touched[in_window..].iter().take_while(|&&k| k < high) {
            if matches(k + 1) {
                return Verdict::Fresh;
            }
        }
        // Older states, newest first: the first match is what it shows.
        for (i, &k) in touched[..in_window].iter().enumerate().rev().take(MAX_LOOKBACK) {
            if !matches(k) {
                continue;
            }
            // It shows state k (before write k); the oldest write it misses
            // is the first one from k on that changes this feed.
            let missed = touched[i..in_window]
                .iter()
                .copied()
                .find(|&w| !matches(w + 1))
                .unwrap_or(k);
            return Verdict::Stale {
                staleness_us: r.end_us.saturating_sub(self.committed_by[missed]),
                missed_seq: self.seqs[missed],
            };
        }
        Verdict::Unmatched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::history::Op;
    use chrono::NaiveDate;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn item(id: i64, start: &str, end: &str) -> Item {
        Item {
            id,
            calendar_id: 1,
            title: format!("item {id}"),
            work_type: "bug".into(),
            status: "open".into(),
            start: d(start),
            end: d(end),
        }
    }

    /// One calendar with two items in October; item 2 is deleted (commit
    /// bracketed by 1000 and 1100 µs), then item 1 moved to December
    /// (2000..2100).
    fn judge() -> (Judge, Seed, View) {
        let seed = Seed {
            calendars: vec![Calendar {
                id: 1,
                name: "team:1".into(),
                color: "#000".into(),
            }],
            members: vec![("u1".into(), 1)],
            items: vec![item(1, "2025-10-08", "2025-10-09"), item(2, "2025-10-20", "2025-10-21")],
        };
        let log = vec![
            Entry {
                seq: 1,
                item_id: 2,
                op: Op::Delete,
                item: None,
                before_commit_us: 1000,
            },
            Entry {
                seq: 2,
                item_id: 1,
                op: Op::Update,
                item: Some(item(1, "2025-12-08", "2025-12-09")),
                before_commit_us: 2000,
            },
        ];
        let j = Judge::new(&seed, log, &[(1, Some(1100), 1150), (2, Some(2100), 2150)]);
        let view = Judge::view(&[1], "start=2025-09-29T00%3A00%3A00Z&end=2025-11-10T00%3A00%3A00Z").unwrap();
        (j, seed, view)
    }

    fn response<'a>(view: &'a View, body: &[u8], start_us: i64, end_us: i64) -> Response<'a> {
        Response {
            calendars: &[1],
            view,
            start_us,
            end_us,
            digest: digest(body),
        }
    }

    /// A response built to be stale (it still shows the deleted item,
    /// requested after the delete committed) is counted stale, with the
    /// delete as the write it missed; the fresh one is not.
    #[test]
    fn a_stale_response_is_stale_and_a_fresh_one_is_not() {
        let (j, _, view) = judge();
        let before = j.body(&[1], &view, 0);
        let after_delete = j.body(&[1], &view, 1);
        assert!(String::from_utf8_lossy(&before).contains("item 2"));
        assert!(!String::from_utf8_lossy(&after_delete).contains("item 2"));
        // Requested at 1500, after the delete committed (by 1100).
        assert_eq!(j.judge(&response(&view, &after_delete, 1500, 1600)), Verdict::Fresh);
        assert_eq!(
            j.judge(&response(&view, &before, 1500, 1600)),
            Verdict::Stale {
                staleness_us: 1600 - 1100,
                missed_seq: 1
            }
        );
        // Requested while the delete was committing: either body is fine.
        assert_eq!(j.judge(&response(&view, &before, 1050, 1200)), Verdict::Fresh);
        assert_eq!(j.judge(&response(&view, &after_delete, 1050, 1200)), Verdict::Fresh);
        // Requested before the delete began committing, answered after it:
        // the new body is fine too; the old one is fresh.
        assert_eq!(j.judge(&response(&view, &after_delete, 900, 1200)), Verdict::Fresh);
        // But a body from after the delete cannot come from before it began.
        assert_eq!(j.judge(&response(&view, &after_delete, 100, 900)), Verdict::Unmatched);
        // After the move as well: the move takes item 1 out of October, so
        // the pre-delete body misses both; the oldest missed is the delete.
        let end = j.body(&[1], &view, 2);
        assert_eq!(end.as_ref(), b"[]");
        assert_eq!(
            j.judge(&response(&view, &before, 3000, 3500)),
            Verdict::Stale {
                staleness_us: 3500 - 1100,
                missed_seq: 1
            }
        );
        // Missing only the move.
        assert_eq!(
            j.judge(&response(&view, &after_delete, 3000, 3500)),
            Verdict::Stale {
                staleness_us: 3500 - 2100,
                missed_seq: 2
            }
        );
        assert_eq!(j.judge(&response(&view, b"[]", 3000, 3500)), Verdict::Fresh);
        assert_eq!(j.judge(&response(&view, b"[garbage]", 3000, 3500)), Verdict::Unmatched);
        assert_eq!(j.final_body(&[1], &view), end);
    }

    /// Without the `x-commit-us` of a write (its answer was lost), the next
    /// write's bracket bounds it; without either, it is never required.
    #[test]
    fn unknown_commits_are_bounded_by_the_next_write_or_not_required() {
        let (_, seed, view) = judge();
        let log = || {
            vec![Entry {
                seq: 1,
                item_id: 2,
                op: Op::Delete,
                item: None,
                before_commit_us: 1000,
            }]
        };
        let alone = Judge::new(&seed, log(), &[]);
        let before = alone.body(&[1], &view, 0);
        assert_eq!(alone.judge(&response(&view, &before, 9000, 9100)), Verdict::Fresh);
        let mut two = log();
        two.push(Entry {
            seq: 2,
            item_id: 1,
            op: Op::Update,
            item: Some(item(1, "2025-10-09", "2025-10-10")),
            before_commit_us: 5000,
        });
        let bounded = Judge::new(&seed, two, &[]);
        assert_eq!(
            bounded.judge(&response(&view, &before, 4000, 4100)),
            Verdict::Fresh,
            "4000 is before the bound 5000"
        );
        assert_eq!(
            bounded.judge(&response(&view, &before, 9000, 9100)),
            Verdict::Stale {
                staleness_us: 9100 - 5000,
                missed_seq: 1
            }
        );
    }
}
