//! Writes and their commit: what a write does, and what a commit changed.

use super::{Db, ItemRecord, Row, Version, WriteRec};
use crate::error::{Error, Result};

/// The visible state of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemState {
    /// Start instant (µs since the epoch).
    pub start_us: i64,
    /// End instant, exclusive (µs since the epoch); `> start_us`.
    pub end_us: i64,
    /// Index into [`WORK_TYPES`](super::WORK_TYPES).
    pub work_type: u8,
    /// Index into [`STATUSES`](super::STATUSES).
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

impl Db {
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
        sr.writes.push(WriteRec {
            commit_us,
            id: write.item,
            item: idx,
            rev,
            before: old,
            after: state,
        });
        sr.commits += 1;
        self.last_commit_us = commit_us;
        Ok(Committed {
            scope: write.scope.clone(),
            old: old.map(|s| (s.start_us, s.end_us)),
            new: state.map(|s| (s.start_us, s.end_us)),
        })
    }
}
