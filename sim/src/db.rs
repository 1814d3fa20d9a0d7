//! The ground truth: a database of calendar items with full history, so that
//! it can answer a feed query *as of* any instant.
//!
//! Why history: a response is judged against the writes committed before its
//! request started, and a cached payload records the instant its database
//! query ran. Both questions ("what would the app have returned at `t`?",
//! "which write did this payload miss?") need past states, not just the
//! current one.
//!
//! Times are microseconds since the Unix epoch (`i64`). A query "before `t`"
//! sees exactly the writes with commit time `< t`.
//!
//! Only as much history as can still be asked about is kept: the engine
//! calls [`Db::prune`] with the earliest instant any later question can
//! name, so memory follows the live data and the recent writes, not the
//! length of the trace. Each scope keeps its items' latest versions in one
//! contiguous array, so a query about the present is a linear scan with no
//! pointer chasing.

use std::collections::HashMap;

use cache_core::View;

use crate::error::{Error, Result};

/// Work types an item can have; the feed filter `work_type` takes these.
pub const WORK_TYPES: [&str; 5] = ["task", "meeting", "review", "deadline", "leave"];
/// Statuses an item can have; the feed filter `status` takes these.
pub const STATUSES: [&str; 5] = ["open", "in_progress", "blocked", "done", "cancelled"];

/// Looks up the index of `value` in `table`.
pub fn code_of(table: &[&str], value: &str) -> Option<u8> {
    table.iter().position(|v| *v == value).map(|i| i as u8)
}

/// The visible state of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemState {
    /// Start instant (µs since the epoch).
    pub start_us: i64,
    /// End instant, exclusive (µs since the epoch); `> start_us`.
    pub end_us: i64,
    /// Index into [`WORK_TYPES`].
    pub work_type: u8,
    /// Index into [`STATUSES`].
    pub status: u8,
}

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteKind {
    /// An item that exists before traffic starts: committed, never
    /// invalidated, not counted as a write.
    Load,
    /// A new item.
    Create,
    /// A changed item (possibly moved to other dates).
    Edit,
    /// A removed item.
    Delete,
}

impl WriteKind {
    /// The name used in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Load => "load",
            WriteKind::Create => "create",
            WriteKind::Edit => "edit",
            WriteKind::Delete => "delete",
        }
    }
}

/// One committed (or to-be-committed) write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// What it does.
    pub kind: WriteKind,
    /// The item's id (unique across the trace).
    pub item: u64,
    /// The calendar (scope) the item belongs to.
    pub scope: String,
    /// The new state; `None` for a delete.
    pub state: Option<ItemState>,
}

/// What a commit changed, for the invalidation that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The item's scope.
    pub scope: String,
    /// `[start, end)` before the write, if the item existed.
    pub old: Option<(i64, i64)>,
    /// `[start, end)` after the write, if the item still exists.
    pub new: Option<(i64, i64)>,
}

impl Committed {
    /// The invalidation this commit calls for: the item's scope, its old and
    /// new dates (as UTC ranges).
    pub fn change(&self) -> Result<cache_core::Change> {
        let utc = chrono::FixedOffset::east_opt(0).ok_or_else(|| Error::Invalid("UTC offset".into()))?;
        let at = |us: i64| {
            chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.with_timezone(&utc))
                .ok_or_else(|| Error::Invalid(format!("instant {us}µs out of range")))
        };
        let mut ranges = Vec::with_capacity(2);
        for (s, e) in self.old.into_iter().chain(self.new) {
            ranges.push(cache_core::TimeRange::new(at(s)?, at(e)?)?);
        }
        Ok(cache_core::Change::new(
            cache_core::Scope::new(self.scope.clone())?,
            ranges,
        )?)
    }
}

#[derive(Debug, Clone, Copy)]
struct Version {
    commit_us: i64,
    /// The item's revision: 0 for its first commit, +1 per write. Stored
    /// rather than implied by the position, because pruning drops old
    /// versions from the front.
    rev: u32,
    state: Option<ItemState>,
}

#[derive(Debug)]
struct ItemRecord {
    id: u64,
    scope: u32,
    /// Position of the item's row in its scope's `rows`.
    row: u32,
    /// Versions in commit order; pruning keeps the one visible at the horizon
    /// and everything after it.
    history: Vec<Version>,
}

