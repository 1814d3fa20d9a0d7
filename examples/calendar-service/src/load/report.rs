//! `load.json` and the Markdown table: the rows, the throughput table, the
//! faults with their times, and the goals checked against the figures.

use serde::Serialize;

use super::dbfault::DbFaultResult;
use super::faults::FaultLog;
use super::predict::Prediction;
use super::workload::WorkloadStats;

/// How far the world and the simulator may differ and still agree.
pub const HIT_RATE_POINTS: f64 = 3.0;
/// See [`HIT_RATE_POINTS`]: round trips per read, relative.
pub const OPS_PER_READ_SHARE: f64 = 0.05;
/// See [`HIT_RATE_POINTS`]: fail-safe answers and failed reads in a row
/// with a database fault may differ by this share of the reads that
/// started inside the fault window, plus [`DB_FAULT_EDGE`]. A read in the
/// window is answered by fail-safe or fails exactly when it is not a hit,
/// so these counts follow the hit rate inside the window, which may differ
/// by the same 3 points.
pub const DB_FAULT_SHARE: f64 = HIT_RATE_POINTS / 100.0;
/// See [`DB_FAULT_SHARE`]: the window's edges. The world's window opens
/// when each process receives its post (the three within a few ms) and the
/// replay sends requests a few ms behind schedule; at ~425 feed requests/s
/// 10 ms holds about 4 requests.
pub const DB_FAULT_EDGE: u64 = 10;
/// One row: a strategy on a cache, under faults, judged.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// The row as written (`stamped@redis@kill`).
    pub row: String,
    /// The strategy.
    pub strategy: String,
    /// The cache (`redis`, `two-tier/backplane:locmem:64+redis`, …).
    pub cache: String,
    /// The faults' kinds.
    pub faults: Vec<&'static str>,
    /// Feed requests sent.
    pub feed_requests: u64,
    /// Feed requests answered 200.
    pub feed_ok: u64,
    /// Hits per feed request, from the services' own counters.
    pub hit_rate: f64,
    /// Responses that missed a write committed before their request
    /// started (unmatched ones included).
    pub stale_reads: u64,
    /// The longest a stale response lagged the oldest write it missed, ms.
    pub max_staleness_ms: f64,
    /// Responses no state of the database renders to (in `stale_reads`).
    pub unmatched: u64,
    /// Answers with status 500..=599 (feeds and writes).
    pub errors_5xx: u64,
    /// Requests with no answer within the client timeout.
    pub timeouts: u64,
    /// Requests whose connection failed (a process down).
    pub connection_errors: u64,
    /// Errors (5xx, timeouts, connection errors) that started outside every
    /// fault's outage window (the window plus 3 s).
    pub errors_outside_outages: u64,
    /// Feed requests per second of the row's wall time (paced: the trace's
    /// rate × speed, not a capacity).
    pub throughput_rps: f64,
    /// Client-measured feed latency, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// See `p50_ms`.
    pub p999_ms: f64,
    /// Backend round trips of the read path per feed request, summed over
    /// the services' counters.
    pub ops_per_read: f64,
    /// Writes sent / committed.
    pub writes: u64,
    /// See `writes`.
    pub writes_committed: u64,
    /// Requests sent to another process because theirs was down.
    pub rerouted: u64,
    /// How late the replay sent requests behind schedule, p99, ms.
    pub lag_p99_ms: f64,
    /// Stale reads by when they started relative to the faults: after the
    /// SIGSTOP, after the SIGCONT, after a subscription kill, after a kill.
    pub stale_after: Vec<StaleAfter>,
    /// Two tiers with a backplane: the measured delivery of generation
    /// notices, and stale reads beyond it.
    pub delivery: Option<Delivery>,
    /// How long a write's `COMMIT` took (from the instant before it to the
    /// one after), p50 and p99, ms.
    pub commit_ms: [f64; 2],
    /// Value bytes the read path got from the cache per feed request.
    pub bytes_per_read: f64,
    /// Keys the row's Redis evicted and expired by itself.
    pub redis_keys: Option<super::servers::KeyStats>,
    /// The services' backend errors: reads answered by the database, and
    /// invalidations (fences, bumps) that failed.
    pub read_errors: u64,
    /// See `read_errors`.
    pub invalidation_errors: u64,
    /// The first stale reads, when and how stale.
    pub stale_examples: Vec<StaleExample>,
    /// The self-check: distinct views re-read from the final database and
    /// compared with the judge's model of it.
    pub model_check: ModelCheck,
    /// The simulator's prediction.
    pub predicted: Option<Prediction>,
    /// Faults of this row the simulator does not model.
    pub not_modelled: Vec<&'static str>,
    /// Database faults and fail-safe (rows with a database fault or
    /// fail-safe settings): fail-safe answers, their stale reads, and the
    /// failed reads split by the views' history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_fault: Option<DbFaultResult>,
    /// World vs simulator.
    pub agreement: Option<Agreement>,
}

