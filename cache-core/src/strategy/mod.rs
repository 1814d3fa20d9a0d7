//! Invalidation strategies as swappable components (one file per strategy).
//!
//! INTERFACE SKELETON — issue #5 fills in the strategies, the registry and
//! the cache-aside layer. The step-wise shape of [`Strategy`] is fixed because
//! the simulator depends on it: a feed request is
//! `plan_read` (derive the key, fetching generations) → `backend.get(plan.key)`
//! → on a miss, the database query → `store`; a write is commit →
//! `invalidate`. The simulator runs each step with its own latency so races
//! (the stale-set race) arise from interleaving rather than being scripted.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::{Backend, Ttl};
use crate::clock::{system_clock, Clock};
use crate::error::Result;
use crate::key::Key;
use crate::view::{Change, View};

/// What [`Strategy::plan_read`] decided for one view.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadPlan {
    /// The storage key to read (and, on a miss, to fill).
    pub key: Key,
    /// Backend TTL to store the entry with.
    pub ttl: Ttl,
}

/// An invalidation strategy. Strategies keep no per-backend state in memory:
/// everything they need (generations, key indexes) lives in the backend, so
/// one instance serves many backends (e.g. one per simulated app process).
#[async_trait]
pub trait Strategy: Send + Sync + std::fmt::Debug + 'static {
    /// The registry name (`"versioned"`, `"bucketed"`, …).
    fn name(&self) -> &str;

    /// Step 1 of a read: the storage key for `view` (may read or seed
    /// generation keys on `backend`).
    async fn plan_read(&self, backend: &dyn Backend, view: &View) -> Result<ReadPlan>;

    /// Last step of a read miss: store the loaded `value` under `plan.key`
    /// (a strategy that keeps a key index records the key here).
    async fn store(&self, backend: &dyn Backend, view: &View, plan: &ReadPlan, value: Bytes) -> Result<()>;

    /// After a write has been committed: invalidate what `change` affects.
    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()>;

    /// Keys that hold this strategy's control state (generations, indexes)
    /// for the scopes and ranges of `view`; empty for strategies without any.
    /// The simulator deletes them to reproduce the `version-eviction` hazard.
    fn control_keys(&self, view: &View) -> Vec<Key>;
}

/// Every strategy name the registry knows, in report order.
pub const NAMES: [&str; 7] = [
    "fixed-month",
    "naive-versioned",
    "versioned",
    "wildcard",
    "range-expansion",
    "short-ttl",
    "bucketed",
];

/// Options shared by the strategies (each uses the ones it needs).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StrategyOptions {
    /// The clock strategies read "now" from (`fixed-month` invalidates months
    /// around today).
    pub clock: Arc<dyn Clock>,
    /// TTL of cached views (default 300 s, the seed's).
    pub ttl: Duration,
    /// TTL used by `short-ttl` (default 60 s, the seed's Solution D).
    pub short_ttl: Duration,
    /// Seed for any random choice (e.g. `versioned`'s random generation start).
    pub seed: u64,
}

impl Default for StrategyOptions {
    fn default() -> Self {
        StrategyOptions {
            clock: system_clock(),
            ttl: Duration::from_secs(300),
            short_ttl: Duration::from_secs(60),
            seed: 0,
        }
    }
}

/// Builds the strategy registered under `name` (one of [`NAMES`]).
pub fn by_name(name: &str, options: &StrategyOptions) -> Result<Arc<dyn Strategy>> {
    let _ = options;
    Err(crate::Error::NotSupported {
        backend: "strategy-registry".to_owned(),
        operation: if NAMES.contains(&name) {
            "strategy not implemented yet"
        } else {
            "unknown strategy"
        },
    })
}
