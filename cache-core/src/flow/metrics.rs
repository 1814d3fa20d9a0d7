//! [`CacheMetrics`]: the counters of cache-aside reads and invalidations,
//! kept the same way by every driver ([`RangeCache::metrics`](crate::RangeCache::metrics)
//! returns them; the simulator sums them per cell).

use serde::{Deserialize, Serialize};

use crate::flow::outcome::{FailSafe, Outcome, Served};

/// Counts of what reads and invalidations did: one type for every driver
/// and for what [`RangeCache::metrics`](crate::RangeCache::metrics)
/// returns. The same events also go to the `metrics` facade (see
/// [`crate::aside`]'s "Observability").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheMetrics {
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests not served from the cache (includes coalesced ones, early
    /// refreshes, fail-open reads, fail-safe answers and failed loads).
    pub misses: u64,
    /// Loader invocations.
    pub loader_calls: u64,
    /// Loader invocations that failed (returned an error; a load given up
    /// at the hard timeout is a [`load_timeouts`](Self::load_timeouts)).
    pub loader_errors: u64,
    /// Reads that failed with a backend error because fail-open is off.
    pub cache_failures: u64,
    /// Misses answered by another request's load (single-flight).
    pub coalesced: u64,
    /// Fresh entries recomputed early by XFetch.
    pub early_refreshes: u64,
    /// Backend errors on the read path (plan or get) answered by the loader.
    pub read_errors: u64,
    /// Backend errors while storing a loaded view (the view was served).
    pub store_errors: u64,
    /// Entries that did not open in their strategy's stored form (treated as misses).
    pub corrupt_entries: u64,
    /// Reads that bypassed the cache because a write to their scopes was
    /// open (`stamped`'s fence).
    pub bypassed: u64,
    /// Successful invalidations.
    pub invalidations: u64,
    /// Invalidations that returned an error.
    pub invalidation_errors: u64,
    /// Reads that skipped the cache because this process had a bump
    /// pending for one of their scopes over their dates
    /// (`Outcome::pending_bypass` in the sans-IO core).
    pub pending_bypassed: u64,
    /// Failed invalidations (`end_write`, `invalidate`) queued for retry
    /// (see the sans-IO core's pending table); each is also an
    /// [`invalidation_errors`](Self::invalidation_errors).
    pub bumps_queued: u64,
    /// Failed invalidations that could not be queued: an error a retry
    /// cannot fix (a key the strategy cannot build), or a full table. They
    /// are lost unless an outbox holds them.
    pub bumps_dropped: u64,
    /// Retry calls made for queued bumps (each probe and each catch-up
    /// call counts one).
    pub bump_retries: u64,
    /// Queued bumps a retry applied.
    pub bumps_reapplied: u64,
    /// Outbox rows this process's relay applied (written by any process:
    /// a writer that crashed, or one whose own retries had not succeeded
    /// yet).
    pub outbox_applied: u64,
    /// Outbox rows that did not decode, set aside
    /// ([`Outbox::quarantine`](crate::outbox::Outbox::quarantine)).
    pub outbox_quarantined: u64,
    /// Reads answered by fail-safe: the database failed or was too slow,
    /// and the entry stored for the view answered instead.
    pub fail_safe_served: u64,
    /// Of those, answered from an entry with old stamps
    /// ([`FailSafe::Stale`](crate::flow::FailSafe::Stale)): a write
    /// committed since it was loaded.
    pub fail_safe_stale: u64,
    /// Reads that returned no view because the loader failed or timed out
    /// and fail-safe had nothing ([`LoadError::Loader`](crate::aside::LoadError::Loader),
    /// [`LoadError::Timeout`](crate::aside::LoadError::Timeout)).
    pub failed_reads: u64,
    /// Loads given up at the hard timeout.
    pub load_timeouts: u64,
    /// Reads answered by fail-safe at the soft timeout while the load went
    /// on.
    pub soft_timeouts: u64,
    /// Loads that went on after their read was answered at the soft
    /// timeout and then refreshed the entry.
    pub background_refreshes: u64,
}

impl std::ops::Add for CacheMetrics {
    type Output = CacheMetrics;

