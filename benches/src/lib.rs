//! # benches
//!
//! Benchmark suites that put every layer of this project side by side with
//! what it sits on, and the writer of `BENCHMARKS.md`.
//!
//! # Layout
//!
//! - `benches/*.rs`: the suites. Criterion suites measure per-call latency;
//!   every group holds a pair, `ours` and `baseline`, measured in the same
//!   run. `harness = false` load suites measure throughput at a given
//!   concurrency (and run external tools such as `redis-benchmark` and
//!   `memcaslap`) and append [`LoadResult`] lines to
//!   `target/bench-results/*.jsonl`.
//!   - `locmem`, `redis`, `memcached` (criterion): each backend against the
//!     raw client it wraps, one call at a time;
//!   - `backend_load`: Redis at 50/64 tasks against the raw multiplexed
//!     connection and `redis-benchmark`; Memcached at 1/64 tasks against the
//!     raw `memcache` client and memaslap;
//!   - `strategies` (criterion): read path and write path of every strategy
//!     on locmem, Redis and Memcached;
//!   - `invalidation_curve`: one invalidation of `versioned`, `bucketed` and
//!     `wildcard` as the cached keys grow from 1k to 1M ([`CurvePoint`]);
//!   - `sim`: the simulator's `realistic` scenario on locmem, 1 and 2
//!     threads, and the floor under it: every cell's store calls replayed
//!     alone, on the simulator's deterministic stores and on stores in
//!     moka's default mode.
//!   - `two_tier`: a `stamped` hit on two tiers (with and without a
//!     backplane) against Redis alone, 8 KiB to 512 KiB feeds, rounds
//!     alternating.
//!   - `common/`: the load suites' runtime, throughput loop and output.
//! - this library: reading both kinds of result ([`collect`]), pairing them
//!   into ratios, checking the goals ([`GOALS`], [`RATE_GOALS`]; listed in
//!   `src/goals.rs`) and rendering Markdown
//!   ([`render_markdown`]); the invalidation cost curve's points
//!   ([`CurvePoint`], [`collect_curve`], [`render_curve`]), which carry round
//!   trips as well as time and so do not fit a [`LoadResult`].
//! - `src/previous.rs`: figures kept from an earlier BENCHMARKS.md, for a
//!   report of a run of some suites only ([`merge_previous`]).
//! - `src/bin/bench-report.rs`: the binary `benches/run` calls last.
//!
//! A ratio is always "ours relative to the baseline in throughput terms":
//! `baseline_ns / ours_ns` for latencies, `ours_ops / baseline_ops` for
//! rates. Above 1 means we are faster.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod goals;
mod previous;

pub use goals::{Goal, RateGoal, GOALS, RATE_GOALS};
pub use previous::{merge_previous, parse_figure, parse_previous, Previous};

/// One throughput figure from a load suite (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// Comparison group, e.g. `redis/get/64-tasks`.
    pub group: String,
    /// `ours`, `baseline`, or another named subject (e.g. `redis-benchmark`).
    pub subject: String,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Free-form detail (concurrency, tool command line).
    #[serde(default)]
    pub detail: String,
}

impl LoadResult {
    /// Appends this result as one JSON line to `target/bench-results/<suite>.jsonl`
    /// (creating the directory), so several suites can feed one report.
    pub fn append(&self, target_dir: &Path, suite: &str) -> std::io::Result<()> {
        append_json_line(&target_dir.join("bench-results"), suite, self)
    }
}

/// Appends `value` as one JSON line to `dir/<suite>.jsonl`, creating `dir`.
fn append_json_line(dir: &Path, suite: &str, value: &impl Serialize) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{suite}.jsonl")))?;
    let line = serde_json::to_string(value).map_err(std::io::Error::other)?;
    writeln!(f, "{line}")
}

