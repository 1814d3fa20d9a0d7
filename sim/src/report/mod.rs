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
//! - `faults`: what a cell's tiers, cache faults and database faults did,
//!   and the run's fault plans ([`TierSummary`], [`FaultSummary`],
//!   [`DbFaultSummary`], [`FaultPlan`], [`DbFaultPlan`]);
//! - `markdown`: `report.md`'s tables under the main one;
//! - `html`: `report.html` and its inline SVG charts;
//! - `verdict`: the recommendation with its why-not table, and the
//!   server-eviction notice, in Markdown and HTML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use cache_core::Op;
use serde::{Deserialize, Serialize};

mod faults;
mod html;
mod markdown;
mod verdict;

pub use faults::{DbFaultPlan, DbFaultSummary, DbFaultWindow, FaultPlan, FaultSummary, TierSummary};

use crate::config::RunConfig;
use crate::engine::{Latencies, Metrics};
use crate::trace::{AccessLogSummary, Header, FORMAT_VERSION};

/// Calls and keys of one operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCount {
    /// Round trips.
    pub calls: u64,
    /// Keys touched.
    pub keys: u64,
}

/// One (strategy, backend) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub ops: BTreeMap<String, OpCount>,
    /// Staleness over time: `[bucket start s, reads, stale reads]` for every
    /// bucket with reads.
    pub timeline: Vec<[u64; 3]>,
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
                    op.as_str().to_owned(),
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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
