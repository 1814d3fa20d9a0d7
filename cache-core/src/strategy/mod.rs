//! Invalidation strategies as swappable components, one file per strategy,
//! and the registry that builds them by name.
//!
//! The step-wise shape of [`Strategy`] is fixed because the simulator depends
//! on it: a feed request is `plan_read` (derive the key, fetching generations)
//! → `backend.get(plan.key)` → on a miss, the database query → `store`; a
//! write is commit → `invalidate`. The simulator runs each step with its own
//! latency so races (the stale-set race) arise from interleaving rather than
//! being scripted. A fenced write is `begin_write` → commit → `end_write`. [`RangeCache`](crate::aside::RangeCache) drives the same
//! steps for applications.
//!
//! # The strategies at a glance
//!
//! Costs are backend round trips for a view over one scope (`B` = buckets the
//! view spans, `b` = buckets a change touches, `K` = keys a guess covers).
//!
//! | name | read (plan + get) | miss (store) | write | guarantee |
//! |---|---|---|---|---|
//! | `fixed-month` | 1 | 1 | one `delete` per month × filter combination (4 by default) | none: the seed's bug |
//! | `naive-versioned` | 2 | 1 | 1 (2 when the version is missing) | breaks when the version key is lost |
//! | [`versioned`] | 2 (+1 `add` once) | 1 | 1 `incr` | no stale read after the bump, even across lost generations |
//! | `wildcard` | 1 | 1 (3 with a key index) | 2 (`delete_prefix` + index) | stale-set race; index is lossy |
//! | `range-expansion` | 1 | 1 | 1 `delete_many` of `K` keys | only the guessed keys |
//! | [`short-ttl`](short_ttl) | 1 | 1 | 0 | stale for up to the TTL |
//! | [`bucketed`] | 2 (one `get_many` of `B`) | 1 | `b` `incr`s | as `versioned`, per bucket |
//! | [`stamped`] | 1 (one `get_many` of generations + entry) | 1 | 1 `incr` (`b` per bucket) | as `versioned`, no orphans |
//!
//! # Stored form
//!
//! What a strategy stores, only that strategy decodes: the read path seals
//! an envelope, the strategy may wrap it (`stamped`
//! puts its stamps in front), and the strategy's stored form opens it again
//! for every layer that looks at stored entries: the read path (a hit is an
//! entry that is live under the read's plan), the two-tier cache (an L1
//! copy is served only under current stamps) and the simulator's dead-key
//! count.
//!
//! # Choosing, not implementing
//!
//! Applications choose a strategy, by type ([`Stamped`], [`Versioned`],
//! [`Bucketed`], [`ShortTtl`]:
//! [`RangeCacheBuilder::strategy_with`](crate::RangeCacheBuilder::strategy_with)) or by name ([`by_name`],
//! [`RangeCacheBuilder::strategy`](crate::RangeCacheBuilder::strategy)).
//! Only this crate's strategies implement [`Strategy`]: each one's guarantee
//! is proven by the simulator and the strategy scenarios, and its steps
//! (plan a read, store, fence, invalidate) are the read path's business,
//! not part of the API.
//!
//! # Keys
//!
//! Every key starts with the namespace ([`CacheOptions::namespace`]), a
//! short strategy tag, and the scope as a Redis Cluster hash tag
//! (`feed:v:{cal%3A7}:…`), so all keys of one scope share one cluster slot
//! and a prefix deletion of a scope stays on one node. User-controlled parts
//! (scope names, parameters) go through [`Key::from_parts`]'s encoding, so they
//! can contain neither `:` nor braces nor glob characters.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::view::{Change, View};

pub use crate::options::{CacheOptions, CONTROL_TTL_FLOOR};

pub mod bucketed;
pub(crate) mod fence;
// The strategies that exist to be compared, not chosen: by name only
// (`by_name`, `RangeCacheBuilder::strategy`).
crate::internal_mod!(fixed_month);
pub(crate) mod generations;
mod key_index;
crate::internal_mod!(plan);
pub(crate) mod keys;
crate::internal_mod!(naive_versioned);
crate::internal_mod!(range_expansion);
pub mod short_ttl;
pub mod stamped;
mod stored;
pub mod versioned;
// Compared, not chosen (a stale-set race; unsafe when the server evicts).
crate::internal_mod!(wildcard);

