//! `stamped`: correct, one round trip per read, and no orphans.
//!
//! Each entry sits under the view's **stable** key (no generation in it,
//! as Rails' recyclable cache keys), so a refill overwrites it and no entry
//! is ever orphaned by a bump. The entry **carries the generations it was
//! computed under** (its stamps, as Symfony's TagAwareAdapter and
//! FusionCache's tags validate entries against tag versions), read before
//! the database was queried. A read is **one multi-get** of the view's
//! generation keys plus the entry, and hits only if every stamp equals the
//! current generation.
//!
//! ```text
//! get_many [ns:s:{cal:7}:fgen, ns:s:{cal:7}:<view>] ──▶ [g, RCS1 | stamps | envelope]
//!                                                       stamps == [g] ? hit : miss
//! ```
//!
//! # Keys and round trips
//!
//! - Generation: `ns:s:{scope}:fgen` (one per scope), or with
//!   [`StampGranularity::Bucket`] one per (scope, month or week) with
//!   `bucketed`'s buckets: `ns:s:{scope}:fgen:<bucket>`.
//! - Entry: `ns:s:{scope1}:{scope2}:…:<view>`. Its first hash tag is its
//!   first scope, so a one-scope view and its generation share a Redis
//!   Cluster slot and the multi-get stays on one node. A view over several
//!   scopes spans slots: the Redis backend then splits the multi-get by
//!   slot and sends the groups concurrently (one round trip of latency,
//!   several in CPU and network).
//! - read: 1 round trip (`get_many`), +1 `add` per missing generation;
//!   miss: 1 `set`; write: 1 `incr` per scope (per bucket touched), 2 when
//!   fenced (`begin_write` + `end_write`).
//!
//! # Races and losses
//!
//! - **The stale-set race.** A reader read its stamps before querying the
//!   database; a write bumps after its commit. A reader that loaded
//!   pre-commit data therefore carries the pre-bump generation, and its
//!   entry, though stored under the live key, is never served: every later
//!   read sees the bumped generation and misses. The entry is overwritten
//!   by the next fill.
//! - **A slow filler overwriting a newer entry.** Two readers miss around
//!   a bump; the one that planned before it stores last. The newer entry is
//!   replaced by one with old stamps: that costs one miss (the next read
//!   refills), never a stale read. A compare-and-set would avoid the miss
//!   where the backend has one (Redis `WATCH`/Lua, Memcached `cas`); not
//!   done: it costs a round trip on every fill to save one on a rare race.
//! - **A lost generation** (eviction, restart). It is re-created with `add`
//!   at a fresh random 62-bit start, which no stored stamp holds (chance
//!   2⁻⁶²), so every entry it guarded misses; none is served stale. `add`
//!   makes concurrent re-creators agree on one value.
//! - **A lost entry** is a miss.
//! - **The commit-to-bump window**, closed by a fence. With only
//!   [`invalidate`](crate::RangeCache::invalidate) after the commit, a read that
//!   plans after the commit but before the bump still sees the old
//!   generation and may be served the pre-commit entry, or join a load that
//!   read the database before the commit (as for every invalidating
//!   strategy). Announce the write instead:
//!   [`RangeCache::begin_write`](crate::RangeCache::begin_write) before the
//!   commit, [`RangeCache::end_write`](crate::RangeCache::end_write) after
//!   it. The
//!   generations are fenced: one counter holds the writes begun (high
//!   half) and ended (low half); `begin_write` marks them open
//!   (one `incr`), and every read that sees an open generation goes to the
//!   database alone: no hit, no coalescing, no fill. A read after the
//!   commit either sees the fence or, after `end_write`, the bumped
//!   generation, so it is never served pre-commit data. The price is one
//!   more `incr` per write and uncached reads of the scope while a write is
//!   open. The simulator announces every write (`--invalidate-delay-us`
//!   is then the time a scope stays fenced).
//! - **A lost fence.** A generation evicted mid-write loses the fences of
//!   the writes then open: those writes have the plain window, no worse. A
//!   writer that dies between begin and end leaves the scope uncached (not
//!   stale) until the generation expires.
//!
//! # Generation TTL
//!
//! Generation keys are written with [`CacheOptions::control_ttl`]
//! (a day, or twice the entry TTL if longer). An expired generation is a
//! lost one: misses, never stale reads.

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};

