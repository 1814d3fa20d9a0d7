//! [`LocmemBackend`] and its [`Backend`] implementation.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cache_core::backend::{checked_counter_add, format_counter, is_expired_ttl, parse_counter};
use cache_core::{async_trait, system_clock, Backend, Bytes, Capabilities, Clock, Error, Key, Result, Ttl};
use moka::sync::Cache;

use crate::builder::{stored_len, LocmemBuilder, ValueSize};
use crate::entry::Entry;
use crate::fingerprint::{Fingerprint, KeyHasher, PassThrough};
use crate::index::{PrefixIndex, INDEX_SLACK};
use crate::{DEFAULT_CAPACITY_BYTES, DEFAULT_MAX_VALUE_SIZE};

/// The in-process backend. Cloning shares the same store.
#[derive(Clone)]
pub struct LocmemBackend {
    pub(crate) cache: Cache<Fingerprint, Entry, PassThrough>,
    pub(crate) stripes: Arc<Vec<Mutex<()>>>,
    /// Keys by hash tag, kept once `delete_prefix` has been used.
    pub(crate) index: Arc<std::sync::Mutex<PrefixIndex>>,
    pub(crate) hasher: KeyHasher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_value_size: Option<usize>,
    pub(crate) name: String,
    /// Apply moka's maintenance after every operation (simulations).
    pub(crate) deterministic: bool,
    /// What a value counts as ([`LocmemBuilder::value_size`]).
    pub(crate) value_size: ValueSize,
}

impl std::fmt::Debug for LocmemBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocmemBackend")
            .field("name", &self.name)
            .field("entries", &self.cache.entry_count())
            .field("weighted_bytes", &self.cache.weighted_size())
            .field("max_value_size", &self.max_value_size)
            .finish()
    }
}

impl Default for LocmemBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl LocmemBackend {
    /// A backend with default settings (256 MiB, 1 MiB values, system clock).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder with default settings.
    pub fn builder() -> LocmemBuilder {
        LocmemBuilder {
            capacity: DEFAULT_CAPACITY_BYTES,
            max_value_size: Some(DEFAULT_MAX_VALUE_SIZE),
            clock: system_clock(),
            name: "locmem".to_owned(),
            hash_seed: None,
            deterministic: false,
            value_size: stored_len,
        }
    }

    /// Entries currently held, live or logically expired (moka's count, which
    /// lags recent writes until [`Self::run_pending_tasks`]).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes currently charged by the weigher (lags like [`Self::entry_count`]).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Lets moka finish pending maintenance (evictions, counts).
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// Removes every entry whose logical expiry has passed; returns how many.
    pub async fn purge_expired(&self) -> u64 {
        let now = self.clock.now();
        let dead: Vec<Arc<str>> = self
            .cache
            .iter()
            .filter(|(_, e)| !e.live_at(now))
            .map(|(_, e)| e.key)
            .collect();
        let mut n = 0;
        for k in dead {
            if self.remove_if(&k, |e| !e.live_at(now)) {
                n += 1;
            }
        }
        n
    }

    /// Live keys and value sizes (as [`LocmemBuilder::value_size`] counts
    /// them), in no particular order. The simulator uses it to count dead
    /// keys and bytes at the end of a run.
    pub fn live_entries(&self) -> Vec<(String, usize)> {
        let now = self.clock.now();
        self.cache
            .iter()
            .filter(|(_, e)| e.live_at(now))
            .map(|(_, e)| (e.key.to_string(), (self.value_size)(&e.value)))
            .collect()
    }

    fn entry(&self, key: &str, value: Bytes, ttl: Ttl) -> Entry {
        let (expires_at, gc_deadline) = match ttl {
            None => (None, None),
            // A TTL past what the clock can represent (`Duration::MAX`) is
            // clamped to "never expires", as the contract allows: no
            // overflow, and no entry that expires at once.
            Some(d) => {
                let gc = if self.clock.tracks_real_time() {
                    Instant::now().checked_add(d)
                } else {
                    None
                };
                (self.clock.now().checked_add(d), gc)
            }
        };
        Entry {
            key: Arc::from(key),
            value,
            expires_at,
            gc_deadline,
        }
    }

