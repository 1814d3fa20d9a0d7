//! Importing a web server's access log (Common/Combined Log Format) as a
//! trace: feed requests become reads, requests matching a write route
//! ([`Routes`]) become creates, edits and deletes of items.
//!
//! Lenient by default: a line that cannot be used is skipped and counted by
//! reason ([`scan_access_log`] gives the counts and first examples for the
//! report); with [`AccessLogOptions::strict`] the first such line is an
//! error naming it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use cache_core::{Scope, View};
use chrono::{DateTime, Utc};

use super::format::{Event, Header, LineNo, Source, MAX_SCOPE_BYTES, MAX_T_US, MAX_VIEW_SCOPE_BYTES, VIEW_PARAMS};
use super::lines::Lines;
use super::routes::Routes;
use crate::calendar::{parse_wire, parse_wire_instant};
use crate::db::{ItemState, Write, WriteKind};
use crate::error::{Error, Result};

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

/// Where a request's scope (calendar) comes from (`--scope-from`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeFrom {
    /// The log's authenticated user (`user:NAME`); a `-` user (nginx's
    /// default) falls back to the client address (`ip:ADDR`), so that
    /// anonymous clients are not all one scope.
    User,
    /// The client address (`ip:ADDR`).
    Ip,
    /// A query parameter's value (a comma list on reads: several calendars);
    /// a request without it is skipped (`no scope`).
    Query(String),
}

impl ScopeFrom {
    /// Parses `user`, `ip` or `query:NAME`.
    pub fn parse(s: &str) -> Result<ScopeFrom> {
        match s {
            "user" => Ok(ScopeFrom::User),
            "ip" => Ok(ScopeFrom::Ip),
            _ => match s.strip_prefix("query:") {
                Some(name) if !name.is_empty() => Ok(ScopeFrom::Query(name.to_owned())),
                _ => Err(Error::Invalid(format!(
                    "--scope-from {s:?}: expected user, ip or query:NAME"
                ))),
            },
        }
    }
}

/// How to read an access log.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessLogOptions {
    /// Which requests are writes.
    pub routes: Routes,
    /// Where scopes come from.
    pub scope_from: ScopeFrom,
    /// Stop at the first line that cannot be used (instead of skipping and
    /// counting it).
    pub strict: bool,
}

impl Default for AccessLogOptions {
    /// The built-in routes, scopes from the user (or client address),
    /// lenient.
    fn default() -> Self {
        AccessLogOptions {
            routes: Routes::defaults(),
            scope_from: ScopeFrom::User,
            strict: false,
        }
    }
}

impl AccessLogOptions {
    /// The defaults, strict: the first bad line is an error.
    pub fn strict() -> Self {
        AccessLogOptions {
            strict: true,
            ..AccessLogOptions::default()
        }
    }
}

/// How long an imported item lasts: the log does not say when an item is
/// scheduled, so it is modelled as this long from the write's instant.
const ITEM_US: i64 = 3_600_000_000;

/// Why a line was skipped (the report's keys).
pub mod reason {
    /// No `"METHOD target …"` request (garbage, or a truncated line).
    pub const NOT_A_REQUEST: &str = "not a request line";
    /// The `[dd/Mon/yyyy:HH:MM:SS zone]` timestamp is missing or bad.
    pub const BAD_TIMESTAMP: &str = "bad timestamp";
    /// A feed request whose `start`, `end`, `timeZone` or other parameters
    /// do not parse (`start=undefined`).
    pub const BAD_FEED: &str = "bad feed parameters";
    /// No scope: `--scope-from query:NAME` and no such parameter, or a scope
    /// name that is too long or empty.
    pub const NO_SCOPE: &str = "no usable scope";
}

/// One classified line.
enum Line {
    Read(i64, View),
    Write {
        at: i64,
        kind: WriteKind,
        id: Option<String>,
        scope: String,
    },
    /// A request that is neither a feed nor a mapped write (static files,
    /// other pages, unmapped writes): ignored, not an error.
    Other {
        write_method: bool,
    },
}

/// A skipped line: its reason and the error it would be under `--strict`.
struct Skipped {
    reason: &'static str,
    error: Error,
}

