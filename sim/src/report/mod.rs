//! The comparison report: one row per (strategy, backend), rendered as a
//! Markdown table, CSV, JSON and HTML with inline SVG charts.
//!
//! Everything in a report is derived from the trace, the seed and the
//! backends' semantics, never from wall-clock time, so the same inputs give
//! byte-identical files (the determinism test checks `report.json`).
//!
//! # Layout
//!
//! - this module: the numbers ([`CellResult`], [`Report`]) and their
//!   Markdown, CSV and JSON forms;
//! - `html`: `report.html` and its inline SVG charts;
//! - `verdict`: the recommendation with its why-not table, and the
//!   server-eviction notice, in Markdown and HTML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use cache_core::Op;
use serde::Serialize;

mod html;
mod verdict;

use crate::config::RunConfig;
use crate::engine::{Latencies, Metrics};
use crate::trace::{AccessLogSummary, Header, FORMAT_VERSION};

/// Calls and keys of one operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpCount {
    /// Round trips.
    pub calls: u64,
    /// Keys touched.
    pub keys: u64,
}

/// One (strategy, backend) cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CellResult {
    /// Strategy name.
    pub strategy: String,
    /// Backend label.
    pub backend: String,
    /// Feed requests served.
    pub reads: u64,
    /// Writes committed.
    pub writes: u64,
    /// Feeds served from the cache.
    pub hits: u64,
    /// Feeds served from the database.
    pub misses: u64,
    /// `hits / reads`.
    pub hit_rate: f64,
    /// Hits that missed a write committed before the request started.
    pub stale_reads: u64,
    /// `stale_reads / reads`.
    pub stale_rate: f64,
    /// Hits from an entry filled before a write to one of the view's scopes
    /// that committed before the request started: conservative (the write
    /// may not have touched the view's dates), needs no database truth, never
    /// part of `stale_reads`.
    pub at_risk_reads: u64,
    /// Longest lag of a stale response behind the first write it missed.
    pub max_staleness_ms: f64,
    /// Backend round trips (reads and invalidations).
    pub backend_ops: u64,
    /// Keys those round trips touched (a multi-get of N counts N).
    pub backend_keys: u64,
    /// Round trips made by reads.
    pub read_ops: u64,
    /// Round trips made by invalidations.
    pub write_ops: u64,
    /// `read_ops / reads`.
    pub ops_per_read: f64,
    /// `write_ops / writes`.
    pub ops_per_write: f64,
    /// Keys touched per write.
    pub keys_per_write: f64,
    /// Feed queries the database answered.
    pub db_queries: u64,
    /// Misses answered by another request's load in the same process
    /// (single-flight).
    pub coalesced: u64,
    /// Fresh entries recomputed early (XFetch).
    pub early_refreshes: u64,
    /// Feed latency, median, ms of virtual time (from the modelled latencies
    /// of the steps a request took, waiting for a coalesced load included).
    pub latency_p50_ms: f64,
    /// Feed latency, 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Feed latency, 99.9th percentile, ms.
    pub latency_p999_ms: f64,
    /// Latency of hits alone, median, ms (0 without hits): with a hit rate
    /// under 50% the overall median is a miss's and says nothing of hits.
    pub latency_hit_p50_ms: f64,
    /// Latency of hits alone, 99th percentile, ms.
    pub latency_hit_p99_ms: f64,
    /// Latency of reads not served from the cache (own load, coalesced
    /// wait, bypass, fail-open), median, ms (0 without misses).
    pub latency_miss_p50_ms: f64,
    /// Latency of those reads, 99th percentile, ms.
    pub latency_miss_p99_ms: f64,
    /// Feed entries stored at the end that the strategy would not serve
    /// now (orphaned, expired, or `stamped` with stamps no longer current);
    /// `null` when the backend cannot list its keys.
    pub dead_keys: Option<u64>,
    /// Their bytes (key + value).
    pub dead_bytes: Option<u64>,
    /// Of the dead keys, orphans: under a key no read of their view uses
    /// any more, so only their TTL removes them (`versioned` after a
    /// bump). `stamped`'s dead entries are not orphans: the next fill of
    /// their view overwrites them.
    pub orphaned_keys: Option<u64>,
    /// Live entries at the end (feeds and control keys).
    pub live_keys: Option<u64>,
    /// Errors: backend or strategy errors (those requests fell back to
    /// the database: fail-open), plus reads answered with an error because
    /// the database failed or timed out and fail-safe had nothing
    /// ([`Self::failed_reads`], only in runs with database faults or
    /// timeouts).
    pub errors: u64,
    /// Reads answered by fail-safe (database faults, fail-safe or timeouts
    /// in the run; absent otherwise): the database failed or was too slow
    /// and the entry stored for the view answered. Never hits, never in
    /// `stale_reads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_safe_served: Option<u64>,
    /// Of those, the ones that missed a write committed before the request
    /// started (judged as `stale_reads` are, and counted apart from them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_safe_stale: Option<u64>,
    /// Reads answered with an error (part of `errors`), in runs with
    /// database faults or timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_reads: Option<u64>,
    /// Control-key evictions the scenario injected.
    pub control_evictions: u64,
    /// Value bytes the read path received from the backend per read: what
    /// crossed the wire for a remote store (for a two-tier backend, from L1
    /// or L2 alike; see [`Self::tier`] for L2 alone).
    pub bytes_per_read: f64,
    /// The two tiers' own counts, for a `two-tier:` backend (`null`
    /// otherwise).
    pub tier: Option<TierSummary>,
    /// Keys the server evicted while this cell ran (Redis `INFO stats`
    /// `evicted_keys`, Memcached `stats` `evictions`, read before and after
    /// the cell; for a two-tier backend, its L2's). Absent for in-process
    /// stores. When it moved, delete-based strategies may have lost what
    /// they rely on (a key index) and the report says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_evictions: Option<u64>,
    /// What injected faults did in this cell (`--freeze`,
    /// `--crash-writer-at`); absent from runs without faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultSummary>,
    /// What database faults, fail-safe and the loader's timeouts did in
    /// this cell (`--db-fault`, `--fail-safe`, `--soft-timeout-ms`,
    /// `--hard-timeout-ms`); absent from runs without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_faults: Option<DbFaultSummary>,
    /// Round trips per operation kind (only kinds that occurred).
    pub ops: BTreeMap<&'static str, OpCount>,
    /// Staleness over time: `[bucket start s, reads, stale reads]` for every
    /// bucket with reads.
    pub timeline: Vec<[u64; 3]>,
}

