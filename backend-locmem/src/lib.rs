//! # backend-locmem
//!
//! An in-process [`Backend`] on [`moka::sync::Cache`]: bounded by bytes,
//! per-entry TTL, atomic `incr` and `add`, prefix deletion. It is the
//! embedded default of the simulator and the reference the other backends are
//! compared with.
//!
//! ```
//! use backend_locmem::LocmemBackend;
//! use cache_core::{Backend, Bytes, Key};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! let cache = LocmemBackend::builder().max_capacity_bytes(64 << 20).build();
//! let key = Key::new("calendar_version:{cal:1}")?;
//! assert!(cache.add(&key, Bytes::from_static(b"0"), None).await?);
//! assert_eq!(cache.incr(&key, 1).await?, 1);
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Atomicity.** Every write (`set`, `add`, `incr`, `delete`) holds one of
//!   256 striped mutexes, chosen by the key's hash, for its
//!   read-modify-write; reads take no lock. moka's own `and_compute_with`
//!   would serialise computes on a key, but its plain `insert` does not take
//!   that lock, so `set` would have to be a compute too, which measured ~1 µs
//!   slower per call than `insert` plus an uncontended stripe lock (~30 ns).
//! - **No lock is held across an `.await`.** The store is moka's synchronous
//!   cache and every operation runs to completion in its first poll (a test
//!   checks it). With moka's async cache and async stripe locks, a future
//!   that took a stripe and was then left unpolled by its caller (a
//!   `buffered` stream whose consumer awaits something else, a losing
//!   `select!` branch kept alive) would block every other write to that
//!   stripe: a "futurelock". There is nothing to wait for in an in-process
//!   map, so nothing is lost by not yielding; moka's maintenance (evictions)
//!   runs inline, in short steps. It also measured ~10% less CPU per
//!   simulated request than the async cache.
//! - **Time.** moka cannot take a custom clock, so each entry stores its
//!   logical expiry according to the backend's [`Clock`] and reads compare
//!   against it: with a [`cache_core::ManualClock`] a TTL expires exactly when
//!   the test (or simulator) moves time past it. moka's own per-entry expiry is
//!   set from the same TTL only when the clock follows real time, as a bound on
//!   how long dead entries occupy memory; with a manual clock, memory is bounded
//!   by capacity alone and [`LocmemBackend::purge_expired`] drops dead entries.
//! - **Capacity** is counted in bytes (key + value + a fixed per-entry
//!   overhead) by a weigher; moka evicts by TinyLFU when it is exceeded, as a
//!   cache may.
//! - **Prefix deletion** visits only the keys of one hash tag when the prefix
//!   names one (`ns:w:{cal:7}:d:`, the way the strategies build keys): from
//!   the first `delete_prefix` on, the store keeps its keys grouped by their
//!   first `{tag}` (a copy of each key, not counted by the weigher). Other
//!   prefixes scan every key. A store that never deletes by prefix pays
//!   nothing. In the simulator this took `wildcard`'s invalidations from
//!   ~270 µs to ~7 µs each.
//! - **Keys.** moka is keyed by a 128-bit seeded hash of the key (foldhash,
//!   randomly seeded per store unless [`LocmemBuilder::hash_seed`] fixes it);
//!   the entry keeps the full key and every lookup compares it, so a hash
//!   collision can only read as a miss, never as another key's value.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cache_core::backend::{checked_counter_add, format_counter, is_expired_ttl, parse_counter};
use cache_core::{async_trait, system_clock, Backend, Bytes, Capabilities, Clock, Error, Key, Result, Ttl};
use moka::sync::Cache;
use moka::Expiry;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Default capacity: 256 MiB.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 << 20;
/// Default largest value: 1 MiB, Memcached's default item size, so that a
/// workload that fits here also fits a default Memcached.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1 << 20;
/// Bytes charged per entry on top of key and value (moka's node, our header).
const ENTRY_OVERHEAD: usize = 96;
/// Write-lock stripes: enough that unrelated keys rarely share one on two cores.
const STRIPES: usize = 256;