    /// In a deterministic store, applies moka's pending maintenance now
    /// (see [`LocmemBuilder::deterministic`]). Called after every write:
    /// the pending work is then the reads since the previous write plus
    /// this one write, which moka applies reads first, i.e. in the order
    /// they happened. Reads need no call of their own: moka records them,
    /// flushes every 64 (a count, not a time), and a timed flush of reads
    /// alone only applies the same reads earlier, in the same order, with
    /// no eviction in between (only writes change the weighted size).
    fn settle(&self) {
        if self.deterministic {
            self.cache.run_pending_tasks();
        }
    }

    /// `key`'s fingerprint: moka's key for it.
    fn fingerprint(&self, key: &str) -> Fingerprint {
        Fingerprint(self.hasher.hash_one(key))
    }

    /// `key`'s entry, live or logically expired; `None` when absent (or when
    /// its slot holds another key with the same fingerprint).
    fn lookup(&self, key: &str, fp: Fingerprint) -> Option<Entry> {
        self.cache.get(&fp).filter(|e| &*e.key == key)
    }

    fn check_size(&self, key: &Key, value: &Bytes) -> Result<()> {
        let Some(limit) = self.max_value_size else {
            return Ok(());
        };
        let size = (self.value_size)(value);
        if size > limit {
            return Err(Error::ValueTooLarge {
                backend: self.name.clone(),
                key: key.to_string(),
                size,
                limit,
            });
        }
        Ok(())
    }

