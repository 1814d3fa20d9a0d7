//! Invalidation strategies as swappable components (one file per strategy).
//!
//! INTERFACE SKELETON — issue #5 fills in the strategies, the registry and
//! the cache-aside layer. The step-wise shape of [`Strategy`] is fixed because
//! the simulator depends on it: a feed request is
//! `plan_read` (derive the key, fetching generations) → `backend.get(plan.key)`
//! → on a miss, the database query → `store`; a write is commit →
//! `invalidate`. The simulator runs each step with its own latency so races
//! (the stale-set race) arise from interleaving rather than being scripted.

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::{Backend, Ttl};
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
