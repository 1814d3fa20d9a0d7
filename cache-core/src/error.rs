//! The one error type every backend returns.
//!
//! Variants are split by *meaning* (what a caller can do about it), not by which
//! server produced them: a cache-aside layer falls back to the database on
//! [`Error::Unavailable`] and [`Error::Timeout`], treats [`Error::NotFound`] from
//! `incr` as "seed the counter", and reports [`Error::ValueTooLarge`] or
//! [`Error::InvalidKey`] as a bug in the caller. Every variant names the backend
//! and, where one is involved, the key.

use std::time::Duration;

/// Boxed source error, so backends can wrap their client's error types without
/// `cache-core` depending on them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a cache backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation needs an existing entry and there is none (only `incr`
    /// returns this; `get` answers `Ok(None)` instead).
    #[error("{backend}: key {key:?} not found")]
    NotFound {
        /// Backend name, e.g. `"redis"`.
        backend: String,
        /// The key the operation was about.
        key: String,
    },

    /// The server could not be reached or the connection broke. Retrying later
    /// may succeed; nothing is known about whether a write took effect.
    #[error("{backend}: unavailable{}: {source}", fmt_key(key))]
    Unavailable {
        /// Backend name.
        backend: String,
        /// The key (or a summary of a batch), when an operation was under way.
        key: Option<String>,
        /// The client's own error.
        #[source]
        source: BoxError,
    },

    /// The operation did not finish within the configured timeout.
    #[error("{backend}: timed out after {after:?}{}", fmt_key(key))]
    Timeout {
        /// Backend name.
        backend: String,
        /// The key (or a summary of a batch).
        key: Option<String>,
        /// The timeout that elapsed.
        after: Duration,
    },

    /// The value is larger than the backend accepts; nothing was written and any
    /// existing value under the key is untouched.
    #[error("{backend}: value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        /// Backend name.
        backend: String,
        /// The key.
        key: String,
        /// Size of the rejected value in bytes.
        size: usize,
        /// The largest value this backend accepts, in bytes.
        limit: usize,
    },

    /// The backend does not implement this operation (see
    /// [`Capabilities`](crate::Capabilities)).
    #[error("{backend}: operation `{operation}` is not supported")]
    NotSupported {
        /// Backend name.
        backend: String,
        /// Operation name, e.g. `"delete_prefix"`.
        operation: &'static str,
    },

    /// `incr` found a value that is not a counter (a decimal integer in
    /// `0..=i64::MAX`). The value is left untouched.
    #[error("{backend}: value under key {key:?} is not a counter")]
    NotACounter {
        /// Backend name.
        backend: String,
        /// The key.
        key: String,
    },

    /// `incr` would take the counter past `i64::MAX`. The value is left
    /// untouched.
    #[error("{backend}: incrementing key {key:?} by {delta} would overflow i64::MAX")]
    Overflow {
        /// Backend name.
        backend: String,
        /// The key.
        key: String,
        /// The requested delta.
        delta: u64,
    },

    /// The key cannot be used at all (empty, or longer than
    /// [`MAX_KEY_BYTES`](crate::key::MAX_KEY_BYTES)).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key (truncated for display if huge).
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The TTL cannot be represented by the backend.
    #[error("{backend}: invalid TTL {ttl:?} for key {key:?}: {reason}")]
    InvalidTtl {
        /// Backend name.
        backend: String,
        /// The key.
        key: String,
        /// The TTL given.
        ttl: Duration,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A typed value could not be encoded or decoded (see
    /// [`BackendExt`](crate::BackendExt)).
    #[error("codec error for key {key:?}: {source}")]
    Codec {
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: BoxError,
    },

    /// Bad configuration, e.g. an unparsable server URL.
    #[error("{backend}: invalid configuration: {message}")]
    Config {
        /// Backend name.
        backend: String,
        /// What is wrong and where.
        message: String,
    },

    /// A cache setting is out of its valid range (see
    /// [`CacheOptions::validate`](crate::CacheOptions::validate)); the
    /// message says what is allowed and what was given.
    #[error("invalid setting `{setting}`: {message}")]
    Setting {
        /// The setting, as its builder method is named (`ttl`, `xfetch`, …).
        setting: &'static str,
        /// What is wrong.
        message: String,
    },

    /// Any other error the server reported.
    #[error("{backend}: {message}{}", fmt_key(key))]
    Backend {
        /// Backend name.
        backend: String,
        /// The key (or a summary of a batch).
        key: Option<String>,
        /// The server's or client's message.
        message: String,
    },
}

fn fmt_key(key: &Option<String>) -> String {
    match key {
        Some(k) => format!(" (key {k:?})"),
        None => String::new(),
    }
}

impl Error {
    /// True for errors that say the backend could not answer (unreachable or
    /// too slow), as opposed to errors about the request itself. Cache-aside
    /// readers fall back to the loader on these.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }
}

/// Describes a batch of keys for an error message: the first key and how many
/// more there are, so a failed `get_many` of 10 000 keys stays readable.
pub fn describe_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut it = keys.into_iter();
    match it.next() {
        None => "<no keys>".to_owned(),
        Some(first) => {
            let rest = it.count();
            if rest == 0 {
                first.to_owned()
            } else {
                format!("{first} (+{rest} more)")
            }
        }
    }
}