/// What a two-tier backend's tiers did in one cell, summed over processes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TierSummary {
    /// Value bytes read from L2 per feed read (compare with an L2-only
    /// cell's `bytes_per_read`).
    pub l2_bytes_per_read: f64,
    /// L2 round trips per feed read (reads only; the plan's generations
    /// and any entry fetch).
    pub l2_round_trips_per_read: f64,
    /// Entries served from L1 (their stamps matched L2's generations).
    pub l1_hits: u64,
    /// L2 round trips per L1 hit: 1 without a backplane, about 0 with one.
    pub round_trips_per_l1_hit: f64,
    /// Backend reads answered without any L2 call (backplane-known
    /// generations).
    pub zero_trip_reads: u64,
    /// Notices published on the backplane.
    pub published: u64,
}

/// What injected faults did in one cell: the bumps they made fail, what
/// the relay did about them, and the stale reads left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FaultSummary {
    /// Bumps that failed and were queued for retry in their process.
    pub bumps_queued: u64,
    /// Retry calls made (probes and catch-up).
    pub bump_retries: u64,
    /// Queued bumps a retry applied.
    pub bumps_reapplied: u64,
    /// Bumps never applied (a crashed writer's, without the outbox).
    pub bumps_lost: u64,
    /// Outbox rows the relays applied.
    pub outbox_applied: u64,
    /// Writers that crashed between commit and bump.
    pub writer_crashes: u64,
    /// Reads their own process sent around the cache while a bump of
    /// theirs was pending.
    pub pending_bypassed: u64,
    /// Stale reads served while the cache was frozen.
    pub stale_during_freeze: u64,
    /// Stale reads served after a freeze ended.
    pub stale_after_thaw: u64,
    /// The latest of them, ms after the end of its freeze: the bound the
    /// retry schedule gives (`bump_retry_max`).
    pub max_stale_after_thaw_ms: f64,
    /// Backend errors that overlapped a freeze (expected: the CLI's
    /// `--max-error-rate` leaves them out).
    pub errors_in_freeze: u64,
}

