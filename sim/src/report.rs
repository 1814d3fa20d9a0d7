//! The comparison report: one row per (strategy, backend), rendered as a
//! Markdown table, CSV, JSON and HTML with inline SVG charts.
//!
//! Everything in a report is derived from the trace, the seed and the
//! backends' semantics, never from wall-clock time, so the same inputs give
//! byte-identical files (the determinism test checks `report.json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use cache_core::Op;
use serde::Serialize;

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
    /// Feed entries stored at the end that no current key can read; `null`
    /// when the backend cannot list its keys.
    pub dead_keys: Option<u64>,
    /// Their bytes (key + value).
    pub dead_bytes: Option<u64>,
    /// Live entries at the end (feeds and control keys).
    pub live_keys: Option<u64>,
    /// Backend or strategy errors (requests fell back to the database).
    pub errors: u64,
    /// Control-key evictions the scenario injected.
    pub control_evictions: u64,
    /// Round trips per operation kind (only kinds that occurred).
    pub ops: BTreeMap<&'static str, OpCount>,
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
            dead_keys: m.dead_keys,
            dead_bytes: m.dead_bytes,
            live_keys: m.live_keys,
            errors: m.errors,
            control_evictions: m.control_evictions,
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
    /// One object per (strategy, backend).
    pub results: Vec<CellResult>,
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
            xfetch_beta: cfg.aside.xfetch_beta,
            ttl_s: cfg.ttl.as_secs_f64(),
            short_ttl_s: cfg.short_ttl.as_secs_f64(),
            item_bytes: cfg.item_bytes,
            bucket_s: cfg.bucket.as_secs().max(1),
            stale_judged: cfg.judge_stale,
            access_log: None,
            results,
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

    /// `report.md`: the caption and the comparison table.
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
                judged(r.stale_reads.to_string()),
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
        if let Some(a) = &self.access_log {
            s.push_str(&access_log_markdown(a));
        }
        s
    }

    /// `report.csv`: one row per cell, the `results` fields without nesting.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "scenario,seed,strategy,backend,reads,writes,hits,misses,hit_rate,stale_reads,stale_rate,max_staleness_ms,\
             backend_ops,backend_keys,read_ops,write_ops,ops_per_read,ops_per_write,keys_per_write,db_queries,\
             coalesced,early_refreshes,latency_p50_ms,latency_p99_ms,latency_p999_ms,dead_keys,dead_bytes,live_keys,errors,at_risk_reads\n",
        );
        let opt = |o: Option<u64>| o.map(|v| v.to_string()).unwrap_or_default();
        for r in &self.results {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
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
                r.at_risk_reads
            );
        }
        s
    }

    /// `report.html`: caption, table, and five inline SVG charts.
    pub fn to_html(&self) -> String {
        let labels: Vec<String> = self
            .results
            .iter()
            .map(|r| {
                if self.backends.len() > 1 {
                    format!("{} @ {}", r.strategy, r.backend)
                } else {
                    r.strategy.clone()
                }
            })
            .collect();
        let mut h = String::new();
        h.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cache-sim report</title>\n",
        );
        h.push_str(
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}\
             td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,td:nth-child(2){text-align:left}\
             svg{display:block;margin:1em 0}</style></head><body>\n",
        );
        let _ = writeln!(
            h,
            "<h1>cache-sim: {}</h1>\n<p>{}</p>",
            esc(&self.scenario),
            esc(&self.caption())
        );
        h.push_str("<table><tr><th>strategy</th><th>backend</th><th>reads</th><th>hits</th><th>hit rate</th><th>stale reads</th><th>max staleness ms</th><th>ops/read</th><th>ops/write</th><th>DB queries</th><th>coalesced</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>errors</th><th>dead keys</th></tr>\n");
        for r in &self.results {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.strategy),
                esc(&r.backend),
                r.reads,
                r.hits,
                r.hit_rate * 100.0,
                r.stale_reads,
                r.max_staleness_ms,
                r.ops_per_read,
                r.ops_per_write,
                r.db_queries,
                r.coalesced,
                r.latency_p50_ms,
                r.latency_p99_ms,
                r.latency_p999_ms,
                r.errors,
                r.dead_keys.map(|d| d.to_string()).unwrap_or_else(|| "n/a".into())
            );
        }
        h.push_str("</table>\n");
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        h.push_str(&bar_chart(
            "Hit rate",
            &labels,
            &self.results.iter().map(|r| r.hit_rate).collect::<Vec<_>>(),
            &pct,
            "#3b82f6",
        ));
        h.push_str(&bar_chart(
            "Stale-read rate",
            &labels,
            &self.results.iter().map(|r| r.stale_rate).collect::<Vec<_>>(),
            &|v| format!("{:.2}%", v * 100.0),
            "#ef4444",
        ));
        h.push_str(&bar_chart(
            "Backend ops per write",
            &labels,
            &self.results.iter().map(|r| r.ops_per_write).collect::<Vec<_>>(),
            &|v| format!("{v:.2}"),
            "#10b981",
        ));
        h.push_str(&bar_chart(
            "Feed latency p99 (ms, virtual time)",
            &labels,
            &self.results.iter().map(|r| r.latency_p99_ms).collect::<Vec<_>>(),
            &|v| format!("{v:.1} ms"),
            "#a855f7",
        ));
        h.push_str(&staleness_chart(self, &labels));
        h.push_str("</body></html>\n");
        h
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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PALETTE: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
];

fn bar_chart(title: &str, labels: &[String], values: &[f64], fmt: &dyn Fn(f64) -> String, color: &str) -> String {
    let row = 22.0;
    let left = 230.0;
    let width = 520.0;
    let height = 40.0 + row * values.len() as f64;
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let mut s = format!(
        "<h2>{}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-size=\"12\">\n",
        esc(title),
        left + width + 90.0
    );
    for (i, (l, &v)) in labels.iter().zip(values).enumerate() {
        let y = 20.0 + row * i as f64;
        let w = if max > 0.0 { v / max * width } else { 0.0 };
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(l),
            y + 2.0,
            row - 6.0,
            left + w + 4.0,
            y + 14.0,
            esc(&fmt(v))
        );
    }
    s.push_str("</svg>\n");
    s
}

fn staleness_chart(report: &Report, labels: &[String]) -> String {
    let (w, h, left, top) = (760.0, 260.0, 50.0, 20.0);
    let last = report
        .results
        .iter()
        .filter_map(|r| r.timeline.last().map(|b| b[0]))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max = report
        .results
        .iter()
        .flat_map(|r| r.timeline.iter().map(|b| b[2]))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = format!(
        "<h2>Stale reads over time (per {} s bucket)</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-size=\"12\">\n",
        report.bucket_s,
        w + 260.0,
        h + 60.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#999\"/>\
         <text x=\"{left}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{last:.0} s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max:.0}</text>",
        top + h,
        left + w,
        top + h,
        top + h,
        top + h + 16.0,
        left + w,
        top + h + 16.0,
        left - 4.0,
        top + 10.0
    );
    for (i, (r, l)) in report.results.iter().zip(labels).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = r
            .timeline
            .iter()
            .map(|b| {
                format!(
                    "{:.1},{:.1}",
                    left + b[0] as f64 / last * w,
                    top + h - b[2] as f64 / max * h
                )
            })
            .collect();
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                pts.join(" ")
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{:.0}\">{} ({} stale)</text>",
            left + w + 20.0,
            top + 16.0 * i as f64,
            left + w + 34.0,
            top + 9.0 + 16.0 * i as f64,
            esc(l),
            r.stale_reads
        );
    }
    s.push_str("</svg>\n");
    s
}