impl ItemRecord {
    /// The version visible to a query before `t`: (revision, state).
    fn at(&self, before_us: i64) -> Option<(u32, &ItemState)> {
        let n = self.history.partition_point(|v| v.commit_us < before_us);
        let v = &self.history[n.checked_sub(1)?];
        v.state.as_ref().map(|s| (v.rev, s))
    }
}

/// One item's latest version, copied next to its scope's other items.
///
/// Why a copy: a feed query scans every item of its scopes, and almost
/// always asks about the present, so the scan reads one contiguous array
/// and touches an item's full history only when a version newer than the
/// query instant exists.
#[derive(Debug, Clone, Copy)]
struct Row {
    commit_us: i64,
    start_us: i64,
    end_us: i64,
    id: u64,
    item: u32,
    rev: u32,
    work_type: u8,
    status: u8,
    /// False once deleted (the row stays until pruning, for past queries).
    present: bool,
}

#[derive(Debug, Default)]
struct ScopeRecord {
    rows: Vec<Row>,
    /// Commits to this scope so far (never pruned): a query's answer about
    /// the present can only change when one of its scopes' counts moves.
    commits: u64,
    /// (commit time, item index) of every write not yet pruned, in commit order.
    writes: Vec<(i64, u32)>,
}

/// A feed query resolved against the database's interned scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    scopes: Vec<u32>,
    start_us: i64,
    end_us: i64,
    work_type: Option<Option<u8>>,
    status: Option<Option<u8>>,
}

impl Query {
    fn matches_fields(&self, start_us: i64, end_us: i64, work_type: u8, status: u8) -> bool {
        start_us < self.end_us
            && self.start_us < end_us
            && self.work_type.is_none_or(|w| w == Some(work_type))
            && self.status.is_none_or(|w| w == Some(status))
    }

    fn matches(&self, s: &ItemState) -> bool {
        self.matches_fields(s.start_us, s.end_us, s.work_type, s.status)
    }
}

/// The answer to a feed query: how many items and a fingerprint of exactly
/// which item revisions, so two answers compare in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Items in the feed.
    pub items: u32,
    /// The wrapping sum of a 64-bit mix of each (item id, revision): equal
    /// sets give equal sums whatever the order items are visited in, so rows
    /// may move (pruning) without changing answers.
    pub fingerprint: u64,
}

/// A remembered answer about the present (see [`Db::query_memo`]).
#[derive(Debug, Clone, Copy)]
pub struct Memo {
    /// The sum of the query's scopes' commit counts when it was computed.
    stamp: u64,
    answer: Answer,
}

/// The database.
#[derive(Debug, Default)]
pub struct Db {
    items: Vec<ItemRecord>,
    /// Slots of `items` freed by pruning, reused by later creates.
    free_items: Vec<u32>,
    ids: HashMap<u64, u32>,
    scope_ids: HashMap<String, u32>,
    scopes: Vec<ScopeRecord>,
    last_commit_us: i64,
    /// Nothing before this instant may be asked any more (see [`Db::prune`]).
    horizon_us: i64,
    created: usize,
    queries: u64,
}

/// One item revision as a well-mixed 64-bit value, for [`Answer::fingerprint`].
fn mix(id: u64, rev: u32) -> u64 {
    use cache_core::hash::{mix64, GOLDEN_GAMMA};
    mix64(mix64(id.wrapping_add(GOLDEN_GAMMA)) ^ u64::from(rev))
}

impl Db {
    /// An empty database.
    pub fn new() -> Self {
        Db {
            horizon_us: i64::MIN,
            ..Self::default()
        }
    }

    /// Feed queries answered so far (each one is a `db_queries` in reports).
    pub fn queries(&self) -> u64 {
        self.queries
    }

    fn scope_id(&mut self, scope: &str) -> u32 {
        if let Some(&id) = self.scope_ids.get(scope) {
            return id;
        }
        let id = self.scopes.len() as u32;
        self.scopes.push(ScopeRecord::default());
        self.scope_ids.insert(scope.to_owned(), id);
        id
    }

