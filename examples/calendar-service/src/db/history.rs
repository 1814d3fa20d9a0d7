//! The commit log: one row per committed write, written inside the write's
//! own transaction, so the rows' order is the commit order.
//!
//! Writes take SQLite's write lock when they begin (`BEGIN IMMEDIATE`), so
//! they are serialised across every process on the file, and `seq` (an
//! `AUTOINCREMENT` key, never reused) numbers them in the order they
//! committed. Each row holds the item as the write left it (nothing for a
//! delete) and the instant just before `COMMIT` was issued; the write's
//! caller also learns the instant just after `COMMIT` returned
//! ([`Commit`]). Between the two the write became visible: that bracket is
//! what lets a checker decide, for a response, which writes had certainly
//! committed before its request started (the load tool's judge,
//! `load::judge`).
//!
//! An audit log like this is common in real services; here it costs one
//! `INSERT` per write.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::NaiveDate;
use rusqlite::{params, Connection};

use super::{DbError, Item};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS item_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL,
    op TEXT NOT NULL,
    calendar_id INTEGER,
    title TEXT,
    work_type TEXT,
    status TEXT,
    start TEXT,
    end TEXT,
    before_commit_us INTEGER NOT NULL
);
";

/// Microseconds since the Unix epoch on the system clock (`CLOCK_REALTIME`,
/// the same clock for every process on the host).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// When a write committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Its place in the commit order (1, 2, …; gaps where a transaction
    /// rolled back after recording).
    pub seq: i64,
    /// Just before `COMMIT` was issued (µs since the epoch): the write was
    /// not yet visible.
    pub before_us: i64,
    /// Just after `COMMIT` returned (µs since the epoch): the write was
    /// visible to every new read.
    pub after_us: i64,
}

/// What a write did, as the commit log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// `POST /api/items`.
    Create,
    /// `PUT /api/items/{id}`.
    Update,
    /// `DELETE /api/items/{id}`.
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One row of the commit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Commit order.
    pub seq: i64,
    /// The item written.
    pub item_id: i64,
    /// What the write did.
    pub op: Op,
    /// The item after the write; `None` after a delete.
    pub item: Option<Item>,
    /// Just before `COMMIT` (µs since the epoch).
    pub before_commit_us: i64,
}

/// Records a write of `item_id` (leaving `item`, `None` for a delete) as
/// the last statement of the open transaction on `c`; returns its `seq`
/// and the instant taken just before it.
pub(super) fn record(c: &Connection, op: Op, item_id: i64, item: Option<&Item>) -> Result<(i64, i64), DbError> {
    let before = now_us();
    c.execute(
        "INSERT INTO item_history (item_id, op, calendar_id, title, work_type, status, start, end, before_commit_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            item_id,
            op.as_str(),
            item.map(|i| i.calendar_id),
            item.map(|i| i.title.as_str()),
            item.map(|i| i.work_type.as_str()),
            item.map(|i| i.status.as_str()),
            item.map(|i| i.start.to_string()),
            item.map(|i| i.end.to_string()),
            before
        ],
    )?;
    Ok((c.last_insert_rowid(), before))
}

/// Every row of the commit log, in commit order.
pub(super) fn read_all(c: &Connection) -> Result<Vec<Entry>, DbError> {
    let mut st = c.prepare(
        "SELECT seq, item_id, op, calendar_id, title, work_type, status, start, end, before_commit_us
         FROM item_history ORDER BY seq",
    )?;
    let rows = st.query_map([], |r| {
        let op: String = r.get(2)?;
        let date = |i: usize| -> rusqlite::Result<Option<NaiveDate>> {
            let s: Option<String> = r.get(i)?;
            s.map(|s| {
                s.parse()
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
            })
            .transpose()
        };
        let item_id: i64 = r.get(1)?;
        let calendar: Option<i64> = r.get(3)?;
        let item = match (calendar, date(7)?, date(8)?) {
            (Some(calendar_id), Some(start), Some(end)) => Some(Item {
                id: item_id,
                calendar_id,
                title: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                work_type: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                status: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                start,
                end,
            }),
            _ => None,
        };
        Ok(Entry {
            seq: r.get(0)?,
            item_id,
            op: match op.as_str() {
                "create" => Op::Create,
                "delete" => Op::Delete,
                _ => Op::Update,
            },
            item,
            before_commit_us: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