impl From<crate::engine::FaultMetrics> for FaultSummary {
    fn from(f: crate::engine::FaultMetrics) -> Self {
        FaultSummary {
            bumps_queued: f.bumps_queued,
            bump_retries: f.bump_retries,
            bumps_reapplied: f.bumps_reapplied,
            bumps_lost: f.bumps_lost,
            outbox_applied: f.outbox_applied,
            writer_crashes: f.writer_crashes,
            pending_bypassed: f.pending_bypassed,
            stale_during_freeze: f.stale_during_freeze,
            stale_after_thaw: f.stale_after_thaw,
            max_stale_after_thaw_ms: ms(f.max_stale_after_thaw_us),
            errors_in_freeze: f.errors_in_freeze,
        }
    }
}

/// What database faults, fail-safe and the loader's timeouts did in one
/// cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DbFaultSummary {
    /// Reads answered by fail-safe.
    pub fail_safe_served: u64,
    /// Of those, from an entry with old stamps (what a service's header
    /// says: `stale`); the rest were `current`.
    pub fail_safe_old_stamps: u64,
    /// Of those, judged stale against the database (as `stale_reads`).
    pub fail_safe_stale: u64,
    /// The longest such answer lagged the first write it missed, ms.
    pub max_fail_safe_staleness_ms: f64,
    /// Reads answered with an error.
    pub failed_reads: u64,
    /// Loads that reached a failing database.
    pub loads_failed: u64,
    /// Loads given up at the hard timeout.
    pub load_timeouts: u64,
    /// Reads answered by fail-safe at the soft timeout.
    pub soft_timeouts: u64,
    /// Loads that went on after a soft timeout and refreshed the entry.
    pub background_refreshes: u64,
    /// Reads that started inside a database fault window.
    pub reads_in_fault: u64,
    /// Their latency, median, ms of virtual time.
    pub latency_in_fault_p50_ms: f64,
    /// Their latency, 99th percentile, ms.
    pub latency_in_fault_p99_ms: f64,
    /// Their latency, maximum, ms.
    pub latency_in_fault_max_ms: f64,
}

impl From<crate::engine::DbFaultMetrics> for DbFaultSummary {
    fn from(d: crate::engine::DbFaultMetrics) -> Self {
        DbFaultSummary {
            fail_safe_served: d.fail_safe_served,
            fail_safe_old_stamps: d.fail_safe_old_stamps,
            fail_safe_stale: d.fail_safe_stale,
            max_fail_safe_staleness_ms: ms(d.max_fail_safe_staleness_us),
            failed_reads: d.failed_reads,
            loads_failed: d.loads_failed,
            load_timeouts: d.load_timeouts,
            soft_timeouts: d.soft_timeouts,
            background_refreshes: d.background_refreshes,
            reads_in_fault: d.reads_in_fault,
            latency_in_fault_p50_ms: ms(d.latency_in_fault.p50_us),
            latency_in_fault_p99_ms: ms(d.latency_in_fault.p99_us),
            latency_in_fault_max_ms: ms(d.latency_in_fault.max_us),
        }
    }
}

/// The database faults a run injected and its fail-safe and timeout
/// settings, as the report states them (absent from runs without them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DbFaultPlan {
    /// The fault windows: `outage` or `slow` (with its latency), start and
    /// end in seconds after the trace's start.
    pub windows: Vec<DbFaultWindow>,
    /// Fail-safe's max age past an entry's expiry, seconds; `null`: off.
    pub fail_safe_max_age_s: Option<f64>,
    /// The loader's soft timeout, ms; `null`: none.
    pub soft_timeout_ms: Option<f64>,
    /// The loader's hard timeout, ms; `null`: none.
    pub hard_timeout_ms: Option<f64>,
}

