//! The sans-IO core of cache-aside: every decision of a read (plan, hit or
//! miss, join an in-flight load, early refresh, fail-open, fail-safe and
//! the loader's timeouts, store) and of a
//! write (invalidate), taken in one place and driven by two drivers.
//!
//! This is the shape of quinn-proto and rustls: the decisions are a state
//! machine ([`ReadFlow`]) that performs no I/O and reads no clock. It says
//! which [`Step`] to take next; the driver performs it and feeds the result
//! back, with the time where freshness needs one.
//!
//! - [`RangeCache`](crate::RangeCache) drives it with real awaits, the
//!   system (or an injected) clock, and Tokio channels for waiters.
//! - The simulator (`cache-sim`) drives it in virtual time, charging each
//!   step its modelled latency, with request slots for waiters.
//!
//! So the code the simulator judges is the code an application runs: a new
//! strategy or layer is written once and is simulated by construction.
//!
//! # The steps of a read
//!
//! ```text
//! Plan ─▶ Get ─▶ fresh entry ─▶ Done (hit)
//!  │       └──▶ miss / expired / XFetch early refresh / error
//!  │              └─▶ Join ─▶ another load in flight: wait ─▶ Done (coalesced)
//!  │                    └──▶ lead ─▶ Load ─▶ Publish ─▶ Store ─▶ Finish ─▶ Done
//!  └─ plan error (fail-open) ─▶ Load ─▶ Done (uncached)
//!
//! a bump of the view pending in this process (Aside::read_for):
//!    Load ─▶ Done (uncached: no plan, no join, no store)
//!
//! fail-safe (an expired or old-stamped entry kept at Get):
//!    Load fails / hard timeout ─▶ answered by the entry ─▶ Publish (waiters: fail-safe or retry)
//!    soft timeout while waiting ─▶ answered by the entry; a leader's load goes on ─▶ Publish ─▶ Store
//! ```
//!
//! Single-flight is per process: [`Flights`] is one table per process (per
//! `RangeCache`; per simulated app process). Nothing is coordinated across
//! processes: that would take a lock in the shared store.
//!
//! So are failed bumps: [`Pending`] holds the changes whose invalidation
//! did not reach the cache, until a retry applies them, and a read that
//! one of them covers skips the cache from the start
//! ([`Aside::read_for`]: `Plan` is replaced by `Load`). See
//! [`pending`] for the retry schedule and the bound on staleness it gives.
//!
//! The backend work of a step (the strategy's plan, its store, its
//! invalidation) is done by [`Aside::plan`], [`Aside::store`] and
//! [`Aside::invalidate`], so drivers never call a strategy themselves.
//!
//! # Fail-safe and the loader's timeouts
//!
//! With fail-safe on ([`CacheOptions::fail_safe_max_age`]) a read that
//! finds an entry the strategy would not serve keeps it aside
//! ([`ReadFlow::has_fallback`]), opened by the strategy's stored form and
//! classified by its [`Liveness`](crate::strategy::Liveness): `Expired`
//! (or live but refreshed early) is [`FailSafe::Current`], `StaleStamps`
//! is [`FailSafe::Stale`], and so is any entry read inside an open write
//! (fenced: the write may have committed; the plan must have read the
//! entry itself, as `stamped`'s does, so that this costs no round trip);
//! an entry under another key is never kept. It answers the read when the load fails
//! ([`ReadFlow::loaded`] with `None`), when the hard timeout passes
//! ([`ReadFlow::load_timed_out`]), when the leader this read waited for
//! failed or timed out ([`ReadFlow::handed`]), or at the soft timeout
//! ([`ReadFlow::soft_timed_out`]; a leader stays at `Load`, answered, and
//! its load goes on to publish and store), and only if its logical expiry
//! passed less than the max age ago. Each read finds one entry (the one
//! under its key), so "prefer current stamps" is decided by the strategy's
//! layout: what it can offer is
//!
//! | strategy | after its TTL | after a write to its scope |
//! |---|---|---|
//! | `stamped` | `current` (stable key, stamps still current) | `stale` (same key, old stamps) |
//! | `versioned`, `bucketed`, `naive-versioned` | `current` (the key carries the generations) | nothing: the bump moved the view to a new key (the old one is only reachable by its old generation) |
//! | `wildcard`, `range-expansion`, `fixed-month` | `current` ("not deleted": no stamps to tell) | nothing when the delete named the key; when it missed it (the strategy's own hazard) the old entry answers as `current` |
//! | `short-ttl` | `current` ("not expired long ago": it never invalidates) | the same |
//!
//! Keeping an entry past its logical expiry needs the store to keep it:
//! [`ReadFlow::loaded`] stores every entry for its TTL plus the max age
//! (the plan's TTL, so a strategy's key index lives as long), and the
//! strategies' generations live twice that
//! ([`CacheOptions::control_ttl`]). What a strategy guarantees to normal
//! reads is unchanged (the logical expiry decides them); only fail-safe
//! answers, marked and counted, come from the extra time.
//!
//! The timeouts are measured by the driver (real time in `RangeCache`,
//! virtual time in the simulator) and fed to the flow; the flow says which
//! apply ([`ReadFlow::soft_timeout`]: only with a fail-safe entry;
//! [`ReadFlow::hard_timeout`]). Past the hard timeout the load is given up
//! and its waiters are told ([`Handoff::TimedOut`]): they answer by
//! fail-safe or fail, rather than wait once more.
//!
//! # Layout
//!
//! - `mod.rs`: [`Aside`] (the strategy plus the read policy of its
//!   [`CacheOptions`]: single-flight, XFetch and its seeded draws,
//!   fail-open, fail-safe and the loader's timeouts).
//! - `read.rs`: [`ReadFlow`], [`Step`].
//! - `outcome.rs`: what a read came to ([`Served`], [`Outcome`],
//!   [`FailSafe`]) and what a leader hands its waiters ([`Handoff`]).
//! - `flights.rs`: [`Flights`], the single-flight table.
//! - `pending.rs`: [`Pending`], the bumps a process failed to apply, their
//!   retry schedule, and the reads they keep out of the cache.
//! - `metrics.rs`: [`CacheMetrics`], the counters both drivers keep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::Backend;
use crate::envelope::Envelope;
use crate::error::Result;
use crate::hash::{splitmix64, unit_open_zero, GOLDEN_GAMMA};
use crate::options::CacheOptions;
use crate::strategy::{ReadPlan, Strategy};
use crate::view::{Change, View};

