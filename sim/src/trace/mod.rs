//! Traces: the events a simulation replays, their JSON Lines form (see
//! `sim/TRACE_FORMAT.md`), a streaming reader with line-numbered errors, and
//! an importer for plain web-server access logs.
//!
//! Readers are iterators, so a trace larger than memory replays in memory
//! bounded by the events in flight, not by the file. Every value read is
//! checked against a documented bound ([`MAX_PROCESSES`], [`MAX_T_US`],
//! [`MAX_SCOPE_BYTES`], [`MAX_LINE_BYTES`], …) before anything is sized by it.
//!
//! # Layout
//!
//! - `format`: the header, the events, the bounds;
//! - `lines`: bounded, UTF-8-checked line reading with line numbers;
//! - `fields`: the one line parser, typed field access with errors naming
//!   file, line and field;
//! - `reader`: the header check and the streaming event reader;
//! - `writer`: writing a trace;
//! - `access_log`: importing a Common/Combined Log Format access log (reads,
//!   and writes by route), lenient with per-reason skip counts;
//! - `routes`: the method + path patterns that make a logged request a write.

mod access_log;
mod fields;
mod format;
mod lines;
mod reader;
pub mod routes;
mod writer;

pub use access_log::{
    looks_like_access_log, open_access_log, open_access_log_with, reason, scan_access_log, AccessLogOptions,
    AccessLogSummary, ScopeFrom, SkipCount,
};
pub use format::{
    Event, EventIter, Header, LineNo, Source, FORMAT_NAME, FORMAT_VERSION, MAX_LINE_BYTES, MAX_PROCESSES,
    MAX_SCOPE_BYTES, MAX_T_US, MAX_VIEW_SCOPE_BYTES, VIEW_PARAMS,
};
pub use reader::{open_trace, TraceReader};
pub use writer::write_trace;

/// Entry points for the property tests (`sim/tests/trace_fuzz.rs`): parse
/// one line without a file. Not a stable API.
#[doc(hidden)]
pub mod parse {
    use std::path::Path;

    use super::format::{Event, Header};
    use crate::error::Result;

    /// Parses `text` as a header line.
    pub fn header(text: &str) -> Result<Header> {
        super::reader::parse_header(Path::new("<input>"), text)
    }

    /// Parses `text` as event line 2 of a trace declaring `processes`.
    pub fn event(text: &str, processes: u32) -> Result<Event> {
        super::fields::Fields::parse(Path::new("<input>"), 2, text)?.event(processes)
    }

    /// Parses `text` as an access-log line: the request's time (µs since the
    /// epoch) and view, or `None` for lines that are not feed requests.
    pub fn access_log_line(text: &str) -> Result<Option<(i64, cache_core::View)>> {
        super::access_log::access_log_line(Path::new("<input>"), 1, text)
    }
}
