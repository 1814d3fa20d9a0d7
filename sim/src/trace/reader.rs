//! Reading a trace: the header, then a stream of events in time order.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::fields::Fields;
use super::format::{Event, Header, Source, FORMAT_NAME, FORMAT_VERSION, MAX_PROCESSES};
use super::lines::Lines;
use crate::error::{Error, Result};

/// Streams a JSON Lines trace's events, checking each against the header
/// and the previous event.
pub struct TraceReader {
    lines: Lines<BufReader<File>>,
    last_t: u64,
    processes: u32,
}

impl std::fmt::Debug for TraceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceReader")
            .field("file", &self.lines.file())
            .finish_non_exhaustive()
    }
}

/// Parses a header line (line 1 of `file`).
pub(crate) fn parse_header(file: &Path, text: &str) -> Result<Header> {
    let f = Fields::parse(file, 1, text)?;
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
    let processes = f.u64_in("processes", 1..=u64::from(MAX_PROCESSES), 1)?;
    Ok(Header {
        start,
        processes: u32::try_from(processes).unwrap_or(MAX_PROCESSES),
        scenario: f.opt_str("scenario")?.map(str::to_owned),
        seed: f.opt_u64("seed")?,
    })
}

/// Opens a trace: reads and checks the header, returns it with a streaming
/// reader of the events.
pub fn open_trace(path: &Path) -> Result<Source> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = Lines::new(BufReader::with_capacity(1 << 16, file), path);
    let header = match lines.next_line() {
        Some(Ok((_, text, _))) => parse_header(path, text)?,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(Error::Trace {
                file: path.to_owned(),
                line: 1,
                field: "<line>".into(),
                message: "empty file: expected a header line".into(),
            })
        }
    };
    let reader = TraceReader {
        lines,
        last_t: 0,
        processes: header.processes,
    };
    Ok(Source {
        header,
        events: Box::new(reader),
    })
}

impl TraceReader {
    fn next_event(&mut self) -> Option<Result<Event>> {
        loop {
            let (line, text, file) = match self.lines.next_line()? {
                Ok(l) => l,
                Err(e) => return Some(Err(e)),
            };
            if text.trim().is_empty() {
                continue;
            }
            let result = Fields::parse(file, line, text).and_then(|f| {
                let ev = f.event(self.processes)?;
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
                Ok(ev)
            });
            if let Ok(ev) = &result {
                self.last_t = ev.t_us();
            }
            return Some(result);
        }
    }
}

impl Iterator for TraceReader {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}
