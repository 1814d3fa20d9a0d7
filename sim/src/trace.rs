//! Traces: the events a simulation replays, their JSON Lines form (see
//! `sim/TRACE_FORMAT.md`), a streaming reader with line-numbered errors, and
//! an importer for plain web-server access logs.
//!
//! Readers are iterators, so a trace larger than memory replays in memory
//! bounded by the events in flight, not by the file.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use cache_core::{Scope, TimeRange, View};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::calendar::{parse_wire, parse_wire_instant, to_wire};
use crate::db::{code_of, ItemState, Write, WriteKind, STATUSES, WORK_TYPES};
use crate::error::{Error, Result};

/// The `format` value of a trace header.
pub const FORMAT_NAME: &str = "cache-sim-trace";
/// The trace format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// View parameters the simulator carries from the wire into the cache key.
pub const VIEW_PARAMS: [&str; 3] = ["timeZone", "work_type", "status"];

/// The first line of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// Virtual time of `t_us = 0`, as RFC 3339 (e.g. `2025-10-06T09:00:00Z`).
    pub start: DateTime<Utc>,
    /// Number of app processes requests are spread over.
    pub processes: u32,
    /// Scenario that produced the trace, if any.
    pub scenario: Option<String>,
    /// Seed that produced the trace, if any.
    pub seed: Option<u64>,
}