pub use bucketed::Bucketed;
use fixed_month::FixedMonth;
use naive_versioned::NaiveVersioned;
use range_expansion::RangeExpansion;
pub use short_ttl::ShortTtl;
pub(crate) use stamped::StampedForm;
pub use stamped::{StampGranularity, Stamped};
// How a strategy talks to the read path: the plan of a read, what it needs
// from a backend, and how its entries are stored. Only the strategies of
// this crate implement `Strategy`, so these are not part of the API.
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub use plan::{ReadPlan, Requirements};
#[cfg(not(feature = "unstable-internals"))]
pub(crate) use plan::{ReadPlan, Requirements};
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub use stored::{EnvelopeForm, Liveness, StoredEntry, StoredForm};
#[cfg(not(feature = "unstable-internals"))]
pub(crate) use stored::{EnvelopeForm, Liveness, StoredEntry, StoredForm};
pub use versioned::Versioned;
use wildcard::Wildcard;

/// An invalidation strategy: choose one (see [Choosing, not
/// implementing](self#choosing-not-implementing)); only this crate's
/// strategies implement it, and its steps are hidden from the docs.
///
/// Strategies keep no per-backend state in memory:
/// everything they need (generations, key indexes) lives in the backend, so
/// one instance serves many backends (e.g. one per simulated app process).
///
/// # Ordering rule for callers
///
/// Call `plan_read` **before** querying the database for a miss, and
/// `invalidate` **after** the write has committed (or `begin_write` before
/// the commit and `end_write` after it). Generation-based
/// strategies rely on it: a reader that planned before a bump stores under the
/// old generation, which nobody reads again, so a stale result can never be
/// filled under a live key.
#[async_trait]
pub trait Strategy: Send + Sync + std::fmt::Debug + 'static {
    /// The registry name (`"versioned"`, `"bucketed"`, …).
    fn name(&self) -> &str;

    /// What this strategy uses from a backend. The default (provided so that
    /// strategies written before this method existed keep compiling) claims
    /// only that it invalidates through a shared store.
    #[doc(hidden)]
    fn needs(&self) -> Requirements {
        Requirements {
            invalidates: true,
            needs_shared_store: true,
            ..Requirements::default()
        }
    }

    /// How this strategy's entries are stored, to open one and tell
    /// whether this strategy would serve it now (see [`StoredForm`]). The
    /// default is the read path's envelope as it is; a strategy that wraps
    /// its entries (`stamped`) returns its own form. The read path, the
    /// two-tier cache and the simulator's dead-key count all open entries
    /// through it.
    #[doc(hidden)]
    fn stored_form(&self) -> &dyn StoredForm {
        &EnvelopeForm
    }

    /// Step 1 of a read: the storage key for `view` (may read or seed
    /// generation keys on `backend`).
    #[doc(hidden)]
    async fn plan_read(&self, backend: &dyn Backend, view: &View) -> Result<ReadPlan>;

    /// Last step of a read miss: store the loaded `value` under `plan.key`
    /// (a strategy that keeps a key index records the key here). The
    /// default sets it with the plan's TTL, which is all most strategies do.
    #[doc(hidden)]
    async fn store(&self, backend: &dyn Backend, view: &View, plan: &ReadPlan, value: Bytes) -> Result<()> {
        let _ = view;
        backend.set(&plan.key, value, plan.ttl).await
    }

    /// After a write has been committed: invalidate what `change` affects.
    #[doc(hidden)]
    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()>;

    /// Before a write commits: announce it, so that reads of what `change`
    /// affects bypass the cache until [`Strategy::end_write`] (this closes
    /// the commit-to-bump window). Pair every call with one `end_write`,
    /// whether or not the commit succeeded. The default does nothing: only
    /// `stamped` fences writes.
    #[doc(hidden)]
    async fn begin_write(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        let _ = (backend, change);
        Ok(())
    }

    /// After a write announced with [`Strategy::begin_write`] committed (or
    /// failed): invalidate and lift the fence. The default is
    /// [`Strategy::invalidate`].
    #[doc(hidden)]
    async fn end_write(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        self.invalidate(backend, change).await
    }

    /// Keys that hold this strategy's control state (generations, indexes)
    /// for the scopes and ranges of `view`; empty for strategies without any.
    /// The simulator deletes them to reproduce the `version-eviction` hazard.
    #[doc(hidden)]
    fn control_keys(&self, view: &View) -> Vec<Key>;
}

