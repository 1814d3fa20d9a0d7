//! # backend-locmem
//!
//! An in-process [`Backend`](cache_core::Backend) on [`moka::sync::Cache`]: bounded by bytes,
//! per-entry TTL, atomic `incr` and `add`, prefix deletion. It is the
//! embedded default of the simulator and the reference the other backends are
//! compared with.
//!
//! ```
//! use backend_locmem::LocmemBackend;
//! use cache_core::{Backend, Bytes, Key};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! let cache = LocmemBackend::builder().max_capacity_bytes(64 << 20).build();
//! let key = Key::new("calendar_version:{cal:1}")?;
//! assert!(cache.add(&key, Bytes::from_static(b"0"), None).await?);
//! assert_eq!(cache.incr(&key, 1).await?, 1);
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Atomicity.** Every write (`set`, `add`, `incr`, `delete`) holds one of
//!   256 striped mutexes, chosen by the key's hash, for its
//!   read-modify-write; reads take no lock. moka's own `and_compute_with`
//!   would serialise computes on a key, but its plain `insert` does not take
//!   that lock, so `set` would have to be a compute too, which measured ~1 µs
//!   slower per call than `insert` plus an uncontended stripe lock (~30 ns).
//! - **No lock is held across an `.await`.** The store is moka's synchronous
//!   cache and every operation runs to completion in its first poll (a test
//!   checks it). With moka's async cache and async stripe locks, a future
//!   that took a stripe and was then left unpolled by its caller (a
//!   `buffered` stream whose consumer awaits something else, a losing
//!   `select!` branch kept alive) would block every other write to that
//!   stripe: a "futurelock". There is nothing to wait for in an in-process
//!   map, so nothing is lost by not yielding; moka's maintenance (evictions)
//!   runs inline, in short steps. It also measured ~10% less CPU per
//!   simulated request than the async cache.
//! - **Time.** moka cannot take a custom clock, so each entry stores its
//!   logical expiry according to the backend's [`Clock`](cache_core::Clock) and reads compare
//!   against it: with a [`cache_core::ManualClock`] a TTL expires exactly when
//!   the test (or simulator) moves time past it. moka's own per-entry expiry is
//!   set from the same TTL only when the clock follows real time, as a bound on
//!   how long dead entries occupy memory; with a manual clock, memory is bounded
//!   by capacity alone and [`LocmemBackend::purge_expired`] drops dead entries,
//!   and moka is built without an expiry policy (it would run a callback per
//!   operation and a timer wheel per maintenance pass for nothing: 1.4% of a
//!   simulated request's instructions).
//! - **Capacity** is counted in bytes (key + value + a fixed per-entry
//!   overhead) by a weigher; moka evicts by TinyLFU when it is exceeded, as a
//!   cache may. What a value counts as can be replaced
//!   ([`LocmemBuilder::value_size`]): the simulator stores feeds that declare
//!   their padding rather than carry it, and is charged the padded size.
//! - **Prefix deletion** visits only the keys of one hash tag when the prefix
//!   names one (`ns:w:{cal:7}:d:`, the way the strategies build keys): from
//!   the first `delete_prefix` on, the store keeps its keys grouped by their
//!   first `{tag}` (a copy of each key, not counted by the weigher). Other
//!   prefixes scan every key. A store that never deletes by prefix pays
//!   nothing. In the simulator this took `wildcard`'s invalidations from
//!   ~270 µs to ~7 µs each.
//! - **Keys.** moka is keyed by a 64-bit seeded hash of the key (foldhash,
//!   randomly seeded per store unless [`LocmemBuilder::hash_seed`] fixes it);
//!   the entry keeps the full key and every lookup compares it, so a hash
//!   collision can only read as a miss, never as another key's value.
//! - **Determinism** ([`LocmemBuilder::deterministic`]): moka's pending
//!   bookkeeping is applied after every write, so what it evicts depends on
//!   the operations alone, never on wall time (the simulator's reports
//!   repeat byte for byte).
//! - **TTLs** too large for the clock (`Duration::MAX`) mean "never expires"
//!   (the contract allows clamping), never an overflow.
//!
//! # Layout
//!
//! - `backend.rs`: [`LocmemBackend`] and its `Backend` implementation.
//! - `builder.rs`: [`LocmemBuilder`], the options.
//! - `entry.rs`: what moka stores per key, and the expiry policy moka reads.
//! - `fingerprint.rs`: moka's key (a seeded fingerprint) and its pass-through hasher.
//! - `index.rs`: the per-hash-tag key index behind `delete_prefix`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod backend;
mod builder;
mod entry;
mod fingerprint;
mod index;

pub use backend::LocmemBackend;
pub use builder::{LocmemBuilder, ValueSize};

/// Default capacity: 256 MiB.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 << 20;
/// Default largest value: 1 MiB, Memcached's default item size, so that a
/// workload that fits here also fits a default Memcached.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1 << 20;
/// Write-lock stripes: enough that unrelated keys rarely share one on two cores.
pub(crate) const STRIPES: usize = 256;
