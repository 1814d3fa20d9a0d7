//! What a read came to ([`Served`], [`Outcome`], [`FailSafe`]), what a
//! single-flight leader hands its waiters ([`Handoff`]), and the settings a
//! read follows.

use std::time::Duration;

use bytes::Bytes;

/// How a read was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Served {
    /// Not answered yet.
    #[default]
    Pending,
    /// From a fresh cache entry.
    Hit,
    /// By this request's own load.
    Loaded,
    /// By another request's load in the same process (single-flight).
    Coalesced,
    /// Not at all: the loader failed.
    Failed,
    /// Not at all: a backend error on the read path, and fail-open is off
    /// ([`CacheOptions::fail_open`](crate::CacheOptions::fail_open)); the
    /// driver returns the error ([`ReadFlow::take_error`](crate::flow::ReadFlow::take_error)).
    CacheFailed,
    /// By the entry stored for the view, although the strategy would not
    /// serve it normally (past its logical expiry, or with old stamps),
    /// because the database failed, or was slower than a timeout allows
    /// (fail-safe; [`Outcome::fail_safe`] says which kind of entry).
    FailSafe,
}

/// What a fail-safe answer was, as far as the strategy can tell (what a
/// service says in a response header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailSafe {
    /// An entry computed under the generations that are current now: the
    /// database has not changed for the view since it was loaded (per the
    /// strategy), it is only past its logical expiry (or was being
    /// refreshed early). With a strategy that keeps no generations
    /// (the delete-based ones, `short-ttl`) this only means "not deleted".
    Current,
    /// An entry computed under generations that are no longer current: a
    /// write to one of its scopes committed since it was loaded, so it may
    /// miss that write (`stamped` keeps such entries under their stable
    /// key).
    Stale,
}

impl FailSafe {
    /// `current` or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailSafe::Current => "current",
            FailSafe::Stale => "stale",
        }
    }
}

/// What a single-flight leader hands its waiters when its load ends
/// ([`ReadFlow::handoff`](crate::flow::ReadFlow::handoff)), and a waiter feeds to
/// [`ReadFlow::handed`](crate::flow::ReadFlow::handed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handoff {
    /// The value the leader loaded.
    Value(Bytes),
    /// The leader's load failed: a waiter answers by fail-safe if it can,
    /// or loads itself.
    Failed,
    /// The leader gave up at the hard timeout: a waiter answers by
    /// fail-safe if it can, or fails too (it does not wait once more).
    TimedOut,
    /// The leader went away without a result (its request was cancelled):
    /// a waiter joins again, and may lead.
    Gone,
}

/// The settings of [`CacheOptions`](crate::CacheOptions) a read follows,
/// copied into each flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) single_flight: bool,
    pub(crate) fail_open: bool,
    pub(crate) fail_safe: Option<Duration>,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
}

impl Policy {
    pub(crate) fn of(o: &crate::CacheOptions) -> Self {
        Policy {
            single_flight: o.single_flight,
            fail_open: o.fail_open,
            fail_safe: o.fail_safe_max_age,
            soft_timeout: o.soft_timeout,
            hard_timeout: o.hard_timeout,
        }
    }
}

/// Everything a read did that metrics count. Both drivers count with
/// [`CacheMetrics::record`](crate::flow::CacheMetrics::record), so they count alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Outcome {
    /// How the read was answered.
    pub served: Served,
    /// A fresh entry was recomputed early (XFetch).
    pub early_refresh: bool,
    /// A backend error on the read path (plan or get) was answered by the
    /// loader (fail-open).
    pub read_error: bool,
    /// Storing the loaded value failed (the value was still served).
    pub store_error: bool,
    /// The entry found did not open in its strategy's stored form.
    pub corrupt_entry: bool,
    /// The loader was called.
    pub loader_called: bool,
    /// The plan said a write to the view's scopes was open, so the cache
    /// neither answered nor stored this read ([`ReadPlan::bypass`](crate::strategy::ReadPlan::bypass)).
    pub bypassed: bool,
    /// This process has a bump pending for one of the view's scopes over
    /// its dates ([`Pending::covers`](crate::flow::Pending::covers)), so
    /// the cache was skipped altogether: no plan, no hit, no coalescing, no
    /// fill; the loader answered.
    pub pending_bypass: bool,
    /// Answered by fail-safe ([`Served::FailSafe`]), from an entry of this
    /// kind.
    pub fail_safe: Option<FailSafe>,
    /// This read's own loader was called and failed.
    pub load_failed: bool,
    /// This read gave up waiting for the database at the hard timeout (its
    /// own load, or the one it waited for).
    pub timed_out: bool,
    /// Answered by fail-safe at the soft timeout while the load went on:
    /// for the read that led the load, what happened to it after the
    /// answer (its result, its store) is counted when it ends
    /// ([`CacheMetrics::record_late`](crate::flow::CacheMetrics::record_late)).
    pub soft_timed_out: bool,
}
