//! Importing a web server's access log (Common/Combined Log Format) as a
//! trace of feed requests.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use cache_core::{Scope, View};
use chrono::{DateTime, Utc};

use super::format::{Event, Header, LineNo, Source, MAX_SCOPE_BYTES, MAX_T_US, MAX_VIEW_SCOPE_BYTES, VIEW_PARAMS};
use super::lines::Lines;
use crate::calendar::{parse_wire, parse_wire_instant};
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

/// Parses one access-log line into the request's time (µs since the epoch)
/// and view. `Ok(None)` for lines that are not feed requests (other paths,
/// other methods).
pub(crate) fn access_log_line(file: &Path, line: u64, text: &str) -> Result<Option<(i64, View)>> {
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
    let mut params: Vec<(&str, String)> = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| err(k, format!("bad percent-encoding in {v:?}")))?;
        params.push((k, v));
    }
    let get = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
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
    let short = |field: &str, s: &str| {
        if s.len() > MAX_SCOPE_BYTES {
            Err(err(
                field,
                format!("{} bytes, at most {MAX_SCOPE_BYTES} allowed", s.len()),
            ))
        } else {
            Ok(())
        }
    };
    let scopes: Vec<Scope> = match get("calendar") {
        Some(c) => {
            if c.len() > MAX_VIEW_SCOPE_BYTES {
                return Err(err(
                    "calendar",
                    format!("more than {MAX_VIEW_SCOPE_BYTES} bytes of scope names in one view"),
                ));
            }
            let mut scopes = Vec::new();
            for s in c.split(',').filter(|s| !s.is_empty()) {
                short("calendar", s)?;
                scopes.push(Scope::new(s).map_err(|e| err("calendar", e.to_string()))?);
            }
            scopes
        }
        None => {
            // Common Log Format: `host ident authuser [time] "request" …`.
            let user = text[..open].split_whitespace().nth(2).filter(|u| *u != "-");
            let scope = format!("user:{}", user.unwrap_or("anonymous"));
            short("user", &scope)?;
            vec![Scope::new(scope).map_err(|e| err("user", e.to_string()))?]
        }
    };
    let mut view = View::new(scopes, range).map_err(|e| err("calendar", e.to_string()))?;
    for p in VIEW_PARAMS {
        if let Some(v) = get(p).filter(|v| !v.is_empty() && *v != "None") {
            short(p, v)?;
            view = view.with_param(p, v);
        }
    }
    Ok(Some((at, view)))
}

/// Reads feed requests from an access log (Common/Combined Log Format, see
/// `TRACE_FORMAT.md`) as a trace of reads on one process. Lines that are not
/// `GET …?start=…&end=…` are skipped; a feed line that does not parse is an
/// error naming its line. Timestamps that go backwards (concurrent requests
/// logged out of order) are clamped to the previous one; a timestamp more
/// than [`MAX_T_US`] after the first feed request is an error.
pub fn open_access_log(path: &Path) -> Result<Source> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = Lines::new(BufReader::with_capacity(1 << 16, file), path);
    // Find the first feed request: its timestamp is the trace's start.
    let mut last_line = 0;
    let first = loop {
        let Some(next) = lines.next_line() else {
            return Err(Error::Trace {
                file: path.to_owned(),
                line: last_line.max(1),
                field: "<file>".into(),
                message: "no `GET …?start=…&end=…` feed requests in the log".into(),
            });
        };
        let (line, text, _) = next?;
        last_line = line;
        if let Some((at, view)) = access_log_line(path, line, text)? {
            break (line, at, view);
        }
    };
    let start_us = first.1;
    let start = DateTime::<Utc>::from_timestamp_micros(start_us)
        .ok_or_else(|| Error::Invalid(format!("{}:{}: timestamp out of range", path.display(), first.0)))?;
    let mut pending = Some(first);
    let mut last_t = 0u64;
    let events = std::iter::from_fn(move || loop {
        let (line, at, view) = match pending.take() {
            Some(p) => p,
            None => {
                let (line, text, file) = match lines.next_line()? {
                    Ok(l) => l,
                    Err(e) => return Some(Err(e)),
                };
                match access_log_line(file, line, text) {
                    Ok(Some((at, view))) => (line, at, view),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
        };
        let after = u64::try_from(at.saturating_sub(start_us)).unwrap_or(0);
        if after > MAX_T_US {
            return Some(Err(Error::Trace {
                file: lines.file().to_owned(),
                line,
                field: "timestamp".into(),
                message: format!(
                    "{} days after the first feed request; a log may span at most {} days",
                    after / 86_400_000_000,
                    MAX_T_US / 86_400_000_000
                ),
            }));
        }
        let t = after.max(last_t);
        last_t = t;
        return Some(Ok(Event::Read {
            t_us: t,
            process: 0,
            user: 0,
            tab: 0,
            view,
            line: LineNo(line),
        }));
    });
    Ok(Source {
        header: Header::new(start, 1).with_origin(format!("access-log:{}", path.display()), 0),
        events: Box::new(events),
    })
}