pub mod flights;
pub mod metrics;
pub mod outcome;
pub mod pending;
pub mod read;

pub use flights::{Begin, FlightId, Flights};
pub use metrics::CacheMetrics;
pub use pending::{Added, Pending, PendingId, RetryPolicy};
pub(crate) use outcome::Policy;
pub use outcome::{FailSafe, Handoff, Outcome, Served};
pub use read::{ReadFlow, Step};


/// One strategy with its read policy: starts [`ReadFlow`]s and performs
/// the strategy's backend work for the drivers. Shareable between tasks.
#[derive(Debug)]
pub struct Aside {
    strategy: Arc<dyn Strategy>,
    options: CacheOptions,
    rng: AtomicU64,
}

impl Aside {
    /// `strategy` read with the read policy of `options` (single-flight,
    /// XFetch seeded from [`CacheOptions::seed`], fail-open).
    pub fn new(strategy: Arc<dyn Strategy>, options: CacheOptions) -> Self {
        Aside {
            rng: AtomicU64::new(options.seed),
            strategy,
            options,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> &Arc<dyn Strategy> {
        &self.strategy
    }

    /// The options (of which the read policy's are used here).
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// A new read, at [`Step::Plan`], for a driver that keeps no
    /// [`Pending`] table (as [`Aside::read_for`] with an empty one).
    pub fn read(&self) -> ReadFlow {
        ReadFlow::new(Policy::of(&self.options))
    }

    /// A new read of `view` in a process whose failed bumps are `pending`:
    /// at [`Step::Plan`], or, when a pending change covers the view
    /// ([`Pending::covers`]), straight at [`Step::Load`] with
    /// [`Outcome::pending_bypass`] set: the cache may still hold what that
    /// change should have invalidated, so it neither answers, nor
    /// coalesces, nor is filled.
    pub fn read_for<T>(&self, view: &View, pending: &Pending<T>) -> ReadFlow {
        let mut flow = self.read();
        if pending.covers(view) {
            flow.bypass_pending();
        }
        flow
    }

    /// The retry schedule of failed bumps, from the options
    /// ([`CacheOptions::bump_retry_min`], [`CacheOptions::bump_retry_max`]).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.options.bump_retry_min, self.options.bump_retry_max)
    }

    /// Re-applies a change whose bump failed: [`Aside::end_write`] when
    /// the write was announced (`fenced`; it also lifts a fence the
    /// `begin_write` may have left open), [`Aside::invalidate`] otherwise.
    ///
    /// Re-applying may apply a bump twice (the first attempt may have
    /// reached the server although its answer did not come back). Every
    /// strategy tolerates that: a second bump costs a miss per entry, and
    /// `stamped` re-creates a fenced generation whose halves are out of
    /// step (more ends than begins) at a fresh settled start, which is a
    /// bump too; the price is that a write of the same scope still open
    /// at that moment loses its fence and has the plain commit-to-bump
    /// window until its own end.
    pub async fn reapply(&self, backend: &dyn Backend, change: &Change, fenced: bool) -> Result<()> {
        if fenced {
            self.end_write(backend, change).await
        } else {
            self.invalidate(backend, change).await
        }
    }

    /// [`Step::Plan`]: the strategy derives the view's key (reading or
    /// seeding generations on `backend`). Run it **before** the database is
    /// queried: that ordering is what makes generation-based strategies
    /// immune to the stale-set race.
    pub async fn plan(&self, backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        self.strategy.plan_read(backend, view).await
    }

    /// [`Step::Store`]: the strategy stores `flow`'s loaded entry.
    pub async fn store(&self, backend: &dyn Backend, view: &View, flow: &ReadFlow) -> Result<()> {
        match (flow.plan(), flow.entry()) {
            (Some(plan), Some(entry)) => self.strategy.store(backend, view, plan, entry.clone()).await,
            _ => Ok(()),
        }
    }

    /// The write path: after a write has committed, invalidate what
    /// `change` affects.
    pub async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        self.strategy.invalidate(backend, change).await
    }

