//! What a row's database faults and fail-safe did, as the client saw it:
//! the answers fail-safe gave (the `x-cache-fail-safe` header) and how many
//! of them the judge finds stale, and the feed requests that failed, split
//! by what the view's history says fail-safe could have answered them with.
//!
//! # Which failures fail-safe could have prevented
//!
//! The judge knows every response of every view. A view is **cached** for
//! a request when an earlier answer of it (a 200 not itself answered by
//! fail-safe) ended before the request started and started less than the
//! fail-safe max age before it. That answer was a hit (the entry's logical
//! expiry was after its start) or a miss that stored an entry expiring a
//! TTL after it, so the view's entry expired less than the max age before
//! the request, or has not expired: `stamped` keeps it under its stable
//! key whatever writes came since, and must answer from it. A view answered
//! only longer ago than that is **too old**; one never answered before the
//! request, **never cached** (it can only fail). With fail-safe off, every
//! view answered before counts as cached: the split then says whose errors
//! fail-safe would be asked to prevent.

use std::collections::HashMap;

use serde::Serialize;

use super::faults::FaultLog;
use super::judge::Verdict;
use super::record::{quantile, Failure, FeedRecord};
use super::rig::Counters;
use super::spec::FailSafeSettings;

/// What a view's history says about a request at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    /// Answered before, recently enough for fail-safe.
    Yes,
    /// Answered before, but longer ago than the fail-safe max age.
    TooOld,
    /// Never answered before.
    Never,
}

/// One view's answers: `(end, start)` of each, by end, and the latest
/// start among the answers up to each one.
type Answers = (Vec<(i64, i64)>, Vec<i64>);

/// Every view's answers (a 200 not from fail-safe), to ask "was this view
/// cached when that request started?".
#[derive(Debug, Default)]
pub struct ViewHistory {
    answers: HashMap<usize, Answers>,
}

impl ViewHistory {
    /// The history of `answers`: `(view, start_us, end_us)` of each.
    pub fn new(answers: impl IntoIterator<Item = (usize, i64, i64)>) -> ViewHistory {
        let mut by_view: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
        for (view, start, end) in answers {
            by_view.entry(view).or_default().push((end, start));
        }
        let answers = by_view
            .into_iter()
            .map(|(view, mut list)| {
                list.sort_unstable();
                let latest = list
                    .iter()
                    .scan(i64::MIN, |max, &(_, start)| {
                        *max = (*max).max(start);
                        Some(*max)
                    })
                    .collect();
                (view, (list, latest))
            })
            .collect();
        ViewHistory { answers }
    }

    /// Whether `view` was cached for a request starting at `at_us`, with
    /// fail-safe answering entries whose expiry passed less than
    /// `max_age_us` ago (`None`: any earlier answer counts).
    pub fn cached(&self, view: usize, at_us: i64, max_age_us: Option<i64>) -> Cached {
        match (self.last_answer(view, at_us), max_age_us) {
            (None, _) => Cached::Never,
            (Some(start), Some(age)) if at_us - start >= age => Cached::TooOld,
            (Some(_), _) => Cached::Yes,
        }
    }

    /// The latest start of an answer of `view` that ended before `at_us`.
    pub fn last_answer(&self, view: usize, at_us: i64) -> Option<i64> {
        let (list, latest) = self.answers.get(&view)?;
        let before = list.partition_point(|&(end, _)| end < at_us);
        before.checked_sub(1).and_then(|i| latest.get(i)).copied()
    }
}

/// The services' own counts of the same (`/api/cache`, summed), to set
/// beside what the client saw.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServiceCounts {
    /// Reads answered by fail-safe.
    pub fail_safe_served: u64,
    /// Of those, from a feed with old stamps.
    pub fail_safe_old_stamps: u64,
    /// Reads answered with an error.
    pub failed_reads: u64,
    /// Feed queries that failed.
    pub loader_errors: u64,
    /// Feed queries given up at the hard timeout.
    pub load_timeouts: u64,
    /// Reads answered at the soft timeout.
    pub soft_timeouts: u64,
    /// Reads that bypassed the cache inside an open write (`stamped`'s
    /// fence), anywhere in the row.
    pub bypassed: u64,
}

