//! What one cell measured, and the recorder that collects it while the
//! cell runs.

use std::collections::BTreeMap;

use cache_core::flow::{Outcome, Served};
use cache_core::CacheMetrics;
use cache_core::StatsSnapshot;
use hdrhistogram::Histogram;

/// Feed latency percentiles in virtual time, µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest request.
    pub max_us: u64,
}

/// What one cell measured. Every field is a function of the trace, the seed
/// and the backend's semantics: no wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Feed requests served.
    pub reads: u64,
    /// Writes committed (creates, edits, deletes; not initial loads).
    pub writes: u64,
    /// Feeds served from the cache.
    pub hits: u64,
    /// Feeds not served from the cache (own load, coalesced, fail-open).
    pub misses: u64,
    /// Misses answered by another request's load in the same process.
    pub coalesced: u64,
    /// Fresh entries recomputed early (XFetch).
    pub early_refreshes: u64,
    /// Cached or coalesced responses whose content missed a write committed
    /// before the request started.
    pub stale_reads: u64,
    /// Longest lag of a stale response behind the first write it missed, µs.
    pub max_staleness_us: u64,
    /// Cached or coalesced responses from an entry filled before a write to
    /// one of the view's scopes that committed before the request started
    /// (conservative: the write may not have touched the view's dates).
    pub at_risk_reads: u64,
    /// Feed queries the database answered.
    pub db_queries: u64,
    /// Errors: backend or strategy errors (those reads fell back to the
    /// database), plus reads answered with an error because the database
    /// failed or timed out and fail-safe had nothing (`failed_reads`; only
    /// with injected database faults or timeouts).
    pub errors: u64,
    /// Reads answered with an error (the database failed or timed out,
    /// fail-safe had nothing); part of `errors`.
    pub failed_reads: u64,
    /// Reads answered by fail-safe (never counted as hits, nor judged into
    /// `stale_reads`).
    pub fail_safe_served: u64,
    /// Of those, the ones whose content missed a write committed before
    /// the request started (the judgement of `stale_reads`).
    pub fail_safe_stale: u64,
    /// Control-key evictions the trace asked for.
    pub control_evictions: u64,
    /// Backend calls made by reads.
    pub read_ops: StatsSnapshot,
    /// Backend calls made by invalidations.
    pub write_ops: StatsSnapshot,
    /// Stored feed entries no current key can read, when countable.
    pub dead_keys: Option<u64>,
    /// Their size (key + value bytes).
    pub dead_bytes: Option<u64>,
    /// Of the dead keys, those under a key no read of their view uses any
    /// more (orphans, removed only by their TTL), when countable.
    pub orphaned_keys: Option<u64>,
    /// Live entries at the end, when countable.
    pub live_keys: Option<u64>,
    /// Buckets of `bucket_us` since the start that had reads, in order:
    /// (bucket index, reads, stale reads). Sparse: a long quiet gap costs
    /// nothing.
    pub timeline: Vec<(u64, u64, u64)>,
    /// Feed latency from request to response, virtual time.
    pub latency: LatencySummary,
    /// The same, of hits only.
    pub hit_latency: LatencySummary,
    /// The same, of every read not served from the cache (its own load,
    /// a coalesced wait, a bypass, fail-open).
    pub miss_latency: LatencySummary,
    /// Virtual duration of the run, µs.
    pub duration_us: u64,
    /// What the two tiers did, summed over the processes, for a
    /// `two-tier:` backend (set by the runner, which owns the tiers).
    pub tier: Option<cache_core::tier::TierStats>,
    /// Keys the server evicted while the cell ran (its own counter, read
    /// before and after), for Redis and Memcached; `None` for in-process
    /// stores (set by the runner).
    pub server_evictions: Option<u64>,
    /// What injected faults did (queued and re-applied bumps, stale reads
    /// after a freeze), when the run injected any.
    pub faults: Option<super::FaultMetrics>,
    /// What database faults, fail-safe and the loader's timeouts did, when
    /// the run uses any of them.
    pub db_faults: Option<super::DbFaultMetrics>,
}

/// p50, p99, p99.9 and the maximum of `h` (all 0 when it is empty).
pub(super) fn summarize(h: Option<&Histogram<u64>>, max_us: u64) -> LatencySummary {
    let q = |q: f64| h.filter(|h| !h.is_empty()).map_or(0, |h| h.value_at_quantile(q));
    LatencySummary {
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us,
    }
}

