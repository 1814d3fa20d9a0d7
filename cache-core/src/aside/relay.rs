//! The relay of a [`RangeCache`](crate::RangeCache): failed bumps retried
//! in the background ([`Relay`]), and the application's outbox drained
//! ([`OutboxRelay`]).
//!
//! The decisions (what is pending, when the next round is due, which
//! reads it keeps out of the cache) are [`Pending`]'s, in the sans-IO
//! core; this file only performs them with Tokio: a task is spawned when
//! the first bump fails and ends when nothing is pending any more.
//!
//! The task holds the relay, not the cache: a `RangeCache` dropped with
//! bumps still pending leaves them to the task, which retries until they
//! land or the runtime shuts down.
//!
//! Why Tokio's clock and not the cache's injected [`Clock`](crate::Clock):
//! that clock is the data's time (logical expiry, a simulated day); the
//! retry schedule is about a server coming back, in real time (and tests
//! control it with `tokio::time::pause`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

use crate::backend::Backend;
use crate::error::{BoxError, Error, Result};
use crate::flow::{Added, Aside, CacheMetrics, Pending, PendingId, ReadFlow};
use crate::instrumented::Instrumented;
use crate::outbox::{decode, Outbox, OutboxId};
use crate::view::{Change, View};

/// Changes applied at once while catching up after the probe succeeded:
/// enough that a backlog of a thousand bumps is applied in tens of round
/// trips, few enough not to flood a server that just came back.
const CATCH_UP: usize = 16;

/// Outbox rows one poll reads.
pub const OUTBOX_BATCH: usize = 256;

/// What the driver keeps with each pending change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    /// Announced with `begin_write`: re-applied with `end_write`.
    fenced: bool,
    /// Its outbox row, deleted once the change is applied.
    row: Option<OutboxId>,
}

/// The relay's counters, merged into [`CacheMetrics`].
#[derive(Debug, Default)]
struct Counts {
    queued: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    reapplied: AtomicU64,
    outbox_applied: AtomicU64,
    quarantined: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// True for an error a later attempt may not get: the server did not
/// answer, or answered something a retry can change. Errors about the
/// request itself (a key the strategy cannot build, an unsupported
/// operation) would fail the same way forever.
fn retryable(e: &Error) -> bool {
    !matches!(
        e,
        Error::InvalidKey { .. }
            | Error::InvalidTtl { .. }
            | Error::NotSupported { .. }
            | Error::Config { .. }
            | Error::Setting { .. }
            | Error::ValueTooLarge { .. }
            | Error::Codec { .. }
    )
}

/// Failed bumps of one cache, and the task that retries them.
#[derive(Debug)]
pub(crate) struct Relay {
    aside: Arc<Aside>,
    /// The write path's backend (its counters are the cache's write stats).
    backend: Instrumented<Arc<dyn Backend>>,
    pending: Mutex<Pending<Tag>>,
    /// `pending.len()`, readable without the lock: reads check it first,
    /// so a cache with nothing pending takes no lock per read.
    len: AtomicUsize,
    outbox: Option<Arc<dyn Outbox>>,
    counts: Counts,
    /// A retry task is alive.
    running: AtomicBool,
    origin: tokio::time::Instant,
}

impl Relay {
    pub(crate) fn new(
        aside: Arc<Aside>,
        backend: Instrumented<Arc<dyn Backend>>,
        outbox: Option<Arc<dyn Outbox>>,
    ) -> Self {
        Relay {
            pending: Mutex::new(Pending::new(aside.retry_policy())),
            aside,
            backend,
            len: AtomicUsize::new(0),
            outbox,
            counts: Counts::default(),
            running: AtomicBool::new(false),
            origin: tokio::time::Instant::now(),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending<Tag>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the table and publishes its new length.
    fn with_pending<R>(&self, f: impl FnOnce(&mut Pending<Tag>) -> R) -> R {
        let mut p = self.pending();
        let r = f(&mut p);
        self.len.store(p.len(), Ordering::Release);
        r
    }

    /// Now on the relay's monotonic clock, as the table's `SystemTime`.
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + self.origin.elapsed()
    }

    /// Changes pending now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn outbox(&self) -> Option<&Arc<dyn Outbox>> {
        self.outbox.as_ref()
    }

