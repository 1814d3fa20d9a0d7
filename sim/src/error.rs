//! The simulator's error type: variants by meaning, each saying what and where.

use std::path::PathBuf;

/// Result alias for the simulator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a simulation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A cache backend or strategy failed in a way the run cannot continue
    /// past (setting up, or the registry refusing a strategy).
    #[error(transparent)]
    Cache(#[from] cache_core::Error),

    /// A malformed trace or access-log line.
    #[error("{}:{line}: field `{field}`: {message}", file.display())]
    Trace {
        /// The file being read.
        file: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The offending field (`<line>` when the line is not JSON at all).
        field: String,
        /// What is wrong.
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A `--backend` spec that cannot be used (unknown scheme, not wired yet,
    /// or the server is unreachable).
    #[error("backend {spec:?}: {message}")]
    Backend {
        /// The spec as given on the command line.
        spec: String,
        /// Why it cannot be used.
        message: String,
    },

    /// A backend kept failing, with no read served cleanly, for longer than
    /// the outage limit (`--max-outage-s`): the server died and stayed down.
    #[error(
        "backend {backend:?} stopped answering: calls kept failing for {after:?} ({errors} errors in this cell); \
         is the server up? (--max-outage-s sets this limit)"
    )]
    BackendDown {
        /// The backend's label (password hidden).
        backend: String,
        /// Errors in the cell so far.
        errors: u64,
        /// The outage limit that was exceeded.
        after: std::time::Duration,
        /// Errors since the previous check.
        streak: u64,
    },

    /// One or more cells' backend error rate exceeded `--max-error-rate`;
    /// the report was still printed and written.
    #[error("{0}")]
    ErrorRate(String),

    /// A setting outside its documented valid range (a traffic-model field,
    /// a run option given through the library).
    #[error("{name} = {value} is outside its valid range {range}")]
    OutOfRange {
        /// The setting.
        name: String,
        /// The value given.
        value: String,
        /// The valid range.
        range: String,
    },

    /// A scenario name the simulator does not know.
    #[error("unknown scenario {0:?}; `cache-sim scenarios` lists them")]
    UnknownScenario(String),

    /// An event that was read well but cannot be replayed (an edit of an
    /// item that does not exist, a create of one that does), with the line
    /// of the trace or log it came from. See [`Error::at_line`].
    #[error("line {line}: {source}")]
    AtLine {
        /// 1-based line of the event ([`crate::trace::Event::line`]).
        line: u64,
        /// What went wrong replaying it.
        #[source]
        source: Box<Error>,
    },

    /// Input that is internally inconsistent (an edit of an item that does
    /// not exist, a date that does not parse, events out of time order).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// `self`, attributed to the event on `line` of the input; unchanged for
    /// generated events (`line == 0`). A replay wraps the error of a failed
    /// commit with the event's [`line`](crate::trace::Event::line).
    pub fn at_line(self, line: u64) -> Error {
        if line == 0 {
            self
        } else {
            Error::AtLine {
                line,
                source: Box::new(self),
            }
        }
    }
}
