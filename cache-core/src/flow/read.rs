//! [`ReadFlow`]: the decisions of one cache-aside read, as a state machine
//! that a driver feeds with the results of the steps it asks for.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::envelope::EntryBuf;
use crate::error::{Error, Result};
use crate::flow::flights::{Begin, FlightId, Flights};
use crate::flow::Aside;
use crate::key::Key;
use crate::strategy::ReadPlan;

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

/// How a read was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Served {
    /// Not answered yet.
    #[default]
    Pending,
    /// From a fresh cache entry.
    Hit,
    /// By this request's own load.
    Loaded,
    /// By another request's load in the same process (single-flight).
    Coalesced,
    /// Not at all: the loader failed.
    Failed,
    /// Not at all: a backend error on the read path, and fail-open is off
    /// ([`CacheOptions::fail_open`](crate::CacheOptions::fail_open)); the
    /// driver returns the error ([`ReadFlow::take_error`]).
    CacheFailed,
}

/// One number for a plan's generations, so that a load under some
/// generations is never shared with a request that planned under others
/// (`stamped` keeps one key across generations).
fn stamp_of(generations: &[u64]) -> u64 {
    generations
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15, |h, g| crate::hash::splitmix64(&mut (h ^ g)))
}

/// Everything a read did that metrics count. Both drivers count with
/// [`Tally::record`](crate::flow::Tally::record), so they count alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Outcome {
    /// How the read was answered.
    pub served: Served,
    /// A fresh entry was recomputed early (XFetch).
    pub early_refresh: bool,
    /// A backend error on the read path (plan or get) was answered by the
    /// loader (fail-open).
    pub read_error: bool,
    /// Storing the loaded value failed (the value was still served).
    pub store_error: bool,
    /// The entry found did not open in its strategy's stored form.
    pub corrupt_entry: bool,
    /// The loader was called.
    pub loader_called: bool,
    /// The plan said a write to the view's scopes was open, so the cache
    /// neither answered nor stored this read ([`ReadPlan::bypass`]).
    pub bypassed: bool,
    /// This process has a bump pending for one of the view's scopes over
    /// its dates ([`Pending::covers`](crate::flow::Pending::covers)), so
    /// the cache was skipped altogether: no plan, no hit, no coalescing, no
    /// fill; the loader answered.
    pub pending_bypass: bool,
}

/// The decisions of one read: plan → get → hit, or miss → (join an
/// in-flight load | load) → publish → store. No I/O, no clock: the driver
/// performs each [`Step`] and feeds its result back, with the time where
/// freshness needs one.
///
/// ```
/// use cache_core::flow::{Aside, AsideOptions, Flights, Step};
/// use cache_core::strategy::{by_name, StrategyOptions};
/// use cache_core::{Backend, View};
/// # async fn demo(backend: &dyn Backend, view: &View) {
/// let aside = Aside::new(by_name("versioned", &StrategyOptions::default()).unwrap(), AsideOptions::default());
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
    single_flight: bool,
    fail_open: bool,
    error: Option<Error>,
    plan: Option<ReadPlan>,
    flight: Option<FlightId>,
    entry: Option<Bytes>,
    payload: Option<Bytes>,
    outcome: Outcome,
}

impl ReadFlow {
    pub(crate) fn new(single_flight: bool, fail_open: bool) -> Self {
        ReadFlow {
            step: Step::Plan,
            single_flight,
            fail_open,
            error: None,
            plan: None,
            flight: None,
            entry: None,
            payload: None,
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

    /// The answer, once [`Step::Done`] (`None` when the loader failed).
    pub fn payload(&self) -> Option<&Bytes> {
        self.payload.as_ref()
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
        if self.fail_open {
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
        self.step = if self.single_flight && self.plan.is_some() && !bypass {
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
                if bypass {
                    // Nothing the cache holds may answer this read.
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
                let opened = self
                    .plan
                    .as_ref()
                    .map(|p| (p, aside.strategy().stored_form().open(&bytes)));
                match opened {
                    None => {}
                    Some((plan, Some(entry))) if entry.liveness(&plan.key, plan, now).is_live() => {
                        if aside.refresh_early(entry.envelope(), now) {
                            self.outcome.early_refresh = true;
                        } else {
                            self.outcome.served = Served::Hit;
                            self.payload = Some(entry.payload().clone());
                            self.step = Step::Done;
                            return;
                        }
                    }
                    Some((_, Some(_))) => {}
                    Some((_, None)) => self.outcome.corrupt_entry = true,
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
    /// value, or `None` when it failed or went away (then this request
    /// joins again, and may lead).
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

    /// Result of [`Step::Load`]: the loaded payload (`None`: the loader
    /// failed), how long the load took, and `now` after it, from which the
    /// entry's logical expiry counts. A TTL too large for the clock means
    /// "never expires" rather than an overflow.
    pub fn loaded(&mut self, payload: Option<EntryBuf>, load_time: Duration, now: SystemTime) {
        self.outcome.loader_called = true;
        match payload {
            Some(buf) => {
                let expires_at = self.plan.as_ref().and_then(|p| p.ttl).and_then(|t| now.checked_add(t));
                let (entry, payload) = buf.seal(expires_at, load_time);
                self.entry = Some(entry);
                self.payload = Some(payload);
                self.outcome.served = Served::Loaded;
            }
            None => self.outcome.served = Served::Failed,
        }
        self.step = if self.flight.is_some() {
            Step::Publish
        } else if self.plan.as_ref().is_some_and(|p| !p.bypass) && self.payload.is_some() {
            Step::Store
        } else {
            Step::Done
        };
    }

    /// [`Step::Publish`]: returns the waiters and what to hand each of them
    /// (the value, or `None` after a failed load, which sends them back to
    /// [`Step::Join`]).
    pub fn publish<W>(&mut self, flights: &mut Flights<W>) -> (Vec<W>, Option<Bytes>) {
        let (Some(id), Some(key)) = (self.flight, self.plan.as_ref().map(|p| &p.key)) else {
            self.step = Step::Done;
            return (Vec::new(), None);
        };
        match &self.payload {
            Some(value) => {
                self.step = Step::Store;
                (flights.complete(key, id, value.clone()), Some(value.clone()))
            }
            None => {
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
