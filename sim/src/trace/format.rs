//! The trace's data: the header, the events, and the documented bounds every
//! value read from a file must respect (`sim/TRACE_FORMAT.md` lists them).
//!
//! The bounds exist so that nothing the simulator allocates grows with a
//! number taken from the input: a header declaring 10⁸ processes or an event
//! a million years after the start is an error naming its line, not a
//! multi-gigabyte allocation.

use cache_core::View;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::calendar::to_wire;
use crate::db::{Write, STATUSES, WORK_TYPES};

/// The `format` value of a trace header.
pub const FORMAT_NAME: &str = "cache-sim-trace";
/// The trace format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// View parameters the simulator carries from the wire into the cache key.
pub const VIEW_PARAMS: [&str; 3] = ["timeZone", "work_type", "status"];

/// Most app processes a trace may declare. Each process has its own store
/// and per-process state in a replay, so this bounds memory.
pub const MAX_PROCESSES: u32 = 1024;

/// Longest span a trace may cover: 3,660 days (ten years and change), in µs.
/// The simulator keeps per-minute statistics over the span, and start +
/// `t_us` must stay a representable instant.
pub const MAX_T_US: u64 = 3_660 * 86_400 * 1_000_000;

/// Longest scope name, in bytes. Cache keys are built from scope names and
/// must stay under [`cache_core::key::MAX_KEY_BYTES`]; a longer name would
/// make every request of its view skip the cache.
pub const MAX_SCOPE_BYTES: usize = 256;

/// Most bytes of scope names one view may hold (the sum over its scopes),
/// for the same reason as [`MAX_SCOPE_BYTES`]: the key holds all of them.
pub const MAX_VIEW_SCOPE_BYTES: usize = 4096;

/// Longest line a trace or access log may hold, in bytes. Lines are read
/// whole; a file without newlines must not be read into memory at once.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Where an event was read from: its 1-based line in a trace or access log,
/// 0 for events that were generated, not read.
///
/// Every `LineNo` compares equal to every other: where an event was read does
/// not change what it is, so a generated event equals the same event read
/// back from a trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineNo(pub u64);

impl LineNo {
    /// The line of an event that was not read from a file.
    pub const GENERATED: LineNo = LineNo(0);
}

impl PartialEq for LineNo {
    fn eq(&self, _other: &LineNo) -> bool {
        true
    }
}

impl Eq for LineNo {}

/// The first line of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// Virtual time of `t_us = 0`, as RFC 3339 (e.g. `2025-10-06T09:00:00Z`).
    pub start: DateTime<Utc>,
    /// Number of app processes requests are spread over,
    /// `1..=`[`MAX_PROCESSES`].
    pub processes: u32,
    /// Scenario that produced the trace, if any.
    pub scenario: Option<String>,
    /// Seed that produced the trace, if any.
    pub seed: Option<u64>,
}

impl Header {
    /// A header starting at `start` with `processes` app processes (clamped
    /// to `1..=`[`MAX_PROCESSES`]; callers taking the count from a user check
    /// it first and name the option).
    pub fn new(start: DateTime<Utc>, processes: u32) -> Self {
        Header {
            start,
            processes: processes.clamp(1, MAX_PROCESSES),
            scenario: None,
            seed: None,
        }
    }

    /// Sets the scenario name and seed (builder style).
    #[must_use]
    pub fn with_origin(mut self, scenario: impl Into<String>, seed: u64) -> Self {
        self.scenario = Some(scenario.into());
        self.seed = Some(seed);
        self
    }

    /// Virtual start time in µs since the epoch.
    pub fn start_us(&self) -> i64 {
        self.start.timestamp_micros()
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("format".into(), FORMAT_NAME.into());
        m.insert("version".into(), FORMAT_VERSION.into());
        m.insert(
            "start".into(),
            self.start.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
        );
        m.insert("processes".into(), self.processes.into());
        if let Some(s) = &self.scenario {
            m.insert("scenario".into(), s.clone().into());
        }
        if let Some(s) = self.seed {
            m.insert("seed".into(), s.into());
        }
        Value::Object(m)
    }
}

