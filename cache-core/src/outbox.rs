//! The transactional outbox: a committed write's invalidation survives a
//! crash of its writer.
//!
//! `RangeCache`'s retry queue keeps a failed bump in the writer's
//! memory and retries it: that survives a frozen or unreachable cache, not
//! a writer that dies between its commit and its bump. For that the change
//! must be durable with the write itself, which only the application's
//! database can do (Meta's memcache drives invalidations from the
//! database's commit log, "mcsqueal", NSDI'13, for the same reason). So:
//!
//! 1. **In the write's transaction**, the application stores the change
//!    in an outbox table: one row, its [stored form](encode) a short
//!    string. It commits or rolls back with the write.
//! 2. **After the commit**, it ends the write through
//!    [`RangeCache::end_recorded_write`](crate::RangeCache::end_recorded_write)
//!    with the row's id: when the bump succeeds the row is deleted
//!    ([`Outbox::done`]); when it fails the change is pending in this
//!    process, retried, and the row deleted once a retry succeeds.
//! 3. **Every process runs a relay**
//!    ([`RangeCache::outbox_relay`](crate::RangeCache::outbox_relay)) that
//!    polls the outbox every [`outbox_poll`](crate::CacheOptions::outbox_poll)
//!    for rows older than [`outbox_grace`](crate::CacheOptions::outbox_grace),
//!    applies each (with `end_write`, which also lifts a fence the crashed
//!    writer left open) and deletes it. Younger rows are left to their
//!    writer, which is normally done with them within a round trip.
//!
//! The library defines what it needs and nothing about the database: the
//! [`Outbox`] trait (three calls), the row ([`OutboxRow`]) and the stored
//! form of a change ([`encode`]; the relay decodes it). A SQL implementation is a
//! table like
//!
//! ```sql
//! CREATE TABLE cache_outbox (
//!     id          INTEGER PRIMARY KEY,   -- OutboxId
//!     record      TEXT NOT NULL,         -- outbox::encode(&change)
//!     recorded_ms INTEGER NOT NULL,      -- when the write recorded it
//!     error       TEXT                   -- set by quarantine
//! );
//! ```
//!
//! and `examples/calendar-service/src/outbox.rs` is one on SQLite.
//!
//! # The bound, and its cost
//!
//! - A writer that crashes after its commit leaves its row; the first
//!   relay to poll after the row is `outbox_grace` old applies it. So the
//!   crash leaves stale reads (for strategies without a fence; `stamped`'s
//!   open fence makes every process bypass the scope meanwhile) for at
//!   most `outbox_grace + outbox_poll` (+ the poll's round trips), and
//!   none after.
//! - A frozen cache: the writer's own retries usually apply the change
//!   first (within [`bump_retry_max`](crate::CacheOptions::bump_retry_max)
//!   of the server's return); relays that reach a row first apply it too.
//! - A change may be applied more than once (a relay and its writer, two
//!   relays): at-least-once. A second bump costs one miss per entry of the
//!   scope, never a stale read.
//! - When nothing fails the outbox costs the write's transaction one
//!   `INSERT`, and one `DELETE` after the bump; no cache round trip.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;

use crate::error::BoxError;
use crate::view::{Change, Scope, TimeRange};

/// The id of an outbox row (an SQL `INTEGER PRIMARY KEY`).
pub type OutboxId = i64;

/// One row the relay should apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxRow {
    /// The row's id.
    pub id: OutboxId,
    /// The change, as [`encode`] wrote it.
    pub record: String,
}

impl OutboxRow {
    /// A row (for implementations of [`Outbox::due`]).
    pub fn new(id: OutboxId, record: impl Into<String>) -> Self {
        OutboxRow {
            id,
            record: record.into(),
        }
    }
}