/// One stale read.
#[derive(Debug, Clone, Serialize)]
pub struct StaleExample {
    /// When its request started, s after the row's traffic started.
    pub at_s: f64,
    /// How stale, ms.
    pub staleness_ms: f64,
    /// The commit-log `seq` of the oldest write it missed (`null`:
    /// unmatched).
    pub missed_seq: Option<i64>,
    /// The service process that answered.
    pub process: u16,
}

/// Stale reads after a point of a fault.
#[derive(Debug, Clone, Serialize)]
pub struct StaleAfter {
    /// `sigstop`, `sigcont`, `pubsub-kill` or `kill`.
    pub after: &'static str,
    /// Stale reads whose request started after it.
    pub stale_reads: u64,
    /// The last such request's start, ms after the point (`null`: none).
    pub last_ms: Option<f64>,
}

/// The backplane's delivery, measured by probes on its channel
/// ([`super::backplane`]).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Probes that arrived.
    pub probes: u64,
    /// Publish to arrival, p50 / p99 / max, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// See `p50_ms`: the delivery bound stale reads are checked against.
    pub max_ms: f64,
    /// Stale reads whose request started later after the commit of the
    /// write they missed than the bound (+ 5 ms): stale reads the
    /// backplane's delivery does not explain.
    pub stale_beyond_delivery: u64,
}

/// The judge's self-check.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ModelCheck {
    /// Views compared.
    pub views: u64,
    /// Views whose final database answer differed from the model's.
    pub mismatches: u64,
}

/// World vs simulator, by the tolerances.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// World hit rate minus predicted, points.
    pub hit_rate_points: f64,
    /// World ops/read ÷ predicted − 1.
    pub ops_per_read_share: f64,
    /// Both zero or both non-zero.
    pub stale_same_kind: bool,
    /// Rows with a database fault: fail-safe answers and failed reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_fault: Option<DbFaultAgreement>,
    /// All within tolerance.
    pub agrees: bool,
}

/// World vs simulator on a row with a database fault.
#[derive(Debug, Clone, Serialize)]
pub struct DbFaultAgreement {
    /// How far the counts may differ: [`DB_FAULT_SHARE`] of the reads in
    /// the fault window (the larger of the two counts) plus
    /// [`DB_FAULT_EDGE`].
    pub tolerance: u64,
    /// World minus predicted: reads answered by fail-safe.
    pub fail_safe_served_diff: i64,
    /// World minus predicted: failed reads.
    pub failed_reads_diff: i64,
    /// Fail-safe answers judged stale: both zero or both non-zero.
    pub fail_safe_stale_same_kind: bool,
    /// All three.
    pub agrees: bool,
}

