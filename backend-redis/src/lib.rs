//! # backend-redis
//!
//! A [`cache_core::Backend`] on Redis: one server, or a Redis Cluster. Every
//! call obeys the core contract (see [`cache_core::Backend`]) and is bounded
//! by a command timeout; one [`RedisBackend`] object serves any number of
//! concurrent tasks over multiplexed, automatically reconnecting connections.
//!
//! ```no_run
//! use backend_redis::RedisBackend;
//! use cache_core::{Backend, Bytes, Key};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! let cache = RedisBackend::connect("redis://127.0.0.1:6379/0").await?;
//! let key = Key::new("calendar_version:{cal:1}")?;
//! // Seed the counter if it is missing (`incr` never creates one), then bump it.
//! cache.add(&key, Bytes::from_static(b"0"), None).await?;
//! let version = cache.incr(&key, 1).await?;
//! assert!(version >= 1);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `config`: the URL forms, [`RedisOptions`] and [`RedisBackendBuilder`].
//! - `backend`: [`RedisBackend`] itself: commands, the `incr` script, slot
//!   grouping for clusters.
//! - `errors`: client errors as the core's (unavailable, timeout, "not
//!   Redis").
//! - `backplane`: [`RedisBackplane`], Redis pub/sub as the backplane of a
//!   [`TwoTier`](cache_core::tier::TwoTier) cache (numbered
//!   generation-change notices between processes, reconnecting
//!   subscriber).
//! - `tracking`: [`RedisTracker`], Redis client tracking (RESP3
//!   invalidation pushes) keeping the two tiers coherent instead: one
//!   tracking connection per server or cluster master, the race between a
//!   read and an invalidation argued in its docs.
//!
//! # Connecting to your own Redis / Redis Cluster
//!
//! | URL | meaning |
//! | --- | --- |
//! | `redis://127.0.0.1:6379/0` | one server, database 0 |
//! | `redis://:secret@cache.internal:6379/2` | with a password (`requirepass`), database 2 |
//! | `redis://app:secret@cache.internal:6379/0` | ACL user `app` |
//! | `rediss://cache.internal:6380/0` | TLS; needs the `tls` cargo feature (rustls, off by default). The server's certificate is checked against the public roots (webpki-roots), or against your CA with [`RedisBackendBuilder::tls_root_certificates`]; an unknown issuer fails the connection (`invalid peer certificate: UnknownIssuer`). Tested against a real TLS `redis-server` |
//! | `redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000` | a Redis Cluster: comma-separated seed nodes (any reachable subset of the masters will do; the client discovers the rest) |
//! | `redis+cluster://app:secret@10.0.0.1:7000,10.0.0.2:7000` | cluster with an ACL user (the same credentials for every node) |
//! | `rediss+cluster://…` | cluster over TLS (feature `tls`) |
//!
//! A cluster has only database 0, so the cluster form takes no path. The
//! [`Backend::name`](cache_core::Backend::name) is `"redis"` for one server and
//! `"redis-cluster"` for a cluster; errors name it, the key, and for
//! connection failures the URL with the password replaced by `***`.
//! Timeouts and the value limit are set on the builder:
//!
//! ```no_run
//! # use std::time::Duration;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! let cache = backend_redis::RedisBackend::builder("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
//!     .connect_timeout(Duration::from_secs(2))
//!     .command_timeout(Duration::from_millis(200))
//!     .build()
//!     .await?;
//! # let _ = cache; Ok(()) }
//! ```
//!
//! # Key design: one scope, one hash slot
//!
//! On a cluster, a multi-key command is only legal when all its keys hash to
//! one slot. This backend hides that: `get_many`, `set_many` and
//! `delete_many` group the keys by slot and send one `MGET` / pipeline /
//! `UNLINK` per group, concurrently, results in input order. But every extra
//! slot is an extra round trip to (possibly) another node, so callers should
//! put everything that is read or invalidated together into one slot with a
//! hash tag: only the part between the first `{` and the next `}` is hashed.
//! For the calendar feeds that means `{cal:<id>}` in every key of one
//! calendar, e.g. `calendar_feed:{cal:7}:2025-10` and
//! `calendar_version:{cal:7}` ([`cache_core::Key::from_parts`] keeps braces
//! in trusted parts and escapes them in user input, so a user cannot move a
//! key to another slot). On a single server hash tags cost nothing.
//!
//! # Semantics on Redis
//!
//! - **TTL**: sent as `PX` milliseconds, sub-millisecond remainders rounded
//!   up; `Some(ZERO)` deletes (`set`) or does nothing (`add`), per the
//!   contract. TTLs beyond ~146 million years (`Duration::MAX`) are clamped
//!   to that, the longest the server's clock can add.
//! - **`add`** is `SET key value NX [PX ms]`.
//! - **`incr`** runs a Lua script (atomic on the server): Redis's `INCRBY`
//!   would create a missing key, accept negative numbers and reject leading
//!   zeros, none of which the contract allows; the script checks first, lets
//!   `INCRBY` detect overflow (leaving the value untouched) and keeps the TTL.
//! - **`delete_prefix`**: `SCAN MATCH <escaped prefix>* COUNT 1000` and
//!   `UNLINK` of each batch; on a cluster, on every master in turn.
//! - **Errors**: connection refused or broken, `CLUSTERDOWN`, `MASTERDOWN`,
//!   `TRYAGAIN`, `LOADING` and a `MOVED`/`ASK` left after the client's
//!   redirect retries (a topology in flux) are [`Error::Unavailable`](cache_core::Error::Unavailable);
//!   a command that does not finish within the command timeout (including
//!   the wait for a reconnect) is [`Error::Timeout`](cache_core::Error::Timeout);
//!   other server errors are [`Error::Backend`](cache_core::Error::Backend).
//!   After the server is back the same object works again: the single-node
//!   connection manager and the cluster client both reconnect by themselves.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod backend;
mod backplane;
mod config;
mod errors;
mod tracking;

pub use backend::RedisBackend;
pub use backplane::{RedisBackplane, DEFAULT_PUBLISH_TIMEOUT, DEFAULT_RECONNECT_DELAY};
pub use config::{
    RedisBackendBuilder, RedisOptions, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_VALUE_SIZE,
};
pub use tracking::{RedisTracker, DEFAULT_TRACKING_RECONNECT_DELAY};