impl Header {
    /// A header starting at `start` with `processes` app processes.
    pub fn new(start: DateTime<Utc>, processes: u32) -> Self {
        Header {
            start,
            processes: processes.max(1),
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

    fn to_json(&self) -> Value {
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
        /// µs after the trace start.
        t_us: u64,
        /// App process that serves it.
        process: u32,
        /// The requesting user (informational).
        user: u64,
        /// The user's browser tab (informational).
        tab: u32,
        /// What is requested.
        view: View,
    },
    /// A write committed by the app, followed by the strategy's invalidation.
    Write {
        /// µs after the trace start.
        t_us: u64,
        /// App process that commits it (and runs the invalidation).
        process: u32,
        /// The writing user (informational).
        user: u64,
        /// The write.
        write: Write,
    },
    /// The cache loses the strategy's control keys (generations) for `view`:
    /// eviction under memory pressure, a restart of the version store.
    EvictControl {
        /// µs after the trace start.
        t_us: u64,
        /// Process whose cache loses them.
        process: u32,
        /// The view whose control keys are lost.
        view: View,
    },
}

impl Event {
    /// µs after the trace start.
    pub fn t_us(&self) -> u64 {
        match self {
            Event::Read { t_us, .. } | Event::Write { t_us, .. } | Event::EvictControl { t_us, .. } => *t_us,
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
            Event::EvictControl { t_us, process, view } => {
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
pub type EventIter = Box<dyn Iterator<Item = Result<Event>> + Send>;

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

/// Writes `header` and `events` as JSON Lines to `path`; returns how many
/// events were written.
pub fn write_trace(path: &Path, header: &Header, events: impl Iterator<Item = Result<Event>>) -> Result<u64> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    let line = |v: &Value, out: &mut BufWriter<File>| -> Result<()> {
        serde_json::to_writer(&mut *out, v).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)
    };
    line(&header.to_json(), &mut out)?;
    let mut n = 0;
    for ev in events {
        line(&ev?.to_json(), &mut out)?;
        n += 1;
    }
    out.flush().map_err(io)?;
    Ok(n)
}

/// Field access with errors that name the file, line and field.
struct Fields<'a> {
    file: &'a Path,
    line: u64,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> Error {
        Error::Trace {
            file: self.file.to_owned(),
            line: self.line,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn u64(&self, f: &str) -> Result<u64> {
        match self.map.get(f) {
            None => Err(self.err(f, "missing")),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| self.err(f, format!("expected a non-negative integer, found {v}"))),
        }
    }

    fn u64_or(&self, f: &str, default: u64) -> Result<u64> {
        if self.map.get(f).is_none_or(Value::is_null) {
            Ok(default)
        } else {
            self.u64(f)
        }
    }

    fn u32_or(&self, f: &str, default: u32) -> Result<u32> {
        let v = self.u64_or(f, u64::from(default))?;
        u32::try_from(v).map_err(|_| self.err(f, format!("{v} is too large")))
    }

    fn str(&self, f: &str) -> Result<&str> {
        match self.map.get(f) {
            None => Err(self.err(f, "missing")),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.err(f, format!("expected a string, found {v}"))),
        }
    }

    fn opt_str(&self, f: &str) -> Result<Option<&str>> {
        match self.map.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str(f).map(Some),
        }
    }

    fn view(&self) -> Result<View> {
        let scopes = match self.map.get("scopes") {
            None => return Err(self.err("scopes", "missing")),
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| self.err("scopes", format!("expected strings, found {v}")))
                        .and_then(|s| Scope::new(s).map_err(|e| self.err("scopes", e.to_string())))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(v) => return Err(self.err("scopes", format!("expected a non-empty array, found {v}"))),
        };
        let tz = self.opt_str("timeZone")?;
        if let Some(z) = tz {
            cache_core::wire::parse_zone(z).map_err(|e| self.err("timeZone", e.to_string()))?;
        }
        let start = self.str("start")?;
        let end = self.str("end")?;
        parse_wire_instant(start, tz).map_err(|e| self.err("start", e.to_string()))?;
        parse_wire_instant(end, tz).map_err(|e| self.err("end", e.to_string()))?;
        let range = parse_wire(start, end, tz).map_err(|e| self.err("end", e.to_string()))?;
        let mut view = View::new(scopes, range).map_err(|e| self.err("scopes", e.to_string()))?;
        for p in VIEW_PARAMS {
            if let Some(v) = self.opt_str(p)? {
                view = view.with_param(p, v);
            }
        }
        Ok(view)
    }

    fn instant(&self, f: &str) -> Result<i64> {
        let s = self.str(f)?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .map_err(|e| self.err(f, format!("{s:?} is not an RFC 3339 instant: {e}")))
    }

    fn code(&self, f: &str, table: &[&str]) -> Result<u8> {
        let s = self.str(f)?;
        code_of(table, s).ok_or_else(|| self.err(f, format!("{s:?} is not one of {table:?}")))
    }

    fn event(&self) -> Result<Event> {
        let t_us = self.u64("t_us")?;
        let process = self.u32_or("process", 0)?;
        let user = self.u64_or("user", 0)?;
        let kind = match self.str("type")? {
            "read" => {
                return Ok(Event::Read {
                    t_us,
                    process,
                    user,
                    tab: self.u32_or("tab", 0)?,
                    view: self.view()?,
                })
            }
            "evict_control" => {
                return Ok(Event::EvictControl {
                    t_us,
                    process,
                    view: self.view()?,
                })
            }
            "load" => WriteKind::Load,
            "create" => WriteKind::Create,
            "edit" => WriteKind::Edit,
            "delete" => WriteKind::Delete,
            other => {
                return Err(self.err(
                    "type",
                    format!("unknown event type {other:?} (read, create, edit, delete, load, evict_control)"),
                ))
            }
        };
        let state = if kind == WriteKind::Delete {
            None
        } else {
            let start_us = self.instant("start")?;
            let end_us = self.instant("end")?;
            if end_us <= start_us {
                return Err(self.err("end", "must be after start"));
            }
            Some(ItemState {
                start_us,
                end_us,
                work_type: self.code("work_type", &WORK_TYPES)?,
                status: self.code("status", &STATUSES)?,
            })
        };
        let scope = self.str("scope")?;
        if scope.is_empty() {
            return Err(self.err("scope", "must not be empty"));
        }
        Ok(Event::Write {
            t_us,
            process,
            user,
            write: Write {
                kind,
                item: self.u64("item")?,
                scope: scope.to_owned(),
                state,
            },
        })
    }
}

/// One trace line as typed fields, borrowed from the line where possible.
///
/// Why a second parser: building a `serde_json::Value` map per line (an
/// allocation per key and string) and parsing every instant twice made
/// reading a trace a large share of a replay. This fast path accepts only
/// well-formed lines; anything it does not accept, the `Value`-based path
/// parses again, so every error is reported exactly as before.
#[derive(serde::Deserialize)]
struct FastLine<'a> {
    t_us: Option<u64>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    process: Option<u64>,
    user: Option<u64>,
    tab: Option<u64>,
    #[serde(borrow)]
    scopes: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    start: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end: Option<Cow<'a, str>>,
    #[serde(rename = "timeZone", borrow)]
    time_zone: Option<Cow<'a, str>>,
    #[serde(borrow)]
    work_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    item: Option<u64>,
    #[serde(borrow)]
    scope: Option<Cow<'a, str>>,
}

