//! The generations a process may trust without asking L2: filled from L2
//! reads and from notices that carry the new value, forgotten on notices
//! that do not, and trusted only while the connection that reports their
//! changes (a backplane subscription, a tracking connection) is known to
//! be up.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::notice::{Notice, Numbered};
use crate::clock::Clock;
use crate::hash::fnv1a;

/// How many past values of one counter a table remembers, to recognise a
/// late bump notice as old news (its own echo, or one delivered after a
/// later one it already applied) instead of forgetting the key.
const PREVIOUS: usize = 4;

/// How many notices back a read may look to learn the keys no notice named
/// while it was in flight; a read older than that learns nothing.
const TOUCHED_LOG: usize = 4096;

/// How many publishers' sequence numbers a table follows. Processes
/// restart under new ids, so the map would grow for ever; past this many
/// it starts again, after forgetting everything (a publisher it no longer
/// follows could skip a number unseen).
const PUBLISHERS: usize = 4096;

/// The source a backplane's subscription vouches for: a backplane has one.
const BACKPLANE: u32 = 0;

/// One trusted generation.
#[derive(Debug, Clone)]
struct Known {
    value: u64,
    /// When it was learnt or last extended by a bump notice.
    since: SystemTime,
    /// Values it held before, newest first, back to when it was learnt.
    previous: [Option<u64>; PREVIOUS],
    /// The connection whose loss makes it untrustworthy.
    source: u32,
}

impl Known {
    fn new(value: u64, since: SystemTime, source: u32) -> Self {
        Known {
            value,
            since,
            previous: [None; PREVIOUS],
            source,
        }
    }

    fn held(&self, v: u64) -> bool {
        self.value == v || self.previous.contains(&Some(v))
    }

    fn advance(&mut self, to: u64, now: SystemTime) {
        self.previous.rotate_right(1);
        self.previous[0] = Some(self.value);
        self.value = to;
        self.since = now;
    }
}

/// What moved the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touch {
    /// A notice named the key with this FNV-1a hash.
    Key(u64),
    /// A source went down or came up: what was read through it may predate
    /// a change it can no longer report.
    Source(u32),
    /// Anything may have changed.
    All,
}

/// A notice on its way (a modelled delivery latency).
#[derive(Debug)]
enum Delivery {
    /// A notice as [`KnownGenerations::notice`] takes it.
    Notice(Notice),
    /// A message off a backplane, as [`KnownGenerations::receive`] takes it.
    Wire(Vec<u8>),
}

#[derive(Debug, Default)]
struct State {
    /// The sources up (indexed by source), each since it was last (re)made.
    up: Vec<bool>,
    /// Moves on every notice and every change of a source's state.
    epoch: u64,
    /// What moved the epoch, newest last, bounded: (the epoch it moved to,
    /// what it touched). A read learns only the keys that nothing touched
    /// since it began: a notice may have overtaken its reply.
    touched: VecDeque<(u64, Touch)>,
    /// Trusted generations.
    generations: HashMap<String, Known>,
    /// Notices sent but not yet delivered (a modelled delivery latency):
    /// (deliver at, notice), in sending order.
    in_flight: VecDeque<(SystemTime, Delivery)>,
    /// The last sequence number seen from each publisher.
    last_seq: HashMap<u64, u64>,
    /// Times everything was forgotten because a notice may have been missed.
    resyncs: u64,
}

impl State {
    fn touch(&mut self, touch: Touch) {
        self.epoch += 1;
        if self.touched.len() == TOUCHED_LOG {
            self.touched.pop_front();
        }
        self.touched.push_back((self.epoch, touch));
    }

    fn is_up(&self, source: u32) -> bool {
        self.up.get(source as usize).copied().unwrap_or(false)
    }

    fn set_up(&mut self, source: u32, up: bool) {
        let i = source as usize;
        if self.up.len() <= i {
            self.up.resize(i + 1, false);
        }
        self.up[i] = up;
    }

    /// Drops what `source` vouched for: it cannot report changes any more,
    /// or it is starting again.
    fn reset_source(&mut self, source: u32) {
        self.generations.retain(|_, g| g.source != source);
        self.touch(Touch::Source(source));
    }

