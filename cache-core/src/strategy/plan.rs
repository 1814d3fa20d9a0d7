//! What a strategy's read step decided ([`ReadPlan`]) and what a strategy
//! needs from a backend ([`Requirements`]): the vocabulary between a
//! strategy and the read path, not part of the API (`unstable-internals`).

use bytes::Bytes;

use crate::backend::Ttl;
use crate::key::Key;

/// What `Strategy::plan_read` decided for one view.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadPlan {
    /// The storage key to read (and, on a miss, to fill).
    pub key: Key,
    /// TTL to store the entry with; also its logical lifetime in
    /// [`RangeCache`](crate::aside::RangeCache).
    pub ttl: Ttl,
    /// The generations the key was derived from (or, for `stamped`, that a
    /// stored entry must carry), in the order the strategy fetched them
    /// (empty for strategies without generations).
    pub generations: Vec<u64>,
    /// The entry, when the plan already read it in the same round trip as
    /// its generations (`stamped`): `Some(None)` is a miss (absent),
    /// `Some(Some(bytes))` the value as stored, which the read path opens
    /// with the strategy's [`StoredForm`](super::StoredForm) and serves only if it is
    /// [`Liveness::Live`](super::Liveness::Live) under this plan. `None` (every other strategy):
    /// the entry is read with a separate `get` of [`Self::key`].
    pub entry: Option<Option<Bytes>>,
    /// A write to the view's scopes is open (announced with
    /// [`Strategy::begin_write`](super::Strategy::begin_write), not yet ended): the cache must not answer
    /// this read, nor coalesce it, nor store its result. The read path
    /// loads it from the database alone.
    pub bypass: bool,
}

impl ReadPlan {
    /// A plan reading `key`, stored with `ttl`, derived from no generation.
    /// Strategies outside this crate build their plans with this.
    pub fn new(key: Key, ttl: Ttl) -> Self {
        ReadPlan {
            key,
            ttl,
            generations: Vec::new(),
            entry: None,
            bypass: false,
        }
    }

    /// Records the generations the key was derived from (builder style).
    #[must_use]
    pub fn with_generations(mut self, generations: Vec<u64>) -> Self {
        self.generations = generations;
        self
    }

    /// Hands over the entry the plan read itself (builder style): the read
    /// path then makes no separate `get`.
    #[must_use]
    pub fn with_entry(mut self, entry: Option<Bytes>) -> Self {
        self.entry = Some(entry);
        self
    }

    /// Marks the read as one the cache must not answer (see
    /// [`Self::bypass`]).
    #[must_use]
    pub fn with_bypass(mut self, bypass: bool) -> Self {
        self.bypass = bypass;
        self
    }
}

/// What a strategy needs from a backend, so callers (the simulator, a
/// service's startup check) can tell which combinations make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Requirements {
    /// Uses `add` and `incr` on counters (generations, versions).
    pub counters: bool,
    /// Uses [`Backend::delete_prefix`](crate::Backend::delete_prefix) when the backend has it, and works
    /// (with weaker guarantees or more round trips) when it does not.
    pub prefers_prefix_delete: bool,
    /// Invalidates on writes at all (`short-ttl` does not).
    pub invalidates: bool,
    /// Correct only if every process shares one store: invalidation state in
    /// a per-process cache never reaches the other processes' entries. True
    /// for every strategy that invalidates (not `short-ttl`, whose bound on
    /// staleness holds per process); listed so the `multi-process-locmem`
    /// hazard has a place to be checked.
    pub needs_shared_store: bool,
    /// Invalidates by deleting entries (`fixed-month`, `wildcard`,
    /// `range-expansion`): a stale entry is gone only if the delete named
    /// it and nothing refilled it afterwards, so correctness depends on the
    /// store keeping what the strategy told it (a key index a server may
    /// evict) and on no reader that queried the database before the commit
    /// storing after the delete (the stale-set race). The simulator's
    /// verdict rules these out on a server that evicts.
    pub invalidates_by_delete: bool,
}

impl Requirements {
    /// What every generation-based strategy needs (`naive-versioned`,
    /// `versioned`, `bucketed`, `stamped`): `add`/`incr` counters in a store
    /// all processes share, no prefix deletion.
    pub const COUNTERS: Requirements = Requirements {
        counters: true,
        prefers_prefix_delete: false,
        invalidates: true,
        needs_shared_store: true,
        invalidates_by_delete: false,
    };
}
