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
        let result = self.call(move |c| {
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
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn range(q: &str) -> TimeRange {
        cache_core::fullcalendar::FeedQuery::parse(q, &[]).unwrap().range()
    }

    #[test]
    fn shown_days_follow_the_clients_offset() {
        assert_eq!(
            shown_days(range(
                "start=2025-09-29T00:00:00%2B08:00&end=2025-11-10T00:00:00%2B08:00"
            )),
            (d("2025-09-29"), d("2025-11-10"))
        );
        // An end at 12:00 still shows that day.
        assert_eq!(
            shown_days(range("start=2025-10-01T00:00:00Z&end=2025-10-02T12:00:00Z")),
            (d("2025-10-01"), d("2025-10-03"))
        );
    }

    #[tokio::test]
    async fn feed_overlaps_filters_and_sharing() {
        let db = Db::open(None).unwrap();
        let oct = range("start=2025-09-29T00:00:00Z&end=2025-11-10T00:00:00Z");
        let titles = |rows: Vec<(Item, Calendar)>| rows.into_iter().map(|(i, _)| i.title).collect::<Vec<_>>();
        let alice = db.calendars_of("alice").await.unwrap();
        let ids: Vec<i64> = alice.iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 3]);
        let all = titles(db.feed(&ids, oct, FeedFilter::default()).await.unwrap());
        assert!(all.contains(&"Design review".to_owned()) && !all.contains(&"Invoice export".to_owned()));
        let bugs = FeedFilter {
            work_type: Some("bug"),
            status: None,
        };
        let bugs = titles(db.feed(&ids, oct, bugs).await.unwrap());
        assert_eq!(bugs, ["Fix login redirect", "Calendar cache bug"]);
        // One day: the item ending (exclusive) on 2025-10-09 shows on the
        // 8th, not on the 9th.
        let eighth = range("start=2025-10-08T00:00:00Z&end=2025-10-09T00:00:00Z");
        let ninth = range("start=2025-10-09T00:00:00Z&end=2025-10-10T00:00:00Z");
        assert_eq!(
            titles(db.feed(&[3], eighth, FeedFilter::default()).await.unwrap()),
            ["Design review"]
        );
        assert!(db.feed(&[3], ninth, FeedFilter::default()).await.unwrap().is_empty());
        assert!(matches!(db.calendars_of("mallory").await, Err(DbError::UnknownUser(_))));
    }

    fn none() -> BeforeCommit {
        Box::new(|_, _| {})
    }

    /// Two handles on one file (two processes' connections) writing at
    /// once: every write commits (WAL, busy timeout, `BEGIN IMMEDIATE`:
    /// none fails with `SQLITE_BUSY`), and the commit log numbers them in
    /// one order, each bracket after the previous one's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_share_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calendar.db");
        let (a, b) = (Db::open(Some(&path)).unwrap(), Db::open(Some(&path)).unwrap());
        let input = |n: usize| ItemInput {
            calendar_id: 3,
            title: format!("write {n}"),
            work_type: "chore".into(),
            status: "open".into(),
            start: d("2025-10-27"),
            end: d("2025-10-29"),
        };
        let writer = |db: Db, from: usize| async move {
            for n in from..from + 40 {
                db.create("alice", input(n), none()).await.unwrap();
            }
        };
        let (x, y) = tokio::join!(tokio::spawn(writer(a.clone(), 0)), tokio::spawn(writer(b.clone(), 100)));
        x.unwrap();
        y.unwrap();
        let log = b.history().await.unwrap();
        assert_eq!(log.len(), 80);
        assert!(log
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].before_commit_us <= w[1].before_commit_us));
        let mode: String = a
            .conn
            .lock()
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// `shows` and `feed_order` are the feed query's condition and order in
    /// Rust: on every item of a month of varied items, filters and client
    /// offsets, they select and order exactly what the SQL does.
    #[tokio::test]
    async fn shows_agrees_with_the_feed_query() {
        let db = Db::open(None).unwrap();
        let mut items = Vec::new();
        for n in 0..60u32 {
            let start = d("2025-09-25") + chrono::Days::new(u64::from(n % 40));
            let input = ItemInput {
                calendar_id: 1 + i64::from(n % 3),
                title: format!("item {n}"),
                work_type: WORK_TYPES[(n % 3) as usize].to_owned(),
                status: STATUSES[(n / 3 % 3) as usize].to_owned(),
                start,
                end: start + chrono::Days::new(1 + u64::from(n % 4)),
            };
            let user = if input.calendar_id == 2 { "bob" } else { "alice" };
            items.push(db.create(user, input, none()).await.unwrap().0);
        }
        let all: Vec<Item> = {
            let c = db.conn.lock().unwrap();
            let mut st = c.prepare(&format!("SELECT {ITEM_COLUMNS} FROM items i")).unwrap();
            st.query_map([], item_from_row).unwrap().map(Result::unwrap).collect()
        };
        for query in [
            "start=2025-09-29T00:00:00%2B08:00&end=2025-11-10T00:00:00%2B08:00",
            "start=2025-10-05T00:00:00-04:00&end=2025-10-12T00:00:00-04:00",
            "start=2025-10-08T00:00:00Z&end=2025-10-09T00:00:00Z",
            "start=2025-10-08T00:00:00Z&end=2025-10-09T12:00:00Z",
        ] {
            let days = shown_days(range(query));
            for (work_type, status) in [
                (None, None),
                (Some("bug"), None),
                (None, Some("done")),
                (Some("chore"), Some("open")),
            ] {
                let filter = FeedFilter { work_type, status };
                let sql: Vec<Item> = db
                    .feed(&[1, 2, 3], range(query), filter.clone())
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(i, _)| i)
                    .collect();
                let mut rust: Vec<Item> = all.iter().filter(|i| shows(i, days, &filter)).cloned().collect();
                rust.sort_by(feed_order);
                assert_eq!(sql, rust, "{query} {filter:?}");
                assert!(
                    !sql.is_empty() || work_type.is_some(),
                    "{query}: a check that selects nothing proves little"
                );
            }
        }
        assert!(items.len() == 60);
    }

    #[tokio::test]
    async fn writes_check_membership_and_return_old_and_new() {
        let db = Db::open(None).unwrap();
        let input = ItemInput {
            calendar_id: 3,
            title: " Offsite ".into(),
            work_type: "chore".into(),
            status: "open".into(),
            start: d("2025-10-27"),
            end: d("2025-10-29"),
        };
        let (created, first) = db.create("bob", input.clone(), none()).await.unwrap();
        assert_eq!(created.title, "Offsite");
        // Alice shares the Team calendar: she sees Bob's item.
        assert_eq!(db.item("alice", created.id).await.unwrap(), created);
        // Bob may not write into Alice's calendar, nor see her items.
        let into_alice = ItemInput {
            calendar_id: 1,
            ..input.clone()
        };
        assert!(matches!(
            db.create("bob", into_alice, none()).await,
            Err(DbError::Forbidden(1))
        ));
        assert!(matches!(db.item("bob", 2).await, Err(DbError::NotFound)));
        let moved = ItemInput {
            start: d("2025-11-03"),
            end: d("2025-11-04"),
            ..input.clone()
        };
        let (old, new, second) = db.update("alice", created.id, moved, none()).await.unwrap();
        assert_eq!((old.start, new.start), (d("2025-10-27"), d("2025-11-03")));
        let (gone, third) = db.delete("alice", created.id, none()).await.unwrap();
        assert_eq!(gone, new);
        // The commit log: every committed write, in commit order, bracketed
        // by the instants around its COMMIT; refused writes left nothing.
        let log = db.history().await.unwrap();
        let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [first.seq, second.seq, third.seq]);
        assert_eq!(
            log.iter().map(|e| e.op).collect::<Vec<_>>(),
            [Op::Create, Op::Update, Op::Delete]
        );
        assert_eq!(log[0].item.as_ref(), Some(&created));
        assert_eq!(log[1].item.as_ref(), Some(&new));
        assert_eq!(log[2].item, None);
        for (entry, commit) in log.iter().zip([first, second, third]) {
            assert_eq!(entry.before_commit_us, commit.before_us);
            assert!(commit.before_us <= commit.after_us);
        }
        assert!(first.after_us <= second.before_us && second.after_us <= third.before_us);
        assert!(matches!(db.item("alice", created.id).await, Err(DbError::NotFound)));
        let backwards = ItemInput {
            end: d("2025-10-01"),
            ..input
        };
        assert!(matches!(
            db.create("bob", backwards, none()).await,
            Err(DbError::Invalid(_))
        ));
    }
}
