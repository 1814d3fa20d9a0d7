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
//!
//! # Layout
//!
//! - `mod.rs`: [`Db`] and how it stores items (rows per scope, histories).
//! - `write.rs`: writes ([`Write`], [`ItemState`]) and [`Db::commit`], which
//!   reports what a commit changed ([`Committed`]) for its invalidation.
//! - `query.rs`: feed queries ([`Query`]): answers as of any instant
//!   ([`Answer`]), remembered answers about the present ([`Memo`]), and the
//!   judgement's questions (which write a payload missed).
//! - `prune.rs`: [`Db::prune`], forgetting history no later question can reach.

use std::collections::HashMap;

mod prune;
mod query;
mod write;

pub use query::{Answer, Memo, Query};
pub use write::{Committed, ItemState, Write, WriteKind};

/// Work types an item can have; the feed filter `work_type` takes these.
pub const WORK_TYPES: [&str; 5] = ["task", "meeting", "review", "deadline", "leave"];
/// Statuses an item can have; the feed filter `status` takes these.
pub const STATUSES: [&str; 5] = ["open", "in_progress", "blocked", "done", "cancelled"];

/// Looks up the index of `value` in `table`.
pub fn code_of(table: &[&str], value: &str) -> Option<u8> {
    table.iter().position(|v| *v == value).map(|i| i as u8)
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
    /// Every write not yet pruned, in commit order.
    writes: Vec<WriteRec>,
}

/// A write as its scope keeps it: when, to which item, and the item's
/// state just before and just after it.
///
/// Why the states: a remembered answer catches up on the writes since it
/// was taken by taking each item out as it was before the write and
/// putting it back as it is after ([`Db::query_memo`]); with the states
/// here that reads one contiguous array, where looking them up in the
/// items' histories cost two cache misses per write.
#[derive(Debug, Clone, Copy)]
struct WriteRec {
    commit_us: i64,
    /// The item's id.
    id: u64,
    /// Index of the item's record in [`Db::items`].
    item: u32,
    /// The revision this write made (the one before it is `rev - 1`).
    rev: u32,
    before: Option<ItemState>,
    after: Option<ItemState>,
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

    /// The id of `scope`, registered (with no items) if new.
    fn scope_id(&mut self, scope: &str) -> u32 {
        if let Some(&id) = self.scope_ids.get(scope) {
            return id;
        }
        let id = self.scopes.len() as u32;
        self.scopes.push(ScopeRecord::default());
        self.scope_ids.insert(scope.to_owned(), id);
        id
    }

    /// The id of `scope` if it is registered (by a commit to it or a query
    /// naming it): a dense index, for per-scope tables.
    pub fn scope_index(&self, scope: &str) -> Option<u32> {
        self.scope_ids.get(scope).copied()
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
