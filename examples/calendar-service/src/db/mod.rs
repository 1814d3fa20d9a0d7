//! The work items in SQLite (rusqlite): calendars, who may see them, and the
//! items, with the feed query the cache sits in front of.
//!
//! Items are all-day work items, as in the seed: floating dates `[start,
//! end)` (end exclusive, FullCalendar's convention), shown on the same days
//! in every time zone. Dates are stored as `YYYY-MM-DD` text, which sorts
//! like the dates, so the overlap query is plain string comparison.
//!
//! rusqlite is blocking: every call runs on Tokio's blocking pool behind one
//! `std::sync::Mutex<Connection>`. One connection is plenty for an example
//! and makes each write trivially serialised; a real service would use a
//! pool (r2d2, deadpool) or sqlx.
//!
//! Several processes may share one database file (the load tool runs three
//! on one): a file is opened in WAL mode (readers never wait for the
//! writer) with a busy timeout, and every write takes the write lock when it
//! begins (`BEGIN IMMEDIATE`), so writes from different processes queue
//! instead of failing with `SQLITE_BUSY` halfway through.
//!
//! # Layout
//!
//! - `mod.rs` (here): the schema, [`Db`], the feed query and the writes.
//! - [`history`]: the commit log every write appends to in its own
//!   transaction, and [`Commit`], when a write committed.
//! - `seed.rs`: a new file filled with given rows ([`Seed`]).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Days, NaiveDate, Timelike};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};

use cache_core::TimeRange;

pub mod history;
mod seed;

pub use history::{Commit, Op};
pub use seed::Seed;

/// How long a statement waits for another process's write lock before
/// failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The work types the page offers and the API accepts.
pub const WORK_TYPES: [&str; 3] = ["feature", "bug", "chore"];
/// The statuses the page offers and the API accepts.
pub const STATUSES: [&str; 3] = ["open", "in_progress", "done"];

/// What can go wrong in the database layer, by what the caller answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// No such item (or one the user may not see: not told apart, so ids of
    /// other people's items are not revealed).
    #[error("no such item")]
    NotFound,
    /// The user is not a member of the calendar named in the request.
    #[error("you are not a member of calendar {0}")]
    Forbidden(i64),
    /// The user name is not known.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The request's content is not a valid item.
    #[error("invalid item: {0}")]
    Invalid(String),
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running the query died.
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The database is down: a fault injected for a test
    /// ([`DbFaults`], `--test-db-faults`).
    #[error("database unavailable (injected fault)")]
    Unavailable,
}

/// A calendar: the unit that is shared, and the cache's scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Calendar {
    /// Row id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// CSS colour of its items.
    pub color: String,
}

/// A stored work item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Row id.
    pub id: i64,
    /// The calendar it belongs to (its scope).
    pub calendar_id: i64,
    /// Title.
    pub title: String,
    /// One of [`WORK_TYPES`].
    pub work_type: String,
    /// One of [`STATUSES`].
    pub status: String,
    /// First day.
    pub start: NaiveDate,
    /// Day after the last day (exclusive).
    pub end: NaiveDate,
}

/// The fields of an item a client sends to create or replace it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ItemInput {
    /// The calendar it goes into (the user must be a member).
    pub calendar_id: i64,
    /// Title, 1 to 200 characters.
    pub title: String,
    /// One of [`WORK_TYPES`].
    pub work_type: String,
    /// One of [`STATUSES`].
    pub status: String,
    /// First day.
    pub start: NaiveDate,
    /// Day after the last day (exclusive); after `start`.
    pub end: NaiveDate,
}

impl ItemInput {
    pub(crate) fn validate(&self) -> Result<(), DbError> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(DbError::Invalid("the title must have 1 to 200 characters".into()));
        }
        if !WORK_TYPES.contains(&self.work_type.as_str()) {
            return Err(DbError::Invalid(format!("work_type must be one of {WORK_TYPES:?}")));
        }
        if !STATUSES.contains(&self.status.as_str()) {
            return Err(DbError::Invalid(format!("status must be one of {STATUSES:?}")));
        }
        if self.start >= self.end {
            return Err(DbError::Invalid("end (exclusive) must be after start".into()));
        }
        if (self.end - self.start).num_days() > 366 {
            return Err(DbError::Invalid("an item spans at most 366 days".into()));
        }
        Ok(())
    }
}

/// The feed's filters; `None` = all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter<'a> {
    /// Only items of this work type.
    pub work_type: Option<&'a str>,
    /// Only items with this status.
    pub status: Option<&'a str>,
}