    /// A new read of `view` (see [`Aside::read_for`]).
    pub(crate) fn read_for(&self, view: &View) -> ReadFlow {
        if self.len() == 0 {
            return self.aside.read();
        }
        self.aside.read_for(view, &self.pending())
    }

    /// Adds the relay's counters to `m`.
    pub(crate) fn add_counts(&self, m: &mut CacheMetrics) {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        m.bumps_queued += get(&c.queued);
        m.bumps_dropped += get(&c.dropped);
        m.bump_retries += get(&c.retries);
        m.bumps_reapplied += get(&c.reapplied);
        m.outbox_applied += get(&c.outbox_applied);
        m.outbox_quarantined += get(&c.quarantined);
    }

    /// The bump of `change` failed with `error`: queue it for retry (or
    /// count it dropped) and make sure a task retries it.
    pub(crate) fn failed(self: &Arc<Self>, change: &Change, fenced: bool, row: Option<OutboxId>, error: &Error) {
        if !retryable(error) {
            bump(&self.counts.dropped);
            tracing::error!(scope = %change.scope, %error, "invalidation failed and cannot be retried; feeds may be stale until the TTL");
            return;
        }
        let now = self.now();
        let added = self.with_pending(|p| p.add(change.clone(), Tag { fenced, row }, now));
        match added {
            Added::Queued(_) => {
                bump(&self.counts.queued);
                tracing::warn!(scope = %change.scope, %error, "invalidation failed; queued for retry, this process bypasses the cache for it meanwhile");
                self.ensure_running();
            }
            _ => {
                bump(&self.counts.dropped);
                tracing::error!(scope = %change.scope, %error, "invalidation failed and the retry queue is full; feeds may be stale until the TTL unless an outbox holds it");
            }
        }
    }

    /// Starts the retry task unless one is alive. Outside a Tokio runtime
    /// nothing can be spawned: the change stays queued and the next failed
    /// bump made inside a runtime starts the task.
    fn ensure_running(self: &Arc<Self>) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(self.clone().run());
            }
            Err(_) => {
                self.running.store(false, Ordering::Release);
                tracing::error!("no Tokio runtime: failed invalidations stay queued until one fails inside a runtime");
            }
        }
    }

    /// The retry task: rounds when due, until nothing is pending.
    async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let p = self.pending();
                match p.next_round() {
                    Some(at) => at,
                    None => {
                        // Cleared while holding the lock that `failed`
                        // adds under: a change added after this sees the
                        // flag down and starts a new task.
                        self.running.store(false, Ordering::Release);
                        return;
                    }
                }
            };
            let wait = next.duration_since(self.now()).unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait).await;
            self.round().await;
        }
    }

    /// One round: the oldest change alone, then, if it went through, the
    /// rest, [`CATCH_UP`] at a time.
    async fn round(self: &Arc<Self>) {
        let ids = self.pending().due(self.now());
        let Some((&probe, rest)) = ids.split_first() else {
            return;
        };
        if !self.attempt(probe).await {
            let now = self.now();
            self.with_pending(|p| p.failed(now));
            return;
        }
        let mut failed = false;
        let mut rest = rest.iter().copied();
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < CATCH_UP {
                let Some(id) = rest.next() else { break };
                let me = self.clone();
                tasks.spawn(async move { me.attempt(id).await });
            }
            match tasks.join_next().await {
                Some(ok) => failed |= !ok.unwrap_or(false),
                None => break,
            }
        }
        if failed {
            let now = self.now();
            self.with_pending(|p| p.failed(now));
        }
    }

    /// Re-applies pending change `id`; false when it is still pending.
    async fn attempt(&self, id: PendingId) -> bool {
        let Some((change, tag)) = ({
            let p = self.pending();
            p.change(id).cloned().zip(p.tag(id).copied())
        }) else {
            return true; // applied meanwhile (by the outbox relay)
        };
        bump(&self.counts.retries);
        match self.aside.reapply(&self.backend, &change, tag.fenced).await {
            Ok(()) => {
                self.with_pending(|p| p.applied(id));
                bump(&self.counts.reapplied);
                tracing::info!(scope = %change.scope, "queued invalidation applied");
                self.outbox_done(tag.row).await;
                true
            }
            Err(e) if !retryable(&e) => {
                self.with_pending(|p| p.remove(id));
                bump(&self.counts.dropped);
                tracing::error!(scope = %change.scope, error = %e, "queued invalidation cannot be applied; dropped");
                true
            }
            Err(_) => false,
        }
    }

    /// Deletes the outbox row of a change that reached the cache. A
    /// failure leaves the row to the relays, which apply it once more.
    pub(crate) async fn outbox_done(&self, row: Option<OutboxId>) {
        if let (Some(outbox), Some(id)) = (&self.outbox, row) {
            if let Err(e) = outbox.done(id).await {
                tracing::warn!(row = id, error = %e, "deleting an applied outbox row failed; a relay will apply it again");
            }
        }
    }

    /// Applies one outbox row's change (as the end of a write) and, when a
    /// change of this process waits for the same row, takes it off the
    /// table.
    async fn apply_row(&self, id: OutboxId, change: &Change) -> Result<()> {
        self.aside.reapply(&self.backend, change, true).await?;
        self.with_pending(|p| {
            for pid in p.ids_where(|t| t.row == Some(id)) {
                p.remove(pid);
            }
        });
        Ok(())
    }
}