/// The application's outbox table, as the relay uses it. Rows are written
/// by the application itself, inside each write's transaction (with
/// [`encode`]); see the [module docs](self).
///
/// # Contract
///
/// - [`due`](Self::due) returns rows recorded at least `older_than` ago,
///   by the clock the rows were recorded with (the database's or the
///   application's, never the cache's), oldest first, at most `limit`,
///   never a quarantined row.
/// - [`done`](Self::done) deletes the row; an unknown id (another relay
///   deleted it) is not an error.
/// - [`quarantine`](Self::quarantine) keeps the row but stops returning it
///   from `due` (so a row nobody can decode does not block the others, and
///   nothing stored is lost).
/// - Errors are the database's; the relay logs them and tries again at
///   its next poll.
#[async_trait]
pub trait Outbox: Send + Sync + fmt::Debug + 'static {
    /// Rows recorded at least `older_than` ago, oldest first, at most
    /// `limit`.
    async fn due(&self, older_than: Duration, limit: usize) -> Result<Vec<OutboxRow>, BoxError>;

    /// The change of row `id` reached the cache: delete the row.
    async fn done(&self, id: OutboxId) -> Result<(), BoxError>;

    /// Row `id` does not decode (`reason` says why): set it aside.
    async fn quarantine(&self, id: OutboxId, reason: &str) -> Result<(), BoxError>;
}

/// Version tag that starts every stored change.
const TAG: &str = "c1";
/// Separates the fields of a stored change.
const SEP: char = '|';
/// Separates a range's two ends.
const RANGE_SEP: char = '/';
/// The longest stored change the relay decodes: far above any real
/// change (a scope name and a few ranges), far below what would hurt.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Most ranges one stored change may hold.
pub const MAX_RECORD_RANGES: usize = 1024;

/// Why a stored change did not decode: what, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbox record, byte {at}: {reason}")]
#[non_exhaustive]
pub(crate) struct RecordError {
    /// Byte offset in the record where the problem is.
    pub at: usize,
    /// What is wrong.
    pub reason: String,
}

fn bad(at: usize, reason: impl Into<String>) -> RecordError {
    RecordError {
        at,
        reason: reason.into(),
    }
}