/// One point of the invalidation cost curve: the cost of one `invalidate`
/// of one strategy on one backend when `keys` entries are cached (one JSON
/// line under `target/bench-results/curves/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Backend label (`locmem`, `redis`).
    pub backend: String,
    /// Strategy name (`versioned`, `bucketed`, `wildcard`).
    pub strategy: String,
    /// How the cached keys are spread: `scope` (all in the changed scope) or
    /// `keyspace` (100 per scope, the changed scope holding 100).
    pub shape: String,
    /// Entries cached before the change.
    pub keys: u64,
    /// Invalidations measured (the figures below are per invalidation).
    pub reps: u64,
    /// Mean wall time of one `invalidate`, nanoseconds.
    pub nanos: f64,
    /// Backend calls per invalidation, as `Instrumented` counts them (a
    /// `delete_prefix` is one call however many server commands it takes).
    pub calls: f64,
    /// Keys those calls touched (a `delete_prefix` counts the keys deleted).
    pub keys_touched: f64,
    /// Commands the server processed per invalidation (Redis
    /// `total_commands_processed`), where the backend is a server; this is
    /// where a SCAN's many round trips show.
    #[serde(default)]
    pub server_commands: Option<f64>,
    /// Most calls the goals allow (1 for `versioned`, the buckets the
    /// change touches for `bucketed`); `None` where no bound is claimed.
    #[serde(default)]
    pub bound: Option<u64>,
}

impl CurvePoint {
    /// Appends this point as one JSON line to
    /// `target/bench-results/curves/<suite>.jsonl` (creating the directory).
    /// A subdirectory, so [`collect`] does not read it as a [`LoadResult`].
    pub fn append(&self, target_dir: &Path, suite: &str) -> std::io::Result<()> {
        append_json_line(&target_dir.join("bench-results").join("curves"), suite, self)
    }

    /// True when the point respects its bound (or claims none).
    pub fn within_bound(&self) -> bool {
        self.bound.is_none_or(|b| self.calls <= b as f64)
    }
}

/// Reads every curve point under `target_dir/bench-results/curves/`, in
/// file order then line order (empty when the suite did not run).
pub fn collect_curve(target_dir: &Path) -> Result<Vec<CurvePoint>, ReportError> {
    let dir = target_dir.join("bench-results").join("curves");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut points = Vec::new();
    for path in files {
        for (i, line) in read(&path)?.lines().enumerate() {
            if !line.trim().is_empty() {
                points.push(parse(&path, i + 1, line)?);
            }
        }
    }
    Ok(points)
}