/// One database fault window of a [`DbFaultPlan`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DbFaultWindow {
    /// `outage` or `slow`.
    pub kind: &'static str,
    /// Start, s after the trace's start.
    pub start_s: f64,
    /// End (exclusive), s.
    pub end_s: f64,
    /// A slow window's query latency, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl DbFaultPlan {
    fn of(cfg: &RunConfig) -> Option<DbFaultPlan> {
        use crate::config::DbFaultKind;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        cfg.uses_db_faults().then(|| DbFaultPlan {
            windows: cfg
                .faults
                .db
                .iter()
                .map(|w| DbFaultWindow {
                    kind: match w.kind {
                        DbFaultKind::Slow { .. } => "slow",
                        _ => "outage",
                    },
                    start_s: w.start_us as f64 / 1e6,
                    end_s: w.end_us as f64 / 1e6,
                    latency_ms: match w.kind {
                        DbFaultKind::Slow { latency_us } => Some(latency_us as f64 / 1000.0),
                        _ => None,
                    },
                })
                .collect(),
            fail_safe_max_age_s: cfg.aside.fail_safe_max_age.map(|d| d.as_secs_f64()),
            soft_timeout_ms: cfg.aside.soft_timeout.map(ms),
            hard_timeout_ms: cfg.aside.hard_timeout.map(ms),
        })
    }
}

/// The faults a run injected and the relay's settings, as the report
/// states them (absent from runs without faults).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FaultPlan {
    /// Freezes of the cache: `[start s, end s]` after the trace's start.
    pub freezes_s: Vec<[f64; 2]>,
    /// The first write at or after this instant (s) loses its writer
    /// between commit and bump.
    pub crash_writer_at_s: Option<f64>,
    /// Whether writes record their change in a transactional outbox.
    pub outbox: bool,
    /// First retry of a failed bump, ms.
    pub bump_retry_min_ms: f64,
    /// Longest wait between retries, ms.
    pub bump_retry_max_ms: f64,
    /// How often the outbox relays poll, ms.
    pub outbox_poll_ms: f64,
    /// How old a row must be before a relay applies it, ms.
    pub outbox_grace_ms: f64,
}

impl FaultPlan {
    fn of(cfg: &RunConfig) -> Option<FaultPlan> {
        let f = &cfg.faults;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        f.any().then(|| FaultPlan {
            freezes_s: f
                .freezes
                .iter()
                .map(|w| [w.start_us as f64 / 1e6, w.end_us as f64 / 1e6])
                .collect(),
            crash_writer_at_s: f.crash_writer_at_us.map(|t| t as f64 / 1e6),
            outbox: f.outbox,
            bump_retry_min_ms: ms(cfg.aside.bump_retry_min),
            bump_retry_max_ms: ms(cfg.aside.bump_retry_max),
            outbox_poll_ms: ms(cfg.aside.outbox_poll),
            outbox_grace_ms: ms(cfg.aside.outbox_grace),
        })
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        // Rounded so that the JSON stays short and stable.
        (a as f64 / b as f64 * 1e6).round() / 1e6
    }
}