impl FastLine<'_> {
    /// The event, or `None` when the line needs the careful path.
    fn event(self) -> Option<Event> {
        let t_us = self.t_us?;
        let process = u32::try_from(self.process.unwrap_or(0)).ok()?;
        let user = self.user.unwrap_or(0);
        let kind = match self.kind.as_deref()? {
            "read" => {
                let tab = u32::try_from(self.tab.unwrap_or(0)).ok()?;
                let view = self.view()?;
                return Some(Event::Read {
                    t_us,
                    process,
                    user,
                    tab,
                    view,
                });
            }
            "evict_control" => {
                let view = self.view()?;
                return Some(Event::EvictControl { t_us, process, view });
            }
            "load" => WriteKind::Load,
            "create" => WriteKind::Create,
            "edit" => WriteKind::Edit,
            "delete" => WriteKind::Delete,
            _ => return None,
        };
        let state = if kind == WriteKind::Delete {
            None
        } else {
            let instant = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros());
            let start_us = instant(self.start.as_deref()?)?;
            let end_us = instant(self.end.as_deref()?)?;
            if end_us <= start_us {
                return None;
            }
            Some(ItemState {
                start_us,
                end_us,
                work_type: code_of(&WORK_TYPES, self.work_type.as_deref()?)?,
                status: code_of(&STATUSES, self.status.as_deref()?)?,
            })
        };
        let scope = self.scope?;
        if scope.is_empty() {
            return None;
        }
        Some(Event::Write {
            t_us,
            process,
            user,
            write: Write {
                kind,
                item: self.item?,
                scope: scope.into_owned(),
                state,
            },
        })
    }

    fn view(&self) -> Option<View> {
        let scopes = self.scopes.as_ref()?;
        if scopes.is_empty() {
            return None;
        }
        let scopes = scopes
            .iter()
            .map(|s| Scope::new(s.as_ref()).ok())
            .collect::<Option<Vec<_>>>()?;
        let tz = self.time_zone.as_deref();
        let start = parse_wire_instant(self.start.as_deref()?, tz).ok()?;
        let end = parse_wire_instant(self.end.as_deref()?, tz).ok()?;
        let range = TimeRange::new(start, end).ok()?;
        let mut view = View::new(scopes, range).ok()?;
        // Same order as `VIEW_PARAMS`.
        for (name, value) in [
            ("timeZone", &self.time_zone),
            ("work_type", &self.work_type),
            ("status", &self.status),
        ] {
            if let Some(v) = value {
                view = view.with_param(name, v.as_ref());
            }
        }
        Some(view)
    }
}

fn event_process(ev: &Event) -> u32 {
    match ev {
        Event::Read { process, .. } | Event::Write { process, .. } | Event::EvictControl { process, .. } => *process,
    }
}

/// Streams a JSON Lines trace.
pub struct TraceReader {
    file: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line: u64,
    last_t: u64,
    processes: u32,
}

