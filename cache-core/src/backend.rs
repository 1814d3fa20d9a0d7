//! The backend trait: the primitives every store implements, and the contract
//! that makes them behave the same on every store.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::key::Key;

/// A time-to-live: `None` means "no expiry" (the store may still evict).
/// `Some(Duration::ZERO)` means "already expired" (see the contract).
pub type Ttl = Option<Duration>;

/// A cache store: in-process, Redis, Redis Cluster, Memcached, or a wrapper
/// around one of them.
///
/// The trait is object-safe and holds only primitives; conveniences (typed
/// values, `get_or_set`) live in [`BackendExt`](crate::BackendExt), which
/// every backend gets for free. `Box<dyn Backend>`, `Arc<dyn Backend>` and
/// `&B` are backends too, so wrappers and callers can hold whichever suits.
///
/// # Contract
///
/// Every backend MUST behave as follows. The conformance suite
/// (`cache_testkit::conformance`, in the `cache-testkit` crate) checks each point; a
/// backend is done when it passes that suite unchanged.
///
/// **Keys.** Any [`Key`] is accepted. A backend whose server restricts keys
/// (Memcached: 250 bytes, no whitespace or control characters) maps them with
/// [`safe_key`](crate::key::safe_key); distinct keys stay distinct.
///
/// **Values** are opaque bytes. A value of zero length is stored and read back
/// as `Some(empty)`, which is different from a missing entry (`None`). A value
/// larger than [`Capabilities::max_value_size`] is rejected with
/// [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) before anything is
/// sent, and the entry previously stored under the key is left untouched.
///
/// **TTL.** `None`: the entry does not expire. `Some(d)` with `d > 0`: the
/// entry is readable until at least `d` has passed and is gone no later than
/// `d` + [`Capabilities::ttl_granularity`]. `Some(Duration::ZERO)` means
/// "already expired" (as in Django): `set`/`set_many` delete any existing
/// entry and store nothing; `add` stores nothing, leaves an existing entry
/// alone and returns `false`. A TTL longer than the backend can express
/// (`Duration::MAX`, `u64::MAX` seconds) is **clamped** to the longest it can
/// (the entry lives as long as the backend is able to keep it) or refused
/// with [`Error::InvalidTtl`](crate::Error::InvalidTtl) before anything is
/// changed; it never wraps to a short TTL and never panics.
///
/// **`add`** stores only when no live entry exists and returns whether it
/// stored. Concurrent `add`s of one key: exactly one returns `true`.
///
/// **Counters.** A counter is a value holding the ASCII decimal digits of an
/// integer in `0..=i64::MAX` with no sign or leading `+` (e.g. `b"42"`);
/// `get` returns those digits. Whether digits padded with ASCII spaces count
/// as a counter is unspecified (Memcached accepts them, Redis does not).
/// [`incr`](Backend::incr):
/// - on a **missing** key returns [`Error::NotFound`](crate::Error::NotFound)
///   and creates nothing (Django and Memcached's ASCII protocol do this;
///   Redis and Memcached's binary protocol create the key, and their backends
///   are written to hide that). A caller that wants create-or-increment uses
///   `add` first, which is also how the strategies seed generations with a
///   value of their choosing;
/// - adds `delta` atomically (concurrent increments are never lost) and
///   returns the new value; `delta == 0` returns the current value;
/// - keeps the entry's remaining TTL;
/// - on a value that is not a counter returns
///   [`Error::NotACounter`](crate::Error::NotACounter) and changes nothing;
/// - when the result would exceed `i64::MAX` returns
///   [`Error::Overflow`](crate::Error::Overflow) and the stored value stays
///   as it was (Redis errors here, Memcached wraps at 2^64: backends hide both).
///
/// **Deletes** return whether a live entry existed (`delete`) or how many did
/// (`delete_many`). Deleting a missing key is not an error.
///
/// **Batches** (`get_many`, `set_many`, `delete_many`) mean the same as the
/// single-key calls in a loop, with results in input order; duplicates are
/// allowed and an empty batch is a no-op. They are not transactions: after an
/// error, some of the batch may have been applied.
///
/// **Prefix deletion** is optional ([`Capabilities::prefix_delete`]); without
/// it [`delete_prefix`](Backend::delete_prefix) returns
/// [`Error::NotSupported`](crate::Error::NotSupported). The prefix is literal:
/// glob metacharacters in it match only themselves. Entries written while a
/// prefix deletion runs may survive it.
///
/// **Errors** never panic and always name the backend and the key. A server
/// that cannot be reached yields [`Error::Unavailable`](crate::Error::Unavailable)
/// or [`Error::Timeout`](crate::Error::Timeout) within the configured timeout,
/// and the same backend object works again once the server is back.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// Short name used in errors and reports: `"locmem"`, `"redis"`,
    /// `"redis-cluster"`, `"memcached"`, …
    fn name(&self) -> &str;

    /// What this backend supports; constant for the backend's lifetime.
    fn capabilities(&self) -> Capabilities;

    /// The value under `key`, or `None` when there is no live entry.
    async fn get(&self, key: &Key) -> Result<Option<Bytes>>;

    /// The values under `keys`, in order, `None` where missing. One round trip
    /// where the server allows it.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>>;

    /// Stores `value` under `key`, replacing any entry.
    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()>;

    /// Stores every `(key, value)` with the same TTL.
    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()>;

    /// Stores `value` only if no live entry exists; returns whether it stored.
    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool>;

    /// Atomically adds `delta` to the counter under `key` and returns the new
    /// value. See the contract for missing keys, non-counters and overflow.
    async fn incr(&self, key: &Key, delta: u64) -> Result<u64>;

    /// Deletes `key`; returns whether a live entry existed.
    async fn delete(&self, key: &Key) -> Result<bool>;

    /// Deletes `keys`; returns how many live entries existed.
    async fn delete_many(&self, keys: &[Key]) -> Result<u64>;

    /// Deletes every entry whose key starts with `prefix`; returns how many.
    /// Optional: the default returns
    /// [`Error::NotSupported`](crate::Error::NotSupported).
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let _ = prefix;
        Err(crate::Error::NotSupported {
            backend: self.name().to_owned(),
            operation: "delete_prefix",
        })
    }

    /// What the server says about itself ([`ServerStats`]: how many keys
    /// it has evicted), for reports that must show a server forgetting
    /// what it was told. Optional: the default, for stores without a
    /// server to ask (in-process), is `Ok(None)`. Not an operation of the
    /// cache: wrappers forward it uncounted.
    async fn server_stats(&self) -> Result<Option<ServerStats>> {
        Ok(None)
    }
}

