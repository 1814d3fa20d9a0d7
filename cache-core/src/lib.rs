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
//! - `extract` (feature `axum`): [`View`] as an axum extractor, with the
//!   scopes a request may see (`extract::FeedScopes`).
//! - [`key`]: [`Key`] validation, building keys from user input safely, glob
//!   escaping, and the deterministic mapping to Memcached's key rules.
//! - [`view`]: the vocabulary: [`Scope`], [`TimeRange`], [`View`], [`Change`].
//! - [`fullcalendar`]: FullCalendar's whole feed query (`start`, `end`,
//!   `timeZone`, filters) straight to a [`View`] (offsets, `Z`, or a named
//!   zone with daylight saving), with an error a handler answers with 400.
//! - [`strategy`]: the invalidation strategies behind the [`Strategy`] trait
//!   (one file each) and the by-name registry [`strategy::by_name`].
//! - [`aside`]: [`RangeCache`], cache-aside for applications (single-flight,
//!   XFetch early refresh, fail-open, fenced writes, fail-safe and the
//!   loader's timeouts, metrics), built with
//!   [`RangeCache::builder`]. Every decision it takes lives in a sans-IO
//!   core (`flow`: a state machine with no I/O and no clock) that the
//!   simulator drives too, so what is simulated is what runs.
//! - [`options`]: [`CacheOptions`], every setting in one type.
//! - [`outbox`]: the transactional outbox: the [`Outbox`](outbox::Outbox)
//!   trait an application's database implements and the stored form of a
//!   [`Change`], so a committed write's invalidation survives a crash of
//!   its writer.
//! - [`tier`]: [`TwoTier`](tier::TwoTier), an in-process L1 in front of a
//!   shared L2 for `stamped` entries, coherent across processes, with
//!   optional server-assisted [`Tracker`](tier::Tracker) or
//!   [`Backplane`](tier::Backplane) so an L1 hit needs no round trip.
//! - [`redact`]: passwords out of backend URLs, the one redactor every
//!   crate shows URLs through.
//! - [`error`]: the one [`Error`] type, variants by meaning.
//! - [`clock`]: the injectable [`Clock`] ([`system_clock`], [`ManualClock`]).
//!
//! Private modules: `flow` (the sans-IO core), `envelope` (the stored form
//! of a view: payload, logical expiry, load time), `hash` (stable seeded
//! hashing), `wire` (a range end as FullCalendar writes it),
//! `instrumented` (the wrapper that counts a [`RangeCache`]'s round trips,
//! keys and latency per operation: [`RangeCache::read_stats`] gives its
//! figures as a [`StatsSnapshot`]), `fault` (a
//! backend wrapper that refuses every call while frozen, for fault tests
//! and the simulator's `--freeze`). With the `unstable-internals` feature
//! they are public for the simulator, the benchmarks and the workspace's
//! tests, together with what only those use: the stored forms strategies read back
//! (`strategy::StoredForm`), the in-process backplane
//! (`tier::LocalBackplane`) and the strategies that exist only to be
//! compared (`fixed-month`, `naive-versioned`, `range-expansion`,
//! `wildcard`: by name only). They are not part of the API and change
//! without notice.
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

/// Declares a module that is public only with the `unstable-internals`
/// feature (and hidden from the docs even then): the simulator and the
/// workspace's tests drive the sans-IO core and read stored forms through
/// these; applications must not, because they change without notice.
/// Without the feature the module is private, so its `pub` items are
/// unreachable by design and some are used only by the simulator.
macro_rules! internal_mod {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[cfg(feature = "unstable-internals")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$meta])*
        #[cfg(not(feature = "unstable-internals"))]
        #[allow(unreachable_pub, dead_code, unused_imports)]
        mod $name;
    };
}
pub(crate) use internal_mod;

pub mod aside;
pub mod backend;
pub mod clock;
internal_mod!(envelope);
pub mod error;
pub mod ext;
#[cfg(feature = "axum")]
pub mod extract;
internal_mod!(fault);
internal_mod!(flow);
pub mod fullcalendar;
internal_mod!(hash);
internal_mod!(instrumented);
pub mod key;
pub mod options;
pub mod outbox;
pub mod redact;
pub mod strategy;
pub mod tier;
pub mod view;
internal_mod!(wire);

pub use aside::{Answer, LoadError, OutboxRelay, RangeCache, RangeCacheBuilder};
pub use backend::{Backend, Capabilities, ServerStats, Ttl};
pub use clock::{system_clock, Clock, ManualClock};
pub use error::{BoxError, Error, Result};
pub use ext::BackendExt;
pub use flow::{CacheMetrics, FailSafe};
/// The counting wrapper itself, for the simulator and the benchmarks.
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub use instrumented::{Instrumented, OpStats};
pub use instrumented::{Op, OpSnapshot, StatsSnapshot};
pub use key::Key;
pub use options::CacheOptions;
/// A strategy's plan of a read, for the simulator's driver.
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub use strategy::ReadPlan;
pub use strategy::Strategy;
pub use view::{Change, Scope, TimeRange, View};

/// Re-exported so backends implementing [`Backend`] use the same version.
pub use async_trait::async_trait;
/// Re-exported: values are [`bytes::Bytes`].
pub use bytes::Bytes;