    /// Counter by counter: several caches (one per process, say) as one.
    fn add(self, o: CacheMetrics) -> CacheMetrics {
        CacheMetrics {
            hits: self.hits + o.hits,
            misses: self.misses + o.misses,
            loader_calls: self.loader_calls + o.loader_calls,
            loader_errors: self.loader_errors + o.loader_errors,
            cache_failures: self.cache_failures + o.cache_failures,
            coalesced: self.coalesced + o.coalesced,
            early_refreshes: self.early_refreshes + o.early_refreshes,
            read_errors: self.read_errors + o.read_errors,
            store_errors: self.store_errors + o.store_errors,
            corrupt_entries: self.corrupt_entries + o.corrupt_entries,
            bypassed: self.bypassed + o.bypassed,
            invalidations: self.invalidations + o.invalidations,
            invalidation_errors: self.invalidation_errors + o.invalidation_errors,
            pending_bypassed: self.pending_bypassed + o.pending_bypassed,
            bumps_queued: self.bumps_queued + o.bumps_queued,
            bumps_dropped: self.bumps_dropped + o.bumps_dropped,
            bump_retries: self.bump_retries + o.bump_retries,
            bumps_reapplied: self.bumps_reapplied + o.bumps_reapplied,
            outbox_applied: self.outbox_applied + o.outbox_applied,
            outbox_quarantined: self.outbox_quarantined + o.outbox_quarantined,
            fail_safe_served: self.fail_safe_served + o.fail_safe_served,
            fail_safe_stale: self.fail_safe_stale + o.fail_safe_stale,
            failed_reads: self.failed_reads + o.failed_reads,
            load_timeouts: self.load_timeouts + o.load_timeouts,
            soft_timeouts: self.soft_timeouts + o.soft_timeouts,
            background_refreshes: self.background_refreshes + o.background_refreshes,
        }
    }
}

impl CacheMetrics {
    /// Counts one answered read. For a read answered at the soft timeout
    /// while its own load went on (`Outcome::soft_timed_out`) the load's
    /// end is counted by [`CacheMetrics::record_late`].
    pub fn record(&mut self, o: &Outcome) {
        let add = |c: &mut u64, yes: bool| *c += u64::from(yes);
        add(&mut self.hits, o.served == Served::Hit);
        add(&mut self.misses, o.served != Served::Hit);
        add(&mut self.coalesced, o.served == Served::Coalesced);
        add(&mut self.loader_calls, o.loader_called);
        add(&mut self.cache_failures, o.served == Served::CacheFailed);
        add(&mut self.early_refreshes, o.early_refresh);
        add(&mut self.read_errors, o.read_error);
        add(&mut self.corrupt_entries, o.corrupt_entry);
        add(&mut self.bypassed, o.bypassed);
        add(&mut self.pending_bypassed, o.pending_bypass);
        add(&mut self.fail_safe_served, o.served == Served::FailSafe);
        add(&mut self.fail_safe_stale, o.fail_safe == Some(FailSafe::Stale));
        add(&mut self.failed_reads, o.served == Served::Failed);
        add(&mut self.soft_timeouts, o.soft_timed_out);
        if !(o.soft_timed_out && o.loader_called) {
            self.record_load(o);
        }
    }

    /// Counts the end of a load that went on after its read was answered
    /// at the soft timeout: failed, given up, or a refreshed entry.
    pub fn record_late(&mut self, o: &Outcome) {
        self.record_load(o);
        self.background_refreshes += u64::from(!o.load_failed && !o.timed_out);
    }

    /// What a read's own load did.
    fn record_load(&mut self, o: &Outcome) {
        let add = |c: &mut u64, yes: bool| *c += u64::from(yes);
        add(&mut self.loader_errors, o.load_failed);
        add(&mut self.load_timeouts, o.timed_out && o.loader_called);
        add(&mut self.store_errors, o.store_error);
    }

    /// Counts one invalidation.
    pub fn record_invalidation(&mut self, ok: bool) {
        if ok {
            self.invalidations += 1;
        } else {
            self.invalidation_errors += 1;
        }
    }

    /// Backend errors of any kind (read path, store, invalidation).
    pub fn backend_errors(&self) -> u64 {
        self.read_errors + self.store_errors + self.invalidation_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter of `m`, by name.
    fn counters(m: &CacheMetrics) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(m) {
            Ok(serde_json::Value::Object(map)) => map,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn adding_sums_every_counter_by_name() {
        let mut a = CacheMetrics::default();
        let mut b = CacheMetrics::default();
        let hit = Outcome {
            served: Served::Hit,
            ..Outcome::default()
        };
        let load = Outcome {
            served: Served::Loaded,
            loader_called: true,
            store_error: true,
            ..Outcome::default()
        };
        a.record(&hit);
        a.record(&load);
        a.record_invalidation(false);
        b.record(&hit);
        b.record(&hit);
        b.record_invalidation(true);
        let (ca, cb, sum) = (counters(&a), counters(&b), counters(&(a + b)));
        assert_eq!(sum.len(), ca.len());
        for (name, v) in &sum {
            let want = ca[name].as_u64().unwrap_or(0) + cb[name].as_u64().unwrap_or(0);
            assert_eq!(v.as_u64(), Some(want), "{name}");
        }
        assert_eq!((a + b).hits, 3);
        assert_eq!((a + b).invalidations + (a + b).invalidation_errors, 2);
    }
}