/// Counters a cache server keeps about itself, read with
/// [`Backend::server_stats`]. Cumulative since the server started: compare
/// two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Keys the server removed to make room (Redis `INFO stats`
    /// `evicted_keys`, Memcached `stats` `evictions`), summed over the
    /// masters of a cluster or the servers of a pool. Expired keys are not
    /// evictions.
    pub evicted_keys: u64,
}

impl ServerStats {
    /// Stats with `evicted_keys` evictions.
    pub const fn with_evicted_keys(evicted_keys: u64) -> Self {
        ServerStats { evicted_keys }
    }
}

/// What a backend can do and how precisely; see the trait's contract.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`Backend::delete_prefix`] works.
    pub prefix_delete: bool,
    /// Largest value accepted, in bytes; `None` for no practical limit.
    pub max_value_size: Option<usize>,
    /// How late an entry may disappear after its TTL (Memcached counts whole
    /// seconds on a coarse clock; Redis milliseconds; locmem is exact).
    pub ttl_granularity: Duration,
    /// Entries are visible to other processes using the same configuration
    /// (true for Redis and Memcached, false for an in-process store). The
    /// simulator uses this to model several app processes.
    pub shared_between_processes: bool,
}

impl Capabilities {
    /// A backend with no optional features, no value limit, exact TTLs, not
    /// shared between processes. Adjust with the `with_*` methods.
    pub const fn new() -> Self {
        Capabilities {
            prefix_delete: false,
            max_value_size: None,
            ttl_granularity: Duration::ZERO,
            shared_between_processes: false,
        }
    }