/// `1k`, `10k`, `1M`: the curve's sizes as column headings.
fn size_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Renders the "Invalidation cost curve" section: one row per (backend,
/// shape, strategy), one column per size, each cell `time · calls (server
/// commands)`; then the round-trip goals of `versioned` and `bucketed`
/// checked at every point. Empty when there are no points.
pub fn render_curve(points: &[CurvePoint]) -> String {
    let mut out = String::new();
    if points.is_empty() {
        return out;
    }
    let mut sizes: Vec<u64> = points.iter().map(|p| p.keys).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut rows: BTreeMap<(&str, &str, &str), BTreeMap<u64, &CurvePoint>> = BTreeMap::new();
    for p in points {
        rows.entry((&p.backend, &p.shape, &p.strategy))
            .or_default()
            .insert(p.keys, p);
    }
    let _ = writeln!(out, "\n## Invalidation cost curve\n");
    let _ = writeln!(
        out,
        "Cost of one `invalidate` as the number of cached keys grows. Shape `scope`: every key \
         belongs to the changed scope; `keyspace`: 100 keys per scope, so the change's scope holds \
         100 and the rest of the keyspace grows. Each cell: time per invalidation · backend calls \
         (`Instrumented`, the round trips the goals count) and, on Redis, the commands the server \
         processed in parentheses: a `delete_prefix` is one call but a SCAN over the whole keyspace \
         plus UNLINKs, and the commands a Lua script runs count too (the Redis backend's `incr` is \
         one EVALSHA running GET, INCRBY and GET: 4 for 1 round trip). The change moves an item \
         across a month boundary: it touches 2 buckets. Before a `wildcard` point is measured, \
         one unmeasured prefix deletion that matches nothing lets locmem build its per-hash-tag \
         key index (a full scan, once per process), so locmem's `keyspace` row shows the cost of \
         deleting one scope's keys, and its `scope` row the cost of deleting all of them.\n"
    );
    let _ = write!(out, "| backend | shape | strategy |");
    for s in &sizes {
        let _ = write!(out, " {} keys |", size_label(*s));
    }
    let _ = write!(out, "\n|---|---|---|");
    for _ in &sizes {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out);
    for ((backend, shape, strategy), by_size) in &rows {
        let _ = write!(out, "| {backend} | {shape} | {strategy} |");
        for s in &sizes {
            match by_size.get(s) {
                Some(p) => {
                    let server = p
                        .server_commands
                        .map(|c| format!(" ({})", trim_float(c)))
                        .unwrap_or_default();
                    let _ = write!(
                        out,
                        " {} · {}{} |",
                        Figure::Nanos(p.nanos).render(),
                        trim_float(p.calls),
                        server
                    );
                }
                None => {
                    let _ = write!(out, " — |");
                }
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "\n| goal | points | worst calls | met |\n|---|---|---|---|");
    for (strategy, goal) in [
        (
            "versioned",
            "#7: `versioned`: 1 backend round trip per change at every keyspace size",
        ),
        ("bucketed", "#7: `bucketed`: at most the buckets the change touches"),
    ] {
        let mine: Vec<&CurvePoint> = points.iter().filter(|p| p.strategy == strategy).collect();
        if mine.is_empty() {
            let _ = writeln!(out, "| {goal} | not measured in this run | — | **no** |");
            continue;
        }
        let worst = mine.iter().map(|p| p.calls).fold(0.0, f64::max);
        let bound = mine.iter().filter_map(|p| p.bound).max().unwrap_or(0);
        let met = mine.iter().all(|p| p.within_bound());
        let _ = writeln!(
            out,
            "| {goal} | {} | {} (bound {bound}) | {} |",
            mine.len(),
            trim_float(worst),
            if met { "yes" } else { "**no**" }
        );
    }
    out
}

/// `1`, `2.5`: whole numbers without decimals, others with at most two.
fn trim_float(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// A measured figure, either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    /// Mean nanoseconds per operation (criterion).
    Nanos(f64),
    /// Operations per second (load suites).
    OpsPerSec(f64),
}

impl Figure {
    /// Throughput in operations per second, whichever way it was measured.
    pub fn ops_per_sec(&self) -> f64 {
        match *self {
            Figure::Nanos(ns) if ns > 0.0 => 1e9 / ns,
            Figure::Nanos(_) => 0.0,
            Figure::OpsPerSec(o) => o,
        }
    }

    fn render(&self) -> String {
        match *self {
            Figure::Nanos(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
            Figure::Nanos(ns) if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
            Figure::Nanos(ns) => format!("{ns:.0} ns"),
            Figure::OpsPerSec(o) if o >= 1e6 => format!("{:.2} M ops/s", o / 1e6),
            Figure::OpsPerSec(o) => format!("{:.1} k ops/s", o / 1e3),
        }
    }
}

/// Every figure, by group then subject.
pub type Results = BTreeMap<String, BTreeMap<String, Figure>>;

/// Errors while collecting results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A result file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A result file did not parse.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (1 for whole-file JSON).
        line: usize,
        /// What was wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct CriterionBenchmark {
    group_id: String,
    function_id: Option<String>,
}

#[derive(Deserialize)]
struct CriterionEstimate {
    point_estimate: f64,
}

#[derive(Deserialize)]
struct CriterionEstimates {
    mean: CriterionEstimate,
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, line: usize, text: &str) -> Result<T, ReportError> {
    serde_json::from_str(text).map_err(|e| ReportError::Parse {
        path: path.to_owned(),
        line,
        message: e.to_string(),
    })
}

/// Reads criterion's `target/criterion/**/new/{benchmark,estimates}.json`
/// and the load suites' `target/bench-results/*.jsonl` under `target_dir`.
pub fn collect(target_dir: &Path) -> Result<Results, ReportError> {
    let mut results = Results::new();
    let criterion = target_dir.join("criterion");
    let mut stack = vec![criterion];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "new") {
                    let bench_path = path.join("benchmark.json");
                    let est_path = path.join("estimates.json");
                    if bench_path.is_file() && est_path.is_file() {
                        let b: CriterionBenchmark = parse(&bench_path, 1, &read(&bench_path)?)?;
                        let e: CriterionEstimates = parse(&est_path, 1, &read(&est_path)?)?;
                        let subject = b.function_id.unwrap_or_else(|| "ours".to_owned());
                        results
                            .entry(b.group_id)
                            .or_default()
                            .insert(subject, Figure::Nanos(e.mean.point_estimate));
                    }
                } else {
                    stack.push(path);
                }
            }
        }
    }
    let load_dir = target_dir.join("bench-results");
    if let Ok(entries) = std::fs::read_dir(&load_dir) {
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        {
            let file = std::fs::File::open(&path).map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })?;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|source| ReportError::Io {
                    path: path.clone(),
                    source,
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                let r: LoadResult = parse(&path, i + 1, &line)?;
                results
                    .entry(r.group)
                    .or_default()
                    .insert(r.subject, Figure::OpsPerSec(r.ops_per_sec));
            }
        }
    }
    Ok(results)
}

