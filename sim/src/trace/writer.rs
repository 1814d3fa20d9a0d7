//! Writing a trace: the header line, then one JSON line per event.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use serde_json::Value;

use super::format::{Event, Header};
use crate::error::{Error, Result};

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
