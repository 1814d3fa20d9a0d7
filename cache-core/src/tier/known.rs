//! The generations a process may trust without asking L2: filled from L2
//! reads, emptied by backplane notices, and trusted only while the
//! subscription is known to be up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;

/// What one notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The key under this name changed in L2 (bumped, reseeded, deleted):
    /// forget what you know about it.
    Changed(String),
    /// Everything may have changed (a prefix deletion): forget all.
    All,
}

impl Notice {
    /// The wire form: `k <key>` or `*`. The key comes last, so any byte in
    /// it is fine.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Notice::Changed(k) => {
                let mut v = Vec::with_capacity(k.len() + 2);
                v.extend_from_slice(b"k ");
                v.extend_from_slice(k.as_bytes());
                v
            }
            Notice::All => b"*".to_vec(),
        }
    }

    /// Parses [`Self::encode`]'s form; anything else is read as
    /// [`Notice::All`], the safe answer to a message we do not understand.
    pub fn decode(bytes: &[u8]) -> Notice {
        match bytes.strip_prefix(b"k ").map(std::str::from_utf8) {
            Some(Ok(k)) => Notice::Changed(k.to_owned()),
            _ => Notice::All,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The subscription is up and has been since `epoch` last moved.
    subscribed: bool,
    /// Moves on every notice and every change of subscription state: a
    /// generation read from L2 is remembered only if the epoch did not move
    /// while it was being read (a notice may have overtaken the read).
    epoch: u64,
    /// Trusted generations and when they were learnt.
    generations: HashMap<String, (u64, SystemTime)>,
    /// Notices sent but not yet delivered (a modelled delivery latency):
    /// (deliver at, notice), in sending order.
    in_flight: VecDeque<(SystemTime, Notice)>,
}

/// One process's known generations, trusted only while subscribed (see
/// the [tier docs](crate::tier), "The backplane"). Shared
/// (an `Arc`) between the [`TwoTier`](super::TwoTier) that reads it and
/// the backplane subscription that feeds it.
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
        // update is one assignment), so a poisoned lock is still usable.
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Deliver what is due: a modelled latency is applied lazily, at the
        // next look, which is exact because only looks can observe it.
        let now = self.clock.now();
        while s.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, n)) = s.in_flight.pop_front() {
                apply(&mut s, &n);
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
        s.epoch += 1;
    }

    /// The subscription dropped: trust nothing until [`Self::subscribed`].
    pub fn lost(&self) {
        let mut s = self.lock();
        s.generations.clear();
        s.subscribed = false;
        s.epoch += 1;
    }

    /// Whether the subscription is up.
    pub fn is_subscribed(&self) -> bool {
        self.lock().subscribed
    }

    /// Applies `notice` now.
    pub fn notice(&self, notice: &Notice) {
        apply(&mut self.lock(), notice);
    }

    /// Applies `notice` once the clock reaches `at` (the simulator's
    /// modelled delivery latency). Notices are applied in the order given.
    pub fn notice_at(&self, notice: Notice, at: SystemTime) {
        let mut s = self.lock();
        // Until then, nothing learnt about the key may be remembered anew.
        s.epoch += 1;
        s.in_flight.push_back((at, notice));
    }

    /// The trusted generation of `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        let s = self.lock();
        if !s.subscribed {
            return None;
        }
        let (g, learnt) = *s.generations.get(key)?;
        let age = self.clock.now().duration_since(learnt).unwrap_or(Duration::ZERO);
        (age < self.trust_for).then_some(g)
    }

    /// The epoch to pass to [`Self::learn`] after a read from L2 started now;
    /// `None` when not subscribed (nothing can be learnt).
    pub(crate) fn begin_read(&self) -> Option<u64> {
        let s = self.lock();
        s.subscribed.then_some(s.epoch)
    }

    /// Remembers generations read from L2 by a read that began at `epoch`,
    /// unless something happened since.
    pub(crate) fn learn(&self, epoch: u64, learnt: impl IntoIterator<Item = (String, u64)>) {
        let mut s = self.lock();
        if !s.subscribed || s.epoch != epoch || !s.in_flight.is_empty() {
            return;
        }
        let now = self.clock.now();
        for (k, g) in learnt {
            s.generations.insert(k, (g, now));
        }
    }
}

fn apply(s: &mut State, notice: &Notice) {
    s.epoch += 1;
    match notice {
        Notice::Changed(k) => {
            s.generations.remove(k);
        }
        Notice::All => s.generations.clear(),
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
    fn a_notice_during_a_read_voids_what_it_learnt() {
        let (k, _) = table();
        k.subscribed();
        let e = k.begin_read().unwrap();
        k.notice(&Notice::Changed("g".into()));
        k.learn(e, [("g".to_owned(), 5)]);
        assert_eq!(k.get("g"), None);
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
        for n in [Notice::Changed("ns:s:{a b}:gen".into()), Notice::All] {
            assert_eq!(Notice::decode(&n.encode()), n);
        }
        assert_eq!(Notice::decode(b"garbage"), Notice::All);
    }
}
