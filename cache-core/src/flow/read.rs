//! [`ReadFlow`]: the decisions of one cache-aside read, as a state machine
//! that a driver feeds with the results of the steps it asks for.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::envelope::EntryBuf;
use crate::error::{Error, Result};
use crate::flow::flights::{Begin, FlightId, Flights};
use crate::flow::outcome::{FailSafe, Handoff, Outcome, Policy, Served};
use crate::flow::Aside;
use crate::key::Key;
use crate::strategy::{Liveness, ReadPlan};

/// What the driver must do next for a [`ReadFlow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Run the strategy's plan ([`Aside::plan`]) and feed
    /// [`ReadFlow::planned`].
    Plan,
    /// Read [`ReadFlow::fetch_key`] from the backend (when it is `Some`:
    /// a strategy may have read the entry with its plan) and feed
    /// [`ReadFlow::fetched`].
    Get,
    /// Ask the process's single-flight table: [`ReadFlow::join`]. If it
    /// says to wait, feed [`ReadFlow::joined`] when the leader publishes.
    Join,
    /// Call the loader (the database) and feed [`ReadFlow::loaded`].
    Load,
    /// Hand the loaded value to the waiters: [`ReadFlow::publish`].
    Publish,
    /// Store [`ReadFlow::entry`] ([`Aside::store`]) and feed
    /// [`ReadFlow::stored`].
    Store,
    /// End this request's load in the single-flight table:
    /// [`ReadFlow::finish`].
    Finish,
    /// Nothing left: the request is answered ([`ReadFlow::outcome`],
    /// [`ReadFlow::payload`]).
    Done,
}

/// One number for a plan's generations, so that a load under some
/// generations is never shared with a request that planned under others
/// (`stamped` keeps one key across generations).
fn stamp_of(generations: &[u64]) -> u64 {
    generations
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15, |h, g| crate::hash::splitmix64(&mut (h ^ g)))
}

/// The decisions of one read: plan → get → hit, or miss → (join an
/// in-flight load | load) → publish → store. No I/O, no clock: the driver
/// performs each [`Step`] and feeds its result back, with the time where
/// freshness needs one.
///
/// ```
/// use cache_core::flow::{Aside, Flights, Step};
/// use cache_core::strategy::by_name;
/// use cache_core::CacheOptions;
/// use cache_core::{Backend, View};
/// # async fn demo(backend: &dyn Backend, view: &View) {
/// let aside = Aside::new(by_name("versioned", &CacheOptions::default()).unwrap(), CacheOptions::default());
/// let mut flights = Flights::<()>::new();
/// let mut flow = aside.read();
/// let now = std::time::SystemTime::now();
/// loop {
///     match flow.step() {
///         Step::Plan => flow.planned(aside.plan(backend, view).await),
///         Step::Get => {
///             let got = match flow.fetch_key() { Some(k) => backend.get(k).await, None => Ok(None) };
///             flow.fetched(got, now, &aside)
///         }
///         Step::Join => { flow.join(&mut flights, ()); } // nobody else here: it leads
///         Step::Load => flow.loaded(Some(cache_core::envelope::EntryBuf::from_payload(b"[]")), Default::default(), now),
///         Step::Publish => { flow.publish(&mut flights); }
///         Step::Store => { let r = aside.store(backend, view, &flow).await; flow.stored(r) }
///         Step::Finish => flow.finish(&mut flights),
///         _ => break,
///     }
/// }
/// assert_eq!(flow.payload().map(|p| &p[..]), Some(&b"[]"[..]));
/// # }
/// ```
#[derive(Debug)]
pub struct ReadFlow {
    step: Step,
    policy: Policy,
    error: Option<Error>,
    plan: Option<ReadPlan>,
    flight: Option<FlightId>,
    entry: Option<Bytes>,
    payload: Option<Bytes>,
    /// The entry fail-safe would answer with (see `fetched`).
    fallback: Option<(Bytes, FailSafe)>,
    /// The request was answered before its load ended (soft timeout).
    answered: bool,
    outcome: Outcome,
}