    /// Takes the write lock of `fp`'s stripe. A poisoned stripe is taken
    /// anyway: it guards no data, only the order of writes to its keys.
    fn lock(&self, fp: Fingerprint) -> MutexGuard<'_, ()> {
        // Middle bits: moka picks its segment from the top bits and its
        // bucket from the low ones.
        let i = ((fp.0 >> 24) as usize) % self.stripes.len();
        self.stripes[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a key just written, when the prefix index is kept. Caller
    /// holds the key's stripe lock.
    fn index_insert(&self, key: &str) {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if !index.active {
            return;
        }
        let limit = usize::try_from(self.cache.entry_count()).unwrap_or(usize::MAX);
        if index.len > limit.saturating_mul(2).saturating_add(INDEX_SLACK) {
            // Mostly evicted keys: drop it; the next prefix deletion rebuilds it.
            index.clear();
            return;
        }
        index.insert(key);
    }

    /// Keys that may start with `prefix` (a superset of the live ones), from
    /// the prefix index, built first if it is not kept yet.
    fn prefix_candidates(&self, prefix: &str) -> Vec<String> {
        {
            let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
            if index.active {
                return index.matching(prefix);
            }
        }
        // Every write stripe, so that no write lands between the scan and
        // the index going live (writers update it under their stripe).
        let mut guards = Vec::with_capacity(self.stripes.len());
        for stripe in self.stripes.iter() {
            guards.push(stripe.lock().unwrap_or_else(PoisonError::into_inner));
        }
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if !index.active {
            index.clear();
            for (_, entry) in self.cache.iter() {
                index.insert(&entry.key);
            }
            index.active = true;
        }
        index.matching(prefix)
    }

    /// Forgets a key just deleted. Caller holds the key's stripe lock.
    fn index_remove(&self, key: &str) {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if index.active {
            index.remove(key);
        }
    }

    /// Removes `key` when `pred` holds for its entry; returns whether the
    /// removed entry was live. Caller holds the key's stripe lock.
    fn remove_locked(&self, key: &str, fp: Fingerprint, pred: impl FnOnce(&Entry) -> bool) -> bool {
        match self.lookup(key, fp) {
            Some(e) if pred(&e) => {
                self.cache.invalidate(&fp);
                self.index_remove(key);
                e.live(self.clock.as_ref())
            }
            Some(_) => false,
            None => {
                // Gone already (evicted): the index may still list it.
                self.index_remove(key);
                false
            }
        }
    }

    fn remove_if(&self, key: &str, pred: impl FnOnce(&Entry) -> bool) -> bool {
        let fp = self.fingerprint(key);
        let _guard = self.lock(fp);
        self.remove_locked(key, fp, pred)
    }

    /// `get` without its future: `get_many` reads each key with it (a boxed
    /// future per key was one allocation per key read).
    fn read(&self, key: &Key) -> Option<Bytes> {
        self.lookup(key.as_str(), self.fingerprint(key.as_str()))
            .filter(|e| e.live(self.clock.as_ref()))
            .map(|e| e.value)
    }

    /// `set` of a value whose size was checked, without its future.
    fn write(&self, key: &Key, value: Bytes, ttl: Ttl) {
        if is_expired_ttl(ttl) {
            self.remove_if(key.as_str(), |_| true);
            return;
        }
        let entry = self.entry(key.as_str(), value, ttl);
        let fp = self.fingerprint(key.as_str());
        let _guard = self.lock(fp);
        self.cache.insert(fp, entry);
        self.index_insert(key.as_str());
        self.settle();
    }

    /// The incr read-modify-write; caller holds the key's stripe lock.
    fn incr_locked(&self, key: &Key, fp: Fingerprint, delta: u64) -> Result<u64> {
        let current = self
            .lookup(key.as_str(), fp)
            .filter(|e| e.live(self.clock.as_ref()))
            .ok_or_else(|| Error::NotFound {
                backend: self.name.clone(),
                key: key.to_string(),
            })?;
        let n = parse_counter(&current.value).ok_or_else(|| Error::NotACounter {
            backend: self.name.clone(),
            key: key.to_string(),
        })?;
        let next = checked_counter_add(n, delta).ok_or_else(|| Error::Overflow {
            backend: self.name.clone(),
            key: key.to_string(),
            delta,
        })?;
        if next != n {
            // Keep the entry's expiry: an increment does not refresh a TTL.
            let entry = Entry {
                value: format_counter(next),
                ..current
            };
            self.cache.insert(fp, entry);
        }
        Ok(next)
    }
}

#[async_trait]
impl Backend for LocmemBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_prefix_delete(true)
            .with_max_value_size(self.max_value_size)
            .with_ttl_granularity(Duration::ZERO)
            .with_shared_between_processes(false)
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        Ok(self.read(key))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys.iter().map(|key| self.read(key)).collect())
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.check_size(key, &value)?;
        self.write(key, value, ttl);
        Ok(())
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        // Check every size first so a too-large value writes nothing.
        for (key, value) in entries {
            self.check_size(key, value)?;
        }
        for (key, value) in entries {
            self.write(key, value.clone(), ttl);
        }
        Ok(())
    }

    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            return Ok(false);
        }
        let fp = self.fingerprint(key.as_str());
        let _guard = self.lock(fp);
        if let Some(e) = self.lookup(key.as_str(), fp) {
            if e.live(self.clock.as_ref()) {
                return Ok(false);
            }
        }
        let entry = self.entry(key.as_str(), value, ttl);
        self.cache.insert(fp, entry);
        self.index_insert(key.as_str());
        self.settle();
        Ok(true)
    }

    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        let fp = self.fingerprint(key.as_str());
        let _guard = self.lock(fp);
        let r = self.incr_locked(key, fp, delta);
        self.settle();
        r
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        let removed = self.remove_if(key.as_str(), |_| true);
        self.settle();
        Ok(removed)
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let mut n = 0;
        for key in keys {
            n += u64::from(self.remove_if(key.as_str(), |_| true));
        }
        self.settle();
        Ok(n)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        // Collect first, then remove under each key's lock: removing while
        // collecting would make the count approximate.
        let keys = self.prefix_candidates(prefix);
        let mut n = 0;
        for k in keys {
            n += u64::from(self.remove_if(k.as_str(), |_| true));
        }
        self.settle();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    #[tokio::test]
    async fn the_index_is_built_on_first_use_and_follows_later_writes() {
        let cache = LocmemBackend::new();
        for k in ["n:{a}:1", "n:{a}:2", "n:{ab}:1", "n:{b}:1", "n:plain"] {
            cache.set(&key(k), Bytes::from_static(b"v"), None).await.unwrap();
        }
        assert!(!cache.index.lock().unwrap().active, "no cost before a prefix deletion");
        assert_eq!(cache.delete_prefix("n:{a}:").await.unwrap(), 2);
        assert!(cache.index.lock().unwrap().active);
        cache
            .set(&key("n:{a}:3"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
        assert!(cache
            .add(&key("n:{b}:2"), Bytes::from_static(b"v"), None)
            .await
            .unwrap());
        assert_eq!(
            cache.delete_prefix("n:{a}:").await.unwrap(),
            1,
            "a key written after the build"
        );
        assert_eq!(
            cache.delete_prefix("n:{a").await.unwrap(),
            1,
            "an open tag scans every group"
        );
        assert!(cache.delete(&key("n:{b}:1")).await.unwrap());
        assert_eq!(cache.index.lock().unwrap().len, 2, "deleted keys leave the index");
        assert_eq!(cache.delete_prefix("n:").await.unwrap(), 2);
        assert_eq!(cache.get(&key("n:{b}:2")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn evicted_keys_do_not_grow_the_index_without_bound() {
        // ~100 entries fit; 20 000 distinct keys are written.
        let cache = LocmemBackend::builder().max_capacity_bytes(100 * 300).build();
        cache.delete_prefix("n:{a}:").await.unwrap();
        let value = Bytes::from(vec![b'x'; 180]);
        let mut most = 0;
        for i in 0..20_000 {
            cache
                .set(&key(&format!("n:{{a}}:{i}")), value.clone(), None)
                .await
                .unwrap();
            if i % 500 == 0 {
                cache.run_pending_tasks().await;
            }
            most = most.max(cache.index.lock().unwrap().len);
        }
        assert!(most <= 2 * 200 + INDEX_SLACK + 1, "index reached {most} keys");
        // Whatever was dropped, a prefix deletion still finds every live key.
        cache.run_pending_tasks().await;
        let live = cache.live_entries().len() as u64;
        assert!(live > 0);
        assert_eq!(cache.delete_prefix("n:{a}:").await.unwrap(), live);
        assert!(cache.live_entries().is_empty());
    }

    /// Two keys whose fingerprints collide share one slot: neither ever reads
    /// the other's value, and writing one evicts the other.
    #[tokio::test]
    async fn a_fingerprint_collision_reads_as_a_miss_never_as_another_value() {
        let cache = LocmemBackend::new();
        let k = key("k");
        // Plant "other" in the slot "k" hashes to, as a collision would.
        let fp = cache.fingerprint("k");
        let planted = cache.entry("other", Bytes::from_static(b"7"), None);
        cache.cache.insert(fp, planted);
        assert_eq!(cache.get(&k).await.unwrap(), None);
        assert!(matches!(cache.incr(&k, 1).await, Err(Error::NotFound { .. })));
        assert!(!cache.delete(&k).await.unwrap(), "nothing of k's to delete");
        assert!(cache.cache.get(&fp).is_some(), "and the other key's entry stays");
        assert!(cache.add(&k, Bytes::from_static(b"1"), None).await.unwrap());
        assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(cache.cache.get(&fp).map(|e| e.key.to_string()).as_deref(), Some("k"));
    }

    /// Runs `f` for exactly one poll; panics if it is not finished.
    fn once<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a locmem operation suspended"),
        }
    }

    /// No operation ever suspends, so none can hold a stripe lock while its
    /// caller stops polling it (the futurelock the module docs describe),
    /// including while moka evicts.
    #[test]
    fn every_operation_completes_on_its_first_poll() {
        let cache = LocmemBackend::builder().max_capacity_bytes(64 << 10).build();
        let value = Bytes::from(vec![b'x'; 300]);
        for i in 0..5_000 {
            let k = key(&format!("n:{{a}}:{i}"));
            once(cache.set(&k, value.clone(), Some(Duration::from_secs(60)))).unwrap();
            once(cache.get(&k)).unwrap();
        }
        let k = key("n:{a}:counter");
        assert!(once(cache.add(&k, Bytes::from_static(b"1"), None)).unwrap());
        assert_eq!(once(cache.incr(&k, 2)).unwrap(), 3);
        once(cache.get_many(&[k.clone(), key("n:{b}:1")])).unwrap();
        once(cache.set_many(&[(key("n:{b}:1"), value.clone())], None)).unwrap();
        assert!(once(cache.delete(&key("n:{b}:1"))).unwrap());
        once(cache.delete_many(std::slice::from_ref(&k))).unwrap();
        once(cache.delete_prefix("n:{a}:")).unwrap();
        once(cache.delete_prefix("n:")).unwrap();
        once(cache.purge_expired());
        once(cache.run_pending_tasks());
    }
}
