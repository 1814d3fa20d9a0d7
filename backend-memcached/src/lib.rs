//! # backend-memcached
//!
//! A [`cache_core::Backend`] on Memcached: one server, or a pool of servers
//! with keys spread by consistent hashing. It passes the shared conformance
//! suite unchanged (`tests/conformance.rs`), on one server and on a pool of
//! two.
//!
//! # Layout
//!
//! - [`backend`]: [`MemcachedBackend`], the contract on the meta protocol,
//!   and why the client was chosen (read its type docs).
//! - `conn` (private): the pipelined meta-protocol connection (one writer
//!   at a time batching every queued request, one reader task matching
//!   replies in order by opaque token) and the per-server pool of them.
//! - [`errors`]: mapping failures to `cache_core::Error` (naming backend,
//!   key and server) and [`ServerIoError`].
//! - [`options`]: [`MemcachedOptions`], built in code or from a URL.
//! - [`ring`]: [`Ring`], the ketama-style consistent-hash ring.
//! - [`ttl`]: how TTLs are sent (rounding, absolute times, the 2038 clamp).
//! - [`settings`]: reading a server's item size limit (`stats settings`)
//!   at connect.
//!
//! # Example
//!
//! ```no_run
//! use backend_memcached::MemcachedBackend;
//! use cache_core::{Backend, Bytes, Key};
//! # async fn demo() -> cache_core::Result<()> {
//! let cache = MemcachedBackend::from_url("memcache://127.0.0.1:11211?timeout_ms=200").await?;
//! let key = Key::new("calendar_feed:{cal:1}:2025-10")?;
//! cache.set(&key, Bytes::from_static(b"[...]"), Some(std::time::Duration::from_secs(300))).await?;
//! assert!(cache.get(&key).await?.is_some());
//! # Ok(()) }
//! ```
//!
//! # Connecting to your own Memcached
//!
//! Give the servers as a URL (or build [`MemcachedOptions`] in code):
//!
//! | URL | meaning |
//! |---|---|
//! | `memcache://127.0.0.1:11211` | one local server |
//! | `memcache://cache-1` | port 11211 by default |
//! | `memcache://10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211` | a pool of three |
//! | `memcache://[::1]:11211` | IPv6 literal |
//! | `memcache://cache-1?timeout_ms=200&connect_timeout_ms=100` | command / connect timeouts |
//! | `memcache://cache-1?connections=2` | pipelined connections per server (default 1) |
//! | `memcache://cache-1?item_size=4194304` | servers run with `-I 4m`: allow larger values |
//! | `memcache://cache-1?max_value_size=100000` | cap values explicitly |
//! | `memcache://cache-1?check_on_connect=false` | start even if a server is down |
//!
//! Every process that shares a pool must list the same servers (in any
//! order): the [`ring`] maps each key to a server from the server strings
//! alone, so two processes agree without talking to each other. There is no
//! TLS or SASL support; reach a remote server over a private network or a tunnel.
//!
//! # Semantics worth knowing
//!
//! - **Keys** longer than 250 bytes or containing spaces/control characters
//!   are stored under [`cache_core::key::safe_key`]'s deterministic mapping;
//!   errors still name your key.
//! - **Values** above [`MemcachedOptions::max_value_size`] (default: what a
//!   stock `-I 1m` server accepts with a 250-byte key, minus headroom;
//!   lowered at connect to what the servers report in `stats settings`) are
//!   rejected before sending with `ValueTooLarge`. Memcached itself would
//!   answer `SERVER_ERROR` *and delete the old value*.
//! - **TTLs** are whole seconds on memcached's coarse clock: an entry lives
//!   at least its TTL and at most 2 s longer
//!   ([`capabilities().ttl_granularity`](cache_core::Capabilities::ttl_granularity)).
//!   TTLs over 30 days are sent as absolute Unix times, and TTLs reaching
//!   past memcached's signed 32-bit clock (2038-01-19) are clamped to it, so
//!   `Duration::MAX` means "keep as long as the server can".
//! - **Counters**: `incr` never creates, never wraps at 2^64, never touches a
//!   non-counter; see [`MemcachedBackend`]'s `incr`.
//! - **Prefix deletion** is not supported (Memcached cannot enumerate keys);
//!   the strategies layer keeps a key index instead.
//! - **Faults**: an unreachable server gives `Unavailable` (naming
//!   `host:port`) or `Timeout` within the command timeout; the same backend
//!   object reconnects by itself once the server is back.
//!
//! # Performance
//!
//! Many tasks share one pipelined connection, so 64 tasks read ~1.9× what
//! `memaslap -c 50` does (BENCHMARKS.md, `memcached/get/64-tasks`). One
//! task at a time is pure round-trip latency; measured against `memaslap
//! -c 1 -T 1` on the same server (100-byte values, 2-core VM, 2026-12-01):
//!
//! - **System calls per get are the same**: `strace -c` counts one
//!   `sendto`, one `epoll_wait` and one `recvfrom` per get for this client
//!   (on a 1- or 2-worker Tokio runtime), and one `sendmsg`, one
//!   `epoll_wait` and one `read` per operation for memaslap, which is also
//!   event-driven (libevent).
//! - **CPU per operation is the same**: `perf stat` gives 27.3 µs of task
//!   clock per get here (24.8 µs on a current-thread runtime) against
//!   27.1 µs for memaslap, one context switch per operation each.
//! - **Where it goes**: `perf record` of one task's gets puts 83% of the
//!   client's samples in the kernel (the socket's wake-up of the sleeping
//!   `epoll_wait` and the task switch back), 12% in the client's own code
//!   and Tokio, 4% in libc.
//! - **Standalone, the rates are close**: in nine alternating runs one
//!   task did 0.91–1.37× memaslap's operations/s. On the idle machine,
//!   with the suite's own workload file (90% get / 10% set, 100-byte
//!   values), it was 0.91–0.99× (14.3k–16.0k against 15.7k–16.1k).
//!   Inside the `backend_load` suite the comparison read 0.83–0.90× in
//!   full `benches/run`s (recorded as missed in BENCHMARKS.md), and 1.00×,
//!   0.97× and 0.98× in three re-runs of the suite right after the last
//!   one, with and without its Redis half: the full runs' low figures look
//!   like noisy spells of a shared 2-core VM (±15%), not a cost of the
//!   client.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod backend;
mod conn;
pub mod errors;
pub mod options;
pub mod ring;
pub mod settings;
pub mod ttl;

pub use backend::MemcachedBackend;
pub use errors::ServerIoError;
pub use options::MemcachedOptions;
pub use ring::Ring;
pub use ttl::{MAX_EXPIRY_UNIX, TTL_GRANULARITY};

/// The name this backend reports in errors and [`cache_core::Backend::name`].
pub const BACKEND_NAME: &str = "memcached";