/// The request's method and target, from `"METHOD target HTTP/x"`.
fn request(text: &str) -> Option<(&str, &str)> {
    let q = text.find('"')?;
    let mut parts = text[q + 1..].split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || !target.starts_with('/') {
        return None;
    }
    Some((method, target))
}

/// `host`, `user` (or `None` for `-`) of a Common Log Format line.
fn who(text: &str) -> (Option<&str>, Option<&str>) {
    let prefix = text.split('[').next().unwrap_or("");
    let mut f = prefix.split_whitespace();
    let host = f.next();
    let user = f.nth(1).filter(|u| *u != "-");
    (host, user)
}

fn classify(file: &Path, line: u64, text: &str, opts: &AccessLogOptions) -> std::result::Result<Line, Skipped> {
    let err = |reason: &'static str, field: &str, message: String| Skipped {
        reason,
        error: Error::Trace {
            file: file.to_owned(),
            line,
            field: field.to_owned(),
            message,
        },
    };
    let Some((method, target)) = request(text) else {
        return Err(err(
            reason::NOT_A_REQUEST,
            "<line>",
            "no \"METHOD /path HTTP/x\" request (a truncated or garbled line?)".into(),
        ));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params = Params(Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.0.push((k, percent_decode(v)));
    }
    let raw = |k: &str| params.raw(k);
    let write = opts.routes.match_request(method, path);
    let is_feed = method == "GET" && raw("start").is_some() && raw("end").is_some();
    if write.is_none() && !is_feed {
        return Ok(Line::Other {
            write_method: matches!(method, "POST" | "PUT" | "PATCH" | "DELETE"),
        });
    }
    let at = timestamp(text).map_err(|m| err(reason::BAD_TIMESTAMP, "timestamp", m))?;
    for (k, v) in &params.0 {
        if v.is_none() && (is_feed || Some(*k) == scope_param(opts)) {
            return Err(err(reason::BAD_FEED, k, "bad percent-encoding".into()));
        }
    }
    let get = |k: &str| params.get(k);
    let (host, user) = who(text);
    let identity = || match (&opts.scope_from, user, host) {
        (ScopeFrom::User, Some(u), _) => Some(format!("user:{u}")),
        (ScopeFrom::User | ScopeFrom::Ip, _, Some(h)) => Some(format!("ip:{h}")),
        (ScopeFrom::Query(name), _, _) => get(name).map(str::to_owned),
        _ => None,
    };
    if let Some(m) = write {
        let scope = m
            .scope
            .or_else(|| identity().map(|s| s.split(',').next().unwrap_or("").to_owned()))
            .filter(|s| !s.is_empty() && s.len() <= MAX_SCOPE_BYTES && Scope::new(s.as_str()).is_ok())
            .ok_or_else(|| err(reason::NO_SCOPE, "scope", "no usable scope for this write".into()))?;
        return Ok(Line::Write {
            at,
            kind: m.kind,
            id: m.id,
            scope,
        });
    }
    // A feed read. An explicit `calendar` list names its scopes unless
    // another parameter was chosen.
    let scopes_text = match (&opts.scope_from, get("calendar")) {
        (ScopeFrom::Query(_), _) => identity(),
        (_, Some(c)) => Some(c.to_owned()),
        _ => identity(),
    }
    .ok_or_else(|| err(reason::NO_SCOPE, "scope", format!("no scope ({:?})", opts.scope_from)))?;
    let view = feed_view(&params, &scopes_text).map_err(|(field, reason, m)| err(reason, &field, m))?;
    Ok(Line::Read(at, view))
}

fn scope_param(opts: &AccessLogOptions) -> Option<&str> {
    match &opts.scope_from {
        ScopeFrom::Query(n) => Some(n.as_str()),
        _ => None,
    }
}

fn timestamp(text: &str) -> std::result::Result<i64, String> {
    let open = text.find('[').ok_or("no [dd/Mon/yyyy:HH:MM:SS zone]")?;
    let close = text[open..].find(']').map(|c| open + c).ok_or("unterminated [ ]")?;
    let stamp = &text[open + 1..close];
    DateTime::parse_from_str(stamp, "%d/%b/%Y:%H:%M:%S %z")
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("{stamp:?}: {e}"))
}

