//! What moka stores per key: the full key, the value, its logical expiry
//! (per the backend's clock) and the real-time garbage-collection deadline
//! moka's expiry policy reads.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cache_core::{Bytes, Clock};
use moka::Expiry;

use crate::fingerprint::Fingerprint;

/// Bytes charged per entry on top of key and value (moka's node, our header).
pub(crate) const ENTRY_OVERHEAD: usize = 96;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The full key: moka is keyed by its [`Fingerprint`], so every lookup
    /// checks that the entry found is the key's own.
    pub(crate) key: Arc<str>,
    pub(crate) value: Bytes,
    /// Logical expiry per the backend's clock.
    pub(crate) expires_at: Option<SystemTime>,
    /// Real-time garbage-collection deadline handed to moka.
    pub(crate) gc_deadline: Option<Instant>,
}

impl Entry {
    pub(crate) fn live_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    /// Like [`Entry::live_at`] but reads the clock only when the entry has an
    /// expiry: most cached views and every generation key have none worth
    /// checking on the hot path, and a clock read is a noticeable share of a
    /// ~300 ns get.
    pub(crate) fn live(&self, clock: &dyn Clock) -> bool {
        self.expires_at.is_none_or(|t| clock.now() < t)
    }
}

/// moka expiry policy: each entry carries its own real-time deadline.
pub(crate) struct GcDeadline;

impl Expiry<Fingerprint, Entry> for GcDeadline {
    fn expire_after_create(&self, _key: &Fingerprint, value: &Entry, created_at: Instant) -> Option<Duration> {
        value.gc_deadline.map(|d| d.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &Fingerprint,
        value: &Entry,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.gc_deadline.map(|d| d.saturating_duration_since(updated_at))
    }
}