/// Context printed at the top of the report.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Date of the run (UTC).
    pub date: String,
    /// Git commit measured.
    pub commit: String,
    /// Machine description (CPU, cores, memory, OS).
    pub machine: String,
    /// True for a `--quick` smoke run (numbers are not meaningful).
    pub quick: bool,
    /// Printed under the header: which figures this run measured, when
    /// some are kept from an earlier report ([`merge_previous`]).
    pub note: Option<String>,
}

/// Renders the whole BENCHMARKS.md body.
pub fn render_markdown(results: &Results, ctx: &Context) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    if ctx.quick {
        let _ = writeln!(
            out,
            "> **Quick smoke run**: every suite ran briefly; the numbers are not meaningful.\n"
        );
    }
    let _ = writeln!(
        out,
        "- date: {}\n- commit: `{}`\n- machine: {}\n",
        ctx.date, ctx.commit, ctx.machine
    );
    if let Some(note) = &ctx.note {
        let _ = writeln!(out, "{note}\n");
    }
    let _ = writeln!(
        out,
        "Regenerate with `benches/run` (full, ~20 min on 2 cores) or `benches/run --quick` (smoke)."
    );
    let _ = writeln!(
        out,
        "A ratio is ours relative to the baseline in throughput terms: above 1 means faster.\n"
    );
    let _ = writeln!(out, "## Goals\n\n| goal | measured | ratio | met |\n|---|---|---|---|");
    for g in GOALS {
        let row = results
            .get(g.group)
            .and_then(|m| Some((m.get(g.subject)?, m.get(g.against)?)));
        match row {
            Some((a, b)) => {
                let ratio = ratio(a, b);
                let _ = writeln!(
                    out,
                    "| {} | {} vs {} | {:.2}× | {} |",
                    g.source,
                    a.render(),
                    b.render(),
                    ratio,
                    if ratio >= g.min_ratio { "yes" } else { "**no**" }
                );
            }
            None => {
                let _ = writeln!(out, "| {} | not measured in this run | — | **no** |", g.source);
            }
        }
    }
    for g in RATE_GOALS {
        match results.get(g.group).and_then(|m| m.get(g.subject)) {
            Some(f) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | — | {} |",
                    g.source,
                    f.render(),
                    if f.ops_per_sec() >= g.min_ops_per_sec {
                        "yes"
                    } else {
                        "**no**"
                    }
                );
            }
            None => {
                let _ = writeln!(out, "| {} | not measured in this run | — | **no** |", g.source);
            }
        }
    }
    let missed_rates: Vec<&RateGoal> = RATE_GOALS
        .iter()
        .filter(|g| {
            results
                .get(g.group)
                .and_then(|m| m.get(g.subject))
                .is_none_or(|f| f.ops_per_sec() < g.min_ops_per_sec)
        })
        .collect();
    let missed: Vec<&Goal> = GOALS
        .iter()
        .filter(|g| {
            results
                .get(g.group)
                .and_then(|m| Some(ratio(m.get(g.subject)?, m.get(g.against)?)))
                .is_none_or(|r| r < g.min_ratio)
        })
        .collect();
    if !missed.is_empty() || !missed_rates.is_empty() {
        let _ = writeln!(out, "\nWhy the missed goals are missed:\n");
        for g in missed {
            let _ = writeln!(out, "- {}: {}.", g.source, g.when_missed);
        }
        for g in missed_rates {
            let _ = writeln!(out, "- {}: {}.", g.source, g.when_missed);
        }
    }
    let _ = writeln!(
        out,
        "\n## All figures\n\n| group | subject | figure | ratio to baseline |\n|---|---|---|---|"
    );
    for (group, subjects) in results {
        let base = subjects.get("baseline");
        for (subject, fig) in subjects {
            let r = match base {
                Some(b) if subject != "baseline" => format!("{:.2}×", ratio(fig, b)),
                _ => String::new(),
            };
            let _ = writeln!(out, "| {group} | {subject} | {} | {r} |", fig.render());
        }
    }
    out
}

