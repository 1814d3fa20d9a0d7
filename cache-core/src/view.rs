//! The vocabulary of range-keyed caching, generic beyond calendars.
//!
//! - A [`Scope`] is the unit of invalidation: the thing whose data changes
//!   (a calendar, a team's timeline). A strategy invalidates the scope an item
//!   *belongs to*, not the user who wrote it (see the `shared-calendar`
//!   hazard).
//! - A [`View`] is a query over one or more scopes with a half-open time range
//!   `[start, end)` and extra parameters (filters, the client's time zone):
//!   one feed response, one cache entry.
//! - A [`Change`] names the scope and the time ranges a write touched (for an
//!   edit that moves an item: the old *and* the new dates).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A unit of invalidation, e.g. `cal:7`. Non-empty; any characters (they are
/// encoded when built into keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// A scope named `name`; empty names are rejected.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::InvalidKey {
                key: name,
                reason: "a scope name must not be empty",
            });
        }
        Ok(Scope(name))
    }

    /// The scope's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A half-open time range `[start, end)`, as clients send it: each end keeps
/// the UTC offset it was written with (`+08:00`, `Z`), because clients that
/// send different offsets for the same instant produce different cache keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
}

impl TimeRange {
    /// `[start, end)`; `start` must be before `end`.
    pub fn new(start: DateTime<FixedOffset>, end: DateTime<FixedOffset>) -> Result<Self> {
        if start >= end {
            return Err(Error::InvalidKey {
                key: format!("{}..{}", start.to_rfc3339(), end.to_rfc3339()),
                reason: "a time range must have start < end",
            });
        }
        Ok(TimeRange { start, end })
    }

    /// Inclusive start.
    pub fn start(&self) -> DateTime<FixedOffset> {
        self.start
    }

    /// Exclusive end.
    pub fn end(&self) -> DateTime<FixedOffset> {
        self.end
    }

    /// True when the two ranges share at least one instant.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// True when `other` lies entirely inside `self`.
    pub fn contains(&self, other: &TimeRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// One cacheable query: scopes × time range × parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct View {
    /// Scopes whose items the view shows, in a canonical (sorted, deduplicated)
    /// order so that equal views derive equal keys.
    pub scopes: Vec<Scope>,
    /// The requested range.
    pub range: TimeRange,
    /// Extra query parameters that are part of the cache key (filters such as
    /// `work_type`, `status`; the client's `timeZone`). Absent = "all"/none.
    pub params: BTreeMap<String, String>,
}

impl View {
    /// A view of `scopes` over `range` with no parameters. Scopes are sorted
    /// and deduplicated; at least one is required.
    pub fn new(scopes: impl IntoIterator<Item = Scope>, range: TimeRange) -> Result<Self> {
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(Error::InvalidKey {
                key: String::new(),
                reason: "a view needs at least one scope",
            });
        }
        Ok(View {
            scopes,
            range,
            params: BTreeMap::new(),
        })
    }

    /// Adds a parameter (builder style).
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }
}

/// What a committed write touched: one scope, and the ranges (old and new
/// dates of an edited item; the dates of a created or deleted one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The scope the item belongs to.
    pub scope: Scope,
    /// Every range the write touched; never empty.
    pub ranges: Vec<TimeRange>,
}

impl Change {
    /// A change of `scope` touching `ranges` (at least one).
    pub fn new(scope: Scope, ranges: impl IntoIterator<Item = TimeRange>) -> Result<Self> {
        let ranges: Vec<TimeRange> = ranges.into_iter().collect();
        if ranges.is_empty() {
            return Err(Error::InvalidKey {
                key: scope.to_string(),
                reason: "a change must touch at least one time range",
            });
        }
        Ok(Change { scope, ranges })
    }
}
