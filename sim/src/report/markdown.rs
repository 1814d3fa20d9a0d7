//! The report's Markdown form: the caption, the table, and the latency,
//! fault, database-fault and tier tables under it.

use std::fmt::Write as _;

use super::*;

impl Report {
    pub(super) fn caption(&self) -> String {
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
    pub(super) fn latency_markdown(&self) -> String {
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
    pub(super) fn faults_markdown(&self, plan: &FaultPlan) -> String {
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
    pub(super) fn db_faults_markdown(&self, plan: &DbFaultPlan) -> String {
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
    pub(super) fn tiers_markdown(&self) -> String {
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
}

/// The access-log section of `report.md`: what the log held, and skipped
/// lines by reason with their first examples.
pub(super) fn access_log_markdown(a: &AccessLogSummary) -> String {
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
pub(super) fn stale_cell(r: &CellResult) -> String {
    match r.fail_safe_stale {
        Some(n) if n > 0 => format!("{} (+{n} fail-safe)", r.stale_reads),
        _ => r.stale_reads.to_string(),
    }
}