fn ratio(ours: &Figure, baseline: &Figure) -> f64 {
    let b = baseline.ops_per_sec();
    if b > 0.0 {
        ours.ops_per_sec() / b
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_goals_render() {
        let mut r = Results::new();
        let g = r.entry("locmem/get_hit".to_owned()).or_default();
        g.insert("ours".to_owned(), Figure::Nanos(400.0));
        g.insert("baseline".to_owned(), Figure::Nanos(300.0));
        let md = render_markdown(&r, &Context::default());
        assert!(md.contains("| 0.75× | **no** |"), "{md}");
        assert!(md.contains("| locmem/get_hit | ours | 400 ns | 0.75× |"), "{md}");
        assert!(md.contains("not measured in this run"));
    }

    #[test]
    fn curve_renders_sizes_and_checks_bounds() {
        let point = |strategy: &str, keys: u64, calls: f64, bound: Option<u64>| CurvePoint {
            backend: "redis".into(),
            strategy: strategy.into(),
            shape: "scope".into(),
            keys,
            reps: 1,
            nanos: 25_000.0,
            calls,
            keys_touched: calls,
            server_commands: Some(calls + 1.0),
            bound,
        };
        let points = vec![
            point("versioned", 1_000, 1.0, Some(1)),
            point("versioned", 1_000_000, 1.0, Some(1)),
            point("bucketed", 1_000, 3.0, Some(2)),
        ];
        let md = render_curve(&points);
        assert!(md.contains("| 1k keys | 1M keys |"), "{md}");
        assert!(
            md.contains("| redis | scope | versioned | 25.00 µs · 1 (2) | 25.00 µs · 1 (2) |"),
            "{md}"
        );
        assert!(
            md.contains("| redis | scope | bucketed | 25.00 µs · 3 (4) | — |"),
            "{md}"
        );
        assert!(md.contains("at every keyspace size | 2 | 1 (bound 1) | yes |"), "{md}");
        assert!(
            md.contains("buckets the change touches | 1 | 3 (bound 2) | **no** |"),
            "{md}"
        );
        assert_eq!(render_curve(&[]), "");
    }

    #[test]
    fn load_results_roundtrip_through_files() {
        let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        LoadResult {
            group: "g".into(),
            subject: "ours".into(),
            ops_per_sec: 2000.0,
            detail: String::new(),
        }
        .append(&dir, "suite")
        .unwrap();
        LoadResult {
            group: "g".into(),
            subject: "baseline".into(),
            ops_per_sec: 1000.0,
            detail: String::new(),
        }
        .append(&dir, "suite")
        .unwrap();
        let point = CurvePoint {
            backend: "locmem".into(),
            strategy: "wildcard".into(),
            shape: "keyspace".into(),
            keys: 10_000,
            reps: 3,
            nanos: 1e6,
            calls: 2.0,
            keys_touched: 100.0,
            server_commands: None,
            bound: None,
        };
        point.append(&dir, "curve").unwrap();
        let r = collect(&dir).unwrap();
        assert_eq!(r["g"]["ours"], Figure::OpsPerSec(2000.0));
        assert_eq!(r.len(), 1, "curve points are not load results");
        assert_eq!(collect_curve(&dir).unwrap(), vec![point]);
        std::fs::write(dir.join("bench-results/bad.jsonl"), "{\"group\":1}\n").unwrap();
        let err = collect(&dir).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:1"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
