//! The goals, checked against a run's figures. A goal without the
//! rows it needs says so instead of passing.

use super::dbfault::DbFaultResult;
use super::report::{Goal, RowResult, ThroughputResult};

fn has_db_fault(r: &RowResult) -> bool {
    r.faults.iter().any(|f| f.starts_with("db-"))
}

/// The fail-safe goals of rows with a database fault.
fn db_goals(rows: &[RowResult], goals: &mut Vec<Goal>) {
    let db_rows: Vec<(&RowResult, &DbFaultResult)> = rows
        .iter()
        .filter(|r| has_db_fault(r))
        .filter_map(|r| r.db_fault.as_ref().map(|d| (r, d)))
        .collect();
    // `stamped` keeps a view's entry under its stable key across writes;
    // other strategies lose it at a bump, so their cached views may fail.
    let on: Vec<&RowResult> = db_rows
        .iter()
        .filter(|(r, d)| r.strategy == "stamped" && d.settings.fail_safe_s.is_some())
        .map(|(r, _)| *r)
        .collect();
    if !on.is_empty() {
        goals.push(goal(
            "stamped with fail-safe on: no 5xx for cached views during a database fault",
            on.iter()
                .all(|r| r.db_fault.as_ref().is_some_and(|d| d.failed_cached == 0)),
            list(&on, |r| match &r.db_fault {
                Some(d) => format!(
                    "{} fail-safe answers ({} judged stale), {} failed reads: {} of cached views, {} too old, {} \
                     never cached",
                    d.fail_safe_served,
                    d.fail_safe_stale,
                    d.failed_reads,
                    d.failed_cached,
                    d.failed_too_old,
                    d.failed_never_cached
                ),
                None => String::new(),
            }),
        ));
    }
    let off: Vec<&RowResult> = db_rows
        .iter()
        .filter(|(_, d)| d.settings.fail_safe_s.is_none())
        .map(|(r, _)| *r)
        .collect();
    if !off.is_empty() {
        goals.push(goal(
            "fail-safe off: every failed read is a read that reached the failing database (the services' failed \
             reads), and no fail-safe answer",
            off.iter().all(|r| {
                r.db_fault.as_ref().is_some_and(|d| {
                    d.fail_safe_served == 0 && d.failed_reads == d.service.failed_reads && d.other_5xx == 0
                })
            }),
            list(&off, |r| match &r.db_fault {
                Some(d) => format!(
                    "{} failed reads seen by the client, {} by the services ({} failed queries, {} hard timeouts)",
                    d.failed_reads, d.service.failed_reads, d.service.loader_errors, d.service.load_timeouts
                ),
                None => String::new(),
            }),
        ));
    }
    let predicted: Vec<&RowResult> = db_rows
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| r.agreement.as_ref().is_some_and(|a| a.db_fault.is_some()))
        .collect();
    if !predicted.is_empty() {
        goals.push(goal(
            "database faults: the measured fail-safe answers and failed reads agree with the simulator's (within 3% \
             of the reads in the fault, + 10), fail-safe stale reads in kind",
            predicted.iter().all(|r| {
                r.agreement
                    .as_ref()
                    .and_then(|a| a.db_fault.as_ref())
                    .is_some_and(|a| a.agrees)
            }),
            list(&predicted, |r| {
                match (
                    &r.db_fault,
                    r.predicted.as_ref().and_then(|p| p.db_fault.as_ref()),
                    r.agreement.as_ref().and_then(|a| a.db_fault.as_ref()),
                ) {
                    (Some(w), Some(p), Some(a)) => format!(
                        "fail-safe {} vs {}, failed {} vs {}, fail-safe stale {} vs {} (tolerance {})",
                        w.fail_safe_served,
                        p.fail_safe_served,
                        w.failed_reads,
                        p.failed_reads,
                        w.fail_safe_stale,
                        p.fail_safe_stale,
                        a.tolerance
                    ),
                    _ => String::new(),
                }
            }),
        ));
    }
}

fn goal(goal: &str, met: bool, evidence: String) -> Goal {
    Goal {
        goal: goal.to_owned(),
        met,
        evidence,
    }
}

