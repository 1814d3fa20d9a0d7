//! `wildcard`: the seed's Solution A, "delete every key of the scope".
//!
//! Keys of a view live under the scope's prefix `ns:wc:{scope}:d:`. On a
//! change:
//!
//! - where the backend has [`Backend::delete_prefix`] (locmem; Redis via
//!   SCAN + UNLINK, on every master of a cluster), that prefix is deleted;
//! - otherwise (Memcached) a **per-scope key index** is used: `store` appends
//!   the entry's key to the list stored under `ns:wc:{scope}:idx`, and
//!   `invalidate` reads that list, deletes every key in it and the list.
//!
//! A view over several scopes is stored under its first scope's prefix, so
//! the other scopes find it through their indexes, even where prefix
//! deletion exists.
//!
//! # Why the key index is racy
//!
//! The index is a plain value updated by read-modify-write (`get`, append,
//! `set`) because the contract has no atomic append. So:
//!
//! - **lost updates**: two misses of the same scope that read the index at
//!   the same time each write back their own version, and the key of the
//!   first writer vanishes from the index. That entry can no longer be
//!   invalidated and may be served stale until its TTL;
//! - **entries added after the index was read**: `invalidate` reads the
//!   index, then deletes the listed keys and the index. A key appended in
//!   between is dropped with the index while its data survives, stale until
//!   its TTL.
//!
//! Both windows are a few round trips wide; the simulator measures how often
//! they open. On top of that, every delete-based strategy (this one with or
//! without an index) suffers the **stale-set race**: a reader that queried
//! the database before a commit stores its old result after the
//! invalidation, under a live key. `versioned` and `bucketed` do not.
//!
//! # An entry is never readable unless it is indexed
//!
//! `store` writes the index **first**, then the entry, then reads the index
//! again: if an invalidation (or a concurrent miss's lost update) removed
//! the entry's key in between, the entry is deleted. When the index cannot
//! be written (full, too large, the backend refused it), the entry is not
//! written at all: the view is served from the loader, uncached. An entry
//! that is not indexed could never be invalidated.
//!
//! # What bounds the index
//!
//! Each append rewrites the index with the entry's TTL plus
//! [`INDEX_TTL_SLACK`], so the index outlives every entry it lists and
//! disappears shortly after one TTL after the last miss of its scope; each
//! invalidation empties it. Between invalidations it holds at most
//! [`CacheOptions::index_cap`] keys **and** at most [`INDEX_MAX_BYTES`]
//! bytes (lowered to the backend's `max_value_size` when that is smaller):
//! when either is reached, new entries of that scope are **not cached**.
//! Duplicates are not appended. Both bounds are needed: with keys of ~7 KB
//! (long scope names, many filter parameters), 1000 keys would be 7 MB,
//! far past Memcached's 1 MiB item limit.
//!
//! # Server eviction (Redis `allkeys-lru`)
//!
//! Where the server evicts any key under memory pressure (Redis with
//! `maxmemory-policy allkeys-lru` or `allkeys-lfu`, Memcached's LRU), it
//! may evict a scope's **index** while entries it lists survive: the index
//! is touched only on misses and invalidations, the entries on every hit, so
//! it is the least recently used. The next write of that scope finds no
//! index and cannot delete those entries: they are served stale until their
//! TTL. On Redis this hits only views over several scopes (the first scope
//! is covered by prefix deletion, which eviction cannot defeat); on
//! Memcached every view. `backend-redis/tests/wildcard_eviction.rs`
//! reproduces it under `maxmemory 2mb`. `versioned` and `bucketed` are
//! immune: a lost generation key yields a *new* generation, i.e. a miss,
//! never an old entry. Use them when the cache evicts, or give `wildcard` a
//! server that never evicts (Redis `maxmemory-policy noeviction` with
//! enough memory: writes then fail loudly instead). `volatile-*` policies do
//! not help: the index has a TTL, so it is a candidate too.
//!
//! # Cost
//!
//! - read: 1 `get`;
//! - miss: 1 `set` with prefix deletion; with the index 4 (`get` of the
//!   index, `set` of the index, `set` of the entry, `get` of the index to
//!   verify; `get_many` and `set_many` for several scopes);
//! - write: `delete_prefix` (a full keyspace SCAN on Redis, O(keys) on
//!   locmem) + 1 `get` of the index (+ 1 `delete_many` when it lists keys).
//!
//! # When to choose it
//!
//! When keys must stay readable without version lookups (other services read
//! them) and writes are rare. Beware the SCAN cost on large Redis instances.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::key_index::{decode_index, index_lists, index_with, Needle};
use super::keys::{push_view, scope_key, view_key_builder};
use super::{CacheOptions, ReadPlan, Requirements, Strategy};
use crate::backend::Backend;
use crate::error::Result;
use crate::key::{push_hash_tag, Key};
use crate::view::{Change, Scope, View};

const TAG: &str = "wc";

/// Most bytes one scope's key index may hold (the newline-separated keys);
/// the backend's `max_value_size` lowers it further. 256 KiB is a quarter
/// of Memcached's stock item limit.
pub const INDEX_MAX_BYTES: usize = 256 * 1024;

/// How much longer than the entry it lists an index is kept: the entry is
/// written after its index, so the index must not expire first.
pub const INDEX_TTL_SLACK: Duration = Duration::from_secs(5);

/// The `wildcard` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct Wildcard {
    options: CacheOptions,
}

impl Wildcard {
    /// A `wildcard` strategy with `options` (uses `namespace`, `ttl`,
    /// `index_cap`).
    pub fn new(options: CacheOptions) -> Self {
        Wildcard { options }
    }