    /// The fenced write path, first half: before the write commits,
    /// announce it ([`Strategy::begin_write`]).
    pub async fn begin_write(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        self.strategy.begin_write(backend, change).await
    }

    /// The fenced write path, second half: after the commit (or its
    /// failure), invalidate and lift the fence ([`Strategy::end_write`]).
    pub async fn end_write(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        self.strategy.end_write(backend, change).await
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): true when this
    /// reader should recompute a still-fresh entry, i.e. when
    /// `now − Δ·β·ln(rand) ≥ expiry`, `Δ` being how long the entry's load
    /// took. `rand` comes from this `Aside`'s seeded stream, so a
    /// simulation repeats exactly.
    pub(crate) fn refresh_early(&self, envelope: &Envelope, now: SystemTime) -> bool {
        let (Some(beta), Some(expires)) = (self.options.xfetch_beta, envelope.expires_at) else {
            return false;
        };
        let mut state = self.rng.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed);
        let r = unit_open_zero(splitmix64(&mut state));
        let gap = -envelope.load_time.as_secs_f64() * beta * r.ln();
        if !gap.is_finite() || gap <= 0.0 {
            return false;
        }
        now.checked_add(Duration::from_secs_f64(gap.min(1e9)))
            .is_none_or(|t| t >= expires)
    }
}

