//! A row's figures from what its replay recorded: every feed response
//! judged, stale reads timed against the faults, errors inside and outside
//! the outages, latencies, commit durations, the backplane's delivery,
//! fail-safe answers and database-fault errors ([`super::dbfault`]), and
//! the judge's self-check against the final database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cache_core::View;

use crate::db::Db;

use super::dbfault;
use super::faults::FaultLog;
use super::judge::{Judge, Response, Verdict};
use super::record::{quantile, Failure, FeedRecord, Recording};
use super::report::{Delivery, ModelCheck, RowResult, StaleAfter, StaleExample};
use super::rig::Counters;
use super::run::Context;
use super::spec::{FailSafeSettings, FaultKind, RowSpec};
use super::workload::RequestKind;
use super::LoadError;

/// Errors this long after an outage still count as inside it (clients
/// reconnecting, a restarted process warming up).
const OUTAGE_GRACE_US: i64 = 3_000_000;
/// A stale read of a two-tier row may start this much later after a
/// commit than the slowest probe took to arrive (a busy service's
/// subscriber task runs later than the tool's).
const DELIVERY_SLACK_US: i64 = 5_000;
/// Stale reads listed in a row's `stale_examples`.
const STALE_EXAMPLES: usize = 20;
/// Most distinct views the self-check re-reads from the final database.
const MODEL_CHECK_VIEWS: usize = 2_000;

/// What a row ran with beyond its spec, for [`judge_row`].
pub(crate) struct RowRun<'a> {
    /// Its faults as injected.
    pub(crate) faults: &'a [FaultLog],
    /// The backplane probes' delays, µs (two tiers with a backplane).
    pub(crate) probe_delays: Option<Vec<i64>>,
    /// The services' fail-safe settings.
    pub(crate) fail_safe: FailSafeSettings,
    /// The services' counters at the end.
    pub(crate) counters: Counters,
}