impl std::fmt::Debug for TraceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceReader")
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

fn parse_line(file: &Path, line: u64, text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Error::Trace {
            file: file.to_owned(),
            line,
            field: "<line>".into(),
            message: format!("expected a JSON object, found {other}"),
        }),
        Err(e) => Err(Error::Trace {
            file: file.to_owned(),
            line,
            field: "<line>".into(),
            message: format!("not JSON: {e}"),
        }),
    }
}

/// Opens a trace: reads and checks the header, returns it with a streaming
/// reader of the events.
pub fn open_trace(path: &Path) -> Result<Source> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = BufReader::with_capacity(1 << 16, file).lines();
    let first = match lines.next() {
        Some(Ok(l)) => l,
        Some(Err(source)) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            })
        }
        None => {
            return Err(Error::Trace {
                file: path.to_owned(),
                line: 1,
                field: "<line>".into(),
                message: "empty file: expected a header line".into(),
            })
        }
    };
    let map = parse_line(path, 1, &first)?;
    let f = Fields {
        file: path,
        line: 1,
        map: &map,
    };
    if f.str("format")? != FORMAT_NAME {
        return Err(f.err(
            "format",
            format!("expected {FORMAT_NAME:?}: is this a cache-sim trace?"),
        ));
    }
    let version = f.u64("version")?;
    if version != FORMAT_VERSION {
        return Err(f.err(
            "version",
            format!("trace format version {version}, this build reads version {FORMAT_VERSION}"),
        ));
    }
    let start = f.str("start")?;
    let start = DateTime::parse_from_rfc3339(start)
        .map_err(|e| f.err("start", format!("{start:?}: {e}")))?
        .with_timezone(&Utc);
    let processes = f.u32_or("processes", 1)?.max(1);
    let header = Header {
        start,
        processes,
        scenario: f.opt_str("scenario")?.map(str::to_owned),
        seed: match map.get("seed") {
            None | Some(Value::Null) => None,
            Some(_) => Some(f.u64("seed")?),
        },
    };
    let reader = TraceReader {
        file: path.to_owned(),
        lines,
        line: 1,
        last_t: 0,
        processes,
    };
    Ok(Source {
        header,
        events: Box::new(reader),
    })
}

impl Iterator for TraceReader {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(source) => {
                    return Some(Err(Error::Io {
                        path: self.file.clone(),
                        source,
                    }))
                }
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            let fast = serde_json::from_str::<FastLine<'_>>(&text)
                .ok()
                .and_then(FastLine::event);
            if let Some(ev) = fast {
                if ev.t_us() >= self.last_t && event_process(&ev) < self.processes {
                    self.last_t = ev.t_us();
                    return Some(Ok(ev));
                }
            }
            let result = parse_line(&self.file, self.line, &text).and_then(|map| {
                let f = Fields {
                    file: &self.file,
                    line: self.line,
                    map: &map,
                };
                let ev = f.event()?;
                if ev.t_us() < self.last_t {
                    return Err(f.err(
                        "t_us",
                        format!(
                            "{} is before the previous event's {}: events must be in time order",
                            ev.t_us(),
                            self.last_t
                        ),
                    ));
                }
                let process = match &ev {
                    Event::Read { process, .. }
                    | Event::Write { process, .. }
                    | Event::EvictControl { process, .. } => *process,
                };
                if process >= self.processes {
                    return Err(f.err(
                        "process",
                        format!("{process} but the header declares {} processes", self.processes),
                    ));
                }
                self.last_t = ev.t_us();
                Ok(ev)
            });
            return Some(result);
        }
    }
}