impl ReadFlow {
    pub(crate) fn new(policy: Policy) -> Self {
        ReadFlow {
            step: Step::Plan,
            policy,
            error: None,
            plan: None,
            flight: None,
            entry: None,
            payload: None,
            fallback: None,
            answered: false,
            outcome: Outcome::default(),
        }
    }

    /// Skips the cache for this read: a bump of its scopes is pending in
    /// this process ([`Aside::read_for`]). Straight to [`Step::Load`],
    /// without a plan, so nothing joins a flight or fills an entry.
    pub(crate) fn bypass_pending(&mut self) {
        self.outcome.pending_bypass = true;
        self.step = Step::Load;
    }

    /// What to do next.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The strategy's plan, once [`Step::Plan`] succeeded.
    pub fn plan(&self) -> Option<&ReadPlan> {
        self.plan.as_ref()
    }

    /// The storage key of the view, once planned.
    pub fn key(&self) -> Option<&Key> {
        self.plan.as_ref().map(|p| &p.key)
    }

    /// The key [`Step::Get`] must read: `None` when there is nothing to
    /// read, because the plan failed or already read the entry.
    pub fn fetch_key(&self) -> Option<&Key> {
        self.plan.as_ref().filter(|p| p.entry.is_none()).map(|p| &p.key)
    }

    /// The entry to store at [`Step::Store`] (envelope + payload).
    pub fn entry(&self) -> Option<&Bytes> {
        self.entry.as_ref()
    }

    /// The answer, once [`Step::Done`] or [`ReadFlow::is_answered`]
    /// (`None` when the read failed). After an answer at the soft timeout
    /// a successful load replaces it with the loaded value, for the
    /// waiters and the store; the request already has its answer.
    pub fn payload(&self) -> Option<&Bytes> {
        self.payload.as_ref()
    }

    /// True once the request has its answer: at [`Step::Done`], or
    /// earlier when it was answered by fail-safe at the soft timeout while
    /// its load goes on ([`ReadFlow::soft_timed_out`]).
    pub fn is_answered(&self) -> bool {
        self.answered || self.step == Step::Done
    }

    /// True when fail-safe has an entry for this read, should the
    /// database fail or be too slow.
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// How long this read may wait for the database before it is answered
    /// by fail-safe ([`ReadFlow::soft_timed_out`]): the soft timeout, when
    /// one is set, fail-safe has an entry and the read is not answered
    /// yet. A driver arms it for a request waiting on another's load
    /// ([`Step::Join`]) and, when it can let a load finish without the
    /// request ([`Step::Load`]), for a leader.
    pub fn soft_timeout(&self) -> Option<Duration> {
        self.policy
            .soft_timeout
            .filter(|_| self.fallback.is_some() && !self.is_answered())
    }

    /// How long a load may take before it is given up
    /// ([`ReadFlow::load_timed_out`]); `None`: as long as it takes.
    pub fn hard_timeout(&self) -> Option<Duration> {
        self.policy.hard_timeout
    }

    /// Answers from the fail-safe entry, if there is one.
    fn fall_back(&mut self) -> bool {
        match self.fallback.take() {
            Some((payload, kind)) => {
                self.payload = Some(payload);
                self.outcome.served = Served::FailSafe;
                self.outcome.fail_safe = Some(kind);
                true
            }
            None => false,
        }
    }

    /// Keeps `entry` (not live under this read's plan: `liveness` says
    /// why) for fail-safe, when fail-safe is on and the entry qualifies:
    /// its stamps current (expired, or refreshed early) or old, and its
    /// logical expiry less than the max age ago.
    fn keep_fallback(&mut self, entry: &crate::strategy::StoredEntry, liveness: Liveness, now: SystemTime) {
        let Some(max_age) = self.policy.fail_safe else { return };
        let fenced = self.plan.as_ref().is_some_and(|p| p.bypass);
        let kind = match liveness {
            // Inside an open write (fenced), even an entry with current
            // stamps may miss the write, which may have committed: fail-safe
            // exists to answer when the database cannot, and answers it
            // marked `stale`, never as current.
            Liveness::Live | Liveness::Expired if !fenced => FailSafe::Current,
            Liveness::Live | Liveness::Expired | Liveness::StaleStamps | Liveness::Fenced => FailSafe::Stale,
            // Under another key: nothing reads it.
            Liveness::Orphaned => return,
        };
        let young = entry
            .envelope()
            .expires_at
            .is_none_or(|t| t.checked_add(max_age).is_none_or(|end| now < end));
        if young {
            self.fallback = Some((entry.payload().clone(), kind));
        }
    }