/// Judges every feed response of a row, counts errors and latencies.
pub(crate) async fn judge_row(
    ctx: &Context,
    row: &RowSpec,
    rec: &Recording,
    log: Vec<crate::db::history::Entry>,
    db: &Db,
    run: RowRun<'_>,
) -> Result<RowResult, LoadError> {
    let RowRun {
        faults,
        probe_delays,
        fail_safe,
        counters,
    } = run;
    let answered: Vec<(i64, Option<i64>, i64)> = rec
        .writes
        .iter()
        .filter_map(|w| w.commit_seq.map(|s| (s, w.commit_us, w.end_us)))
        .collect();
    let before: std::collections::HashMap<i64, i64> = log.iter().map(|e| (e.seq, e.before_commit_us)).collect();
    let mut commit_us: Vec<u64> = answered
        .iter()
        .filter_map(|(seq, after, _)| Some(u64::try_from(after.as_ref()? - before.get(seq)?).unwrap_or(0)))
        .collect();
    let judge = Arc::new(Judge::new(&ctx.workload.seed, log, &answered));
    let verdicts: Vec<(usize, Verdict)> = {
        let (judge, workload, views, feeds) = (
            judge.clone(),
            ctx.workload.clone(),
            ctx.views.clone(),
            rec.feeds.clone(),
        );
        tokio::task::spawn_blocking(move || {
            feeds
                .iter()
                .enumerate()
                .filter(|(_, f)| f.status == 200)
                .filter_map(|(i, f)| {
                    let req = workload.requests.get(f.request as usize)?;
                    let user = workload.users.get(req.user as usize)?;
                    let view = views.get(f.request as usize)?.as_ref()?;
                    let v = judge.judge(&Response {
                        calendars: &user.calendars,
                        view,
                        start_us: f.start_us,
                        end_us: f.end_us,
                        digest: f.digest,
                    });
                    Some((i, v))
                })
                .collect()
        })
        .await
        .map_err(|e| LoadError::Io {
            what: "judging".into(),
            source: std::io::Error::other(e.to_string()),
        })?
    };
    let model_check = model_check(ctx, rec, &judge, db).await?;
    // Fail-safe answers are judged like every answer and counted apart
    // (`db_fault.fail_safe_stale`): the stale reads below are the
    // invalidation's.
    let (fail_safe_verdicts, verdicts): (Vec<_>, Vec<_>) = verdicts
        .into_iter()
        .partition(|(i, _): &(usize, Verdict)| rec.feeds[*i].fail_safe.is_some());
    let mut stale = 0u64;
    let mut unmatched = 0u64;
    let mut max_staleness_us = 0i64;
    let mut stale_starts = Vec::new();
    let mut stale_examples = Vec::new();
    for (i, v) in &verdicts {
        let f = &rec.feeds[*i];
        let (staleness_us, missed_seq) = match v {
            Verdict::Fresh => continue,
            Verdict::Stale {
                staleness_us,
                missed_seq,
            } => (*staleness_us, Some(*missed_seq)),
            Verdict::Unmatched => {
                unmatched += 1;
                (0, None)
            }
        };
        stale += 1;
        max_staleness_us = max_staleness_us.max(staleness_us);
        stale_starts.push(f.start_us);
        stale_examples.push(StaleExample {
            at_s: (f.start_us - rec.t0_us) as f64 / 1e6,
            staleness_ms: staleness_us as f64 / 1000.0,
            missed_seq,
            process: f.process,
        });
    }
    stale_examples.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    stale_examples.truncate(STALE_EXAMPLES);
    let delivery = probe_delays.map(|delays| {
        let mut d: Vec<u64> = delays.iter().map(|&us| u64::try_from(us).unwrap_or(0)).collect();
        let max = d.iter().copied().max().unwrap_or(0);
        let bound = i64::try_from(max).unwrap_or(i64::MAX).saturating_add(DELIVERY_SLACK_US);
        let beyond = verdicts
            .iter()
            .filter(|(i, v)| match v {
                Verdict::Stale { missed_seq, .. } => judge
                    .committed_by(*missed_seq)
                    .is_none_or(|c| rec.feeds[*i].start_us - c > bound),
                Verdict::Unmatched => true,
                Verdict::Fresh => false,
            })
            .count() as u64;
        Delivery {
            probes: d.len() as u64,
            p50_ms: quantile(&mut d, 0.5) as f64 / 1000.0,
            p99_ms: quantile(&mut d, 0.99) as f64 / 1000.0,
            max_ms: max as f64 / 1000.0,
            stale_beyond_delivery: beyond,
        }
    });
    let mut stale_after = Vec::new();
    for f in faults {
        let points: &[(&'static str, i64)] = match f.kind {
            "stop" => &[("sigstop", f.start_us), ("sigcont", f.end_us)],
            "pubsub-kill" => &[("pubsub-kill", f.start_us)],
            "kill" => &[("kill", f.start_us)],
            _ => continue,
        };
        for &(name, from) in points {
            let after: Vec<i64> = stale_starts.iter().copied().filter(|&s| s > from).collect();
            stale_after.push(StaleAfter {
                after: name,
                stale_reads: after.len() as u64,
                last_ms: after.iter().max().map(|&s| (s - from) as f64 / 1000.0),
            });
        }
    }
    let in_outage = |t: i64| {
        faults
            .iter()
            .any(|f| f.outage_ms > 0 && t >= f.start_us - OUTAGE_GRACE_US / 3 && t <= f.end_us + OUTAGE_GRACE_US)
    };
    let (mut e5xx, mut timeouts, mut conn, mut outside) = (0u64, 0u64, 0u64, 0u64);
    let starts = rec
        .feeds
        .iter()
        .map(|f| (f.status, f.failure, f.start_us))
        .chain(rec.writes.iter().map(|w| (w.status, w.failure, w.start_us)));
    for (status, failure, start) in starts {
        let error = match failure {
            Some(Failure::Timeout) => {
                timeouts += 1;
                true
            }
            Some(Failure::Connection) => {
                conn += 1;
                true
            }
            Some(Failure::Skipped) => false,
            None if status >= 500 => {
                e5xx += 1;
                true
            }
            None => false,
        };
        if error && !in_outage(start) {
            outside += 1;
        }
    }
    let mut latencies: Vec<u64> = rec
        .feeds
        .iter()
        .filter(|f| f.status == 200)
        .map(|f| u64::try_from(f.end_us - f.start_us).unwrap_or(0))
        .collect();
    let ms = |us: u64| us as f64 / 1000.0;
    let mut lag = rec.lag_us.clone();
    let db_fault = (row.has_db_fault() || fail_safe.any()).then(|| {
        let mut ids: HashMap<&View, usize> = HashMap::new();
        let view_ids: Vec<Option<usize>> = ctx
            .views
            .iter()
            .map(|v| {
                v.as_ref().map(|v| {
                    let next = ids.len();
                    *ids.entry(v).or_insert(next)
                })
            })
            .collect();
        let calendars = |f: &FeedRecord| {
            let req = ctx.workload.requests.get(f.request as usize)?;
            Some(ctx.workload.users.get(req.user as usize)?.calendars.as_slice())
        };
        let write_open = |f: &FeedRecord| {
            calendars(f).is_some_and(|cals| {
                rec.writes.iter().any(|w| {
                    w.start_us < f.end_us
                        && w.end_us > f.start_us
                        && w.commit_seq.is_some_and(|seq| judge.touches(seq, cals))
                })
            })
        };
        dbfault::measure(
            rec.t0_us,
            &rec.feeds,
            |f| view_ids.get(f.request as usize).copied().flatten(),
            write_open,
            &fail_safe_verdicts.into_iter().collect(),
            faults,
            fail_safe,
            counters,
        )
    });
    Ok(RowResult {
        row: row.label.clone(),
        strategy: row.strategy.clone(),
        cache: row.cache.label().to_owned(),
        faults: row.faults.iter().map(|f| f.kind.name()).collect(),
        feed_requests: rec.feeds.len() as u64,
        feed_ok: rec.feeds.iter().filter(|f| f.status == 200).count() as u64,
        hit_rate: 0.0,
        stale_reads: stale,
        max_staleness_ms: max_staleness_us as f64 / 1000.0,
        unmatched,
        errors_5xx: e5xx,
        timeouts,
        connection_errors: conn,
        errors_outside_outages: outside,
        throughput_rps: rec.feeds.len() as f64 / (rec.wall_us as f64 / 1e6).max(1e-9),
        p50_ms: ms(quantile(&mut latencies, 0.5)),
        p99_ms: ms(quantile(&mut latencies, 0.99)),
        p999_ms: ms(quantile(&mut latencies, 0.999)),
        ops_per_read: 0.0,
        writes: rec.writes.len() as u64,
        writes_committed: rec.writes.iter().filter(|w| w.commit_seq.is_some()).count() as u64,
        rerouted: rec.rerouted,
        lag_p99_ms: ms(quantile(&mut lag, 0.99)),
        stale_after,
        delivery,
        commit_ms: [ms(quantile(&mut commit_us, 0.5)), ms(quantile(&mut commit_us, 0.99))],
        bytes_per_read: 0.0,
        redis_keys: None,
        read_errors: 0,
        invalidation_errors: 0,
        stale_examples,
        model_check,
        predicted: None,
        not_modelled: row
            .faults
            .iter()
            .filter(|f| !matches!(f.kind, FaultKind::MaxMemory { .. }) && !f.kind.is_db())
            .map(|f| f.kind.name())
            .collect(),
        db_fault,
        agreement: None,
    })
}

/// Re-reads distinct views from the final database with the service's own
/// query and compares them with the judge's model of the final state.
async fn model_check(ctx: &Context, rec: &Recording, judge: &Judge, db: &Db) -> Result<ModelCheck, LoadError> {
    let mut seen = HashSet::new();
    let mut check = ModelCheck::default();
    for f in &rec.feeds {
        if check.views as usize >= MODEL_CHECK_VIEWS {
            break;
        }
        let Some(req) = ctx.workload.requests.get(f.request as usize) else {
            continue;
        };
        let Some(user) = ctx.workload.users.get(req.user as usize) else {
            continue;
        };
        // One check per distinct view: the user's calendars and the query.
        let RequestKind::Feed { query } = &req.kind else {
            continue;
        };
        if !seen.insert((user.calendars.as_slice(), query.as_str())) {
            continue;
        }
        let Some(view) = ctx.views.get(f.request as usize).and_then(Option::as_ref) else {
            continue;
        };
        let rows = db
            .feed(&user.calendars, view.range, crate::api::filter_of(view))
            .await?;
        check.views += 1;
        if crate::api::feed_body(&rows) != judge.final_body(&user.calendars, view) {
            check.mismatches += 1;
        }
    }
    Ok(check)
}
