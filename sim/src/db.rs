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

#[derive(Debug)]
struct Version {
    commit_us: i64,
    state: Option<ItemState>,
}

#[derive(Debug)]
struct ItemRecord {
    id: u64,
    scope: u32,
    history: Vec<Version>,
}

impl ItemRecord {
    /// The version visible to a query before `t`, with its index (revision).
    fn at(&self, before_us: i64) -> Option<(usize, &ItemState)> {
        let n = self.history.partition_point(|v| v.commit_us < before_us);
        let idx = n.checked_sub(1)?;
        self.history[idx].state.as_ref().map(|s| (idx, s))
    }
}

#[derive(Debug, Default)]
struct ScopeRecord {
    items: Vec<u32>,
    /// (commit time, item index) of every write, in commit order.
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
    fn matches(&self, s: &ItemState) -> bool {
        s.start_us < self.end_us
            && self.start_us < s.end_us
            && self.work_type.is_none_or(|w| w == Some(s.work_type))
            && self.status.is_none_or(|w| w == Some(s.status))
    }
}

/// The answer to a feed query: how many items and a fingerprint of exactly
/// which item revisions, so two answers compare in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Items in the feed.
    pub items: u32,
    /// FNV-1a over (item id, revision) in a canonical order.
    pub fingerprint: u64,
}

/// The database.
#[derive(Debug, Default)]
pub struct Db {
    items: Vec<ItemRecord>,
    ids: HashMap<u64, u32>,
    scope_ids: HashMap<String, u32>,
    scopes: Vec<ScopeRecord>,
    last_commit_us: i64,
    queries: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, x: u64) -> u64 {
    for b in x.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl Db {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
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
                let i = self.items.len() as u32;
                self.items.push(ItemRecord {
                    id: write.item,
                    scope,
                    history: Vec::new(),
                });
                self.ids.insert(write.item, i);
                self.scopes[scope as usize].items.push(i);
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
        let old = rec.history.last().and_then(|v| v.state);
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
        rec.history.push(Version { commit_us, state });
        self.scopes[scope as usize].writes.push((commit_us, idx));
        self.last_commit_us = commit_us;
        Ok(Committed {
            scope: write.scope.clone(),
            old: old.map(|s| (s.start_us, s.end_us)),
            new: state.map(|s| (s.start_us, s.end_us)),
        })
    }

    /// Resolves a view into a query. Filters are the view parameters
    /// `work_type` and `status`; an unknown value matches nothing, as a SQL
    /// `WHERE` would.
    pub fn resolve(&self, view: &View) -> Query {
        let mut scopes: Vec<u32> = view
            .scopes
            .iter()
            .filter_map(|s| self.scope_ids.get(s.as_str()).copied())
            .collect();
        scopes.sort_unstable();
        Query {
            scopes,
            start_us: view.range.start().timestamp_micros(),
            end_us: view.range.end().timestamp_micros(),
            work_type: view.params.get("work_type").map(|v| code_of(&WORK_TYPES, v)),
            status: view.params.get("status").map(|v| code_of(&STATUSES, v)),
        }
    }

    /// Answers `q` as the app would have before `before_us` (commits `<`
    /// that instant), without counting it as an app query.
    pub fn answer(&self, q: &Query, before_us: i64) -> Answer {
        let mut h = FNV_OFFSET;
        let mut n = 0u32;
        for &s in &q.scopes {
            for &i in &self.scopes[s as usize].items {
                let rec = &self.items[i as usize];
                if let Some((rev, st)) = rec.at(before_us) {
                    if q.matches(st) {
                        n += 1;
                        h = fnv(fnv(h, rec.id), rev as u64);
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

    /// Items ever created.
    pub fn item_count(&self) -> usize {
        self.items.len()
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
}