/// µs as ms, rounded to the µs so that the JSON stays short and stable.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl CellResult {
    /// Summarises a cell's metrics.
    pub fn new(strategy: &str, backend: &str, m: &Metrics, bucket: Duration) -> Self {
        let mut ops = BTreeMap::new();
        for op in Op::ALL {
            let (r, w) = (m.read_ops.op(op), m.write_ops.op(op));
            if r.calls + w.calls > 0 {
                ops.insert(
                    op.as_str(),
                    OpCount {
                        calls: r.calls + w.calls,
                        keys: r.keys + w.keys,
                    },
                );
            }
        }
        let read_ops = m.read_ops.total_calls();
        let write_ops = m.write_ops.total_calls();
        let bucket_s = bucket.as_secs().max(1);
        CellResult {
            strategy: strategy.to_owned(),
            backend: backend.to_owned(),
            reads: m.reads,
            writes: m.writes,
            hits: m.hits,
            misses: m.misses,
            hit_rate: ratio(m.hits, m.reads),
            stale_reads: m.stale_reads,
            stale_rate: ratio(m.stale_reads, m.reads),
            at_risk_reads: m.at_risk_reads,
            max_staleness_ms: m.max_staleness_us as f64 / 1000.0,
            backend_ops: read_ops + write_ops,
            backend_keys: m.read_ops.total_keys() + m.write_ops.total_keys(),
            read_ops,
            write_ops,
            ops_per_read: ratio(read_ops, m.reads),
            ops_per_write: ratio(write_ops, m.writes),
            keys_per_write: ratio(m.write_ops.total_keys(), m.writes),
            db_queries: m.db_queries,
            coalesced: m.coalesced,
            early_refreshes: m.early_refreshes,
            latency_p50_ms: ms(m.latency.p50_us),
            latency_p99_ms: ms(m.latency.p99_us),
            latency_p999_ms: ms(m.latency.p999_us),
            latency_hit_p50_ms: ms(m.hit_latency.p50_us),
            latency_hit_p99_ms: ms(m.hit_latency.p99_us),
            latency_miss_p50_ms: ms(m.miss_latency.p50_us),
            latency_miss_p99_ms: ms(m.miss_latency.p99_us),
            dead_keys: m.dead_keys,
            dead_bytes: m.dead_bytes,
            orphaned_keys: m.orphaned_keys,
            live_keys: m.live_keys,
            errors: m.errors,
            fail_safe_served: m.db_faults.map(|_| m.fail_safe_served),
            fail_safe_stale: m.db_faults.map(|_| m.fail_safe_stale),
            failed_reads: m.db_faults.map(|_| m.failed_reads),
            control_evictions: m.control_evictions,
            bytes_per_read: ratio(m.read_ops.bytes_read, m.reads),
            tier: m.tier.map(|t| TierSummary {
                l2_bytes_per_read: ratio(t.l2_bytes_read, m.reads),
                l2_round_trips_per_read: ratio(t.l2_round_trips, m.reads),
                l1_hits: t.l1_hits,
                round_trips_per_l1_hit: ratio(t.l1_hit_round_trips, t.l1_hits),
                zero_trip_reads: t.zero_trip_reads,
                published: t.published,
            }),
            server_evictions: m.server_evictions,
            faults: m.faults.map(FaultSummary::from),
            db_faults: m.db_faults.map(DbFaultSummary::from),
            ops,
            timeline: m
                .timeline
                .iter()
                .filter(|(_, r, _)| *r > 0)
                .map(|&(i, r, s)| [i.saturating_mul(bucket_s), r, s])
                .collect(),
        }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Always `cache-sim`.
    pub tool: &'static str,
    /// The simulator's version.
    pub version: &'static str,
    /// The trace format version.
    pub trace_format_version: u64,
    /// Scenario name (or `replay`).
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Trace file replayed, if any.
    pub trace: Option<String>,
    /// Virtual start of the trace.
    pub start: String,
    /// App processes.
    pub processes: u32,
    /// Backends compared.
    pub backends: Vec<String>,
    /// Strategies compared.
    pub strategies: Vec<String>,
    /// Step latencies, µs.
    pub latencies_us: Latencies,
    /// Whether each app process coalesced concurrent misses (single-flight).
    pub single_flight: bool,
    /// Whether writes were announced before their commit (`--fence`).
    pub fenced_writes: bool,
    /// XFetch's β, when early refresh was on.
    pub xfetch_beta: Option<f64>,
    /// Cached views' TTL, seconds.
    pub ttl_s: f64,
    /// `short-ttl`'s TTL, seconds.
    pub short_ttl_s: f64,
    /// Payload bytes per feed item.
    pub item_bytes: usize,
    /// Staleness-over-time bucket width, seconds.
    pub bucket_s: u64,
    /// Whether `stale_reads` were judged against a database (false for an
    /// access log: its items are modelled, so only `at_risk_reads` counts).
    pub stale_judged: bool,
    /// What the access log held and which lines were skipped, for a
    /// `--format access-log` replay.
    pub access_log: Option<AccessLogSummary>,
    /// The faults injected and the relay's settings (`--freeze`,
    /// `--crash-writer-at`, `--outbox`); absent from runs without faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultPlan>,
    /// The database faults injected and the fail-safe and timeout
    /// settings (`--db-fault`, `--fail-safe`, `--soft-timeout-ms`,
    /// `--hard-timeout-ms`); absent from runs without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_faults: Option<DbFaultPlan>,
    /// One object per (strategy, backend).
    pub results: Vec<CellResult>,
    /// The verdict: the cell to use and why not each other one
    /// ([`crate::verdict`]); absent when the run asked for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<crate::verdict::Recommendation>,
}