impl From<Counters> for ServiceCounts {
    fn from(c: Counters) -> Self {
        ServiceCounts {
            fail_safe_served: c.fail_safe_served,
            fail_safe_old_stamps: c.fail_safe_old_stamps,
            failed_reads: c.failed_reads,
            loader_errors: c.loader_errors,
            load_timeouts: c.load_timeouts,
            soft_timeouts: c.soft_timeouts,
            bypassed: c.bypassed,
        }
    }
}

/// A row's database faults and fail-safe, measured (`load.json`'s
/// `db_fault`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbFaultResult {
    /// What the services ran with.
    pub settings: FailSafeSettings,
    /// Feed requests that started inside a database fault window (from
    /// the first post to the last post plus the duration).
    pub reads_in_fault: u64,
    /// Their latency (every answer, errors included), p50 and p99, ms.
    pub latency_in_fault_ms: [f64; 2],
    /// Feeds answered by fail-safe (the `x-cache-fail-safe` header).
    pub fail_safe_served: u64,
    /// Of those, marked `stale` (old stamps: a write to one of the feed's
    /// calendars committed since it was loaded).
    pub fail_safe_old_stamps: u64,
    /// Of those, judged stale against the database's history (unmatched
    /// ones included): stale reads fail-safe served, counted apart from
    /// the row's `stale_reads` (which judge invalidation) and never
    /// hidden.
    pub fail_safe_stale: u64,
    /// The longest such answer lagged the oldest write it missed, ms.
    pub max_fail_safe_staleness_ms: f64,
    /// Feed requests that failed: a 5xx, a client timeout or a connection
    /// error (anywhere in the row).
    pub failed_reads: u64,
    /// Of those, 503: the query failed and fail-safe had nothing.
    pub status_503: u64,
    /// 504: the query passed the hard timeout and fail-safe had nothing.
    pub status_504: u64,
    /// Other 5xx.
    pub other_5xx: u64,
    /// No answer within the client's timeout, or no connection.
    pub no_answer: u64,
    /// Failed reads of views cached when the request started (see the
    /// module docs): the ones fail-safe should have answered.
    pub failed_cached: u64,
    /// Failed reads of views answered before, but longer ago than the
    /// max age.
    pub failed_too_old: u64,
    /// Failed reads of views never answered before.
    pub failed_never_cached: u64,
    /// Of the failed reads of cached views, those while a write to one of
    /// the view's calendars was open (the client had sent it and not had
    /// its answer): `stamped` fences the view then, and a read inside an
    /// open write bypasses the cache, fail-safe entry included.
    pub failed_cached_in_write: u64,
    /// The first failed reads of cached views, to look into.
    pub failed_cached_examples: Vec<FailedExample>,
    /// The services' own counters.
    pub service: ServiceCounts,
}

/// A failed read of a cached view.
#[derive(Debug, Clone, Serialize)]
pub struct FailedExample {
    /// When its request started, s after the row's traffic started.
    pub at_s: f64,
    /// Its status (0: no answer).
    pub status: u16,
    /// The process that answered.
    pub process: u16,
    /// How long before it the view's last answer started, ms.
    pub answered_ms_before: f64,
    /// The request's index in the workload.
    pub request: u32,
    /// A write to one of the view's calendars was open meanwhile.
    pub write_open: bool,
}

/// Failed reads of cached views listed in `failed_cached_examples`.
const FAILED_EXAMPLES: usize = 10;