/// Decodes `%XX` and `+` in a query-string value.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses one access-log line. `Ok(None)` for lines that are not feed
/// requests (other paths, other methods).
fn access_log_line(file: &Path, line: u64, text: &str) -> Result<Option<(i64, View)>> {
    let err = |field: &str, message: String| Error::Trace {
        file: file.to_owned(),
        line,
        field: field.to_owned(),
        message,
    };
    let Some(req_start) = text.find("\"GET ") else {
        return Ok(None);
    };
    let rest = &text[req_start + 5..];
    let target = rest.split_whitespace().next().unwrap_or("");
    let Some((_, query)) = target.split_once('?') else {
        return Ok(None);
    };
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| err(k, format!("bad percent-encoding in {v:?}")))?;
        params.push((k.to_owned(), v));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(start), Some(end)) = (get("start"), get("end")) else {
        return Ok(None);
    };
    let open = text
        .find('[')
        .ok_or_else(|| err("timestamp", "no [dd/Mon/yyyy:HH:MM:SS zone]".into()))?;
    let close = text[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| err("timestamp", "unterminated [ ]".into()))?;
    let stamp = &text[open + 1..close];
    let at = DateTime::parse_from_str(stamp, "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|e| err("timestamp", format!("{stamp:?}: {e}")))?
        .timestamp_micros();
    let tz = get("timeZone");
    if let Some(z) = tz {
        cache_core::wire::parse_zone(z).map_err(|e| err("timeZone", e.to_string()))?;
    }
    parse_wire_instant(start, tz).map_err(|e| err("start", e.to_string()))?;
    parse_wire_instant(end, tz).map_err(|e| err("end", e.to_string()))?;
    let range = parse_wire(start, end, tz).map_err(|e| err("end", e.to_string()))?;
    let scopes: Vec<Scope> = match get("calendar") {
        Some(c) => c
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|s| Scope::new(s).ok())
            .collect(),
        None => {
            // Common Log Format: `host ident authuser [time] "request" …`.
            let user = text[..open].split_whitespace().nth(2).filter(|u| *u != "-");
            vec![Scope::new(format!("user:{}", user.unwrap_or("anonymous"))).map_err(|e| err("user", e.to_string()))?]
        }
    };
    let mut view = View::new(scopes, range).map_err(|e| err("calendar", e.to_string()))?;
    for p in VIEW_PARAMS {
        if let Some(v) = get(p).filter(|v| !v.is_empty() && *v != "None") {
            view = view.with_param(p, v);
        }
    }
    Ok(Some((at, view)))
}