    /// The answer, by value.
    pub fn into_payload(self) -> Option<Bytes> {
        self.payload
    }

    /// The backend error that ended this read when fail-open is off
    /// ([`Served::CacheFailed`]); taken once.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// A backend error on the read path: answered by the loader
    /// (fail-open), or the end of the read.
    fn read_failed(&mut self, error: Error) {
        self.outcome.read_error = true;
        if self.policy.fail_open {
            self.miss();
        } else {
            self.error = Some(error);
            self.outcome.served = Served::CacheFailed;
            self.step = Step::Done;
        }
    }

    /// What happened so far.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// True while this request leads a load in the single-flight table
    /// (a driver that is cancelled must then [`Flights::abandon`] it).
    pub fn flight(&self) -> Option<FlightId> {
        self.flight
    }

    /// The next step of a miss: coalesce when there is a key to coalesce on
    /// and the plan allows it.
    fn miss(&mut self) {
        let bypass = self.plan.as_ref().is_some_and(|p| p.bypass);
        self.outcome.bypassed = bypass;
        self.step = if self.policy.single_flight && self.plan.is_some() && !bypass {
            Step::Join
        } else {
            Step::Load
        };
    }

    /// Result of [`Step::Plan`]. A backend error is answered by the loader,
    /// uncached (fail-open): without a plan there is no key to read or fill;
    /// with fail-open off it ends the read.
    pub fn planned(&mut self, plan: Result<ReadPlan>) {
        match plan {
            Ok(p) => {
                let bypass = p.bypass;
                self.plan = Some(p);
                self.step = Step::Get;
                // Nothing the cache holds may answer this read as a hit.
                // With fail-safe on, an entry the plan already read goes
                // through `fetched` all the same (no round trip: the plan
                // has it): it may answer, marked stale, if the load fails.
                let keep = self.policy.fail_safe.is_some() && self.plan.as_ref().is_some_and(|p| p.entry.is_some());
                if bypass && !keep {
                    if let Some(p) = self.plan.as_mut() {
                        p.entry = None;
                    }
                    self.miss();
                }
            }
            // Without a plan, `miss` goes straight to the loader.
            Err(e) => self.read_failed(e),
        }
    }

    /// Result of [`Step::Get`] at `now` (per the driver's clock): a fresh
    /// entry is a hit unless XFetch refreshes it early; anything else
    /// (absent, expired, not an envelope, a backend error) is a miss. When
    /// the plan read the entry itself, `got` is ignored (pass `Ok(None)`).
    pub fn fetched(&mut self, got: Result<Option<Bytes>>, now: SystemTime, aside: &Aside) {
        let got = match self.plan.as_mut().and_then(|p| p.entry.take()) {
            Some(with_plan) => Ok(with_plan),
            None => got,
        };
        match got {
            Ok(Some(bytes)) => {
                // A Get is only asked for after a plan, so the plan is
                // there. The strategy opens what it stored and says
                // whether it would serve it under this plan.
                let opened = self.plan.as_ref().map(|p| {
                    let entry = aside.strategy().stored_form().open(&bytes);
                    let liveness = entry.as_ref().map(|e| e.liveness(&p.key, p, now));
                    (entry, liveness)
                });
                match opened {
                    None => {}
                    Some((Some(entry), Some(Liveness::Live))) => {
                        if aside.refresh_early(entry.envelope(), now) {
                            self.outcome.early_refresh = true;
                            self.keep_fallback(&entry, Liveness::Live, now);
                        } else {
                            self.outcome.served = Served::Hit;
                            self.payload = Some(entry.payload().clone());
                            self.step = Step::Done;
                            return;
                        }
                    }
                    Some((Some(entry), Some(liveness))) => self.keep_fallback(&entry, liveness, now),
                    Some(_) => self.outcome.corrupt_entry = true,
                }
            }
            Ok(None) => {}
            Err(e) => return self.read_failed(e),
        }
        self.miss();
    }