#[derive(Debug, Clone)]
struct Entry {
    /// The full key: moka is keyed by its [`Fingerprint`], so every lookup
    /// checks that the entry found is the key's own.
    key: Arc<str>,
    value: Bytes,
    /// Logical expiry per the backend's clock.
    expires_at: Option<SystemTime>,
    /// Real-time garbage-collection deadline handed to moka.
    gc_deadline: Option<Instant>,
}

impl Entry {
    fn live_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    /// Like [`Entry::live_at`] but reads the clock only when the entry has an
    /// expiry: most cached views and every generation key have none worth
    /// checking on the hot path, and a clock read is a noticeable share of a
    /// ~300 ns get.
    fn live(&self, clock: &dyn Clock) -> bool {
        self.expires_at.is_none_or(|t| clock.now() < t)
    }
}

/// How keys are hashed into their [`Fingerprint`]: foldhash, randomly
/// seeded per store by default, or with a fixed seed.
///
/// Why foldhash and not std's SipHash: every operation hashes its key, and
/// SipHash was ~17% of a simulated feed request. foldhash keeps the property
/// the default needs (a per-process random seed, so callers who put user
/// input into keys cannot aim collisions at one bucket) at a fraction of the
/// cost. A fixed seed makes hashing, and with it moka's eviction choices,
/// the same in every run, which a simulation needs for byte-identical
/// reports.
type KeyHasher = foldhash::quality::SeedableRandomState;

fn key_hasher(seed: Option<u64>) -> KeyHasher {
    match seed {
        Some(seed) => KeyHasher::with_seed(seed, foldhash::SharedSeed::global_fixed()),
        None => KeyHasher::random(),
    }
}

/// moka's key: a 64-bit seeded hash of the real key, which the entry
/// carries in full.
///
/// Why not the `String` itself: moka's table keeps no hashes, so whenever it
/// grows, or sheds the tombstones that eviction churn leaves (every few
/// hundred removals per segment), it re-hashes every key, and each probe
/// compares whole keys; with keys on the heap each of those is a cache miss
/// on the key's bytes. Profiling the simulator put that re-hashing at ~19% of
/// a request. A fixed-size fingerprint is hashed and compared in place.
///
/// Two live keys with the same fingerprint (with a random seed, chance
/// about n²/2⁶⁵ for n keys: ~3·10⁻⁸ for a million) share one slot: writing
/// one replaces the other, which then reads as missing, as if evicted,
/// which any cache may do. A read never returns another key's value, because
/// the entry's full key is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64);

impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Already a well-mixed hash: moka's table needs no more mixing.
        state.write_u64(self.0);
    }
}

/// Passes a [`Fingerprint`] through as the table hash.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

/// The hasher [`PassThrough`] builds.
#[derive(Debug, Default)]
struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still gets a stable mix.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

/// The first hash tag of `s` in Redis Cluster's sense: the text between the
/// first `{` and the first `}` after it, when non-empty. `None` when `s`
/// has none (or an empty one).
fn hash_tag(s: &str) -> Option<&str> {
    let open = s.find('{')?;
    let rest = &s[open + 1..];
    let close = rest.find('}')?;
    Some(&rest[..close]).filter(|t| !t.is_empty())
}

/// The hash tag every key starting with `prefix` has, when the prefix
/// decides it: `Some(tag)` (`Some(None)`: "no tag") when the prefix holds
/// its first `{` and the `}` closing it; `None` when keys starting with
/// `prefix` may have different tags.
fn prefix_tag(prefix: &str) -> Option<Option<&str>> {
    let open = prefix.find('{')?;
    prefix[open + 1..].find('}')?;
    Some(hash_tag(prefix))
}

/// Keys grouped by hash tag, so that `delete_prefix` of a prefix that
/// names a tag (`ns:w:{cal:7}:d:`, as the strategies build them) visits
/// that tag's keys instead of the whole store.
///
/// Why lazily, and why it may hold dead keys: keeping it costs every write
/// of a new key a hash-set insert, which a store that never deletes by
/// prefix should not pay, so it is built on the first `delete_prefix` (from
/// a full scan, under every write stripe) and kept from then on. Keys moka
/// evicts are not removed (that would need an eviction listener, which
/// slows every operation); a prefix deletion checks each candidate against
/// the store anyway. When dead keys make the index more than twice the
/// store (plus some slack), a write drops it and the next `delete_prefix`
/// rebuilds it, so its memory stays proportional to the store's.
#[derive(Debug, Default)]
struct PrefixIndex {
    active: bool,
    /// Keys by [`group`]: their first hash tag, `""` for keys without one
    /// (tags are never empty, so the two cannot be confused).
    keys: std::collections::HashMap<String, std::collections::HashSet<String>>,
    len: usize,
}