/// Reads feed requests from an access log (Common/Combined Log Format, see
/// `TRACE_FORMAT.md`) as a trace of reads on one process. Lines that are not
/// `GET …?start=…&end=…` are skipped; a feed line that does not parse is an
/// error naming its line. Timestamps that go backwards (concurrent requests
/// logged out of order) are clamped to the previous one.
pub fn open_access_log(path: &Path) -> Result<Source> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = BufReader::with_capacity(1 << 16, file).lines();
    let mut line = 0u64;
    // Find the first feed request: its timestamp is the trace's start.
    let first = loop {
        let Some(text) = lines.next() else {
            return Err(Error::Trace {
                file: path.to_owned(),
                line: line.max(1),
                field: "<file>".into(),
                message: "no `GET …?start=…&end=…` feed requests in the log".into(),
            });
        };
        line += 1;
        let text = text.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if let Some(hit) = access_log_line(path, line, &text)? {
            break hit;
        }
    };
    let start_us = first.0;
    let start = DateTime::<Utc>::from_timestamp_micros(start_us)
        .ok_or_else(|| Error::Invalid(format!("{}: first timestamp out of range", path.display())))?;
    let file_name = path.to_owned();
    let mut pending = Some(first);
    let mut last_t = 0u64;
    let events = std::iter::from_fn(move || loop {
        let (at, view) = match pending.take() {
            Some(p) => p,
            None => {
                let text = match lines.next()? {
                    Ok(t) => t,
                    Err(source) => {
                        return Some(Err(Error::Io {
                            path: file_name.clone(),
                            source,
                        }))
                    }
                };
                line += 1;
                match access_log_line(&file_name, line, &text) {
                    Ok(Some(hit)) => hit,
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
        };
        let t = u64::try_from(at - start_us).unwrap_or(0).max(last_t);
        last_t = t;
        return Some(Ok(Event::Read {
            t_us: t,
            process: 0,
            user: 0,
            tab: 0,
            view,
        }));
    });
    Ok(Source {
        header: Header::new(start, 1).with_origin(format!("access-log:{}", path.display()), 0),
        events: Box::new(events),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path must give exactly the careful path's event, or decline.
    #[test]
    fn fast_and_careful_parsers_agree() {
        let lines = [
            r#"{"t_us":5,"type":"read","process":0,"user":3,"tab":1,"scopes":["team:2","cal:1"],"start":"2025-09-29T00:00:00+08:00","end":"2025-11-10T00:00:00+08:00","status":"open"}"#,
            r#"{"t_us":6,"type":"read","scopes":["cal:1"],"start":"2025-10-01T00:00:00","end":"2025-10-02T00:00:00","timeZone":"Asia/Tokyo","work_type":"task"}"#,
            r#"{"t_us":7,"type":"read","scopes":["cal:1"],"start":"2025-10-01T00:00:00Z","end":"2025-10-02T00:00:00Z","timeZone":"UTC","process":null}"#,
            r#"{"t_us":8,"type":"edit","process":0,"user":1,"item":9,"scope":"cal:1","start":"2025-10-08T13:00:00Z","end":"2025-10-08T14:30:00Z","work_type":"review","status":"done"}"#,
            r#"{"t_us":9,"type":"delete","item":9,"scope":"cal:1"}"#,
            r#"{"t_us":10,"type":"evict_control","process":0,"scopes":["cal:1"],"start":"2025-10-01T00:00:00Z","end":"2025-10-02T00:00:00Z"}"#,
        ];
        let file = Path::new("t.jsonl");
        for line in lines {
            let fast = serde_json::from_str::<FastLine<'_>>(line)
                .ok()
                .and_then(FastLine::event);
            let map = parse_line(file, 2, line).unwrap();
            let careful = Fields {
                file,
                line: 2,
                map: &map,
            }
            .event()
            .unwrap();
            assert_eq!(fast.as_ref(), Some(&careful), "{line}");
        }
        // Lines the careful path rejects (with a message) the fast path declines.
        for line in [
            r#"{"t_us":"5","type":"read","scopes":["cal:1"],"start":"2025-10-01T00:00:00Z","end":"2025-10-02T00:00:00Z"}"#,
            r#"{"t_us":5,"type":"read","scopes":[],"start":"2025-10-01T00:00:00Z","end":"2025-10-02T00:00:00Z"}"#,
            r#"{"t_us":5,"type":"read","scopes":["cal:1"],"start":"2025-10-02T00:00:00Z","end":"2025-10-01T00:00:00Z"}"#,
            r#"{"t_us":5,"type":"edit","item":1,"scope":"cal:1","start":"2025-10-08T13:00:00Z","end":"2025-10-08T14:30:00Z","work_type":"nap","status":"done"}"#,
            r#"{"t_us":5,"type":"create","item":1,"scope":"","start":"2025-10-08T13:00:00Z","end":"2025-10-08T14:30:00Z","work_type":"task","status":"done"}"#,
            r#"{"t_us":5,"type":"moved","item":1,"scope":"cal:1"}"#,
            r#"{"t_us":5,"type":"read","process":4294967296,"scopes":["cal:1"],"start":"2025-10-01T00:00:00Z","end":"2025-10-02T00:00:00Z"}"#,
        ] {
            let fast = serde_json::from_str::<FastLine<'_>>(line)
                .ok()
                .and_then(FastLine::event);
            assert!(fast.is_none(), "{line}");
            let map = parse_line(file, 2, line).unwrap();
            assert!(
                Fields {
                    file,
                    line: 2,
                    map: &map
                }
                .event()
                .is_err(),
                "{line}"
            );
        }
    }
}