    /// [`Step::Join`]: registers this request with the process's loads.
    /// Returns true when it must wait for another request's load (then feed
    /// [`ReadFlow::joined`] with what `waiter` receives); otherwise the flow
    /// moved on by itself (it leads the load, or took a value just loaded).
    pub fn join<W>(&mut self, flights: &mut Flights<W>, waiter: W) -> bool {
        let Some(plan) = self.plan.as_ref() else {
            self.step = Step::Load;
            return false;
        };
        match flights.begin(&plan.key, stamp_of(&plan.generations), waiter) {
            Begin::Lead(id, _) => {
                self.flight = Some(id);
                self.step = Step::Load;
                false
            }
            Begin::Ready(value, _) => {
                self.joined(Some(value));
                false
            }
            Begin::Wait => true,
        }
    }

    /// What the leader a [`ReadFlow::join`] waited for handed over: its
    /// value, or `None` when it went away without one (then this request
    /// joins again, and may lead). [`ReadFlow::handed`] also tells a
    /// failed or timed-out load apart.
    pub fn joined(&mut self, value: Option<Bytes>) {
        match value {
            Some(v) => {
                self.outcome.served = Served::Coalesced;
                self.payload = Some(v);
                self.step = Step::Done;
            }
            None => self.step = Step::Join,
        }
    }

    /// What the leader a [`ReadFlow::join`] waited for handed over
    /// ([`ReadFlow::handoff`]): its value (coalesced); after a failed or
    /// timed-out load, this read's fail-safe entry when it has one;
    /// otherwise, after a failure or when the leader went away, it joins
    /// again (and may lead), and after a timeout it fails too.
    pub fn handed(&mut self, handoff: Handoff) {
        match handoff {
            Handoff::Value(v) => self.joined(Some(v)),
            Handoff::Gone => self.joined(None),
            Handoff::Failed => {
                self.step = if self.fall_back() { Step::Done } else { Step::Join };
            }
            Handoff::TimedOut => {
                self.outcome.timed_out = true;
                if !self.fall_back() {
                    self.outcome.served = Served::Failed;
                }
                self.step = Step::Done;
            }
        }
    }

    /// The soft timeout passed ([`ReadFlow::soft_timeout`]) while this
    /// read waited for the database: it is answered by fail-safe now. A
    /// read waiting on another's load is done (the driver leaves its
    /// waiter where it is: the leader's handoff finds the read answered);
    /// a leader stays at [`Step::Load`], answered
    /// ([`ReadFlow::is_answered`]), and its load goes on: its result is
    /// published to the waiters and stored as usual. Does nothing when
    /// there is no fail-safe entry.
    pub fn soft_timed_out(&mut self) {
        let waiting = match self.step {
            Step::Load => !self.answered,
            Step::Join => true,
            _ => false,
        };
        if waiting && self.fall_back() {
            self.outcome.soft_timed_out = true;
            if self.step == Step::Load {
                // Its loader is running (its result comes later).
                self.outcome.loader_called = true;
                self.answered = true;
            } else {
                self.step = Step::Done;
            }
        }
    }

    /// The hard timeout passed while this read's own load ran: the load is
    /// given up (the driver drops or abandons it). Answered by fail-safe if
    /// it can be, failed otherwise ([`Outcome::timed_out`]); a leader then
    /// publishes [`Handoff::TimedOut`] to its waiters.
    pub fn load_timed_out(&mut self) {
        if self.step != Step::Load {
            return;
        }
        self.outcome.loader_called = true;
        self.outcome.timed_out = true;
        if !self.answered && !self.fall_back() {
            self.outcome.served = Served::Failed;
        }
        self.step = if self.flight.is_some() {
            Step::Publish
        } else {
            Step::Done
        };
    }