/// Whether the feed for `days` (from [`shown_days`]) with `filter` shows
/// `item`: the condition of [`Db::feed`]'s query (which runs it in SQL),
/// for code that must answer it without the database, such as the load
/// tool's checker. A test checks that the two agree.
pub fn shows(item: &Item, days: (NaiveDate, NaiveDate), filter: &FeedFilter<'_>) -> bool {
    item.start < days.1
        && item.end > days.0
        && filter.work_type.is_none_or(|w| item.work_type == w)
        && filter.status.is_none_or(|s| item.status == s)
}

/// The order of [`Db::feed`]'s rows: by first day, then by id.
pub fn feed_order(a: &Item, b: &Item) -> std::cmp::Ordering {
    (a.start, a.id).cmp(&(b.start, b.id))
}

/// Runs inside a write's transaction, after its checks and just before its
/// commit, with the transaction's connection and the items the write
/// touches (as they were, and as they will be): where the service
/// announces the write to the cache ([`cache_core::RangeCache::begin_write`])
/// and records its change in the outbox (`crate::outbox`), in the same
/// transaction. Not called when a check fails; called at most once.
pub type BeforeCommit = Box<dyn FnOnce(&Connection, &[&Item]) + Send>;

/// The database handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    faults: DbFaults,
}

/// What an injected database fault does to the feed query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
#[non_exhaustive]
pub enum DbFaultKind {
    /// The query fails ([`DbError::Unavailable`]).
    Outage,
    /// The query takes this much longer.
    Slow {
        /// Added latency, ms.
        latency_ms: u64,
    },
}

/// Faults injected into the feed query for tests and load runs (the
/// `POST /test/db-fault` endpoint with `--test-db-faults`): the query the
/// cache's loader runs fails or is slowed for a window of real time.
/// Nothing else is touched: the scopes a request may see, the writes and
/// the outbox still work, so what is measured is what fail-safe and the
/// loader's timeouts do (and the simulator's `--db-fault` models the same:
/// feed queries only). Cheap to clone; shared by every clone of the
/// [`Db`].
#[derive(Debug, Clone, Default)]
pub struct DbFaults(Arc<Mutex<Vec<(tokio::time::Instant, tokio::time::Instant, DbFaultKind)>>>);

impl DbFaults {
    /// From now, for `duration`, the feed query does `kind`.
    pub fn inject(&self, kind: DbFaultKind, duration: std::time::Duration) {
        let now = tokio::time::Instant::now();
        let mut windows = self.0.lock().unwrap_or_else(|e| e.into_inner());
        windows.retain(|w| w.1 > now);
        windows.push((now, now + duration, kind));
    }