/// What one [`OutboxRelay::poll_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayRound {
    /// Rows the outbox returned.
    pub rows: usize,
    /// Rows applied and deleted.
    pub applied: usize,
    /// Rows that did not decode (or can never be applied), set aside.
    pub quarantined: usize,
    /// The round stopped at a row whose bump failed (the cache is down):
    /// it and the rows after it wait for the next poll.
    pub stopped: bool,
}

/// Drains the application's [`Outbox`]: every process runs one
/// ([`RangeCache::outbox_relay`](crate::RangeCache::outbox_relay)), so a
/// writer that crashed between its commit and its bump still gets its
/// change applied. See [`crate::outbox`].
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    relay: Arc<Relay>,
    outbox: Arc<dyn Outbox>,
    poll: Duration,
    grace: Duration,
}

impl OutboxRelay {
    pub(crate) fn new(relay: Arc<Relay>, outbox: Arc<dyn Outbox>, poll: Duration, grace: Duration) -> Self {
        OutboxRelay {
            relay,
            outbox,
            poll,
            grace,
        }
    }

    /// Polls every [`outbox_poll`](crate::CacheOptions::outbox_poll) for
    /// ever; spawn it (`tokio::spawn(relay.run())`) and abort the task to
    /// stop it. Errors are logged and the next poll tries again.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %e, "outbox poll failed; trying again at the next poll");
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// One poll: applies, oldest first, every row at least
    /// [`outbox_grace`](crate::CacheOptions::outbox_grace) old (up to
    /// [`OUTBOX_BATCH`]), deleting each once applied, and stops at the
    /// first whose bump fails. An error is the outbox's (the database's).
    pub async fn poll_once(&self) -> Result<RelayRound, BoxError> {
        let rows = self.outbox.due(self.grace, OUTBOX_BATCH).await?;
        let counts = &self.relay.counts;
        let mut round = RelayRound {
            rows: rows.len(),
            ..RelayRound::default()
        };
        for row in rows {
            let change = match decode(&row.record) {
                Ok(change) => change,
                Err(e) => {
                    tracing::error!(row = row.id, error = %e, "outbox row does not decode; quarantined");
                    self.outbox.quarantine(row.id, &e.to_string()).await?;
                    bump(&counts.quarantined);
                    round.quarantined += 1;
                    continue;
                }
            };
            bump(&counts.retries);
            match self.relay.apply_row(row.id, &change).await {
                Ok(()) => {
                    self.outbox.done(row.id).await?;
                    bump(&counts.outbox_applied);
                    round.applied += 1;
                }
                Err(e) if !retryable(&e) => {
                    tracing::error!(row = row.id, error = %e, "outbox row cannot be applied; quarantined");
                    self.outbox.quarantine(row.id, &e.to_string()).await?;
                    bump(&counts.quarantined);
                    round.quarantined += 1;
                }
                Err(e) => {
                    tracing::warn!(row = row.id, error = %e, "applying an outbox row failed; next poll");
                    round.stopped = true;
                    break;
                }
            }
        }
        Ok(round)
    }
}