/// The index group of a key (or of a prefix's keys): its hash tag, or `""`.
fn group(tag: Option<&str>) -> &str {
    tag.unwrap_or("")
}

impl PrefixIndex {
    fn insert(&mut self, key: &str) {
        let g = group(hash_tag(key));
        // Look up by `&str` first: only a new group allocates its name.
        let set = match self.keys.get_mut(g) {
            Some(set) => set,
            None => self.keys.entry(g.to_owned()).or_default(),
        };
        if !set.contains(key) {
            set.insert(key.to_owned());
            self.len += 1;
        }
    }

    fn remove(&mut self, key: &str) {
        let g = group(hash_tag(key));
        if let Some(set) = self.keys.get_mut(g) {
            if set.remove(key) {
                self.len -= 1;
            }
            if set.is_empty() {
                self.keys.remove(g);
            }
        }
    }

    fn clear(&mut self) {
        self.active = false;
        self.keys = Default::default();
        self.len = 0;
    }

    /// Candidate keys for `prefix` (all keys starting with it that the
    /// index holds; some may be dead).
    fn matching(&self, prefix: &str) -> Vec<String> {
        let groups: Vec<&std::collections::HashSet<String>> = match prefix_tag(prefix) {
            Some(tag) => self.keys.get(group(tag)).into_iter().collect(),
            None => self.keys.values().collect(),
        };
        let mut out: Vec<String> = groups
            .into_iter()
            .flatten()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        // Hash-set order is random per process; removal order is not
        // observable, but a sorted list keeps runs repeatable under a debugger.
        out.sort_unstable();
        out
    }
}

/// Dead keys the prefix index may hold beyond twice the store's entries
/// before it is dropped.
const INDEX_SLACK: usize = 4096;

/// moka expiry policy: each entry carries its own real-time deadline.
struct GcDeadline;

impl Expiry<Fingerprint, Entry> for GcDeadline {
    fn expire_after_create(&self, _key: &Fingerprint, value: &Entry, created_at: Instant) -> Option<Duration> {
        value.gc_deadline.map(|d| d.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &Fingerprint,
        value: &Entry,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.gc_deadline.map(|d| d.saturating_duration_since(updated_at))
    }
}

/// Builder for [`LocmemBackend`].
///
/// ```
/// use backend_locmem::LocmemBackend;
/// use cache_core::ManualClock;
/// use std::sync::Arc;
/// let clock = ManualClock::at_unix_millis(0);
/// let cache = LocmemBackend::builder()
///     .max_capacity_bytes(16 << 20)
///     .max_value_size(Some(64 << 10))
///     .clock(Arc::new(clock.clone()))
///     .name("locmem-process-1")
///     .build();
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LocmemBuilder {
    capacity: u64,
    max_value_size: Option<usize>,
    clock: Arc<dyn Clock>,
    name: String,
    hash_seed: Option<u64>,
}

impl LocmemBuilder {
    /// Total bytes the cache may hold (default 256 MiB).
    pub fn max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// Largest value accepted (default 1 MiB); `None` for no limit beyond
    /// capacity.
    pub fn max_value_size(mut self, limit: Option<usize>) -> Self {
        self.max_value_size = limit;
        self
    }

    /// The clock logical TTLs follow (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Hash keys with a fixed seed instead of per-process random keys
    /// (default: random). Use it where runs must repeat exactly (the
    /// simulator): hashing decides which entries moka evicts. Do not use it
    /// for keys built from untrusted input in production: a known seed lets
    /// an attacker aim hash collisions.
    pub fn hash_seed(mut self, seed: Option<u64>) -> Self {
        self.hash_seed = seed;
        self
    }