/// Collects a cell's counts as it runs.
pub(crate) struct Recorder {
    pub(crate) tally: CacheMetrics,
    pub(crate) reads: u64,
    pub(crate) writes: u64,
    pub(crate) stale_reads: u64,
    pub(crate) at_risk_reads: u64,
    pub(crate) max_staleness_us: u64,
    pub(crate) other_errors: u64,
    pub(crate) control_evictions: u64,
    timeline: BTreeMap<u64, (u64, u64)>,
    /// The bucket being filled (reads arrive nearly in time order), moved
    /// into `timeline` when another bucket is served: a map lookup per
    /// bucket instead of per read.
    current: (u64, u64, u64),
    bucket_us: u64,
    latency: Option<Histogram<u64>>,
    max_latency_us: u64,
    /// Hits and misses apart: with a hit rate under 50% the overall p50
    /// and p99 are both the miss latency and say nothing about hits.
    hit_latency: Option<Histogram<u64>>,
    max_hit_us: u64,
    miss_latency: Option<Histogram<u64>>,
    max_miss_us: u64,
}

/// A [`Recorder`] as JSON carries it from a worker process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RecorderWire {
    tally: CacheMetrics,
    /// Reads, writes, stale reads, at-risk reads, the longest staleness,
    /// other errors, control evictions.
    counts: [u64; 7],
    timeline: Vec<(u64, u64, u64)>,
    bucket_us: u64,
    /// Each latency histogram's buckets: (a value in it, its count).
    latency: Vec<(u64, u64)>,
    hit_latency: Vec<(u64, u64)>,
    miss_latency: Vec<(u64, u64)>,
    /// The slowest request, hit and miss.
    maxima: [u64; 3],
}

/// Latencies are kept to 3 significant digits up to an hour; slower
/// requests count as an hour (only a pathological trace has any).
pub(super) const LATENCY_CAP_US: u64 = 3_600_000_000;

impl Recorder {
    pub(crate) fn new(bucket_us: u64) -> Self {
        Recorder {
            tally: CacheMetrics::default(),
            reads: 0,
            writes: 0,
            stale_reads: 0,
            at_risk_reads: 0,
            max_staleness_us: 0,
            other_errors: 0,
            control_evictions: 0,
            timeline: BTreeMap::new(),
            current: (0, 0, 0),
            bucket_us: bucket_us.max(1),
            latency: Histogram::new_with_bounds(1, LATENCY_CAP_US, 3).ok(),
            max_latency_us: 0,
            hit_latency: Histogram::new_with_bounds(1, LATENCY_CAP_US, 3).ok(),
            max_hit_us: 0,
            miss_latency: Histogram::new_with_bounds(1, LATENCY_CAP_US, 3).ok(),
            max_miss_us: 0,
        }
    }

    /// A read answered at `served_us` (µs since the run's start), started
    /// at `started_us`; `staleness` when its content was stale.
    pub(crate) fn served(&mut self, started_us: u64, served_us: u64, outcome: &Outcome, staleness: Option<u64>) {
        self.tally.record(outcome);
        let bucket = served_us / self.bucket_us;
        if bucket != self.current.0 {
            self.flush_bucket();
            self.current = (bucket, 0, 0);
        }
        self.current.1 += 1;
        if let Some(s) = staleness {
            self.current.2 += 1;
            self.stale_reads += 1;
            self.max_staleness_us = self.max_staleness_us.max(s);
        }
        let took = served_us.saturating_sub(started_us);
        self.max_latency_us = self.max_latency_us.max(took);
        let value = took.clamp(1, LATENCY_CAP_US);
        if let Some(h) = &mut self.latency {
            h.saturating_record(value);
        }
        let (part, max) = if outcome.served == Served::Hit {
            (&mut self.hit_latency, &mut self.max_hit_us)
        } else {
            (&mut self.miss_latency, &mut self.max_miss_us)
        };
        *max = (*max).max(took);
        if let Some(h) = part {
            h.saturating_record(value);
        }
    }

    fn flush_bucket(&mut self) {
        let (b, r, s) = self.current;
        if r > 0 {
            let e = self.timeline.entry(b).or_insert((0, 0));
            e.0 += r;
            e.1 += s;
        }
    }

    /// Adds `other`'s counts (another shard of the same cell, see
    /// `part.rs`): sums, maxima, the timelines bucket by bucket and the
    /// latency histograms.
    pub(crate) fn merge(&mut self, mut other: Recorder) {
        self.flush_bucket();
        self.current = (0, 0, 0);
        other.flush_bucket();
        self.tally = self.tally + other.tally;
        self.reads += other.reads;
        self.writes += other.writes;
        self.stale_reads += other.stale_reads;
        self.at_risk_reads += other.at_risk_reads;
        self.max_staleness_us = self.max_staleness_us.max(other.max_staleness_us);
        self.other_errors += other.other_errors;
        self.control_evictions += other.control_evictions;
        for (b, (r, s)) in other.timeline {
            let e = self.timeline.entry(b).or_insert((0, 0));
            e.0 += r;
            e.1 += s;
        }
        for (mine, theirs) in [
            (&mut self.latency, other.latency),
            (&mut self.hit_latency, other.hit_latency),
            (&mut self.miss_latency, other.miss_latency),
        ] {
            if let (Some(m), Some(t)) = (mine.as_mut(), theirs) {
                // Same bounds on both sides: the addition cannot fail.
                let _ = m.add(&t);
            }
        }
        self.max_latency_us = self.max_latency_us.max(other.max_latency_us);
        self.max_hit_us = self.max_hit_us.max(other.max_hit_us);
        self.max_miss_us = self.max_miss_us.max(other.max_miss_us);
    }