    /// What a leader's waiters get when it publishes: its value, or
    /// whether its load failed or timed out.
    pub fn handoff(&self) -> Handoff {
        match (&self.entry, &self.payload) {
            (Some(_), Some(v)) => Handoff::Value(v.clone()),
            _ if self.outcome.timed_out => Handoff::TimedOut,
            _ => Handoff::Failed,
        }
    }

    /// Result of [`Step::Load`]: the loaded payload (`None`: the loader
    /// failed), how long the load took, and `now` after it, from which the
    /// entry's logical expiry counts. A TTL too large for the clock means
    /// "never expires" rather than an overflow. A failed load is answered
    /// by fail-safe when it can be.
    ///
    /// With fail-safe on, the entry is stored for its TTL plus the max age
    /// ([`CacheOptions::keep_expired_for`](crate::CacheOptions::keep_expired_for)):
    /// the plan's [`ttl`](ReadPlan::ttl) becomes that longer one here, after
    /// the logical expiry was sealed from it, so that [`Step::Store`] (and
    /// whatever a strategy derives from the plan's TTL, such as a key
    /// index's) keeps the entry past its logical expiry.
    pub fn loaded(&mut self, payload: Option<EntryBuf>, load_time: Duration, now: SystemTime) {
        self.outcome.loader_called = true;
        match payload {
            Some(buf) => {
                let expires_at = self.plan.as_ref().and_then(|p| p.ttl).and_then(|t| now.checked_add(t));
                let (entry, payload) = buf.seal(expires_at, load_time);
                if let (Some(keep), Some(plan)) = (self.policy.fail_safe, self.plan.as_mut()) {
                    plan.ttl = plan.ttl.map(|t| t.saturating_add(keep));
                }
                self.entry = Some(entry);
                self.payload = Some(payload);
                if !self.answered {
                    self.outcome.served = Served::Loaded;
                }
            }
            None => {
                self.outcome.load_failed = true;
                if !self.answered && !self.fall_back() {
                    self.outcome.served = Served::Failed;
                }
            }
        }
        self.step = if self.flight.is_some() {
            Step::Publish
        } else if self.plan.as_ref().is_some_and(|p| !p.bypass) && self.entry.is_some() {
            Step::Store
        } else {
            Step::Done
        };
    }

    /// [`Step::Publish`]: returns the waiters and what to hand each of them
    /// (the value, or `None` after a failed load, which sends them back to
    /// [`Step::Join`] or to fail-safe: send them [`ReadFlow::handoff`]).
    pub fn publish<W>(&mut self, flights: &mut Flights<W>) -> (Vec<W>, Option<Bytes>) {
        let (Some(id), Some(key)) = (self.flight, self.plan.as_ref().map(|p| &p.key)) else {
            self.step = Step::Done;
            return (Vec::new(), None);
        };
        match (&self.entry, &self.payload) {
            (Some(_), Some(value)) => {
                self.step = Step::Store;
                (flights.complete(key, id, value.clone()), Some(value.clone()))
            }
            _ => {
                self.flight = None;
                self.step = Step::Done;
                (flights.abandon(key, id), None)
            }
        }
    }

    /// Result of [`Step::Store`]. A failure is counted; the value is served
    /// anyway.
    pub fn stored(&mut self, result: Result<()>) {
        if result.is_err() {
            self.outcome.store_error = true;
        }
        self.entry = None;
        self.step = if self.flight.is_some() {
            Step::Finish
        } else {
            Step::Done
        };
    }

    /// [`Step::Finish`]: ends this request's load.
    pub fn finish<W>(&mut self, flights: &mut Flights<W>) {
        if let (Some(id), Some(key)) = (self.flight.take(), self.plan.as_ref().map(|p| &p.key)) {
            flights.finish(key, id);
        }
        self.step = Step::Done;
    }
}