    /// Name reported in errors and reports (default `"locmem"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Builds the backend.
    pub fn build(self) -> LocmemBackend {
        let cache = Cache::builder()
            .max_capacity(self.capacity)
            .weigher(|_: &Fingerprint, v: &Entry| {
                u32::try_from(v.key.len() + v.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(GcDeadline)
            .build_with_hasher(PassThrough);
        LocmemBackend {
            cache,
            stripes: Arc::new((0..STRIPES).map(|_| Mutex::new(())).collect()),
            index: Arc::default(),
            hasher: key_hasher(self.hash_seed),
            clock: self.clock,
            max_value_size: self.max_value_size,
            name: self.name,
        }
    }
}

/// The in-process backend. Cloning shares the same store.
#[derive(Clone)]
pub struct LocmemBackend {
    cache: Cache<Fingerprint, Entry, PassThrough>,
    stripes: Arc<Vec<Mutex<()>>>,
    /// Keys by hash tag, kept once `delete_prefix` has been used.
    index: Arc<std::sync::Mutex<PrefixIndex>>,
    hasher: KeyHasher,
    clock: Arc<dyn Clock>,
    max_value_size: Option<usize>,
    name: String,
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

    /// Live keys and value sizes, in no particular order. The simulator uses
    /// it to count dead keys and bytes at the end of a run.
    pub fn live_entries(&self) -> Vec<(String, usize)> {
        let now = self.clock.now();
        self.cache
            .iter()
            .filter(|(_, e)| e.live_at(now))
            .map(|(_, e)| (e.key.to_string(), e.value.len()))
            .collect()
    }

    fn entry(&self, key: &str, value: Bytes, ttl: Ttl) -> Entry {
        let (expires_at, gc_deadline) = match ttl {
            None => (None, None),
            Some(d) => {
                let gc = self.clock.tracks_real_time().then(|| Instant::now() + d);
                (Some(self.clock.now() + d), gc)
            }
        };
        Entry {
            key: Arc::from(key),
            value,
            expires_at,
            gc_deadline,
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
        match self.max_value_size {
            Some(limit) if value.len() > limit => Err(Error::ValueTooLarge {
                backend: self.name.clone(),
                key: key.to_string(),
                size: value.len(),
                limit,
            }),
            _ => Ok(()),
        }
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
        Ok(self
            .lookup(key.as_str(), self.fingerprint(key.as_str()))
            .filter(|e| e.live(self.clock.as_ref()))
            .map(|e| e.value))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            self.remove_if(key.as_str(), |_| true);
            return Ok(());
        }
        let entry = self.entry(key.as_str(), value, ttl);
        let fp = self.fingerprint(key.as_str());
        let _guard = self.lock(fp);
        self.cache.insert(fp, entry);
        self.index_insert(key.as_str());
        Ok(())
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        // Check every size first so a too-large value writes nothing.
        for (key, value) in entries {
            self.check_size(key, value)?;
        }
        for (key, value) in entries {
            self.set(key, value.clone(), ttl).await?;
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
        Ok(true)
    }

    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        let fp = self.fingerprint(key.as_str());
        let _guard = self.lock(fp);
        self.incr_locked(key, fp, delta)
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        Ok(self.remove_if(key.as_str(), |_| true))
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let mut n = 0;
        for key in keys {
            n += u64::from(self.remove_if(key.as_str(), |_| true));
        }
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
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_redis_cluster() {
        assert_eq!(hash_tag("ns:v:{cal%3A7}:gen"), Some("cal%3A7"));
        assert_eq!(hash_tag("a:{x}:{y}"), Some("x"), "the first tag counts");
        assert_eq!(hash_tag("a:{}:{y}"), None, "an empty first tag means none");
        assert_eq!(hash_tag("a:{x"), None);
        assert_eq!(hash_tag("plain"), None);
        assert_eq!(prefix_tag("ns:w:{x}:d:"), Some(Some("x")));
        assert_eq!(prefix_tag("ns:w:{}"), Some(None));
        assert_eq!(prefix_tag("ns:w:{x"), None, "the tag is still open");
        assert_eq!(prefix_tag("ns:w:"), None);
    }

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
