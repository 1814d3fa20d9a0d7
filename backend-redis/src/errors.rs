//! Redis client errors as the core's [`Error`]s: what a call was about
//! ([`Subject`]) and which errors mean "unavailable", "timed out" or "not
//! Redis at all".

use std::time::Duration;

use cache_core::error::describe_keys;
use cache_core::{Bytes, Error, Key};
use redis::{RedisError, ServerErrorKind};

/// What an error is about, turned into text only when an error happens so
/// successful calls allocate nothing for it.
#[derive(Clone, Copy)]
pub(crate) enum Subject<'a> {
    Key(&'a Key),
    Keys(&'a [Key]),
    Entries(&'a [(Key, Bytes)]),
    Prefix(&'a str),
    Url(&'a str),
}

impl Subject<'_> {
    pub(crate) fn describe(self) -> String {
        match self {
            Subject::Key(k) => k.as_str().to_owned(),
            Subject::Keys(ks) => describe_keys(ks.iter().map(Key::as_str)),
            Subject::Entries(es) => describe_keys(es.iter().map(|(k, _)| k.as_str())),
            Subject::Prefix(p) => format!("{p}*"),
            Subject::Url(u) => u.to_owned(),
        }
    }
}

/// True for a client error that means the server's reply was not Redis's
/// protocol at all (rather than a Redis error or a broken connection).
pub(crate) fn answered_unlike_redis(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
    )
}

/// Maps a client error to the core error: unreachable or broken connections
/// and a cluster without a master for the slot are `Unavailable` (retrying
/// later may work), the client's own response timeout is `Timeout`, anything
/// else is `Backend` with the server's message.
///
/// A `MOVED`/`ASK` that reaches us means the cluster client used up its
/// redirect retries while the topology was changing (e.g. it was sent to a
/// master that just died): transient, so `Unavailable` too.
pub(crate) fn map_error(backend: &str, timeout: Duration, e: RedisError, subject: Subject<'_>) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            backend: backend.to_owned(),
            key: Some(subject.describe()),
            after: timeout,
        };
    }
    let unavailable = e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            redis::ErrorKind::ClusterConnectionNotFound
                | redis::ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::Moved
                        | ServerErrorKind::Ask
                )
        );
    if unavailable {
        return Error::Unavailable {
            backend: backend.to_owned(),
            key: Some(subject.describe()),
            source: Box::new(e),
        };
    }
    Error::Backend {
        backend: backend.to_owned(),
        key: Some(subject.describe()),
        message: e.to_string(),
    }
}
