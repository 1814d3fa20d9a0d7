//! The `metrics`-facade instruments of a [`RangeCache`](crate::RangeCache):
//! counters and histograms labelled with the cache's name and strategy.
//!
//! Handles are registered once, when the cache is built, with whatever
//! recorder is installed then (the application installs one, e.g.
//! `metrics-exporter-prometheus`, before building its caches; a library
//! never installs one). Without a recorder every handle is a no-op.

use std::time::Duration;

use metrics::{Counter, Histogram, Unit};

use crate::flow::{FailSafe, Outcome, Served};

/// Feed requests served from the cache.
pub const HITS: &str = "range_cache_hits_total";
/// Feed requests not served from the cache (loaded, coalesced, bypassed,
/// failed).
pub const MISSES: &str = "range_cache_misses_total";
/// Reads that skipped the cache because a write to their scopes was open.
pub const BYPASSED: &str = "range_cache_bypassed_total";
/// Misses answered by another request's load (single-flight).
pub const COALESCED: &str = "range_cache_coalesced_total";
/// Loader (database) calls.
pub const LOADS: &str = "range_cache_loads_total";
/// Loader calls that failed.
pub const LOAD_ERRORS: &str = "range_cache_load_errors_total";
/// Backend errors, labelled `path` = `read`, `store` or `write`.
pub const BACKEND_ERRORS: &str = "range_cache_backend_errors_total";
/// Fresh entries recomputed early by XFetch.
pub const EARLY_REFRESHES: &str = "range_cache_early_refreshes_total";
/// Writes whose invalidation reached the cache.
pub const INVALIDATIONS: &str = "range_cache_invalidations_total";
/// Reads answered by fail-safe, labelled `kind` = `current` or `stale`.
pub const FAIL_SAFE: &str = "range_cache_fail_safe_total";
/// Reads that returned no view: the loader failed or timed out and
/// fail-safe had nothing.
pub const FAILED_READS: &str = "range_cache_failed_reads_total";
/// Reads answered by fail-safe at the soft timeout while the load went on.
pub const SOFT_TIMEOUTS: &str = "range_cache_soft_timeouts_total";
/// Loads given up at the hard timeout.
pub const LOAD_TIMEOUTS: &str = "range_cache_load_timeouts_total";
/// Loader latency, seconds.
pub const LOAD_SECONDS: &str = "range_cache_load_seconds";
/// Latency of the cache's backend work per step, seconds, labelled
/// `step` = `plan`, `get`, `store` or `write`.
pub const BACKEND_SECONDS: &str = "range_cache_backend_seconds";

/// A backend step timed by [`Meters::backend`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum BackendStep {
    Plan,
    Get,
    Store,
    Write,
}

/// The instruments of one cache.
#[derive(Debug)]
pub(crate) struct Meters {
    hits: Counter,
    misses: Counter,
    bypassed: Counter,
    coalesced: Counter,
    loads: Counter,
    load_errors: Counter,
    read_errors: Counter,
    store_errors: Counter,
    write_errors: Counter,
    early_refreshes: Counter,
    invalidations: Counter,
    fail_safe: [Counter; 2],
    failed_reads: Counter,
    soft_timeouts: Counter,
    load_timeouts: Counter,
    load_seconds: Histogram,
    backend_seconds: [Histogram; 4],
}

impl Meters {
    /// Registers the instruments of the cache `name` using `strategy`.
    pub(crate) fn new(name: &str, strategy: &str) -> Self {
        describe();
        let labels = [("cache", name.to_owned()), ("strategy", strategy.to_owned())];
        let counter = |key: &'static str| metrics::counter!(key, &labels);
        let errors = |path: &'static str| metrics::counter!(BACKEND_ERRORS, "cache" => name.to_owned(), "strategy" => strategy.to_owned(), "path" => path);
        let kind = |kind: &'static str| metrics::counter!(FAIL_SAFE, "cache" => name.to_owned(), "strategy" => strategy.to_owned(), "kind" => kind);
        let backend = |step: &'static str| metrics::histogram!(BACKEND_SECONDS, "cache" => name.to_owned(), "strategy" => strategy.to_owned(), "step" => step);
        Meters {
            hits: counter(HITS),
            misses: counter(MISSES),
            bypassed: counter(BYPASSED),
            coalesced: counter(COALESCED),
            loads: counter(LOADS),
            load_errors: counter(LOAD_ERRORS),
            read_errors: errors("read"),
            store_errors: errors("store"),
            write_errors: errors("write"),
            early_refreshes: counter(EARLY_REFRESHES),
            invalidations: counter(INVALIDATIONS),
            fail_safe: [kind("current"), kind("stale")],
            failed_reads: counter(FAILED_READS),
            soft_timeouts: counter(SOFT_TIMEOUTS),
            load_timeouts: counter(LOAD_TIMEOUTS),
            load_seconds: metrics::histogram!(LOAD_SECONDS, &labels),
            backend_seconds: [backend("plan"), backend("get"), backend("store"), backend("write")],
        }
    }

