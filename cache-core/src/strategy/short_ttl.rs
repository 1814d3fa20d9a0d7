//! `short-ttl`: the seed's Solution D. No invalidation at all; entries live
//! for [`CacheOptions::short_ttl`] (default 60 s instead of 300 s).
//!
//! # Cost
//!
//! - read: 1 `get`; miss: 1 `set`; write: nothing.
//!
//! # Guarantees
//!
//! A write becomes visible within `short_ttl` of the commit, never sooner:
//! every read in that window may be stale. Shorter TTLs trade hit rate for
//! that window.
//!
//! # When to choose it
//!
//! When a bounded staleness is acceptable and writes are not tracked (data
//! changed by another system, no hook on commit).

use async_trait::async_trait;

use super::keys::scoped_view_key;
use super::{CacheOptions, ReadPlan, Requirements, Strategy};
use crate::backend::Backend;
use crate::error::Result;
use crate::key::Key;
use crate::view::{Change, View};

const TAG: &str = "st";

/// The `short-ttl` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct ShortTtl {
    options: CacheOptions,
}

impl ShortTtl {
    /// The registry name.
    pub const NAME: &'static str = "short-ttl";

    /// A `short-ttl` strategy with `options` (uses `namespace`, `short_ttl`).
    pub fn new(options: CacheOptions) -> Self {
        ShortTtl { options }
    }
}

#[async_trait]
impl Strategy for ShortTtl {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn needs(&self) -> Requirements {
        Requirements {
            counters: false,
            prefers_prefix_delete: false,
            invalidates: false,
            needs_shared_store: false,
            invalidates_by_delete: false,
        }
    }

    async fn plan_read(&self, _backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        let key = scoped_view_key(&self.options.namespace, TAG, view)?;
        Ok(ReadPlan::new(key, Some(self.options.short_ttl)))
    }

    async fn invalidate(&self, _backend: &dyn Backend, _change: &Change) -> Result<()> {
        // Solution D: the TTL is the only invalidation.
        Ok(())
    }

    fn control_keys(&self, _view: &View) -> Vec<Key> {
        Vec::new()
    }
}