    /// Sets [`Self::prefix_delete`].
    #[must_use]
    pub const fn with_prefix_delete(mut self, yes: bool) -> Self {
        self.prefix_delete = yes;
        self
    }

    /// Sets [`Self::max_value_size`].
    #[must_use]
    pub const fn with_max_value_size(mut self, limit: Option<usize>) -> Self {
        self.max_value_size = limit;
        self
    }

    /// Sets [`Self::ttl_granularity`].
    #[must_use]
    pub const fn with_ttl_granularity(mut self, granularity: Duration) -> Self {
        self.ttl_granularity = granularity;
        self
    }

    /// Sets [`Self::shared_between_processes`].
    #[must_use]
    pub const fn with_shared_between_processes(mut self, yes: bool) -> Self {
        self.shared_between_processes = yes;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

/// True when `ttl` is `Some(Duration::ZERO)`, the contract's "already expired".
pub fn is_expired_ttl(ttl: Ttl) -> bool {
    ttl == Some(Duration::ZERO)
}

/// Parses a counter value as the contract defines it: ASCII digits only, at
/// most 19 of them, value `<= i64::MAX`.
///
/// ```
/// use cache_core::backend::parse_counter;
/// assert_eq!(parse_counter(b"42"), Some(42));
/// assert_eq!(parse_counter(b"-1"), None);
/// assert_eq!(parse_counter(b""), None);
/// assert_eq!(parse_counter(b"9223372036854775808"), None);
/// ```
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (n <= i64::MAX as u64).then_some(n)
}

/// Adds `delta` to `current` under the contract's overflow rule.
pub fn checked_counter_add(current: u64, delta: u64) -> Option<u64> {
    current.checked_add(delta).filter(|&n| n <= i64::MAX as u64)
}

/// Formats a counter value as stored.
pub fn format_counter(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

macro_rules! forward_backend {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: Backend + ?Sized> Backend for $ty {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
                (**self).get(key).await
            }
            async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
                (**self).get_many(keys).await
            }
            async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
                (**self).set(key, value, ttl).await
            }
            async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
                (**self).set_many(entries, ttl).await
            }
            async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
                (**self).add(key, value, ttl).await
            }
            async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
                (**self).incr(key, delta).await
            }
            async fn delete(&self, key: &Key) -> Result<bool> {
                (**self).delete(key).await
            }
            async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
                (**self).delete_many(keys).await
            }
            async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
                (**self).delete_prefix(prefix).await
            }
            async fn server_stats(&self) -> Result<Option<ServerStats>> {
                (**self).server_stats().await
            }
        }
    )*};
}

forward_backend!(Box<T>, Arc<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_parsing_follows_the_contract() {
        assert_eq!(parse_counter(b"0"), Some(0));
        assert_eq!(parse_counter(b"007"), Some(7));
        assert_eq!(parse_counter(b"9223372036854775807"), Some(i64::MAX as u64));
        assert_eq!(parse_counter(b" 1"), None);
        assert_eq!(parse_counter(b"+1"), None);
        assert_eq!(parse_counter(b"12345678901234567890"), None);
        assert_eq!(checked_counter_add(i64::MAX as u64 - 1, 1), Some(i64::MAX as u64));
        assert_eq!(checked_counter_add(i64::MAX as u64, 1), None);
        assert_eq!(checked_counter_add(0, u64::MAX), None);
    }
}