/// The stored form of `change`: `c1|<scope>|<start>/<end>|…`, the scope
/// percent-escaped (`%`, `|`, `/` and control characters), each range's
/// ends in RFC 3339 with the offsets they were given.
///
/// ```
/// use cache_core::outbox::encode;
/// use cache_core::{Change, Scope, TimeRange};
/// let day = TimeRange::new(
///     "2025-10-15T00:00:00+08:00".parse().unwrap(),
///     "2025-10-16T00:00:00+08:00".parse().unwrap(),
/// )
/// .unwrap();
/// let change = Change::new(Scope::new("cal:1").unwrap(), [day]).unwrap();
/// let record = encode(&change);
/// assert_eq!(record, "c1|cal:1|2025-10-15T00:00:00+08:00/2025-10-16T00:00:00+08:00");
/// ```
pub fn encode(change: &Change) -> String {
    let mut out = String::with_capacity(8 + change.scope.as_str().len() + 52 * change.ranges.len());
    out.push_str(TAG);
    out.push(SEP);
    for c in change.scope.as_str().chars() {
        if c == '%' || c == SEP || c == RANGE_SEP || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    for r in &change.ranges {
        out.push(SEP);
        out.push_str(&r.start().to_rfc3339());
        out.push(RANGE_SEP);
        out.push_str(&r.end().to_rfc3339());
    }
    out
}

/// The change [`encode`] stored in `record`; a clear error (what, at which
/// byte) for anything else, without panicking or allocating more than the
/// record's size (a reversed range, for example, is an error at its byte 9:
/// see the tests).
pub(crate) fn decode(record: &str) -> Result<Change, RecordError> {
    if record.len() > MAX_RECORD_BYTES {
        return Err(bad(
            MAX_RECORD_BYTES,
            format!("{} bytes, over the limit of {MAX_RECORD_BYTES}", record.len()),
        ));
    }
    let mut fields = record.split(SEP);
    let mut at = 0;
    let tag = fields.next().unwrap_or_default();
    if tag != TAG {
        return Err(bad(0, format!("expected the version tag {TAG:?}, found {tag:?}")));
    }
    at += tag.len() + 1;
    let raw_scope = fields.next().ok_or_else(|| bad(at, "no scope"))?;
    let scope = Scope::new(unescape(raw_scope, at)?).map_err(|_| bad(at, "empty scope"))?;
    at += raw_scope.len() + 1;
    let mut ranges = Vec::new();
    for field in fields {
        if ranges.len() == MAX_RECORD_RANGES {
            return Err(bad(at, format!("more than {MAX_RECORD_RANGES} ranges")));
        }
        let (start, end) = field
            .split_once(RANGE_SEP)
            .ok_or_else(|| bad(at, format!("a range is <start>{RANGE_SEP}<end>, found {field:?}")))?;
        let instant = |s: &str, offset: usize| {
            DateTime::parse_from_rfc3339(s).map_err(|e| bad(offset, format!("{s:?} is not an RFC 3339 instant: {e}")))
        };
        let range = TimeRange::new(instant(start, at)?, instant(end, at + start.len() + 1)?)
            .map_err(|_| bad(at, "a range needs start < end"))?;
        ranges.push(range);
        at += field.len() + 1;
    }
    Change::new(scope, ranges).map_err(|_| bad(at, "a change needs at least one range"))
}

/// Undoes [`encode`]'s escaping of a scope that starts at byte `at`.
fn unescape(s: &str, at: usize) -> Result<String, RecordError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(at + i, "`%` must be followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| bad(at + e.utf8_error().valid_up_to(), "the escaped scope is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn change(scope: &str, ranges: &[(&str, &str)]) -> Change {
        Change::new(
            Scope::new(scope).unwrap(),
            ranges.iter().map(|(a, b)| {
                TimeRange::new(
                    DateTime::parse_from_rfc3339(a).unwrap(),
                    DateTime::parse_from_rfc3339(b).unwrap(),
                )
                .unwrap()
            }),
        )
        .unwrap()
    }

    #[test]
    fn awkward_scopes_and_several_ranges_round_trip() {
        let c = change(
            "team|a/b%c\n✓",
            &[
                ("2025-10-15T00:00:00+08:00", "2025-10-16T00:00:00+08:00"),
                ("2025-12-10T10:00:00Z", "2025-12-10T11:00:00.5-05:00"),
            ],
        );
        let record = encode(&c);
        assert!(record.starts_with("c1|team%7Ca%2Fb%25c%0A✓|"), "{record}");
        assert_eq!(decode(&record).unwrap(), c);
    }

    #[test]
    fn bad_records_name_what_and_where() {
        let cases: [(&str, usize, &str); 10] = [
            ("", 0, "version tag"),
            ("c2|cal:1|2025-10-15T00:00:00Z/2025-10-16T00:00:00Z", 0, "version tag"),
            ("c1", 3, "no scope"),
            ("c1||2025-10-15T00:00:00Z/2025-10-16T00:00:00Z", 3, "empty scope"),
            ("c1|cal:1", 9, "at least one range"),
            ("c1|ca%4|2025-10-15T00:00:00Z/2025-10-16T00:00:00Z", 5, "two hex digits"),
            ("c1|cal:1|2025-10-15T00:00:00Z", 9, "<start>/<end>"),
            ("c1|cal:1|2025-10-15T00:00:00Z/tomorrow", 30, "RFC 3339"),
            ("c1|%FF|2025-10-15T00:00:00Z/2025-10-16T00:00:00Z", 3, "UTF-8"),
            ("c1|cal:1|2025-10-16T00:00:00Z/2025-10-15T00:00:00Z", 9, "start < end"),
        ];
        for (record, at, reason) in cases {
            let e = decode(record).unwrap_err();
            assert_eq!(e.at, at, "{record:?}: {e}");
            assert!(e.reason.contains(reason), "{record:?}: {e}");
        }
        let huge = format!("c1|{}", "x".repeat(MAX_RECORD_BYTES));
        assert!(decode(&huge).unwrap_err().reason.contains("over the limit"));
        let many = format!(
            "c1|s{}",
            "|2025-10-15T00:00:00Z/2025-10-16T00:00:00Z".repeat(MAX_RECORD_RANGES + 1)
        );
        assert!(decode(&many).unwrap_err().reason.contains("more than"));
    }

    proptest! {
        #[test]
        fn any_input_decodes_or_errs_without_panicking(s in ".{0,200}") {
            let _ = decode(&s);
        }

        #[test]
        fn any_scope_round_trips(scope in ".{1,40}", start in 0i64..4_000_000_000, len in 1i64..10_000_000) {
            let a = DateTime::from_timestamp(start, 0).unwrap().fixed_offset();
            let b = DateTime::from_timestamp(start + len, 0).unwrap().fixed_offset();
            let c = Change::new(Scope::new(scope).unwrap(), [TimeRange::new(a, b).unwrap()]).unwrap();
            prop_assert_eq!(decode(&encode(&c)).unwrap(), c);
        }
    }
}
