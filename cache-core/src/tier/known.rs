//! The generations a process may trust without asking L2: filled from L2
//! reads and from backplane notices that carry the new value, forgotten on
//! notices that do not, and trusted only while the subscription is known to
//! be up.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::hash::fnv1a;

/// What one notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The key under this name changed in L2 (reseeded, overwritten,
    /// deleted) to a value the notice does not carry: forget what you know
    /// about it.
    Changed(String),
    /// One `incr` moved the counter under `key` from `from` to `to`
    /// (`to - from` is the increment). A table that knew `from` now knows
    /// `to` without asking L2; one that knew something else forgets it
    /// (see [`KnownGenerations`], "Bumps").
    Bumped {
        /// The counter's key.
        key: String,
        /// Its value just before the `incr`.
        from: u64,
        /// The value the `incr` returned.
        to: u64,
    },
    /// Everything may have changed (a prefix deletion): forget all.
    All,
}

impl Notice {
    /// The wire form: `k <key>`, `b <from> <to> <key>` or `*`. The key
    /// comes last, so any byte in it is fine.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Notice::Changed(k) => {
                let mut v = Vec::with_capacity(k.len() + 2);
                v.extend_from_slice(b"k ");
                v.extend_from_slice(k.as_bytes());
                v
            }
            Notice::Bumped { key, from, to } => format!("b {from} {to} {key}").into_bytes(),
            Notice::All => b"*".to_vec(),
        }
    }

    /// Parses [`Self::encode`]'s form; anything else is read as
    /// [`Notice::All`], the safe answer to a message we do not understand.
    /// That is also what a process of a release before bump notices makes
    /// of a `b …` notice: mixing releases during a rolling upgrade is safe,
    /// and costs the older processes a round trip per read after each bump.
    pub fn decode(bytes: &[u8]) -> Notice {
        if let Some(Ok(k)) = bytes.strip_prefix(b"k ").map(std::str::from_utf8) {
            return Notice::Changed(k.to_owned());
        }
        let bumped = bytes
            .strip_prefix(b"b ")
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|rest| {
                let (from, rest) = rest.split_once(' ')?;
                let (to, key) = rest.split_once(' ')?;
                Some(Notice::Bumped {
                    key: key.to_owned(),
                    from: from.parse().ok()?,
                    to: to.parse().ok()?,
                })
            });
        bumped.unwrap_or(Notice::All)
    }

    /// The key the notice names; `None` for [`Notice::All`].
    pub fn key(&self) -> Option<&str> {
        match self {
            Notice::Changed(k) | Notice::Bumped { key: k, .. } => Some(k),
            Notice::All => None,
        }
    }
}

/// How many past values of one counter a table remembers, to recognise a
/// late bump notice as old news (its own echo, or one delivered after a
/// later one it already applied) instead of forgetting the key.
const PREVIOUS: usize = 4;

/// How many notices back a read may look to learn the keys no notice named
/// while it was in flight; a read older than that learns nothing.
const TOUCHED_LOG: usize = 4096;

/// One trusted generation.
#[derive(Debug, Clone)]
struct Known {
    value: u64,
    /// When it was learnt or last extended by a bump notice.
    since: SystemTime,
    /// Values it held before, newest first, back to when it was learnt.
    previous: [Option<u64>; PREVIOUS],
}

