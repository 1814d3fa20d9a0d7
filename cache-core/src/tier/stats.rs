//! [`TierStats`]: what a [`TwoTier`](super::TwoTier) has done, and the
//! live counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one [`TwoTier`](super::TwoTier).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) reads: AtomicU64,
    pub(super) l1_hits: AtomicU64,
    pub(super) l1_hit_round_trips: AtomicU64,
    pub(super) zero_trip_reads: AtomicU64,
    pub(super) l2_round_trips: AtomicU64,
    pub(super) l2_keys_read: AtomicU64,
    pub(super) l2_bytes_read: AtomicU64,
    pub(super) l2_writes: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) publish_failures: AtomicU64,
    pub(super) tracking_fallbacks: AtomicU64,
    pub(super) l1_errors: AtomicU64,
}

/// What a [`TwoTier`](super::TwoTier) has done so far (reads are `get`/`get_many` calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TierStats {
    /// `get` / `get_many` calls.
    pub reads: u64,
    /// Entries served from L1 (stamps matched the current generations).
    pub l1_hits: u64,
    /// L2 calls made by the reads that served an L1 entry: 1 per L1 hit
    /// without a backplane or tracking, 0 with one (while generations are
    /// known).
    pub l1_hit_round_trips: u64,
    /// Reads answered without any L2 call (generations known through a
    /// backplane or tracking).
    pub zero_trip_reads: u64,
    /// L2 calls made by reads.
    pub l2_round_trips: u64,
    /// Keys those calls asked for.
    pub l2_keys_read: u64,
    /// Value bytes they brought back (what crossed the wire, keys aside).
    pub l2_bytes_read: u64,
    /// L2 calls made by writes (`set`, `add`, `incr`, deletes).
    pub l2_writes: u64,
    /// Notices published on the backplane.
    pub published: u64,
    /// Notices the backplane refused on every attempt (this process then
    /// forgot everything it knew).
    pub publish_failures: u64,
    /// Times everything known was forgotten because a notice or an
    /// invalidation may have been missed: a dropped subscription or
    /// tracking connection, a skipped notice number, a failed publish.
    pub resyncs: u64,
    /// Generation reads that went to L2 untracked because the tracking
    /// connection was down or failed (they learn nothing).
    pub tracking_fallbacks: u64,
    /// L1 calls that failed (the read went to L2 instead).
    pub l1_errors: u64,
}

impl std::ops::Add for TierStats {
    type Output = TierStats;

    /// Counter by counter: the tiers of several processes as one.
    fn add(self, o: TierStats) -> TierStats {
        TierStats {
            reads: self.reads + o.reads,
            l1_hits: self.l1_hits + o.l1_hits,
            l1_hit_round_trips: self.l1_hit_round_trips + o.l1_hit_round_trips,
            zero_trip_reads: self.zero_trip_reads + o.zero_trip_reads,
            l2_round_trips: self.l2_round_trips + o.l2_round_trips,
            l2_keys_read: self.l2_keys_read + o.l2_keys_read,
            l2_bytes_read: self.l2_bytes_read + o.l2_bytes_read,
            l2_writes: self.l2_writes + o.l2_writes,
            published: self.published + o.published,
            publish_failures: self.publish_failures + o.publish_failures,
            resyncs: self.resyncs + o.resyncs,
            tracking_fallbacks: self.tracking_fallbacks + o.tracking_fallbacks,
            l1_errors: self.l1_errors + o.l1_errors,
        }
    }
}

impl Counters {
    /// The counters now, with the table's `resyncs`.
    pub(super) fn snapshot(&self, resyncs: u64) -> TierStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TierStats {
            reads: g(&self.reads),
            l1_hits: g(&self.l1_hits),
            l1_hit_round_trips: g(&self.l1_hit_round_trips),
            zero_trip_reads: g(&self.zero_trip_reads),
            l2_round_trips: g(&self.l2_round_trips),
            l2_keys_read: g(&self.l2_keys_read),
            l2_bytes_read: g(&self.l2_bytes_read),
            l2_writes: g(&self.l2_writes),
            published: g(&self.published),
            publish_failures: g(&self.publish_failures),
            resyncs,
            tracking_fallbacks: g(&self.tracking_fallbacks),
            l1_errors: g(&self.l1_errors),
        }
    }
}

/// Adds `n` to counter `c`.
pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
