//! What a strategy stored, opened by the strategy that stored it.
//!
//! An entry is the envelope the read path sealed ([`crate::envelope`]:
//! payload, logical expiry, load time), wrapped in whatever its strategy
//! adds (`stamped` puts the generations the entry was computed under in
//! front). Only the strategy knows that wrapping, so every layer that looks
//! at a stored entry asks the strategy's [`StoredForm`] to open it and the
//! opened [`StoredEntry`] whether the strategy would serve it now:
//!
//! - the read path (the sans-IO core): a fetched entry is a hit only when it
//!   is [`Liveness::Live`] under the read's plan;
//! - the two-tier cache ([`crate::tier`]): an L1 copy is served only when
//!   its stamps are the generations just read and it is fresh;
//! - the simulator's dead-key count: an entry still stored at the end that
//!   is not live under its view's current plan is dead.
//!
//! So the three agree by construction on which entries count, and nothing
//! outside this module and the strategies decodes a stored entry.

use std::time::SystemTime;

use bytes::Bytes;

use crate::envelope::Envelope;
use crate::key::Key;
use crate::strategy::ReadPlan;

/// The stored form of one strategy's entries: how to open a value read
/// from one of its entry keys. [`Strategy::stored_form`](crate::Strategy::stored_form)
/// returns it.
pub trait StoredForm: Send + Sync + std::fmt::Debug {
    /// Opens `value`; `None` when it is not an entry in this form (a
    /// generation counter, a key index, bytes something else wrote).
    fn open(&self, value: &Bytes) -> Option<StoredEntry>;
}

/// The form of every strategy that stores the read path's envelope as it
/// is (all but `stamped`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "unstable-internals"), allow(unreachable_pub))]
pub struct EnvelopeForm;

impl StoredForm for EnvelopeForm {
    fn open(&self, value: &Bytes) -> Option<StoredEntry> {
        Envelope::parse(value).map(|envelope| StoredEntry { stamps: None, envelope })
    }
}

/// A stored entry, opened by its strategy's [`StoredForm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The generations the entry was computed under, 8 big-endian bytes
    /// each (`stamped`); `None` for strategies that do not stamp.
    stamps: Option<Bytes>,
    envelope: Envelope,
}

/// Whether a strategy would serve a stored entry now, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Liveness {
    /// It would be served.
    Live,
    /// A read of its view now uses another key (a generation in the key
    /// moved on): nothing will read it again, only its TTL removes it.
    Orphaned,
    /// It sits under the key a read uses now, but was computed under
    /// generations that are no longer current (`stamped` after a bump):
    /// dead until the next fill overwrites it.
    StaleStamps,
    /// Its logical expiry has passed.
    Expired,
    /// A write to its scopes is open: no read serves it until the write
    /// ends (which bumps, so it will not be served after either).
    Fenced,
}

impl Liveness {
    /// True for [`Liveness::Live`].
    pub fn is_live(self) -> bool {
        self == Liveness::Live
    }
}

impl StoredEntry {
    /// An entry with `stamps` (concatenated big-endian `u64`s, or `None`)
    /// around `envelope`. For strategies' own forms.
    pub(crate) fn new(stamps: Option<Bytes>, envelope: Envelope) -> Self {
        StoredEntry { stamps, envelope }
    }

    /// The envelope the read path stored: payload, logical expiry, load
    /// time.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The payload (what the loader produced).
    pub fn payload(&self) -> &Bytes {
        &self.envelope.payload
    }

    /// The entry carries stamps (it can be checked against generations
    /// without its strategy's plan, as the two-tier cache does).
    pub fn is_stamped(&self) -> bool {
        self.stamps.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// The stamps, in order (none for strategies that do not stamp).
    pub fn stamps(&self) -> impl Iterator<Item = u64> + '_ {
        self.stamps.iter().flat_map(|s| {
            s.chunks_exact(8).map(|c| {
                let mut word = [0u8; 8];
                word.copy_from_slice(c);
                u64::from_be_bytes(word)
            })
        })
    }

    /// True when the stamps are exactly `generations`, in order.
    pub fn stamped_with(&self, generations: &[u64]) -> bool {
        match &self.stamps {
            Some(s) => {
                s.len() == 8 * generations.len()
                    && s.chunks_exact(8)
                        .zip(generations)
                        .all(|(c, g)| c == g.to_be_bytes().as_slice())
            }
            None => false,
        }
    }

    /// Whether the strategy would serve this entry, stored under
    /// `stored_under`, to a read planned as `current` (the strategy's
    /// [`plan_read`](crate::Strategy::plan_read) of the entry's view now) at
    /// `now`: the plan must read this key, a stamped entry must carry the
    /// plan's generations, the envelope must be fresh and no write may be
    /// open.
    pub fn liveness(&self, stored_under: &Key, current: &ReadPlan, now: SystemTime) -> Liveness {
        if current.key != *stored_under {
            Liveness::Orphaned
        } else if self.stamps.is_some() && !self.stamped_with(&current.generations) {
            Liveness::StaleStamps
        } else if !self.envelope.is_fresh(now) {
            Liveness::Expired
        } else if current.bypass {
            Liveness::Fenced
        } else {
            Liveness::Live
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EntryBuf;
    use std::time::{Duration, UNIX_EPOCH};

    fn envelope(expires_s: u64) -> Bytes {
        EntryBuf::from_payload(b"[1]")
            .seal(Some(UNIX_EPOCH + Duration::from_secs(expires_s)), Duration::ZERO)
            .0
    }

    #[test]
    fn envelopes_are_live_under_their_own_key_until_they_expire() {
        let k = Key::new("k").unwrap();
        let e = EnvelopeForm.open(&envelope(100)).unwrap();
        assert!(!e.is_stamped());
        assert_eq!(&e.payload()[..], b"[1]");
        let plan = ReadPlan::new(k.clone(), None).with_generations(vec![7]);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(e.liveness(&k, &plan, at(99)), Liveness::Live);
        assert_eq!(e.liveness(&k, &plan, at(100)), Liveness::Expired);
        let moved = ReadPlan::new(Key::new("k2").unwrap(), None);
        assert_eq!(e.liveness(&k, &moved, at(99)), Liveness::Orphaned);
        assert_eq!(
            e.liveness(&k, &plan.clone().with_bypass(true), at(99)),
            Liveness::Fenced
        );
        assert!(
            EnvelopeForm.open(&Bytes::from_static(b"42")).is_none(),
            "a counter is no entry"
        );
    }
}