impl Report {
    /// Assembles a report.
    pub fn new(cfg: &RunConfig, header: &Header, results: Vec<CellResult>) -> Self {
        Report {
            tool: "cache-sim",
            version: env!("CARGO_PKG_VERSION"),
            trace_format_version: FORMAT_VERSION,
            scenario: cfg.scenario.clone(),
            seed: cfg.seed,
            trace: cfg.trace.clone(),
            start: header.start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            processes: header.processes,
            backends: cfg.backends.iter().map(|b| b.label()).collect(),
            strategies: cfg.strategies.clone(),
            latencies_us: cfg.latencies,
            single_flight: cfg.aside.single_flight,
            fenced_writes: cfg.fenced_writes,
            xfetch_beta: cfg.aside.xfetch_beta,
            ttl_s: cfg.ttl.as_secs_f64(),
            short_ttl_s: cfg.short_ttl.as_secs_f64(),
            item_bytes: cfg.item_bytes,
            bucket_s: cfg.bucket.as_secs().max(1),
            stale_judged: cfg.judge_stale,
            access_log: None,
            faults: FaultPlan::of(cfg),
            db_faults: DbFaultPlan::of(cfg),
            results,
            recommendation: None,
        }
    }

    /// `report.json`.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    }

    fn caption(&self) -> String {
        format!(
            "Scenario `{}`, seed {}, {}start {}, {} process(es), backends: {}; cache-sim {} (trace format v{}).",
            self.scenario,
            self.seed,
            self.trace
                .as_ref()
                .map(|t| format!("trace `{t}`, "))
                .unwrap_or_default(),
            self.start,
            self.processes,
            self.backends.join(", "),
            self.version,
            self.trace_format_version
        )
    }