/// The database-fault figures of a row. `feeds` are the replay's feed
/// records (trace time 0 at `t0_us`), `view_of` gives each one's view (an
/// index; `None` for a feed the service refuses), `verdicts` the judge's
/// verdict on each answer answered by fail-safe (by index into `feeds`),
/// `write_open` whether a write to one of a feed's calendars was open
/// while it ran.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    t0_us: i64,
    feeds: &[FeedRecord],
    view_of: impl Fn(&FeedRecord) -> Option<usize>,
    write_open: impl Fn(&FeedRecord) -> bool,
    verdicts: &HashMap<usize, Verdict>,
    faults: &[FaultLog],
    settings: FailSafeSettings,
    counters: Counters,
) -> DbFaultResult {
    let mut r = DbFaultResult {
        settings,
        service: counters.into(),
        ..DbFaultResult::default()
    };
    let windows: Vec<(i64, i64)> = faults
        .iter()
        .filter(|f| f.kind.starts_with("db-"))
        .map(|f| (f.start_us, f.end_us))
        .collect();
    let history = ViewHistory::new(feeds.iter().filter_map(|f| {
        let answered = f.status == 200 && f.fail_safe.is_none();
        answered
            .then(|| view_of(f).map(|v| (v, f.start_us, f.end_us)))
            .flatten()
    }));
    let max_age_us = settings
        .fail_safe_s
        .map(|s| i64::try_from(s).unwrap_or(i64::MAX / 1_000_000) * 1_000_000);
    let mut in_fault = Vec::new();
    let mut max_stale_us = 0i64;
    for (i, f) in feeds.iter().enumerate() {
        if windows.iter().any(|&(s, e)| s <= f.start_us && f.start_us < e) {
            r.reads_in_fault += 1;
            in_fault.push(u64::try_from(f.end_us - f.start_us).unwrap_or(0));
        }
        if let Some(mark) = f.fail_safe {
            r.fail_safe_served += 1;
            r.fail_safe_old_stamps += u64::from(mark == super::record::FailSafeMark::Stale);
            match verdicts.get(&i) {
                Some(Verdict::Stale { staleness_us, .. }) => {
                    r.fail_safe_stale += 1;
                    max_stale_us = max_stale_us.max(*staleness_us);
                }
                Some(Verdict::Unmatched) => r.fail_safe_stale += 1,
                _ => {}
            }
            continue;
        }
        let failed = match (f.failure, f.status) {
            (Some(Failure::Timeout | Failure::Connection), _) => {
                r.no_answer += 1;
                true
            }
            (None, 503) => {
                r.status_503 += 1;
                true
            }
            (None, 504) => {
                r.status_504 += 1;
                true
            }
            (None, s) if s >= 500 => {
                r.other_5xx += 1;
                true
            }
            _ => false,
        };
        if !failed {
            continue;
        }
        r.failed_reads += 1;
        let view = view_of(f);
        let cached = view.map_or(Cached::Never, |v| history.cached(v, f.start_us, max_age_us));
        match cached {
            Cached::Yes => {
                r.failed_cached += 1;
                let open = write_open(f);
                r.failed_cached_in_write += u64::from(open);
                if r.failed_cached_examples.len() < FAILED_EXAMPLES {
                    let last = view
                        .and_then(|v| history.last_answer(v, f.start_us))
                        .unwrap_or(f.start_us);
                    r.failed_cached_examples.push(FailedExample {
                        at_s: (f.start_us - t0_us) as f64 / 1e6,
                        status: f.status,
                        process: f.process,
                        answered_ms_before: (f.start_us - last) as f64 / 1000.0,
                        request: f.request,
                        write_open: open,
                    });
                }
            }
            Cached::TooOld => r.failed_too_old += 1,
            Cached::Never => r.failed_never_cached += 1,
        }
    }
    r.max_fail_safe_staleness_ms = max_stale_us as f64 / 1000.0;
    r.latency_in_fault_ms = [
        quantile(&mut in_fault, 0.5) as f64 / 1000.0,
        quantile(&mut in_fault, 0.99) as f64 / 1000.0,
    ];
    r
}