    /// Forgets everything: a notice may have been missed.
    fn resync(&mut self) {
        self.generations.clear();
        self.resyncs += 1;
        self.touch(Touch::All);
    }

    /// The key hashes touched since `epoch`; `None` when something touched
    /// every key or `source`, or the log no longer reaches back that far.
    fn touched_since(&self, epoch: u64, source: u32) -> Option<HashSet<u64>> {
        if self.touched.front().is_none_or(|(first, _)| *first > epoch + 1) {
            return None;
        }
        let mut keys = HashSet::new();
        for (_, t) in self.touched.iter().rev().take_while(|(e, _)| *e > epoch) {
            match t {
                Touch::Key(h) => {
                    keys.insert(*h);
                }
                Touch::Source(s) if *s != source => {}
                Touch::Source(_) | Touch::All => return None,
            }
        }
        Some(keys)
    }

    fn apply(&mut self, notice: &Notice, now: SystemTime) {
        self.touch(notice.key().map_or(Touch::All, |k| Touch::Key(fnv1a(k.as_bytes()))));
        match notice {
            Notice::Changed(k) => {
                self.generations.remove(k);
            }
            Notice::Bumped { key, from, to } => match self.generations.get_mut(key) {
                Some(g) if g.value == *from => g.advance(*to, now),
                // Old news: a value this table already passed (its own
                // echo, or a bump it learnt from L2 before the notice came).
                Some(g) if g.held(*to) => {}
                // Out of order, or a lineage we never saw: do not guess.
                Some(_) => {
                    self.generations.remove(key);
                }
                // Unknown stays unknown: the notice may be late.
                None => {}
            },
            Notice::All => self.generations.clear(),
        }
    }

    /// A message off a backplane: checks its number, then applies it.
    fn receive(&mut self, wire: &[u8], now: SystemTime) {
        let (origin, notice) = Numbered::decode(wire);
        if let Some((publisher, seq)) = origin {
            match self.last_seq.get(&publisher).copied() {
                // A publisher's first notice since the subscription began:
                // the ones before predate it, and what was learnt before it
                // is gone.
                None => {
                    if self.last_seq.len() >= PUBLISHERS {
                        self.last_seq.clear();
                        self.resync();
                    }
                    self.last_seq.insert(publisher, seq);
                }
                Some(last) if seq == last.saturating_add(1) => {
                    self.last_seq.insert(publisher, seq);
                }
                // Sent again after a publish that timed out but arrived:
                // applying a notice twice is harmless.
                Some(last) if seq <= last => {}
                // A number skipped: that notice is lost.
                Some(_) => {
                    self.resync();
                    self.last_seq.insert(publisher, seq);
                }
            }
        }
        self.apply(&notice, now);
    }

    fn deliver(&mut self, d: &Delivery, at: SystemTime) {
        match d {
            Delivery::Notice(n) => self.apply(n, at),
            Delivery::Wire(w) => self.receive(w, at),
        }
    }
}

