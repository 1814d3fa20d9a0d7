//! Two tiers, one truth: an in-process L1 (locmem, one per process) in
//! front of a shared L2 (Redis, Memcached, any [`Backend`](crate::Backend)), coherent across
//! processes, for the [`stamped`](crate::strategy::stamped) strategy.
//!
//! # When to use it
//!
//! Several app processes (gunicorn workers, pods) serve the same feeds:
//!
//! | setup | stale reads | a hit costs |
//! |---|---|---|
//! | locmem per process | yes: a write invalidates only its own process | nothing |
//! | shared L2 only | none | 1 round trip carrying the whole entry (5–10 KB) |
//! | [`TwoTier`] without backplane | none (as L2 alone) | 1 round trip carrying only the generations (~20 B) |
//! | [`TwoTier`] with a [`Backplane`] | only within the backplane's delivery latency after a bump | no round trip |
//! | [`TwoTier`] with a [`Tracker`] (Redis client tracking) | only within the server's invalidation delivery after a bump | no round trip while tracked |
//!
//! Build it once per process and hand it to [`RangeCache`](crate::RangeCache)
//! with the `stamped` strategy:
//!
//! ```ignore
//! let l2 = Arc::new(RedisBackend::connect(url).await?);
//! let tracker = Arc::new(RedisTracker::connect(url).await?);
//! let cache = TwoTier::builder(Arc::new(LocmemBackend::new()), l2).tracking(tracker).build()?;
//! let feeds = RangeCache::builder(Arc::new(cache)).strategy("stamped").build()?;
//! ```
//!
//! Tracking needs Redis 6 or later (RESP3); with a Memcached L2, or a Redis
//! whose proxy forbids `CLIENT TRACKING`, use a Redis pub/sub backplane
//! (`RedisBackplane`) instead.
//!
//! With any other strategy the wrapper is correct but buys nothing: only
//! stamped entries are kept in L1, because only they can be checked.
//!
//! # How a read works
//!
//! `stamped` reads a view as one `get_many [generation keys…, entry]`. The
//! wrapper looks at L1 first (in-process, free):
//!
//! - **No stamped entry in L1**: the whole batch from L2, one round trip,
//!   exactly as without L1; a fresh entry L2 sent is copied into L1.
//! - **A stamped entry in L1**: only the generation keys are read from L2
//!   (one round trip of a few bytes; none when the table of known
//!   generations, fed by tracking or a backplane, knows them). The L1 entry is served only when its stamps equal those
//!   generations, in batch order, and its envelope has not expired;
//!   otherwise the L2 entry is read (a second round trip, once per process
//!   after each bump or expiry: another process may have refilled it).
//!   L1 copies live as long as their envelope stays fresh, at most
//!   [`TwoTierBuilder::l1_ttl`]. `stamped` checks the
//!   stamps again, so an entry is never served under a generation it was
//!   not computed under.
//!
//! Generations live only in L2, the source of truth. Writes (`incr`,
//! `add`, non-entry `set`s, deletes) go to L2; entries are stored in both.
//!
//! # Tracking
//!
//! With [`TwoTierBuilder::tracking`], generation reads go through the
//! [`Tracker`]: the server remembers which keys each process's tracking
//! connection read and tells it when one changes (Redis `CLIENT TRACKING`,
//! `backend_redis::RedisTracker`). Generations read that way are kept in
//! [`KnownGenerations`], each with the connection ("source") that vouches
//! for it, and an L1 hit whose generations are all known makes no round
//! trip. Rules:
//!
//! - An invalidation makes the table forget the key; the next read fetches
//!   it through the tracker again (and tracks it again).
//! - A connection that closes or breaks may have lost invalidations: the
//!   table forgets everything read through it (only that server's keys on
//!   a cluster), and reads go to L2 untracked, learning nothing, until the
//!   tracker has a new connection with tracking on.
//! - This process's own writes only make it forget (never chain a bump):
//!   the server stops tracking a key for a connection once it has sent it
//!   the invalidation, so a value chained locally would be vouched for by
//!   nobody.
//! - Trust does not expire ([`TwoTierBuilder::trust_for`] applies to a
//!   backplane): the server reports every change while connected.
//!
//! **The race between a read and an invalidation.** A read notes the
//! table's epoch before it is sent, and afterwards learns only keys that
//! no notice named (and whose connection did not drop or come back) since.
//! The server starts tracking a key for a connection when it executes the
//! read, and queues the invalidation of any later write of that key on the
//! same connection after the read's reply. So the invalidation is applied
//! after the read was sent: before the read learns (it moved the epoch and
//! named the key: the read does not learn it) or after (it removes what the
//! read learnt). A value the server has already invalidated is never
//! installed; staleness is bounded by the invalidation's delivery. The
//! Redis details, and a test of this on a real server, are in
//! `backend_redis::RedisTracker`'s docs.
//!
//! # The backplane
//!
//! Every write that may change a generation publishes a notice naming the
//! key. A bump (`incr`) carries the value before and after
//! (`Notice::Bumped`): a subscriber that knew the value before now knows
//! the new one, so after a write every process still knows its
//! generations and its next L1 hit makes no round trip. Any other change
//! (a reseed, a delete) makes subscribers forget the key, and the next read
//! learns the new value from L2. Generations read from L2 while subscribed
//! are kept in [`KnownGenerations`], so a hit whose generations are all
//! known makes no round trip. Safety rules:
//!
//! - Nothing is trusted while the subscription is down, and everything
//!   learnt before it dropped is forgotten: reads fall back to L2
//!   generations until it is back (never serving on unknown state).
//! - A generation read from L2 is not remembered if a notice naming its
//!   key (or every key) arrived while the read was in flight (it may
//!   predate the change).
//! - A bump is applied only where it extends the value the table knows;
//!   notices from different writers may arrive out of order, and one that
//!   does not chain makes the table forget the key instead of guessing
//!   ([`KnownGenerations`], "Bumps").
//! - Notices cannot be lost silently: each process numbers
//!   the notices it publishes, and a subscriber that sees a number skipped
//!   forgets everything it knows ([`KnownGenerations`], "Numbered
//!   notices"). A publish that fails is offered again (three attempts in
//!   all); if it never gets through, the publishing process forgets
//!   everything it knows and the write returns the error (FusionCache's
//!   backplane auto-recovery is the model). So a lost notice is caught at
//!   its publisher's next notice; with fenced writes that is the end of
//!   the same write.
//! - A remembered generation is trusted for [`TwoTierBuilder::trust_for`]
//!   at most after it was learnt or last extended by a notice (an hour by
//!   default): the backstop for what numbering cannot catch, a publisher's
//!   last notice lost with nothing after it, or an unfenced writer that
//!   died between its `incr` and its publish. It is also what an L1 hit can
//!   still cost: once per `trust_for`, a process asks L2 for a generation
//!   again (see the builder for the trade-off, measured).
//!
//! The price is staleness: a process serves its L1 copy until the notice
//! arrives, so a read can be stale for up to the delivery latency after the
//! commit when writes are fenced (`RangeCache::begin_write` publishes the
//! fence as a notice too), or the commit-to-bump window plus the delivery
//! latency when they are only invalidated (the simulator asserts both
//! bounds on `multi-process-two-tier`). Redis pub/sub provides a backplane
//! (`backend_redis::RedisBackplane`); Memcached has no publish/subscribe,
//! so with a Memcached L2 use no backplane (or Redis for the backplane
//! alone). An in-process hub (`LocalBackplane`, `unstable-internals`) with a modelled delivery
//! latency and faults (a lost notice, a failed publish), for the simulator
//! and tests; the simulator models tracking likewise, with a delivery
//! latency per invalidation.
//!
//! # In configuration
//!
//! `backend_any::spec` is the one grammar of `two-tier[/<option>,…]:<l1>+<l2>`
//! specs, which `backend-any` URLs and the simulator's `--backend` share.

mod backplane;
mod known;
crate::internal_mod!(local_backplane);
crate::internal_mod!(
    /// The simulator's model of a tracking server.
    local_tracking
);
mod notice;
mod stats;
mod tracking;
mod two_tier;

pub use backplane::Backplane;
pub use known::KnownGenerations;
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub use local_backplane::LocalBackplane;
pub use stats::TierStats;
pub use tracking::{TrackedValue, Tracker};
pub use two_tier::{TwoTier, TwoTierBuilder, DEFAULT_L1_TTL, DEFAULT_TRUST_FOR};