    /// The recorder as it crosses a process boundary (a shard run by a
    /// worker of `cache-sim --processes`).
    pub(crate) fn into_wire(mut self) -> RecorderWire {
        self.flush_bucket();
        // Each bucket by a value inside it and its count: recorded again,
        // the counts land in the same buckets and every quantile repeats.
        let buckets = |h: &Option<Histogram<u64>>| {
            h.as_ref().map_or_else(Vec::new, |h| {
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            })
        };
        RecorderWire {
            tally: self.tally,
            counts: [
                self.reads,
                self.writes,
                self.stale_reads,
                self.at_risk_reads,
                self.max_staleness_us,
                self.other_errors,
                self.control_evictions,
            ],
            timeline: self.timeline.into_iter().map(|(b, (r, s))| (b, r, s)).collect(),
            bucket_us: self.bucket_us,
            latency: buckets(&self.latency),
            hit_latency: buckets(&self.hit_latency),
            miss_latency: buckets(&self.miss_latency),
            maxima: [self.max_latency_us, self.max_hit_us, self.max_miss_us],
        }
    }

    /// The recorder [`Recorder::into_wire`] sent.
    pub(crate) fn from_wire(w: RecorderWire) -> crate::error::Result<Recorder> {
        let mut r = Recorder::new(w.bucket_us);
        r.tally = w.tally;
        [
            r.reads,
            r.writes,
            r.stale_reads,
            r.at_risk_reads,
            r.max_staleness_us,
            r.other_errors,
            r.control_evictions,
        ] = w.counts;
        r.timeline = w.timeline.into_iter().map(|(b, r, s)| (b, (r, s))).collect();
        for (h, buckets) in [
            (&mut r.latency, w.latency),
            (&mut r.hit_latency, w.hit_latency),
            (&mut r.miss_latency, w.miss_latency),
        ] {
            let Some(h) = h.as_mut() else { continue };
            for (value, count) in buckets {
                h.record_n(value, count)
                    .map_err(|e| crate::error::Error::Invalid(format!("a shard's latency of {value} µs: {e:?}")))?;
            }
        }
        [r.max_latency_us, r.max_hit_us, r.max_miss_us] = w.maxima;
        Ok(r)
    }

    /// Backend and strategy errors so far.
    pub(crate) fn error_total(&self) -> u64 {
        self.tally.backend_errors() + self.other_errors
    }

    /// Reads answered so far after a backend call, the evidence that the
    /// backend answers: a read that bypassed the cache for a pending bump
    /// (the writer's own scopes) made none, so it does not count.
    pub(crate) fn served_total(&self) -> u64 {
        (self.tally.hits + self.tally.misses).saturating_sub(self.tally.pending_bypassed)
    }

    fn summary(h: Option<&Histogram<u64>>, max_us: u64) -> LatencySummary {
        summarize(h, max_us)
    }

    /// The metrics, with what the recorder does not see filled in by the
    /// caller.
    pub(crate) fn finish(mut self, read_ops: StatsSnapshot, write_ops: StatsSnapshot, db_queries: u64) -> Metrics {
        self.flush_bucket();
        let latency = Self::summary(self.latency.as_ref(), self.max_latency_us);
        let hit_latency = Self::summary(self.hit_latency.as_ref(), self.max_hit_us);
        let miss_latency = Self::summary(self.miss_latency.as_ref(), self.max_miss_us);
        let t = self.tally;
        Metrics {
            reads: self.reads,
            writes: self.writes,
            hits: t.hits,
            misses: t.misses,
            coalesced: t.coalesced,
            early_refreshes: t.early_refreshes,
            stale_reads: self.stale_reads,
            at_risk_reads: self.at_risk_reads,
            max_staleness_us: self.max_staleness_us,
            db_queries,
            errors: t.backend_errors() + self.other_errors + t.failed_reads,
            failed_reads: t.failed_reads,
            fail_safe_served: t.fail_safe_served,
            fail_safe_stale: 0,
            control_evictions: self.control_evictions,
            read_ops,
            write_ops,
            dead_keys: None,
            dead_bytes: None,
            orphaned_keys: None,
            live_keys: None,
            timeline: self.timeline.into_iter().map(|(b, (r, s))| (b, r, s)).collect(),
            latency,
            hit_latency,
            miss_latency,
            duration_us: 0,
            tier: None,
            server_evictions: None,
            faults: None,
            db_faults: None,
        }
    }
}