impl DbFaultAgreement {
    /// Compares a row's measured database-fault figures with the
    /// prediction's.
    pub fn of(world: &DbFaultResult, model: &super::predict::PredictedDbFault) -> DbFaultAgreement {
        let reads = world.reads_in_fault.max(model.reads_in_fault);
        let tolerance = (reads as f64 * DB_FAULT_SHARE).ceil() as u64 + DB_FAULT_EDGE;
        let diff = |a: u64, b: u64| i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX);
        let served = diff(world.fail_safe_served, model.fail_safe_served);
        let failed = diff(world.failed_reads, model.failed_reads);
        let same_kind = (world.fail_safe_stale == 0) == (model.fail_safe_stale == 0);
        DbFaultAgreement {
            tolerance,
            fail_safe_served_diff: served,
            failed_reads_diff: failed,
            fail_safe_stale_same_kind: same_kind,
            agrees: served.unsigned_abs() <= tolerance && failed.unsigned_abs() <= tolerance && same_kind,
        }
    }
}

impl Agreement {
    /// Compares `world` with `model`.
    pub fn of(world: &RowResult, model: &Prediction) -> Agreement {
        let points = (world.hit_rate - model.hit_rate) * 100.0;
        let share = if model.ops_per_read > 0.0 {
            world.ops_per_read / model.ops_per_read - 1.0
        } else if world.ops_per_read == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        let same_kind = (world.stale_reads == 0) == (model.stale_reads == 0);
        let db_fault = match (&world.db_fault, &model.db_fault) {
            (Some(w), Some(m)) => Some(DbFaultAgreement::of(w, m)),
            _ => None,
        };
        Agreement {
            hit_rate_points: points,
            ops_per_read_share: share,
            stale_same_kind: same_kind,
            agrees: points.abs() <= HIT_RATE_POINTS
                && share.abs() <= OPS_PER_READ_SHARE
                && same_kind
                && db_fault.as_ref().is_none_or(|d| d.agrees),
            db_fault,
        }
    }
}

/// One cache in the throughput table.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    /// The cache (`none` is the service with its cache off).
    pub cache: String,
    /// The strategy (`stamped`).
    pub strategy: String,
    /// Closed-loop client concurrency.
    pub concurrency: u64,
    /// Feed requests answered 200, per round.
    pub rounds_feeds: Vec<u64>,
    /// Feed requests per second, per round.
    pub rounds_rps: Vec<f64>,
    /// The median of the rounds.
    pub throughput_rps: f64,
    /// Client-measured feed latency over all rounds, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// See `p50_ms`.
    pub p999_ms: f64,
    /// Hits per feed request.
    pub hit_rate: f64,
    /// 5xx answers and timeouts.
    pub errors: u64,
}

/// A goal of the issue, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// What it asks.
    pub goal: String,
    /// Met?
    pub met: bool,
    /// The figures that decide it.
    pub evidence: String,
}

/// A fault as `load.json` lists it: the log and the row it struck.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEntry {
    /// The row.
    pub row: String,
    /// What happened, when.
    #[serde(flatten)]
    pub log: FaultLog,
}

/// `load.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// `calendar-load`.
    pub tool: &'static str,
    /// When it ran (UTC, RFC 3339).
    pub date: String,
    /// The machine: CPUs, model, memory.
    pub machine: String,
    /// 1-minute load average at the start and at the end.
    pub load_average: [f64; 2],
    /// How it ran.
    pub config: RunSettings,
    /// The workload.
    pub workload: WorkloadStats,
    /// Every fault injected, with its row and time.
    pub faults: Vec<FaultEntry>,
    /// One per row.
    pub results: Vec<RowResult>,
    /// What the cache buys.
    pub throughput: Vec<ThroughputResult>,
    /// The goals.
    pub goals: Vec<Goal>,
}