/// One process's known generations, trusted only while the connection that
/// reports their changes is up (see the [tier docs](crate::tier)). Shared
/// (an `Arc`) between the [`TwoTier`](super::TwoTier) that reads it and
/// what feeds it: a backplane subscription, or a tracking connection per
/// server.
///
/// # Sources
///
/// Each generation is remembered with the source that vouches for it:
/// the backplane's one subscription ([`Self::subscribed`], [`Self::lost`]),
/// or the tracking connection it was read through (one per node of a
/// cluster: [`Self::connected`], [`Self::disconnected`]). A source that
/// drops takes what it vouched for with it; the others keep theirs.
///
/// # Bumps
///
/// A bump notice carries the value its `incr` returned, so a process
/// that knew the value before it learns the new one without a round trip:
/// after a write every process still knows its generations, and its next L1
/// hit is free. Notices from different writers can arrive out of order (each
/// publishes after its own `incr` returns), so a bump is applied only where
/// it extends what the table knows (`from` is the known value). A bump to a
/// value the table already held is old news (its own echo, or a bump that an
/// L2 read already showed) and changes nothing. Any other bump makes the
/// table forget the key, and a bump for a key it does not know leaves it
/// unknown: the next read asks L2. A counter only grows within one lineage,
/// so a chained value is the counter's real value at some instant after
/// the previous one; the one way to be fooled is a counter evicted and
/// reseeded onto the very value a notice names, the same 2⁻³⁰-scale
/// collision `stamped` documents for its random starting generations.
///
/// # Numbered notices
///
/// Backplane messages are numbered: each publisher counts its notices
/// 1, 2, 3, … . A table remembers the last number it saw from each
/// publisher; one that skips a number means a notice was lost (a publish
/// that failed for good, a message dropped), and the table forgets every
/// generation it trusts ([`Self::resyncs`] counts it). A number seen again
/// (a publish retried after a timeout that had in fact arrived) is applied
/// again, which changes nothing. A lost notice is therefore noticed at the
/// publisher's next one; with fenced writes every write publishes two (the
/// fence and the bump), so a lost fence is noticed by the end of its own
/// write. A publisher's first number is taken as it comes (the table
/// started empty); numbers are kept across a dropped subscription, so a
/// notice lost right after it came back is caught too.
#[derive(Debug)]
pub struct KnownGenerations {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// How long a remembered generation is trusted without a notice: the
    /// backstop for a bump whose notice was never sent (its writer died
    /// between the `incr` and the publish).
    trust_for: Duration,
}

impl KnownGenerations {
    /// An empty table on `clock`, with no source up, trusting a generation
    /// for `trust_for` at most.
    pub fn new(clock: Arc<dyn Clock>, trust_for: Duration) -> Self {
        KnownGenerations {
            state: Mutex::new(State::default()),
            clock,
            trust_for,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the table inconsistent (every
        // update completes under the lock without calling out), so a
        // poisoned lock is still usable.
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Deliver what is due: a modelled latency is applied lazily, at the
        // next look, which is exact because only looks can observe it.
        // (Nothing in flight outside the simulator: no clock read.)
        if !s.in_flight.is_empty() {
            let now = self.clock.now();
            while s.in_flight.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((at, d)) = s.in_flight.pop_front() {
                    s.deliver(&d, at);
                }
            }
        }
        s
    }

    /// The backplane subscription is (re-)established: from now on every
    /// change is noticed. Nothing learnt before is kept (it may have missed
    /// notices). Publishers' numbers are: a publisher's next notice after a
    /// gap in the subscription shows a gap too, which forgets again what
    /// little was learnt since, but also catches a notice lost after the
    /// subscription came back and before that one.
    pub fn subscribed(&self) {
        let mut s = self.lock();
        s.set_up(BACKPLANE, true);
        s.reset_source(BACKPLANE);
    }

    /// The backplane subscription dropped: trust nothing until
    /// [`Self::subscribed`].
    pub fn lost(&self) {
        let mut s = self.lock();
        s.set_up(BACKPLANE, false);
        s.reset_source(BACKPLANE);
        s.resyncs += 1;
    }

    /// Whether the backplane subscription is up.
    pub fn is_subscribed(&self) -> bool {
        self.lock().is_up(BACKPLANE)
    }

    /// Tracking connection `source` is (re-)established and the server
    /// confirmed it tracks what is read through it: generations read
    /// through it from now on may be trusted. Nothing it vouched for before
    /// is kept. Also what a server's "forget everything" (a flush) calls.
    pub fn connected(&self, source: u32) {
        let mut s = self.lock();
        s.set_up(source, true);
        s.reset_source(source);
    }

    /// Tracking connection `source` dropped (or may have lost an
    /// invalidation): everything read through it is forgotten, and nothing
    /// read through it is learnt until [`Self::connected`].
    pub fn disconnected(&self, source: u32) {
        let mut s = self.lock();
        let was_up = s.is_up(source);
        s.set_up(source, false);
        s.reset_source(source);
        if was_up {
            s.resyncs += 1;
        }
    }

    /// Whether tracking connection `source` is up.
    pub fn is_connected(&self, source: u32) -> bool {
        self.lock().is_up(source)
    }

    /// How many times the table forgot everything a source vouched for
    /// because a notice may have been missed: a subscription or tracking
    /// connection that dropped, a publisher that skipped a number, a
    /// publish of this process that failed for good.
    pub fn resyncs(&self) -> u64 {
        self.lock().resyncs
    }

    /// The key `key` changed in L2 (a tracking connection's invalidation):
    /// forget what this table knows about it.
    pub fn changed(&self, key: &str) {
        self.notice(&Notice::Changed(key.to_owned()));
    }

    /// Applies `notice` now (a change this process made).
    pub(crate) fn notice(&self, notice: &Notice) {
        let now = self.clock.now();
        self.lock().apply(notice, now);
    }

    /// Applies `notice` once the clock reaches `at` (the simulator's
    /// modelled delivery latency). Notices are applied in the order given.
    ///
    /// Until then the table behaves as a real subscriber's would: it does
    /// not know the notice is coming, and a read from L2 meanwhile may
    /// learn the new value (the simulator's reads take no virtual time, so
    /// no notice can overtake one).
    pub(crate) fn notice_at(&self, notice: Notice, at: SystemTime) {
        self.lock().in_flight.push_back((at, Delivery::Notice(notice)));
    }

    /// Applies a message off the backplane now: a numbered notice (checked
    /// for a skipped number, see "Numbered notices"), or an older release's
    /// unnumbered one.
    pub fn receive(&self, wire: &[u8]) {
        let now = self.clock.now();
        self.lock().receive(wire, now);
    }

    /// [`Self::receive`] once the clock reaches `at`, in the order given
    /// (as [`Self::notice_at`]).
    pub(crate) fn receive_at(&self, wire: Vec<u8>, at: SystemTime) {
        self.lock().in_flight.push_back((at, Delivery::Wire(wire)));
    }

    /// Forgets everything (this process's own notice could not be
    /// published: its view of what others know is no longer sure).
    pub(crate) fn resync(&self) {
        self.lock().resync();
    }

    /// The trusted generation of `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        let s = self.lock();
        let g = s.generations.get(key)?;
        if !s.is_up(g.source) {
            return None;
        }
        if self.trust_for == Duration::MAX {
            // Tracking: trusted for as long as its source is up.
            return Some(g.value);
        }
        let age = self.clock.now().duration_since(g.since).unwrap_or(Duration::ZERO);
        (age < self.trust_for).then_some(g.value)
    }