    /// Ends every fault now.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The fault in force now, if any (the latest injected wins).
    pub fn now(&self) -> Option<DbFaultKind> {
        let now = tokio::time::Instant::now();
        let windows = self.0.lock().unwrap_or_else(|e| e.into_inner());
        windows.iter().rev().find(|w| w.0 <= now && now < w.1).map(|w| w.2)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calendars (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    color TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    user TEXT NOT NULL,
    calendar_id INTEGER NOT NULL REFERENCES calendars(id),
    PRIMARY KEY (user, calendar_id)
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    calendar_id INTEGER NOT NULL REFERENCES calendars(id),
    title TEXT NOT NULL,
    work_type TEXT NOT NULL,
    status TEXT NOT NULL,
    start TEXT NOT NULL,
    end TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_calendar ON items (calendar_id, start);
";

/// The demo data: Alice's and Bob's own calendars and a Team calendar both
/// share, with work items in October 2025 (the seed's month).
const DEMO: &str = "
INSERT INTO calendars (id, name, color) VALUES
    (1, 'Alice', '#2a7ab0'), (2, 'Bob', '#8a5a00'), (3, 'Team', '#2e7d32');
INSERT INTO members (user, calendar_id) VALUES
    ('alice', 1), ('alice', 3), ('bob', 2), ('bob', 3);
INSERT INTO items (calendar_id, title, work_type, status, start, end) VALUES
    (3, 'Sprint planning', 'chore', 'done', '2025-09-29', '2025-09-30'),
    (1, 'Fix login redirect', 'bug', 'open', '2025-10-02', '2025-10-04'),
    (3, 'Design review', 'feature', 'open', '2025-10-08', '2025-10-09'),
    (2, 'Invoice export', 'feature', 'in_progress', '2025-10-13', '2025-10-16'),
    (3, 'Release 2.4', 'chore', 'open', '2025-10-17', '2025-10-18'),
    (1, 'Calendar cache bug', 'bug', 'in_progress', '2025-10-21', '2025-10-23'),
    (3, 'Retrospective', 'chore', 'open', '2025-10-31', '2025-11-01'),
    (2, 'Dependency upgrades', 'chore', 'open', '2025-11-04', '2025-11-06');
";

/// Sets up a fresh connection: foreign keys; for a file, WAL mode and the
/// busy timeout (several processes may share it); the schema.
fn prepare(conn: &Connection, file: bool) -> Result<(), DbError> {
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    if file {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Returns the mode it set; WAL persists in the file.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(history::SCHEMA)?;
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the database at `path`, or a private
    /// in-memory one for `None`; a database without calendars gets the demo
    /// data.
    pub fn open(path: Option<&Path>) -> Result<Self, DbError> {
        let mut conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        prepare(&conn, path.is_some())?;
        // Under the write lock: processes starting together on a new file
        // insert the demo data once.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let calendars: i64 = tx.query_row("SELECT COUNT(*) FROM calendars", [], |r| r.get(0))?;
        if calendars == 0 {
            tx.execute_batch(DEMO)?;
        }
        tx.commit()?;
        Ok(Db::from_connection(conn))
    }

    fn from_connection(conn: Connection) -> Self {
        Db {
            conn: Arc::new(Mutex::new(conn)),
            faults: DbFaults::default(),
        }
    }

    /// The commit log, in commit order ([`history`]).
    pub async fn history(&self) -> Result<Vec<history::Entry>, DbError> {
        self.call(|c| history::read_all(c)).await
    }

    /// The faults injected into this database's feed query (tests only).
    pub fn faults(&self) -> &DbFaults {
        &self.faults
    }

    /// Runs `f` on the connection on Tokio's blocking pool.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection
            // itself is still consistent (SQLite rolls back an open
            // transaction), so go on with it.
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await?
    }

    /// Every user name, sorted.
    pub async fn users(&self) -> Result<Vec<String>, DbError> {
        self.call(|c| {
            let mut st = c.prepare("SELECT DISTINCT user FROM members ORDER BY user")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The calendars `user` is a member of, by id; an unknown user (a member
    /// of nothing) is [`DbError::UnknownUser`].
    pub async fn calendars_of(&self, user: &str) -> Result<Vec<Calendar>, DbError> {
        let user = user.to_owned();
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT c.id, c.name, c.color FROM calendars c JOIN members m ON m.calendar_id = c.id
                 WHERE m.user = ?1 ORDER BY c.id",
            )?;
            let rows = st.query_map([&user], |r| {
                Ok(Calendar {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    color: r.get(2)?,
                })
            })?;
            let calendars: Vec<Calendar> = rows.collect::<Result<_, _>>()?;
            if calendars.is_empty() {
                return Err(DbError::UnknownUser(user));
            }
            Ok(calendars)
        })
        .await
    }

    /// The items of `calendars` shown on the days of `range` (as the client
    /// sees them: each end's date in its own offset, a partial last day
    /// included), filtered.
    pub async fn feed(
        &self,
        calendars: &[i64],
        range: TimeRange,
        filter: FeedFilter<'_>,
    ) -> Result<Vec<(Item, Calendar)>, DbError> {
        let fault = self.faults.now();
        if fault == Some(DbFaultKind::Outage) {
            return Err(DbError::Unavailable);
        }
        let (from, to) = shown_days(range);
        let ids = calendars.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let work_type = filter.work_type.map(str::to_owned);
        let status = filter.status.map(str::to_owned);
        let result = self
            .call(move |c| {
                // `ids` holds integers only, formatted by us: safe to inline.
                let sql = format!(
                    "SELECT {ITEM_COLUMNS}, c.name, c.color FROM items i JOIN calendars c ON c.id = i.calendar_id
                 WHERE i.calendar_id IN ({ids}) AND i.start < ?1 AND i.end > ?2
                   AND (?3 IS NULL OR i.work_type = ?3) AND (?4 IS NULL OR i.status = ?4)
                 ORDER BY i.start, i.id"
                );
                let mut st = c.prepare(&sql)?;
                let rows = st.query_map(params![to.to_string(), from.to_string(), work_type, status], |r| {
                    let item = item_from_row(r)?;
                    let calendar = Calendar {
                        id: item.calendar_id,
                        name: r.get(7)?,
                        color: r.get(8)?,
                    };
                    Ok((item, calendar))
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await;
        if let Some(DbFaultKind::Slow { latency_ms }) = fault {
            tokio::time::sleep(std::time::Duration::from_millis(latency_ms)).await;
        }
        result
    }

    /// Item `id`, if `user` may see it.
    pub async fn item(&self, user: &str, id: i64) -> Result<Item, DbError> {
        let user = user.to_owned();
        self.call(move |c| visible_item(c, &user, id)).await
    }

    /// Creates an item in a calendar `user` is a member of; committed when
    /// this returns, at [`Commit`].
    pub async fn create(
        &self,
        user: &str,
        input: ItemInput,
        before_commit: BeforeCommit,
    ) -> Result<(Item, Commit), DbError> {
        input.validate()?;
        let user = user.to_owned();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            require_member(&tx, &user, input.calendar_id)?;
            tx.execute(
                "INSERT INTO items (calendar_id, title, work_type, status, start, end) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    input.calendar_id,
                    input.title.trim(),
                    input.work_type,
                    input.status,
                    input.start.to_string(),
                    input.end.to_string()
                ],
            )?;
            let item = item_by_id(&tx, tx.last_insert_rowid())?;
            before_commit(&tx, &[&item]);
            let (seq, before_us) = history::record(&tx, Op::Create, item.id, Some(&item))?;
            tx.commit()?;
            let after_us = history::now_us();
            Ok((
                item,
                Commit {
                    seq,
                    before_us,
                    after_us,
                },
            ))
        })
        .await
    }

    /// Replaces item `id` (title, dates, even its calendar); returns the
    /// item before and after, committed when this returns, at [`Commit`].
    pub async fn update(
        &self,
        user: &str,
        id: i64,
        input: ItemInput,
        before_commit: BeforeCommit,
    ) -> Result<(Item, Item, Commit), DbError> {
        input.validate()?;
        let user = user.to_owned();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old = visible_item(&tx, &user, id)?;
            require_member(&tx, &user, input.calendar_id)?;
            tx.execute(
                "UPDATE items SET calendar_id = ?1, title = ?2, work_type = ?3, status = ?4, start = ?5, end = ?6
                 WHERE id = ?7",
                params![
                    input.calendar_id,
                    input.title.trim(),
                    input.work_type,
                    input.status,
                    input.start.to_string(),
                    input.end.to_string(),
                    id
                ],
            )?;
            let new = item_by_id(&tx, id)?;
            before_commit(&tx, &[&old, &new]);
            let (seq, before_us) = history::record(&tx, Op::Update, id, Some(&new))?;
            tx.commit()?;
            let after_us = history::now_us();
            Ok((
                old,
                new,
                Commit {
                    seq,
                    before_us,
                    after_us,
                },
            ))
        })
        .await
    }

    /// Deletes item `id`; returns it as it was, committed when this
    /// returns, at [`Commit`].
    pub async fn delete(&self, user: &str, id: i64, before_commit: BeforeCommit) -> Result<(Item, Commit), DbError> {
        let user = user.to_owned();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old = visible_item(&tx, &user, id)?;
            tx.execute("DELETE FROM items WHERE id = ?1", [id])?;
            before_commit(&tx, &[&old]);
            let (seq, before_us) = history::record(&tx, Op::Delete, id, None)?;
            tx.commit()?;
            let after_us = history::now_us();
            Ok((
                old,
                Commit {
                    seq,
                    before_us,
                    after_us,
                },
            ))
        })
        .await
    }
}

/// The dates a client sees in `range`: from the start's date to the end's
/// date (exclusive), each read in the offset the client sent; an end that
/// is not at midnight shows part of its day, so that day counts.
pub fn shown_days(range: TimeRange) -> (NaiveDate, NaiveDate) {
    let end = range.end();
    let mut to = end.date_naive();
    if end.num_seconds_from_midnight() != 0 || end.nanosecond() != 0 {
        to = to.checked_add_days(Days::new(1)).unwrap_or(to);
    }
    (range.start().date_naive(), to)
}

const ITEM_COLUMNS: &str = "i.id, i.calendar_id, i.title, i.work_type, i.status, i.start, i.end";

fn item_from_row(r: &Row<'_>) -> rusqlite::Result<Item> {
    let date = |i: usize| -> rusqlite::Result<NaiveDate> {
        let s: String = r.get(i)?;
        s.parse()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    };
    Ok(Item {
        id: r.get(0)?,
        calendar_id: r.get(1)?,
        title: r.get(2)?,
        work_type: r.get(3)?,
        status: r.get(4)?,
        start: date(5)?,
        end: date(6)?,
    })
}

fn item_by_id(c: &Connection, id: i64) -> Result<Item, DbError> {
    c.query_row(
        &format!("SELECT {ITEM_COLUMNS} FROM items i WHERE i.id = ?1"),
        [id],
        item_from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

fn visible_item(c: &Connection, user: &str, id: i64) -> Result<Item, DbError> {
    c.query_row(
        &format!(
            "SELECT {ITEM_COLUMNS} FROM items i JOIN members m ON m.calendar_id = i.calendar_id
             WHERE i.id = ?1 AND m.user = ?2"
        ),
        params![id, user],
        item_from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

fn require_member(c: &Connection, user: &str, calendar_id: i64) -> Result<(), DbError> {
    let member: Option<i64> = c
        .query_row(
            "SELECT 1 FROM members WHERE user = ?1 AND calendar_id = ?2",
            params![user, calendar_id],
            |r| r.get(0),
        )
        .optional()?;
    member.map(|_| ()).ok_or(DbError::Forbidden(calendar_id))
}

#[cfg(test)]
mod tests;