fn list(rows: &[&RowResult], f: impl Fn(&RowResult) -> String) -> String {
    rows.iter()
        .map(|r| format!("`{}` {}", r.row, f(r)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stale reads of `r` that started after fault point `point` (`sigcont`,
/// `pubsub-kill`, …), and the last one's start, ms after it (0: none).
fn stale_after(r: &RowResult, point: &str) -> (u64, f64) {
    r.stale_after
        .iter()
        .filter(|s| s.after == point)
        .fold((0, 0.0), |(n, last), s| {
            (n + s.stale_reads, s.last_ms.unwrap_or(0.0).max(last))
        })
}

/// Every goal that the rows and the throughput table can decide.
pub(super) fn check(rows: &[RowResult], throughput: &[ThroughputResult]) -> Vec<Goal> {
    let mut goals = Vec::new();
    let correct_faulted: Vec<&RowResult> = rows
        .iter()
        .filter(|r| matches!(r.strategy.as_str(), "stamped" | "versioned"))
        .filter(|r| matches!(r.cache.as_str(), "redis" | "memcache") && !r.faults.is_empty())
        .collect();
    if !correct_faulted.is_empty() {
        goals.push(goal(
            "stamped and versioned on Redis and Memcached: 0 stale reads in every fault run",
            correct_faulted.iter().all(|r| r.stale_reads == 0),
            list(&correct_faulted, |r| format!("{} stale", r.stale_reads)),
        ));
    }
    let freezes: Vec<&RowResult> = correct_faulted
        .iter()
        .copied()
        .filter(|r| r.faults.contains(&"stop"))
        .collect();
    if !freezes.is_empty() {
        goals.push(goal(
            "after a freeze, stale reads end within 250 ms of the server's return",
            freezes.iter().all(|r| stale_after(r, "sigcont").1 <= 250.0),
            list(&freezes, |r| {
                let (n, last) = stale_after(r, "sigcont");
                format!("{n} stale reads started after SIGCONT, the last {last:.0} ms after it")
            }),
        ));
    }
    let backplane: Vec<&RowResult> = rows.iter().filter(|r| r.cache.contains("backplane")).collect();
    if !backplane.is_empty() {
        let measured = backplane.iter().all(|r| r.delivery.is_some());
        goals.push(goal(
            "two tiers with a backplane: every stale read within the measured delivery bound",
            measured
                && backplane
                    .iter()
                    .all(|r| r.delivery.as_ref().is_some_and(|d| d.stale_beyond_delivery == 0)),
            list(&backplane, |r| match &r.delivery {
                Some(d) => format!(
                    "{} stale (max {:.1} ms), delivery p99 {:.1} ms / max {:.1} ms, {} stale beyond it",
                    r.stale_reads, r.max_staleness_ms, d.p99_ms, d.max_ms, d.stale_beyond_delivery
                ),
                None => "delivery not measured".into(),
            }),
        ));
        let killed: Vec<&RowResult> = backplane
            .iter()
            .copied()
            .filter(|r| r.faults.contains(&"pubsub-kill"))
            .collect();
        if !killed.is_empty() {
            goals.push(goal(
                "two tiers: 0 stale reads after the subscription is killed",
                killed.iter().all(|r| stale_after(r, "pubsub-kill").0 == 0),
                list(&killed, |r| {
                    format!("{} stale reads started after the kill", stale_after(r, "pubsub-kill").0)
                }),
            ));
        }
    }
    let fixed: Vec<&RowResult> = rows.iter().filter(|r| r.strategy == "fixed-month").collect();
    if !fixed.is_empty() {
        goals.push(goal(
            "fixed-month serves stale reads (the seed's bug, in the world)",
            fixed.iter().all(|r| r.stale_reads > 0),
            list(&fixed, |r| format!("{} stale", r.stale_reads)),
        ));
    }
    // A database fault's 5xx are its own goals' subject (below): the
    // service fails open on cache faults, not on a failing database.
    let cache_rows: Vec<&RowResult> = rows.iter().filter(|r| !has_db_fault(r)).collect();
    if !cache_rows.is_empty() {
        goals.push(goal(
            "the service fails open: no 5xx, errors only inside an outage window (rows without a database fault)",
            cache_rows
                .iter()
                .all(|r| r.errors_5xx == 0 && r.errors_outside_outages == 0),
            list(&cache_rows, |r| {
                format!(
                    "{} 5xx, {} timeouts, {} connection errors, {} outside outages",
                    r.errors_5xx, r.timeouts, r.connection_errors, r.errors_outside_outages
                )
            }),
        ));
    }
    db_goals(rows, &mut goals);
    let modelled: Vec<&RowResult> = rows
        .iter()
        .filter(|r| r.agreement.is_some() && r.not_modelled.is_empty())
        .collect();
    if !modelled.is_empty() {
        goals.push(goal(
            "the simulator agrees (stale reads in kind, hit rate within 3 points, round trips per read within 5%) \
             on every row it models",
            modelled.iter().all(|r| r.agreement.as_ref().is_some_and(|a| a.agrees)),
            list(&modelled, |r| match &r.agreement {
                Some(a) => format!(
                    "{:+.1} points, ops/read {:+.1}%, stale {}",
                    a.hit_rate_points,
                    a.ops_per_read_share * 100.0,
                    if a.stale_same_kind {
                        "same kind"
                    } else {
                        "**differ in kind**"
                    }
                ),
                None => String::new(),
            }),
        ));
    }
    let find = |c: &str| throughput.iter().find(|t| t.cache == c);
    if let (Some(none), Some(redis)) = (find("none"), find("redis")) {
        let ratio = redis.throughput_rps / none.throughput_rps.max(1e-9);
        goals.push(goal(
            "stamped on Redis: at least 3x the no-cache feed requests/s, with a lower p99",
            ratio >= 3.0 && redis.p99_ms < none.p99_ms,
            format!(
                "{:.0} vs {:.0} req/s ({ratio:.2}x), p99 {:.1} vs {:.1} ms; at {:.1}% hits, hits that cost nothing \
                 would give at most {:.2}x",
                redis.throughput_rps,
                none.throughput_rps,
                redis.p99_ms,
                none.p99_ms,
                redis.hit_rate * 100.0,
                1.0 / (1.0 - redis.hit_rate).max(1e-9)
            ),
        ));
    }
    goals
}