    /// `report.md` (and what `cache-sim` prints): the caption, the
    /// comparison table, the sections a run calls for (tiers, access log,
    /// server eviction), and the verdict with its why-not table.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}\n", self.caption());
        s.push_str(
            "| strategy | backend | reads | writes | hits | hit rate | stale reads | stale % | max staleness ms | ops/read | ops/write | DB queries | coalesced | p50 ms | p99 ms | p99.9 ms | errors | dead keys | at-risk reads |\n",
        );
        s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let judged = |v: String| if self.stale_judged { v } else { "n/a".to_owned() };
        for r in &self.results {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {:.2} | {:.2} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
                r.strategy,
                r.backend,
                r.reads,
                r.writes,
                r.hits,
                r.hit_rate * 100.0,
                judged(stale_cell(r)),
                judged(format!("{:.2}%", r.stale_rate * 100.0)),
                judged(format!("{:.1}", r.max_staleness_ms)),
                r.ops_per_read,
                r.ops_per_write,
                r.db_queries,
                r.coalesced,
                r.latency_p50_ms,
                r.latency_p99_ms,
                r.latency_p999_ms,
                r.errors,
                r.dead_keys.map(|d| d.to_string()).unwrap_or_else(|| "n/a".into()),
                r.at_risk_reads
            );
        }
        if !self.stale_judged {
            s.push_str("\nStale reads are n/a: an access log has no database to judge them by. At-risk reads count hits from an entry filled before a write to one of the feed's scopes committed (conservative).\n");
        }
        if self.results.iter().any(|r| r.tier.is_some()) {
            s.push_str(&self.tiers_markdown());
        }
        if let Some(a) = &self.access_log {
            s.push_str(&access_log_markdown(a));
        }
        if let Some(plan) = &self.faults {
            s.push_str(&self.faults_markdown(plan));
        }
        if let Some(plan) = &self.db_faults {
            s.push_str(&self.db_faults_markdown(plan));
        }
        s.push_str(&self.latency_markdown());
        s.push_str(&verdict::evictions_markdown(self));
        if let Some(rec) = &self.recommendation {
            s.push_str(&verdict::markdown(rec));
        }
        s
    }

    /// The latency-by-outcome section of `report.md`: hits and misses
    /// apart, so each shows even when one of them is most reads.
    fn latency_markdown(&self) -> String {
        let mut s = String::from(
            "
Feed latency by outcome, ms of virtual time (misses: own load, coalesced wait, bypass or fail-open):

| strategy | backend | hits | hit p50 | hit p99 | misses | miss p50 | miss p99 |
|---|---|---:|---:|---:|---:|---:|---:|
",
        );
        for r in &self.results {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} |",
                r.strategy,
                r.backend,
                r.hits,
                r.latency_hit_p50_ms,
                r.latency_hit_p99_ms,
                r.misses,
                r.latency_miss_p50_ms,
                r.latency_miss_p99_ms
            );
        }
        s
    }

    /// The faults section of `report.md`: what was injected, and per cell
    /// what the bumps went through and the stale reads left.
    fn faults_markdown(&self, plan: &FaultPlan) -> String {
        let freezes: Vec<String> = plan.freezes_s.iter().map(|[a, b]| format!("{a} s to {b} s")).collect();
        let mut s = format!(
            "\nFaults: cache frozen {}; writer crash {}; outbox {}; failed bumps retried after {} ms, doubling to {} ms; outbox relays poll every {} ms for rows older than {} ms.\n",
            if freezes.is_empty() { "never".to_owned() } else { freezes.join(", ") },
            plan.crash_writer_at_s.map_or("none".to_owned(), |t| format!("at the first write from {t} s")),
            if plan.outbox { "on" } else { "off" },
            plan.bump_retry_min_ms,
            plan.bump_retry_max_ms,
            plan.outbox_poll_ms,
            plan.outbox_grace_ms,
        );
        s.push_str(
            "\n| strategy | backend | bumps queued | retries | re-applied | lost | outbox applied | bypassed reads | stale during freeze | stale after thaw | last stale after thaw ms | errors in freeze |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.results {
            let Some(f) = &r.faults else { continue };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
                r.strategy,
                r.backend,
                f.bumps_queued,
                f.bump_retries,
                f.bumps_reapplied,
                f.bumps_lost,
                f.outbox_applied,
                f.pending_bypassed,
                f.stale_during_freeze,
                f.stale_after_thaw,
                f.max_stale_after_thaw_ms,
                f.errors_in_freeze,
            );
        }
        s
    }

    /// The database-faults section of `report.md`: what was injected and
    /// set, and per cell the fail-safe answers (and how many were stale),
    /// the errors, the timeouts and the latency inside the fault windows.
    fn db_faults_markdown(&self, plan: &DbFaultPlan) -> String {
        let windows: Vec<String> = plan
            .windows
            .iter()
            .map(|w| match w.latency_ms {
                Some(l) => format!("slow ({l} ms per query) {} s to {} s", w.start_s, w.end_s),
                None => format!("down {} s to {} s", w.start_s, w.end_s),
            })
            .collect();
        let opt = |v: Option<f64>, unit: &str| v.map_or("off".to_owned(), |v| format!("{v} {unit}"));
        let mut s = format!(
            "\nDatabase faults: {}; fail-safe max age {}; soft timeout {}; hard timeout {}. Fail-safe answers are counted apart from stale reads: `fail-safe stale` are those the database's truth judges stale.\n",
            if windows.is_empty() { "none".to_owned() } else { windows.join(", ") },
            opt(plan.fail_safe_max_age_s, "s"),
            opt(plan.soft_timeout_ms, "ms"),
            opt(plan.hard_timeout_ms, "ms"),
        );
        s.push_str(
            "\n| strategy | backend | fail-safe answers | old stamps | fail-safe stale | max fail-safe staleness ms | errors returned | loads failed | loads timed out | soft timeouts | background refreshes | reads in fault | p50 ms | p99 ms | max ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.results {
            let Some(d) = &r.db_faults else { continue };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                r.strategy,
                r.backend,
                d.fail_safe_served,
                d.fail_safe_old_stamps,
                d.fail_safe_stale,
                d.max_fail_safe_staleness_ms,
                d.failed_reads,
                d.loads_failed,
                d.load_timeouts,
                d.soft_timeouts,
                d.background_refreshes,
                d.reads_in_fault,
                d.latency_in_fault_p50_ms,
                d.latency_in_fault_p99_ms,
                d.latency_in_fault_max_ms,
            );
        }
        s
    }

    /// The bytes-and-tiers section of `report.md`, for runs with a
    /// two-tier backend: every cell, so L2-only cells compare directly.
    fn tiers_markdown(&self) -> String {
        let mut s = String::from(
            "
| strategy | backend | bytes/read | L2 bytes/read | L2 round trips/read | L1 hits | round trips/L1 hit | zero-trip reads |
|---|---|---:|---:|---:|---:|---:|---:|
",
        );
        for r in &self.results {
            let t = |f: &dyn Fn(&TierSummary) -> String| r.tier.as_ref().map(f).unwrap_or_else(|| "–".into());
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {} | {} | {} | {} | {} |",
                r.strategy,
                r.backend,
                r.bytes_per_read,
                t(&|t| format!("{:.1}", t.l2_bytes_per_read)),
                t(&|t| format!("{:.3}", t.l2_round_trips_per_read)),
                t(&|t| t.l1_hits.to_string()),
                t(&|t| format!("{:.3}", t.round_trips_per_l1_hit)),
                t(&|t| t.zero_trip_reads.to_string()),
            );
        }
        s
    }

    /// `report.csv`: one row per cell, the `results` fields without nesting.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "scenario,seed,strategy,backend,reads,writes,hits,misses,hit_rate,stale_reads,stale_rate,max_staleness_ms,\
             backend_ops,backend_keys,read_ops,write_ops,ops_per_read,ops_per_write,keys_per_write,db_queries,\
             coalesced,early_refreshes,latency_p50_ms,latency_p99_ms,latency_p999_ms,dead_keys,dead_bytes,live_keys,errors,at_risk_reads,\
             bytes_per_read,l2_bytes_per_read,l2_round_trips_per_read,l1_hits,zero_trip_reads,\
             latency_hit_p50_ms,latency_hit_p99_ms,latency_miss_p50_ms,latency_miss_p99_ms,orphaned_keys,server_evictions",
        );
        // Only in runs that use them, so other reports keep their columns.
        let db = self.db_faults.is_some();
        if db {
            s.push_str(",fail_safe_served,fail_safe_stale,failed_reads");
        }
        s.push('\n');
        let opt = |o: Option<u64>| o.map(|v| v.to_string()).unwrap_or_default();
        for r in &self.results {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&self.scenario),
                self.seed,
                csv_field(&r.strategy),
                csv_field(&r.backend),
                r.reads,
                r.writes,
                r.hits,
                r.misses,
                r.hit_rate,
                r.stale_reads,
                r.stale_rate,
                r.max_staleness_ms,
                r.backend_ops,
                r.backend_keys,
                r.read_ops,
                r.write_ops,
                r.ops_per_read,
                r.ops_per_write,
                r.keys_per_write,
                r.db_queries,
                r.coalesced,
                r.early_refreshes,
                r.latency_p50_ms,
                r.latency_p99_ms,
                r.latency_p999_ms,
                opt(r.dead_keys),
                opt(r.dead_bytes),
                opt(r.live_keys),
                r.errors,
                r.at_risk_reads,
                r.bytes_per_read,
                r.tier.map(|t| t.l2_bytes_per_read.to_string()).unwrap_or_default(),
                r.tier.map(|t| t.l2_round_trips_per_read.to_string()).unwrap_or_default(),
                opt(r.tier.map(|t| t.l1_hits)),
                opt(r.tier.map(|t| t.zero_trip_reads)),
                r.latency_hit_p50_ms,
                r.latency_hit_p99_ms,
                r.latency_miss_p50_ms,
                r.latency_miss_p99_ms,
                opt(r.orphaned_keys),
                opt(r.server_evictions),
            );
            if db {
                s.pop();
                let _ = writeln!(
                    s,
                    ",{},{},{}",
                    opt(r.fail_safe_served),
                    opt(r.fail_safe_stale),
                    opt(r.failed_reads)
                );
            }
        }
        s
    }

    /// `report.html`: caption, recommendation, table and charts (rendered
    /// by the private `report::html` module).
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}

/// The access-log section of `report.md`: what the log held, and skipped
/// lines by reason with their first examples.
fn access_log_markdown(a: &AccessLogSummary) -> String {
    let mut s = format!(
        "\nAccess log: {} lines, {} feed reads, {} writes, {} other requests ignored ({} of them unmapped POST/PUT/PATCH/DELETE).\n",
        a.lines, a.feed_reads, a.writes, a.other_requests, a.unmapped_writes
    );
    if a.skipped.is_empty() {
        s.push_str("No lines skipped.\n");
    } else {
        s.push_str("\n| skipped because | lines | first examples |\n|---|---:|---|\n");
        for (reason, c) in &a.skipped {
            let ex: Vec<String> = c.examples.iter().map(|e| e.replace('|', "\\|")).collect();
            let _ = writeln!(s, "| {reason} | {} | {} |", c.lines, ex.join("<br>"));
        }
    }
    s
}

/// A cell's stale reads, with its fail-safe stale reads beside them when
/// it has any: counted apart, never hidden.
fn stale_cell(r: &CellResult) -> String {
    match r.fail_safe_stale {
        Some(n) if n > 0 => format!("{} (+{n} fail-safe)", r.stale_reads),
        _ => r.stale_reads.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