/// The settings `load.json` records.
#[derive(Debug, Clone, Serialize)]
pub struct RunSettings {
    /// The trace file, or `generated realistic (seed N, …)`.
    pub trace: String,
    /// Trace seconds replayed per row.
    pub window_s: u64,
    /// Trace seconds per real second.
    pub speed: f64,
    /// Service processes.
    pub processes: u32,
    /// The services' `--cache-ttl-ms` / `--short-ttl-ms`.
    pub ttl_ms: u64,
    /// See `ttl_ms`.
    pub short_ttl_ms: u64,
    /// Client timeout, ms.
    pub timeout_ms: u64,
    /// The prediction's modelled latencies and backplane, trace time.
    pub model: String,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn pred<T>(p: &Option<Prediction>, f: impl Fn(&Prediction) -> T) -> Option<T> {
    p.as_ref().map(f)
}

impl LoadReport {
    /// The Markdown table of rows, the throughput table and the goals.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "calendar-load {}: {} processes, {} s of trace per row at {}x ({} s of traffic), TTL {} ms, trace: {}; \
             {}; load average {:.2} → {:.2}\n\n",
            self.date,
            self.config.processes,
            self.config.window_s,
            self.config.speed,
            (self.config.window_s as f64 / self.config.speed).round(),
            self.config.ttl_ms,
            self.config.trace,
            self.machine,
            self.load_average[0],
            self.load_average[1],
        ));
        s.push_str(
            "| row | feeds | hit rate (sim) | stale (sim) | max stale ms | ops/read (sim) | 5xx | timeouts | conn. errors | \
             req/s | p50 / p99 / p99.9 ms | agrees |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n",
        );
        for r in &self.results {
            let agrees = match (&r.agreement, r.not_modelled.is_empty()) {
                (Some(a), true) => if a.agrees { "yes" } else { "**no**" }.to_owned(),
                (Some(a), false) => format!(
                    "{} (not modelled: {})",
                    if a.agrees { "yes" } else { "no" },
                    r.not_modelled.join(", ")
                ),
                (None, _) => "n/a".to_owned(),
            };
            let unmatched = if r.unmatched > 0 {
                format!(" ({} unmatched)", r.unmatched)
            } else {
                String::new()
            };
            // Fail-safe's stale answers beside the invalidation's, never
            // hidden (as `cache-sim` shows them).
            let plus = |n: Option<u64>| match n {
                Some(n) if n > 0 => format!(" +{n} fail-safe"),
                _ => String::new(),
            };
            let fs = plus(r.db_fault.as_ref().map(|d| d.fail_safe_stale));
            let pfs = plus(
                r.predicted
                    .as_ref()
                    .and_then(|p| p.db_fault.as_ref())
                    .map(|d| d.fail_safe_stale),
            );
            s.push_str(&format!(
                "| `{}` | {} | {} ({}) | {}{}{} ({}{}) | {:.0} | {:.2} ({}) | {} | {} | {} | {:.0} | {:.1} / {:.1} / {:.1} | {} |\n",
                r.row,
                r.feed_requests,
                pct(r.hit_rate),
                pred(&r.predicted, |p| pct(p.hit_rate)).unwrap_or_else(|| "–".into()),
                r.stale_reads,
                unmatched,
                fs,
                pred(&r.predicted, |p| p.stale_reads.to_string()).unwrap_or_else(|| "–".into()),
                pfs,
                r.max_staleness_ms,
                r.ops_per_read,
                pred(&r.predicted, |p| format!("{:.2}", p.ops_per_read)).unwrap_or_else(|| "–".into()),
                r.errors_5xx,
                r.timeouts,
                r.connection_errors,
                r.throughput_rps,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                agrees
            ));
        }
        s.push_str(&self.db_fault_markdown());
        if !self.faults.is_empty() {
            s.push_str("\n| row | fault | at s | outage ms | detail |\n|---|---|---:|---:|---|\n");
            for f in &self.faults {
                s.push_str(&format!(
                    "| `{}` | {} ({}) | {:.1} | {} | {} |\n",
                    f.row, f.log.kind, f.log.target, f.log.at_s, f.log.outage_ms, f.log.detail
                ));
            }
        }
        if !self.throughput.is_empty() {
            s.push_str(&format!(
                "\nWhat the cache buys (`stamped`, closed loop, {} clients, the window's {} feed requests per round):\n\n| cache | feed req/s (rounds) | p50 / p99 / p99.9 ms | hit rate | errors |\n|---|---:|---:|---:|---:|\n",
                self.throughput[0].concurrency,
                self.workload.feeds
            ));
            for t in &self.throughput {
                let rounds: Vec<String> = t.rounds_rps.iter().map(|r| format!("{r:.0}")).collect();
                s.push_str(&format!(
                    "| `{}` | {:.0} ({}) | {:.1} / {:.1} / {:.1} | {} | {} |\n",
                    t.cache,
                    t.throughput_rps,
                    rounds.join(", "),
                    t.p50_ms,
                    t.p99_ms,
                    t.p999_ms,
                    pct(t.hit_rate),
                    t.errors
                ));
            }
        }
        if !self.goals.is_empty() {
            s.push_str("\nGoals:\n\n");
            for g in &self.goals {
                s.push_str(&format!(
                    "- [{}] {}: {}\n",
                    if g.met { "x" } else { " " },
                    g.goal,
                    g.evidence
                ));
            }
        }
        s
    }
}

