//! The read driver of a [`RangeCache`](crate::RangeCache): it runs a
//! [`ReadFlow`] (the sans-IO core's decisions) with real awaits, Tokio's
//! timers for the load timeouts, and channels for single-flight waiters.
//!
//! # Timeouts, and why there are two ways to call the loader
//!
//! The timeouts are measured in real time (Tokio's clock, which tests can
//! pause), not on the injected [`Clock`]: that clock is the
//! data's time (logical expiry); a timeout is about a database that is
//! slow now.
//!
//! - **Hard timeout**: the loader's future is dropped (its query
//!   cancelled) and the read is answered by fail-safe, or fails with
//!   [`LoadError::Timeout`]; the requests that waited for it do the same.
//! - **Soft timeout**: a read with a fail-safe entry that has waited this
//!   long is answered with it. What happens to the load depends on who
//!   owns it:
//!   - [`RangeCache::get_or_load`](crate::RangeCache::get_or_load) and
//!     [`RangeCache::fetch`](crate::RangeCache::fetch) take a loader that
//!     may borrow from the caller (`FnOnce() -> Fut`, no `'static`, no
//!     `Send`), so it cannot outlive the call and cannot be spawned. The
//!     requests that **wait** on a load (single-flight followers) are
//!     answered at their soft timeout, while the **leader** waits for its
//!     own loader, up to the hard timeout, and stores the result. With
//!     many readers of one view that is most of them; with one reader per
//!     view (most feeds) it is none, and p99 during a slow database is
//!     the database's latency (or the hard timeout).
//!   - [`RangeCache::fetch_detached`](crate::RangeCache::fetch_detached)
//!     takes a loader that owns what it needs (`Send + 'static`) and runs
//!     it as its own task: the leader is answered at its soft timeout too,
//!     and the task finishes the load, hands the value to the followers
//!     still waiting, stores it, and counts it
//!     ([`CacheMetrics::background_refreshes`](crate::CacheMetrics::background_refreshes)).
//!     A read then waits at most the soft timeout for the database when
//!     it has a fail-safe entry, so p99 during a slow database is the soft
//!     timeout plus the cache round trips before it. This is what the
//!     simulator models.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::meters::{BackendStep, Meters};
use super::relay::Relay;
use super::LoadError;
use crate::backend::Backend;
use crate::clock::Clock;
use crate::envelope::EntryBuf;
use crate::flow::{Aside, CacheMetrics, FailSafe, FlightId, Flights, Handoff, Outcome, ReadFlow, Served, Step};
use crate::instrumented::Instrumented;
use crate::key::Key;
use crate::view::View;

/// What [`RangeCache::fetch`](crate::RangeCache::fetch) answered: the view's
/// payload, and whether fail-safe answered it (a service says so in a
/// response header, e.g. `x-cache-fail-safe: current`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// The payload (from the cache, the loader, or fail-safe).
    pub value: Bytes,
    /// `Some` when the database failed or was too slow and the entry
    /// stored for the view answered instead (fail-safe), with what kind
    /// of entry it was.
    pub fail_safe: Option<FailSafe>,
}

/// A waiter of this driver: where the leader sends its handoff (a dropped
/// sender means the leader went away).
pub(super) type Waiter = oneshot::Sender<Handoff>;

/// What the read path of one cache shares with its background loads.
#[derive(Debug)]
pub(super) struct Reader {
    pub(super) name: String,
    pub(super) aside: Arc<Aside>,
    pub(super) backend: Instrumented<Arc<dyn Backend>>,
    pub(super) clock: Arc<dyn Clock>,
    // std mutexes, not Tokio's: each is held only to update a map or a few
    // counters, never across an await, and std's is cheaper for that.
    pub(super) flights: Mutex<Flights<Waiter>>,
    pub(super) tally: Mutex<CacheMetrics>,
    pub(super) meters: Meters,
    /// Failed bumps: a read they cover skips the cache.
    pub(super) relay: Arc<Relay>,
}

/// Ends a leader's flight when the leader is dropped mid-load (its future
/// cancelled): the waiters' senders drop with it, so they take over instead
/// of waiting on a ghost.
struct LeadGuard {
    reader: Arc<Reader>,
    key: Key,
    id: FlightId,
    armed: bool,
}

impl Drop for LeadGuard {
    fn drop(&mut self) {
        if self.armed {
            drop(self.reader.flights().abandon(&self.key, self.id));
        }
    }
}

