//! `naive-versioned`: the seed's fix **exactly as written**, flaws included.
//! It exists to be measured against `versioned`; do not choose it.
//!
//! ```python
//! cache_version = cache.get(f'calendar_version:{user_id}') or 0
//! cache_key = f"calendar_feed:{user_id}:v{cache_version}:{work_type}:{status}:{start_date}:{end_date}"
//!
//! def invalidate_calendar_cache(user_id):
//!     try:
//!         cache.incr(version_key)
//!     except ValueError:
//!         cache.set(version_key, 1, None)
//! ```
//!
//! Reproduced here per scope (the seed versioned per user, which is its own
//! bug for shared calendars; the simulator's `shared-calendar` scenario
//! measures that by choosing the scope).
//!
//! # The flaw it keeps
//!
//! A missing version reads as 0 and is re-created as 1. When the version key
//! is lost (evicted, a Memcached restart) while data keys survive, the counter
//! restarts at 0, then 1, 2 …, and every key built from those numbers before
//! the loss becomes readable again: the `version-eviction` hazard. A value
//! that is not a counter also reads as 0 (Python's `or 0` on a falsy value is
//! the nearest faithful rendering). Its read/bump ordering is the same as
//! `versioned`'s, so the stale-set race only bites after a version loss.
//!
//! # Cost
//!
//! - read: 1 `get` of the version (one `get_many` for several scopes) + 1 `get`;
//! - miss: 1 `set`;
//! - write: 1 `incr`, plus 1 `set` when the version is missing.
//!
//! # Guarantees
//!
//! As `versioned` while the version key survives; none after it is lost.

use async_trait::async_trait;

use super::keys::{push_view, scope_key, view_key_builder};
use super::{ReadPlan, Requirements, Strategy, CacheOptions};
use crate::backend::{format_counter, parse_counter, Backend};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::view::{Change, Scope, View};

const TAG: &str = "nv";

/// The `naive-versioned` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct NaiveVersioned {
    options: CacheOptions,
}

impl NaiveVersioned {
    /// The registry name.
    pub const NAME: &'static str = "naive-versioned";

    /// A `naive-versioned` strategy with `options` (uses `namespace`, `ttl`).
    pub fn new(options: CacheOptions) -> Self {
        NaiveVersioned { options }
    }

    /// `ns:nv:{scope}:version`.
    fn version_key(&self, scope: &Scope) -> Result<Key> {
        scope_key(&self.options.namespace, TAG, scope, "version")
    }
}

#[async_trait]
impl Strategy for NaiveVersioned {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn needs(&self) -> Requirements {
        Requirements::COUNTERS
    }

    async fn plan_read(&self, backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        let keys = view
            .scopes
            .iter()
            .map(|s| self.version_key(s))
            .collect::<Result<Vec<_>>>()?;
        let values = match keys.as_slice() {
            [one] => vec![backend.get(one).await?],
            many => backend.get_many(many).await?,
        };
        // `cache.get(...) or 0`: missing (and anything unreadable) is 0.
        let versions: Vec<u64> = values
            .iter()
            .map(|v| v.as_deref().and_then(parse_counter).unwrap_or(0))
            .collect();
        let mut b = view_key_builder(&self.options.namespace, view);
        b.trusted(&self.options.namespace).trusted(TAG);
        for (scope, v) in view.scopes.iter().zip(&versions) {
            b.hash_tag(scope.as_str()).tagged_u64("v", *v);
        }
        push_view(&mut b, view);
        let key = b.build()?;
        Ok(ReadPlan::new(key, Some(self.options.ttl)).with_generations(versions))
    }

    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        let key = self.version_key(&change.scope)?;
        match backend.incr(&key, 1).await {
            Ok(_) => Ok(()),
            // Django raises ValueError for a missing key; the seed catches it
            // and restarts the counter at 1: the flaw this strategy keeps.
            Err(Error::NotFound { .. }) => {
                backend
                    .set(&key, format_counter(1), Some(self.options.control_ttl()))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    fn control_keys(&self, view: &View) -> Vec<Key> {
        view.scopes.iter().filter_map(|s| self.version_key(s).ok()).collect()
    }
}
