//! Single-flight bookkeeping: which keys have a load in progress in this
//! process, who waits for each, and the value once it is known.
//!
//! No I/O and no waiting here: a waiter is whatever the driver needs to
//! wake someone up later (a channel sender in
//! [`RangeCache`](crate::RangeCache), a request slot in the simulator).
//! Both drivers take the same decisions from this table.

use std::collections::HashMap;

use bytes::Bytes;
use foldhash::quality::RandomState;

use crate::key::Key;

/// Identifies one load, so that a leader that finished (or was cancelled)
/// never removes a later leader's flight for the same key.
pub type FlightId = u64;

/// What [`Flights::begin`] decided for a request that needs a key loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum Begin<W> {
    /// Nobody is loading the key: this request loads it (and must end the
    /// flight with [`Flights::complete`] / [`Flights::finish`], or
    /// [`Flights::abandon`]). The waiter handed in is given back unused.
    Lead(FlightId, W),
    /// Another request is loading it: the waiter was queued and will be
    /// returned by [`Flights::complete`] or [`Flights::abandon`].
    Wait,
    /// Another request has loaded it and is storing it: here is its value.
    /// The waiter is given back unused.
    Ready(Bytes, W),
}

#[derive(Debug)]
struct Flight<W> {
    id: FlightId,
    /// The generations the leader planned under (a digest).
    stamp: u64,
    waiters: Vec<W>,
    value: Option<Bytes>,
}

/// The loads in progress in one process, by storage key (a
/// [`ReadPlan`](crate::ReadPlan)'s) and a stamp of the generations the
/// plan read, so requests for the same view under different generations
/// never share a load, even where the key stays the same (`stamped`): a
/// request that planned after a bump must not be handed what a request
/// that planned before it loaded.
///
/// Hashed with foldhash, randomly seeded per table: every miss hashes its
/// key three times here (begin, complete, finish), and std's SipHash made
/// that a measurable share of a simulated request; a random seed keeps
/// keys built from user input from aiming at one bucket.
#[derive(Debug)]
pub struct Flights<W> {
    map: HashMap<Key, Flight<W>, RandomState>,
    next: FlightId,
}

impl<W> Default for Flights<W> {
    fn default() -> Self {
        Flights {
            map: HashMap::with_hasher(RandomState::default()),
            next: 0,
        }
    }
}

impl<W> Flights<W> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys with a load in progress.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is loading.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A request for `key`, planned under generations digested as
    /// `stamp`, that found no usable entry: lead a load, wait for one, or
    /// take a value just loaded. When the key's load in progress was
    /// planned under other generations, this request leads a load of its
    /// own, outside the table (nobody joins it; ending it touches nothing).
    pub fn begin(&mut self, key: &Key, stamp: u64, waiter: W) -> Begin<W> {
        match self.map.get_mut(key) {
            Some(flight) if flight.stamp != stamp => {
                let id = self.next;
                self.next = self.next.wrapping_add(1);
                Begin::Lead(id, waiter)
            }
            Some(flight) => match &flight.value {
                Some(v) => Begin::Ready(v.clone(), waiter),
                None => {
                    flight.waiters.push(waiter);
                    Begin::Wait
                }
            },
            None => {
                let id = self.next;
                self.next = self.next.wrapping_add(1);
                self.map.insert(
                    key.clone(),
                    Flight {
                        id,
                        stamp,
                        waiters: Vec::new(),
                        value: None,
                    },
                );
                Begin::Lead(id, waiter)
            }
        }
    }

    /// The leader loaded `value`: returns the waiters to hand it to. The
    /// flight stays (later requests get [`Begin::Ready`]) until
    /// [`Flights::finish`], so that nobody loads the key again while the
    /// leader is still storing it.
    pub fn complete(&mut self, key: &Key, id: FlightId, value: Bytes) -> Vec<W> {
        match self.map.get_mut(key) {
            Some(f) if f.id == id => {
                f.value = Some(value);
                std::mem::take(&mut f.waiters)
            }
            _ => Vec::new(),
        }
    }

    /// The leader is done (stored, or gave up storing): forget the flight.
    pub fn finish(&mut self, key: &Key, id: FlightId) {
        // One lookup: remove, and put back in the rare case the flight is
        // another leader's (every miss ends here).
        if let Some((k, f)) = self.map.remove_entry(key) {
            if f.id != id {
                self.map.insert(k, f);
            }
        }
    }

    /// The leader failed or went away before loading: forget the flight and
    /// return its waiters, who should try again (one of them will lead).
    pub fn abandon(&mut self, key: &Key, id: FlightId) -> Vec<W> {
        match self.map.get(key) {
            Some(f) if f.id == id => self.map.remove(key).map(|f| f.waiters).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leads_others_wait_then_get_the_value_until_finished() {
        let k = Key::new("k").unwrap();
        let mut f = Flights::new();
        let Begin::Lead(id, 0) = f.begin(&k, 0, 0) else {
            panic!()
        };
        assert!(matches!(f.begin(&k, 0, 1), Begin::Wait));
        assert!(matches!(f.begin(&k, 0, 2), Begin::Wait));
        assert_eq!(f.complete(&k, id, Bytes::from_static(b"v")), vec![1, 2]);
        assert!(matches!(f.begin(&k, 0, 3), Begin::Ready(v, 3) if &v[..] == b"v"));
        f.finish(&k, id);
        assert!(f.is_empty());
        assert!(matches!(f.begin(&k, 0, 4), Begin::Lead(..)));
    }

    #[test]
    fn an_abandoned_flight_returns_its_waiters_and_old_ids_touch_nothing() {
        let k = Key::new("k").unwrap();
        let mut f = Flights::new();
        let Begin::Lead(old, _) = f.begin(&k, 0, 0) else {
            panic!()
        };
        assert!(matches!(f.begin(&k, 0, 1), Begin::Wait));
        assert_eq!(f.abandon(&k, old), vec![1]);
        let Begin::Lead(new, _) = f.begin(&k, 0, 1) else {
            panic!()
        };
        assert!(f.abandon(&k, old).is_empty(), "a stale id is ignored");
        f.finish(&k, old);
        assert_eq!(f.len(), 1, "and cannot end the new flight");
        f.finish(&k, new);
        assert!(f.is_empty());
    }

    #[test]
    fn requests_under_other_generations_never_share_a_load() {
        let k = Key::new("k").unwrap();
        let mut f = Flights::new();
        let Begin::Lead(old, _) = f.begin(&k, 1, 0) else {
            panic!()
        };
        let Begin::Lead(new, _) = f.begin(&k, 2, 1) else {
            panic!("a request planned under newer generations must load itself")
        };
        assert_ne!(old, new);
        assert!(f.complete(&k, new, Bytes::from_static(b"new")).is_empty());
        f.finish(&k, new);
        assert_eq!(f.len(), 1, "the unregistered load ends nothing");
        assert!(f.complete(&k, old, Bytes::from_static(b"old")).is_empty());
        assert!(
            matches!(f.begin(&k, 2, 2), Begin::Lead(..)),
            "the old value is not handed to a newer plan"
        );
        assert!(matches!(f.begin(&k, 1, 3), Begin::Ready(v, 3) if &v[..] == b"old"));
    }
}