    /// Commits `write` at `commit_us`. Commits must come in time order; an
    /// edit or delete of a missing item, or a create of an existing one, is an
    /// error (the trace is inconsistent).
    pub fn commit(&mut self, write: &Write, commit_us: i64) -> Result<Committed> {
        if commit_us < self.last_commit_us {
            return Err(Error::Invalid(format!(
                "write to item {} at {commit_us}µs is before the previous commit at {}µs",
                write.item, self.last_commit_us
            )));
        }
        if let Some(s) = &write.state {
            if s.end_us <= s.start_us {
                return Err(Error::Invalid(format!("item {}: end must be after start", write.item)));
            }
        }
        let scope = self.scope_id(&write.scope);
        let idx = match self.ids.get(&write.item) {
            Some(&i) => i,
            None => {
                if !matches!(write.kind, WriteKind::Create | WriteKind::Load) {
                    return Err(Error::Invalid(format!(
                        "{} of item {} which was never created",
                        write.kind.as_str(),
                        write.item
                    )));
                }
                let rows = &mut self.scopes[scope as usize].rows;
                let record = ItemRecord {
                    id: write.item,
                    scope,
                    row: rows.len() as u32,
                    history: Vec::new(),
                };
                let i = match self.free_items.pop() {
                    Some(i) => {
                        self.items[i as usize] = record;
                        i
                    }
                    None => {
                        self.items.push(record);
                        (self.items.len() - 1) as u32
                    }
                };
                rows.push(Row {
                    commit_us: i64::MIN,
                    start_us: 0,
                    end_us: 0,
                    id: write.item,
                    item: i,
                    rev: 0,
                    work_type: 0,
                    status: 0,
                    present: false,
                });
                self.ids.insert(write.item, i);
                self.created += 1;
                i
            }
        };
        let rec = &mut self.items[idx as usize];
        if rec.scope != scope {
            return Err(Error::Invalid(format!(
                "item {} belongs to another scope than {:?}",
                write.item, write.scope
            )));
        }
        let last = rec.history.last();
        let old = last.and_then(|v| v.state);
        let rev = last.map_or(0, |v| v.rev + 1);
        match (write.kind, old.is_some()) {
            (WriteKind::Create | WriteKind::Load, true) => {
                return Err(Error::Invalid(format!("create of item {} which exists", write.item)))
            }
            (WriteKind::Edit | WriteKind::Delete, false) => {
                return Err(Error::Invalid(format!(
                    "{} of item {} which does not exist",
                    write.kind.as_str(),
                    write.item
                )))
            }
            _ => {}
        }
        let state = if write.kind == WriteKind::Delete {
            None
        } else {
            write.state
        };
        rec.history.push(Version { commit_us, rev, state });
        let sr = &mut self.scopes[scope as usize];
        let row = &mut sr.rows[rec.row as usize];
        row.commit_us = commit_us;
        row.rev = rev;
        row.present = state.is_some();
        if let Some(s) = state {
            row.start_us = s.start_us;
            row.end_us = s.end_us;
            row.work_type = s.work_type;
            row.status = s.status;
        }
        sr.writes.push((commit_us, idx));
        sr.commits += 1;
        self.last_commit_us = commit_us;
        Ok(Committed {
            scope: write.scope.clone(),
            old: old.map(|s| (s.start_us, s.end_us)),
            new: state.map(|s| (s.start_us, s.end_us)),
        })
    }

    fn query_for(&self, scopes: Vec<u32>, view: &View) -> Query {
        Query {
            scopes,
            start_us: view.range.start().timestamp_micros(),
            end_us: view.range.end().timestamp_micros(),
            work_type: view.params.get("work_type").map(|v| code_of(&WORK_TYPES, v)),
            status: view.params.get("status").map(|v| code_of(&STATUSES, v)),
        }
    }

    /// Resolves a view into a query. Filters are the view parameters
    /// `work_type` and `status`; an unknown value matches nothing, as a SQL
    /// `WHERE` would. Scopes without items yet are left out, so the query
    /// must be resolved again once they have some; [`Db::intern`] gives a
    /// query that stays valid.
    pub fn resolve(&self, view: &View) -> Query {
        let mut scopes: Vec<u32> = view
            .scopes
            .iter()
            .filter_map(|s| self.scope_ids.get(s.as_str()).copied())
            .collect();
        scopes.sort_unstable();
        self.query_for(scopes, view)
    }

    /// Like [`Db::resolve`], but registers unknown scopes (empty until
    /// written), so the query stays valid for the rest of the run and can
    /// be kept with an interned view.
    pub fn intern(&mut self, view: &View) -> Query {
        let mut scopes: Vec<u32> = view.scopes.iter().map(|s| self.scope_id(s.as_str())).collect();
        scopes.sort_unstable();
        self.query_for(scopes, view)
    }