    /// The epoch to pass to [`Self::learn`] after a read from L2 started now;
    /// `None` when no source is up (nothing can be learnt).
    pub(crate) fn begin_read(&self) -> Option<u64> {
        let s = self.lock();
        s.up.iter().any(|u| *u).then_some(s.epoch)
    }

    /// Remembers generations read from L2 by a read that began at `epoch`,
    /// each with the source that vouches for it (the backplane's, or the
    /// tracking connection it was read through), except those of keys a
    /// notice named since (its reply may predate the change), and none
    /// whose source is down or went down or up meanwhile.
    pub(crate) fn learn(&self, epoch: u64, learnt: impl IntoIterator<Item = (String, u64, u32)>) {
        let mut s = self.lock();
        let now = self.clock.now();
        // Per source: `None` when it learns nothing, else the keys named.
        let mut named: Vec<(u32, Option<HashSet<u64>>)> = Vec::new();
        for (k, g, source) in learnt {
            let i = match named.iter().position(|(src, _)| *src == source) {
                Some(i) => i,
                None => {
                    let keys = if !s.is_up(source) {
                        None
                    } else if s.epoch == epoch {
                        Some(HashSet::new())
                    } else {
                        s.touched_since(epoch, source)
                    };
                    named.push((source, keys));
                    named.len() - 1
                }
            };
            let Some(keys) = &named[i].1 else { continue };
            if !keys.is_empty() && keys.contains(&fnv1a(k.as_bytes())) {
                continue;
            }
            match s.generations.get_mut(&k) {
                Some(known) if known.value == g => {
                    known.since = now;
                    known.source = source;
                }
                _ => {
                    s.generations.insert(k, Known::new(g, now, source));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
