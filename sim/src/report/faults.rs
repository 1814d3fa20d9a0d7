//! What a cell's tiers, cache-server faults and database faults did, and
//! the run's fault plans, as the report shows them.

use serde::{Deserialize, Serialize};

use std::time::Duration;

use super::ms;
use crate::config::RunConfig;

/// What a two-tier backend's tiers did in one cell, summed over processes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
    pub(super) fn of(cfg: &RunConfig) -> Option<DbFaultPlan> {
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
    pub(super) fn of(cfg: &RunConfig) -> Option<FaultPlan> {
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