impl Known {
    fn new(value: u64, since: SystemTime) -> Self {
        Known {
            value,
            since,
            previous: [None; PREVIOUS],
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

#[derive(Debug, Default)]
struct State {
    /// The subscription is up and has been since it was last (re)made.
    subscribed: bool,
    /// Moves on every notice and every change of subscription state.
    epoch: u64,
    /// What moved the epoch, newest last, bounded: (the epoch it moved to,
    /// FNV-1a of the key a notice named, or `None` for anything that
    /// touches every key). A read learns only the keys that nothing named
    /// since it began: a notice may have overtaken its reply.
    touched: VecDeque<(u64, Option<u64>)>,
    /// Trusted generations.
    generations: HashMap<String, Known>,
    /// Notices sent but not yet delivered (a modelled delivery latency):
    /// (deliver at, notice), in sending order.
    in_flight: VecDeque<(SystemTime, Notice)>,
}

impl State {
    fn touch(&mut self, key: Option<&str>) {
        self.epoch += 1;
        if self.touched.len() == TOUCHED_LOG {
            self.touched.pop_front();
        }
        self.touched.push_back((self.epoch, key.map(|k| fnv1a(k.as_bytes()))));
    }

    /// The key hashes touched since `epoch`; `None` when something touched
    /// every key, or the log no longer reaches back that far.
    fn touched_since(&self, epoch: u64) -> Option<HashSet<u64>> {
        if self.touched.front().is_none_or(|(first, _)| *first > epoch + 1) {
            return None;
        }
        self.touched
            .iter()
            .rev()
            .take_while(|(e, _)| *e > epoch)
            .map(|(_, h)| *h)
            .collect()
    }

    fn apply(&mut self, notice: &Notice, now: SystemTime) {
        self.touch(notice.key());
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
}

/// One process's known generations, trusted only while subscribed (see
/// the [tier docs](crate::tier), "The backplane"). Shared (an `Arc`)
/// between the [`TwoTier`](super::TwoTier) that reads it and the backplane
/// subscription that feeds it.
///
/// # Bumps
///
/// A [`Notice::Bumped`] carries the value its `incr` returned, so a process
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
    /// An empty table on `clock`, not subscribed, trusting a generation for
    /// `trust_for` at most.
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
        let now = self.clock.now();
        while s.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((at, n)) = s.in_flight.pop_front() {
                s.apply(&n, at);
            }
        }
        s
    }

    /// The subscription is (re-)established: from now on every change is
    /// noticed. Nothing learnt before is kept (it may have missed notices).
    pub fn subscribed(&self) {
        let mut s = self.lock();
        s.generations.clear();
        s.subscribed = true;
        s.touch(None);
    }

    /// The subscription dropped: trust nothing until [`Self::subscribed`].
    pub fn lost(&self) {
        let mut s = self.lock();
        s.generations.clear();
        s.subscribed = false;
        s.touch(None);
    }

    /// Whether the subscription is up.
    pub fn is_subscribed(&self) -> bool {
        self.lock().subscribed
    }

    /// Applies `notice` now.
    pub fn notice(&self, notice: &Notice) {
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
    pub fn notice_at(&self, notice: Notice, at: SystemTime) {
        self.lock().in_flight.push_back((at, notice));
    }

    /// The trusted generation of `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        let s = self.lock();
        if !s.subscribed {
            return None;
        }
        let g = s.generations.get(key)?;
        let age = self.clock.now().duration_since(g.since).unwrap_or(Duration::ZERO);
        (age < self.trust_for).then_some(g.value)
    }

    /// The epoch to pass to [`Self::learn`] after a read from L2 started now;
    /// `None` when not subscribed (nothing can be learnt).
    pub(crate) fn begin_read(&self) -> Option<u64> {
        let s = self.lock();
        s.subscribed.then_some(s.epoch)
    }

    /// Remembers generations read from L2 by a read that began at `epoch`,
    /// except those of keys a notice named since (its reply may predate
    /// the change), and none if the subscription changed meanwhile.
    pub(crate) fn learn(&self, epoch: u64, learnt: impl IntoIterator<Item = (String, u64)>) {
        let mut s = self.lock();
        if !s.subscribed {
            return;
        }
        let named = if s.epoch == epoch {
            HashSet::new()
        } else {
            match s.touched_since(epoch) {
                Some(named) => named,
                None => return,
            }
        };
        let now = self.clock.now();
        for (k, g) in learnt {
            if !named.is_empty() && named.contains(&fnv1a(k.as_bytes())) {
                continue;
            }
            match s.generations.get_mut(&k) {
                Some(known) if known.value == g => known.since = now,
                _ => {
                    s.generations.insert(k, Known::new(g, now));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn table() -> (KnownGenerations, ManualClock) {
        let clock = ManualClock::at_unix_millis(1_000);
        (
            KnownGenerations::new(Arc::new(clock.clone()), Duration::from_secs(10)),
            clock,
        )
    }

    fn bump(key: &str, from: u64, to: u64) -> Notice {
        Notice::Bumped {
            key: key.into(),
            from,
            to,
        }
    }

    #[test]
    fn nothing_is_trusted_without_a_subscription() {
        let (k, _) = table();
        assert_eq!(k.begin_read(), None);
        k.subscribed();
        let e = k.begin_read().unwrap();
        k.learn(e, [("g".to_owned(), 5)]);
        assert_eq!(k.get("g"), Some(5));
        k.lost();
        assert_eq!(k.get("g"), None, "a lost subscription forgets everything");
        k.subscribed();
        assert_eq!(k.get("g"), None, "and a new one starts from nothing");
    }

    #[test]
    fn a_notice_during_a_read_voids_what_it_learnt_of_that_key_only() {
        let (k, _) = table();
        k.subscribed();
        let e = k.begin_read().unwrap();
        k.notice(&Notice::Changed("g".into()));
        k.learn(e, [("g".to_owned(), 5), ("h".to_owned(), 7)]);
        assert_eq!(k.get("g"), None);
        assert_eq!(k.get("h"), Some(7), "no notice named h");
        let e = k.begin_read().unwrap();
        k.notice(&Notice::All);
        k.learn(e, [("h".to_owned(), 8)]);
        assert_eq!(k.get("h"), None, "everything may have changed");
        let e = k.begin_read().unwrap();
        k.lost();
        k.subscribed();
        k.learn(e, [("h".to_owned(), 8)]);
        assert_eq!(k.get("h"), None, "the subscription changed under the read");
    }

    #[test]
    fn a_read_older_than_the_log_learns_nothing() {
        let (k, _) = table();
        k.subscribed();
        let e = k.begin_read().unwrap();
        for i in 0..TOUCHED_LOG {
            k.notice(&Notice::Changed(format!("other{i}")));
        }
        k.learn(e, [("g".to_owned(), 5)]);
        assert_eq!(k.get("g"), Some(5), "the log still reaches back to the read");
        let e = k.begin_read().unwrap();
        for i in 0..=TOUCHED_LOG {
            k.notice(&Notice::Changed(format!("other{i}")));
        }
        k.learn(e, [("g".to_owned(), 6)]);
        assert_eq!(k.get("g"), Some(5), "one notice too many: the read learns nothing");
    }

    #[test]
    fn bumps_extend_known_values_and_forget_on_a_gap() {
        let (k, _) = table();
        k.subscribed();
        k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5)]);
        k.notice(&bump("g", 5, 6));
        assert_eq!(k.get("g"), Some(6), "extended without asking L2");
        k.notice(&bump("g", 5, 6));
        assert_eq!(k.get("g"), Some(6), "its own echo is old news");
        k.notice(&bump("g", 7, 8));
        assert_eq!(k.get("g"), None, "6→7 was missed: do not guess");
        k.notice(&bump("g", 6, 7));
        assert_eq!(k.get("g"), None, "unknown stays unknown");
    }

    #[test]
    fn a_bump_already_seen_in_l2_keeps_the_value() {
        let (k, clock) = table();
        k.subscribed();
        k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5)]);
        let at = clock.now() + Duration::from_millis(2);
        k.notice_at(bump("g", 5, 6), at);
        k.notice_at(bump("g", 6, 7), at);
        // A read meanwhile sees L2's truth (7); the notices then arrive.
        k.learn(k.begin_read().unwrap(), [("g".to_owned(), 7)]);
        clock.advance(Duration::from_millis(2));
        assert_eq!(
            k.get("g"),
            None,
            "5→6 does not extend 7 and is not a value 7 passed through"
        );
        k.learn(k.begin_read().unwrap(), [("g".to_owned(), 7)]);
        k.notice(&bump("g", 6, 7));
        assert_eq!(k.get("g"), Some(7), "a bump to the known value is old news");
    }

    #[test]
    fn delayed_notices_apply_when_due_and_trust_expires() {
        let (k, clock) = table();
        k.subscribed();
        k.learn(k.begin_read().unwrap(), [("g".to_owned(), 5)]);
        k.notice_at(Notice::Changed("g".into()), clock.now() + Duration::from_millis(2));
        assert_eq!(k.get("g"), Some(5), "not delivered yet");
        clock.advance(Duration::from_millis(2));
        assert_eq!(k.get("g"), None, "delivered");
        k.learn(k.begin_read().unwrap(), [("g".to_owned(), 6)]);
        assert_eq!(k.get("g"), Some(6));
        clock.advance(Duration::from_secs(10));
        assert_eq!(k.get("g"), None, "trusted for 10 s only");
    }

    #[test]
    fn notices_round_trip() {
        for n in [
            Notice::Changed("ns:s:{a b}:gen".into()),
            bump("ns:s:{a b}:fgen", 1 << 32, (1 << 33) + 1),
            Notice::All,
        ] {
            assert_eq!(Notice::decode(&n.encode()), n);
        }
        assert_eq!(Notice::decode(b"garbage"), Notice::All);
        assert_eq!(Notice::decode(b"b 1 x k"), Notice::All, "a bad number is not trusted");
        assert_eq!(Notice::decode(b"b 1 2"), Notice::All);
    }
}
