//! Reading a file line by line with bounds: every line is at most
//! [`MAX_LINE_BYTES`] and valid UTF-8, and errors name the line. A UTF-8
//! byte order mark at the start of the file is skipped.
//!
//! `BufRead::lines` would read a file without newlines into one string
//! (memory grows with the input) and reports invalid UTF-8 without a line
//! number.

use std::io::{BufRead, Read as _};
use std::path::{Path, PathBuf};

use super::format::MAX_LINE_BYTES;
use crate::error::{Error, Result};

/// The UTF-8 byte order mark, skipped at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A bounded line reader over `R`.
pub(crate) struct Lines<R> {
    reader: R,
    file: PathBuf,
    line: u64,
    buf: Vec<u8>,
    failed: bool,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`, which is read from `file` (named in errors).
    pub(crate) fn new(reader: R, file: &Path) -> Self {
        Lines {
            reader,
            file: file.to_owned(),
            line: 0,
            buf: Vec::new(),
            failed: false,
        }
    }

    /// The file named in errors.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// The next line with its 1-based number (and the file name, for
    /// errors), without its `\n` or `\r\n`;
    /// `None` at the end of the file, and after the first error.
    pub(crate) fn next_line(&mut self) -> Option<Result<(u64, &str, &Path)>> {
        if self.failed {
            return None;
        }
        self.buf.clear();
        let limit = (MAX_LINE_BYTES + 2) as u64; // the line, `\r` and `\n`
        let read = (&mut self.reader).take(limit).read_until(b'\n', &mut self.buf);
        let n = match read {
            Ok(n) => n,
            Err(source) => {
                self.failed = true;
                return Some(Err(Error::Io {
                    path: self.file.clone(),
                    source,
                }));
            }
        };
        if n == 0 {
            return None;
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        // A UTF-8 byte order mark (Windows editors write one) before the
        // first line is not part of it: JSON and log lines never start so.
        if self.line == 1 && self.buf.starts_with(BOM) {
            self.buf.drain(..BOM.len());
        }
        if self.buf.len() > MAX_LINE_BYTES {
            self.failed = true;
            return Some(Err(self.error(format!("longer than {MAX_LINE_BYTES} bytes"))));
        }
        match std::str::from_utf8(&self.buf) {
            Ok(text) => Some(Ok((self.line, text, &self.file))),
            Err(e) => {
                self.failed = true;
                let at = e.valid_up_to() + 1;
                Some(Err(Error::Trace {
                    file: self.file.clone(),
                    line: self.line,
                    field: "<line>".into(),
                    message: format!("not UTF-8 (invalid byte at column {at})"),
                }))
            }
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Trace {
            file: self.file.clone(),
            line: self.line,
            field: "<line>".into(),
            message,
        }
    }
}