type FieldError = (String, &'static str, String);

/// A wire instant, tolerating an unencoded `+` of an offset (decoded as a
/// space by the query-string rules).
fn instant_text(v: &str, tz: Option<&str>) -> Option<String> {
    if parse_wire_instant(v, tz).is_ok() {
        return Some(v.to_owned());
    }
    let plus = v.replace(' ', "+");
    parse_wire_instant(&plus, tz).is_ok().then_some(plus)
}

/// A request's query parameters, decoded (`None`: bad percent-encoding).
struct Params<'a>(Vec<(&'a str, Option<String>)>);

impl Params<'_> {
    fn raw(&self, k: &str) -> Option<Option<&str>> {
        self.0.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_deref())
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.raw(k).flatten()
    }
}

fn feed_view(params: &Params<'_>, scopes_text: &str) -> std::result::Result<View, FieldError> {
    let get = |k: &str| params.get(k);
    let fe = |field: &str, m: String| (field.to_owned(), reason::BAD_FEED, m);
    let tz = get("timeZone");
    if let Some(z) = tz {
        cache_core::wire::parse_zone(z).map_err(|e| fe("timeZone", e.to_string()))?;
    }
    let (start, end) = (get("start").unwrap_or(""), get("end").unwrap_or(""));
    let start = instant_text(start, tz).ok_or_else(|| {
        fe(
            "start",
            parse_wire_instant(start, tz)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        )
    })?;
    let end = instant_text(end, tz).ok_or_else(|| {
        fe(
            "end",
            parse_wire_instant(end, tz)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        )
    })?;
    let range = parse_wire(&start, &end, tz).map_err(|e| fe("end", e.to_string()))?;
    if scopes_text.len() > MAX_VIEW_SCOPE_BYTES {
        return Err((
            "calendar".into(),
            reason::NO_SCOPE,
            format!("more than {MAX_VIEW_SCOPE_BYTES} bytes of scope names in one view"),
        ));
    }
    let mut scopes = Vec::new();
    for s in scopes_text.split(',').filter(|s| !s.is_empty()) {
        if s.len() > MAX_SCOPE_BYTES {
            return Err((
                "calendar".into(),
                reason::NO_SCOPE,
                format!("{} bytes, at most {MAX_SCOPE_BYTES} allowed", s.len()),
            ));
        }
        scopes.push(Scope::new(s).map_err(|e| ("calendar".to_owned(), reason::NO_SCOPE, e.to_string()))?);
    }
    let mut view = View::new(scopes, range).map_err(|e| ("calendar".to_owned(), reason::NO_SCOPE, e.to_string()))?;
    for p in VIEW_PARAMS {
        if let Some(v) = get(p).filter(|v| !v.is_empty() && *v != "None") {
            if v.len() > MAX_SCOPE_BYTES {
                return Err(fe(p, format!("{} bytes, at most {MAX_SCOPE_BYTES} allowed", v.len())));
            }
            view = view.with_param(p, v);
        }
    }
    Ok(view)
}

/// Parses one access-log line (strictly, default options) into the
/// request's time (µs since the epoch) and view; `Ok(None)` for lines that
/// are not feed requests.
pub(crate) fn access_log_line(file: &Path, line: u64, text: &str) -> Result<Option<(i64, View)>> {
    match classify(file, line, text, &AccessLogOptions::strict()) {
        Ok(Line::Read(at, view)) => Ok(Some((at, view))),
        Ok(_) => Ok(None),
        Err(s) if s.reason == reason::NOT_A_REQUEST => Ok(None),
        Err(s) => Err(s.error),
    }
}

/// Whether `text` looks like an access-log line (for the "did you mean
/// `--format access-log`" hint of a trace that is not JSON).
pub fn looks_like_access_log(text: &str) -> bool {
    request(text).is_some() && timestamp(text).is_ok()
}

/// Skipped lines of one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SkipCount {
    /// Lines skipped for it.
    pub lines: u64,
    /// The first few, as `file:line: field: message`.
    pub examples: Vec<String>,
}

