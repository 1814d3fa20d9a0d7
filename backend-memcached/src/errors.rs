//! The backend's errors: every failure as a [`cache_core::Error`] by
//! meaning, naming the backend, the caller's key and (for connection
//! trouble) the server.

use std::time::Duration;

use cache_core::{Error, Result};

use crate::conn::{Status, WireError};
use crate::BACKEND_NAME;

pub(crate) fn expect_stored(status: Status, key: &str, server: &str) -> Result<()> {
    match status {
        Status::Done => Ok(()),
        other => Err(unexpected(key, server, &format!("set: {other:?}"))),
    }
}

pub(crate) fn not_found(key: &str) -> Error {
    Error::NotFound {
        backend: BACKEND_NAME.to_owned(),
        key: key.to_owned(),
    }
}

pub(crate) fn not_a_counter(key: &str) -> Error {
    Error::NotACounter {
        backend: BACKEND_NAME.to_owned(),
        key: key.to_owned(),
    }
}

pub(crate) fn overflow(key: &str, delta: u64) -> Error {
    Error::Overflow {
        backend: BACKEND_NAME.to_owned(),
        key: key.to_owned(),
        delta,
    }
}

pub(crate) fn unexpected(key: &str, server: &str, what: &str) -> Error {
    Error::Backend {
        backend: BACKEND_NAME.to_owned(),
        key: Some(key.to_owned()),
        message: format!("unexpected reply from memcached at {server}: {what}"),
    }
}

pub(crate) fn no_server(key: &str) -> Error {
    Error::Backend {
        backend: BACKEND_NAME.to_owned(),
        key: Some(key.to_owned()),
        message: "no server routed for the key".into(),
    }
}

/// The client's error for a call on `key` at `server`, by meaning:
/// connection trouble is `Unavailable`, a deadline `Timeout`, the rest
/// `Backend`. `Unavailable` already says nothing is known about whether a
/// write took effect.
pub(crate) fn map_error(e: WireError, key: &str, server: &str, after: Duration) -> Error {
    let backend = BACKEND_NAME.to_owned();
    let key_s = Some(key.to_owned());
    match e {
        WireError::Timeout | WireError::Io(std::io::ErrorKind::TimedOut, _) => Error::Timeout {
            backend,
            key: key_s,
            after,
        },
        WireError::Io(kind, message) => Error::Unavailable {
            backend,
            key: key_s,
            source: Box::new(ServerIoError {
                server: server.to_owned(),
                source: std::io::Error::new(kind, message),
            }),
        },
        WireError::Server(msg) if msg.contains("too large") => Error::Backend {
            backend,
            key: key_s,
            message: format!(
                "memcached at {server} refused the value as too large for its item size (-I): {msg}; \
                 lower max_value_size"
            ),
        },
        WireError::Server(msg) => Error::Backend {
            backend,
            key: key_s,
            message: format!("memcached at {server}: SERVER_ERROR {msg}"),
        },
        WireError::Client(msg) => Error::Backend {
            backend,
            key: key_s,
            message: format!("memcached at {server}: CLIENT_ERROR {msg}"),
        },
        WireError::Protocol(msg) => Error::Backend {
            backend,
            key: key_s,
            message: format!("memcached at {server}: protocol error, connection dropped: {msg}"),
        },
    }
}

/// An I/O error talking to one server; its message names the server.
#[derive(Debug, thiserror::Error)]
#[error("memcached at {server}: {source}")]
pub struct ServerIoError {
    /// `host:port` of the server.
    pub server: String,
    /// The underlying error (refused, reset, …).
    #[source]
    pub source: std::io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_and_name_server_and_key() {
        let refused = WireError::Io(std::io::ErrorKind::ConnectionRefused, "refused".into());
        let e = map_error(refused, "k1", "127.0.0.1:1", Duration::from_secs(1));
        assert!(matches!(e, Error::Unavailable { .. }));
        let shown = format!("{e} / {:?}", std::error::Error::source(&e).map(ToString::to_string));
        assert!(shown.contains("k1") && shown.contains("127.0.0.1:1"), "{shown}");
        let t = map_error(WireError::Timeout, "k", "h:1", Duration::from_millis(5));
        assert!(matches!(t, Error::Timeout { after, .. } if after == Duration::from_millis(5)));
        let reset = WireError::Io(std::io::ErrorKind::ConnectionReset, "reset".into());
        assert!(map_error(reset, "k", "h:1", Duration::from_secs(1)).is_transient());
        let big = map_error(
            WireError::Server("object too large for cache".into()),
            "k",
            "h:1",
            Duration::from_secs(1),
        );
        assert!(big.to_string().contains("max_value_size") || format!("{big:?}").contains("max_value_size"));
    }
}