#[cfg(test)]
mod tests {
    use super::super::record::FailSafeMark;
    use super::*;

    fn feed(start_us: i64, status: u16, fail_safe: Option<FailSafeMark>) -> FeedRecord {
        FeedRecord {
            request: 0,
            process: 0,
            start_us,
            end_us: start_us + 1_000,
            status,
            failure: None,
            digest: 0,
            len: 0,
            fail_safe,
        }
    }

    #[test]
    fn a_view_is_cached_after_an_answer_that_ended_and_until_the_max_age() {
        // View 1 answered at 10 s (ended 10.001 s); view 2 never.
        let h = ViewHistory::new([(1, 10_000_000, 10_001_000)]);
        assert_eq!(
            h.cached(1, 10_000_500, Some(60_000_000)),
            Cached::Never,
            "still in flight"
        );
        assert_eq!(h.cached(1, 20_000_000, Some(60_000_000)), Cached::Yes);
        assert_eq!(h.cached(1, 70_000_000, Some(60_000_000)), Cached::TooOld);
        assert_eq!(h.cached(1, 70_000_000, None), Cached::Yes, "fail-safe off: any answer");
        assert_eq!(h.cached(2, 20_000_000, Some(60_000_000)), Cached::Never);
        // A later answer renews it.
        let h = ViewHistory::new([(1, 10_000_000, 10_001_000), (1, 50_000_000, 50_001_000)]);
        assert_eq!(h.cached(1, 70_000_000, Some(60_000_000)), Cached::Yes);
    }

    /// A 503 for a view answered earlier counts as a cached view's error
    /// (what fail-safe must prevent), one for a view never answered does
    /// not; fail-safe answers are counted, and the stale one among them
    /// is counted apart.
    #[test]
    fn failures_split_by_the_views_history_and_fail_safe_answers_are_judged() {
        let feeds = [
            feed(1_000_000, 200, None),                        // view 0 answered
            feed(5_000_000, 503, None),                        // view 0: cached, failed
            feed(5_100_000, 503, None),                        // view 1: never answered
            feed(5_200_000, 200, Some(FailSafeMark::Current)), // view 0 by fail-safe
            feed(5_300_000, 200, Some(FailSafeMark::Stale)),   // view 0 by fail-safe, stale
            feed(5_400_000, 504, None),                        // view 1 again: still never
        ];
        let views = [0, 0, 1, 0, 0, 1];
        let view_of = |f: &FeedRecord| feeds.iter().position(|g| g == f).map(|i| views[i]);
        let verdicts = HashMap::from([
            (3, Verdict::Fresh),
            (
                4,
                Verdict::Stale {
                    staleness_us: 700_000,
                    missed_seq: 3,
                },
            ),
        ]);
        let fault = FaultLog {
            kind: "db-outage",
            at_s: 4.0,
            trace_at_s: 480.0,
            target: "database (1 services)".into(),
            outage_ms: 2_000,
            start_us: 4_000_000,
            end_us: 6_000_000,
            detail: String::new(),
            latency_ms: None,
        };
        let settings = FailSafeSettings {
            fail_safe_s: Some(60),
            ..FailSafeSettings::default()
        };
        let r = measure(
            0,
            &feeds,
            view_of,
            |f| f.start_us == 5_000_000,
            &verdicts,
            &[fault],
            settings,
            Counters::default(),
        );
        assert_eq!(r.reads_in_fault, 5);
        assert_eq!(
            (r.fail_safe_served, r.fail_safe_old_stamps, r.fail_safe_stale),
            (2, 1, 1)
        );
        assert_eq!(r.max_fail_safe_staleness_ms, 700.0);
        assert_eq!((r.failed_reads, r.status_503, r.status_504), (3, 2, 1));
        assert_eq!((r.failed_cached, r.failed_too_old, r.failed_never_cached), (1, 0, 2));
        assert_eq!(r.failed_cached_in_write, 1);
        assert!(r.failed_cached_examples[0].write_open);
    }
}