    /// Answers `q` as the app would have before `before_us` (commits `<`
    /// that instant), without counting it as an app query. Instants before
    /// the pruning horizon are answered from what is left (see [`Db::prune`]).
    pub fn answer(&self, q: &Query, before_us: i64) -> Answer {
        let mut h = 0u64;
        let mut n = 0u32;
        for &s in &q.scopes {
            for r in &self.scopes[s as usize].rows {
                if r.commit_us < before_us {
                    // The latest version is the one visible: no history lookup.
                    if r.present && q.matches_fields(r.start_us, r.end_us, r.work_type, r.status) {
                        n += 1;
                        h = h.wrapping_add(mix(r.id, r.rev));
                    }
                } else if let Some((rev, st)) = self.items[r.item as usize].at(before_us) {
                    if q.matches(st) {
                        n += 1;
                        h = h.wrapping_add(mix(r.id, rev));
                    }
                }
            }
        }
        Answer {
            items: n,
            fingerprint: h,
        }
    }

    /// Runs `q` for the app (counted in [`Db::queries`]) at `now_us`: sees
    /// every commit at or before `now_us`.
    pub fn query(&mut self, q: &Query, now_us: i64) -> Answer {
        self.queries += 1;
        self.answer(q, now_us.saturating_add(1))
    }

    /// Like [`Db::query`], remembering the answer in `memo` and reusing it
    /// while no scope of `q` has had a commit since.
    ///
    /// Why: between two writes to its calendars a popular view is queried
    /// again and again, and each query scans every item of its scopes; the
    /// scan was the simulator's largest cost after the cache itself. Only
    /// answers about the present are remembered (every commit so far is at
    /// or before `now_us`, as in a replay, where the trace's writes are
    /// applied before any later step); any other question is answered by a
    /// scan. `memo` must only ever be used with the same `q` on this `Db`.
    pub fn query_memo(&mut self, q: &Query, now_us: i64, memo: &mut Option<Memo>) -> Answer {
        if now_us < self.last_commit_us {
            return self.query(q, now_us);
        }
        self.queries += 1;
        // A sum of monotone counters: it moves whenever any of them moves.
        let stamp: u64 = q.scopes.iter().map(|&s| self.scopes[s as usize].commits).sum();
        if let Some(m) = memo {
            if m.stamp == stamp {
                return m.answer;
            }
        }
        let answer = self.answer(q, now_us.saturating_add(1));
        *memo = Some(Memo { stamp, answer });
        answer
    }

    /// True when any scope of `q` had a write committed in `[from, before)`.
    /// The cheap first check before comparing answers.
    pub fn any_write_between(&self, q: &Query, from_us: i64, before_us: i64) -> bool {
        q.scopes.iter().any(|&s| {
            let w = &self.scopes[s as usize].writes;
            let i = w.partition_point(|&(t, _)| t < from_us);
            w.get(i).is_some_and(|&(t, _)| t < before_us)
        })
    }

    /// Commit time of the earliest write in `[from, before)` that changed
    /// what `q` shows (the item matched before or after it).
    pub fn first_relevant_write(&self, q: &Query, from_us: i64, before_us: i64) -> Option<i64> {
        let mut best: Option<i64> = None;
        for &s in &q.scopes {
            let w = &self.scopes[s as usize].writes;
            let start = w.partition_point(|&(t, _)| t < from_us);
            for &(t, item) in &w[start..] {
                if t >= before_us || best.is_some_and(|b| t >= b) {
                    break;
                }
                let rec = &self.items[item as usize];
                let after = rec.at(t.saturating_add(1)).map(|(_, s)| *s);
                let before = rec.at(t).map(|(_, s)| *s);
                if after.is_some_and(|s| q.matches(&s)) || before.is_some_and(|s| q.matches(&s)) {
                    best = Some(t);
                    break;
                }
            }
        }
        best
    }