    /// `ns:wc:{scope}:d:`, the prefix every entry of `scope` starts with.
    fn data_prefix(&self, scope: &Scope) -> String {
        // Written out rather than with a `KeyBuilder`: a prefix is not a key,
        // and its `:` follows the namespace even when that is empty.
        let ns = &self.options.namespace;
        let mut prefix = String::with_capacity(ns.len() + TAG.len() + scope.as_str().len() + 8);
        prefix.push_str(ns);
        prefix.push(':');
        prefix.push_str(TAG);
        prefix.push(':');
        push_hash_tag(&mut prefix, scope.as_str());
        prefix.push_str(":d:");
        prefix
    }

    /// `ns:wc:{scope}:idx`.
    fn index_key(&self, scope: &Scope) -> Result<Key> {
        scope_key(&self.options.namespace, TAG, scope, "idx")
    }

    /// Appends the entry's key to the indexes of `scopes`, then stores the
    /// entry, then checks that the indexes still list it (deleting the entry
    /// when one does not). Stores nothing when an index is full or the
    /// index write fails: see the module docs.
    async fn store_indexed(
        &self,
        backend: &dyn Backend,
        scopes: &[Scope],
        plan: &ReadPlan,
        value: Bytes,
    ) -> Result<()> {
        let index_keys = scopes.iter().map(|s| self.index_key(s)).collect::<Result<Vec<_>>>()?;
        let current = get_all(backend, &index_keys).await?;
        let entry = Needle::new(plan.key.as_str());
        let max_bytes = backend
            .capabilities()
            .max_value_size
            .map_or(INDEX_MAX_BYTES, |m| m.min(INDEX_MAX_BYTES));
        let mut updated = Vec::with_capacity(index_keys.len());
        for (index_key, value) in index_keys.iter().zip(current) {
            let next = index_with(value.as_ref(), &entry);
            if !next.listed && (next.keys_before >= self.options.index_cap || next.weight > max_bytes) {
                tracing::debug!(
                    index = %index_key,
                    keys = next.keys_before,
                    bytes = next.weight,
                    cap = self.options.index_cap,
                    max_bytes,
                    "key index full; not caching"
                );
                return Ok(());
            }
            updated.push((index_key.clone(), next.bytes));
        }
        let index_ttl = plan.ttl.map(|t| t.saturating_add(INDEX_TTL_SLACK));
        // Index first: if this fails, no entry exists that it would miss.
        match updated.as_slice() {
            [(k, v)] => backend.set(k, v.clone(), index_ttl).await?,
            many => backend.set_many(many, index_ttl).await?,
        }
        backend.set(&plan.key, value, plan.ttl).await?;
        // An invalidation between the two writes emptied an index (or a
        // concurrent miss overwrote it without our key): the entry would
        // be unreachable, so it goes.
        let after = get_all(backend, &index_keys).await?;
        let listed = after
            .iter()
            .all(|v| v.as_deref().is_some_and(|v| index_lists(v, &entry)));
        if !listed {
            backend.delete(&plan.key).await?;
        }
        Ok(())
    }
}

/// `get` or `get_many` of `keys`.
async fn get_all(backend: &dyn Backend, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
    match keys {
        [one] => Ok(vec![backend.get(one).await?]),
        many => backend.get_many(many).await,
    }
}

#[async_trait]
impl Strategy for Wildcard {
    fn name(&self) -> &str {
        "wildcard"
    }

    fn needs(&self) -> Requirements {
        Requirements {
            counters: false,
            prefers_prefix_delete: true,
            invalidates: true,
            needs_shared_store: true,
            invalidates_by_delete: true,
        }
    }

    async fn plan_read(&self, _backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        // `ns:wc:{first}:d:{second}:…:<view>`: everything after `d:` is the
        // view, so the first scope's prefix covers it.
        let mut b = view_key_builder(&self.options.namespace, view);
        b.trusted(&self.options.namespace).trusted(TAG);
        let mut scopes = view.scopes.iter();
        if let Some(first) = scopes.next() {
            b.hash_tag(first.as_str());
        }
        b.trusted("d");
        for scope in scopes {
            b.hash_tag(scope.as_str());
        }
        push_view(&mut b, view);
        let key = b.build()?;
        Ok(ReadPlan::new(key, Some(self.options.ttl)))
    }

    async fn store(&self, backend: &dyn Backend, view: &View, plan: &ReadPlan, value: Bytes) -> Result<()> {
        if backend.capabilities().prefix_delete {
            // The first scope's prefix covers the entry; the others need it
            // in their index.
            match view.scopes.get(1..) {
                Some(rest) if !rest.is_empty() => self.store_indexed(backend, rest, plan, value).await,
                _ => backend.set(&plan.key, value, plan.ttl).await,
            }
        } else {
            self.store_indexed(backend, &view.scopes, plan, value).await
        }
    }

    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        if backend.capabilities().prefix_delete {
            backend.delete_prefix(&self.data_prefix(&change.scope)).await?;
        }
        // The index exists without prefix deletion, and for views over
        // several scopes with it.
        let index_key = self.index_key(&change.scope)?;
        if let Some(listed) = backend.get(&index_key).await? {
            let mut keys = decode_index(&listed)
                .into_iter()
                .filter_map(|k| Key::new(k).ok())
                .collect::<Vec<_>>();
            keys.push(index_key);
            backend.delete_many(&keys).await?;
        }
        Ok(())
    }

    fn control_keys(&self, view: &View) -> Vec<Key> {
        view.scopes.iter().filter_map(|s| self.index_key(s).ok()).collect()
    }
}