    /// Counts one answered read (as [`CacheMetrics::record`](crate::CacheMetrics::record)
    /// does: a load that goes on after the answer is counted by
    /// [`Meters::late`]).
    pub(crate) fn read(&self, o: &Outcome) {
        add(&self.hits, o.served == Served::Hit);
        add(&self.misses, o.served != Served::Hit);
        add(&self.coalesced, o.served == Served::Coalesced);
        add(&self.loads, o.loader_called);
        add(&self.early_refreshes, o.early_refresh);
        add(&self.read_errors, o.read_error);
        add(&self.bypassed, o.bypassed);
        add(&self.failed_reads, o.served == Served::Failed);
        add(&self.soft_timeouts, o.soft_timed_out);
        match o.fail_safe {
            Some(FailSafe::Current) => self.fail_safe[0].increment(1),
            Some(FailSafe::Stale) => self.fail_safe[1].increment(1),
            _ => {}
        }
        if !(o.soft_timed_out && o.loader_called) {
            self.late(o);
        }
    }

    /// Counts what a read's own load did (failed, given up, store error),
    /// when it is known: with the answer, or when a load that went on past
    /// its soft timeout ends.
    pub(crate) fn late(&self, o: &Outcome) {
        add(&self.load_errors, o.load_failed);
        add(&self.load_timeouts, o.timed_out && o.loader_called);
        add(&self.store_errors, o.store_error);
    }

    /// Counts one write's invalidation (or its failure).
    pub(crate) fn write(&self, ok: bool) {
        if ok {
            self.invalidations.increment(1);
        } else {
            self.write_errors.increment(1);
        }
    }

    /// Records a loader call's latency.
    pub(crate) fn load(&self, took: Duration) {
        self.load_seconds.record(took.as_secs_f64());
    }

    /// Records a backend step's latency.
    pub(crate) fn backend(&self, step: BackendStep, took: Duration) {
        self.backend_seconds[step as usize].record(took.as_secs_f64());
    }
}

fn add(c: &Counter, yes: bool) {
    if yes {
        c.increment(1);
    }
}

/// Describes every instrument to the recorder (what exporters show as
/// help text). Cheap and idempotent.
fn describe() {
    metrics::describe_counter!(HITS, Unit::Count, "Feed requests served from the cache");
    metrics::describe_counter!(MISSES, Unit::Count, "Feed requests not served from the cache");
    metrics::describe_counter!(
        BYPASSED,
        Unit::Count,
        "Reads that skipped the cache during an open write"
    );
    metrics::describe_counter!(COALESCED, Unit::Count, "Misses answered by another request's load");
    metrics::describe_counter!(LOADS, Unit::Count, "Loader (database) calls");
    metrics::describe_counter!(LOAD_ERRORS, Unit::Count, "Loader calls that failed");
    metrics::describe_counter!(BACKEND_ERRORS, Unit::Count, "Cache backend errors by path");
    metrics::describe_counter!(EARLY_REFRESHES, Unit::Count, "Entries recomputed early by XFetch");
    metrics::describe_counter!(INVALIDATIONS, Unit::Count, "Write invalidations that reached the cache");
    metrics::describe_counter!(
        FAIL_SAFE,
        Unit::Count,
        "Reads answered by fail-safe (the database failed or was too slow) by kind of entry"
    );
    metrics::describe_counter!(
        FAILED_READS,
        Unit::Count,
        "Reads that returned no view: the loader failed or timed out and fail-safe had nothing"
    );
    metrics::describe_counter!(
        SOFT_TIMEOUTS,
        Unit::Count,
        "Reads answered by fail-safe at the soft timeout while the load went on"
    );
    metrics::describe_counter!(LOAD_TIMEOUTS, Unit::Count, "Loads given up at the hard timeout");
    metrics::describe_histogram!(LOAD_SECONDS, Unit::Seconds, "Loader latency");
    metrics::describe_histogram!(BACKEND_SECONDS, Unit::Seconds, "Cache backend latency by step");
}