/// One entry of the strategy registry: a name and how to build it.
#[derive(Debug, Clone, Copy)]
struct Registration {
    /// The registry name (what [`Strategy::name`] returns).
    name: &'static str,
    /// Builds the strategy from validated options.
    build: fn(CacheOptions) -> Arc<dyn Strategy>,
}

/// The registry: every strategy, in report order. The one place a strategy
/// is registered; [`NAMES`] and [`by_name`] derive from it.
const REGISTRY: [Registration; 8] = [
    Registration {
        name: FixedMonth::NAME,
        build: |o| Arc::new(FixedMonth::new(o)),
    },
    Registration {
        name: NaiveVersioned::NAME,
        build: |o| Arc::new(NaiveVersioned::new(o)),
    },
    Registration {
        name: Versioned::NAME,
        build: |o| Arc::new(Versioned::new(o)),
    },
    Registration {
        name: "wildcard",
        build: |o| Arc::new(Wildcard::new(o)),
    },
    Registration {
        name: RangeExpansion::NAME,
        build: |o| Arc::new(RangeExpansion::new(o)),
    },
    Registration {
        name: ShortTtl::NAME,
        build: |o| Arc::new(ShortTtl::new(o)),
    },
    Registration {
        name: Bucketed::NAME,
        build: |o| Arc::new(Bucketed::new(o)),
    },
    Registration {
        name: Stamped::NAME,
        build: |o| Arc::new(Stamped::new(o)),
    },
];

/// Every strategy name the registry knows, in report order.
pub const NAMES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        names[i] = REGISTRY[i].name;
        i += 1;
    }
    names
};

/// Time bucket of the `bucketed` strategy. Buckets are computed in UTC, so a
/// view and a change agree on them whatever offsets their clients used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BucketSize {
    /// ISO weeks (Monday 00:00 UTC to the next Monday).
    Week,
    /// Calendar months (the 1st 00:00 UTC to the next 1st).
    #[default]
    Month,
}

fn config(message: String) -> Error {
    Error::Config {
        backend: "strategy-registry".to_owned(),
        message,
    }
}

/// Builds the strategy registered under `name` (one of [`NAMES`]).
///
/// An unknown name is an [`Error::Config`] that lists the valid ones.
///
/// ```
/// use cache_core::strategy::{by_name, NAMES};
/// use cache_core::CacheOptions;
/// for name in NAMES {
///     assert_eq!(by_name(name, &CacheOptions::default()).unwrap().name(), name);
/// }
/// let err = by_name("lru", &CacheOptions::default()).unwrap_err();
/// assert!(err.to_string().contains("versioned"));
/// ```
pub fn by_name(name: &str, options: &CacheOptions) -> Result<Arc<dyn Strategy>> {
    options.validate()?;
    match REGISTRY.iter().find(|r| r.name == name) {
        Some(r) => Ok((r.build)(options.clone())),
        None => Err(config(format!(
            "unknown strategy {name:?}; valid names: {}",
            NAMES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_knows_every_name_and_rejects_others() {
        for name in NAMES {
            assert_eq!(by_name(name, &CacheOptions::default()).unwrap().name(), name);
        }
        let err = by_name("Versioned", &CacheOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"Versioned\"") && msg.contains("bucketed"), "{msg}");
        let bad = CacheOptions::default().with_namespace("a{b}");
        assert!(matches!(
            by_name("versioned", &bad),
            Err(Error::Setting {
                setting: "namespace",
                ..
            })
        ));
    }
}