/// Aborts a detached load's task when the request waiting for it is
/// cancelled before its soft timeout, as dropping a borrowed loader's
/// future cancels it.
struct AbortOnDrop<T>(Option<JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// How a load step ended.
pub(super) enum Ran<E> {
    /// The loader returned.
    Done(Result<Bytes, E>),
    /// The hard timeout passed; the loader was dropped.
    HardTimeout,
    /// The soft timeout passed; the detached load goes on in its task.
    Soft(JoinHandle<Result<Bytes, E>>),
    /// The detached load's task ended without a result (the runtime is
    /// shutting down).
    Lost,
    /// The loader was used already (a flow loads at most once).
    Used,
}

/// A read in progress: its flow, its flight guard, its loader's error.
struct State<E> {
    flow: ReadFlow,
    guard: Option<LeadGuard>,
    load_error: Option<E>,
    lost: bool,
}

/// How [`Reader::drive`] left a read.
enum Driven<E> {
    /// The flow is done.
    Done(State<E>),
    /// Answered at the soft timeout while its detached load goes on: the
    /// caller runs the rest in a task ([`Reader::finish_detached`]).
    Soft(Detached<E>),
}

/// A read answered at its soft timeout, and its load still running.
struct Detached<E> {
    state: State<E>,
    handle: JoinHandle<Result<Bytes, E>>,
    /// When the load started, on the cache's clock and in real time.
    start: std::time::SystemTime,
    t: Instant,
    /// What is left of the hard timeout.
    remaining: Option<Duration>,
}

/// Sleeps `d`, or forever for `None`.
async fn sleep_for(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

impl Reader {
    pub(super) fn tally(&self) -> MutexGuard<'_, CacheMetrics> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flights(&self) -> MutexGuard<'_, Flights<Waiter>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read of `view` whose loader may borrow from the caller: it runs
    /// in the caller's task (see the module docs).
    pub(super) async fn read<F, Fut, E>(self: &Arc<Self>, view: &View, loader: F) -> Result<Answer, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let mut loader = Some(loader);
        let load = |_soft: Option<Duration>, hard: Option<Duration>| {
            let f = loader.take();
            async move {
                let Some(f) = f else { return Ran::Used };
                match hard {
                    Some(h) => match tokio::time::timeout(h, f()).await {
                        Ok(r) => Ran::Done(r),
                        Err(_) => Ran::HardTimeout,
                    },
                    None => Ran::Done(f().await),
                }
            }
        };
        let flow = self.relay.read_for(view);
        match self.drive(view, new_state(flow), load).await {
            Driven::Done(state) => self.answer(view, state),
            // Unreachable: a borrowed loader never detaches.
            Driven::Soft(d) => {
                d.handle.abort();
                self.answer(view, d.state)
            }
        }
    }

    /// A read of `view` whose loader runs as its own task, so that the
    /// leader too is answered at the soft timeout (see the module docs).
    pub(super) async fn read_detached<F, Fut, E>(
        self: &Arc<Self>,
        view: &View,
        loader: F,
    ) -> Result<Answer, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: Send + 'static,
    {
        let mut loader = Some(loader);
        let load = |soft: Option<Duration>, hard: Option<Duration>| {
            let f = loader.take();
            async move {
                let Some(f) = f else { return Ran::Used };
                let mut task = AbortOnDrop(Some(tokio::spawn(f())));
                let Some(handle) = task.0.as_mut() else {
                    return Ran::Used;
                };
                tokio::select! {
                    r = handle => match r {
                        Ok(r) => Ran::Done(r),
                        // The loader panicked: the caller sees it, as it
                        // would with a loader run in its own task.
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => Ran::Lost,
                    },
                    () = sleep_for(soft) => match task.0.take() {
                        Some(h) => Ran::Soft(h),
                        None => Ran::Lost,
                    },
                    // Dropping `task` aborts the load.
                    () = sleep_for(hard) => Ran::HardTimeout,
                }
            }
        };
        let flow = self.relay.read_for(view);
        match self.drive(view, new_state(flow), load).await {
            Driven::Done(state) => self.answer(view, state),
            Driven::Soft(d) => {
                let (payload, outcome) = (d.state.flow.payload().cloned(), *d.state.flow.outcome());
                let reader = self.clone();
                let view = view.clone();
                tokio::spawn(async move { reader.finish_detached(view, d).await });
                self.answered(payload, outcome)
            }
        }
    }

    /// Performs `state`'s steps until its flow is done, or until it is
    /// answered at the soft timeout while its detached load goes on (the
    /// rest then runs in a task). `load` calls the loader with the soft
    /// and hard timeouts that apply.
    async fn drive<E, L, LF>(self: &Arc<Self>, view: &View, mut state: State<E>, mut load: L) -> Driven<E>
    where
        L: FnMut(Option<Duration>, Option<Duration>) -> LF,
        LF: Future<Output = Ran<E>>,
    {
        let aside = &*self.aside;
        let backend: &dyn Backend = &self.backend;
        loop {
            let flow = &mut state.flow;
            match flow.step() {
                Step::Plan => {
                    let t = Instant::now();
                    let plan = aside.plan(backend, view).await;
                    self.meters.backend(BackendStep::Plan, t.elapsed());
                    flow.planned(plan);
                }
                Step::Get => {
                    let got = match flow.fetch_key() {
                        Some(key) => {
                            let t = Instant::now();
                            let got = backend.get(key).await;
                            self.meters.backend(BackendStep::Get, t.elapsed());
                            got
                        }
                        None => Ok(None),
                    };
                    flow.fetched(got, self.clock.now(), aside);
                }
                Step::Join => {
                    let (tx, rx) = oneshot::channel();
                    let wait = flow.join(&mut self.flights(), tx);
                    if wait {
                        // A follower: its soft timeout, if it has a
                        // fail-safe entry; the leader enforces the hard one.
                        match flow.soft_timeout() {
                            Some(soft) => match tokio::time::timeout(soft, rx).await {
                                Ok(handed) => flow.handed(handed.unwrap_or(Handoff::Gone)),
                                // Its sender stays in the flight; the
                                // leader's send then fails, harmlessly.
                                Err(_) => flow.soft_timed_out(),
                            },
                            None => flow.handed(rx.await.unwrap_or(Handoff::Gone)),
                        }
                    } else if let (Some(id), Some(key)) = (flow.flight(), flow.key()) {
                        state.guard = Some(LeadGuard {
                            reader: self.clone(),
                            key: key.clone(),
                            id,
                            armed: true,
                        });
                    }
                }
                Step::Load => {
                    let start = self.clock.now();
                    let t = Instant::now();
                    let (soft, hard) = (flow.soft_timeout(), flow.hard_timeout());
                    match load(soft, hard).await {
                        Ran::Done(result) => {
                            self.meters.load(t.elapsed());
                            let now = self.clock.now();
                            let took = now.duration_since(start).unwrap_or(Duration::ZERO);
                            match result {
                                Ok(v) => flow.loaded(Some(EntryBuf::from_payload(&v)), took, now),
                                Err(e) => {
                                    state.load_error = Some(e);
                                    flow.loaded(None, took, now);
                                }
                            }
                        }
                        Ran::HardTimeout => {
                            self.meters.load(t.elapsed());
                            flow.load_timed_out();
                        }
                        Ran::Lost => {
                            state.lost = true;
                            flow.loaded(None, t.elapsed(), self.clock.now());
                        }
                        Ran::Soft(handle) => {
                            flow.soft_timed_out();
                            let remaining = hard.map(|h| h.saturating_sub(t.elapsed()));
                            return Driven::Soft(Detached {
                                state,
                                handle,
                                start,
                                t,
                                remaining,
                            });
                        }
                        // Unreachable: a flow loads at most once.
                        Ran::Used => break,
                    }
                }
                Step::Publish => {
                    let (waiters, value) = flow.publish(&mut self.flights());
                    if value.is_none() {
                        // The flight is over; nothing for the guard to do.
                        if let Some(g) = state.guard.as_mut() {
                            g.armed = false;
                        }
                    }
                    let handoff = flow.handoff();
                    for w in waiters {
                        let _ = w.send(handoff.clone());
                    }
                }
                Step::Store => {
                    let t = Instant::now();
                    let r = aside.store(backend, view, flow).await;
                    self.meters.backend(BackendStep::Store, t.elapsed());
                    if let Err(e) = &r {
                        tracing::warn!(error = %e, key = ?flow.key().map(Key::as_str), "storing the loaded view failed");
                    }
                    flow.stored(r);
                }
                Step::Finish => {
                    flow.finish(&mut self.flights());
                    if let Some(g) = state.guard.as_mut() {
                        g.armed = false;
                    }
                }
                _ => break,
            }
        }
        Driven::Done(state)
    }

    /// The rest of a read answered at its soft timeout: waits for its
    /// load (up to what is left of the hard timeout), then publishes,
    /// stores and counts it.
    async fn finish_detached<E>(self: Arc<Self>, view: View, detached: Detached<E>) {
        let Detached {
            mut state,
            handle,
            start,
            t,
            remaining,
        } = detached;
        let mut task = AbortOnDrop(Some(handle));
        let ran = match task.0.as_mut() {
            Some(handle) => match remaining {
                Some(d) => tokio::time::timeout(d, handle).await.ok(),
                None => Some(handle.await),
            },
            None => None,
        };
        self.meters.load(t.elapsed());
        let now = self.clock.now();
        let took = now.duration_since(start).unwrap_or(Duration::ZERO);
        match ran {
            Some(Ok(Ok(v))) => state.flow.loaded(Some(EntryBuf::from_payload(&v)), took, now),
            Some(Ok(Err(e))) => {
                state.load_error = Some(e);
                state.flow.loaded(None, took, now);
            }
            Some(Err(e)) => {
                tracing::warn!(cache = %self.name, error = %e, "a detached load's task failed");
                state.flow.loaded(None, took, now);
            }
            None => state.flow.load_timed_out(),
        }
        let done = |_: Option<Duration>, _: Option<Duration>| async { Ran::<E>::Used };
        if let Driven::Done(state) = self.drive(&view, state, done).await {
            let outcome = *state.flow.outcome();
            if outcome.load_failed || outcome.timed_out {
                tracing::warn!(
                    cache = %self.name,
                    timed_out = outcome.timed_out,
                    "a load that went on after its soft timeout failed; the fail-safe entry stays"
                );
            }
            self.tally().record_late(&outcome);
            self.meters.late(&outcome);
        }
    }

    /// Counts a read answered at the soft timeout and returns its answer.
    fn answered<E>(&self, payload: Option<Bytes>, outcome: Outcome) -> Result<Answer, LoadError<E>> {
        self.record(&outcome);
        match payload {
            Some(value) => Ok(Answer {
                value,
                fail_safe: outcome.fail_safe,
            }),
            // `soft_timed_out` answers only with a fail-safe entry.
            None => Err(LoadError::Cache(crate::error::Error::Backend {
                backend: self.backend.name().to_owned(),
                key: None,
                message: "a read answered at its soft timeout had no fail-safe entry".to_owned(),
            })),
        }
    }

    /// Counts a read and records its outcome on the current span.
    fn record(&self, outcome: &Outcome) {
        if outcome.read_error {
            tracing::warn!(
                strategy = self.aside.strategy().name(),
                "cache read failed; answered by the loader"
            );
        }
        if let Some(kind) = outcome.fail_safe {
            tracing::warn!(
                cache = %self.name,
                fail_safe = kind.as_str(),
                timed_out = outcome.timed_out || outcome.soft_timed_out,
                "the database failed or was too slow; answered by fail-safe"
            );
        }
        self.tally().record(outcome);
        self.meters.read(outcome);
        let span = tracing::Span::current();
        span.record("outcome", served_name(outcome.served));
        span.record("bypassed", outcome.bypassed);
        if let Some(kind) = outcome.fail_safe {
            span.record("fail_safe", kind.as_str());
        }
    }

    /// The answer of a finished flow.
    fn answer<E>(&self, view: &View, mut state: State<E>) -> Result<Answer, LoadError<E>> {
        let outcome = *state.flow.outcome();
        self.record(&outcome);
        if let Some(e) = state.flow.take_error() {
            return Err(LoadError::Cache(e));
        }
        match (state.flow.into_payload(), state.load_error) {
            (Some(value), _) => Ok(Answer {
                value,
                fail_safe: outcome.fail_safe,
            }),
            (None, Some(e)) => Err(LoadError::Loader(e)),
            (None, None) if outcome.timed_out => Err(LoadError::Timeout {
                after: self.aside.options().hard_timeout.unwrap_or_default(),
            }),
            (None, None) if state.lost => Err(LoadError::Cache(crate::error::Error::Backend {
                backend: self.backend.name().to_owned(),
                key: None,
                message: format!(
                    "the loader's task for a view over {} scope(s) ended without a result",
                    view.scopes.len()
                ),
            })),
            // A loader that failed in another request cannot reach here: a
            // waiter told `Failed` answers by fail-safe or leads its own load.
            (None, None) => {
                debug_assert!(false, "a read flow ended with neither a value nor a load");
                Ok(Answer {
                    value: Bytes::new(),
                    fail_safe: None,
                })
            }
        }
    }
}

fn new_state<E>(flow: ReadFlow) -> State<E> {
    State {
        flow,
        guard: None,
        load_error: None,
        lost: false,
    }
}

/// How a read was answered, as the span's `outcome` field says it.
fn served_name(served: Served) -> &'static str {
    match served {
        Served::Hit => "hit",
        Served::Loaded => "loaded",
        Served::Coalesced => "coalesced",
        Served::Failed => "load_failed",
        Served::CacheFailed => "cache_failed",
        Served::FailSafe => "fail_safe",
        _ => "pending",
    }
}