/// What an access log held, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct AccessLogSummary {
    /// Lines read.
    pub lines: u64,
    /// Feed requests (reads).
    pub feed_reads: u64,
    /// Mapped writes: creates, edits, deletes.
    pub writes: u64,
    /// Other requests, ignored (static files, other pages).
    pub other_requests: u64,
    /// Of those, POST/PUT/PATCH/DELETE that no route maps: if there are
    /// many, the routes file may be missing a rule.
    pub unmapped_writes: u64,
    /// Skipped lines by reason.
    pub skipped: BTreeMap<String, SkipCount>,
}

/// Examples kept per skip reason.
const EXAMPLES: usize = 3;

/// Reads the whole log once and counts what it holds; under
/// [`AccessLogOptions::strict`] the first bad line is the error.
pub fn scan_access_log(path: &Path, opts: &AccessLogOptions) -> Result<AccessLogSummary> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = Lines::new(BufReader::with_capacity(1 << 16, file), path);
    let mut sum = AccessLogSummary::default();
    while let Some(next) = lines.next_line() {
        let (line, text, file) = next?;
        sum.lines += 1;
        match classify(file, line, text, opts) {
            Ok(Line::Read(..)) => sum.feed_reads += 1,
            Ok(Line::Write { .. }) => sum.writes += 1,
            Ok(Line::Other { write_method }) => {
                sum.other_requests += 1;
                sum.unmapped_writes += u64::from(write_method);
            }
            Err(s) if opts.strict => return Err(s.error),
            Err(s) => {
                let c = sum.skipped.entry(s.reason.to_owned()).or_default();
                c.lines += 1;
                if c.examples.len() < EXAMPLES {
                    c.examples.push(s.error.to_string());
                }
            }
        }
    }
    Ok(sum)
}

/// [`open_access_log_with`] under [`AccessLogOptions::strict`]: feed
/// requests only from the default routes' point of view, the first bad feed
/// line an error.
pub fn open_access_log(path: &Path) -> Result<Source> {
    open_access_log_with(path, &AccessLogOptions::strict())
}