    /// Forgets what only questions about instants before `horizon_us` could
    /// need: versions superseded before it, writes committed before it, and
    /// items deleted before it (their ids may then be created again).
    ///
    /// Why: the history grows with every write, and a long trace must replay
    /// in bounded memory. The engine knows how far back any later question
    /// can reach (the oldest in-flight request, the oldest query a cached
    /// entry that is still fresh can carry) and prunes up to there; every
    /// answer about an instant at or after the horizon is unchanged. A
    /// horizon behind an earlier one is ignored.
    pub fn prune(&mut self, horizon_us: i64) {
        if horizon_us <= self.horizon_us {
            return;
        }
        self.horizon_us = horizon_us;
        for sr in &mut self.scopes {
            let old_writes = sr.writes.partition_point(|&(t, _)| t < horizon_us);
            sr.writes.drain(..old_writes);
            let mut i = 0;
            while i < sr.rows.len() {
                let r = sr.rows[i];
                if !r.present && r.commit_us < horizon_us {
                    // Deleted before the horizon: invisible to every question left.
                    sr.rows.swap_remove(i);
                    if let Some(moved) = sr.rows.get(i) {
                        self.items[moved.item as usize].row = i as u32;
                    }
                    let rec = &mut self.items[r.item as usize];
                    self.ids.remove(&rec.id);
                    rec.history = Vec::new();
                    self.free_items.push(r.item);
                    continue;
                }
                let h = &mut self.items[r.item as usize].history;
                // Keep the version visible at the horizon and all later ones.
                let visible = h.partition_point(|v| v.commit_us < horizon_us);
                if visible > 1 {
                    h.drain(..visible - 1);
                    if h.capacity() > 4 * h.len() {
                        h.shrink_to_fit();
                    }
                }
                i += 1;
            }
        }
    }

    /// Versions held in item histories (what [`Db::prune`] bounds).
    pub fn versions_held(&self) -> usize {
        self.items.iter().map(|r| r.history.len()).sum()
    }

