//! # cache-core
//!
//! The core of a toolkit for caching range-keyed views (calendar feeds,
//! timelines, dashboards) and invalidating them correctly: one backend trait
//! with the same semantics on every store, and the pieces every backend and
//! the simulator share.
//!
//! # Layout
//!
//! - [`backend`]: the object-safe [`Backend`] trait, its `# Contract`, and
//!   [`Capabilities`]. Read this first.
//! - [`ext`]: [`BackendExt`], typed JSON values and `get_or_set` for every backend.
//! - [`key`]: [`Key`] validation, building keys from user input safely, glob
//!   escaping, and the deterministic mapping to Memcached's key rules.
//! - [`view`]: the vocabulary: [`Scope`], [`TimeRange`], [`View`], [`Change`].
//! - [`wire`]: a range end as FullCalendar writes it (offset, `Z`, or none plus
//!   a named zone with daylight saving) and as a server reads it back.
//! - [`fullcalendar`]: FullCalendar's whole feed query (`start`, `end`,
//!   `timeZone`, filters) straight to a [`View`], read with [`wire`], with an
//!   error a handler answers with 400.
//! - [`strategy`]: the invalidation strategies behind the [`Strategy`] trait
//!   (one file each) and the by-name registry [`strategy::by_name`].
//! - [`flow`]: the sans-IO core of cache-aside: every decision of a read
//!   (plan, hit or miss, single-flight, XFetch early refresh, fail-open,
//!   store) and of a write, as a state machine with no I/O and no clock.
//!   [`RangeCache`] and the simulator are its two drivers.
//! - [`aside`]: [`RangeCache`], the async driver of [`flow`] for
//!   applications (real awaits, a clock, metrics), built with
//!   [`RangeCache::builder`].
//! - [`options`]: [`CacheOptions`], every setting in one type.
//! - [`outbox`]: the transactional outbox: the [`Outbox`](outbox::Outbox)
//!   trait an application's database implements and the stored form of a
//!   [`Change`], so a committed write's invalidation survives a crash of
//!   its writer.
//! - [`fault`]: [`Frozen`](fault::Frozen), a backend wrapper that refuses
//!   every call while frozen (by hand, or over scheduled windows of a
//!   clock), for fault tests and the simulator.
//! - [`tier`]: [`TwoTier`](tier::TwoTier), an in-process L1 in front of a
//!   shared L2 for `stamped` entries, coherent across processes, with an
//!   optional [`Backplane`](tier::Backplane) so an L1 hit needs no round trip.
//! - [`hash`]: the stable, seeded hashing (SplitMix64, FNV-1a) every crate shares.
//! - [`envelope`]: the stored form of a view (payload + logical expiry + load time).
//! - [`error`]: the one [`Error`] type, variants by meaning.
//! - [`clock`]: the injectable [`Clock`] ([`SystemClock`], [`ManualClock`]).
//! - [`instrumented`]: [`Instrumented`], a wrapper that counts round trips,
//!   keys and latency per operation.
//!
//! The suites every backend runs (the backend contract's conformance suite,
//! the strategy scenarios) and the real-server harness for tests live in
//! the `cache-testkit` crate, a dev-dependency: this crate holds only the
//! library.
//!
//! # Example
//!
//! ```
//! use cache_core::{Backend, BackendExt, Key};
//! # async fn demo(cache: std::sync::Arc<dyn Backend>) -> cache_core::Result<()> {
//! let key = Key::from_parts(["calendar_feed", "{cal:1}"], ["2025-09-29", "2025-11-10"])?;
//! cache.set_json(&key, &vec!["standup", "retro"], None).await?;
//! let items: Option<Vec<String>> = cache.get_json(&key).await?;
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aside;
pub mod backend;
pub mod clock;
pub mod envelope;
pub mod error;
pub mod ext;
pub mod fault;
pub mod flow;
pub mod fullcalendar;
pub mod hash;
pub mod instrumented;
pub mod key;
pub mod options;
pub mod outbox;
pub mod strategy;
pub mod tier;
pub mod view;
pub mod wire;

pub use aside::{LoadError, OutboxRelay, RangeCache, RangeCacheBuilder};
pub use backend::{Backend, Capabilities, Ttl};
pub use clock::{system_clock, Clock, ManualClock, SystemClock};
pub use error::{BoxError, Error, Result};
pub use ext::BackendExt;
pub use flow::CacheMetrics;
pub use instrumented::{Instrumented, Op, OpSnapshot, OpStats, StatsSnapshot};
pub use key::Key;
pub use options::CacheOptions;
pub use strategy::{ReadPlan, Strategy, StrategyOptions};
pub use view::{Change, Scope, TimeRange, View};

/// Re-exported so backends implementing [`Backend`] use the same version.
pub use async_trait::async_trait;
/// Re-exported: values are [`bytes::Bytes`].
pub use bytes::Bytes;