/// Reads an access log (Common/Combined Log Format, see `TRACE_FORMAT.md`)
/// as a trace on one process: feed requests (`GET …?start=…&end=…`) are
/// reads, requests matching a write route commit a create, edit or delete
/// of an item in the request's scope. Other lines are ignored; unusable ones
/// are skipped (or, strict, an error naming the line). Timestamps that go
/// backwards (concurrent requests logged out of order) are clamped to the
/// previous one; a timestamp more than [`MAX_T_US`] after the first request
/// is an error.
///
/// An edit or delete of an item the log never created first loads it (an
/// item that existed before the log), then writes it. The log does not say
/// when an item is scheduled: it is taken as one hour from the write.
pub fn open_access_log_with(path: &Path, opts: &AccessLogOptions) -> Result<Source> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let opts = opts.clone();
    let mut lines = Lines::new(BufReader::with_capacity(1 << 16, file), path);
    // The first feed request or write: its timestamp is the trace's start.
    let mut last_line = 0;
    // Why the first lines were skipped, for the error when nothing is
    // usable: a log whose every line is bad must say why, as a mixed log's
    // report does.
    let mut skipped: Vec<String> = Vec::new();
    let mut skipped_total = 0u64;
    let first = loop {
        let Some(next) = lines.next_line() else {
            let mut message = "no `GET …?start=…&end=…` feed requests or mapped writes in the log".to_owned();
            if !skipped.is_empty() {
                message.push_str(&format!(
                    "; {skipped_total} line(s) skipped, the first because: {}",
                    skipped.join("; ")
                ));
            }
            return Err(Error::Trace {
                file: path.to_owned(),
                line: last_line.max(1),
                field: "<file>".into(),
                message,
            });
        };
        let (line, text, file) = next?;
        last_line = line;
        match classify(file, line, text, &opts) {
            Ok(Line::Other { .. }) => {}
            Ok(l) => break (line, l),
            Err(s) if opts.strict && s.reason != reason::NOT_A_REQUEST => return Err(s.error),
            Err(s) => {
                skipped_total += 1;
                if skipped.len() < EXAMPLES {
                    skipped.push(format!("{} ({})", s.error, s.reason));
                }
            }
        }
    };
    let start_us = match &first.1 {
        Line::Read(at, _) | Line::Write { at, .. } => *at,
        Line::Other { .. } => 0,
    };
    let start = DateTime::<Utc>::from_timestamp_micros(start_us)
        .ok_or_else(|| Error::Invalid(format!("{}:{}: timestamp out of range", path.display(), first.0)))?;
    let mut pending = Some(first);
    let mut out: VecDeque<Event> = VecDeque::new();
    // Item id in the log → (item number, its scope).
    let mut items: HashMap<String, (u64, String)> = HashMap::new();
    let mut next_item = 0u64;
    let mut created = 0u64;
    let mut last_t = 0u64;
    let events = std::iter::from_fn(move || loop {
        if let Some(ev) = out.pop_front() {
            return Some(Ok(ev));
        }
        let (line, parsed) = match pending.take() {
            Some(p) => p,
            None => {
                let (line, text, file) = match lines.next_line()? {
                    Ok(l) => l,
                    Err(e) => return Some(Err(e)),
                };
                match classify(file, line, text, &opts) {
                    Ok(Line::Other { .. }) => continue,
                    Ok(l) => (line, l),
                    // The old strict behaviour: garbage lines were skipped.
                    Err(s) if opts.strict && s.reason != reason::NOT_A_REQUEST => return Some(Err(s.error)),
                    Err(_) => continue,
                }
            }
        };
        let at = match &parsed {
            Line::Read(at, _) | Line::Write { at, .. } => *at,
            Line::Other { .. } => continue,
        };
        let after = u64::try_from(at.saturating_sub(start_us)).unwrap_or(0);
        if after > MAX_T_US {
            return Some(Err(Error::Trace {
                file: lines.file().to_owned(),
                line,
                field: "timestamp".into(),
                message: format!(
                    "{} days after the first request; a log may span at most {} days",
                    after / 86_400_000_000,
                    MAX_T_US / 86_400_000_000
                ),
            }));
        }
        let t = after.max(last_t);
        last_t = t;
        match parsed {
            Line::Read(_, view) => {
                return Some(Ok(Event::Read {
                    t_us: t,
                    process: 0,
                    user: 0,
                    tab: 0,
                    view,
                    line: LineNo(line),
                }))
            }
            Line::Write { kind, id, scope, .. } => {
                let abs = start_us.saturating_add(i64::try_from(t).unwrap_or(i64::MAX));
                let state = ItemState {
                    start_us: abs,
                    end_us: abs.saturating_add(ITEM_US),
                    work_type: 0,
                    status: 0,
                };
                let name = id.unwrap_or_else(|| {
                    created += 1;
                    format!("\u{0}created-{created}")
                });
                let known = items.get(&name).cloned();
                // A known item stays in its calendar, whoever writes it.
                let scope = known.as_ref().map_or(scope, |k| k.1.clone());
                let write = |kind: WriteKind, item: u64| Event::Write {
                    t_us: t,
                    process: 0,
                    user: 0,
                    write: Write {
                        kind,
                        item,
                        scope: scope.clone(),
                        state: (kind != WriteKind::Delete).then_some(state),
                    },
                    line: LineNo(line),
                };
                let known = known.map(|k| k.0);
                let item = known.unwrap_or_else(|| {
                    next_item += 1;
                    next_item
                });
                match (kind, known) {
                    (WriteKind::Create, None) => {
                        items.insert(name, (item, scope.clone()));
                        out.push_back(write(WriteKind::Create, item));
                    }
                    // A create of an id seen before: an edit.
                    (WriteKind::Create, Some(_)) => out.push_back(write(WriteKind::Edit, item)),
                    (k, known) => {
                        if known.is_none() {
                            out.push_back(write(WriteKind::Load, item));
                        }
                        if k == WriteKind::Delete {
                            items.remove(&name);
                        } else {
                            items.insert(name, (item, scope.clone()));
                        }
                        out.push_back(write(k, item));
                    }
                }
            }
            Line::Other { .. } => {}
        }
    });
    Ok(Source {
        header: Header::new(start, 1).with_origin(format!("access-log:{}", path.display()), 0),
        events: Box::new(events),
    })
}