#[cfg(test)]
mod fail_safe_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EntryBuf;
    use crate::error::Error;
    use crate::flow::flights::Flights;
    use crate::key::Key;
    use crate::strategy::{by_name, CacheOptions};
    use bytes::Bytes;
    use std::time::UNIX_EPOCH;

    fn aside(single_flight: bool, beta: Option<f64>) -> Aside {
        let s = by_name("fixed-month", &CacheOptions::default()).unwrap();
        Aside::new(
            s,
            CacheOptions::default()
                .with_single_flight(single_flight)
                .with_xfetch(beta),
        )
    }

    fn planned(a: &Aside) -> ReadFlow {
        let mut f = a.read();
        f.planned(Ok(ReadPlan::new(Key::new("k").unwrap(), Some(Duration::from_secs(60)))));
        f
    }

    fn entry(expires_s: u64, load_ms: u64) -> Bytes {
        let mut b = EntryBuf::from_payload(b"v");
        b.payload_mut();
        b.seal(
            Some(UNIX_EPOCH + Duration::from_secs(expires_s)),
            Duration::from_millis(load_ms),
        )
        .0
    }

    #[test]
    fn fresh_entries_hit_expired_and_corrupt_ones_miss() {
        let a = aside(true, None);
        let mut f = planned(&a);
        f.fetched(Ok(Some(entry(100, 1))), UNIX_EPOCH + Duration::from_secs(99), &a);
        assert_eq!((f.step(), f.outcome().served), (Step::Done, Served::Hit));
        let mut f = planned(&a);
        f.fetched(Ok(Some(entry(100, 1))), UNIX_EPOCH + Duration::from_secs(100), &a);
        assert_eq!(f.step(), Step::Join, "expired: a miss, coalesced");
        let mut f = planned(&a);
        f.fetched(Ok(Some(Bytes::from_static(b"junk"))), UNIX_EPOCH, &a);
        assert!(f.outcome().corrupt_entry);
        let b = aside(false, None);
        let mut f = planned(&b);
        f.fetched(
            Err(Error::Unavailable {
                backend: "x".into(),
                key: None,
                source: "down".into(),
            }),
            UNIX_EPOCH,
            &b,
        );
        assert_eq!(f.step(), Step::Load, "without single-flight a miss loads at once");
        assert!(f.outcome().read_error);
    }

    #[test]
    fn a_failed_plan_loads_uncached_and_stores_nothing() {
        let a = aside(true, None);
        let mut f = a.read();
        f.planned(Err(Error::Unavailable {
            backend: "x".into(),
            key: None,
            source: "down".into(),
        }));
        assert_eq!(f.step(), Step::Load);
        f.loaded(Some(EntryBuf::from_payload(b"p")), Duration::ZERO, UNIX_EPOCH);
        assert_eq!(f.step(), Step::Done);
        assert_eq!(f.payload().map(|p| &p[..]), Some(&b"p"[..]));
        assert!(f.outcome().read_error && f.outcome().loader_called);
    }

    #[test]
    fn followers_get_the_leaders_value_or_take_over_after_a_failure() {
        let a = aside(true, None);
        let mut flights = Flights::new();
        let (mut leader, mut follower) = (planned(&a), planned(&a));
        for f in [&mut leader, &mut follower] {
            f.fetched(Ok(None), UNIX_EPOCH, &a);
        }
        assert!(!leader.join(&mut flights, 1));
        assert!(follower.join(&mut flights, 2), "the second waits");
        assert_eq!(leader.step(), Step::Load);
        leader.loaded(None, Duration::ZERO, UNIX_EPOCH);
        let (waiters, value) = leader.publish(&mut flights);
        assert_eq!((waiters, value), (vec![2], None));
        assert_eq!(leader.outcome().served, Served::Failed);
        follower.joined(None);
        assert_eq!(follower.step(), Step::Join, "takes over");
        assert!(!follower.join(&mut flights, 2));
        follower.loaded(Some(EntryBuf::from_payload(b"v")), Duration::ZERO, UNIX_EPOCH);
        let mut late = planned(&a);
        late.fetched(Ok(None), UNIX_EPOCH, &a);
        let (waiters, _) = follower.publish(&mut flights);
        assert!(waiters.is_empty());
        assert!(!late.join(&mut flights, 3), "a value being stored is handed out");
        assert_eq!(late.outcome().served, Served::Coalesced);
        assert_eq!(follower.step(), Step::Store);
        follower.stored(Ok(()));
        follower.finish(&mut flights);
        assert!(flights.is_empty());
    }

    #[test]
    fn a_pending_bump_sends_covered_reads_to_the_loader_alone() {
        use crate::view::{Scope, TimeRange};
        let a = aside(true, None);
        let day = |d: &str| chrono::DateTime::parse_from_rfc3339(d).unwrap();
        let oct = View::new(
            [Scope::new("cal:1").unwrap()],
            TimeRange::new(day("2025-10-01T00:00:00Z"), day("2025-11-01T00:00:00Z")).unwrap(),
        )
        .unwrap();
        let mut pending = Pending::default();
        assert_eq!(a.read_for(&oct, &pending).step(), Step::Plan);
        let write = TimeRange::new(day("2025-10-15T00:00:00Z"), day("2025-10-16T00:00:00Z")).unwrap();
        pending.add(
            Change::new(Scope::new("cal:1").unwrap(), [write]).unwrap(),
            (),
            UNIX_EPOCH,
        );
        let mut f = a.read_for(&oct, &pending);
        assert_eq!(f.step(), Step::Load, "no plan: nothing read, nothing joined");
        f.loaded(Some(EntryBuf::from_payload(b"fresh")), Duration::ZERO, UNIX_EPOCH);
        assert_eq!(f.step(), Step::Done, "and nothing stored");
        assert!(f.outcome().pending_bypass && f.outcome().loader_called);
        let mut m = CacheMetrics::default();
        m.record(f.outcome());
        assert_eq!((m.pending_bypassed, m.misses, m.bypassed), (1, 1, 0));
    }

    #[test]
    fn xfetch_refreshes_some_fresh_entries_early_and_huge_ttls_never_overflow() {
        let a = aside(true, Some(1.0));
        let now = UNIX_EPOCH + Duration::from_secs(95);
        let mut early = 0;
        for _ in 0..1000 {
            let mut f = planned(&a);
            // 5 s before expiry with a 2 s load: about e^(-2.5) ≈ 8% refresh.
            f.fetched(Ok(Some(entry(100, 2000))), now, &a);
            early += u32::from(f.outcome().early_refresh);
        }
        assert!((30..200).contains(&early), "{early} early refreshes");
        let mut f = a.read();
        f.planned(Ok(ReadPlan::new(Key::new("k").unwrap(), Some(Duration::MAX))));
        f.fetched(Ok(None), UNIX_EPOCH, &a);
        f.join(&mut Flights::new(), ());
        f.loaded(Some(EntryBuf::from_payload(b"v")), Duration::MAX, SystemTime::now());
        assert!(f.entry().is_some());
    }
}