use super::bucketed::Bucketed;
use super::fence;
use super::generations::{bump_generation, resolve_generations, GenerationSource};
use super::keys::{scope_key, scoped_view_key};
use super::stored::{StoredEntry, StoredForm};
use super::{CacheOptions, ReadPlan, Requirements, Strategy};
use crate::backend::Backend;
use crate::envelope::Envelope;
use crate::error::Result;
use crate::key::Key;
use crate::view::{Change, Scope, View};

/// Tag of this strategy's keys.
const TAG: &str = "s";
/// Last part of a generation key's head: `fgen`, fenced generations (not
/// `gen`, so that generations an older `stamped` wrote, whose halves do not
/// match, are never read as open writes: they cost one miss per entry
/// after an upgrade instead of a day without cache).
const GENERATION: &str = "fgen";
/// Marks a stamped entry: magic, stamp count (u8), stamps (u64 each), then
/// the envelope the read path stored.
const MAGIC: &[u8; 4] = b"RCS1";

/// How finely `stamped` keeps generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StampGranularity {
    /// One generation per scope: any write to a scope makes all its entries
    /// miss once (as `versioned`).
    #[default]
    Scope,
    /// One generation per (scope, time bucket) with
    /// [`CacheOptions::bucket`]: a write makes only the views that span
    /// its buckets miss (as `bucketed`), at the price of more generation
    /// keys in each read's multi-get.
    Bucket,
}

/// The `stamped` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct Stamped {
    options: CacheOptions,
    source: GenerationSource,
    /// Bucket arithmetic, with [`StampGranularity::Bucket`].
    buckets: Option<Bucketed>,
}

impl Stamped {
    /// The registry name.
    pub const NAME: &'static str = "stamped";

    /// A `stamped` strategy with `options` (uses `namespace`, `ttl`, `seed`,
    /// `clock`, `stamp_granularity`, and `bucket` with bucket granularity).
    pub fn new(options: CacheOptions) -> Self {
        let source = GenerationSource::new(options.seed, options.clock.clone(), options.control_ttl()).fenced();
        let buckets = (options.stamp_granularity == StampGranularity::Bucket)
            .then(|| Bucketed::keyed_as(options.clone(), TAG, GENERATION));
        Stamped {
            options,
            source,
            buckets,
        }
    }

    /// `ns:s:{scope}:fgen`.
    fn scope_generation(&self, scope: &Scope) -> Result<Key> {
        scope_key(&self.options.namespace, TAG, scope, GENERATION)
    }

    /// The generation keys a write of `change` bumps.
    fn change_keys(&self, change: &Change) -> Result<Vec<Key>> {
        match &self.buckets {
            Some(b) => b.change_keys(change),
            None => Ok(vec![self.scope_generation(&change.scope)?]),
        }
    }

    fn generation_keys(&self, view: &View) -> Result<Vec<Key>> {
        match &self.buckets {
            Some(b) => b.generation_keys(view),
            None => view.scopes.iter().map(|s| self.scope_generation(s)).collect(),
        }
    }
}

/// `value` with `stamps` in front.
pub(crate) fn stamp(stamps: &[u64], value: &[u8]) -> Bytes {
    let n = u8::try_from(stamps.len()).unwrap_or(u8::MAX);
    let mut b = BytesMut::with_capacity(MAGIC.len() + 1 + 8 * usize::from(n) + value.len());
    b.put_slice(MAGIC);
    b.put_u8(n);
    for s in stamps.iter().take(usize::from(n)) {
        b.put_u64(*s);
    }
    b.put_slice(value);
    b.freeze()
}

/// The stored form of `stamped` entries: `RCS1`, the stamp count (u8),
/// the stamps (u64 each, big-endian), then the read path's envelope. The
/// read path, the two-tier cache and the simulator open them through this
/// form (see [`super::stored`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StampedForm;

impl StoredForm for StampedForm {
    fn open(&self, value: &Bytes) -> Option<StoredEntry> {
        if value.get(..MAGIC.len())? != MAGIC {
            return None;
        }
        let n = usize::from(*value.get(MAGIC.len())?);
        let body = MAGIC.len() + 1 + 8 * n;
        let stamps = value.slice(MAGIC.len() + 1..body.min(value.len()));
        if stamps.len() != 8 * n {
            return None;
        }
        let envelope = Envelope::parse(&value.slice(body..))?;
        Some(StoredEntry::new(Some(stamps), envelope))
    }
}