impl LoadReport {
    /// The database-fault table: one line per row with a database fault
    /// or fail-safe settings, the simulator's figures in brackets.
    fn db_fault_markdown(&self) -> String {
        let rows: Vec<(&RowResult, &DbFaultResult)> = self
            .results
            .iter()
            .filter_map(|r| r.db_fault.as_ref().map(|d| (r, d)))
            .collect();
        if rows.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "\nDatabase faults and fail-safe (the simulator's figures in brackets; failed reads: 5xx and requests \
             without an answer; `cached` = of views answered less than the max age before, which fail-safe should \
             answer):\n\n| row | services | reads in fault | fail-safe answers | marked stale | judged stale | failed \
             reads | 503 / 504 / no answer | failed: cached / too old / never cached | p50 / p99 in fault ms | \
             agrees |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n",
        );
        for (r, d) in rows {
            let p = r.predicted.as_ref().and_then(|p| p.db_fault.as_ref());
            let sim = |f: &dyn Fn(&super::predict::PredictedDbFault) -> String| p.map_or_else(|| "–".to_owned(), f);
            let agrees = match r.agreement.as_ref().and_then(|a| a.db_fault.as_ref()) {
                Some(a) => format!(
                    "{} (±{}: {:+} / {:+})",
                    if a.agrees { "yes" } else { "**no**" },
                    a.tolerance,
                    a.fail_safe_served_diff,
                    a.failed_reads_diff
                ),
                None => "n/a".to_owned(),
            };
            s.push_str(&format!(
                "| `{}` | {} | {} ({}) | {} ({}) | {} ({}) | {} ({}) | {} ({}) | {} / {} / {} | {} / {} / {} | {:.1} / {:.1} \
                 ({}) | {} |\n",
                r.row,
                d.settings.describe(),
                d.reads_in_fault,
                sim(&|p| p.reads_in_fault.to_string()),
                d.fail_safe_served,
                sim(&|p| p.fail_safe_served.to_string()),
                d.fail_safe_old_stamps,
                sim(&|p| p.fail_safe_old_stamps.to_string()),
                d.fail_safe_stale,
                sim(&|p| p.fail_safe_stale.to_string()),
                d.failed_reads,
                sim(&|p| p.failed_reads.to_string()),
                d.status_503,
                d.status_504,
                d.no_answer,
                d.failed_cached,
                d.failed_too_old,
                d.failed_never_cached,
                d.latency_in_fault_ms[0],
                d.latency_in_fault_ms[1],
                sim(&|p| format!("{:.1} / {:.1}", p.latency_in_fault_ms[0], p.latency_in_fault_ms[1])),
                agrees
            ));
        }
        s
    }
}