    /// Items ever created.
    pub fn item_count(&self) -> usize {
        self.created
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::{Scope, TimeRange};
    use chrono::DateTime;

    fn view(start: &str, end: &str) -> View {
        let r = TimeRange::new(
            DateTime::parse_from_rfc3339(start).unwrap(),
            DateTime::parse_from_rfc3339(end).unwrap(),
        )
        .unwrap();
        View::new([Scope::new("cal:1").unwrap()], r).unwrap()
    }

    #[test]
    fn answers_as_of_any_instant() {
        let mut db = Db::new();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        let st = ItemState {
            start_us: t("2025-10-15T09:00:00Z"),
            end_us: t("2025-10-15T10:00:00Z"),
            work_type: 0,
            status: 0,
        };
        let w = |kind, state| Write {
            kind,
            item: 1,
            scope: "cal:1".into(),
            state,
        };
        db.commit(&w(WriteKind::Create, Some(st)), 100).unwrap();
        db.commit(&w(WriteKind::Delete, None), 200).unwrap();
        let q = db.resolve(&view("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00"));
        assert_eq!(db.answer(&q, 150).items, 1);
        assert_eq!(db.answer(&q, 200).items, 1, "a commit at 200 is not before 200");
        assert_eq!(db.answer(&q, 201).items, 0);
        assert!(db.any_write_between(&q, 150, 201));
        assert_eq!(db.first_relevant_write(&q, 101, 300), Some(200));
        let outside = db.resolve(&view("2025-12-01T00:00:00Z", "2025-12-02T00:00:00Z"));
        assert_eq!(db.first_relevant_write(&outside, 0, 300), None);
        assert!(db.commit(&w(WriteKind::Edit, Some(st)), 300).is_err());
    }

    /// A random history on a few items in two scopes; pruning at `h` must
    /// leave every question about instants at or after `h` unchanged.
    #[test]
    fn pruning_keeps_every_answer_at_or_after_the_horizon() {
        let mut rng = crate::rng::Rng::new(42);
        let hour = 3_600_000_000i64;
        let state = |rng: &mut crate::rng::Rng| {
            let start_us = rng.below(48) as i64 * hour;
            ItemState {
                start_us,
                end_us: start_us + hour,
                work_type: rng.below(2) as u8,
                status: rng.below(2) as u8,
            }
        };
        let mut live: Vec<u64> = Vec::new();
        let mut scope_of: HashMap<u64, &str> = HashMap::new();
        let mut db = Db::new();
        let mut next_id = 1;
        for t in 1..2_000i64 {
            let (kind, item, st) = if live.is_empty() || rng.chance(0.3) {
                next_id += 1;
                live.push(next_id);
                scope_of.insert(next_id, if rng.chance(0.5) { "cal:1" } else { "team:1" });
                (WriteKind::Create, next_id, Some(state(&mut rng)))
            } else if rng.chance(0.7) {
                (WriteKind::Edit, live[rng.index(live.len())], Some(state(&mut rng)))
            } else {
                (WriteKind::Delete, live.swap_remove(rng.index(live.len())), None)
            };
            let w = Write {
                kind,
                item,
                scope: scope_of[&item].into(),
                state: st,
            };
            db.commit(&w, t * 10).unwrap();
        }
        let v = |s: i64, e: i64| {
            let at = |h: i64| DateTime::from_timestamp_micros(h * hour).unwrap().fixed_offset();
            let r = TimeRange::new(at(s), at(e)).unwrap();
            View::new([Scope::new("cal:1").unwrap(), Scope::new("team:1").unwrap()], r)
                .unwrap()
                .with_param("status", "open")
        };
        let mut queries = vec![db.intern(&v(0, 48)), db.intern(&v(10, 20))];
        queries.push(db.intern(&View {
            params: Default::default(),
            ..v(5, 30)
        }));
        let horizon = 12_000;
        let instants: Vec<i64> = (horizon..20_010).step_by(7).collect();
        let ask = |db: &Db| -> Vec<_> {
            queries
                .iter()
                .flat_map(|q| {
                    instants.iter().map(|&t| {
                        (
                            db.answer(q, t),
                            db.any_write_between(q, horizon + 3, t),
                            db.first_relevant_write(q, horizon, t),
                        )
                    })
                })
                .collect()
        };
        let before = ask(&db);
        let held = db.versions_held();
        db.prune(horizon);
        assert!(db.versions_held() < held / 2, "{} of {held}", db.versions_held());
        let after = ask(&db);
        assert_eq!(before, after);
        assert!(before.iter().any(|(a, _, _)| a.items > 0));
    }

    /// Remembered answers about the present must equal fresh scans after
    /// every commit, whichever scope it touched, and across pruning.
    #[test]
    fn remembered_answers_follow_every_commit() {
        let mut rng = crate::rng::Rng::new(7);
        let hour = 3_600_000_000i64;
        let scopes = ["cal:1", "cal:2", "team:1"];
        let at = |h: i64| DateTime::from_timestamp_micros(h * hour).unwrap().fixed_offset();
        let view = |names: &[&str], s: i64, e: i64| {
            View::new(
                names.iter().map(|n| Scope::new(*n).unwrap()),
                TimeRange::new(at(s), at(e)).unwrap(),
            )
            .unwrap()
        };
        let mut db = Db::new();
        let queries = [
            db.intern(&view(&["cal:1"], 0, 48)),
            db.intern(&view(&["cal:2", "team:1"], 10, 30)),
            db.intern(&view(&["cal:1", "cal:2", "team:1"], 0, 24).with_param("status", "open")),
        ];
        let mut memos = [None, None, None];
        let mut live: Vec<(u64, &str)> = Vec::new();
        let mut reused = 0;
        for t in 1..3_000i64 {
            let start_us = rng.below(48) as i64 * hour;
            let state = ItemState {
                start_us,
                end_us: start_us + hour,
                work_type: 0,
                status: rng.below(2) as u8,
            };
            if rng.chance(0.4) {
                let w = if live.is_empty() || rng.chance(0.4) {
                    live.push((t as u64, scopes[rng.index(scopes.len())]));
                    let (item, scope) = live[live.len() - 1];
                    Write {
                        kind: WriteKind::Create,
                        item,
                        scope: scope.into(),
                        state: Some(state),
                    }
                } else if rng.chance(0.7) {
                    let (item, scope) = live[rng.index(live.len())];
                    Write {
                        kind: WriteKind::Edit,
                        item,
                        scope: scope.into(),
                        state: Some(state),
                    }
                } else {
                    let (item, scope) = live.swap_remove(rng.index(live.len()));
                    Write {
                        kind: WriteKind::Delete,
                        item,
                        scope: scope.into(),
                        state: None,
                    }
                };
                db.commit(&w, t * 10).unwrap();
            }
            if t % 500 == 0 {
                db.prune(t * 10 - 100);
            }
            for (q, memo) in queries.iter().zip(&mut memos) {
                let before = memo.map(|m: Memo| m.stamp);
                let got = db.query_memo(q, t * 10, memo);
                reused += usize::from(before == memo.map(|m| m.stamp));
                assert_eq!(got, db.answer(q, t * 10 + 1), "query at {t}");
            }
        }
        assert!(reused > 1_000, "the memo was reused only {reused} times");
    }
}