#[async_trait]
impl Strategy for Stamped {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn needs(&self) -> Requirements {
        Requirements::COUNTERS
    }

    fn stored_form(&self) -> &dyn StoredForm {
        &StampedForm
    }

    async fn plan_read(&self, backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        let mut keys = self.generation_keys(view)?;
        let entry_key = scoped_view_key(&self.options.namespace, TAG, view)?;
        keys.push(entry_key);
        // The one round trip: every generation and the entry.
        let mut values = backend.get_many(&keys).await?;
        let (entry_key, entry) = (keys.pop(), values.pop().flatten());
        let Some(entry_key) = entry_key else {
            return Err(crate::error::Error::Backend {
                backend: backend.name().to_owned(),
                key: None,
                message: "no key to read".to_owned(),
            });
        };
        let generations = resolve_generations(backend, &keys, values, &self.source).await?;
        // A write is open on one of the scopes: this read goes to the
        // database alone (see "The commit-to-bump window").
        let fenced = !generations.iter().all(|g| fence::is_settled(*g));
        // The entry as stored: the read path opens it with `StampedForm`
        // and serves it only if its stamps are these generations. A fenced
        // plan keeps it too: never served as a hit, it is what fail-safe
        // may answer (marked stale) if the database fails meanwhile.
        Ok(ReadPlan::new(entry_key, Some(self.options.ttl))
            .with_generations(generations)
            .with_entry(entry)
            .with_bypass(fenced))
    }

    async fn store(&self, backend: &dyn Backend, _view: &View, plan: &ReadPlan, value: Bytes) -> Result<()> {
        backend.set(&plan.key, stamp(&plan.generations, &value), plan.ttl).await
    }

    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        for key in self.change_keys(change)? {
            bump_generation(backend, &key, &self.source).await?;
        }
        Ok(())
    }

    async fn begin_write(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        for key in self.change_keys(change)? {
            fence::begin(backend, &key, &self.source).await?;
        }
        Ok(())
    }

    async fn end_write(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        // Every key is ended even if one fails: a fence left open only
        // costs misses, but the others should still lift.
        let mut first_error = None;
        for key in self.change_keys(change)? {
            if let Err(e) = fence::end(backend, &key, &self.source).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn control_keys(&self, view: &View) -> Vec<Key> {
        self.generation_keys(view).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EntryBuf;
    use crate::strategy::Liveness;
    use std::time::UNIX_EPOCH;

    fn envelope() -> Bytes {
        EntryBuf::from_payload(b"[1]").seal(None, std::time::Duration::ZERO).0
    }

    #[test]
    fn only_current_stamps_make_an_entry_live() {
        let e = StampedForm.open(&stamp(&[7, 9], &envelope())).unwrap();
        assert!(e.is_stamped());
        assert_eq!(e.stamps().collect::<Vec<_>>(), vec![7, 9]);
        assert_eq!(&e.payload()[..], b"[1]");
        assert!(e.stamped_with(&[7, 9]));
        assert!(!e.stamped_with(&[7, 10]) && !e.stamped_with(&[7]) && !e.stamped_with(&[7, 9, 1]));
        let key = Key::new("k").unwrap();
        let plan = |g: Vec<u64>| ReadPlan::new(key.clone(), None).with_generations(g);
        assert_eq!(e.liveness(&key, &plan(vec![7, 9]), UNIX_EPOCH), Liveness::Live);
        assert_eq!(e.liveness(&key, &plan(vec![7, 10]), UNIX_EPOCH), Liveness::StaleStamps);
        let none = StampedForm.open(&stamp(&[], &envelope())).unwrap();
        assert!(!none.is_stamped() && none.stamped_with(&[]));
        // Not stamped entries, truncated ones, or stamps without an envelope.
        for bad in [
            &envelope()[..],
            b"RCS1",
            b"RCS1\x02short",
            &stamp(&[1], b"not an envelope")[..],
        ] {
            assert_eq!(StampedForm.open(&Bytes::copy_from_slice(bad)), None, "{bad:?}");
        }
    }
}