/// One thing that happens in a simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A FullCalendar feed request.
    Read {
        /// µs after the trace start, at most [`MAX_T_US`].
        t_us: u64,
        /// App process that serves it.
        process: u32,
        /// The requesting user (informational).
        user: u64,
        /// The user's browser tab (informational).
        tab: u32,
        /// What is requested.
        view: View,
        /// Where it was read from.
        line: LineNo,
    },
    /// A write committed by the app, followed by the strategy's invalidation.
    Write {
        /// µs after the trace start, at most [`MAX_T_US`].
        t_us: u64,
        /// App process that commits it (and runs the invalidation).
        process: u32,
        /// The writing user (informational).
        user: u64,
        /// The write.
        write: Write,
        /// Where it was read from.
        line: LineNo,
    },
    /// The cache loses the strategy's control keys (generations) for `view`:
    /// eviction under memory pressure, a restart of the version store.
    EvictControl {
        /// µs after the trace start, at most [`MAX_T_US`].
        t_us: u64,
        /// Process whose cache loses them.
        process: u32,
        /// The view whose control keys are lost.
        view: View,
        /// Where it was read from.
        line: LineNo,
    },
}

impl Event {
    /// µs after the trace start.
    pub fn t_us(&self) -> u64 {
        match self {
            Event::Read { t_us, .. } | Event::Write { t_us, .. } | Event::EvictControl { t_us, .. } => *t_us,
        }
    }

    /// The app process the event happens on.
    pub fn process(&self) -> u32 {
        match self {
            Event::Read { process, .. } | Event::Write { process, .. } | Event::EvictControl { process, .. } => {
                *process
            }
        }
    }

    /// The 1-based line of the file the event was read from; 0 when it was
    /// generated. Errors about the event (an edit of an item that does not
    /// exist) name this line.
    pub fn line(&self) -> u64 {
        match self {
            Event::Read { line, .. } | Event::Write { line, .. } | Event::EvictControl { line, .. } => line.0,
        }
    }

    /// The JSON Lines form.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let view_fields = |m: &mut Map<String, Value>, view: &View| {
            m.insert(
                "scopes".into(),
                Value::Array(view.scopes.iter().map(|s| Value::from(s.as_str())).collect()),
            );
            let (s, e) = to_wire(&view.range, view.params.get("timeZone").map(String::as_str));
            m.insert("start".into(), s.into());
            m.insert("end".into(), e.into());
            for p in VIEW_PARAMS {
                if let Some(v) = view.params.get(p) {
                    m.insert(p.into(), v.clone().into());
                }
            }
        };
        match self {
            Event::Read {
                t_us,
                process,
                user,
                tab,
                view,
                line: _,
            } => {
                m.insert("t_us".into(), (*t_us).into());
                m.insert("type".into(), "read".into());
                m.insert("process".into(), (*process).into());
                m.insert("user".into(), (*user).into());
                m.insert("tab".into(), (*tab).into());
                view_fields(&mut m, view);
            }
            Event::Write {
                t_us,
                process,
                user,
                write,
                line: _,
            } => {
                m.insert("t_us".into(), (*t_us).into());
                m.insert("type".into(), write.kind.as_str().into());
                m.insert("process".into(), (*process).into());
                m.insert("user".into(), (*user).into());
                m.insert("item".into(), write.item.into());
                m.insert("scope".into(), write.scope.clone().into());
                if let Some(s) = &write.state {
                    m.insert("start".into(), fmt_us(s.start_us).into());
                    m.insert("end".into(), fmt_us(s.end_us).into());
                    m.insert("work_type".into(), WORK_TYPES[usize::from(s.work_type) % 5].into());
                    m.insert("status".into(), STATUSES[usize::from(s.status) % 5].into());
                }
            }
            Event::EvictControl {
                t_us,
                process,
                view,
                line: _,
            } => {
                m.insert("t_us".into(), (*t_us).into());
                m.insert("type".into(), "evict_control".into());
                m.insert("process".into(), (*process).into());
                view_fields(&mut m, view);
            }
        }
        Value::Object(m)
    }
}

fn fmt_us(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// A stream of events, in time order.
pub type EventIter = Box<dyn Iterator<Item = Result<Event, crate::Error>> + Send>;

/// A header and its events.
pub struct Source {
    /// The trace's header.
    pub header: Header,
    /// The events.
    pub events: EventIter,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}
